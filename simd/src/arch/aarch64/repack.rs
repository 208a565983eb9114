//! Four-row interleaved ("x4") layouts of Q4_0 and Q8_0 weights, and the matrix × vector product
//! over them with by-element SDOT: one 16-byte weight load feeds four output rows, and the four
//! i32 lanes of the accumulator *are* the four rows, so no horizontal sums are needed.
//!
//! This is an opt-in extra next to the per-row `vec_dot` kernels: a caller repacks a weight
//! matrix once (the packed copy has exactly the size of the original, so the original can be
//! dropped) and calls [`gemv_q4_0x4_q8_0`] / [`gemv_q8_0x4_q8_0`] instead of one `vec_dot` per row.
//!
//! # Layout
//! Rows are taken in groups of four. A group is stored contiguously, one packed block per 32
//! columns:
//!
//! * Q4_0x4 (72 bytes = 4 × 18): the four rows' f16 scales (`d[r]`, 8 bytes), then 64 bytes of
//!   quants: for `g` in 0..4 and row `r` in 0..4, the four bytes `qs_r[4g..4g + 4]` of row `r`'s
//!   block, each XORed with `0x88`. A byte's low nibble is element `4g + k` and its high nibble
//!   element `16 + 4g + k`, as in Q4_0. The XOR turns the unsigned nibble `u` into the 4-bit
//!   two's complement of `u - 8`, so `byte << 4` and `byte & 0xF0`, read as i8, are `16 (u - 8)`:
//!   one instruction per 16 bytes to get signed quants (the 16 is folded into the float scale).
//! * Q8_0x4 (136 bytes = 4 × 34): the four f16 scales, then 128 bytes: for `g` in 0..8 and row
//!   `r`, the bytes `qs_r[4g..4g + 4]`.
//!
//! In both, 16 consecutive quant bytes hold four columns of four rows: the by-element SDOT with
//! 32-bit lane `g mod 4` of the activations multiplies each row's four bytes by the same four
//! activation bytes.

use super::common::{f16_to_f32, f16x4_to_f32, sdot_lane};
use crate::blocks::{BlockQ4_0, BlockQ8_0, QK};
use bytemuck::cast_slice;
use core::arch::aarch64::*;

/// Bytes of one packed Q4_0x4 block (four rows × 32 columns).
pub const Q4_0X4_BLOCK: usize = 4 * 18;
/// Bytes of one packed Q8_0x4 block (four rows × 32 columns).
pub const Q8_0X4_BLOCK: usize = 4 * 34;

/// The number of rows of `n` columns in `bytes` of blocks of `block_size` bytes, checked.
fn row_count(n: usize, bytes: usize, block_size: usize) -> usize {
    assert!(
        n > 0 && n.is_multiple_of(QK),
        "row length {n} is not a positive multiple of {QK}"
    );
    let row = n / QK * block_size;
    assert_eq!(
        bytes % row,
        0,
        "{bytes} bytes are not whole rows of {row} bytes"
    );
    let rows = bytes / row;
    assert_eq!(
        rows % 4,
        0,
        "{rows} rows: the x4 layouts need a multiple of 4"
    );
    rows
}

/// Repack Q4_0 `rows` (a row-major matrix of `n` columns; the row count must be a multiple of 4)
/// into the Q4_0x4 layout. The result has the same size as the input.
pub fn repack_q4_0x4(n: usize, rows: &[u8]) -> Vec<u8> {
    let nrows = row_count(n, rows.len(), 18);
    let nb = n / QK;
    let blocks: &[BlockQ4_0] = cast_slice(rows);
    let mut out = Vec::with_capacity(rows.len());
    for group in blocks.chunks_exact(4 * nb).take(nrows / 4) {
        for b in 0..nb {
            let src: [&BlockQ4_0; 4] = core::array::from_fn(|r| &group[r * nb + b]);
            for s in &src {
                out.extend_from_slice(&s.d.to_le_bytes());
            }
            for g in 0..4 {
                for s in &src {
                    out.extend(s.qs[4 * g..4 * g + 4].iter().map(|q| q ^ 0x88));
                }
            }
        }
    }
    debug_assert_eq!(out.len(), rows.len());
    out
}

