//! `nib perplexity` against `llama-perplexity` on the same text (`tests/golden/ppl_text.txt`)
//! and model: `tests/golden/SmolLM2-135M-Instruct.Q4_1.ppl.json` holds what llama-perplexity
//! printed (`-c 512 -b 512 -t 2`: one 512-token chunk per batch, as nib evaluates them): the
//! running perplexity after each chunk (`[1]…,[2]…`, 4 decimals) and the final estimate with its
//! ± error. Both tokenize the whole text once (BOS first, as the model asks), cut it into chunks
//! of 512 tokens, put BOS in each chunk's first place and score the second half of each.
//!
//! Where nib sums in llama.cpp's x86 orders (x86; aarch64 with `NIB_ORDERS=llama`) its logits
//! are llama.cpp's bits, so every printed figure must be the same text; with the aarch64 levels'
//! own orders, each within 0.5% (relative) of llama.cpp's.

mod common;

use common::llama_orders;

/// `[1]12.3456,[2]…` and `Final estimate: PPL = X +/- Y` from perplexity output: the running
/// values, the final value and its error, as printed.
fn parse(out: &str) -> (Vec<String>, String, String) {
    let mut chunks = Vec::new();
    for part in out.split(',') {
        let part = part.trim();
        if let Some(rest) = part.strip_prefix('[') {
            if let Some((n, v)) = rest.split_once(']') {
                if n.parse::<usize>().is_ok() {
                    chunks.push(v.trim().to_string());
                }
            }
        }
    }
    let fin = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Final estimate: PPL = "))
        .expect("a final estimate");
    let (v, e) = fin.split_once(" +/- ").expect("PPL = X +/- Y");
    (chunks, v.trim().to_string(), e.trim().to_string())
}

#[test]
fn smollm2_q4_1_perplexity_matches_llama_perplexity() {
    let golden = common::read_json("SmolLM2-135M-Instruct.Q4_1.ppl.json");
    let want_chunks: Vec<String> = golden["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let want_final = golden["final"].as_str().unwrap();
    let want_error = golden["error"].as_str().unwrap();
    let t0 = std::time::Instant::now();
    let out = common::nib()
        .args(["perplexity", "-m"])
        .arg(common::model_path(common::SMOLLM2))
        .arg("-f")
        .arg(common::golden_path("ppl_text.txt"))
        .args(["-c", "512", "-b", "512", "-t", "2"])
        .output()
        .unwrap();
    common::assert_success("nib perplexity", &out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (chunks, fin, err) = parse(&stdout);
    eprintln!(
        "nib perplexity ({} kernels, {} orders, {:.1} s): [{}] final {fin} +/- {err}; \
         llama-perplexity: [{}] final {want_final} +/- {want_error}",
        nib_simd::kernels().level(),
        if llama_orders() {
            "llama.cpp's"
        } else {
            "the level's own"
        },
        t0.elapsed().as_secs_f64(),
        chunks.join(", "),
        want_chunks.join(", "),
    );
    assert_eq!(chunks.len(), want_chunks.len(), "number of chunks");
    if llama_orders() {
        assert_eq!(chunks, want_chunks, "running perplexity per chunk");
        assert_eq!(fin, want_final, "final perplexity");
        assert_eq!(err, want_error, "its error estimate");
    } else {
        let close = |a: &str, b: &str| {
            let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
            (a - b).abs() <= 0.005 * b.abs()
        };
        for (i, (a, b)) in chunks.iter().zip(&want_chunks).enumerate() {
            assert!(close(a, b), "chunk {}: nib {a}, llama.cpp {b}", i + 1);
        }
        assert!(
            close(&fin, want_final),
            "final: nib {fin}, llama.cpp {want_final}"
        );
    }
}
