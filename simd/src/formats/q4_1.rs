//! Q4_1: 32 elements, 4-bit quants with a minimum: `x = d·q + m`. Pairs with Q8_1.

use super::block32::block32;
use super::BlockQ8_1;
use half::f16;

block32! {
    /// 20 bytes: the scale, the minimum, 16 bytes of nibbles.
    pub struct BlockQ4_1 { d: f16, m: f16, qs: [u8; 16] }
    type Q4_1; pairs with BlockQ8_1; quants Nibbles; offset 0; min m;
}