/// Repack Q8_0 `rows` (row count a multiple of 4) into the Q8_0x4 layout, of the same size.
pub fn repack_q8_0x4(n: usize, rows: &[u8]) -> Vec<u8> {
    let nrows = row_count(n, rows.len(), 34);
    let nb = n / QK;
    let blocks: &[BlockQ8_0] = cast_slice(rows);
    let mut out = Vec::with_capacity(rows.len());
    for group in blocks.chunks_exact(4 * nb).take(nrows / 4) {
        for b in 0..nb {
            let src: [&BlockQ8_0; 4] = core::array::from_fn(|r| &group[r * nb + b]);
            for s in &src {
                out.extend_from_slice(&s.d.to_le_bytes());
            }
            for g in 0..8 {
                for s in &src {
                    out.extend(s.qs[4 * g..4 * g + 4].iter().map(|&q| q as u8));
                }
            }
        }
    }
    debug_assert_eq!(out.len(), rows.len());
    out
}

/// Checks shared by the products: the activation blocks, and the number of output rows.
fn gemv_args<'a>(
    n: usize,
    packed: &[u8],
    block: usize,
    act: &'a [u8],
    out: &[f32],
) -> &'a [BlockQ8_0] {
    let rows = row_count(n, packed.len(), block / 4);
    assert_eq!(out.len(), rows, "output length vs packed rows");
    cast_slice(&act[..n / QK * 34])
}

/// `out[r] = row r · act` for a Q4_0x4-packed matrix of `n` columns and a Q8_0 activation row.
/// Uses by-element SDOT where the CPU has `dotprod`, else [`gemv_q4_0x4_q8_0_scalar`].
pub fn gemv_q4_0x4_q8_0(n: usize, packed: &[u8], act: &[u8], out: &mut [f32]) {
    if !std::arch::is_aarch64_feature_detected!("dotprod") {
        return gemv_q4_0x4_q8_0_scalar(n, packed, act, out);
    }
    let y = gemv_args(n, packed, Q4_0X4_BLOCK, act, out);
    let group = y.len() * Q4_0X4_BLOCK;
    for (w, o) in packed.chunks_exact(group).zip(out.chunks_exact_mut(4)) {
        // SAFETY: dotprod was detected above; `w` holds `y.len()` packed blocks, which is all the
        // kernel reads, and `o` has room for the four results.
        unsafe { vst1q_f32(o.as_mut_ptr(), q4_0x4_group(w, y)) }
    }
}

/// `out[r] = row r · act` for a Q8_0x4-packed matrix and a Q8_0 activation row. Uses
/// by-element SDOT where the CPU has `dotprod`, else [`gemv_q8_0x4_q8_0_scalar`].
pub fn gemv_q8_0x4_q8_0(n: usize, packed: &[u8], act: &[u8], out: &mut [f32]) {
    if !std::arch::is_aarch64_feature_detected!("dotprod") {
        return gemv_q8_0x4_q8_0_scalar(n, packed, act, out);
    }
    let y = gemv_args(n, packed, Q8_0X4_BLOCK, act, out);
    let group = y.len() * Q8_0X4_BLOCK;
    for (w, o) in packed.chunks_exact(group).zip(out.chunks_exact_mut(4)) {
        // SAFETY: as in `gemv_q4_0x4_q8_0`.
        unsafe { vst1q_f32(o.as_mut_ptr(), q8_0x4_group(w, y)) }
    }
}

/// The four scales at the start of a packed block, as f32.
#[inline(always)]
unsafe fn scales4(p: *const u8) -> float32x4_t {
    f16x4_to_f32(vreinterpret_u16_u8(vld1_u8(p)))
}

/// One Q4_0x4 block against one Q8_0 block: the four rows' integer dots, times 16.
#[inline(always)]
unsafe fn q4_0x4_block(p: *const u8, y: &BlockQ8_0) -> int32x4_t {
    let ya = vld1q_s8(y.qs.as_ptr());
    let yb = vld1q_s8(y.qs.as_ptr().add(16));
    let hi_mask = vdupq_n_s8(0xF0u8 as i8);
    let w = [
        vld1q_s8(p.add(8) as *const i8),
        vld1q_s8(p.add(24) as *const i8),
        vld1q_s8(p.add(40) as *const i8),
        vld1q_s8(p.add(56) as *const i8),
    ];
    let mut s = vdupq_n_s32(0);
    s = sdot_lane::<0>(s, vshlq_n_s8::<4>(w[0]), ya);
    s = sdot_lane::<0>(s, vandq_s8(w[0], hi_mask), yb);
    s = sdot_lane::<1>(s, vshlq_n_s8::<4>(w[1]), ya);
    s = sdot_lane::<1>(s, vandq_s8(w[1], hi_mask), yb);
    s = sdot_lane::<2>(s, vshlq_n_s8::<4>(w[2]), ya);
    s = sdot_lane::<2>(s, vandq_s8(w[2], hi_mask), yb);
    s = sdot_lane::<3>(s, vshlq_n_s8::<4>(w[3]), ya);
    sdot_lane::<3>(s, vandq_s8(w[3], hi_mask), yb)
}

