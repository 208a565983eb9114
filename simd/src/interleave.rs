//! Weights interleaved at load: how a matrix's rows may lie in memory ([`Layout`]), which
//! matrices fit a layout, and the rearrangement of whole matrices (in parallel, in place or into
//! another buffer). The arithmetic never changes, only where the bytes are; the kernels that read
//! each layout are in `crate::arch`, and which layout a level reads fastest is decided by
//! [`crate::dispatch::Kernels::best_layout`].
//!
//! [`Layout::Interleaved8`] (the 32-element formats; the idea of llama.cpp's repacked layouts): a
//! matrix of `rows` rows (a multiple of 8) × `nb` blocks becomes `rows / 8` groups, each group `nb`
//! interleaved blocks of eight blocks' bytes, in block order. A block is cut into units, its f16
//! fields (`d`, and `m` for the formats with a minimum) of 2 bytes and the rest in 4-byte pieces,
//! and each unit of the eight rows is stored together, row 0 first. For Q4_0:
//!
//! ```text
//! d[0] .. d[7]            the eight rows' f16 scales of block b (16 bytes)
//! q[0][0] .. q[0][7]      group 0 (quant bytes 0..4) of each row's block b (32 bytes)
//! q[1][0] .. q[1][7]      bytes 4..8
//! q[2][0] .. q[2][7]      bytes 8..12
//! q[3][0] .. q[3][7]      bytes 12..16
//! ```
//!
//! so a 256-bit vector loaded from `q[g]` holds group `g` of row `r` in its 32-bit lane `r` (and
//! a 128-bit vector, that of rows 0..4 or 4..8), and the scales convert with one instruction.
//! Q4_1: `d[0..8]`, `m[0..8]`, then the four groups; Q5_0: `d[0..8]`, `qh[0..8]` (4 bytes each),
//! the groups; Q8_0: `d[0..8]`, eight groups.
//!
//! [`Layout::Blocks4`] (the other 32-element formats: Q4_1, Q5_0, Q5_1, Q8_0) keeps blocks whole
//! and interleaves four rows block by block: block `b` of row `r` of a group at block index
//! `b·4 + r`, so a tile of four rows reads one stream.
//!
//! Either way a group takes exactly the bytes of its rows, so a matrix is interleaved in place,
//! group by group.

use crate::GgmlType;

/// How a matrix's rows lie in memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// GGUF's: row after row.
    #[default]
    Rows,
    /// Groups of eight Q4_0 rows interleaved block by block, scales and quant groups apart (see
    /// the module doc). Rows `8g..8g+8` occupy bytes `8g·row_bytes..(8g+8)·row_bytes`.
    Interleaved8,
    /// Groups of four rows interleaved block by block (whole blocks; the other 32-element
    /// formats). Rows `4g..4g+4` occupy bytes `4g·row_bytes..(4g+4)·row_bytes`.
    Blocks4,
}

impl Layout {
    /// Every interleaved layout.
    pub const INTERLEAVED: [Layout; 2] = [Layout::Interleaved8, Layout::Blocks4];

    /// Rows per group (1: row after row).
    pub fn group_rows(self) -> usize {
        match self {
            Layout::Rows => 1,
            Layout::Interleaved8 => ROWS,
            Layout::Blocks4 => BLOCK_ROWS,
        }
    }
}

/// Rows per group of [`Layout::Interleaved8`].
pub const ROWS: usize = 8;
/// Rows per group of [`Layout::Blocks4`].
pub const BLOCK_ROWS: usize = 4;
/// Bytes of one interleaved block of a [`Layout::Interleaved8`] group of Q4_0 (eight blocks).
pub const GROUP_BLOCK: usize = ROWS * GgmlType::Q4_0.type_size();
/// Longest row (in blocks) the [`Layout::Interleaved8`] kernels take (they keep per-token tables
/// of this many blocks).
pub const MAX_BLOCKS: usize = 1024;

/// Whether `ty` is a weight format of 32-element blocks (the formats both interleaved layouts
/// take).
fn is_block32(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(ty, Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0)
}

/// The f16 fields at the front of a 32-element block (`d`, and `m` for the formats with a
/// minimum); the rest of the block is in 4-byte units.
fn f16_fields(ty: GgmlType) -> usize {
    if matches!(ty, GgmlType::Q4_1 | GgmlType::Q5_1) {
        2
    } else {
        1
    }
}

/// Whether a matrix of this type and shape can be stored in `layout` (always, for
/// [`Layout::Rows`]).
pub fn fits(layout: Layout, ty: GgmlType, rows: usize, cols: usize) -> bool {
    let shape = |g: usize| rows > 0 && rows.is_multiple_of(g) && cols.is_multiple_of(32);
    match layout {
        Layout::Rows => true,
        Layout::Interleaved8 => {
            is_block32(ty) && shape(ROWS) && (1..=MAX_BLOCKS).contains(&(cols / 32))
        }
        Layout::Blocks4 => is_block32(ty) && shape(BLOCK_ROWS) && cols >= 32,
    }
}

