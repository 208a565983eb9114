//! Batch jobs (`nib batch`): requests as JSON Lines in, one result line per request out,
//! resumable after an interruption.
//!
//! **Input**: one JSON object per line, blank lines skipped:
//! - `id`: a string or an integer, unique in the file; it names the result.
//! - `prompt` (text, continued as is, special-token text parsed as `/v1/completions` does; or
//!   token ids) or `messages` (`[{"role", "content"}, ...]`, rendered with the model's chat
//!   template), one of the two.
//! - optional: the settings of `nib serve`'s completion endpoints (`max_tokens`, `temperature`,
//!   `top_k`, `top_p`, `min_p`, `seed`, `stop`, `repeat_penalty`, `repeat_last_n`,
//!   `frequency_penalty`, `presence_penalty`, `logit_bias`, ...), checked by the same validator
//!   ([`crate::request`]), so a line means what the same JSON sent to the server means. They
//!   replace the command line's settings for that request; `null` is the same as absent.
//!
//! Unknown fields are reported and ignored.
//!
//! **Output**: one line per request, written and flushed as soon as it finishes:
//! `{"id", "text", "tokens", "finish_reason", "usage", "timings", "seed"}`, or `{"id", "error"}`
//! when the request was refused (a bad field, a prompt longer than the context) or failed.
//!
//! **Malformed lines**: a line that is not a JSON object, or has no usable `id` (missing, not a
//! string or integer, or repeating an earlier line's), cannot be named in the output: it is
//! reported on stderr with its line number and skipped. A line with a usable `id` but other
//! faults gets an error result line, so every id of the input appears in the output exactly
//! once. The command exits with an error status when any line was malformed or failed.
//!
//! **Resuming**: the output file is read first and the ids already in it (results and errors
//! alike) are skipped. An incomplete last line, as a kill mid-write leaves, is cut off and its
//! request is run again. To retry failed requests, delete their error lines.

use crate::chat::Message;
use crate::generate::GenerateOutput;
use crate::request::{parse_gen, parse_messages, parse_prompt, Object, Prompt, KNOWN_FIELDS};
use crate::sample::SamplerOverrides;
use serde_json::{json, Value};
use std::collections::HashSet;

/// What a request asks to continue.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Plain text, tokenized with special-token text parsed (as `/v1/completions` does).
    Prompt(String),
    /// Token ids, as they are.
    Tokens(Vec<u32>),
    /// A conversation, rendered with the chat template.
    Messages(Vec<Message>),
}

/// One input line, parsed.
#[derive(Clone, Debug)]
pub struct Request {
    pub id: Value,
    pub input: Input,
    /// Most tokens to generate (`usize::MAX`: until the context is full); `None`: `-n`.
    pub max_tokens: Option<usize>,
    /// Sampling settings given by the request.
    pub overrides: SamplerOverrides,
    /// Stop strings given by the request (replacing the command line's).
    pub stop: Option<Vec<String>>,
}

impl Request {
    /// The id as it identifies the request: its compact JSON text (`"a"` and `1` differ).
    pub fn key(&self) -> String {
        id_key(&self.id)
    }
}

pub fn id_key(id: &Value) -> String {
    id.to_string()
}

/// Why a line could not become a request; `id` is there when the line has a usable one.
#[derive(Clone, Debug, PartialEq)]
pub struct LineError {
    pub id: Option<Value>,
    pub message: String,
}

/// Whether a request may have this field (`id` and the fields of [`crate::request`]).
pub fn is_known_field(name: &str) -> bool {
    name == "id" || KNOWN_FIELDS.contains(&name)
}

/// Parse one input line. On success, also the names of unknown fields (ignored).
pub fn parse_line(line: &str) -> Result<(Request, Vec<String>), LineError> {
    let bad = |message: String| LineError { id: None, message };
    let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(obj) = v else {
        return Err(bad("not a JSON object".into()));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => return Err(bad("no \"id\"".into())),
        Some(id @ Value::String(_)) => id.clone(),
        Some(id @ Value::Number(n)) if n.is_i64() || n.is_u64() => id.clone(),
        Some(other) => {
            return Err(bad(format!(
                "\"id\" must be a string or an integer, not {other}"
            )))
        }
    };
    let unknown = obj.keys().filter(|k| !is_known_field(k)).cloned().collect();
    parse_fields(&obj, id.clone())
        .map(|r| (r, unknown))
        .map_err(|message| LineError {
            id: Some(id),
            message,
        })
}

