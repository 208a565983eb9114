//! The endpoints.

use super::error::ApiError;
use super::metrics::endpoint_label;
use super::request::{
    opt_bool, opt_str, parse_gen, parse_messages, parse_object, parse_prompt, GenRequest, Object,
    Prompt,
};
use super::slots::{Event, Finished, Job, SubmitError};
use super::{unix_now, Engine, State, MAX_BODY_BYTES};
use crate::generate::GenerateParams;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

type St = axum::extract::State<Arc<State>>;
type Reply = Result<Response, ApiError>;

pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
        .route("/metrics", get(metrics))
        .route("/props", get(props))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), gate))
        .with_state(state)
}

/// Before every handler: the API key, the declared body size, and the body read whole, each
/// chunk within `--timeout`; after: the request count.
async fn gate(axum::extract::State(st): St, req: Request, next: Next) -> Response {
    let endpoint = endpoint_label(req.uri().path());
    let checked = match check(&st, &req) {
        Ok(()) => read_body(req, st.body_timeout).await,
        Err(e) => Err(e),
    };
    let resp = match checked {
        Err(e) => {
            let mut r = e.into_response();
            // The body was not read (whole): do not keep the connection for another request.
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
        Ok(req) => next.run(req).await,
    };
    st.metrics.request(endpoint, resp.status().as_u16());
    resp
}

/// The request with its body read into memory: at most [`MAX_BODY_BYTES`] (413 beyond), each
/// chunk arriving within `timeout` (408 otherwise: a client that stalls mid-body is not waited
/// for forever).
async fn read_body(req: Request, timeout: Duration) -> Result<Request, ApiError> {
    use futures_util::StreamExt as _;
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(timeout, stream.next()).await {
            Err(_) => return Err(ApiError::timeout(timeout.as_secs())),
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::too_large(MAX_BODY_BYTES));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(
                    "invalid_body",
                    format!("could not read the request body: {e}"),
                ))
            }
        }
    }
    Ok(Request::from_parts(parts, Body::from(buf)))
}

fn check(st: &State, req: &Request) -> Result<(), ApiError> {
    if let Some(key) = &st.api_key {
        if req.uri().path() != "/health" {
            let given = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            match given.and_then(|v| v.strip_prefix(b"Bearer ")) {
                None => {
                    return Err(ApiError::unauthorized(
                        "no API key given: send the header 'Authorization: Bearer YOUR_KEY'",
                    ))
                }
                Some(k) if !same_bytes(k.trim_ascii(), key.as_bytes()) => {
                    return Err(ApiError::unauthorized("incorrect API key"))
                }
                Some(_) => {}
            }
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    Ok(())
}

/// Compare without stopping at the first difference (the time taken says nothing of the key).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body, or the 413/400 its reading ended with.
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(MAX_BODY_BYTES),
        _ => ApiError::bad_request(
            "invalid_body",
            format!("could not read the request body: {}", r.body_text()),
        ),
    })
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{method} is not allowed on {}", uri.path()))
}

async fn health(axum::extract::State(st): St) -> Response {
    if st.is_stopping() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "stopping"}),
        )
    } else if st.is_loaded() {
        json_response(StatusCode::OK, &json!({"status": "ok"}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "loading"}),
        )
    }
}

async fn models(axum::extract::State(st): St) -> Response {
    let mut m =
        json!({"id": st.model_name, "object": "model", "created": st.created, "owned_by": "nib"});
    if let Ok(e) = st.engine() {
        m["meta"] = json!({
            "n_ctx": e.slots.n_ctx(),
            "n_ctx_train": e.model.hp.n_ctx_train,
            "n_vocab": e.model.hp.n_vocab,
            "n_params": e.model.n_params(),
        });
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": [m]}))
}

async fn props(axum::extract::State(st): St) -> Reply {
    let e = st.engine()?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "model_path": st.model_path,
            "model_alias": st.model_name,
            "total_slots": e.slots.n_slots(),
            "default_generation_settings": {"n_ctx": e.slots.n_ctx()},
            "chat_template": e.template.source(),
            "chat_template_name": e.template.name(),
            "build_info": crate::version_string(),
        }),
    ))
}

