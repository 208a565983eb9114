//! The attention kernels over [`Lanes`], instantiated per instruction set next to the
//! elementwise ones. Same bits as [`super::scalar`]; see the notes on each function for how the
//! work is arranged around the reference's order.

use super::{HeadRows, Score, TiledHead, TiledRow, VecState, MAX_HEAD_DIM, TILE_KV};
use crate::vec::lanes::{self, dot64, expf_poly, Lanes};
use half::f16;
use std::cell::Cell;

/// Cells whose scores the vector path computes before running their (sequential) updates.
const BLOCK: usize = 4;

/// [`super::scalar::fa_vec`]. The cells are taken in blocks of [`BLOCK`]: their dot products
/// first (independent of each other), then the scalar softmax bookkeeping with its `expf` calls,
/// then the accumulator updates in cell order with the accumulator held in registers, four
/// vectors of it at a time.
#[inline(always)]
pub(crate) fn fa_vec<L: Lanes, I: Iterator<Item = usize>>(
    l: L,
    q: &[f32],
    k: HeadRows,
    v: HeadRows,
    mut cells: I,
    score: Score,
    st: &mut VecState,
) {
    let (dk, dv) = (k.dim, v.dim);
    assert!(dk <= MAX_HEAD_DIM && dv <= MAX_HEAD_DIM);
    let mut q16 = [0f32; MAX_HEAD_DIM];
    lanes::round_f16(l, &q[..dk], &mut q16[..dk]);
    let q16 = &q16[..dk];
    let acc = &mut st.acc[..dv];
    let w = L::W;
    let nv = dv - dv % w;
    loop {
        let mut cs = [0usize; BLOCK];
        let mut nb = 0;
        while nb < BLOCK {
            match cells.next() {
                Some(c) => {
                    cs[nb] = c;
                    nb += 1;
                }
                None => break,
            }
        }
        if nb == 0 {
            break;
        }
        let mut sc = [0f32; BLOCK];
        for i in 0..nb {
            sc[i] = score.apply(dot64(l, dk, q16, k.row(cs[i])));
        }
        let mut ms = [1f32; BLOCK];
        let mut vs = [1f32; BLOCK];
        let mut up = [false; BLOCK];
        for i in 0..nb {
            let s = sc[i];
            if s > st.m {
                let old = st.m;
                st.m = s;
                ms[i] = (old - s).exp();
                up[i] = true;
            } else {
                vs[i] = (s - st.m).exp();
            }
            st.s = st.s.mul_add(ms[i], vs[i]);
        }
        let mut vr: [&[f16]; BLOCK] = [&[]; BLOCK];
        for i in 0..nb {
            vr[i] = v.row(cs[i]);
        }
        let mut d = 0;
        while d + 4 * w <= nv {
            vec_update::<L, 4>(l, acc, d, &vr[..nb], &up, &ms, &vs);
            d += 4 * w;
        }
        while d < nv {
            vec_update::<L, 1>(l, acc, d, &vr[..nb], &up, &ms, &vs);
            d += w;
        }
        for d in nv..dv {
            let mut a = acc[d];
            for i in 0..nb {
                if up[i] {
                    a = f16::from_f32(a * ms[i]).to_f32();
                }
                a = f16::from_f32(vr[i][d].to_f32().mul_add(vs[i], a)).to_f32();
            }
            acc[d] = a;
        }
    }
}

/// `N` vectors of the f16 accumulator at `d` through the block's cells in order.
#[inline(always)]
fn vec_update<L: Lanes, const N: usize>(
    l: L,
    acc: &mut [f32],
    d: usize,
    vr: &[&[f16]],
    up: &[bool; BLOCK],
    ms: &[f32; BLOCK],
    vs: &[f32; BLOCK],
) {
    let w = L::W;
    let mut a = [l.zero(); N];
    for j in 0..N {
        a[j] = l.load(&acc[d + j * w..]);
    }
    for (i, row) in vr.iter().enumerate() {
        if up[i] {
            let m = l.splat(ms[i]);
            for j in 0..N {
                a[j] = l.round_h(l.mul(a[j], m));
            }
        }
        let s = l.splat(vs[i]);
        for j in 0..N {
            a[j] = l.round_h(l.fma(l.load_h(&row[d + j * w..]), s, a[j]));
        }
    }
    for j in 0..N {
        l.store(&mut acc[d + j * w..], a[j]);
    }
}

