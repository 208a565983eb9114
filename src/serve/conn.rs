//! Connections: nib drives each accepted TCP connection through hyper itself (rather than
//! `axum::serve`) to bound what a client can hold:
//!
//! - **Timeouts** (`--timeout`, llama-server's read/write timeout): a request head must arrive
//!   within it, and so must the next one on a kept-alive connection (hyper's header-read timer,
//!   which also closes idle connections); each chunk of a request body within it (the `gate`
//!   middleware answers 408 otherwise); each write of a response must make progress within it
//!   (a client that stops reading is dropped, [`ConnIo`]). A generation that takes longer is not
//!   cut: nothing is read or written meanwhile.
//! - **A cap on connections** (`--max-connections`): beyond it a connection gets a 503 JSON
//!   error and is closed.
//! - **JSON for hyper's own rejections**: a request hyper cannot parse (a bad `Content-Length`,
//!   a malformed header, headers too large) gets OpenAI's error shape, not an empty 400.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

/// How connections are bounded.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Read and write timeout (see the module's documentation).
    pub timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Refused connections being answered at once; more are closed without an answer.
const MAX_REFUSING: usize = 64;

/// Serve `app` on `listener` until `stop` turns true, then let the open connections finish
/// their requests (each closes after its current response) and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusing = Arc::new(Semaphore::new(MAX_REFUSING));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.timeout)
        .keep_alive(true);
    let mut stop_accepting = stop.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop_accepting.wait_for(|s| *s) => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!("nib serve: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            if let Ok(p) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, limits.max_connections).await;
                    drop(p);
                });
            }
            continue;
        };
        let io = TokioIo::new(ConnIo::new(stream, limits.timeout));
        let conn = http.serve_connection(io, TowerToHyperService::new(app.clone()));
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            // (The watch's guard is dropped at once: it must not live across an await.)
            let stopping = async { stop.wait_for(|s| *s).await.is_ok() };
            let finished = tokio::select! {
                _ = conn.as_mut() => true,
                _ = stopping => false,
            };
            if !finished {
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
            }
            drop(permit);
        });
    }
    // Every connection has given its permit back.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

/// An OpenAI-shaped error as a whole HTTP/1.1 response that closes the connection.
fn error_response(status: u16, reason: &str, code: &str, message: &str) -> Vec<u8> {
    let body = json!({"error": {
        "message": message,
        "type": if status == 503 { "unavailable_error" } else { "invalid_request_error" },
        "param": null,
        "code": code,
    }})
    .to_string();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answer a connection beyond the cap with 503: read its request head (briefly, so the answer
/// is not lost to a reset), answer, close.
async fn refuse(mut stream: TcpStream, max: usize) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(1);
    while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
            Ok(Ok(k)) if k > 0 => n += k,
            _ => break,
        }
    }
    let resp = error_response(
        503,
        "Service Unavailable",
        "too_many_connections",
        &format!(
            "the server has {max} connections open, its limit (--max-connections); retry later"
        ),
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(&resp).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// hyper's automatic answer to a request it could not parse (a status line and headers with
/// `content-length: 0` and no content type, nothing else), as the JSON error to send instead.
fn json_for_automatic_error(buf: &[u8]) -> Option<Vec<u8>> {
    let head = buf.strip_suffix(b"\r\n\r\n")?;
    if !head.starts_with(b"HTTP/1.1 4") || head.windows(4).any(|w| w == b"\r\n\r\n") {
        return None;
    }
    let lower = head.to_ascii_lowercase();
    let has = |s: &[u8]| lower.windows(s.len()).any(|w| w == s);
    if !has(b"\r\ncontent-length: 0") || has(b"\r\ncontent-type:") {
        return None;
    }
    let status: u16 = std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()?;
    let (reason, code, message) = match status {
        431 => (
            "Request Header Fields Too Large",
            "headers_too_large",
            "the request's headers are too large",
        ),
        414 => ("URI Too Long", "uri_too_long", "the request's URI is too long"),
        _ => (
            "Bad Request",
            "invalid_http",
            "the request is not valid HTTP/1.1 (a malformed request line or header, or a Content-Length that is not one non-negative integer)",
        ),
    };
    Some(error_response(status, reason, code, message))
}

/// A connection's socket with a write timeout, and hyper's automatic error answers rewritten as
/// JSON ([`json_for_automatic_error`]).
pub struct ConnIo {
    inner: TcpStream,
    timeout: Duration,
    /// Armed while a write or flush waits for the client.
    write_deadline: Option<Pin<Box<Sleep>>>,
    /// A rewritten answer being sent, how much of it is sent, and the length hyper asked to
    /// write (reported once all of it is).
    replacement: Option<(Vec<u8>, usize, usize)>,
}

impl ConnIo {
    pub fn new(inner: TcpStream, timeout: Duration) -> ConnIo {
        ConnIo {
            inner,
            timeout,
            write_deadline: None,
            replacement: None,
        }
    }

    /// Pending on the client: fail once the timeout has passed since the wait began.
    fn pending_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let timeout = self.timeout;
        let sleep = self
            .write_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response within the timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                self.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.pending_write(cx),
        }
    }
}

use std::future::Future as _;

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() {
            if let Some(json) = json_for_automatic_error(buf) {
                this.replacement = Some((json, 0, buf.len()));
            }
        }
        if let Some((bytes, mut sent, asked)) = this.replacement.take() {
            while sent < bytes.len() {
                match this.write_inner(cx, &bytes[sent..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(k)) => sent += k,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        this.replacement = Some((bytes, sent, asked));
                        return Poll::Pending;
                    }
                }
            }
            return Poll::Ready(Ok(asked));
        }
        this.write_inner(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => {
                this.write_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                ready!(this.pending_write(cx))?;
                Poll::Pending
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes a response head in one buffer, which is what
    // `json_for_automatic_error` looks at.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::json_for_automatic_error;

    #[test]
    fn only_hypers_bodyless_automatic_answers_are_rewritten() {
        let auto = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Sun, 06 Dec 2026 10:00:00 GMT\r\n\r\n";
        let json = String::from_utf8(json_for_automatic_error(auto).unwrap()).unwrap();
        assert!(json.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{json}");
        let body: serde_json::Value =
            serde_json::from_str(json.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_http");
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(String::from_utf8(json_for_automatic_error(big).unwrap())
            .unwrap()
            .contains("headers_too_large"));
        // nib's own answers (a content type, a body) pass untouched.
        for own in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert_eq!(json_for_automatic_error(own), None);
        }
    }
}

#[cfg(test)]
mod write_timeout_tests {
    use super::ConnIo;
    use std::time::{Duration, Instant};
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The client connects and never reads.
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        let mut io = ConnIo::new(server_side, Duration::from_millis(300));
        let chunk = vec![b'x'; 1 << 16];
        let t0 = Instant::now();
        let err = loop {
            if let Err(e) = io.write_all(&chunk).await {
                break e;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "never timed out");
        };
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    }
}