fn parse_fields(obj: &Object, id: Value) -> Result<Request, String> {
    let present = |name: &str| obj.get(name).is_some_and(|v| !v.is_null());
    let input = match (present("prompt"), present("messages")) {
        (true, true) => return Err("give \"prompt\" or \"messages\", not both".into()),
        (false, false) => return Err("no \"prompt\" or \"messages\"".into()),
        (true, false) => match parse_prompt(obj).map_err(|e| e.message)? {
            Prompt::Text(t) => Input::Prompt(t),
            Prompt::Tokens(t) => Input::Tokens(t),
        },
        (false, true) => Input::Messages(parse_messages(obj).map_err(|e| e.message)?),
    };
    let g = parse_gen(obj).map_err(|e| e.message)?;
    Ok(Request {
        id,
        input,
        max_tokens: g.max_tokens,
        overrides: g.overrides,
        stop: g.stop,
    })
}

/// The result line of a finished request. `prompt_tokens` is the whole prompt's length (the
/// part found in the KV cache included; `timings.cache_n` says how much that was).
pub fn result_value(id: &Value, out: &GenerateOutput, prompt_tokens: usize, seed: u64) -> Value {
    let mut timings = out.timings();
    timings.insert(
        "cache_n".into(),
        json!(prompt_tokens.saturating_sub(out.n_prompt)),
    );
    json!({
        "id": id,
        "text": out.text,
        "tokens": out.tokens,
        "finish_reason": out.stop.finish_reason(),
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": out.tokens.len(),
            "total_tokens": prompt_tokens + out.tokens.len(),
        },
        "timings": timings,
        "seed": seed,
    })
}

/// The result line of a refused or failed request.
pub fn error_value(id: &Value, message: &str) -> Value {
    json!({ "id": id, "error": message })
}

/// A result as one line of JSON (no newline), its fields in a readable order: `id` first, the
/// long `tokens` array near the end.
pub fn to_line(v: &Value) -> String {
    const ORDER: [&str; 8] = [
        "id",
        "error",
        "text",
        "finish_reason",
        "usage",
        "timings",
        "tokens",
        "seed",
    ];
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let rank = |k: &str| ORDER.iter().position(|&o| o == k).unwrap_or(ORDER.len());
    let mut fields: Vec<(&String, &Value)> = obj.iter().collect();
    fields.sort_by_key(|(k, _)| rank(k));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// What an existing output file holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resume {
    /// Keys ([`id_key`]) of the ids with a result line.
    pub done: HashSet<String>,
    /// Bytes to keep: everything but an incomplete last line.
    pub keep: usize,
    /// The kept text does not end with a newline (a complete last line without one).
    pub needs_newline: bool,
    /// 1-based numbers of complete lines that are not result objects (kept, ignored).
    pub bad_lines: Vec<usize>,
}

