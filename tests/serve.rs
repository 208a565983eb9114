//! `nib serve` end to end: the real binary on a free loopback port with SmolLM2, driven by a
//! small HTTP/1.1 client written here over `TcpStream` (no HTTP client dependency).
//!
//! One server for the whole file (one slot, a queue of one, a small context, an API key from
//! the environment), one test walking through the cases in order, so that the slot and the
//! counters in /metrics are the test's alone. Outputs are short: the machine may be loaded.
#![cfg(feature = "server")]

mod common;

use common::nib;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "test-key-123";
/// Each slot's context: small, so that "too long" and "clamped" prompts are cheap.
const CTX: usize = 64;

struct Server {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Start `nib serve --port 0 ...` and read the port it printed.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let model = common::model_path(common::SMOLLM2);
        let mut cmd = nib();
        cmd.arg("serve")
            .arg("-m")
            .arg(&model)
            .args(["--port", "0", "-t", "2"])
            .args(args);
        cmd.env_remove("NIB_API_KEY");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nib serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let mut port = None;
        for line in lines.by_ref() {
            let line = line.expect("read stderr");
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split_whitespace().next().unwrap();
                port = Some(addr.rsplit(':').next().unwrap().parse().unwrap());
                break;
            }
        }
        let port = port.unwrap_or_else(|| {
            panic!(
                "nib serve did not print its address:\n{}",
                log.lock().unwrap()
            )
        });
        // Keep draining stderr (for the failure messages below).
        let l = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                l.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server { child, port, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        http(self.port, method, path, headers, body)
    }

    fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(
            "POST",
            path,
            &[("Authorization", &format!("Bearer {KEY}"))],
            body.to_string().as_bytes(),
        )
    }

    fn get(&self, path: &str) -> Resp {
        self.send(
            "GET",
            path,
            &[("Authorization", &format!("Bearer {KEY}"))],
            b"",
        )
    }

    fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
            .parse()
            .unwrap()
    }

    /// Wait for `cond` (polling), or fail with the server's log.
    fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !cond() {
            assert!(
                t0.elapsed() < timeout,
                "timed out waiting for {what}; server log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `data:` payloads of an event stream.
    fn events(&self) -> Vec<String> {
        self.text()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(str::to_string)
            .collect()
    }

    /// An OpenAI error body with this status and code.
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        let v = self.json();
        let e = &v["error"];
        assert_eq!(e["code"], code, "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["type"].is_string(), "{v}");
    }
}

fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        req.push_str(&format!(
            "Content-Length: {}\r\nContent-Type: application/json\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One request on a fresh connection; the whole response (chunked bodies decoded).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(&request_bytes(method, path, headers, body))
        .expect("send request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let (mut out, mut rest) = (Vec::new(), &body[..]);
        loop {
            let nl = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size line");
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + size]);
            rest = &rest[nl + 2 + size + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

/// `nib run --temp 0 --json` for comparison.
fn nib_run(prompt: &str, n: usize, chat: bool) -> String {
    let model = common::model_path(common::SMOLLM2);
    let mut cmd = nib();
    cmd.arg("run").arg("-m").arg(&model).args([
        "-t",
        "2",
        "--temp",
        "0",
        "--json",
        "-n",
        &n.to_string(),
        "-p",
        prompt,
    ]);
    if chat {
        cmd.arg("--chat");
    }
    let out = cmd.output().expect("run nib run");
    common::assert_success("nib run", &out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("nib run --json output");
    v["text"].as_str().unwrap().to_string()
}

/// The text of a streamed completion, and the final chunk (the one with `finish_reason`).
fn stream_text(r: &Resp, chat: bool) -> (String, Value) {
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{}",
        r.text()
    );
    let mut text = String::new();
    let mut last = Value::Null;
    for (i, e) in events[..events.len() - 1].iter().enumerate() {
        let v: Value = serde_json::from_str(e).unwrap();
        let c = &v["choices"][0];
        if chat {
            assert_eq!(v["object"], "chat.completion.chunk");
            if i == 0 {
                assert_eq!(
                    c["delta"]["role"], "assistant",
                    "first chunk has the role: {v}"
                );
            }
            text.push_str(c["delta"]["content"].as_str().unwrap_or(""));
        } else {
            assert_eq!(v["object"], "text_completion");
            text.push_str(c["text"].as_str().unwrap());
        }
        if !c["finish_reason"].is_null() {
            last = v.clone();
        }
    }
    assert!(
        !last.is_null(),
        "no chunk with a finish_reason: {}",
        r.text()
    );
    (text, last)
}

#[test]
fn serve_end_to_end() {
    let t_start = Instant::now();
    let ctx = CTX.to_string();
    let srv = Server::start(
        &[
            "-c",
            &ctx,
            "--parallel",
            "1",
            "--queue",
            "1",
            "--shutdown-grace",
            "0.5",
        ],
        &[
            ("NIB_API_KEY", KEY),
            ("NIB_SERVE_TEST_LOAD_DELAY_MS", "1500"),
        ],
    );

    // Loading: the listener is up first.
    let h = srv.send("GET", "/health", &[], b"");
    assert_eq!(
        (h.status, h.json()),
        (503, json!({"status": "loading"})),
        "{}",
        srv.log()
    );
    srv.post("/v1/completions", &json!({"prompt": "x"}))
        .assert_error(503, "model_loading");
    srv.wait_for("/health ok", Duration::from_secs(30), || {
        srv.send("GET", "/health", &[], b"").status == 200
    });
    assert_eq!(
        srv.send("GET", "/health", &[], b"").json(),
        json!({"status": "ok"})
    );

    // The API key: /health needs none, everything else does.
    // Method, path, headers, body.
    type Request<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a [u8]);
    let refused: [Request; 3] = [
        ("GET", "/v1/models", &[], b""),
        (
            "GET",
            "/v1/models",
            &[("Authorization", "Bearer wrong")],
            b"",
        ),
        (
            "POST",
            "/v1/completions",
            &[("Authorization", "Basic abc")],
            b"{}",
        ),
    ];
    for (method, path, headers, body) in refused {
        srv.send(method, path, headers, body)
            .assert_error(401, "invalid_api_key");
    }
    let models = srv.get("/v1/models").json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], common::SMOLLM2);

    // Tokenize and detokenize.
    let toks = srv
        .post("/tokenize", &json!({"content": "Hello world"}))
        .json();
    let ids = toks["tokens"].as_array().unwrap().clone();
    assert!(!ids.is_empty());
    let back = srv.post("/detokenize", &json!({"tokens": ids})).json();
    assert_eq!(back["content"], "Hello world");

    // Greedy completions equal `nib run --temp 0`, whole and streamed.
    let n = 10;
    let prompt = "Once upon a time";
    let expected = nib_run(prompt, n, false);
    assert!(!expected.is_empty());
    let body = json!({"model": "anything", "prompt": prompt, "max_tokens": n, "temperature": 0, "extra_unknown": {"x": 1}});
    let r = srv.post("/v1/completions", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
    assert!(v["created"].is_u64());
    assert_eq!(v["model"], common::SMOLLM2);
    assert_eq!(v["choices"][0]["index"], 0);
    assert_eq!(
        v["choices"][0]["text"],
        expected.as_str(),
        "server vs nib run"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], n);
    let pt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(v["usage"]["total_tokens"].as_u64().unwrap(), pt + n as u64);
    for k in [
        "prompt_n",
        "prompt_ms",
        "prompt_per_second",
        "predicted_n",
        "predicted_ms",
        "predicted_per_second",
    ] {
        assert!(v["timings"][k].is_number(), "timings.{k}: {v}");
    }
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["prompt"] = json!([prompt]);
    let (text, last) = stream_text(&srv.post("/v1/completions", &sbody), false);
    assert_eq!(text, expected, "streamed completion vs nib run");
    assert_eq!(last["choices"][0]["finish_reason"], "length");

    // Chat, through the template.
    let question = "What is the capital of France?";
    let expected = nib_run(question, n, true);
    let body = json!({"messages": [{"role": "user", "content": question}], "max_tokens": n, "temperature": 0});
    let v = srv.post("/v1/chat/completions", &body).json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        expected.as_str(),
        "chat vs nib run --chat"
    );
    assert!(v["timings"]["predicted_n"].is_number());
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let r = srv.post("/v1/chat/completions", &sbody);
    let (text, last) = stream_text(&r, true);
    assert_eq!(text, expected, "streamed chat vs nib run --chat");
    assert!(last["timings"]["predicted_per_second"].is_number());
    let events = r.events();
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], n);

    // A stop string ends the text before it.
    let mut body = json!({"prompt": prompt, "max_tokens": n, "temperature": 0});
    let full = srv.post("/v1/completions", &body).json()["choices"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let word = full
        .split_whitespace()
        .nth(1)
        .expect("two words")
        .to_string();
    body["stop"] = json!([word]);
    let v = srv.post("/v1/completions", &body).json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        v["choices"][0]["text"].as_str().unwrap(),
        &full[..full.find(&word).unwrap()]
    );

    // Bad input: an OpenAI error each time, and the server stays up.
    let auth = format!("Bearer {KEY}");
    let auth = [("Authorization", auth.as_str())];
    let bad = |body: &[u8]| srv.send("POST", "/v1/chat/completions", &auth, body);
    bad(b"{\"messages\": [").assert_error(400, "invalid_json");
    bad(b"").assert_error(400, "invalid_json");
    bad(b"[1, 2]").assert_error(400, "invalid_json");
    bad(b"{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}")
        .assert_error(400, "invalid_encoding");
    let msg = json!([{"role": "user", "content": "hi"}]);
    bad(json!({"messages": []}).to_string().as_bytes()).assert_error(400, "invalid_value");
    bad(json!({}).to_string().as_bytes()).assert_error(400, "missing_required_parameter");
    bad(json!({"messages": "hi"}).to_string().as_bytes()).assert_error(400, "invalid_type");
    bad(json!({"messages": [{"role": "user", "content": 5}]})
        .to_string()
        .as_bytes())
    .assert_error(400, "invalid_type");
    for (field, value) in [
        ("max_tokens", json!("ten")),
        ("temperature", json!("hot")),
        ("stream", json!("yes")),
        ("stop", json!(7)),
        ("seed", json!(1.5)),
    ] {
        let r = bad(json!({"messages": msg, field: value})
            .to_string()
            .as_bytes());
        r.assert_error(400, "invalid_type");
        assert_eq!(r.json()["error"]["param"], field);
    }
    let r = bad(json!({"messages": msg, "n": 2}).to_string().as_bytes());
    r.assert_error(400, "invalid_value");
    assert_eq!(r.json()["error"]["param"], "n");
    bad(json!({"messages": msg, "top_p": 7}).to_string().as_bytes())
        .assert_error(400, "invalid_value");
    let long = "the cat sat on the mat ".repeat(40);
    let r = srv.post("/v1/completions", &json!({"prompt": long, "max_tokens": 4}));
    r.assert_error(400, "context_length_exceeded");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    srv.post("/v1/completions", &json!({"prompt": [1, 2, 99999999]}))
        .assert_error(400, "invalid_value");
    srv.post("/v1/completions", &json!({"prompt": ""}))
        .assert_error(400, "invalid_value");
    srv.post("/detokenize", &json!({"tokens": ["a"]}))
        .assert_error(400, "invalid_type");
    srv.post("/tokenize", &json!({"content": 3}))
        .assert_error(400, "invalid_type");
    // Over 10 MB: refused from the declared length, before the body is read.
    srv.send(
        "POST",
        "/v1/completions",
        &[auth[0], ("Content-Length", "10485761")],
        b"",
    )
    .assert_error(413, "request_too_large");
    srv.get("/v1/nothing").assert_error(404, "not_found");
    srv.get("/v1/completions")
        .assert_error(405, "method_not_allowed");
    // max_tokens far beyond the context is clamped to it: `length` at a full context.
    let filler = "one two three four five six seven eight nine ten ".repeat(5);
    let v = srv.post(
        "/v1/completions",
        &json!({"prompt": filler, "max_tokens": 1_000_000_000u64, "temperature": 0}),
    );
    let v = v.json();
    let (p, c) = (
        v["usage"]["prompt_tokens"].as_u64().unwrap(),
        v["usage"]["completion_tokens"].as_u64().unwrap(),
    );
    assert!(p + c <= CTX as u64 && c >= 1, "{v}");
    assert!(
        v["choices"][0]["finish_reason"] == "length" || v["choices"][0]["finish_reason"] == "stop",
        "{v}"
    );
    assert_eq!(srv.send("GET", "/health", &[], b"").status, 200);

    // A client that leaves mid-stream frees the slot; with the slot busy and one request
    // waiting, a third gets 503.
    let cancelled_before = srv.metric("nib_cancelled_total");
    let long_stream =
        json!({"prompt": prompt, "max_tokens": 50, "temperature": 0, "stream": true}).to_string();
    let open_stream = || {
        let mut s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        s.write_all(&request_bytes(
            "POST",
            "/v1/completions",
            &auth,
            long_stream.as_bytes(),
        ))
        .unwrap();
        s
    };
    let mut first = open_stream();
    first
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"text\"") {
        let k = first.read(&mut buf).unwrap();
        assert!(
            k > 0,
            "stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..k]);
    }
    let waiting = open_stream();
    srv.wait_for("a queued request", Duration::from_secs(10), || {
        srv.metric("nib_queue_length") == 1.0
    });
    let r = srv.post(
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 2}),
    );
    r.assert_error(503, "server_overloaded");
    drop(first);
    drop(waiting);
    srv.wait_for("the slot to be free", Duration::from_secs(30), || {
        srv.metric("nib_slots_busy") == 0.0 && srv.metric("nib_queue_length") == 0.0
    });
    assert!(
        srv.metric("nib_cancelled_total") > cancelled_before,
        "the left stream was not cancelled"
    );
    let v = srv
        .post(
            "/v1/completions",
            &json!({"prompt": prompt, "max_tokens": 2, "temperature": 0}),
        )
        .json();
    assert_eq!(v["usage"]["completion_tokens"], 2, "{v}");

    let m = srv.get("/metrics");
    assert_eq!(m.status, 200);
    let m = m.text();
    assert!(
        m.contains("nib_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"),
        "{m}"
    );
    assert!(
        m.contains("nib_requests_total{endpoint=\"/v1/chat/completions\",status=\"400\"}"),
        "{m}"
    );
    assert!(srv.metric("nib_generated_tokens_total") > 0.0);

    // SIGTERM with a generation in flight: it is cut at the end of the grace period and the
    // server exits 0.
    let mut s = open_stream();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut first_bytes = [0u8; 64];
    assert!(s.read(&mut first_bytes).unwrap() > 0);
    let mut srv = srv;
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", srv.child.id())])
        .status()
        .unwrap();
    assert!(ok.success());
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    // The stream either finished within the grace period or was cut with an error event.
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        rest.contains("data: [DONE]") || rest.contains("\"shutting_down\""),
        "{rest}"
    );
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the server did not stop; log:\n{}",
            srv.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        srv.log()
    );
    eprintln!(
        "serve_end_to_end took {:.1} s",
        t_start.elapsed().as_secs_f64()
    );
}

