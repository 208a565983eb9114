//! Generation requests as JSON: the one validator that `nib serve` (each request body) and
//! `nib batch` (each input line) share, so the same JSON means the same thing in both. Fields
//! are read by hand from a `serde_json::Value` so that each mistake gets an error naming the
//! field ([`FieldError`], which the server answers as OpenAI's 400 and batch writes as the
//! request's error line). Unknown fields are ignored (clients send extras; batch warns about
//! them, [`KNOWN_FIELDS`]); `null` counts as absent (some clients send every field); a known
//! field of the wrong type is an error.
//!
//! What the shared rules decide, among others: numbers are converted to the sampler's `f32` and
//! must still be finite (`1e308` is refused, not turned into an infinite bias); a negative
//! `top_k` turns top-k off; a negative `seed` (llama.cpp's -1) picks a random one; `max_tokens`
//! may be -1 or any large number, both meaning "until the context is full" (generation is
//! clamped to the context); `n`, `best_of`, `logprobs`, `tools`, `echo` and `suffix` that ask for
//! what nib does not do are refused.

use crate::chat::Message;
use crate::sample::SamplerOverrides;
use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// A field that is wrong, and how: a machine-readable `code` (OpenAI's: `invalid_type`,
/// `invalid_value`, `missing_required_parameter`), the field (`param`) and a message for people.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub code: &'static str,
    pub param: Option<String>,
    pub message: String,
}

impl FieldError {
    /// An error about the request as a whole.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            code,
            param: None,
            message: message.into(),
        }
    }

    /// The value has the wrong type.
    pub fn invalid_type(param: &str, expected: &str) -> FieldError {
        FieldError::bad_request("invalid_type", format!("'{param}' must be {expected}"))
            .with_param(param)
    }

    /// The type is right but the value is not allowed.
    pub fn invalid_value(param: &str, message: impl Into<String>) -> FieldError {
        FieldError::bad_request("invalid_value", message).with_param(param)
    }

    /// A required field is absent.
    pub fn missing(param: &str) -> FieldError {
        FieldError::bad_request(
            "missing_required_parameter",
            format!("missing required parameter: '{param}'"),
        )
        .with_param(param)
    }

    pub fn with_param(mut self, param: &str) -> FieldError {
        self.param = Some(param.to_string());
        self
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FieldError {}

/// The fields [`parse_gen`], [`parse_prompt`] and [`parse_messages`] read.
pub const KNOWN_FIELDS: &[&str] = &[
    "model",
    "user",
    "prompt",
    "messages",
    "temperature",
    "top_p",
    "min_p",
    "top_k",
    "presence_penalty",
    "frequency_penalty",
    "repeat_penalty",
    "repeat_last_n",
    "seed",
    "logit_bias",
    "max_completion_tokens",
    "max_tokens",
    "n_predict",
    "stop",
    "stream",
    "stream_options",
    "n",
    "best_of",
    "logprobs",
    "tools",
    "response_format",
    "echo",
    "suffix",
];

/// A field, `None` when absent or `null`.
fn field<'a>(o: &'a Object, name: &str) -> Option<&'a Value> {
    o.get(name).filter(|v| !v.is_null())
}

pub fn opt_f32(o: &Object, name: &str) -> Result<Option<f32>, FieldError> {
    match field(o, name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if (x as f32).is_finite() => Ok(Some(x as f32)),
            Some(x) => Err(FieldError::invalid_value(
                name,
                format!("'{name}' must be a finite number (within f32's range), got {x}"),
            )),
            None => Err(FieldError::invalid_type(name, "a number")),
        },
    }
}

/// An integer; a float with no fractional part (`16.0`) is accepted as well.
pub fn opt_i64(o: &Object, name: &str) -> Result<Option<i64>, FieldError> {
    match field(o, name) {
        None => Ok(None),
        Some(v) => {
            if let Some(i) = v.as_i64() {
                return Ok(Some(i));
            }
            match v.as_f64() {
                Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(Some(x as i64)),
                // Larger than i64 but a whole number: saturate (callers clamp anyway).
                Some(x) if x.fract() == 0.0 && x.is_finite() => {
                    Ok(Some(if x > 0.0 { i64::MAX } else { i64::MIN }))
                }
                _ => Err(FieldError::invalid_type(name, "an integer")),
            }
        }
    }
}

pub fn opt_bool(o: &Object, name: &str) -> Result<Option<bool>, FieldError> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(FieldError::invalid_type(name, "a boolean")),
    }
}

