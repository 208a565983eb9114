//! Q3_K: 256 elements in 16 sub-blocks of 16, 3-bit quants (2 low bits and a high-bit mask),
//! signed 6-bit scales: `x = d·sc·q`. Pairs with Q8_K.

use super::common::{
    clamped, fit_sixteens, nearest_int, quantize_blocks, signed_max, GROUP_MAX_EPS,
};
use super::q2_k::{pack_2bit, walk_2bit};
use super::q8_k::operands;
use super::QK_K;
use bytemuck::{cast_slice, Pod, Zeroable};
use half::f16;

/// 110 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

/// The 16 signed 6-bit scales of a Q3_K block.
#[inline]
pub fn unpack_scales(scales: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for j in 0..16 {
        let low = if j < 8 {
            scales[j] & 0x0F
        } else {
            scales[j - 8] >> 4
        };
        let high = (scales[8 + (j % 4)] >> (2 * (j / 4))) & 3;
        out[j] = ((low | (high << 4)) as i8).wrapping_sub(32);
    }
    out
}

/// `x = d·sc·(q − 4·!hbit)` with the signed 6-bit scale of each sub-block of 16.
pub fn dequantize(x: &[u8], y: &mut [f32]) {
    let blocks: &[BlockQ3K] = cast_slice(x);
    for (b, out) in blocks.iter().zip(y.chunks_exact_mut(QK_K)) {
        let d_all = b.d.to_f32();
        let scales = unpack_scales(&b.scales);
        walk_2bit(&b.qs, |e, is, idx, plane, q| {
            let dl = d_all * scales[is] as f32;
            out[e] = dl * value(b, idx, plane, q) as f32;
        });
    }
}

/// The signed 3-bit value of an element: its 2 low bits `q`, minus 4 where its high bit (bit
/// `plane` of `hmask[idx]`) is clear.
#[inline]
fn value(b: &BlockQ3K, idx: usize, plane: usize, q: u8) -> i32 {
    q as i32
        - if b.hmask[idx] & (1 << plane) != 0 {
            0
        } else {
            4
        }
}

/// Symmetric 3-bit-style quantization to `-nmax..nmax` (stored as `0..2·nmax`), refined by
/// moving single quants while that lowers the `x²`-weighted error (ggml's `make_q3_quants` with
/// `do_rmse`). Returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [u8]) -> f32 {
    let (max, amax) = signed_max(x);
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut li = [0i32; 16];
    let li = &mut li[..x.len()];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (q, &v) in li.iter_mut().zip(x) {
        *q = clamped(iscale * v, -nmax, nmax - 1);
        let w = v * v;
        sumlx += w * v * *q as f32;
        suml2 += w * *q as f32 * *q as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (q, &v) in li.iter_mut().zip(x) {
            let w = v * v;
            let mut slx = sumlx - w * v * *q as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * *q as f32 * *q as f32;
                let new = clamped(v * sl2 / slx, -nmax, nmax - 1);
                if new != *q {
                    slx += w * v * new as f32;
                    sl2 += w * new as f32 * new as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *q = new;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (o, &q) in l.iter_mut().zip(li.iter()) {
        *o = (q + nmax) as u8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// As ggml's `quantize_row_q3_K_ref`.
pub fn quantize(x: &[f32], y: &mut [u8]) {
    quantize_blocks(x, y, QK_K, |xs, b: &mut BlockQ3K| {
        let mut l = [0u8; QK_K];
        let scales = fit_sixteens(xs, &mut l, |g, lg| make_q3_quants(4, g, lg));
        let (max_scale, _) = signed_max(&scales);
        *b = BlockQ3K::zeroed();
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let q = (nearest_int(iscale * s).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    b.scales[j] = q & 0x0F;
                } else {
                    b.scales[j - 8] |= (q & 0x0F) << 4;
                }
                b.scales[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
            }
            b.d = f16::from_f32(1.0 / iscale);
        }
        let stored = unpack_scales(&b.scales);
        for (j, (g, lg)) in xs.chunks_exact(16).zip(l.chunks_exact_mut(16)).enumerate() {
            let d = b.d.to_f32() * stored[j] as f32;
            if d == 0.0 {
                continue;
            }
            for (o, &v) in lg.iter_mut().zip(g) {
                *o = (clamped(v / d, -4, 3) + 4) as u8;
            }
        }
        // The high bit of element j goes to bit j / 32 of hmask[j % 32].
        for (j, q) in l.iter_mut().enumerate() {
            if *q > 3 {
                b.hmask[j % 32] |= 1 << (j / 32);
                *q -= 4;
            }
        }
        pack_2bit(&l, &mut b.qs);
    });
}

/// llama.cpp's `ggml_vec_dot_q3_K_q8_K`: the exact super-block integer `isum = Σ sc·q·q8`, then
/// `sumf += f32(x.d)·y.d·isum` per super-block.
pub fn vec_dot(n: usize, x: &[u8], y: &[u8]) -> f32 {
    let (x, y) = operands::<BlockQ3K>(n, x, y);
    let mut sumf = 0.0f32;
    for (a, b) in x.iter().zip(y) {
        let scales = unpack_scales(&a.scales);
        let mut isum = 0i32;
        walk_2bit(&a.qs, |e, is, idx, plane, q| {
            isum += scales[is] as i32 * value(a, idx, plane, q) * b.qs[e] as i32;
        });
        sumf += a.d.to_f32() * b.d * isum as f32;
    }
    sumf
}
