//! Chat templates: a conversation in, the model's prompt text out.
//!
//! A GGUF usually carries its Hugging Face chat template (Jinja) in `tokenizer.chat_template`.
//! It is rendered with MiniJinja set up the way `transformers` sets up Jinja2: `trim_blocks` and
//! `lstrip_blocks` on, Python's string and dict methods (`.strip()`, `.startswith()`, `.items()`
//! ...), `raise_exception(msg)`, a `tojson` filter that writes JSON as Python's `json.dumps`
//! does, and `strftime_now(format)` (UTC). The variables are `messages` (each with `role` and
//! `content`), `add_generation_prompt`, `bos_token` and `eos_token` (the vocabulary's strings).
//!
//! Files without a template get a built-in one ([`BUILTIN_TEMPLATES`]: `chatml`, `gemma`,
//! `llama3`, `llama2`) chosen from the architecture and the vocabulary; `--chat-template` may name
//! a built-in, a Jinja file, or give the template text itself.
//!
//! As llama.cpp does, a rendered prompt that starts with the BOS text loses it when the
//! tokenizer adds BOS itself (`tokenizer.ggml.add_bos_token`), and likewise for a trailing EOS
//! with `add_eos_token`: tokenize the result with the usual special-token handling (BOS added as
//! configured, special-token text such as `<|im_start|>` parsed as the special token).

use crate::gguf::Gguf;
use anyhow::{anyhow, bail, Context, Result};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};
use std::fmt::Write as _;
use std::path::Path;

/// One turn of a conversation. `role` is usually `system`, `user` or `assistant`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Message {
        Message::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Message {
        Message::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new("assistant", content)
    }
}

/// ChatML (`<|im_start|>role\n...<|im_end|>\n`): Qwen, SmolLM, and llama.cpp's fallback.
const CHATML: &str = r#"
{%- for message in messages -%}
{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- endif -%}
"#;

/// Gemma: `user` and `model` turns; Gemma has no system role, so system text goes at the top of
/// the next user turn followed by a blank line. Contents are trimmed, as Gemma's templates do.
const GEMMA: &str = r#"
{{- bos_token -}}
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- set ns.system = ns.system + (message.content | trim) -%}
{%- else -%}
{%- set role = 'model' if message.role == 'assistant' else message.role -%}
{{- '<start_of_turn>' + role + '\n' -}}
{%- if ns.system and role != 'model' -%}
{{- ns.system + '\n\n' -}}
{%- set ns.system = '' -%}
{%- endif -%}
{{- (message.content | trim) + '<end_of_turn>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<start_of_turn>model\n' -}}
{%- endif -%}
"#;

/// Llama 3: header-delimited turns ending in `<|eot_id|>`.
const LLAMA3: &str = r#"
{{- bos_token -}}
{%- for message in messages -%}
{{- '<|start_header_id|>' + message.role + '<|end_header_id|>\n\n' + (message.content | trim) + '<|eot_id|>' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
{%- endif -%}
"#;

/// Llama 2 chat: `<s>[INST] ... [/INST] answer </s>`, the system prompt in `<<SYS>>` inside the
/// first user turn. The model answers straight after `[/INST]`: no generation prompt.
const LLAMA2: &str = r#"
{%- set ns = namespace(system='') -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- set ns.system = message.content | trim -%}
{%- elif message.role == 'user' -%}
{%- set content = message.content | trim -%}
{%- if ns.system -%}
{%- set content = '<<SYS>>\n' + ns.system + '\n<</SYS>>\n\n' + content -%}
{%- set ns.system = '' -%}
{%- endif -%}
{{- bos_token + '[INST] ' + content + ' [/INST]' -}}
{%- else -%}
{{- ' ' + (message.content | trim) + ' ' + eos_token -}}
{%- endif -%}
{%- endfor -%}
"#;

/// The built-in templates by name.
pub const BUILTIN_TEMPLATES: [(&str, &str); 4] = [
    ("chatml", CHATML),
    ("gemma", GEMMA),
    ("llama3", LLAMA3),
    ("llama2", LLAMA2),
];

fn builtin_source(name: &str) -> Option<&'static str> {
    BUILTIN_TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
}

fn builtin_names() -> String {
    BUILTIN_TEMPLATES
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error `raise_exception` raises, kept as the MiniJinja error's source so that `render`
/// can tell it from the template's own mistakes.
#[derive(Debug)]
struct TemplateException(String);

impl std::fmt::Display for TemplateException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TemplateException {}

fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, msg.clone()).with_source(TemplateException(msg)))
}