/// `--parallel 3`: three greedy completions at once decode together (one batched step for the
/// three slots; a batch this small keeps each sequence's bits) and each equals `nib run`.
#[test]
fn parallel_slots_decode_together_and_match_nib_run() {
    let ctx = CTX.to_string();
    let srv = Server::start(&["-c", &ctx, "--parallel", "3"], &[("NIB_API_KEY", KEY)]);
    srv.wait_for("/health ok", Duration::from_secs(30), || {
        srv.send("GET", "/health", &[], b"").status == 200
    });
    let n = 12;
    let prompts = [
        "Once upon a time",
        "The capital of France is",
        "List three fruits:",
    ];
    let expected: Vec<String> = prompts.iter().map(|p| nib_run(p, n, false)).collect();
    let got: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let srv = &srv;
                s.spawn(move || {
                    let body = json!({"prompt": p, "max_tokens": n, "temperature": 0});
                    let r = srv.post("/v1/completions", &body);
                    assert_eq!(r.status, 200, "{}", r.text());
                    r.json()["choices"][0]["text"].as_str().unwrap().to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got, expected, "{}", srv.log());
}

#[test]
fn server_and_batch_accept_and_refuse_the_same_requests() {
    // One validator for both: each body, sent to /v1/completions and given to `nib batch` as a
    // line, is accepted by both or refused by both with the same message.
    let bodies = [
        json!({"max_tokens": 1e12}),
        json!({"seed": -1}),
        json!({"top_k": -5}),
        json!({"repeat_last_n": -1}),
        json!({"stop": ["x", ""]}),
        json!({"prompt": [1, 2, 3]}),
        json!({"logit_bias": {"5": -1e30}}),
        json!({"logit_bias": {"5": 1e308}}),
        json!({"logit_bias": {"99999999": 1}}),
        json!({"temperature": "hot"}),
        json!({"temperature": 1e39}),
        json!({"top_p": 1.5}),
        json!({"max_tokens": -2}),
        json!({"max_tokens": 1.5}),
        json!({"n": 2}),
        json!({"prompt": ["a", "b"]}),
    ];
    let full = |b: &Value| {
        let mut o = json!({"prompt": "Hi", "max_tokens": 1, "temperature": 0});
        for (k, v) in b.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    let srv = Server::start(&["-c", &CTX.to_string()], &[]);
    srv.wait_for("the model", Duration::from_secs(120), || {
        srv.send("GET", "/health", &[], b"").status == 200
    });
    let served: Vec<Result<(), String>> = bodies
        .iter()
        .map(|b| {
            let r = srv.send(
                "POST",
                "/v1/completions",
                &[],
                full(b).to_string().as_bytes(),
            );
            match r.status {
                200 => Ok(()),
                400 => Err(r.json()["error"]["message"].as_str().unwrap().to_string()),
                s => panic!("{b}: status {s}: {}", r.text()),
            }
        })
        .collect();
    drop(srv);

    let dir = common::Scratch::new("serve-batch");
    let (input, output) = (dir.path("in.jsonl"), dir.path("out.jsonl"));
    let lines: Vec<String> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut o = full(b);
            o["id"] = json!(i);
            o.to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = nib()
        .args(["batch", "-c", &CTX.to_string(), "-t", "2", "-m"])
        .arg(common::model_path(common::SMOLLM2))
        .arg("-i")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&output).unwrap_or_else(|e| panic!("{e}: {err}"));
    let mut batched: Vec<Option<Result<(), String>>> = vec![None; bodies.len()];
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        let i = v["id"].as_u64().unwrap() as usize;
        batched[i] = Some(match v.get("error") {
            None => Ok(()),
            Some(e) => Err(e.as_str().unwrap().to_string()),
        });
    }
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(
            batched[i].as_ref(),
            Some(&served[i]),
            "{b}: server and batch disagree (batch stderr: {err})"
        );
    }
    // Both kinds are in the set.
    assert!(
        served.iter().filter(|r| r.is_ok()).count() >= 6,
        "{served:?}"
    );
    assert!(
        served.iter().filter(|r| r.is_err()).count() >= 8,
        "{served:?}"
    );
}

