use super::*;
use crate::gguf::{GgufWriter, MetaValue};
use std::path::PathBuf;

/// SmolLM2-135M-Instruct's `tokenizer.chat_template`, byte for byte (its string literals hold
/// real newlines).
const SMOLLM2_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

struct Spec<'a> {
    arch: &'a str,
    template: Option<&'a str>,
    tokens: &'a [&'a str],
    bos: u32,
    eos: u32,
    tok_model: &'a str,
    add_bos: Option<bool>,
}

impl Default for Spec<'_> {
    fn default() -> Self {
        Spec {
            arch: "llama",
            template: None,
            tokens: &["<unk>", "<s>", "</s>", "a", "b"],
            bos: 1,
            eos: 2,
            tok_model: "gpt2",
            add_bos: Some(false),
        }
    }
}

fn gguf(s: Spec) -> Gguf {
    let mut w = GgufWriter::new();
    w.set("general.architecture", MetaValue::str(s.arch))
        .unwrap();
    w.set("tokenizer.ggml.model", MetaValue::str(s.tok_model))
        .unwrap();
    w.set(
        "tokenizer.ggml.tokens",
        MetaValue::str_array(s.tokens.iter()),
    )
    .unwrap();
    w.set("tokenizer.ggml.bos_token_id", MetaValue::U32(s.bos))
        .unwrap();
    w.set("tokenizer.ggml.eos_token_id", MetaValue::U32(s.eos))
        .unwrap();
    if let Some(b) = s.add_bos {
        w.set("tokenizer.ggml.add_bos_token", MetaValue::Bool(b))
            .unwrap();
    }
    if let Some(t) = s.template {
        w.set("tokenizer.chat_template", MetaValue::str(t)).unwrap();
    }
    Gguf::from_bytes(w.to_bytes().unwrap()).unwrap()
}

fn model(name: &str) -> Gguf {
    let dir = std::env::var_os("NIB_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run tools/fetch-models.sh (or set NIB_MODELS)",
        path.display()
    );
    Gguf::open(&path).unwrap()
}

fn conversation() -> Vec<Message> {
    vec![
        Message::system("You are a pirate."),
        Message::user("Hello!"),
        Message::assistant("Arr, hello."),
        Message::user("Where is the treasure?"),
    ]
}

/// What SmolLM2's template gives, worked out from its text: no default system prompt when the
/// first message is a system one; each message `<|im_start|>{role}\n{content}<|im_end|>\n`; the
/// generation prompt `<|im_start|>assistant\n`.
const SMOLLM2_EXPECTED: &str = "<|im_start|>system\nYou are a pirate.<|im_end|>\n\
<|im_start|>user\nHello!<|im_end|>\n\
<|im_start|>assistant\nArr, hello.<|im_end|>\n\
<|im_start|>user\nWhere is the treasure?<|im_end|>\n\
<|im_start|>assistant\n";

#[test]
fn smollm2_template_renders_like_transformers() {
    let g = gguf(Spec {
        template: Some(SMOLLM2_TEMPLATE),
        tokens: &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        bos: 1,
        eos: 2,
        ..Spec::default()
    });
    let t = ChatTemplate::from_gguf(&g, None).unwrap();
    assert_eq!(t.name(), "gguf");
    assert_eq!(t.bos_token(), "<|im_start|>");
    assert_eq!(t.eos_token(), "<|im_end|>");
    assert_eq!(t.render(&conversation(), true).unwrap(), SMOLLM2_EXPECTED);
    // Without a system message the template supplies its own; without the generation prompt
    // the text ends after the last turn.
    assert_eq!(
        t.render(&[Message::user("Hi")], false).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n"
    );
}

#[test]
fn real_smollm2_file() {
    let g = model("SmolLM2-135M-Instruct.Q4_1.gguf");
    let t = ChatTemplate::from_gguf(&g, None).unwrap();
    assert_eq!(t.name(), "gguf");
    assert_eq!(t.source(), SMOLLM2_TEMPLATE);
    assert_eq!(t.render(&conversation(), true).unwrap(), SMOLLM2_EXPECTED);
}