/// Fuel for one render (MiniJinja's [`Environment::set_fuel`]): about one unit per instruction
/// and per 64 bytes of data created, so it bounds both the time a render takes and the memory a
/// template can allocate (some 128 MB). A real template spends a few hundred units per message
/// plus the content's bytes / 64: a 10 MB request body takes some 200,000.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

/// Largest rendered prompt (32 MiB; a request body is at most 10 MiB).
pub const MAX_RENDER_BYTES: usize = 32 << 20;

/// A compiled chat template with the special-token strings it renders with.
pub struct ChatTemplate {
    name: String,
    source: String,
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The tokenizer adds BOS itself: strip BOS text at the start of a rendered prompt.
    strip_bos: bool,
    /// The tokenizer adds EOS itself: strip EOS text at the end.
    strip_eos: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("name", &self.name)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish()
    }
}

/// The vocabulary's text for a special token id key (e.g. `tokenizer.ggml.bos_token_id`).
fn token_text(g: &Gguf, id_key: &str) -> Result<String> {
    let Some(id) = g.opt_u32(id_key)? else {
        return Ok(String::new());
    };
    if !g.contains_key("tokenizer.ggml.tokens") {
        return Ok(String::new());
    }
    let tok = g
        .get_str_array("tokenizer.ggml.tokens")?
        .nth(id as usize)
        .ok_or_else(|| anyhow!("{id_key} = {id} is outside the vocabulary"))?;
    Ok(String::from_utf8_lossy(tok).into_owned())
}

/// The built-in template for a file without one: Gemma by architecture, Llama 3 or ChatML by
/// their marker tokens, Llama 2 for other Llama-architecture SentencePiece vocabularies, and
/// ChatML (llama.cpp's fallback) otherwise.
fn guess_builtin(g: &Gguf) -> Result<&'static str> {
    let arch = g.opt_str("general.architecture")?.unwrap_or("");
    if arch.starts_with("gemma") {
        return Ok("gemma");
    }
    if g.contains_key("tokenizer.ggml.tokens") {
        let mut chatml = false;
        for t in g.get_str_array("tokenizer.ggml.tokens")? {
            match t {
                b"<|start_header_id|>" => return Ok("llama3"),
                b"<|im_start|>" => chatml = true,
                _ => {}
            }
        }
        if chatml {
            return Ok("chatml");
        }
    }
    if arch == "llama" && g.opt_str("tokenizer.ggml.model")? == Some("llama") {
        return Ok("llama2");
    }
    Ok("chatml")
}

impl ChatTemplate {
    /// The template for a model: `override_` if given (a built-in's name, a path to a Jinja
    /// file, or template text containing `{{` or `{%`), else the file's
    /// `tokenizer.chat_template`, else a built-in chosen from the architecture and vocabulary.
    pub fn from_gguf(g: &Gguf, override_: Option<&str>) -> Result<ChatTemplate> {
        let bos = token_text(g, "tokenizer.ggml.bos_token_id")?;
        let eos = token_text(g, "tokenizer.ggml.eos_token_id")?;
        let spm = g.opt_str("tokenizer.ggml.model")? == Some("llama");
        let strip_bos = g.opt_bool("tokenizer.ggml.add_bos_token")?.unwrap_or(spm);
        let strip_eos = g.opt_bool("tokenizer.ggml.add_eos_token")?.unwrap_or(false);
        let (name, source) = match override_ {
            Some(o) => Self::resolve_override(o)?,
            None => match g.opt_str("tokenizer.chat_template")? {
                Some(src) => ("gguf".to_string(), src.to_string()),
                None => {
                    let name = guess_builtin(g)?;
                    (
                        name.to_string(),
                        builtin_source(name)
                            .expect("guess is a built-in")
                            .to_string(),
                    )
                }
            },
        };
        let mut t = ChatTemplate::new(&name, &source, &bos, &eos)?;
        t.strip_bos = strip_bos;
        t.strip_eos = strip_eos;
        Ok(t)
    }