async fn metrics(axum::extract::State(st): St) -> Response {
    let slots = st.engine().map_or(0, |e| e.slots.n_slots());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(slots),
    )
        .into_response()
}

/// Run CPU work (JSON of up to 10 MB, templates, tokenization) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("request handling failed: {e}"))))
}

async fn tokenize(axum::extract::State(st): St, body: Result<Bytes, BytesRejection>) -> Reply {
    let e = st.engine()?;
    let body = body_bytes(body)?;
    let v = blocking(move || {
        let o = parse_object(&body)?;
        let content = opt_str(&o, "content")?.ok_or_else(|| ApiError::missing("content"))?;
        let add_special = opt_bool(&o, "add_special")?.unwrap_or(false);
        let parse_special = opt_bool(&o, "parse_special")?.unwrap_or(true);
        let with_pieces = opt_bool(&o, "with_pieces")?.unwrap_or(false);
        let ids = e.tokenizer.tokenize(content, add_special, parse_special);
        Ok(if with_pieces {
            let pieces: Vec<Value> = ids
                .iter()
                .map(|&id| {
                    let p = e.tokenizer.token_to_piece_special(id, true);
                    json!({"id": id, "piece": String::from_utf8_lossy(p)})
                })
                .collect();
            json!({ "tokens": pieces })
        } else {
            json!({ "tokens": ids })
        })
    })
    .await?;
    Ok(json_response(StatusCode::OK, &v))
}

