//! Q4_0: 32 elements, 4-bit quants with an offset of 8: `x = d·(q − 8)`. Pairs with Q8_0.
//!
//! Weights interleaved at load on x86: eight rows at a time
//! ([`crate::interleave::Layout::Interleaved8`]), multiplied in the [`crate::traits::Order::Block`]
//! order that llama.cpp's x86 backend uses for this type on matrices of a multiple of 8 rows.

use super::block32::block32;
use super::BlockQ8_0;

block32! {
    /// 18 bytes: the scale, then 16 bytes of nibbles.
    pub struct BlockQ4_0 { d: f16, qs: [u8; 16] }
    type Q4_0; pairs with BlockQ8_0; quants Nibbles; offset 8;
}