/// One group of four Q4_0x4 rows against the activations: the four dot products.
///
/// # Safety
/// The CPU must have `dotprod`; `w` must hold at least `y.len()` packed blocks.
#[target_feature(enable = "dotprod")]
unsafe fn q4_0x4_group(w: &[u8], y: &[BlockQ8_0]) -> float32x4_t {
    debug_assert!(w.len() >= y.len() * Q4_0X4_BLOCK);
    let p = w.as_ptr();
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    let mut b = 0;
    // No closure for the step: closures are not `inline(always)`, and the SDOT assembly must
    // stay inside this `dotprod` function. The integer sums are 16 × the true ones (see the
    // layout): the 1/16 is folded into the scale, exactly.
    #[inline(always)]
    unsafe fn step(p: *const u8, y: &BlockQ8_0) -> (float32x4_t, float32x4_t) {
        let d = vmulq_n_f32(scales4(p), f16_to_f32(y.d.to_bits()) * 0.0625);
        (vcvtq_f32_s32(q4_0x4_block(p, y)), d)
    }
    let pairs = y.chunks_exact(2);
    let last = pairs.remainder().first();
    for y2 in pairs {
        let (s0, d0) = step(p.add(b * Q4_0X4_BLOCK), &y2[0]);
        let (s1, d1) = step(p.add((b + 1) * Q4_0X4_BLOCK), &y2[1]);
        acc0 = vfmaq_f32(acc0, s0, d0);
        acc1 = vfmaq_f32(acc1, s1, d1);
        b += 2;
    }
    if let Some(yb) = last {
        let (s0, d0) = step(p.add(b * Q4_0X4_BLOCK), yb);
        acc0 = vfmaq_f32(acc0, s0, d0);
    }
    vaddq_f32(acc0, acc1)
}

/// One Q8_0x4 block against one Q8_0 block: the four rows' integer dots.
#[inline(always)]
unsafe fn q8_0x4_block(p: *const u8, y: &BlockQ8_0) -> int32x4_t {
    let ya = vld1q_s8(y.qs.as_ptr());
    let yb = vld1q_s8(y.qs.as_ptr().add(16));
    let q = p.add(8) as *const i8;
    let mut s = vdupq_n_s32(0);
    s = sdot_lane::<0>(s, vld1q_s8(q), ya);
    s = sdot_lane::<1>(s, vld1q_s8(q.add(16)), ya);
    s = sdot_lane::<2>(s, vld1q_s8(q.add(32)), ya);
    s = sdot_lane::<3>(s, vld1q_s8(q.add(48)), ya);
    s = sdot_lane::<0>(s, vld1q_s8(q.add(64)), yb);
    s = sdot_lane::<1>(s, vld1q_s8(q.add(80)), yb);
    s = sdot_lane::<2>(s, vld1q_s8(q.add(96)), yb);
    sdot_lane::<3>(s, vld1q_s8(q.add(112)), yb)
}

/// One group of four Q8_0x4 rows against the activations.
///
/// # Safety
/// The CPU must have `dotprod`; `w` must hold at least `y.len()` packed blocks.
#[target_feature(enable = "dotprod")]
unsafe fn q8_0x4_group(w: &[u8], y: &[BlockQ8_0]) -> float32x4_t {
    debug_assert!(w.len() >= y.len() * Q8_0X4_BLOCK);
    let p = w.as_ptr();
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    let mut b = 0;
    #[inline(always)]
    unsafe fn step(p: *const u8, y: &BlockQ8_0) -> (float32x4_t, float32x4_t) {
        let d = vmulq_n_f32(scales4(p), f16_to_f32(y.d.to_bits()));
        (vcvtq_f32_s32(q8_0x4_block(p, y)), d)
    }
    let pairs = y.chunks_exact(2);
    let last = pairs.remainder().first();
    for y2 in pairs {
        let (s0, d0) = step(p.add(b * Q8_0X4_BLOCK), &y2[0]);
        let (s1, d1) = step(p.add((b + 1) * Q8_0X4_BLOCK), &y2[1]);
        acc0 = vfmaq_f32(acc0, s0, d0);
        acc1 = vfmaq_f32(acc1, s1, d1);
        b += 2;
    }
    if let Some(yb) = last {
        let (s0, d0) = step(p.add(b * Q8_0X4_BLOCK), yb);
        acc0 = vfmaq_f32(acc0, s0, d0);
    }
    vaddq_f32(acc0, acc1)
}