async fn detokenize(axum::extract::State(st): St, body: Result<Bytes, BytesRejection>) -> Reply {
    let e = st.engine()?;
    let body = body_bytes(body)?;
    let v = blocking(move || {
        let o = parse_object(&body)?;
        let ids = match o.get("tokens") {
            None | Some(Value::Null) => return Err(ApiError::missing("tokens")),
            Some(Value::Array(a)) => a
                .iter()
                .map(|t| t.as_u64().and_then(|t| u32::try_from(t).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| ApiError::invalid_type("tokens", "a list of token ids"))?,
            Some(_) => return Err(ApiError::invalid_type("tokens", "a list of token ids")),
        };
        check_token_ids(&e, &ids, "tokens")?;
        Ok(json!({ "content": e.tokenizer.detokenize(&ids) }))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &v))
}

fn check_token_ids(e: &Engine, ids: &[u32], param: &str) -> Result<(), ApiError> {
    let n = e.model.hp.n_vocab;
    match ids.iter().find(|&&t| t as usize >= n) {
        Some(t) => Err(ApiError::invalid_value(
            param,
            format!("token id {t} is out of range (the vocabulary has {n} tokens)"),
        )),
        None => Ok(()),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Text,
}

async fn chat_completions(
    axum::extract::State(st): St,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let e = st.engine()?;
    let body = body_bytes(body)?;
    let eng = Arc::clone(&e);
    let (g, prompt) = blocking(move || {
        let o = parse_object(&body)?;
        let g = parse_gen(&o)?;
        let messages = parse_messages(&o)?;
        let text = eng
            .template
            .render(&messages, true)
            .map_err(|err| ApiError::invalid_value("messages", format!("{err:#}")))?;
        // Rendered prompts carry special tokens as text (`<|im_start|>`): parse them.
        Ok((g, eng.tokenizer.tokenize(&text, true, true)))
    })
    .await?;
    complete(&st, e, Kind::Chat, g, prompt).await
}

async fn completions(axum::extract::State(st): St, body: Result<Bytes, BytesRejection>) -> Reply {
    let e = st.engine()?;
    let body = body_bytes(body)?;
    let eng = Arc::clone(&e);
    let (g, prompt) = blocking(move || {
        let o: Object = parse_object(&body)?;
        let g = parse_gen(&o)?;
        let prompt = match parse_prompt(&o)? {
            // As llama-server: BOS as the model wants it, special-token text parsed.
            Prompt::Text(t) => eng.tokenizer.tokenize(&t, true, true),
            Prompt::Tokens(t) => {
                check_token_ids(&eng, &t, "prompt")?;
                t
            }
        };
        Ok((g, prompt))
    })
    .await?;
    complete(&st, e, Kind::Text, g, prompt).await
}

/// Check the prompt against the context, queue the job, and answer (whole or streamed).
async fn complete(
    st: &State,
    e: Arc<Engine>,
    kind: Kind,
    g: GenRequest,
    prompt: Vec<u32>,
) -> Reply {
    let param = if kind == Kind::Chat {
        "messages"
    } else {
        "prompt"
    };
    let n_ctx = e.slots.n_ctx();
    if prompt.is_empty() {
        return Err(ApiError::invalid_value(
            param,
            "the prompt is empty (it has no tokens)",
        ));
    }
    if prompt.len() >= n_ctx {
        return Err(ApiError::bad_request(
            "context_length_exceeded",
            format!(
                "this model's context is {n_ctx} tokens, but the prompt has {} tokens (leave room for at least one generated token; raise -c/--ctx-size)",
                prompt.len()
            ),
        )
        .with_param(param));
    }
    // max_tokens beyond what the context holds is clamped to it (finish_reason `length`).
    let room = n_ctx - prompt.len();
    let n_predict = g.max_tokens.map_or(room, |m| m.min(room));
    let mut sampler = e.defaults.clone();
    g.overrides.apply(&mut sampler);
    sampler
        .validate(e.model.hp.n_vocab)
        .map_err(|err| ApiError::bad_request("invalid_value", format!("{err:#}")))?;
    if st.is_stopping() {
        return Err(ApiError::unavailable(
            "shutting_down",
            "the server is shutting down",
        ));
    }
    let (job, rx) = Job::new(
        prompt,
        sampler,
        GenerateParams {
            n_predict: Some(n_predict),
            stop: g.stop.unwrap_or_default(),
        },
        g.stream,
    );
    match e.slots.submit(job) {
        Ok(()) => {}
        Err(SubmitError::Full) => {
            return Err(ApiError::unavailable(
                "server_overloaded",
                format!(
                    "all {} slot(s) are busy and the queue is full; retry later",
                    e.slots.n_slots()
                ),
            ))
        }
        Err(SubmitError::Closed) => {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the server is shutting down",
            ))
        }
    }
    let meta = ResponseMeta {
        kind,
        id: new_id(if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        }),
        created: unix_now(),
        model: st.model_name.clone(),
    };
    if g.stream {
        Ok(stream_response(meta, rx, g.include_usage))
    } else {
        whole_response(meta, rx).await
    }
}

struct ResponseMeta {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
}

impl ResponseMeta {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Text, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": concat!("nib-", env!("CARGO_PKG_VERSION")),
            "choices": choices,
        })
    }
}

fn usage(f: &Finished) -> Value {
    let n = f.out.tokens.len();
    json!({
        "prompt_tokens": f.prompt_tokens,
        "completion_tokens": n,
        "total_tokens": f.prompt_tokens + n,
        "prompt_tokens_details": {"cached_tokens": f.cached_tokens},
    })
}

/// llama-server's `timings`, and the time the request waited for a slot.
fn timings(f: &Finished) -> Value {
    let o = &f.out;
    let per_token = |ms: f64, n: usize| if n > 0 { ms / n as f64 } else { 0.0 };
    let (pms, gms) = (o.prompt_seconds * 1e3, o.gen_seconds * 1e3);
    json!({
        "cache_n": f.cached_tokens,
        "prompt_n": o.n_prompt,
        "prompt_ms": pms,
        "prompt_per_token_ms": per_token(pms, o.n_prompt),
        "prompt_per_second": o.prompt_tps(),
        "predicted_n": o.tokens.len(),
        "predicted_ms": gms,
        "predicted_per_token_ms": per_token(gms, o.tokens.len()),
        "predicted_per_second": o.gen_tps(),
        "queue_ms": f.queue_ms,
    })
}

