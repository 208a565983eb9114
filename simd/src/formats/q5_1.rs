//! Q5_1: 32 elements, 5-bit quants with a minimum: `x = d·q + m`. Pairs with Q8_1.

use super::block32::block32;
use super::BlockQ8_1;
use half::f16;

block32! {
    /// 24 bytes: the scale, the minimum, the fifth bits, 16 bytes of nibbles.
    pub struct BlockQ5_1 { d: f16, m: f16, qh: [u8; 4], qs: [u8; 16] }
    type Q5_1; pairs with BlockQ8_1; quants FiveBits; offset 0; min m; high bits qh;
}
