//! The decode path against llama.cpp, one token per eval (`tests/golden/*.decode.json`, made by
//! `refdump MODEL decode prompts_public.txt 16`: llama.cpp's x86 CPU backend, 2 threads, a
//! 2048-cell f16 cache, every prompt token fed in its own `llama_decode` call, then 16 greedy
//! tokens the same way; the top-40 logits after every step, printed with 9 significant digits,
//! which give back the exact f32).
//!
//! Where nib sums in llama.cpp's x86 orders (on x86; on aarch64 with `NIB_ORDERS=llama`) every
//! stored logit must equal nib's f32 exactly and the greedy tokens must be llama.cpp's: nib feeds
//! its own argmax back, as llama.cpp did. With the aarch64 levels' own orders the last bits differ,
//! so the run is teacher-forced (llama.cpp's tokens are always fed) and the bar is a tolerance:
//! mean |Δ| over the top-40 below 0.25, and nib's argmax equal to llama.cpp's top-1 wherever
//! llama.cpp's top-2 margin exceeds 1.0. Each test prints the figures it reached.

mod common;

use common::{argmax, llama_orders};

use nib::model::{Context, KvType, Logits};
use std::path::Path;
use std::sync::Arc;

/// What one model's decode golden gave.
#[derive(Default)]
struct Report {
    steps: usize,
    n_logits: usize,
    /// Stored logits whose f32 equals nib's bit for bit.
    n_exact: usize,
    first_inexact: Option<String>,
    sum_abs: f64,
    max_abs: f64,
    top1_checked: usize,
    /// `(prompt, step, nib's argmax, llama.cpp's top-1, llama.cpp's top-2 margin)`.
    top1_mismatch: Vec<String>,
    /// Greedy tokens equal to llama.cpp's, of those it made (exact mode only).
    greedy_same: usize,
    greedy_total: usize,
    greedy_diverged: Vec<String>,
}

fn check(model_path: &Path, golden: &str) -> Report {
    let exact = llama_orders();
    let model = common::load_model(model_path);
    let cases = common::read_json(golden);
    let mut r = Report::default();
    for case in cases.as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap_or("");
        let tokens = common::token_ids(&case["tokens"]);
        let greedy = common::token_ids(&case["greedy"]);
        let steps = case["step_top40_logits"].as_array().unwrap();
        assert_eq!(steps.len(), tokens.len() + greedy.len(), "{golden}: steps");
        let mut ctx = Context::new(Arc::clone(&model), 2048, 512, KvType::F16).unwrap();
        // The token fed at each step: the prompt's, then (exact mode) nib's own argmax, or
        // (teacher-forced) llama.cpp's greedy token.
        let mut next = tokens[0];
        let mut diverged = false;
        for (j, step) in steps.iter().enumerate() {
            let row = ctx.eval(&[next], Logits::Last).unwrap();
            r.steps += 1;
            let top = common::top_logits(step);
            for &(id, want) in &top {
                let got = row[id];
                let diff = (got as f64 - want).abs();
                r.sum_abs += diff;
                r.max_abs = r.max_abs.max(diff);
                r.n_logits += 1;
                if got == want as f32 {
                    r.n_exact += 1;
                } else if r.first_inexact.is_none() {
                    r.first_inexact = Some(format!(
                        "{prompt:?} step {j} token {id}: nib {got:?}, llama.cpp {:?}",
                        want as f32
                    ));
                }
            }
            let am = argmax(row);
            if top[0].1 - top[1].1 > 1.0 {
                r.top1_checked += 1;
                if am as usize != top[0].0 {
                    r.top1_mismatch.push(format!(
                        "{prompt:?} step {j}: nib {am}, llama.cpp {} (margin {:.3})",
                        top[0].0,
                        top[0].1 - top[1].1
                    ));
                }
            }
            // The token for step j + 1.
            if j + 1 < tokens.len() {
                next = tokens[j + 1];
            } else if j + 1 < steps.len() {
                let g = j + 1 - tokens.len();
                if exact {
                    r.greedy_total += 1;
                    if am == greedy[g] && !diverged {
                        r.greedy_same += 1;
                    } else if !diverged {
                        diverged = true;
                        r.greedy_diverged.push(format!(
                            "{prompt:?} greedy {g}: nib {am}, llama.cpp {}",
                            greedy[g]
                        ));
                    }
                    next = am;
                } else {
                    next = greedy[g];
                }
            }
        }
    }
    let name = model_path.file_name().unwrap().to_string_lossy();
    eprintln!(
        "{name} ({} kernels, {} orders): {} steps, {} of {} top-40 logits exactly llama.cpp's f32; \
         mean |Δ| = {:.6}, max |Δ| = {:.6}; top-1 checked at {} steps (margin > 1.0), {} mismatches{}; \
         greedy {}/{}",
        nib_simd::kernels().level(),
        if exact { "llama.cpp's" } else { "the level's own" },
        r.steps,
        r.n_exact,
        r.n_logits,
        r.sum_abs / r.n_logits as f64,
        r.max_abs,
        r.top1_checked,
        r.top1_mismatch.len(),
        if r.top1_mismatch.is_empty() {
            String::new()
        } else {
            format!(": {:?}", r.top1_mismatch)
        },
        r.greedy_same,
        r.greedy_total,
    );
    r
}

fn assert_meets_bar(r: &Report) {
    if llama_orders() {
        assert_eq!(
            r.n_exact, r.n_logits,
            "not every decode logit is llama.cpp's f32; first: {:?}",
            r.first_inexact
        );
        assert!(
            r.greedy_diverged.is_empty(),
            "greedy decoding diverges: {:?}",
            r.greedy_diverged
        );
        assert!(r.top1_mismatch.is_empty(), "{:?}", r.top1_mismatch);
    } else {
        let mean = r.sum_abs / r.n_logits as f64;
        assert!(mean < 0.25, "mean |Δ| over the top-40 {mean:.4} >= 0.25");
        assert!(
            r.top1_mismatch.is_empty(),
            "top-1 mismatches where llama.cpp's margin > 1.0: {:?}",
            r.top1_mismatch
        );
    }
}

#[test]
fn smollm2_q4_1_decode_matches_llama_cpp() {
    assert_meets_bar(&check(
        &common::model_path(common::SMOLLM2),
        "SmolLM2-135M-Instruct.Q4_1.decode.json",
    ));
}

#[test]
fn gemma3_q4_k_m_decode_matches_llama_cpp() {
    assert_meets_bar(&check(
        &common::model_path(common::GEMMA3),
        "gemma-3-270m-q4_k_m.decode.json",
    ));
}

/// The requantized copies, made by `nib quantize` byte for byte as `llama-quantize` made the
/// goldens' (tests/logits.rs checks the sha256 sums).
fn requantized(target: &str, golden: &str) {
    let dir = common::Scratch::new("decode-requant");
    let path = dir.path(&format!("smollm2-135m-{target}.gguf"));
    let ty = nib_simd::GgmlType::from_name(target).unwrap();
    nib::quantize::quantize_file(&common::model_path(common::SMOLLM2), &path, ty, true).unwrap();
    assert_meets_bar(&check(&path, golden));
}

#[test]
fn smollm2_q4_0_decode_matches_llama_cpp() {
    requantized("Q4_0", "smollm2-135m-Q4_0.decode.json");
}

#[test]
fn smollm2_q8_0_decode_matches_llama_cpp() {
    requantized("Q8_0", "smollm2-135m-Q8_0.decode.json");
}