/// Gemma's format, worked out by hand: the system text opens the first user turn followed by a
/// blank line, `assistant` is `model`, contents are trimmed.
const GEMMA_EXPECTED: &str = "<start_of_turn>user\nYou are a pirate.\n\nHello!<end_of_turn>\n\
<start_of_turn>model\nArr, hello.<end_of_turn>\n\
<start_of_turn>user\nWhere is the treasure?<end_of_turn>\n\
<start_of_turn>model\n";

#[test]
fn gemma_without_a_template_gets_the_gemma_format() {
    let tokens = [
        "<pad>",
        "<eos>",
        "<bos>",
        "<start_of_turn>",
        "<end_of_turn>",
    ];
    let spec = || Spec {
        arch: "gemma3",
        tokens: &tokens,
        bos: 2,
        eos: 1,
        tok_model: "llama",
        add_bos: None,
        ..Spec::default()
    };
    let t = ChatTemplate::from_gguf(&gguf(spec()), None).unwrap();
    assert_eq!(t.name(), "gemma");
    // The SentencePiece tokenizer adds BOS itself (add_bos_token defaults to true for it), so the
    // rendered text does not repeat it.
    let mut conv = conversation();
    conv[1].content = "  Hello!\n".into();
    assert_eq!(t.render(&conv, true).unwrap(), GEMMA_EXPECTED);
    // A tokenizer that does not add BOS keeps the template's.
    let t = ChatTemplate::from_gguf(
        &gguf(Spec {
            add_bos: Some(false),
            ..spec()
        }),
        None,
    )
    .unwrap();
    assert_eq!(
        t.render(&conv, true).unwrap(),
        format!("<bos>{GEMMA_EXPECTED}")
    );
    // No system message, no generation prompt.
    assert_eq!(
        t.render(&[Message::user("Hi"), Message::assistant("Yo")], false)
            .unwrap(),
        "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n"
    );
}

#[test]
fn real_gemma_file() {
    let g = model("gemma-3-270m-q4_k_m.gguf");
    let t = ChatTemplate::from_gguf(&g, None).unwrap();
    assert_eq!(t.name(), "gemma");
    assert_eq!(t.bos_token(), "<bos>");
    assert_eq!(t.eos_token(), "<eos>");
    assert_eq!(t.render(&conversation(), true).unwrap(), GEMMA_EXPECTED);
}

