//! How far nib's logits are from a logits golden, position by position: the mean absolute and
//! mean signed difference over llama.cpp's top-40 logits of the first three prompts.
//! `cargo run --release --example golden_diff MODEL.gguf tests/golden/X.logits.json [f32]`
//! (`f32`: an f32 KV cache).

#[path = "../tests/common/golden.rs"]
mod golden;

use golden::{token_ids, top_logits};
use nib::model::{Context, KvType, LoadOptions, Logits, Model};
use std::sync::Arc;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model =
        Arc::new(Model::load(std::path::Path::new(&args[1]), &LoadOptions::default()).unwrap());
    let n_vocab = model.hp.n_vocab;
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&args[2]).unwrap()).unwrap();
    let kv = if args.get(3).map(|s| s.as_str()) == Some("f32") {
        KvType::F32
    } else {
        KvType::F16
    };
    for case in cases.as_array().unwrap().iter().take(3) {
        let tokens = token_ids(&case["tokens"]);
        let mut ctx = Context::new(Arc::clone(&model), 2048, 512, kv).unwrap();
        let logits = ctx.eval(&tokens, Logits::All).unwrap().to_vec();
        let mut line = String::new();
        for (pos, top) in case["top40_logits"].as_array().unwrap().iter().enumerate() {
            let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
            let mut s = 0.0;
            let mut sd = 0.0;
            for (id, want) in top_logits(top) {
                let d = row[id] as f64 - want;
                s += d.abs();
                sd += d;
            }
            line += &format!(" {:.3}/{:+.3}", s / 40.0, sd / 40.0);
        }
        println!("{}", line);
    }
}