/// Reused buffers of [`fa_tiled`], one set per thread.
#[derive(Default)]
struct TiledScratch {
    f: Vec<f32>,
    masks: Vec<u64>,
    skip: Vec<bool>,
}

thread_local! {
    static SCRATCH: Cell<TiledScratch> = const {
        Cell::new(TiledScratch { f: Vec::new(), masks: Vec::new(), skip: Vec::new() })
    };
}

/// [`super::scalar::fa_tiled`] for all `rows` at once. Rows live in vector lanes (padded to a
/// multiple of 16): the queries are transposed once (`qt[d][row]`); per tile, the K and V rows
/// the block sees are widened to f32 once; the scores `S[cell][row]` are a small matrix product
/// in which each score is still its own `fma` chain over `d` in order; the maximum, the
/// exponentials and the reference's sum tree over each 16 cells run lane-wise over rows; the
/// per-row bookkeeping (`expf` of the running maximum, the f64 sums) is scalar; the output rows
/// `vkq[row][d]` gain `fma(v_c, e_c, ·)` cell by cell in order, skipping cells the row does not
/// see (blocks of rows at once where every row sees the whole tile).
#[inline(always)]
pub(crate) fn fa_tiled<L: Lanes>(
    l: L,
    h: &TiledHead,
    q: &[f32],
    rows: &[TiledRow],
    out: &mut [f32],
) {
    let (dk, dv) = (h.k.dim, h.v.dim);
    let nr = rows.len();
    if nr == 0 {
        return;
    }
    let w = L::W;
    let rp = nr.next_multiple_of(16);
    let mut sc = SCRATCH.with(|c| c.take());
    let need = dk * rp + TILE_KV * (dk + dv + rp) + nr * dv + 6 * rp + 2 * nr;
    if sc.f.len() < need {
        sc.f.resize(need, 0.0);
    }
    sc.masks.clear();
    sc.masks.resize(nr, 0);
    sc.skip.clear();
    sc.skip.resize(nr, false);
    {
        let TiledScratch { f, masks, skip } = &mut sc;
        let (qt, rest) = f.split_at_mut(dk * rp);
        let (kf, rest) = rest.split_at_mut(TILE_KV * dk);
        let (vf, rest) = rest.split_at_mut(TILE_KV * dv);
        let (s, rest) = rest.split_at_mut(TILE_KV * rp);
        let (vkq, rest) = rest.split_at_mut(nr * dv);
        let (rsum, rest) = rest.split_at_mut(4 * rp);
        let (tmax, rest) = rest.split_at_mut(rp);
        let (mvec, rest) = rest.split_at_mut(rp);
        let (m, rest) = rest.split_at_mut(nr);
        let (ssum, _) = rest.split_at_mut(nr);

        qt.fill(0.0);
        for (r, row) in rows.iter().enumerate() {
            for (d, &x) in q[row.q..][..dk].iter().enumerate() {
                qt[d * rp + r] = x;
            }
        }
        vkq.fill(0.0);
        m.fill(f32::NEG_INFINITY);
        ssum.fill(0.0);
        mvec.fill(0.0);

        for ic in (0..h.n_kv).step_by(TILE_KV) {
            let tile = TILE_KV.min(h.n_kv - ic);
            let full = if tile == 64 {
                u64::MAX
            } else {
                (1u64 << tile) - 1
            };
            let mut any = 0u64;
            let mut all_full = true;
            for (mk, row) in masks.iter_mut().zip(rows) {
                *mk = h.mask(row.pos, ic, tile);
                any |= *mk;
                all_full &= *mk == full;
            }
            if any == 0 {
                continue;
            }
            // The K rows somebody sees, as f32; zeros elsewhere (their scores are replaced).
            for c in 0..TILE_KV {
                let dst = &mut kf[c * dk..][..dk];
                if (any >> c) & 1 != 0 {
                    let r = h.position(ic + c).expect("a visible cell holds a position");
                    lanes::from_f16(l, h.k.row(r), dst);
                } else {
                    dst.fill(0.0);
                }
            }
            scores(l, kf, dk, qt, rp, s, any);
            for c in 0..TILE_KV {
                let srow = &mut s[c * rp..][..rp];
                if (any >> c) & 1 == 0 {
                    srow.fill(f32::NEG_INFINITY);
                } else {
                    finish_scores(l, h.score, srow);
                }
            }
            if !all_full {
                for (r, &mk) in masks.iter().enumerate() {
                    let mut hidden = !mk & any;
                    while hidden != 0 {
                        let c = hidden.trailing_zeros() as usize;
                        hidden &= hidden - 1;
                        s[c * rp + r] = f32::NEG_INFINITY;
                    }
                }
            }
            // Tile maxima per row.
            for j in (0..rp).step_by(w) {
                let mut mx = [l.splat(f32::NEG_INFINITY); 4];
                for c in (0..TILE_KV).step_by(4) {
                    for (u, x) in mx.iter_mut().enumerate() {
                        *x = l.max(l.load(&s[(c + u) * rp + j..]), *x);
                    }
                }
                let t = l.max(l.max(mx[0], mx[1]), l.max(mx[2], mx[3]));
                l.store(&mut tmax[j..], t);
            }
            // Per row: skip, new maximum, rescale.
            for r in 0..nr {
                let t = tmax[r];
                if t == f32::NEG_INFINITY {
                    skip[r] = true;
                    continue;
                }
                skip[r] = false;
                let mn = m[r].max(t);
                if mn > m[r] {
                    let ms = (m[r] - mn).exp();
                    lanes::scale(l, &mut vkq[r * dv..][..dv], ms);
                    ssum[r] *= ms;
                }
                m[r] = mn;
                mvec[r] = mn;
            }
            // e = expf_poly(S - M') in place, and the reference's sum tree over each 16 cells.
            for j in (0..rp).step_by(w) {
                let mv = l.load(&mvec[j..]);
                for g in 0..4 {
                    let mut e = [l.zero(); 16];
                    for (i, ei) in e.iter_mut().enumerate() {
                        let o = (16 * g + i) * rp + j;
                        let x = expf_poly(l, l.sub(l.load(&s[o..]), mv));
                        l.store(&mut s[o..], x);
                        *ei = x;
                    }
                    let mut t = [l.zero(); 8];
                    for i in 0..8 {
                        t[i] = l.add(e[i + 8], e[i]);
                    }
                    let mut u = [l.zero(); 4];
                    for i in 0..4 {
                        u[i] = l.add(t[i + 4], t[i]);
                    }
                    let r = l.add(l.add(u[0], u[2]), l.add(u[1], u[3]));
                    l.store(&mut rsum[g * rp + j..], r);
                }
            }
            for r in 0..nr {
                if skip[r] {
                    continue;
                }
                let mut sum = 0f64;
                for g in 0..4 {
                    sum += rsum[g * rp + r] as f64;
                }
                ssum[r] = (ssum[r] as f64 + sum) as f32;
            }
            // The V rows somebody sees, as f32, then the output rows.
            for c in 0..tile {
                if (any >> c) & 1 != 0 {
                    let r = h.position(ic + c).expect("a visible cell holds a position");
                    lanes::from_f16(l, h.v.row(r), &mut vf[c * dv..][..dv]);
                }
            }
            let v = VTile { vf, dv, s, rp };
            if all_full && !skip.contains(&true) {
                vacc_full(l, v, tile, vkq, nr);
            } else {
                for r in 0..nr {
                    if !skip[r] {
                        vacc_row(l, v, r, masks[r], &mut vkq[r * dv..][..dv]);
                    }
                }
            }
        }
        for (r, row) in rows.iter().enumerate() {
            let inv = if ssum[r] == 0.0 { 0.0 } else { 1.0 / ssum[r] };
            lanes::scale_into(l, &vkq[r * dv..][..dv], inv, &mut out[row.out..][..dv]);
        }
    }
    SCRATCH.with(|c| c.set(sc));
}