    fn resolve_override(o: &str) -> Result<(String, String)> {
        if let Some(src) = builtin_source(o) {
            return Ok((o.to_string(), src.to_string()));
        }
        let path = Path::new(o);
        if path.is_file() {
            let src = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read chat template {}", path.display()))?;
            return Ok((path.display().to_string(), src));
        }
        if o.contains("{{") || o.contains("{%") {
            return Ok(("custom".to_string(), o.to_string()));
        }
        bail!(
            "unknown chat template {o:?}: not a built-in ({}) nor a readable file",
            builtin_names()
        )
    }

    /// A built-in template by name.
    pub fn builtin(name: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let src = builtin_source(name).ok_or_else(|| {
            anyhow!(
                "unknown built-in chat template {name:?} (built-ins: {})",
                builtin_names()
            )
        })?;
        ChatTemplate::new(name, src, bos_token, eos_token)
    }

    /// Compile Jinja template text. Syntax errors are reported here, not at render time.
    /// Templates made this way never strip BOS/EOS text from what they render.
    pub fn new(name: &str, source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        // A template from a model file is untrusted: a loop that doubles a string, or nested
        // loops of millions of steps, stop when the budget runs out.
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("default delimiters"),
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        minijinja_contrib::add_to_environment(&mut env);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| anyhow!("chat template {name} does not parse: {}", describe(&e)))?;
        Ok(ChatTemplate {
            name: name.to_string(),
            source: source.to_string(),
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            strip_bos: false,
            strip_eos: false,
        })
    }

    /// Render a conversation. With `add_generation_prompt`, the text ends with the opening of an
    /// assistant turn, ready for the model to continue.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())])
            })
            .collect();
        let ctx = Value::from_pairs([
            ("messages", Value::from(msgs)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
        ]);
        let tmpl = self
            .env
            .get_template("chat")
            .expect("added at construction");
        let mut out = tmpl.render(ctx).map_err(|e| {
            let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
            while let Some(s) = src {
                if let Some(ex) = s.downcast_ref::<TemplateException>() {
                    return anyhow!("chat template {} refused the conversation: {ex}", self.name);
                }
                src = s.source();
            }
            if e.kind() == ErrorKind::OutOfFuel {
                return anyhow!(
                    "chat template {} ran out of its budget of {TEMPLATE_FUEL} steps (it loops too long or builds too much text)",
                    self.name
                );
            }
            anyhow!("chat template {} failed: {}", self.name, describe(&e))
        })?;
        if out.len() > MAX_RENDER_BYTES {
            bail!(
                "chat template {} rendered {} bytes, more than the limit of {MAX_RENDER_BYTES}",
                self.name,
                out.len()
            );
        }
        if self.strip_bos && !self.bos_token.is_empty() && out.starts_with(&self.bos_token) {
            out.drain(..self.bos_token.len());
        }
        if self.strip_eos && !self.eos_token.is_empty() && out.ends_with(&self.eos_token) {
            out.truncate(out.len() - self.eos_token.len());
        }
        Ok(out)
    }

    /// `gguf` for the file's own template, a built-in's name, a file path, or `custom`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Jinja text.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

