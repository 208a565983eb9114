//! Request bodies: JSON in, checked settings out. Fields are read by hand from a
//! `serde_json::Value` so that each mistake gets an OpenAI-shaped 400 naming the field. Unknown
//! fields are ignored (clients send extras); `null` counts as absent (some clients send every
//! field); a known field of the wrong type is an error.

use super::error::ApiError;
use crate::chat::Message;
use crate::sample::SamplerOverrides;
use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// Parse a request body: UTF-8, JSON, an object.
pub fn parse_object(body: &[u8]) -> Result<Object, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_encoding",
            format!("the request body is not valid UTF-8 ({e})"),
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body is empty; send a JSON object",
        ));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!("could not parse the JSON body of the request: {e}"),
        )),
    }
}

/// A field, `None` when absent or `null`.
fn field<'a>(o: &'a Object, name: &str) -> Option<&'a Value> {
    o.get(name).filter(|v| !v.is_null())
}

pub fn opt_f32(o: &Object, name: &str) -> Result<Option<f32>, ApiError> {
    match field(o, name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x as f32)),
            _ => Err(ApiError::invalid_type(name, "a number")),
        },
    }
}

/// An integer; a float with no fractional part (`16.0`) is accepted as well.
pub fn opt_i64(o: &Object, name: &str) -> Result<Option<i64>, ApiError> {
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
                _ => Err(ApiError::invalid_type(name, "an integer")),
            }
        }
    }
}

pub fn opt_bool(o: &Object, name: &str) -> Result<Option<bool>, ApiError> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid_type(name, "a boolean")),
    }
}

pub fn opt_str<'a>(o: &'a Object, name: &str) -> Result<Option<&'a str>, ApiError> {
    match field(o, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(ApiError::invalid_type(name, "a string")),
    }
}

/// What a completion request asks of the generation, for both endpoints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenRequest {
    pub overrides: SamplerOverrides,
    /// Most tokens to generate; `None`: until the context is full (clamped to it anyway).
    pub max_tokens: Option<usize>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with `usage` and no choices.
    pub include_usage: bool,
}

/// The settings both completion endpoints share.
pub fn parse_gen(o: &Object) -> Result<GenRequest, ApiError> {
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
            return Err(ApiError::invalid_type(
                "logit_bias",
                "an object mapping token ids to numbers",
            ));
        };
        for (k, b) in m {
            let id: u32 = k.trim().parse().map_err(|_| {
                ApiError::invalid_value(
                    "logit_bias",
                    format!("'logit_bias' key {k:?} is not a token id"),
                )
            })?;
            let bias = b.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                ApiError::invalid_type("logit_bias", "an object mapping token ids to numbers")
            })?;
            ov.logit_bias.push((id, bias as f32));
        }
    }

    // OpenAI's current name, its older one, llama.cpp's.
    for name in ["max_completion_tokens", "max_tokens", "n_predict"] {
        if let Some(n) = opt_i64(o, name)? {
            if n < -1 {
                return Err(ApiError::invalid_value(
                    name,
                    format!(
                        "'{name}' must be at least 0 (or -1: until the context is full), got {n}"
                    ),
                ));
            }
            r.max_tokens = (n >= 0).then_some(n as usize);
            break;
        }
    }

    r.stop = match field(o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::invalid_type("stop", "a string or a list of strings"))?,
        Some(_) => {
            return Err(ApiError::invalid_type(
                "stop",
                "a string or a list of strings",
            ))
        }
    };
    r.stop.retain(|s| !s.is_empty());

    r.stream = opt_bool(o, "stream")?.unwrap_or(false);
    if let Some(v) = field(o, "stream_options") {
        let Value::Object(so) = v else {
            return Err(ApiError::invalid_type("stream_options", "an object"));
        };
        r.include_usage = opt_bool(so, "include_usage")
            .map_err(|_| ApiError::invalid_type("stream_options.include_usage", "a boolean"))?
            .unwrap_or(false);
    }

    if let Some(n) = opt_i64(o, "n")? {
        if n != 1 {
            return Err(ApiError::invalid_value(
                "n",
                format!("only n = 1 is supported, got {n}"),
            ));
        }
    }
    if let Some(n) = opt_i64(o, "best_of")? {
        if n != 1 {
            return Err(ApiError::invalid_value(
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
            return Err(ApiError::invalid_value(
                "logprobs",
                "logprobs are not supported",
            ))
        }
    }
    if let Some(v) = field(o, "tools") {
        if v.as_array().is_none_or(|a| !a.is_empty()) {
            return Err(ApiError::invalid_value(
                "tools",
                "tool calling is not supported",
            ));
        }
    }
    if let Some(v) = field(o, "response_format") {
        let kind = v.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(ApiError::invalid_value(
                "response_format",
                "only response_format {\"type\": \"text\"} is supported",
            ));
        }
    }
    if opt_bool(o, "echo")? == Some(true) {
        return Err(ApiError::invalid_value("echo", "echo is not supported"));
    }
    if opt_str(o, "suffix")?.is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::invalid_value("suffix", "suffix is not supported"));
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
pub fn parse_prompt(o: &Object) -> Result<Prompt, ApiError> {
    const EXPECTED: &str = "a string, a list of one string, or a list of token ids";
    fn tokens(a: &[Value]) -> Option<Vec<u32>> {
        a.iter()
            .map(|v| v.as_u64().and_then(|t| u32::try_from(t).ok()))
            .collect()
    }
    match field(o, "prompt") {
        None => Err(ApiError::missing("prompt")),
        Some(Value::String(s)) => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(a)) => match a.as_slice() {
            [] => Err(ApiError::invalid_value(
                "prompt",
                "'prompt' is an empty list",
            )),
            [Value::String(s)] => Ok(Prompt::Text(s.clone())),
            [Value::Array(t)] => tokens(t)
                .map(Prompt::Tokens)
                .ok_or_else(|| ApiError::invalid_type("prompt", EXPECTED)),
            [Value::Number(_), ..] => tokens(a)
                .map(Prompt::Tokens)
                .ok_or_else(|| ApiError::invalid_type("prompt", EXPECTED)),
            [Value::String(_) | Value::Array(_), ..] => Err(ApiError::invalid_value(
                "prompt",
                format!(
                    "'prompt' has {} prompts; send one prompt per request",
                    a.len()
                ),
            )),
            _ => Err(ApiError::invalid_type("prompt", EXPECTED)),
        },
        Some(_) => Err(ApiError::invalid_type("prompt", EXPECTED)),
    }
}

