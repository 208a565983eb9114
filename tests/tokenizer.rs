//! Tokenizer against llama.cpp: every case of the golden files made by `refdump` (see
//! tools/make-goldens.sh) must match exactly, for both real models.

use nib::gguf::Gguf;
use nib::tokenizer::{StreamDecoder, Tokenizer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1";
const GEMMA: &str = "gemma-3-270m-q4_k_m";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn models_dir() -> PathBuf {
    std::env::var_os("NIB_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models"))
}

fn load(name: &str) -> Tokenizer {
    let path = models_dir().join(format!("{name}.gguf"));
    if !path.exists() {
        panic!(
            "model {} not found: run tools/fetch-models.sh (or point NIB_MODELS at a folder holding {name}.gguf)",
            path.display()
        );
    }
    let g = Gguf::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

fn tok(name: &str) -> &'static Tokenizer {
    static SMOL_T: OnceLock<Tokenizer> = OnceLock::new();
    static GEMMA_T: OnceLock<Tokenizer> = OnceLock::new();
    match name {
        SMOL => SMOL_T.get_or_init(|| load(SMOL)),
        GEMMA => GEMMA_T.get_or_init(|| load(GEMMA)),
        _ => unreachable!(),
    }
}

/// Texts of a refdump input file: separated by lines holding only 0x1E (as refdump reads them).
fn read_texts(file: &str) -> Vec<Vec<u8>> {
    let all = std::fs::read(root().join("tests/golden").join(file)).unwrap();
    let sep = b"\n\x1e\n";
    let mut out = Vec::new();
    let mut p = 0;
    loop {
        match all[p..].windows(sep.len()).position(|w| w == sep) {
            Some(q) => {
                out.push(all[p..p + q].to_vec());
                p += q + sep.len();
            }
            None => {
                if p < all.len() {
                    out.push(all[p..].to_vec());
                }
                break;
            }
        }
    }
    out
}

fn read_json(file: &str) -> Vec<Value> {
    let path = root().join("tests/golden").join(file);
    let s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&s)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Check every case of a `.tok.json` golden; returns how many passed, panics listing failures.
