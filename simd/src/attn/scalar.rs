//! The scalar reference of the attention kernels: llama.cpp's arithmetic written plainly, one
//! query row and one cell at a time. The SIMD kernels must return these bits.

use super::{HeadRows, Score, TiledHead, TiledRow, VecState, MAX_HEAD_DIM, TILE_KV};
use crate::vec::scalar as vs;
use half::f16;

/// llama.cpp's vector path (`ggml_compute_forward_flash_attn_ext_f16_one_chunk`) for one query
/// row over the K/V rows `cells` (those of the visible cells, in visiting order), continuing `st`: `q16 = f16(q)`; for each cell in order,
/// `s = score(dot_f16(q16, k))`; if `s > M` then `M = s`, `ms = expf(M_old - M)`,
/// `acc = f16(acc * ms)` (`vs = 1`), else `vs = expf(s - M)` (`ms = 1`); then
/// `acc = f16(fma(v, vs, acc))` element-wise and `S = fma(S, ms, vs)`. `expf` is libm's.
pub fn fa_vec<I: Iterator<Item = usize>>(
    q: &[f32],
    k: HeadRows,
    v: HeadRows,
    cells: I,
    score: Score,
    st: &mut VecState,
) {
    let (dk, dv) = (k.dim, v.dim);
    assert!(dk <= MAX_HEAD_DIM && dv <= MAX_HEAD_DIM);
    let mut q16 = [f16::ZERO; MAX_HEAD_DIM];
    let q16 = &mut q16[..dk];
    for (d, s) in q16.iter_mut().zip(&q[..dk]) {
        *d = f16::from_f32(*s);
    }
    let acc = &mut st.acc[..dv];
    for c in cells {
        let s = score.apply(vs::dot_f16(q16, k.row(c)));
        let (mut ms, mut vsc) = (1f32, 1f32);
        if s > st.m {
            let old = st.m;
            st.m = s;
            ms = (old - s).exp();
            for a in acc.iter_mut() {
                *a = f16::from_f32(*a * ms).to_f32();
            }
        } else {
            vsc = (s - st.m).exp();
        }
        for (a, x) in acc.iter_mut().zip(v.row(c)) {
            *a = f16::from_f32(x.to_f32().mul_add(vsc, *a)).to_f32();
        }
        st.s = st.s.mul_add(ms, vsc);
    }
}

/// llama.cpp's tiled path (`ggml_compute_forward_flash_attn_ext_tiled`), one row at a time.
/// Cells `0..n_kv` are visited in tiles of [`TILE_KV`]; a tile the row sees none of leaves its
/// state unchanged. In a tile, each visible cell's score is `Σ_d fma(k_d, q_d, ·)` from 0 in `d`
/// order (f32 query, keys widened from f16), made a score by [`Score::apply`]; masked cells and
/// the padding past `n_kv` are `-inf`. With `t = max(scores)` (if `-inf`, the tile is skipped),
/// `M' = max(M, t)`; if `M' > M` then `ms = expf(M - M')` scales the output and `S`; the scores
/// become `e^(score - M')` by [`vs::soft_max_exp`] and `S = f32(f64(S) + that sum)`; then each
/// output element is `fma(v_c, e_c, ·)` chained over the tile's visible cells in order. Finally
/// `out = vkq * (1 / S)` (0 where `S == 0`).
pub fn fa_tiled(h: &TiledHead, q: &[f32], rows: &[TiledRow], out: &mut [f32]) {
    let (dk, dv) = (h.k.dim, h.v.dim);
    assert!(dv <= MAX_HEAD_DIM);
    for row in rows {
        let q = &q[row.q..][..dk];
        let mut m = f32::NEG_INFINITY;
        let mut s = 0f32;
        let mut vkq = [0f32; MAX_HEAD_DIM];
        let vkq = &mut vkq[..dv];
        let mut kq = [0f32; TILE_KV];
        for ic in (0..h.n_kv).step_by(TILE_KV) {
            let tile = TILE_KV.min(h.n_kv - ic);
            let mask = h.mask(row.pos, ic, tile);
            if mask == 0 {
                continue;
            }
            for (i, sc) in kq.iter_mut().enumerate() {
                *sc = if i < tile && (mask >> i) & 1 != 0 {
                    let kr = h.k.row(h.position(ic + i).unwrap());
                    let mut acc = 0f32;
                    for (kd, &qd) in kr.iter().zip(q) {
                        acc = kd.to_f32().mul_add(qd, acc);
                    }
                    h.score.apply(acc)
                } else {
                    f32::NEG_INFINITY
                };
            }
            tiled_softmax(&mut kq, tile, &mut m, &mut s, vkq, |i, d| {
                ((mask >> i) & 1 != 0).then(|| h.v.row(h.position(ic + i).unwrap())[d].to_f32())
            });
        }
        let inv = if s == 0.0 { 0.0 } else { 1.0 / s };
        for (o, &a) in out[row.out..][..dv].iter_mut().zip(vkq.iter()) {
            *o = a * inv;
        }
    }
}

/// The online softmax over one tile of [`fa_tiled`] for one row, once the tile's scores are in
/// `kq` (`-inf` for masked cells and for the padding past `n_kv`): nothing if none is finite;
/// else with `t = max(kq)`, `M' = max(M, t)`; if `M' > M` then `ms = expf(M - M')` scales `vkq`
/// and `S`; the scores become `e^(score - M')` by [`vs::soft_max_exp`] and
/// `S = f32(f64(S) + that sum)`; then each element `d` of `vkq` is `fma(v(i, d), e_i, ·)`
/// chained over the tile's cells `i` in order, where `v(i, d)` (element `d` of cell `i`'s
/// value) is `None` for a masked cell, which adds nothing (llama.cpp adds `0 * v`). nib's
/// attention over an f32 cache takes its tiles through this too.
pub fn tiled_softmax(
    kq: &mut [f32; TILE_KV],
    tile: usize,
    m: &mut f32,
    s: &mut f32,
    vkq: &mut [f32],
    v: impl Fn(usize, usize) -> Option<f32>,
) {
    let tmax = kq.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if tmax == f32::NEG_INFINITY {
        return;
    }
    let m_new = m.max(tmax);
    if m_new > *m {
        let ms = (*m - m_new).exp();
        for a in vkq.iter_mut() {
            *a *= ms;
        }
        *s *= ms;
    }
    *m = m_new;
    *s = (*s as f64 + vs::soft_max_exp(kq, m_new)) as f32;
    for (d, a) in vkq.iter_mut().enumerate() {
        let mut acc = *a;
        for (i, &e) in kq[..tile].iter().enumerate() {
            if let Some(x) = v(i, d) {
                acc = x.mul_add(e, acc);
            }
        }
        *a = acc;
    }
}
