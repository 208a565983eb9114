//! Tokenizer against llama.cpp: every case of the golden files made by `refdump` (see
//! tools/make-goldens.sh) must match exactly, for both real models.

mod common;

use common::token_ids;
use nib::gguf::Gguf;
use nib::tokenizer::{StreamDecoder, Tokenizer};
use nib_simd::testing::Rng;
use serde_json::Value;
use std::sync::OnceLock;

const SMOL: &str = "SmolLM2-135M-Instruct.Q4_1";
const GEMMA: &str = "gemma-3-270m-q4_k_m";

fn load(name: &str) -> Tokenizer {
    let path = common::model_path(&format!("{name}.gguf"));
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
    let all = std::fs::read(common::golden_path(file)).unwrap();
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
    common::read_json(file).as_array().unwrap().clone()
}

/// Bytes as refdump writes them into JSON (then made UTF-8 by tools/make-goldens.sh): a byte that
/// does not start a lead-plus-continuation-bytes sequence becomes U+FFFD on its own; sequences that
/// pass that test but are still not UTF-8 (overlong forms, surrogates) are replaced afterwards.
fn as_refdump_writes(b: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let len = match c {
            0x00..=0x7F => 1,
            _ if c >> 5 == 6 => 2,
            _ if c >> 4 == 14 => 3,
            _ if c >> 3 == 30 => 4,
            _ => 0,
        };
        let ok = len > 0 && i + len <= b.len() && b[i + 1..i + len].iter().all(|&x| x >> 6 == 2);
        if ok {
            out.extend_from_slice(&b[i..i + len]);
            i += len;
        } else {
            out.extend_from_slice("\u{FFFD}".as_bytes());
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Check every case of a `.tok.json` golden; returns how many passed, panics listing failures.
fn check_tok_golden(model: &str, texts_file: &str, golden_file: &str) -> usize {
    check_cases(tok(model), model, &read_texts(texts_file), golden_file)
}

/// Check the cases of `golden_file`, made from `texts`, against `t`.
fn check_cases(t: &Tokenizer, model: &str, texts: &[Vec<u8>], golden_file: &str) -> usize {
    let cases = read_json(golden_file);
    assert_eq!(texts.len(), cases.len(), "{golden_file}: one case per text");
    let mut failures = Vec::new();
    for (i, (text, case)) in texts.iter().zip(&cases).enumerate() {
        assert_eq!(
            case["text"].as_str().unwrap(),
            as_refdump_writes(text),
            "{golden_file} case {i}: text"
        );
        // The golden's tokens under `key` against the tokenizer's (`special`: with add_special
        // and parse_special), a failure if they differ; the golden's.
        let mut tokens = |key: &str, special: bool, what: &str| {
            let want = token_ids(&case[key]);
            let got = t.tokenize_bytes(text, special, special);
            if got != want {
                failures.push(format!(
                    "case {i} {:?}: {what}\n  want {want:?}\n  got  {got:?}",
                    String::from_utf8_lossy(text)
                ));
            }
            want
        };
        let want = tokens("tokens", false, "tokens");
        let want_sp = tokens(
            "tokens_add_special_parse_special",
            true,
            "tokens (add_special, parse_special)",
        );
        // refdump concatenates token_to_piece(special = true) of `tokens`.
        let want_detok = case["detokenized"].as_str().unwrap();
        let pieces: Vec<u8> = want
            .iter()
            .flat_map(|&id| t.token_to_piece(id).to_vec())
            .collect();
        if as_refdump_writes(&pieces) != want_detok {
            failures.push(format!(
                "case {i}: pieces {:?}, want {want_detok:?}",
                as_refdump_writes(&pieces)
            ));
        }
        // llama_detokenize where the golden has it (tools/reftok.cpp), else the pieces (which is
        // what llama_detokenize gives for models that do not clean up spaces).
        let want_detok = case
            .get("llama_detokenize")
            .and_then(Value::as_str)
            .unwrap_or(want_detok);
        let detok = as_refdump_writes(&t.detokenize_bytes(&want, false, true));
        if detok != want_detok {
            failures.push(format!(
                "case {i}: detokenize {detok:?}, want {want_detok:?}"
            ));
        }
        if let Some(w) = case
            .get("llama_detokenize_remove_special")
            .and_then(Value::as_str)
        {
            let d = as_refdump_writes(&t.detokenize_bytes(&want_sp, true, false));
            if d != w {
                failures.push(format!(
                    "case {i}: detokenize(remove_special) {d:?}, want {w:?}"
                ));
            }
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

/// The public cases (`tok_public.txt`, `<model>.tok.json`) and the extra ones (`extra_tok.txt`,
/// `<model>.extra.tok.json`) of `model`.
fn check_goldens(model: &str) {
    let n = check_tok_golden(model, "tok_public.txt", &format!("{model}.tok.json"));
    eprintln!("{model}: {n} public cases pass");
    let n = check_tok_golden(model, "extra_tok.txt", &format!("{model}.extra.tok.json"));
    eprintln!("{model}: {n} extra cases pass");
}

#[test]
fn smollm2_goldens() {
    check_goldens(SMOL);
}

#[test]
fn gemma3_goldens() {
    check_goldens(GEMMA);
}

/// A model's tokenizer with one metadata value replaced (metadata only, built in memory).
fn with_override(model: &str, key: &str, value: nib::gguf::MetaValue) -> Tokenizer {
    tok(model); // fails with the fetch-models hint if the model is missing
    let g = Gguf::open(common::model_path(&format!("{model}.gguf"))).unwrap();
    let mut w = nib::gguf::GgufWriter::new();
    for (k, v) in g.metadata() {
        w.set(k, g.to_owned_value(v)).unwrap();
    }
    w.set(key, value).unwrap();
    let variant = Gguf::from_bytes(w.to_bytes().unwrap()).unwrap();
    Tokenizer::from_gguf(&variant).unwrap()
}

fn smollm2_with_pre(pre: &str) -> Tokenizer {
    with_override(SMOL, "tokenizer.ggml.pre", nib::gguf::MetaValue::str(pre))
}

/// SentencePiece with a space prefix (LLaMA 2, Mistral), on Gemma's vocabulary.
#[test]
fn sentencepiece_space_prefix() {
    let mut texts = read_texts("tok_public.txt");
    texts.extend(read_texts("extra_tok.txt"));
    let t = with_override(
        GEMMA,
        "tokenizer.ggml.add_space_prefix",
        nib::gguf::MetaValue::Bool(true),
    );
    let n = check_cases(
        &t,
        &format!("{GEMMA} add_space_prefix"),
        &texts,
        &format!("{GEMMA}.space-prefix.tok.json"),
    );
    eprintln!("space prefix: {n} cases pass");
}

/// Every pre-tokenizer nib implements, on one real vocabulary, against llama.cpp with the same
/// override (tools/make-goldens.sh pretok).
#[test]
fn pre_tokenizers_on_smollm2_vocabulary() {
    let mut texts = read_texts("tok_public.txt");
    texts.extend(read_texts("extra_tok.txt"));
    for pre in [
        "gpt-2",
        "default",
        "llama-bpe",
        "qwen2",
        "starcoder",
        "falcon",
        "deepseek-llm",
        "deepseek-coder",
    ] {
        let t = smollm2_with_pre(pre);
        let n = check_cases(
            &t,
            &format!("{SMOL} pre={pre}"),
            &texts,
            &format!("{SMOL}.pre-{pre}.tok.json"),
        );
        eprintln!("pre {pre}: {n} cases pass");
    }
}

/// The prompts of the logits goldens, tokenized with add_special and parse_special.
fn check_logits_prompts(model: &str, golden_file: &str) -> usize {
    let t = tok(model);
    let cases = read_json(golden_file);
    for (i, case) in cases.iter().enumerate() {
        let prompt = case["prompt"].as_str().unwrap();
        assert_eq!(
            t.tokenize(prompt, true, true),
            token_ids(&case["tokens"]),
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

/// Random text from pieces that stress the tokenizers: whitespace runs, digits, scripts, emoji
/// with modifiers and joiners, combining marks, special-token strings and near misses.
fn random_text(rng: &mut Rng, n_pieces: usize) -> String {
    const PIECES: &[&str] = &[
        " ",
        "  ",
        "   ",
        "\n",
        "\n\n",
        "\t",
        "\r\n",
        "\u{a0}",
        "\u{3000}",
        "a",
        "the",
        " the",
        "The",
        "ing",
        "'s",
        "'LL",
        "don't",
        "0",
        "7",
        "42",
        "2024",
        "3.14",
        "١٢",
        "Ⅻ",
        "½",
        ".",
        ",",
        "!?",
        "...",
        "—",
        "«",
        "»",
        "(",
        ")",
        "{",
        "}",
        "<",
        ">",
        "|",
        "=",
        "==",
        "->",
        "é",
        "e\u{301}",
        "ß",
        "Ω",
        "ж",
        "日本",
        "中文",
        "한",
        "ไทย",
        "हि",
        "ع",
        "🙂",
        "👍🏽",
        "👩\u{200d}💻",
        "🇺🇸",
        "1\u{fe0f}\u{20e3}",
        "\u{200b}",
        "\u{feff}",
        "\u{0}",
        "\u{7f}",
        "<|im_start|>",
        "<|im_end|>",
        "<|endoftext|>",
        "<start_of_turn>",
        "<end_of_turn>",
        "<unused7>",
        "[multimodal]",
        "<|im_",
        "end|>",
        "<eos>",
        "<pad>",
        "<0x0A>",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "                ",
        "\n\n\n\n\n\n",
        "Ġ",
        "Ċ",
    ];
    let mut s = String::new();
    for _ in 0..n_pieces {
        s.push_str(PIECES[rng.below(PIECES.len())]);
    }
    s
}

/// detokenize(tokenize(s)) == s for every text llama.cpp round-trips: byte-level BPE round-trips
/// all UTF-8, and Gemma's SentencePiece (no space prefix) all text without a literal `▁` (which
/// it cannot tell from an escaped space).
#[test]
fn round_trip_random_texts() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for model in [SMOL, GEMMA] {
        let t = tok(model);
        for i in 0..300 {
            let text = random_text(&mut rng, 1 + i % 40);
            for parse_special in [false, true] {
                let ids = t.tokenize(&text, false, parse_special);
                assert_eq!(
                    t.detokenize(&ids),
                    text,
                    "{model} parse_special={parse_special}: {ids:?}"
                );
            }
            // With add_special, a BOS (Gemma) comes first and renders as its text.
            let ids = t.tokenize(&text, true, true);
            let bos = t.bos().filter(|_| t.add_bos());
            assert_eq!(
                ids.first().copied() == bos && bos.is_some(),
                t.add_bos(),
                "{model}"
            );
            let body = if t.add_bos() { &ids[1..] } else { &ids[..] };
            assert_eq!(t.detokenize(body), text, "{model}");
        }
    }
}

#[test]
fn empty_and_tiny_inputs() {
    for model in [SMOL, GEMMA] {
        let t = tok(model);
        assert!(t.tokenize("", false, false).is_empty());
        assert!(t.tokenize("", false, true).is_empty());
        let with_bos: Vec<u32> = t.bos().filter(|_| t.add_bos()).into_iter().collect();
        assert_eq!(t.tokenize("", true, true), with_bos, "{model}");
        assert_eq!(t.detokenize(&[]), "");
        for s in [" ", "\n", "a", "\u{0}", "🙂"] {
            assert_eq!(
                t.detokenize(&t.tokenize(s, false, false)),
                s,
                "{model} {s:?}"
            );
        }
    }
}

/// Any bytes and any ids give a result, never a panic.
#[test]
fn arbitrary_bytes_and_ids() {
    let mut rng = Rng(12345);
    for model in [SMOL, GEMMA] {
        let t = tok(model);
        for len in [1, 2, 3, 7, 64, 1000] {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
                for (add, parse) in [(false, false), (true, true)] {
                    let ids = t.tokenize_bytes(&bytes, add, parse);
                    // A byte the vocabulary has no token for is dropped, as llama.cpp drops it
                    // (SmolLM2 has none for six control bytes): only such bytes give no ids.
                    let dropped = |b: &u8| t.tokenize_bytes(&[*b], false, false).is_empty();
                    assert!(
                        !ids.is_empty() || bytes.iter().all(dropped),
                        "{model}: {bytes:?}"
                    );
                    assert!(ids.iter().all(|&id| (id as usize) < t.n_vocab()));
                    let _ = t.detokenize(&ids);
                }
            }
        }
        let ids: Vec<u32> = (0..2000)
            .map(|_| (rng.next_u64() % (t.n_vocab() as u64 + 100)) as u32)
            .collect();
        let text = t.detokenize(&ids);
        let mut dec = StreamDecoder::new();
        let mut streamed = String::new();
        for &id in &ids {
            streamed += &dec.push(t, id);
        }
        streamed += &dec.finish();
        assert_eq!(streamed, text, "{model}: streaming equals detokenize");
        assert!(t.token_to_piece(u32::MAX).is_empty() && t.token_text(u32::MAX).is_empty());
    }
}

/// About 100 KB of mixed text: tokenized and back (speed is measured by the criterion bench
/// `bench/benches/tokenizer.rs`, not here).
#[test]
fn hundred_kb() {
    let mut rng = Rng(7);
    let mut text = String::new();
    let public = read_texts("tok_public.txt");
    while text.len() < 100_000 {
        text.push_str(&String::from_utf8_lossy(&public[rng.below(public.len())]));
        text.push_str(&random_text(&mut rng, 20));
    }
    for model in [SMOL, GEMMA] {
        let t = tok(model);
        let ids = t.tokenize(&text, false, false);
        assert!(
            ids.len() > text.len() / 10 && ids.len() < text.len(),
            "{model}: {} tokens",
            ids.len()
        );
        assert_eq!(t.detokenize(&ids), text, "{model}");
    }
}

/// A 10 MB input, with invalid UTF-8 in it, tokenizes without trouble.
#[test]
fn ten_megabytes() {
    let mut chunk = Vec::new();
    for text in read_texts("tok_public.txt") {
        chunk.extend_from_slice(&text);
        chunk.push(b'\n');
    }
    chunk.extend_from_slice(b"\xff\xfe bad \xe6\x97 bytes\n");
    let mut big = Vec::with_capacity(10 << 20);
    while big.len() < 10 << 20 {
        big.extend_from_slice(&chunk);
    }
    let reps = big.len() / chunk.len();
    for model in [SMOL, GEMMA] {
        let t = tok(model);
        let ids = t.tokenize_bytes(&big, true, true);
        let one = t.tokenize_bytes(&chunk, false, true);
        // The chunk ends in a newline, so each repetition tokenizes about the same.
        assert!(
            ids.len() > reps * one.len() / 2,
            "{model}: {} tokens",
            ids.len()
        );
        let text = t.detokenize_bytes(&ids, true, true);
        assert!(text.len() > 9 << 20, "{model}");
    }
}

/// `nib tokenize` prints what llama-tokenize prints.
#[test]
fn cli_tokenize() {
    let model = common::model_path(&format!("{GEMMA}.gguf"));
    let run = |args: &[&str]| {
        let out = common::nib()
            .arg("tokenize")
            .arg("-m")
            .arg(&model)
            .args(args)
            .output()
            .unwrap();
        common::assert_success("nib tokenize", &out);
        String::from_utf8(out.stdout).unwrap()
    };
    let cases = read_json(&format!("{GEMMA}.logits.json"));
    let prompt = cases[4]["prompt"].as_str().unwrap(); // the chat-template prompt
    let want: Vec<String> = token_ids(&cases[4]["tokens"])
        .iter()
        .map(u32::to_string)
        .collect();
    assert_eq!(
        run(&["-p", prompt, "--parse-special", "--ids", "--no-escape"]),
        format!("[{}]\n", want.join(", "))
    );
    assert_eq!(
        run(&["-p", "Hello world\\n", "--show-count"]),
        "     2 -> '<bos>'\n  9259 -> 'Hello'\n  1902 -> ' world'\n   107 -> '\n'\nTotal number of tokens: 4\n"
    );
    assert_eq!(run(&["-p", "Hi", "--no-bos", "--ids"]), "[10979]\n");
}

#[test]
fn tokenizer_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Tokenizer>();
    let t = tok(SMOL);
    let texts = ["Hello world", "<|im_start|>user\nHi<|im_end|>", "日本語 🙂"];
    let want: Vec<Vec<u32>> = texts.iter().map(|s| t.tokenize(s, true, true)).collect();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for (text, want) in texts.iter().zip(&want) {
                    assert_eq!(&t.tokenize(text, true, true), want);
                }
            });
        }
    });
}