fn check_tok_golden(model: &str, texts_file: &str, golden_file: &str) -> usize {
    let t = tok(model);
    let texts = read_texts(texts_file);
    let cases = read_json(golden_file);
    assert_eq!(
        texts.len(),
        cases.len(),
        "{golden_file}: one case per text of {texts_file}"
    );
    let mut failures = Vec::new();
    for (i, (text, case)) in texts.iter().zip(&cases).enumerate() {
        assert_eq!(
            case["text"].as_str().unwrap(),
            String::from_utf8_lossy(text),
            "{golden_file} case {i}: text"
        );
        let want = ids(&case["tokens"]);
        let got = t.tokenize_bytes(text, false, false);
        if got != want {
            failures.push(format!(
                "case {i} {:?}: tokens\n  want {want:?}\n  got  {got:?}",
                String::from_utf8_lossy(text)
            ));
        }
        let want_sp = ids(&case["tokens_add_special_parse_special"]);
        let got_sp = t.tokenize_bytes(text, true, true);
        if got_sp != want_sp {
            failures.push(format!(
                "case {i} {:?}: tokens (add_special, parse_special)\n  want {want_sp:?}\n  got  {got_sp:?}",
                String::from_utf8_lossy(text)
            ));
        }
        // refdump concatenates token_to_piece(special = true) of `tokens`.
        let want_detok = case["detokenized"].as_str().unwrap();
        let pieces: Vec<u8> = want
            .iter()
            .flat_map(|&id| t.token_to_piece(id).to_vec())
            .collect();
        if String::from_utf8_lossy(&pieces) != want_detok {
            failures.push(format!(
                "case {i}: pieces {:?}, want {want_detok:?}",
                String::from_utf8_lossy(&pieces)
            ));
        }
        if t.detokenize(&want) != want_detok {
            failures.push(format!(
                "case {i}: detokenize {:?}, want {want_detok:?}",
                t.detokenize(&want)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{model}: {} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[test]
fn smollm2_public_goldens() {
    let n = check_tok_golden(SMOL, "tok_public.txt", &format!("{SMOL}.tok.json"));
    eprintln!("{SMOL}: {n} public cases pass");
}

#[test]
fn gemma3_public_goldens() {
    let n = check_tok_golden(GEMMA, "tok_public.txt", &format!("{GEMMA}.tok.json"));
    eprintln!("{GEMMA}: {n} public cases pass");
}

/// The prompts of the logits goldens, tokenized with add_special and parse_special.
fn check_logits_prompts(model: &str, golden_file: &str) -> usize {
    let t = tok(model);
    let cases = read_json(golden_file);
    for (i, case) in cases.iter().enumerate() {
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(
            t.tokenize(prompt, true, true),
            ids(&case["tokens"]),
            "{golden_file} prompt {i} {prompt:?}"
        );
    }
    cases.len()
}

#[test]
fn logits_golden_prompts() {
    for (model, file) in [
        (SMOL, format!("{SMOL}.logits.json")),
        (GEMMA, format!("{GEMMA}.logits.json")),
        // The base SmolLM2-135M shares the instruct model's tokenizer.
        (SMOL, "smollm2-135m-Q4_0.logits.json".to_string()),
        (SMOL, "smollm2-135m-Q8_0.logits.json".to_string()),
    ] {
        let n = check_logits_prompts(model, &file);
        eprintln!("{file}: {n} prompts pass");
    }
}

#[test]
fn special_ids_and_eog() {
    let s = tok(SMOL);
    assert_eq!(s.n_vocab(), 49152);
    assert_eq!((s.bos(), s.eos(), s.add_bos()), (Some(1), Some(2), false));
    let im_end = s.find_token("<|im_end|>").unwrap();
    let endoftext = s.find_token("<|endoftext|>").unwrap();
    assert!(s.is_eog(im_end) && s.is_eog(endoftext) && s.is_eog(2));
    assert!(!s.is_eog(s.find_token("<|im_start|>").unwrap()));
    assert!(!s.is_eog(504));
    assert!(!s.is_eog(u32::MAX));

    let g = tok(GEMMA);
    assert_eq!(g.n_vocab(), 262144);
    assert_eq!((g.bos(), g.eos(), g.add_bos()), (Some(2), Some(1), true));
    let eot = g.find_token("<end_of_turn>").unwrap();
    assert!(g.is_eog(eot) && g.is_eog(1));
    assert!(!g.is_eog(g.find_token("<start_of_turn>").unwrap()));
    assert_eq!(g.token_text(eot), b"<end_of_turn>");
    assert_eq!(g.token_to_piece(eot), b"<end_of_turn>");
    assert!(g.token_to_piece_special(eot, false).is_empty());
    assert_eq!(g.token_to_piece(u32::MAX), b"");
}

#[test]
fn stream_decoder_holds_back_partial_utf8() {
    for model in [SMOL, GEMMA] {
        let t = tok(model);
        for text in [
            "Emoji: 🙂👍🏽🚀 and flags 🇺🇸",
            "日本語のテキスト",
            "plain ascii",
            "naïve café",
        ] {
            let ids = t.tokenize(text, false, false);
            let mut dec = StreamDecoder::new();
            let mut out = String::new();
            for &id in &ids {
                let s = dec.push(t, id);
                out += &s;
                assert!(
                    text.starts_with(&out),
                    "{model}: {out:?} is not a prefix of {text:?}"
                );
            }
            out += &dec.finish();
            assert_eq!(out, text, "{model}");
        }
        // A sequence cut short at the end comes out as U+FFFD.
        let mut dec = StreamDecoder::new();
        let partial = t.tokenize_bytes(b"\xe6\x97", false, false);
        let mut out = String::new();
        for &id in &partial {
            out += &dec.push(t, id);
        }
        out += &dec.finish();
        assert!(
            out.chars().all(|c| c == '\u{FFFD}') && !out.is_empty(),
            "{model}: {out:?}"
        );
    }
}