fn f16_le(p: &[u8]) -> f32 {
    half::f16::from_le_bytes([p[0], p[1]]).to_f32()
}

/// Plain-Rust [`gemv_q4_0x4_q8_0`] over the packed layout: the definition of the layout, and the
/// fallback without `dotprod`. Its float steps are those of the scalar per-row `vec_dot`
/// (llama.cpp's eight lanes of four-element sums, see [`crate::dot::scalar`]), so it returns bit
/// for bit what that returns on the unpacked rows.
pub fn gemv_q4_0x4_q8_0_scalar(n: usize, packed: &[u8], act: &[u8], out: &mut [f32]) {
    let y = gemv_args(n, packed, Q4_0X4_BLOCK, act, out);
    let group = y.len() * Q4_0X4_BLOCK;
    for (w, o) in packed.chunks_exact(group).zip(out.chunks_exact_mut(4)) {
        let mut acc = [[0f32; 8]; 4];
        for (blk, yb) in w.chunks_exact(Q4_0X4_BLOCK).zip(y) {
            let qs = &blk[8..];
            for (r, lanes) in acc.iter_mut().enumerate() {
                let d = f16_le(&blk[2 * r..]) * yb.d.to_f32();
                // Lane g (< 4) holds elements 4g..4g+4 (low nibbles), lane 4 + g elements
                // 16 + 4g.. (high nibbles).
                for g in 0..4 {
                    let (mut lo_sum, mut hi_sum) = (0i32, 0i32);
                    for k in 0..4 {
                        let byte = qs[16 * g + 4 * r + k] ^ 0x88;
                        lo_sum += ((byte & 0x0F) as i32 - 8) * yb.qs[4 * g + k] as i32;
                        hi_sum += ((byte >> 4) as i32 - 8) * yb.qs[16 + 4 * g + k] as i32;
                    }
                    lanes[g] = d.mul_add(lo_sum as f32, lanes[g]);
                    lanes[4 + g] = d.mul_add(hi_sum as f32, lanes[4 + g]);
                }
            }
        }
        for (o, lanes) in o.iter_mut().zip(&acc) {
            *o = crate::dot::scalar::hsum8(lanes);
        }
    }
}

/// Plain-Rust [`gemv_q8_0x4_q8_0`]: the layout's definition and the fallback without `dotprod`;
/// bit for bit the scalar per-row `vec_dot` on the unpacked rows (lane `g` holds elements
/// `4g..4g + 4`).
pub fn gemv_q8_0x4_q8_0_scalar(n: usize, packed: &[u8], act: &[u8], out: &mut [f32]) {
    let y = gemv_args(n, packed, Q8_0X4_BLOCK, act, out);
    let group = y.len() * Q8_0X4_BLOCK;
    for (w, o) in packed.chunks_exact(group).zip(out.chunks_exact_mut(4)) {
        let mut acc = [[0f32; 8]; 4];
        for (blk, yb) in w.chunks_exact(Q8_0X4_BLOCK).zip(y) {
            let qs = &blk[8..];
            for (r, lanes) in acc.iter_mut().enumerate() {
                let d = f16_le(&blk[2 * r..]) * yb.d.to_f32();
                for (g, lane) in lanes.iter_mut().enumerate() {
                    let mut sumi = 0i32;
                    for k in 0..4 {
                        sumi += qs[16 * g + 4 * r + k] as i8 as i32 * yb.qs[4 * g + k] as i32;
                    }
                    *lane = d.mul_add(sumi as f32, *lane);
                }
            }
        }
        for (o, lanes) in o.iter_mut().zip(&acc) {
            *o = crate::dot::scalar::hsum8(lanes);
        }
    }
}