/// A MiniJinja error as one line: what went wrong and on which line of the template.
fn describe(e: &Error) -> String {
    let mut s = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line() {
        let _ = write!(s, " (line {line})");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// tojson: Python's json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys), which
// is what transformers registers, rather than MiniJinja's HTML-safe variant.

fn tojson(value: &Value, indent: Option<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")?.or(indent) {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.as_i64() {
            Some(n) => Some(" ".repeat(n.max(0) as usize)),
            None if v.kind() == ValueKind::String => Some(v.as_str().unwrap_or("").to_string()),
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: indent must be an integer or a string",
                ))
            }
        },
    };
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    // Accepted for compatibility; the output is always like ensure_ascii=False.
    let _ = kwargs.get::<Option<Value>>("ensure_ascii")?;
    let _ = kwargs.get::<Option<Value>>("separators")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(value, indent.as_deref(), sort_keys, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn newline(indent: Option<&str>, level: usize, out: &mut String) {
    if let Some(ind) = indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
}

fn write_json(
    v: &Value,
    indent: Option<&str>,
    sort_keys: bool,
    level: usize,
    out: &mut String,
) -> Result<(), Error> {
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                let _ = write!(out, "{v}");
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
                } else if f == f.trunc() && f.abs() < 1e16 {
                    let _ = write!(out, "{f:.1}");
                } else {
                    let _ = write!(out, "{f}");
                }
            }
        }
        ValueKind::String => write_json_str(v.as_str().unwrap_or(""), out),
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, level + 1, out);
                match k.as_str() {
                    Some(s) => write_json_str(s, out),
                    None => write_json_str(&k.to_string(), out),
                }
                out.push_str(": ");
                write_json(&v.get_item(k)?, indent, sort_keys, level + 1, out)?;
            }
            newline(indent, level, out);
            out.push('}');
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(indent, level + 1, out);
                write_json(item, indent, sort_keys, level + 1, out)?;
            }
            newline(indent, level, out);
            out.push(']');
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "tojson: a value of type {} is not JSON serializable",
                    v.kind()
                ),
            ))
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// strftime_now: the current UTC time, formatted with the common strftime directives.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Proleptic Gregorian (year, month 1-12, day 1-31) of a count of days since 1970-01-01, by
/// shifting to years that start in March (so the leap day ends the year) and 400-year eras.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, 0..365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..11
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Format seconds since the Unix epoch (UTC) with `%Y %y %m %d %e %j %H %I %M %S %p %b %B %h %a
/// %A %%`; other directives are kept as written.
fn strftime(format: &str, unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday (index 3)
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[m as usize - 1] + d + u32::from(m > 2 && is_leap(y));
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(spec) = chars.next() else {
            out.push('%');
            break;
        };
        let _ = match spec {
            'Y' => write!(out, "{y}"),
            'y' => write!(out, "{:02}", y.rem_euclid(100)),
            'm' => write!(out, "{m:02}"),
            'd' => write!(out, "{d:02}"),
            'e' => write!(out, "{d:2}"),
            'j' => write!(out, "{yday:03}"),
            'H' => write!(out, "{hh:02}"),
            'I' => write!(out, "{:02}", if hh % 12 == 0 { 12 } else { hh % 12 }),
            'M' => write!(out, "{mm:02}"),
            'S' => write!(out, "{ss:02}"),
            'p' => write!(out, "{}", if hh < 12 { "AM" } else { "PM" }),
            'B' => write!(out, "{}", MONTHS[m as usize - 1]),
            'b' | 'h' => write!(out, "{}", &MONTHS[m as usize - 1][..3]),
            'A' => write!(out, "{}", WEEKDAYS[weekday]),
            'a' => write!(out, "{}", &WEEKDAYS[weekday][..3]),
            '%' => write!(out, "%"),
            other => write!(out, "%{other}"),
        };
    }
    out
}

fn strftime_now(format: String) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(&format, now)
}

#[cfg(test)]
mod tests;