/// Read from `s` until the server closes it (or 30 s pass): what came, and after how long.
fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, Duration) {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    (got, t0.elapsed())
}

#[test]
fn stalled_clients_are_disconnected_and_connections_are_capped() {
    // --timeout 1: a client that sends nothing, half a request head, half a body, or nothing
    // after its first request on a kept-alive connection is disconnected after about a second
    // (the half body with a 408 JSON error). --max-connections 2: a third connection gets a 503
    // JSON error. A bad Content-Length gets a JSON 400, not hyper's empty one.
    let srv = Server::start(&["--timeout", "1"], &[]);
    srv.wait_for("the model", Duration::from_secs(120), || {
        srv.send("GET", "/health", &[], b"").status == 200
    });
    let connect = || TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    let within = |d: Duration| d >= Duration::from_millis(800) && d < Duration::from_secs(15);

    for (what, sent) in [
        ("nothing", &b""[..]),
        ("half a head", b"GET /health HTTP/1.1\r\nHo"),
    ] {
        let mut s = connect();
        s.write_all(sent).unwrap();
        let (got, took) = read_until_closed(&mut s);
        assert!(
            got.is_empty() && within(took),
            "{what}: {got:?} after {took:?}"
        );
    }

    let mut s = connect();
    s.write_all(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"con")
        .unwrap();
    let (got, took) = read_until_closed(&mut s);
    let r = parse_response(&got);
    r.assert_error(408, "request_timeout");
    assert!(within(took), "{took:?}");

    let mut s = connect();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = read_until_closed(&mut s);
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(within(took), "kept alive for {took:?}");

    let mut s = connect();
    s.write_all(b"POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n{}")
        .unwrap();
    let (got, _) = read_until_closed(&mut s);
    parse_response(&got).assert_error(400, "invalid_http");

    drop(srv);
    // Two idle connections hold both places; the third is refused at once. (A longer timeout
    // here, so that the two are still open however loaded the machine is.)
    let srv = Server::start(&["--timeout", "30", "--max-connections", "2"], &[]);
    srv.wait_for("the model", Duration::from_secs(120), || {
        srv.send("GET", "/health", &[], b"").status == 200
    });
    let connect = || TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    let held = [connect(), connect()];
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = read_until_closed(&mut third);
    parse_response(&got).assert_error(503, "too_many_connections");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Once they are closed, connections are served again.
    drop(held);
    srv.wait_for("a free connection", Duration::from_secs(15), || {
        srv.send("GET", "/health", &[], b"").status == 200
    });
}

#[test]
fn an_empty_api_key_is_refused_at_startup() {
    // It used to turn authentication off without a word.
    let model = common::model_path(common::SMOLLM2);
    for (args, env, says) in [
        (&["--api-key", ""][..], None, "--api-key is empty"),
        (&["--api-key", "  "][..], None, "--api-key is empty"),
        (&[][..], Some(""), "NIB_API_KEY is set but empty"),
    ] {
        let mut cmd = nib();
        cmd.arg("serve")
            .arg("-m")
            .arg(&model)
            .args(["--port", "0"])
            .args(args);
        cmd.env_remove("NIB_API_KEY");
        if let Some(v) = env {
            cmd.env("NIB_API_KEY", v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
    }
}
