//! The forward pass against llama.cpp: for every golden prompt, top-1 agreement where
//! llama.cpp's top-2 margin exceeds 0.1, mean absolute difference over its top-40 logits below
//! 0.05, and the greedy continuation equal for at least 16 tokens.

mod common;

use nib::model::{Context, KvType, LoadOptions, Logits, Model};
use std::sync::Arc;

struct Report {
    mean_abs: f64,
    max_abs: f64,
    top1_checked: usize,
    top1_mismatch: Vec<String>,
    greedy_prefix: Vec<usize>,
}

fn check(model_file: &str, golden: &str) -> Report {
    let model =
        Arc::new(Model::load(&common::model_path(model_file), &LoadOptions::default()).unwrap());
    let n_vocab = model.hp.n_vocab;
    let cases = common::read_json(golden);
    let mut r = Report {
        mean_abs: 0.0,
        max_abs: 0.0,
        top1_checked: 0,
        top1_mismatch: vec![],
        greedy_prefix: vec![],
    };
    let mut n_diffs = 0usize;
    for case in cases.as_array().unwrap() {
        let tokens: Vec<u32> = case["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let mut ctx = Context::new(Arc::clone(&model), 2048, 512, KvType::F16).unwrap();
        let logits = ctx.eval(&tokens, Logits::All).unwrap().to_vec();
        for (pos, top) in case["top40_logits"].as_array().unwrap().iter().enumerate() {
            let row = &logits[pos * n_vocab..(pos + 1) * n_vocab];
            let top: Vec<(usize, f64)> = top
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
                .collect();
            for &(id, want) in &top {
                let diff = (row[id] as f64 - want).abs();
                r.mean_abs += diff;
                r.max_abs = r.max_abs.max(diff);
                n_diffs += 1;
            }
            if top[0].1 - top[1].1 > 0.1 {
                r.top1_checked += 1;
                let argmax = (0..n_vocab)
                    .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                    .unwrap();
                if argmax != top[0].0 {
                    r.top1_mismatch.push(format!(
                        "{:?} pos {pos}: nib {argmax}, llama.cpp {}",
                        case["prompt"], top[0].0
                    ));
                }
            }
        }
        // Greedy continuation, one token at a time from the prompt's cache.
        let want: Vec<u32> = case["greedy"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let last = &logits[(tokens.len() - 1) * n_vocab..tokens.len() * n_vocab];
        let mut next = argmax(last);
        let mut same = 0;
        for (i, &w) in want.iter().enumerate() {
            if next != w {
                break;
            }
            same += 1;
            if i + 1 < want.len() {
                next = argmax(ctx.eval(&[next], Logits::Last).unwrap());
            }
        }
        r.greedy_prefix.push(same.min(want.len()));
        if same < want.len() {
            eprintln!(
                "{model_file}: greedy of {:?} matches {same} of {} tokens",
                case["prompt"],
                want.len()
            );
        }
    }
    r.mean_abs /= n_diffs as f64;
    eprintln!(
        "{model_file}: mean |Δ| over top-40 = {:.4}, max = {:.4}; top-1 checked at {} positions, {} mismatches; greedy prefixes {:?}",
        r.mean_abs,
        r.max_abs,
        r.top1_checked,
        r.top1_mismatch.len(),
        r.greedy_prefix
    );
    r
}

fn argmax(v: &[f32]) -> u32 {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap() as u32
}

fn assert_meets_bar(r: &Report, goldens: &serde_json::Value) {
    assert!(
        r.top1_mismatch.is_empty(),
        "top-1 mismatches: {:#?}",
        r.top1_mismatch
    );
    assert!(
        r.mean_abs < 0.05,
        "mean |Δ| over top-40 logits {:.4} >= 0.05",
        r.mean_abs
    );
    for (case, &same) in goldens.as_array().unwrap().iter().zip(&r.greedy_prefix) {
        let want = case["greedy"].as_array().unwrap().len();
        assert!(
            same >= 16.min(want),
            "greedy of {:?} matches only {same} tokens",
            case["prompt"]
        );
    }
}

#[test]
fn smollm2_q4_1_matches_llama_cpp() {
    let golden = "SmolLM2-135M-Instruct.Q4_1.logits.json";
    let r = check(common::SMOLLM2, golden);
    assert_meets_bar(&r, &common::read_json(golden));
}