/// `S[c][row] = Σ_d fma(kf[c][d], qt[d][row], ·)` for the 4-cell groups `any` touches, in
/// blocks of 4 cells × `RB` row vectors held in registers over the `d` loop.
#[inline(always)]
fn scores<L: Lanes>(l: L, kf: &[f32], dk: usize, qt: &[f32], rp: usize, s: &mut [f32], any: u64) {
    let rv = rp / L::W;
    let rb_max = if L::W == 8 { 2 } else { 4 };
    for c0 in (0..TILE_KV).step_by(4) {
        if (any >> c0) & 0xf == 0 {
            continue;
        }
        let mut j = 0;
        while j < rv {
            let n = (rv - j).min(rb_max);
            match n {
                1 => score_block::<L, 1>(l, kf, dk, qt, rp, s, c0, j),
                2 => score_block::<L, 2>(l, kf, dk, qt, rp, s, c0, j),
                3 => score_block::<L, 3>(l, kf, dk, qt, rp, s, c0, j),
                _ => score_block::<L, 4>(l, kf, dk, qt, rp, s, c0, j),
            }
            j += n;
        }
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn score_block<L: Lanes, const RB: usize>(
    l: L,
    kf: &[f32],
    dk: usize,
    qt: &[f32],
    rp: usize,
    s: &mut [f32],
    c0: usize,
    j0: usize,
) {
    let w = L::W;
    let mut acc = [[l.zero(); RB]; 4];
    let k0 = &kf[c0 * dk..][..dk];
    let k1 = &kf[(c0 + 1) * dk..][..dk];
    let k2 = &kf[(c0 + 2) * dk..][..dk];
    let k3 = &kf[(c0 + 3) * dk..][..dk];
    let qt = &qt[..dk * rp];
    for d in 0..dk {
        let kb = [
            l.splat(k0[d]),
            l.splat(k1[d]),
            l.splat(k2[d]),
            l.splat(k3[d]),
        ];
        let qrow = &qt[d * rp + j0 * w..][..RB * w];
        for jj in 0..RB {
            let qv = l.load(&qrow[jj * w..]);
            for i in 0..4 {
                acc[i][jj] = l.fma(kb[i], qv, acc[i][jj]);
            }
        }
    }
    for i in 0..4 {
        for jj in 0..RB {
            l.store(&mut s[(c0 + i) * rp + (j0 + jj) * w..], acc[i][jj]);
        }
    }
}

/// Dot products to scores ([`Score::apply`]) in place.
#[inline(always)]
fn finish_scores<L: Lanes>(l: L, score: Score, x: &mut [f32]) {
    if score.softcap != 0.0 {
        for v in x.iter_mut() {
            *v = score.apply(*v);
        }
        return;
    }
    let nv = x.len() - x.len() % L::W;
    let sc = l.splat(score.scale);
    for c in x[..nv].chunks_exact_mut(L::W) {
        let y = l.add(l.mul(l.load(c), sc), l.zero());
        l.store(c, y);
    }
    for v in &mut x[nv..] {
        *v = score.apply(*v);
    }
}

/// What the output rows of a tile are made from: the V rows it sees as f32 (`vf[c][d]`, `dv`
/// wide) and the exponentiated scores (`s[c][row]`, `rp` wide).
#[derive(Clone, Copy)]
struct VTile<'a> {
    vf: &'a [f32],
    dv: usize,
    s: &'a [f32],
    rp: usize,
}

/// Every row sees every cell of the tile: rows in blocks, each output vector chained over the
/// cells in order.
#[inline(always)]
fn vacc_full<L: Lanes>(l: L, v: VTile<'_>, tile: usize, vkq: &mut [f32], nr: usize) {
    const RB: usize = 4;
    let dv = v.dv;
    let w = L::W;
    let nv = dv - dv % w;
    let full = if tile == 64 {
        u64::MAX
    } else {
        (1u64 << tile) - 1
    };
    let mut r = 0;
    while r + RB <= nr {
        let mut d = 0;
        if L::W == 8 {
            while d + 2 * w <= nv {
                vacc_block::<L, RB, 2>(l, v, tile, vkq, r, d);
                d += 2 * w;
            }
        } else {
            while d + 4 * w <= nv {
                vacc_block::<L, RB, 4>(l, v, tile, vkq, r, d);
                d += 4 * w;
            }
        }
        while d < nv {
            vacc_block::<L, RB, 1>(l, v, tile, vkq, r, d);
            d += w;
        }
        for rr in r..r + RB {
            vacc_tail(v, rr, full, &mut vkq[rr * dv..][..dv], nv);
        }
        r += RB;
    }
    for rr in r..nr {
        vacc_row(l, v, rr, full, &mut vkq[rr * dv..][..dv]);
    }
}

#[inline(always)]
fn vacc_block<L: Lanes, const RB: usize, const DB: usize>(
    l: L,
    v: VTile<'_>,
    tile: usize,
    vkq: &mut [f32],
    r0: usize,
    d0: usize,
) {
    let VTile { vf, dv, s, rp } = v;
    let w = L::W;
    let mut a = [[l.zero(); DB]; RB];
    for i in 0..RB {
        for k in 0..DB {
            a[i][k] = l.load(&vkq[(r0 + i) * dv + d0 + k * w..]);
        }
    }
    for c in 0..tile {
        let vrow = &vf[c * dv + d0..][..DB * w];
        let mut vv = [l.zero(); DB];
        for k in 0..DB {
            vv[k] = l.load(&vrow[k * w..]);
        }
        let srow = &s[c * rp + r0..][..RB];
        for i in 0..RB {
            let e = l.splat(srow[i]);
            for k in 0..DB {
                a[i][k] = l.fma(vv[k], e, a[i][k]);
            }
        }
    }
    for i in 0..RB {
        for k in 0..DB {
            l.store(&mut vkq[(r0 + i) * dv + d0 + k * w..], a[i][k]);
        }
    }
}

/// One row's output over the cells set in `mask`, in order.
#[inline(always)]
fn vacc_row<L: Lanes>(l: L, v: VTile<'_>, r: usize, mask: u64, acc: &mut [f32]) {
    let w = L::W;
    let nv = v.dv - v.dv % w;
    let mut d = 0;
    while d + 4 * w <= nv {
        vacc_row_block::<L, 4>(l, v, r, mask, acc, d);
        d += 4 * w;
    }
    while d < nv {
        vacc_row_block::<L, 1>(l, v, r, mask, acc, d);
        d += w;
    }
    vacc_tail(v, r, mask, acc, nv);
}

#[inline(always)]
fn vacc_row_block<L: Lanes, const DB: usize>(
    l: L,
    v: VTile<'_>,
    r: usize,
    mask: u64,
    acc: &mut [f32],
    d0: usize,
) {
    let VTile { vf, dv, s, rp } = v;
    let w = L::W;
    let mut a = [l.zero(); DB];
    for k in 0..DB {
        a[k] = l.load(&acc[d0 + k * w..]);
    }
    let mut bits = mask;
    while bits != 0 {
        let c = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let e = l.splat(s[c * rp + r]);
        let vrow = &vf[c * dv + d0..][..DB * w];
        for k in 0..DB {
            a[k] = l.fma(l.load(&vrow[k * w..]), e, a[k]);
        }
    }
    for k in 0..DB {
        l.store(&mut acc[d0 + k * w..], a[k]);
    }
}

/// Output elements `d0..dv` (fewer than a vector) of one row, scalar.
#[inline(always)]
fn vacc_tail(v: VTile<'_>, r: usize, mask: u64, acc: &mut [f32], d0: usize) {
    let VTile { vf, dv, s, rp } = v;
    for d in d0..dv {
        let mut a = acc[d];
        let mut bits = mask;
        while bits != 0 {
            let c = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            a = vf[c * dv + d].mul_add(s[c * rp + r], a);
        }
        acc[d] = a;
    }
}