/// Where the bytes of row `r` of a group lie: `f(at_interleaved, at_in_row, len)` for each piece,
/// offsets within the group and within the row (`nb` blocks of `ty`).
fn pieces(
    layout: Layout,
    ty: GgmlType,
    nb: usize,
    r: usize,
    mut f: impl FnMut(usize, usize, usize),
) {
    let bs = ty.type_size();
    let g = layout.group_rows();
    for b in 0..nb {
        let in_row = b * bs;
        match layout {
            Layout::Rows => f(r * nb * bs + in_row, in_row, bs),
            Layout::Interleaved8 => {
                // Unit `u` of the block: the f16 fields, then 4-byte pieces.
                let at = b * g * bs;
                let fields = f16_fields(ty);
                for u in 0..fields {
                    f(at + 2 * g * u + 2 * r, in_row + 2 * u, 2);
                }
                for u in 0..(bs - 2 * fields) / 4 {
                    let il = at + 2 * g * fields + 4 * g * u + 4 * r;
                    f(il, in_row + 2 * fields + 4 * u, 4);
                }
            }
            Layout::Blocks4 => f((b * g + r) * bs, in_row, bs),
        }
    }
}

/// One group: `src` holds its rows of `nb` blocks of `ty` one after another, `dst` receives the
/// interleaved group (`forward`), or the other way round.
fn group(layout: Layout, ty: GgmlType, src: &[u8], dst: &mut [u8], nb: usize, forward: bool) {
    let g = layout.group_rows();
    let rb = nb * ty.type_size();
    assert!(src.len() >= g * rb && dst.len() >= g * rb);
    for r in 0..g {
        pieces(layout, ty, nb, r, |il, in_row, n| {
            let rw = r * rb + in_row;
            let (from, to) = if forward { (rw, il) } else { (il, rw) };
            dst[to..to + n].copy_from_slice(&src[from..from + n]);
        });
    }
}

/// Row `r` of a matrix of `cols` columns stored in `layout` (`data`: its bytes), in GGUF's layout,
/// into `out` (the row's bytes). For reading single rows (an embedding tied to an interleaved
/// output projection).
pub fn read_row(layout: Layout, ty: GgmlType, data: &[u8], cols: usize, r: usize, out: &mut [u8]) {
    let nb = cols / ty.block_size();
    let g = layout.group_rows();
    let rb = ty.row_size(cols).expect("whole blocks");
    let group = &data[r / g * g * rb..(r / g + 1) * g * rb];
    pieces(layout, ty, nb, r % g, |il, in_row, n| {
        out[in_row..in_row + n].copy_from_slice(&group[il..il + n]);
    });
}

/// Interleave one group of `layout` (see [`group`]).
pub fn interleave_group(layout: Layout, ty: GgmlType, src: &[u8], dst: &mut [u8], nb: usize) {
    group(layout, ty, src, dst, nb, true);
}

/// The inverse of [`interleave_group`].
pub fn deinterleave_group(layout: Layout, ty: GgmlType, src: &[u8], dst: &mut [u8], nb: usize) {
    group(layout, ty, src, dst, nb, false);
}

/// `f(src_group, dst_group)` for every group of a matrix, spread over the current thread pool
/// (several groups per task, so a task is worth its scheduling). `src` is `None` for in place.
fn each_group(
    data: &mut [u8],
    src: Option<&[u8]>,
    group_bytes: usize,
    f: impl Fn(&[u8], &mut [u8]) + Sync,
) {
    let per = (65_536 / group_bytes).max(1);
    crate::pool::with_current(|pool| {
        pool.for_each_chunk_mut(data, per * group_bytes, |i, chunk| {
            let mut tmp = Vec::new();
            for (j, g) in chunk.chunks_exact_mut(group_bytes).enumerate() {
                let from = match src {
                    Some(s) => &s[(i * per + j) * group_bytes..][..group_bytes],
                    None => {
                        tmp.clear();
                        tmp.extend_from_slice(g);
                        &tmp[..]
                    }
                };
                f(from, g);
            }
        })
    });
}

/// The bytes of one group and of the whole matrix, after checking that it fits `layout`.
fn sizes(layout: Layout, ty: GgmlType, rows: usize, cols: usize) -> (usize, usize) {
    assert!(
        layout != Layout::Rows && fits(layout, ty, rows, cols),
        "a {ty} matrix of {rows} x {cols} cannot be stored as {layout:?}"
    );
    let group = layout.group_rows() * cols / 32 * ty.type_size();
    (group, rows / layout.group_rows() * group)
}

/// Interleave a whole matrix of `rows` × `cols` of `ty` into `layout`, from `src` into `dst`
/// (both its bytes), the groups spread over the current thread pool. Panics unless it
/// [`fits`] and both hold the matrix.
pub fn interleave_into(
    layout: Layout,
    ty: GgmlType,
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
) {
    let (group_bytes, n) = sizes(layout, ty, rows, cols);
    let nb = cols / 32;
    each_group(&mut dst[..n], Some(&src[..n]), group_bytes, |s, d| {
        interleave_group(layout, ty, s, d, nb)
    });
}

