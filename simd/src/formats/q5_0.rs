//! Q5_0: 32 elements, 5-bit quants (nibbles plus a bit in `qh`) with an offset of 16:
//! `x = d·(q − 16)`. Pairs with Q8_0.

use super::block32::block32;
use super::BlockQ8_0;

block32! {
    /// 22 bytes: the scale, the fifth bits, 16 bytes of nibbles.
    pub struct BlockQ5_0 { d: f16, qh: [u8; 4], qs: [u8; 16] }
    type Q5_0; pairs with BlockQ8_0; quants FiveBits; offset 16; high bits qh;
}
