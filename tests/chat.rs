//! Chat prompts against llama.cpp (rendered text and token ids, goldens from
//! `tools/make-goldens.sh chat`), `nib run --json`, and `nib chat` driven through a pipe.

mod common;

use clap::Parser;
use common::{model_path, read_json, token_ids, GEMMA3, SMOLLM2};
use nib::chat::{ChatTemplate, Message};
use nib::cli::{Cli, Command};
use nib::gguf::Gguf;
use nib::tokenizer::Tokenizer;
use serde_json::Value;
use std::io::Write;
use std::process::{Command as Process, Output, Stdio};

const QUESTION: &str = "What is the capital of France?";

/// The conversations the chat goldens hold, in order.
fn conversations() -> Vec<Vec<Message>> {
    vec![
        vec![Message::user(QUESTION)],
        vec![
            Message::system("You are terse."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user(QUESTION),
        ],
    ]
}

/// Texts of a refdump input file (separated by lines holding only 0x1E).
fn golden_texts(file: &str) -> Vec<String> {
    let p = common::golden_path(file);
    let all = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    all.split("\n\x1e\n").map(str::to_string).collect()
}

fn load(model: &str) -> (Gguf, Tokenizer) {
    let g = Gguf::open(model_path(model)).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    (g, tok)
}

/// Render each conversation with the model's own template: the text must be the golden's input
/// byte for byte, and nib's tokens llama.cpp's (`add_special`, `parse_special`).
fn check_chat_goldens(model: &str, input: &str, golden: &str) -> (Gguf, Tokenizer, Vec<Value>) {
    let (g, tok) = load(model);
    let tmpl = ChatTemplate::from_gguf(&g, None).unwrap();
    let texts = golden_texts(input);
    let cases = read_json(golden).as_array().unwrap().clone();
    let convs = conversations();
    assert_eq!((texts.len(), cases.len()), (convs.len(), convs.len()));
    for ((conv, text), case) in convs.iter().zip(&texts).zip(&cases) {
        let rendered = tmpl.render(conv, true).unwrap();
        assert_eq!(
            &rendered,
            text,
            "{model}: template {} rendering",
            tmpl.name()
        );
        assert_eq!(
            case["text"].as_str(),
            Some(text.as_str()),
            "{golden} is out of date: rerun tools/make-goldens.sh chat"
        );
        let want = token_ids(&case["tokens_add_special_parse_special"]);
        assert_eq!(
            tok.tokenize(&rendered, true, true),
            want,
            "{model}: tokens of {rendered:?}"
        );
    }
    (g, tok, cases)
}

#[test]
fn smollm2_chat_prompt_tokens_match_llama_cpp() {
    let (g, tok, cases) = check_chat_goldens(
        SMOLLM2,
        "chat_smollm2.txt",
        "SmolLM2-135M-Instruct.Q4_1.chat.tok.json",
    );
    // `nib run --chat` builds exactly that prompt.
    let cli = Cli::try_parse_from(["nib", "run", "--chat", "-p", QUESTION]).unwrap();
    let Command::Run(args) = cli.command else {
        unreachable!()
    };
    let (text, tokens) = nib::cli::run::build_prompt(&args, QUESTION, &g, &tok).unwrap();
    assert_eq!(Some(text.as_str()), cases[0]["text"].as_str());
    assert_eq!(
        tokens,
        token_ids(&cases[0]["tokens_add_special_parse_special"])
    );
    // Special tokens became single ids: <|im_start|> is 1 and <|im_end|> 2 in this vocabulary.
    assert_eq!(tokens.iter().filter(|&&t| t == 1).count(), 3);
    assert_eq!(tokens.iter().filter(|&&t| t == 2).count(), 2);
}

#[test]
fn gemma_chat_turns_use_start_of_turn() {
    let (_, tok, cases) = check_chat_goldens(
        GEMMA3,
        "chat_gemma3.txt",
        "gemma-3-270m-q4_k_m.chat.tok.json",
    );
    let text = cases[1]["text"].as_str().unwrap();
    assert!(
        text.starts_with("<start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n"),
        "{text:?}"
    );
    assert!(
        text.contains("<start_of_turn>model\nHello!<end_of_turn>\n"),
        "{text:?}"
    );
    assert!(text.ends_with("<start_of_turn>model\n"), "{text:?}");
    let tokens = token_ids(&cases[1]["tokens_add_special_parse_special"]);
    let sot = tok
        .find_token("<start_of_turn>")
        .expect("gemma has <start_of_turn>");
    assert_eq!(
        tokens[0],
        tok.bos().unwrap(),
        "BOS is added once, by the tokenizer"
    );
    assert_eq!(tokens[1], sot);
    assert_eq!(tokens.iter().filter(|&&t| t == sot).count(), 4);
}

fn nib() -> Process {
    let mut c = common::nib();
    c.env_remove("NIB_LEVEL");
    c
}

fn run_with_stdin(mut cmd: Process, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nib runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    common::assert_success("nib", &out);
    out
}

#[test]
fn run_json_carries_text_tokens_timings_and_stop_reason() {
    let out = nib()
        .args([
            "run", "--json", "--chat", "--temp", "0", "-n", "4", "-c", "256", "-p", QUESTION,
        ])
        .arg("-m")
        .arg(model_path(SMOLLM2))
        .output()
        .unwrap();
    common::assert_success("nib run --json", &out);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout:?}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    // llama.cpp's greedy continuation of this prompt (refdump MODEL logits chat_smollm2.txt 8)
    // starts with these ids ("L'Étoile, la Mar": the 135M model is no geographer).
    assert_eq!(token_ids(&v["tokens"]), [60, 23, 39614, 1141]);
    assert_eq!(v["text"], "L'Éto");
    assert_eq!(v["stop_reason"], "length");
    assert_eq!(v["prompt_tokens"], 37);
    let t = &v["timings"];
    assert_eq!(t["prompt_n"], 37);
    assert_eq!(t["predicted_n"], 4);
    for k in [
        "load_ms",
        "prompt_ms",
        "prompt_per_second",
        "predicted_ms",
        "predicted_per_second",
    ] {
        assert!(
            t[k].as_f64().is_some_and(|x| x > 0.0),
            "timings.{k} = {}",
            t[k]
        );
    }
}