pub fn opt_str<'a>(o: &'a Object, name: &str) -> Result<Option<&'a str>, FieldError> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(FieldError::invalid_type(name, "a string")),
    }
}

/// What a completion request asks of the generation, for both endpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenRequest {
    pub overrides: SamplerOverrides,
    /// Most tokens to generate (`usize::MAX` for -1: until the context is full; every limit is
    /// clamped to the context); `None`: not given (the server fills the context, batch uses -n).
    pub max_tokens: Option<usize>,
    /// Stop strings (empty ones dropped); `None`: not given (batch uses --stop).
    pub stop: Option<Vec<String>>,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with `usage` and no choices.
    pub include_usage: bool,
}

/// The settings both completion endpoints share.
pub fn parse_gen(o: &Object) -> Result<GenRequest, FieldError> {
    opt_str(o, "model")?; // Any name is accepted (one model is served), but it must be a string.
    opt_str(o, "user")?;
    let mut r = GenRequest::default();
    let ov = &mut r.overrides;
    ov.temp = opt_f32(o, "temperature")?;
    ov.top_p = opt_f32(o, "top_p")?;
    ov.min_p = opt_f32(o, "min_p")?;
    ov.top_k = opt_i64(o, "top_k")?.map(|k| k.max(0) as usize);
    ov.presence_penalty = opt_f32(o, "presence_penalty")?;
    ov.frequency_penalty = opt_f32(o, "frequency_penalty")?;
    ov.repeat_penalty = opt_f32(o, "repeat_penalty")?;
    ov.repeat_last_n =
        opt_i64(o, "repeat_last_n")?.map(|n| if n < 0 { usize::MAX } else { n as usize });
    // A negative seed (llama.cpp's -1) picks a random one.
    ov.seed = opt_i64(o, "seed")?.filter(|&s| s >= 0).map(|s| s as u64);
    if let Some(v) = field(o, "logit_bias") {
        let Value::Object(m) = v else {
            return Err(FieldError::invalid_type(
                "logit_bias",
                "an object mapping token ids to numbers",
            ));
        };
        for (k, b) in m {
            let id: u32 = k.trim().parse().map_err(|_| {
                FieldError::invalid_value(
                    "logit_bias",
                    format!("'logit_bias' key {k:?} is not a token id"),
                )
            })?;
            let bias = b.as_f64().ok_or_else(|| {
                FieldError::invalid_type("logit_bias", "an object mapping token ids to numbers")
            })?;
            // Finite as the f32 the sampler adds: 1e308 would become an infinite bias.
            if !(bias as f32).is_finite() {
                return Err(FieldError::invalid_value(
                    "logit_bias",
                    format!("'logit_bias' for token {id} must be a finite number (within f32's range), got {bias}"),
                ));
            }
            ov.logit_bias.push((id, bias as f32));
        }
    }

    // OpenAI's current name, its older one, llama.cpp's.
    for name in ["max_completion_tokens", "max_tokens", "n_predict"] {
        if let Some(n) = opt_i64(o, name)? {
            if n < -1 {
                return Err(FieldError::invalid_value(
                    name,
                    format!(
                        "'{name}' must be at least 0 (or -1: until the context is full), got {n}"
                    ),
                ));
            }
            r.max_tokens = Some(if n < 0 { usize::MAX } else { n as usize });
            break;
        }
    }

    r.stop = match field(o, "stop") {
        None => None,
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| FieldError::invalid_type("stop", "a string or a list of strings"))?,
        ),
        Some(_) => {
            return Err(FieldError::invalid_type(
                "stop",
                "a string or a list of strings",
            ))
        }
    };
    if let Some(stop) = &mut r.stop {
        stop.retain(|s| !s.is_empty());
    }

    r.stream = opt_bool(o, "stream")?.unwrap_or(false);
    if let Some(v) = field(o, "stream_options") {
        let Value::Object(so) = v else {
            return Err(FieldError::invalid_type("stream_options", "an object"));
        };
        r.include_usage = opt_bool(so, "include_usage")
            .map_err(|_| FieldError::invalid_type("stream_options.include_usage", "a boolean"))?
            .unwrap_or(false);
    }

    if let Some(n) = opt_i64(o, "n")? {
        if n != 1 {
            return Err(FieldError::invalid_value(
                "n",
                format!("only n = 1 is supported, got {n}"),
            ));
        }
    }
    if let Some(n) = opt_i64(o, "best_of")? {
        if n != 1 {
            return Err(FieldError::invalid_value(
                "best_of",
                format!("only best_of = 1 is supported, got {n}"),
            ));
        }
    }
    // Features nib does not have: refuse them rather than silently answer something else.
    match field(o, "logprobs") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Number(n)) if n.as_u64() == Some(0) => {}
        Some(_) => {
            return Err(FieldError::invalid_value(
                "logprobs",
                "logprobs are not supported",
            ))
        }
    }
    if let Some(v) = field(o, "tools") {
        if v.as_array().is_none_or(|a| !a.is_empty()) {
            return Err(FieldError::invalid_value(
                "tools",
                "tool calling is not supported",
            ));
        }
    }
    if let Some(v) = field(o, "response_format") {
        let kind = v.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(FieldError::invalid_value(
                "response_format",
                "only response_format {\"type\": \"text\"} is supported",
            ));
        }
    }
    if opt_bool(o, "echo")? == Some(true) {
        return Err(FieldError::invalid_value("echo", "echo is not supported"));
    }
    if opt_str(o, "suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(FieldError::invalid_value(
            "suffix",
            "suffix is not supported",
        ));
    }
    Ok(r)
}