/// Read an output file's bytes: which ids are done, and where an incomplete last line (a kill
/// mid-write) begins.
pub fn scan_results(bytes: &[u8]) -> Resume {
    let mut r = Resume {
        keep: bytes.len(),
        ..Resume::default()
    };
    let id_of = |line: &[u8]| -> Option<String> {
        let v: Value = serde_json::from_slice(line).ok()?;
        v.as_object()?
            .get("id")
            .filter(|id| !id.is_null())
            .map(id_key)
    };
    let mut start = 0;
    let mut lineno = 0;
    while start < bytes.len() {
        lineno += 1;
        let (line, complete) = match bytes[start..].iter().position(|&b| b == b'\n') {
            Some(p) => (&bytes[start..start + p], true),
            None => (&bytes[start..], false),
        };
        match id_of(line) {
            Some(key) => {
                r.done.insert(key);
                r.needs_newline = !complete;
            }
            None if !complete => r.keep = start,
            None if line.iter().all(u8::is_ascii_whitespace) => {}
            None => r.bad_lines.push(lineno),
        }
        start += line.len() + 1;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Request {
        parse_line(line)
            .unwrap_or_else(|e| panic!("{line}: {}", e.message))
            .0
    }

    #[test]
    fn parses_prompts_and_messages() {
        let r = parse(
            r#"{"id": "a", "prompt": "Hi", "max_tokens": 2, "temperature": 0, "stop": "x", "seed": 7}"#,
        );
        assert_eq!(r.key(), "\"a\"");
        assert_eq!(r.input, Input::Prompt("Hi".into()));
        assert_eq!(r.max_tokens, Some(2));
        assert_eq!(r.overrides.temp, Some(0.0));
        assert_eq!(r.overrides.seed, Some(7));
        assert_eq!(r.stop, Some(vec!["x".to_string()]));
        let r = parse(
            r#"{"id": 3, "messages": [{"role": "user", "content": "Hi"}], "stop": ["a", "b"], "top_k": 5, "top_p": null}"#,
        );
        assert_eq!(r.key(), "3");
        assert_eq!(r.input, Input::Messages(vec![Message::user("Hi")]));
        assert_eq!(r.stop, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(r.overrides.top_k, Some(5));
        assert_eq!(r.overrides.top_p, None);
        assert_eq!(r.max_tokens, None);
    }

    #[test]
    fn reports_unknown_fields() {
        let (_, unknown) = parse_line(r#"{"id": 1, "prompt": "x", "max_token": 3}"#).unwrap();
        assert_eq!(unknown, ["max_token"]);
    }

    #[test]
    fn lines_without_a_usable_id_have_no_id_in_the_error() {
        for line in [
            "{",
            "[1]",
            r#"{"prompt": "x"}"#,
            r#"{"id": 1.5, "prompt": "x"}"#,
            r#"{"id": null, "prompt": "x"}"#,
        ] {
            let e = parse_line(line).unwrap_err();
            assert_eq!(e.id, None, "{line}: {}", e.message);
        }
    }

    #[test]
    fn faulty_fields_keep_the_id() {
        for (line, msg) in [
            (r#"{"id": 1}"#, "no \"prompt\""),
            (r#"{"id": 1, "prompt": "a", "messages": []}"#, "not both"),
            (r#"{"id": 1, "prompt": 5}"#, "must be a string"),
            (r#"{"id": 1, "messages": []}"#, "empty"),
            (r#"{"id": 1, "messages": [{"role": "user"}]}"#, "content"),
            (
                r#"{"id": 1, "prompt": "a", "max_tokens": -2}"#,
                "at least 0",
            ),
            (
                r#"{"id": 1, "prompt": "a", "logit_bias": {"3": 1e308}}"#,
                "finite",
            ),
            (
                r#"{"id": 1, "prompt": "a", "temperature": "hot"}"#,
                "number",
            ),
            (
                r#"{"id": 1, "prompt": "a", "stop": [1]}"#,
                "list of strings",
            ),
        ] {
            let e = parse_line(line).unwrap_err();
            assert_eq!(e.id, Some(json!(1)), "{line}");
            assert!(e.message.contains(msg), "{line}: {}", e.message);
        }
    }

    #[test]
    fn lines_start_with_the_id_and_stay_json() {
        let v = json!({"usage": {"b": 1, "a": 2}, "tokens": [1, 2], "text": "x\"y", "id": "q", "zz": null});
        let line = to_line(&v);
        assert!(
            line.starts_with(r#"{"id":"q","text":"x\"y","usage":{"#),
            "{line}"
        );
        assert!(line.ends_with(r#""tokens":[1,2],"zz":null}"#), "{line}");
        assert_eq!(serde_json::from_str::<Value>(&line).unwrap(), v);
        assert_eq!(to_line(&json!({})), "{}");
    }

    #[test]
    fn scan_finds_done_ids_and_cuts_a_truncated_last_line() {
        let text = "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":2,\"error\":\"e\"}\n{\"id\":\"c\",\"te";
        let r = scan_results(text.as_bytes());
        assert_eq!(
            r.done,
            HashSet::from(["\"a\"".to_string(), "2".to_string()])
        );
        assert_eq!(r.keep, text.rfind('\n').unwrap() + 1);
        assert!(!r.needs_newline);
        assert!(r.bad_lines.is_empty());
    }

    #[test]
    fn scan_keeps_complete_files_and_reports_bad_lines() {
        let text = "{\"id\":1}\ngarbage\n\n{\"id\":2}";
        let r = scan_results(text.as_bytes());
        assert_eq!(r.done.len(), 2);
        assert_eq!(r.keep, text.len());
        assert!(r.needs_newline);
        assert_eq!(r.bad_lines, [2]);
        assert_eq!(scan_results(b""), Resume::default());
        let r = scan_results(b"{\"id\":1}\n");
        assert_eq!((r.keep, r.needs_newline), (9, false));
    }
}