async fn whole_response(meta: ResponseMeta, mut rx: UnboundedReceiver<Event>) -> Reply {
    loop {
        match rx.recv().await {
            Some(Event::Text(_)) => {}
            Some(Event::Failed(err)) => return Err(err),
            None => return Err(ApiError::internal("the generation ended without a result")),
            Some(Event::Done(f)) => {
                let fr = f.out.stop.finish_reason();
                let choice = match meta.kind {
                    Kind::Chat => json!({
                        "index": 0,
                        "message": {"role": "assistant", "content": f.out.text},
                        "logprobs": null,
                        "finish_reason": fr,
                    }),
                    Kind::Text => {
                        json!({"index": 0, "text": f.out.text, "logprobs": null, "finish_reason": fr})
                    }
                };
                let mut v = meta.envelope(false, json!([choice]));
                v["usage"] = usage(&f);
                v["timings"] = timings(&f);
                return Ok(json_response(StatusCode::OK, &v));
            }
        }
    }
}

fn sse(v: &Value) -> String {
    format!("data: {v}\n\n")
}

struct StreamState {
    meta: ResponseMeta,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
    /// The chat role chunk is still to send.
    role_pending: bool,
    done: bool,
}

impl StreamState {
    fn choice(&self, text: Option<&str>, finish: Option<&str>) -> Value {
        match self.meta.kind {
            Kind::Chat => {
                let delta = match text {
                    Some(t) => json!({"content": t}),
                    None => json!({}),
                };
                json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}])
            }
            Kind::Text => {
                json!([{"index": 0, "text": text.unwrap_or(""), "logprobs": null, "finish_reason": finish}])
            }
        }
    }

    /// The next piece of the event stream, `None` at its end.
    async fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        if self.role_pending {
            self.role_pending = false;
            let delta = json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]);
            return Some(sse(&self.meta.envelope(true, delta)));
        }
        match self.rx.recv().await {
            Some(Event::Text(t)) => {
                Some(sse(&self.meta.envelope(true, self.choice(Some(&t), None))))
            }
            Some(Event::Done(f)) => {
                self.done = true;
                let mut last = self
                    .meta
                    .envelope(true, self.choice(None, Some(f.out.stop.finish_reason())));
                last["timings"] = timings(&f);
                let mut s = sse(&last);
                if self.include_usage {
                    let mut u = self.meta.envelope(true, json!([]));
                    u["usage"] = usage(&f);
                    s.push_str(&sse(&u));
                }
                s.push_str("data: [DONE]\n\n");
                Some(s)
            }
            Some(Event::Failed(err)) => {
                self.done = true;
                Some(sse(&err.body()))
            }
            None => None,
        }
    }
}

/// Server-sent events: the chunks as they come, then `data: [DONE]`. When the client goes, the
/// body (and with it the event receiver) is dropped, and the slot cancels at the next token.
fn stream_response(
    meta: ResponseMeta,
    rx: UnboundedReceiver<Event>,
    include_usage: bool,
) -> Response {
    let role_pending = meta.kind == Kind::Chat;
    let state = StreamState {
        meta,
        rx,
        include_usage,
        role_pending,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let piece = s.next().await?;
        Some((Ok::<_, Infallible>(Bytes::from(piece)), s))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| ApiError::internal("could not build the response").into_response())
}

/// A response id: the prefix and 24 hex digits, unique within the process and unlikely to repeat
/// across runs.
fn new_id(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{prefix}-{:016x}{:08x}", h.finish(), n as u32)
}