/// A `/v1/completions` prompt: text, or token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

/// `/v1/completions`' `prompt`: a string, a list of one string, a list of token ids, or a list
/// of one list of token ids. Several prompts in one request are refused (one choice per request).
pub fn parse_prompt(o: &Object) -> Result<Prompt, FieldError> {
    const EXPECTED: &str = "a string, a list of one string, or a list of token ids";
    fn tokens(a: &[Value]) -> Option<Vec<u32>> {
        a.iter()
            .map(|v| v.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    }
    match field(o, "prompt") {
        None => Err(FieldError::missing("prompt")),
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) => match a.as_slice() {
            [] => Err(FieldError::invalid_value(
                "prompt",
                "'prompt' is an empty list",
            )),
            [Value::String(s)] => Ok(Prompt::Text(s.clone())),
            [Value::Array(t)] => tokens(t)
                .map(Prompt::Tokens)
                .ok_or_else(|| FieldError::invalid_type("prompt", EXPECTED)),
            [Value::Number(_), ..] => tokens(a)
                .map(Prompt::Tokens)
                .ok_or_else(|| FieldError::invalid_type("prompt", EXPECTED)),
            [Value::String(_) | Value::Array(_), ..] => Err(FieldError::invalid_value(
                "prompt",
                format!(
                    "'prompt' has {} prompts; send one prompt per request",
                    a.len()
                ),
            )),
            _ => Err(FieldError::invalid_type("prompt", EXPECTED)),
        },
        Some(_) => Err(FieldError::invalid_type("prompt", EXPECTED)),
    }
}