/// `/v1/chat/completions`' `messages`: a non-empty list of `{role, content}`, where content is
/// a string or a list of text parts (`[{"type": "text", "text": ...}]`, joined). `developer`
/// (OpenAI's newer name) becomes `system`, which is what chat templates know.
pub fn parse_messages(o: &Object) -> Result<Vec<Message>, ApiError> {
    let list = match field(o, "messages") {
        None => return Err(ApiError::missing("messages")),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ApiError::invalid_type("messages", "a list of messages")),
    };
    if list.is_empty() {
        return Err(ApiError::invalid_value(
            "messages",
            "'messages' is empty; send at least one message",
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let param = format!("messages[{i}]");
        let Value::Object(m) = m else {
            return Err(ApiError::invalid_type(
                &param,
                "an object with 'role' and 'content'",
            ));
        };
        let role = match m.get("role") {
            Some(Value::String(r)) if !r.trim().is_empty() => r.trim(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(ApiError::missing(&format!("{param}.role")))
            }
            Some(_) => return Err(ApiError::invalid_type(&format!("{param}.role"), "a string")),
        };
        let role = if role == "developer" { "system" } else { role };
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            // An assistant turn that only called tools has no content.
            None | Some(Value::Null) if role == "assistant" => String::new(),
            None | Some(Value::Null) => return Err(ApiError::missing(&format!("{param}.content"))),
            Some(Value::Array(parts)) => {
                let mut text = String::new();
                for (j, p) in parts.iter().enumerate() {
                    let pp = format!("{param}.content[{j}]");
                    match (p.get("type").and_then(Value::as_str), p.get("text")) {
                        (Some("text"), Some(Value::String(t))) => text.push_str(t),
                        (Some("text"), _) => {
                            return Err(ApiError::invalid_type(&format!("{pp}.text"), "a string"))
                        }
                        (Some(other), _) => {
                            return Err(ApiError::invalid_value(
                                &pp,
                                format!(
                                    "content parts of type {other:?} are not supported (text only)"
                                ),
                            ))
                        }
                        (None, _) => {
                            return Err(ApiError::invalid_type(
                                &pp,
                                "an object with 'type' and 'text'",
                            ))
                        }
                    }
                }
                text
            }
            Some(_) => {
                return Err(ApiError::invalid_type(
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
    fn body_must_be_utf8_json_object() {
        assert_eq!(
            parse_object(b"\xff\xfe").unwrap_err().code,
            Some("invalid_encoding")
        );
        assert_eq!(parse_object(b"{").unwrap_err().code, Some("invalid_json"));
        assert_eq!(parse_object(b"[1]").unwrap_err().code, Some("invalid_json"));
        assert_eq!(parse_object(b"").unwrap_err().code, Some("invalid_json"));
        assert!(parse_object(br#"{"a": 1}"#).is_ok());
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
        assert_eq!(r.stop, vec!["\n".to_string()]);
        assert!(r.stream && r.include_usage);

        let e = |v: Value| parse_gen(&obj(v)).unwrap_err();
        assert_eq!(
            e(json!({"temperature": "hot"})).param.as_deref(),
            Some("temperature")
        );
        assert_eq!(e(json!({"max_tokens": 1.5})).code, Some("invalid_type"));
        assert_eq!(e(json!({"max_tokens": -2})).code, Some("invalid_value"));
        assert_eq!(e(json!({"stop": [1]})).code, Some("invalid_type"));
        assert_eq!(e(json!({"n": 2})).param.as_deref(), Some("n"));
        assert_eq!(e(json!({"stream": "yes"})).code, Some("invalid_type"));
        assert_eq!(e(json!({"model": 3})).code, Some("invalid_type"));
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
            None
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
            Some("invalid_value")
        );
        assert_eq!(
            p(json!({"prompt": [1, -2]})).unwrap_err().code,
            Some("invalid_type")
        );
        assert_eq!(
            p(json!({"prompt": 7})).unwrap_err().code,
            Some("invalid_type")
        );
        assert_eq!(
            parse_prompt(&obj(json!({}))).unwrap_err().code,
            Some("missing_required_parameter")
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
        assert_eq!(e(json!({"messages": []})).code, Some("invalid_value"));
        assert_eq!(e(json!({"messages": "hi"})).code, Some("invalid_type"));
        assert_eq!(
            e(json!({"messages": [{"role": "user"}]})).code,
            Some("missing_required_parameter")
        );
        assert_eq!(
            e(json!({"messages": [{"role": 1, "content": "x"}]})).code,
            Some("invalid_type")
        );
        assert_eq!(
            e(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).code,
            Some("invalid_value")
        );
    }
}