/// [`interleave_into`] in place (`data` the matrix's bytes), through one group's copy at a time.
pub fn interleave_in_place(
    layout: Layout,
    ty: GgmlType,
    data: &mut [u8],
    rows: usize,
    cols: usize,
) {
    let (group_bytes, n) = sizes(layout, ty, rows, cols);
    let nb = cols / 32;
    each_group(&mut data[..n], None, group_bytes, |s, d| {
        interleave_group(layout, ty, s, d, nb)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType::*;

    #[test]
    fn interleave_round_trips_and_places_bytes() {
        let nb = 3;
        let src: Vec<u8> = (0..ROWS * nb * 18).map(|i| (i * 7 + 3) as u8).collect();
        let mut grp = vec![0u8; src.len()];
        interleave_group(Layout::Interleaved8, Q4_0, &src, &mut grp, nb);
        // Row 5, block 2: its scale, and its quant bytes 8..12 (group 2).
        let blk = &src[5 * nb * 18 + 2 * 18..][..18];
        let out = &grp[2 * GROUP_BLOCK..][..GROUP_BLOCK];
        assert_eq!(&out[10..12], &blk[..2]);
        assert_eq!(&out[16 + 64 + 20..16 + 64 + 24], &blk[10..14]);
        let mut back = vec![0u8; src.len()];
        deinterleave_group(Layout::Interleaved8, Q4_0, &grp, &mut back, nb);
        assert_eq!(back, src);
        // Q5_1 (d, m, qh, qs): row 3, block 1 of a group block of 8 × 24 bytes.
        let src: Vec<u8> = (0..ROWS * nb * 24).map(|i| (i * 5 + 1) as u8).collect();
        let mut grp = vec![0u8; src.len()];
        interleave_group(Layout::Interleaved8, Q5_1, &src, &mut grp, nb);
        let blk = &src[3 * nb * 24 + 24..][..24];
        let out = &grp[8 * 24..][..8 * 24];
        assert_eq!(&out[6..8], &blk[..2], "d");
        assert_eq!(&out[16 + 6..16 + 8], &blk[2..4], "m");
        assert_eq!(&out[32 + 12..32 + 16], &blk[4..8], "qh");
        assert_eq!(
            &out[64 + 32 * 2 + 12..64 + 32 * 2 + 16],
            &blk[16..20],
            "qs group 2"
        );
    }

    #[test]
    fn whole_matrix_in_place_equals_group_by_group() {
        let (rows, cols) = (24, 96);
        let nb = cols / 32;
        for (layout, ty) in [
            (Layout::Interleaved8, Q4_0),
            (Layout::Interleaved8, Q5_1),
            (Layout::Interleaved8, Q8_0),
            (Layout::Blocks4, Q4_1),
        ] {
            let bs = ty.type_size();
            let g = layout.group_rows() * nb * bs;
            let src: Vec<u8> = (0..rows * nb * bs).map(|i| (i * 31 + 1) as u8).collect();
            let mut m = src.clone();
            interleave_in_place(layout, ty, &mut m, rows, cols);
            for (i, (a, b)) in src.chunks_exact(g).zip(m.chunks_exact(g)).enumerate() {
                let mut want = vec![0u8; a.len()];
                interleave_group(layout, ty, a, &mut want, nb);
                assert_eq!(b, &want[..], "{layout:?} group {i}");
                let mut back = vec![0u8; a.len()];
                deinterleave_group(layout, ty, b, &mut back, nb);
                assert_eq!(back, a, "{layout:?} group {i} back");
            }
            let mut copy = vec![0u8; src.len()];
            interleave_into(layout, ty, &src, &mut copy, rows, cols);
            assert_eq!(copy, m);
            let rb = ty.row_size(cols).unwrap();
            for r in [0, 5, rows - 1] {
                let mut row = vec![0u8; rb];
                read_row(layout, ty, &m, cols, r, &mut row);
                assert_eq!(row, &src[r * rb..(r + 1) * rb], "{layout:?} row {r}");
            }
        }
        // Blocks4: row 1's first block comes second.
        let q41: Vec<u8> = (0..8 * nb * 20).map(|i| (i * 13 + 5) as u8).collect();
        let mut blocks = vec![0u8; q41.len()];
        interleave_into(Layout::Blocks4, Q4_1, &q41, &mut blocks, 8, cols);
        assert_eq!(&blocks[20..40], &q41[nb * 20..(nb + 1) * 20]);
        assert!(!fits(Layout::Interleaved8, Q4_0, 12, 96));
        assert!(fits(Layout::Interleaved8, Q8_0, 8, 96));
        assert!(!fits(Layout::Interleaved8, Q8_1, 8, 96));
        assert!(!fits(Layout::Interleaved8, Q4_0, 8, 32 * 1025));
        assert!(!fits(Layout::Blocks4, Q4_K, 8, 256));
        assert!(!fits(Layout::Blocks4, Q8_0, 6, 96));
    }
}
