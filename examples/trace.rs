//! Dump nib's intermediate tensors for a list of token ids, named as llama.cpp names them, to
//! compare with llama.cpp's eval-callback dumps: `trace MODEL OUTDIR id...`.
use nib::model::{Context, KvType, LoadOptions, Logits, Model};
use std::io::Write;
use std::sync::Arc;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model =
        Arc::new(Model::load(std::path::Path::new(&args[1]), &LoadOptions::default()).unwrap());
    let dir = args[2].clone();
    let toks: Vec<u32> = args[3..].iter().map(|s| s.parse().unwrap()).collect();
    let kv = if std::env::var("KV").as_deref() == Ok("f32") {
        KvType::F32
    } else {
        KvType::F16
    };
    let mut ctx = Context::new(Arc::clone(&model), 2048, 512, kv).unwrap();
    ctx.trace = Some(Box::new(move |name: &str, v: &[f32]| {
        let mut f = std::fs::File::create(format!("{dir}/{name}.bin")).unwrap();
        for x in v {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }));
    let _ = ctx.eval(&toks, Logits::All).unwrap();
}