/// `/v1/chat/completions`' `messages`: a non-empty list of `{role, content}`, where content is
/// a string or a list of text parts (`[{"type": "text", "text": ...}]`, joined). `developer`
/// (OpenAI's newer name) becomes `system`, which is what chat templates know.
pub fn parse_messages(o: &Object) -> Result<Vec<Message>, FieldError> {
    let list = match field(o, "messages") {
        None => return Err(FieldError::missing("messages")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(FieldError::invalid_type("messages", "a list of messages")),
    };
    if list.is_empty() {
        return Err(FieldError::invalid_value(
            "messages",
            "'messages' is empty; send at least one message",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(FieldError::invalid_type(
                &param,
                "an object with 'role' and 'content'",
            ));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) if !r.trim().is_empty() => r.trim(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(FieldError::missing(&format!("{param}.role")))
            }
            Some(_) => {
                return Err(FieldError::invalid_type(
                    &format!("{param}.role"),
                    "a string",
                ))
            }
        };
        let role = if role == "developer" { "system" } else { role };
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            // An assistant turn that only called tools has no content.
            None | Some(Value::Null) if role == "assistant" => String::new(),
            None | Some(Value::Null) => {
                return Err(FieldError::missing(&format!("{param}.content")))
            }
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let pp = format!("{param}.content[{j}]");
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        (Some("text"), _) => {
                            return Err(FieldError::invalid_type(&format!("{pp}.text"), "a string"))
                        }
                        (Some(other), _) => {
                            return Err(FieldError::invalid_value(
                                &pp,
                                format!(
                                    "content parts of type {other:?} are not supported (text only)"
                                ),
                            ))
                        }
                        (None, _) => {
                            return Err(FieldError::invalid_type(
                                &pp,
                                "an object with 'type' and 'text'",
                            ))
                        }
                    }
                }
                text
            }
            Some(_) => {
                return Err(FieldError::invalid_type(
                    &format!("{param}.content"),
                    "a string or a list of text parts",
                ))
            }
        };
        out.push(Message::new(role, content));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn settings_are_read_and_checked() {
        let r = parse_gen(&obj(json!({
            "model": "x", "temperature": 0, "top_k": -1, "max_tokens": 16.0, "stop": "\n",
            "seed": -1, "stream": true, "stream_options": {"include_usage": true},
            "unknown_field": [1, 2], "top_p": null, "logit_bias": {"42": -100}
        })))
        .unwrap();
        assert_eq!(r.overrides.temp, Some(0.0));
        assert_eq!(r.overrides.top_k, Some(0));
        assert_eq!(r.overrides.top_p, None);
        assert_eq!(r.overrides.seed, None);
        assert_eq!(r.overrides.logit_bias, vec![(42, -100.0)]);
        assert_eq!(r.max_tokens, Some(16));
        assert_eq!(r.stop, Some(vec!["\n".to_string()]));
        assert!(r.stream && r.include_usage);

        let e = |v: Value| parse_gen(&obj(v)).unwrap_err();
        assert_eq!(
            e(json!({"temperature": "hot"})).param.as_deref(),
            Some("temperature")
        );
        assert_eq!(e(json!({"max_tokens": 1.5})).code, "invalid_type");
        assert_eq!(e(json!({"max_tokens": -2})).code, "invalid_value");
        assert_eq!(e(json!({"stop": [1]})).code, "invalid_type");
        assert_eq!(e(json!({"n": 2})).param.as_deref(), Some("n"));
        assert_eq!(e(json!({"stream": "yes"})).code, "invalid_type");
        assert_eq!(e(json!({"model": 3})).code, "invalid_type");
        assert_eq!(
            parse_gen(&obj(json!({"max_tokens": 1e300})))
                .unwrap()
                .max_tokens,
            Some(i64::MAX as usize)
        );
        assert_eq!(
            parse_gen(&obj(json!({"max_tokens": -1})))
                .unwrap()
                .max_tokens,
            Some(usize::MAX)
        );
        // Finite after conversion to the sampler's f32, like every other number.
        assert_eq!(
            e(json!({"logit_bias": {"5": 1e308}})).param.as_deref(),
            Some("logit_bias")
        );
        assert_eq!(e(json!({"temperature": 1e39})).code, "invalid_value");
        assert_eq!(
            parse_gen(&obj(json!({"logit_bias": {"5": -1e30}})))
                .unwrap()
                .overrides
                .logit_bias,
            vec![(5, -1e30)]
        );
    }

    #[test]
    fn prompts_and_messages() {
        let p = |v: Value| parse_prompt(&obj(v));
        assert_eq!(
            p(json!({"prompt": ["hi"]})).unwrap(),
            Prompt::Text("hi".into())
        );
        assert_eq!(
            p(json!({"prompt": [1, 2]})).unwrap(),
            Prompt::Tokens(vec![1, 2])
        );
        assert_eq!(
            p(json!({"prompt": [[3]]})).unwrap(),
            Prompt::Tokens(vec![3])
        );
        assert_eq!(
            p(json!({"prompt": ["a", "b"]})).unwrap_err().code,
            "invalid_value"
        );
        assert_eq!(
            p(json!({"prompt": [1, -2]})).unwrap_err().code,
            "invalid_type"
        );
        assert_eq!(p(json!({"prompt": 7})).unwrap_err().code, "invalid_type");
        assert_eq!(
            parse_prompt(&obj(json!({}))).unwrap_err().code,
            "missing_required_parameter"
        );

        let m = parse_messages(&obj(json!({"messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null},
        ]})))
        .unwrap();
        assert_eq!(
            m,
            vec![
                Message::system("be brief"),
                Message::user("ab"),
                Message::assistant("")
            ]
        );
        let e = |v: Value| parse_messages(&obj(v)).unwrap_err();
        assert_eq!(e(json!({"messages": []})).code, "invalid_value");
        assert_eq!(e(json!({"messages": "hi"})).code, "invalid_type");
        assert_eq!(
            e(json!({"messages": [{"role": "user"}]})).code,
            "missing_required_parameter"
        );
        assert_eq!(
            e(json!({"messages": [{"role": 1, "content": "x"}]})).code,
            "invalid_type"
        );
        assert_eq!(
            e(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).code,
            "invalid_value"
        );
    }
}
