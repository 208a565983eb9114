//! Weights interleaved eight rows at a time, for kernels that compute eight rows per pass (the
//! idea of llama.cpp's repacked Q4_0 layout; the arithmetic is unchanged, only where the bytes
//! are).
//!
//! A Q4_0 matrix of `rows` rows (a multiple of 8) × `nb` blocks becomes `rows / 8` groups, each
//! group `nb` interleaved blocks of [`GROUP_BLOCK`] bytes, in block order:
//!
//! ```text
//! d[0] .. d[7]            the eight rows' f16 scales of block b (16 bytes)
//! q[0][0] .. q[0][7]      group 0 (quant bytes 0..4) of each row's block b (32 bytes)
//! q[1][0] .. q[1][7]      bytes 4..8
//! q[2][0] .. q[2][7]      bytes 8..12
//! q[3][0] .. q[3][7]      bytes 12..16
//! ```
//!
//! so a 256-bit vector loaded from `q[g]` holds group `g` of row `r` in its 32-bit lane `r`, and
//! the scales convert with one instruction. A group of eight rows takes exactly the bytes of its
//! eight rows (18 bytes per row and block), so a matrix is interleaved in place, group by group.

use crate::blocks::BlockQ4_0;
use crate::GgmlType;

/// Rows per group.
pub const ROWS: usize = 8;
/// Bytes of one interleaved block of a group (eight Q4_0 blocks).
pub const GROUP_BLOCK: usize = ROWS * size_of::<BlockQ4_0>();
/// Longest row (in blocks) the interleaved kernels take.
pub const MAX_BLOCKS: usize = 1024;

/// Whether a matrix of this type and shape can be interleaved (and then multiplied by the
/// kernels' `tile_interleaved`).
pub fn can_interleave(ty: GgmlType, rows: usize, cols: usize) -> bool {
    ty == GgmlType::Q4_0
        && rows > 0
        && rows.is_multiple_of(ROWS)
        && cols.is_multiple_of(32)
        && (1..=MAX_BLOCKS).contains(&(cols / 32))
}

/// Interleave one group: `src` holds eight rows of `nb` Q4_0 blocks one after another, `dst`
/// receives the group (both `nb * GROUP_BLOCK` bytes).
pub fn interleave_group(src: &[u8], dst: &mut [u8], nb: usize) {
    let rb = nb * size_of::<BlockQ4_0>();
    assert!(src.len() >= ROWS * rb && dst.len() >= ROWS * rb);
    for b in 0..nb {
        let out = &mut dst[b * GROUP_BLOCK..(b + 1) * GROUP_BLOCK];
        for r in 0..ROWS {
            let blk = &src[r * rb + b * 18..r * rb + (b + 1) * 18];
            out[2 * r..2 * r + 2].copy_from_slice(&blk[..2]);
            for g in 0..4 {
                let at = 16 + 32 * g + 4 * r;
                out[at..at + 4].copy_from_slice(&blk[2 + 4 * g..6 + 4 * g]);
            }
        }
    }
}

/// The inverse of [`interleave_group`].
pub fn deinterleave_group(src: &[u8], dst: &mut [u8], nb: usize) {
    let rb = nb * size_of::<BlockQ4_0>();
    assert!(src.len() >= ROWS * rb && dst.len() >= ROWS * rb);
    for b in 0..nb {
        let grp = &src[b * GROUP_BLOCK..(b + 1) * GROUP_BLOCK];
        for r in 0..ROWS {
            let blk = &mut dst[r * rb + b * 18..r * rb + (b + 1) * 18];
            blk[..2].copy_from_slice(&grp[2 * r..2 * r + 2]);
            for g in 0..4 {
                let at = 16 + 32 * g + 4 * r;
                blk[2 + 4 * g..6 + 4 * g].copy_from_slice(&grp[at..at + 4]);
            }
        }
    }
}

/// Interleave a whole matrix of `rows` × `cols` Q4_0 from `src` into `dst` (both its bytes),
/// the groups spread over the current thread pool. Panics unless [`can_interleave`] and both
/// hold the matrix.
pub fn interleave_into(src: &[u8], dst: &mut [u8], rows: usize, cols: usize) {
    assert!(can_interleave(GgmlType::Q4_0, rows, cols));
    let nb = cols / 32;
    let group = ROWS * nb * size_of::<BlockQ4_0>();
    let n = rows / ROWS * group;
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let per = (65_536 / group).max(1);
    crate::pool::with_current(|pool| {
        pool.for_each_chunk_mut(dst, per * group, |i, chunk| {
            let src = &src[i * per * group..];
            for (j, g) in chunk.chunks_exact_mut(group).enumerate() {
                interleave_group(&src[j * group..(j + 1) * group], g, nb);
            }
        })
    });
}

/// Interleave a whole matrix of `rows` × `cols` Q4_0 in place (`data` its bytes), the groups
/// spread over the current thread pool. Panics unless [`can_interleave`] and `data` holds the
/// matrix.
pub fn interleave_in_place(data: &mut [u8], rows: usize, cols: usize) {
    assert!(can_interleave(GgmlType::Q4_0, rows, cols));
    let nb = cols / 32;
    let group = ROWS * nb * size_of::<BlockQ4_0>();
    let data = &mut data[..rows / ROWS * group];
    // Several groups per task, so a task is worth its scheduling.
    let per = (65_536 / group).max(1);
    crate::pool::with_current(|pool| {
        pool.for_each_chunk_mut(data, per * group, |_, chunk| {
            let mut tmp = vec![0u8; group];
            for g in chunk.chunks_exact_mut(group) {
                tmp.copy_from_slice(g);
                interleave_group(&tmp, g, nb);
            }
        })
    });
}