#[test]
fn unknown_architecture_without_a_template_gets_chatml() {
    let g = gguf(Spec {
        arch: "mystery",
        ..Spec::default()
    });
    let t = ChatTemplate::from_gguf(&g, None).unwrap();
    assert_eq!(t.name(), "chatml");
    assert_eq!(
        t.render(&[Message::system("S"), Message::user("U")], true)
            .unwrap(),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn builtin_chosen_from_the_vocabulary() {
    let t = |spec: Spec| {
        ChatTemplate::from_gguf(&gguf(spec), None)
            .unwrap()
            .name()
            .to_string()
    };
    // A vocabulary of two tokens, BOS and EOS.
    let two = |tokens| Spec {
        tokens,
        bos: 0,
        eos: 1,
        ..Spec::default()
    };
    assert_eq!(
        t(two(&["<|begin_of_text|>", "<|start_header_id|>"])),
        "llama3"
    );
    assert_eq!(t(two(&["<s>", "<|im_start|>"])), "chatml");
    assert_eq!(
        t(Spec {
            tok_model: "llama",
            ..Spec::default()
        }),
        "llama2"
    );
    assert_eq!(
        t(Spec {
            tok_model: "llama",
            arch: "qwen2",
            ..Spec::default()
        }),
        "chatml"
    );
}

#[test]
fn llama3_and_llama2_builtins() {
    let t = ChatTemplate::builtin("llama3", "<|begin_of_text|>", "<|eot_id|>").unwrap();
    assert_eq!(
        t.render(&[Message::system("Be brief. "), Message::user("Hi")], true)
            .unwrap(),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    let t = ChatTemplate::builtin("llama2", "<s>", "</s>").unwrap();
    assert_eq!(
        t.render(&conversation(), true).unwrap(),
        "<s>[INST] <<SYS>>\nYou are a pirate.\n<</SYS>>\n\nHello! [/INST] Arr, hello. </s>\
         <s>[INST] Where is the treasure? [/INST]"
    );
    assert!(ChatTemplate::builtin("nope", "", "")
        .unwrap_err()
        .to_string()
        .contains("chatml, gemma, llama3, llama2"));
}

#[test]
fn raise_exception_gives_a_clear_error() {
    let src = "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.content }}{% endfor %}";
    let g = gguf(Spec {
        template: Some(src),
        ..Spec::default()
    });
    let t = ChatTemplate::from_gguf(&g, None).unwrap();
    assert_eq!(t.render(&[Message::user("ok")], true).unwrap(), "ok");
    let e = t
        .render(&[Message::system("no")], true)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "chat template gguf refused the conversation: System role not supported"
    );
}

#[test]
fn template_errors_name_the_template_and_line() {
    let e = ChatTemplate::new("bad", "line one\n{% if %}", "", "")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("chat template bad does not parse: syntax error"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");
    let t = ChatTemplate::new("t", "{{ messages[0].content.nosuchmethod() }}", "", "").unwrap();
    let e = t
        .render(&[Message::user("x")], false)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("chat template t failed: "), "{e}");
}

/// `src` as a template, rendered over `msgs` without a generation prompt.
fn render(src: &str, msgs: &[Message]) -> String {
    let t = ChatTemplate::new("t", src, "", "").unwrap();
    t.render(msgs, false).unwrap()
}

#[test]
fn python_string_methods_work() {
    let src = "{% for m in messages %}{% if m.content.startswith('/') %}[cmd {{ m.content[1:].strip().upper() }}]\
{% else %}{{ m.content.strip() }}|{{ m.content.split(',') | length }}{% endif %}{% endfor %}";
    let msgs = [Message::user("/ go "), Message::user(" a,b ")];
    assert_eq!(render(src, &msgs), "[cmd GO]a,b|2");
}

#[test]
fn trim_and_lstrip_blocks_as_transformers() {
    // Block tags on their own lines leave no blank lines or indentation behind; a variable
    // tag's newline stays. (Checked against Jinja2 with trim_blocks and lstrip_blocks.)
    let src = "{% for m in messages %}\n    {% if m.role == 'user' %}\nU: {{ m.content }}\n    {% else %}\nA: {{ m.content }}\n    {% endif %}\n{% endfor %}\n";
    let msgs = [Message::user("hi"), Message::assistant("yo")];
    assert_eq!(render(src, &msgs), "U: hi\nA: yo\n");
}

#[test]
fn tojson_writes_like_python_json_dumps() {
    assert_eq!(
        render(
            "{{ messages | tojson }}",
            &[Message::user("say \"hi\"\n<b>é</b>")]
        ),
        r#"[{"role": "user", "content": "say \"hi\"\n<b>é</b>"}]"#
    );
    assert_eq!(
        render(
            "{{ {'b': 1, 'a': [1, 2.5, 3.0, none, true]} | tojson(indent=2) }}",
            &[]
        ),
        "{\n  \"b\": 1,\n  \"a\": [\n    1,\n    2.5,\n    3.0,\n    null,\n    true\n  ]\n}"
    );
    assert_eq!(
        render(
            "{{ {'b': 1, 'a': {}} | tojson(sort_keys=true) }}|{{ [] | tojson }}",
            &[]
        ),
        r#"{"a": {}, "b": 1}|[]"#
    );
}

#[test]
fn strftime_formats_utc_dates() {
    assert_eq!(strftime("%d %b %Y", 0), "01 Jan 1970");
    assert_eq!(
        strftime(
            "%Y-%m-%d %H:%M:%S %a %A %b %B %j %y %I %p %e",
            1_709_251_200
        ),
        "2024-03-01 00:00:00 Fri Friday Mar March 061 24 12 AM  1"
    );
    assert_eq!(
        strftime("%Y-%m-%d %a %j", 951_782_400),
        "2000-02-29 Tue 060"
    );
    assert_eq!(
        strftime("%Y-%m-%d %H:%M:%S %a %j %I %p", 4_107_542_399),
        "2100-02-28 23:59:59 Sun 059 11 PM"
    );
    assert_eq!(strftime("100%% %Q", 0), "100% %Q");
    // Through the template function: today's date, in the format llama 3.1 templates use.
    let t = ChatTemplate::new("d", "{{ strftime_now('%d %b %Y') }}", "", "").unwrap();
    let today = t.render(&[], false).unwrap();
    assert_eq!(today.len(), 11, "{today}");
    assert!(MONTHS.iter().any(|m| today.contains(&m[..3])), "{today}");
}

#[test]
fn override_by_name_file_or_text() {
    let g = gguf(Spec {
        template: Some(SMOLLM2_TEMPLATE),
        ..Spec::default()
    });
    let t = ChatTemplate::from_gguf(&g, Some("gemma")).unwrap();
    assert_eq!(t.name(), "gemma");
    assert!(t
        .render(&[Message::user("x")], true)
        .unwrap()
        .contains("<start_of_turn>user\nx"));

    let path = std::env::temp_dir().join(format!("nib-chat-template-{}.jinja", std::process::id()));
    std::fs::write(
        &path,
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}\n",
    )
    .unwrap();
    let t = ChatTemplate::from_gguf(&g, Some(path.to_str().unwrap())).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(t.name(), path.display().to_string());
    // Jinja drops the file's single trailing newline, as transformers does.
    assert_eq!(t.render(&[Message::user("x")], true).unwrap(), "<user>x");

    let t = ChatTemplate::from_gguf(&g, Some("{{ messages | length }}")).unwrap();
    assert_eq!(t.name(), "custom");
    assert_eq!(t.render(&conversation(), true).unwrap(), "4");

    let e = ChatTemplate::from_gguf(&g, Some("no-such-template"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unknown chat template \"no-such-template\""),
        "{e}"
    );
}

#[test]
fn hostile_templates_run_out_of_fuel_or_hit_the_output_cap() {
    // A string doubled 40 times (a terabyte), nested loops of a billion steps, a huge repeat:
    // each stops with a clear error, quickly and without the memory.
    let t0 = std::time::Instant::now();
    for src in [
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}{% endfor %}{% endfor %}{% endfor %}",
        "{{ 'x' * 1000000000000 }}",
    ] {
        let t = ChatTemplate::new("evil", src, "", "").unwrap();
        let e = t.render(&[Message::user("hi")], true).unwrap_err().to_string();
        assert!(
            e.starts_with("chat template evil ran out of its budget"),
            "{src}: {e}"
        );
    }
    // Within the fuel but beyond the output cap.
    let t = ChatTemplate::new("big", "{{ 'x' * 40000000 }}", "", "").unwrap();
    let e = t
        .render(&[Message::user("hi")], true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("more than the limit"), "{e}");
    assert!(t0.elapsed().as_secs() < 10, "{:?}", t0.elapsed());
    // A real template over a 10 MB message (the largest request body) stays within budget.
    let big = "word ".repeat(2 << 20);
    let out = render(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}",
        &[Message::system("be brief"), Message::user(big.as_str())],
    );
    assert!(out.len() > big.len());
}
