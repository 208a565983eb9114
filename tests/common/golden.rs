//! Reading llama.cpp's outputs stored under `tests/golden/` (also included by
//! `examples/golden_diff.rs`, which has no `CARGO_BIN_EXE_nib` for the rest of `common`).

use serde_json::Value;

/// A JSON array of token ids.
pub fn token_ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of token ids")
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// One position's `top40_logits` in a logits golden: `(token id, logit)`, the largest first.
pub fn top_logits(v: &Value) -> Vec<(usize, f64)> {
    v.as_array()
        .expect("an array of [id, logit] pairs")
        .iter()
        .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
        .collect()
}