/// Rows per group of the block-interleaved layout ([`crate::matmul::Layout::Blocks4`]).
pub const BLOCK_ROWS: usize = 4;

/// Whether a matrix can be interleaved block by block in groups of [`BLOCK_ROWS`] rows (the
/// 32-element formats other than Q4_0, which has its own layout), for the kernels'
/// `tile_blocks4`.
pub fn can_interleave_blocks(ty: GgmlType, rows: usize, cols: usize) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_1 | Q5_0 | Q5_1 | Q8_0)
        && rows > 0
        && rows.is_multiple_of(BLOCK_ROWS)
        && cols.is_multiple_of(32)
        && cols >= 32
}

/// Interleave the rows of a matrix of `rows` × `cols` (`ty` as for [`can_interleave_blocks`])
/// block by block in groups of four, from `src` into `dst`: group `g`, block `b`, row `r` at
/// block index `(g·nb + b)·4 + r`. Spread over the current thread pool. Panics unless
/// [`can_interleave_blocks`] and both hold the matrix.
pub fn interleave_blocks_into(ty: GgmlType, src: &[u8], dst: &mut [u8], rows: usize, cols: usize) {
    assert!(can_interleave_blocks(ty, rows, cols));
    let bs = ty.type_size();
    let nb = cols / 32;
    let group = BLOCK_ROWS * nb * bs;
    let n = rows / BLOCK_ROWS * group;
    let (src, dst) = (&src[..n], &mut dst[..n]);
    let per = (65_536 / group).max(1);
    crate::pool::with_current(|pool| {
        pool.for_each_chunk_mut(dst, per * group, |i, chunk| {
            let src = &src[i * per * group..];
            for (j, g) in chunk.chunks_exact_mut(group).enumerate() {
                let s = &src[j * group..(j + 1) * group];
                for r in 0..BLOCK_ROWS {
                    for b in 0..nb {
                        let from = (r * nb + b) * bs;
                        let to = (b * BLOCK_ROWS + r) * bs;
                        g[to..to + bs].copy_from_slice(&s[from..from + bs]);
                    }
                }
            }
        })
    });
}

/// The inverse of [`interleave_blocks_into`] for one group (`BLOCK_ROWS` rows of `nb` blocks of
/// `bs` bytes).
pub fn deinterleave_blocks_group(src: &[u8], dst: &mut [u8], nb: usize, bs: usize) {
    for r in 0..BLOCK_ROWS {
        for b in 0..nb {
            let from = (b * BLOCK_ROWS + r) * bs;
            let to = (r * nb + b) * bs;
            dst[to..to + bs].copy_from_slice(&src[from..from + bs]);
        }
    }
}

/// Interleave block by block in place (through a copy of the matrix).
pub fn interleave_blocks_in_place(ty: GgmlType, data: &mut [u8], rows: usize, cols: usize) {
    let src = data.to_vec();
    interleave_blocks_into(ty, &src, data, rows, cols);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleave_round_trips_and_places_bytes() {
        let nb = 3;
        let src: Vec<u8> = (0..ROWS * nb * 18).map(|i| (i * 7 + 3) as u8).collect();
        let mut grp = vec![0u8; src.len()];
        interleave_group(&src, &mut grp, nb);
        // Row 5, block 2: its scale, and its quant bytes 8..12 (group 2).
        let blk = &src[5 * nb * 18 + 2 * 18..][..18];
        let out = &grp[2 * GROUP_BLOCK..][..GROUP_BLOCK];
        assert_eq!(&out[10..12], &blk[..2]);
        assert_eq!(&out[16 + 64 + 20..16 + 64 + 24], &blk[10..14]);
        let mut back = vec![0u8; src.len()];
        deinterleave_group(&grp, &mut back, nb);
        assert_eq!(back, src);
    }

    #[test]
    fn whole_matrix_in_place_equals_group_by_group() {
        let (rows, cols) = (24, 96);
        let nb = cols / 32;
        let src: Vec<u8> = (0..rows * nb * 18).map(|i| (i * 31 + 1) as u8).collect();
        let mut m = src.clone();
        interleave_in_place(&mut m, rows, cols);
        for (g, (a, b)) in src
            .chunks_exact(ROWS * nb * 18)
            .zip(m.chunks_exact(ROWS * nb * 18))
            .enumerate()
        {
            let mut want = vec![0u8; a.len()];
            interleave_group(a, &mut want, nb);
            assert_eq!(b, &want[..], "group {g}");
        }
        let mut copy = vec![0u8; src.len()];
        interleave_into(&src, &mut copy, rows, cols);
        assert_eq!(copy, m);
        let q41: Vec<u8> = (0..rows * nb * 20).map(|i| (i * 13 + 5) as u8).collect();
        let mut blocks = vec![0u8; q41.len()];
        interleave_blocks_into(GgmlType::Q4_1, &q41, &mut blocks, rows, cols);
        let mut back = vec![0u8; 4 * nb * 20];
        deinterleave_blocks_group(&blocks[4 * nb * 20..8 * nb * 20], &mut back, nb, 20);
        assert_eq!(back, &q41[4 * nb * 20..8 * nb * 20]);
        assert_eq!(
            &blocks[20..40],
            &q41[nb * 20..(nb + 1) * 20],
            "row 1's first block second"
        );
        assert!(!can_interleave(GgmlType::Q4_0, 12, 96));
        assert!(!can_interleave(GgmlType::Q8_0, 8, 96));
        assert!(!can_interleave(GgmlType::Q4_0, 8, 32 * 1025));
    }
}