/// The per-turn stats `nib chat` prints on stderr: (prompt tokens evaluated, tokens cached).
fn turn_stats(stderr: &str) -> Vec<(usize, usize)> {
    let num_after = |line: &str, key: &str| -> usize {
        let rest = &line[line
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
            + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    stderr
        .lines()
        .filter(|l| l.contains("| cached: "))
        .map(|l| (num_after(l, "prompt: "), num_after(l, "cached: ")))
        .collect()
}

#[test]
fn chat_through_a_pipe_keeps_the_kv_cache_between_turns() {
    let mut cmd = nib();
    cmd.args(["chat", "--temp", "0", "-n", "4", "-c", "512", "-m"])
        .arg(model_path(SMOLLM2));
    let out = run_with_stdin(cmd, "Hi\nWhat is the capital of France?\n\n/help\nThanks\n");
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        stderr.contains("/reset"),
        "/help lists the commands: {stderr}"
    );
    assert!(
        !stdout.starts_with("> "),
        "no prompt decorations in pipe mode: {stdout:?}"
    );
    assert!(
        stdout.ends_with('\n') && !stdout.trim().is_empty(),
        "{stdout:?}"
    );
    let stats = turn_stats(&stderr);
    assert_eq!(stats.len(), 3, "three turns: {stderr}");
    let (n1, c1) = stats[0];
    assert_eq!(c1, 0, "the first turn evaluates everything");
    let (n2, c2) = stats[1];
    assert!(
        c2 >= n1,
        "turn 2 reuses all of turn 1's prompt ({n1} tokens) but cached {c2}: {stderr}"
    );
    assert!(n2 < n1, "turn 2 evaluated {n2} tokens, turn 1 {n1}");
    let (n3, c3) = stats[2];
    assert!(
        c3 >= c2 + n2,
        "turn 3 reuses turns 1 and 2 ({} tokens) but cached {c3}: {stderr}",
        c2 + n2
    );
    assert!(n3 < c3, "turn 3 evaluated {n3} tokens");
}

#[test]
fn chat_drops_the_oldest_turns_when_the_context_is_full() {
    let mut cmd = nib();
    cmd.args([
        "chat",
        "--temp",
        "0",
        "-n",
        "3",
        "-c",
        "48",
        "--system",
        "Be brief.",
        "-m",
    ])
    .arg(model_path(SMOLLM2));
    let out = run_with_stdin(cmd, "Hi\nHello\nHey\nYo\nHi again\n");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("dropped the oldest"), "{stderr}");
    assert_eq!(
        turn_stats(&stderr).len(),
        5,
        "every message got a reply: {stderr}"
    );
    for line in stderr.lines().filter(|l| l.contains("context: ")) {
        let used: usize = line
            .rsplit("context: ")
            .next()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(used <= 48, "{line}");
    }
}

#[test]
fn run_parses_special_tokens_in_a_raw_prompt_unless_told_not_to() {
    // `nib run -p` with a raw ChatML prompt: `<|im_start|>` (id 1 in SmolLM2's vocabulary) is
    // one token, as llama-cli and llama-simple make it; with --no-parse-special it is text.
    let g = nib::gguf::Gguf::open(common::model_path(SMOLLM2)).unwrap();
    let tok = nib::tokenizer::Tokenizer::from_gguf(&g).unwrap();
    let raw = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    let build = |extra: &[&str]| {
        let mut argv = vec!["nib", "run", "-p", raw];
        argv.extend_from_slice(extra);
        let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        nib::cli::run::build_prompt(&args, raw, &g, &tok).unwrap().1
    };
    let parsed = build(&[]);
    assert_eq!(parsed.iter().filter(|&&t| t == 1).count(), 2, "{parsed:?}");
    assert_eq!(parsed.iter().filter(|&&t| t == 2).count(), 1, "{parsed:?}");
    assert_eq!(parsed, tok.tokenize(raw, true, true));
    let text = build(&["--no-parse-special"]);
    assert!(!text.contains(&1) && !text.contains(&2), "{text:?}");
    assert_eq!(text, tok.tokenize(raw, true, false));
    // `<|im_start|>` alone: one token parsed, several as text.
    let one = |extra: &[&str]| {
        let mut argv = vec!["nib", "run", "-p", "<|im_start|>"];
        argv.extend_from_slice(extra);
        let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else {
            unreachable!()
        };
        nib::cli::run::build_prompt(&args, "<|im_start|>", &g, &tok)
            .unwrap()
            .1
    };
    let bos = usize::from(tok.add_bos());
    assert_eq!(one(&[]).len(), 1 + bos);
    assert!(one(&["--no-parse-special"]).len() > 2 + bos);
}
