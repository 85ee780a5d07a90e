//! Switchyard's own HTTP/1.1 server on the wire, spoken to byte by byte: pipelined requests
//! answered in order on one connection, chunked request bodies, `Expect: 100-continue`,
//! HTTP/1.0, SSE replies chunked, and malformed framing refused with its status and a close.
//! (The SDK clients, the conformance suite and the browser speak to the same server in their
//! own tests.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn demo() -> String {
    "[limits]\nmax_frame_bytes = 4096\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n".into()
}

/// One response as read off the wire.
#[derive(Debug)]
struct Wire {
    status_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads responses one after another from a connection.
struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(router: &Router) -> Conn {
        let s = TcpStream::connect(router.addr()).await.expect("connect");
        Conn { s, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.expect("write");
    }

    /// More bytes, within 10 s; `false` once the server closed.
    async fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout_at(deadline.into(), self.s.read(&mut chunk))
            .await
            .expect("the server answered within 10 s")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response: its head, then its body by length, by chunks, or to the close.
    async fn response(&mut self) -> Wire {
        let deadline = Instant::now() + Duration::from_secs(10);
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            assert!(
                self.fill(deadline).await,
                "closed before a response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut wire = Wire {
            status_line,
            headers,
            body: Vec::new(),
        };
        if wire.status_line.contains(" 100 ") {
            return wire;
        }
        if let Some(n) = wire.header("content-length") {
            let n: usize = n.parse().expect("a numeric content-length");
            while self.buf.len() < n {
                assert!(self.fill(deadline).await, "closed inside a body");
            }
            wire.body = self.buf.drain(..n).collect();
        } else if wire.header("transfer-encoding") == Some("chunked") {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.fill(deadline).await, "closed inside a chunk size");
                };
                let size = usize::from_str_radix(
                    String::from_utf8_lossy(&self.buf[..line_end]).trim(),
                    16,
                )
                .expect("a hex chunk size");
                while self.buf.len() < line_end + 2 + size + 2 {
                    assert!(self.fill(deadline).await, "closed inside a chunk");
                }
                let chunk: Vec<u8> = self.buf.drain(..line_end + 2 + size + 2).collect();
                if size == 0 {
                    break;
                }
                wire.body
                    .extend_from_slice(&chunk[line_end + 2..line_end + 2 + size]);
            }
        } else {
            while self.fill(deadline).await {}
            wire.body = std::mem::take(&mut self.buf);
        }
        wire
    }

    /// The server closes the connection (after anything already sent) within 10 s.
    async fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.fill(deadline).await {}
        true
    }
}

const H: &str = "Host: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n";

fn post(extra: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /mcp HTTP/1.1\r\n{H}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn init_body(id: u32) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "wire", "version": "1"}}})
    .to_string()
}

fn echo_body(id: u32, text: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "demo__echo", "arguments": {"text": text}}})
    .to_string()
}

/// A session started on `c`: its id.
async fn session(c: &mut Conn) -> String {
    c.send(&post("", &init_body(1))).await;
    let r = c.response().await;
    assert!(r.status_line.starts_with("HTTP/1.1 200"), "{r:?}");
    let sid = r
        .header("mcp-session-id")
        .expect("a session id")
        .to_string();
    let s = format!("Mcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-11-25\r\n");
    c.send(&post(
        &s,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    ))
    .await;
    assert!(c.response().await.status_line.starts_with("HTTP/1.1 202"));
    s
}

/// Requests written back to back in one write are answered in their order, each whole.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let router = start_router(&demo());
    let mut c = Conn::open(&router).await;
    let s = session(&mut c).await;
    let mut all = Vec::new();
    for i in 0..20u32 {
        all.extend_from_slice(&post(&s, &echo_body(100 + i, &format!("call {i}"))));
        all.extend_from_slice(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }
    c.send(&all).await;
    for i in 0..20u32 {
        let r = c.response().await;
        assert!(r.status_line.starts_with("HTTP/1.1 200"), "{r:?}");
        assert_eq!(r.json()["id"], json!(100 + i));
        assert_eq!(text_of(&r.json()["result"]), format!("call {i}"));
        assert!(
            r.header("date").is_some_and(|d| d.ends_with("GMT")),
            "{r:?}"
        );
        let health = c.response().await;
        assert_eq!(health.json()["status"], json!("ok"), "{health:?}");
    }
}

/// A chunked request body, in chunks of odd sizes with an extension and a trailer, and one
/// sent after `Expect: 100-continue` was answered.
#[tokio::test]
async fn chunked_bodies_and_expect_continue_are_read() {
    let router = start_router(&demo());
    let mut c = Conn::open(&router).await;
    let s = session(&mut c).await;
    let body = echo_body(7, "in chunks");
    let (a, b) = body.split_at(5);
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\n{H}{s}Transfer-Encoding: chunked\r\n\r\n{:x};x=y\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nx-trailer: 1\r\n\r\n",
        a.len(),
        b.len()
    );
    // Sent a few bytes at a time: the server waits for the rest.
    for piece in chunked.as_bytes().chunks(9) {
        c.send(piece).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let r = c.response().await;
    assert_eq!(text_of(&r.json()["result"]), "in chunks", "{r:?}");

    let body = echo_body(8, "after continue");
    let head = format!(
        "POST /mcp HTTP/1.1\r\n{H}{s}Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.send(head.as_bytes()).await;
    let go = c.response().await;
    assert_eq!(go.status_line, "HTTP/1.1 100 Continue");
    c.send(body.as_bytes()).await;
    let r = c.response().await;
    assert_eq!(text_of(&r.json()["result"]), "after continue", "{r:?}");
}

/// A body announced over the limit is refused before it is sent (no 100), with the
/// documented 413 and a close; the next connection is served.
#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_sent() {
    let router = start_router(&demo());
    let mut c = Conn::open(&router).await;
    let head =
        format!("POST /mcp HTTP/1.1\r\n{H}Expect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    c.send(head.as_bytes()).await;
    let r = c.response().await;
    assert!(r.status_line.starts_with("HTTP/1.1 413"), "{r:?}");
    assert_eq!(r.json()["error"]["code"], json!(-32600));
    assert!(r.json()["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("4096-byte limit")));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed().await);

    // Chunked, over the limit only once its chunks add up.
    let mut c = Conn::open(&router).await;
    let big = "x".repeat(3000);
    let chunked = format!(
        "POST /mcp HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\nbb8\r\n{big}\r\nbb8\r\n{big}\r\n0\r\n\r\n"
    );
    c.send(chunked.as_bytes()).await;
    assert!(c.response().await.status_line.starts_with("HTTP/1.1 413"));

    let mut c = Conn::open(&router).await;
    session(&mut c).await;
}

/// Framing that would let a request hide inside another, heads that are not HTTP, and
/// HTTP/1.1 heads without exactly one Host (which the DNS-rebinding check reads) are
/// refused with their status, and the connection is closed (nothing after them is read).
#[tokio::test]
async fn malformed_framing_is_refused_and_the_connection_closed() {
    let router = start_router(&demo());
    let cases: [(&str, &str); 7] = [
        ("GET /healthz HTTP/1.1\r\n\r\n", "400"),
        (
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n",
            "400",
        ),
        (
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            "400",
        ),
        (
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
            "400",
        ),
        ("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", "501"),
        ("\x16\x03\x01\x02\x00\x01\x00\x01\x7f\x03\x03\r\n\r\n", "400"),
        ("POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nnothex\r\n", "400"),
    ];
    for (raw, status) in cases {
        let mut c = Conn::open(&router).await;
        c.send(raw.as_bytes()).await;
        let r = c.response().await;
        assert!(
            r.status_line.starts_with(&format!("HTTP/1.1 {status}")),
            "{raw:?}: {r:?}"
        );
        assert!(r.json()["error"]["message"].is_string(), "{r:?}");
        assert!(c.closed().await);
        assert!(
            c.buf.is_empty(),
            "nothing answered after a refusal: {:?}",
            String::from_utf8_lossy(&c.buf)
        );
    }
}

/// An HTTP/1.0 client is answered in HTTP/1.0 and the connection closed after, unless it
/// asked to keep it; a reply stream goes to it without chunking, ended by the close.
#[tokio::test]
async fn http_1_0_clients_are_answered_in_kind() {
    let router = start_router(&demo());
    let mut c = Conn::open(&router).await;
    c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = c.response().await;
    assert!(r.status_line.starts_with("HTTP/1.0 200"), "{r:?}");
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n").await;
    let r = c.response().await;
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
    assert!(c.closed().await);

    // A call with progress comes back as SSE: close-delimited in HTTP/1.0.
    let mut c = Conn::open(&router).await;
    let s = session(&mut c).await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "demo__sleep", "arguments": {"ms": 50, "steps": 2}, "_meta": {"progressToken": "p"}}})
    .to_string();
    let req = format!(
        "POST /mcp HTTP/1.0\r\n{H}{s}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut c = Conn::open(&router).await;
    c.send(req.as_bytes()).await;
    let r = c.response().await;
    assert!(r.status_line.starts_with("HTTP/1.0 200"), "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.header("transfer-encoding").is_none());
    let (messages, _) = parse_sse(&r.body);
    assert_eq!(
        messages.last().map(|m| m["id"].clone()),
        Some(json!(9)),
        "{messages:?}"
    );
    assert!(messages
        .iter()
        .any(|m| m["method"] == "notifications/progress"));
}

/// The same SSE reply to an HTTP/1.1 client is chunked, and the connection serves the next
/// request after it.
#[tokio::test]
async fn sse_replies_are_chunked_and_the_connection_kept() {
    let router = start_router(&demo());
    let mut c = Conn::open(&router).await;
    let s = session(&mut c).await;
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "demo__sleep", "arguments": {"ms": 50, "steps": 3}, "_meta": {"progressToken": "p"}}})
    .to_string();
    c.send(&post(&s, &body)).await;
    let r = c.response().await;
    assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{r:?}");
    let (messages, ids) = parse_sse(&r.body);
    assert_eq!(
        messages.last().map(|m| m["id"].clone()),
        Some(json!(9)),
        "{messages:?}"
    );
    assert!(!ids.is_empty(), "event ids for resuming");
    c.send(&post(&s, &echo_body(10, "next"))).await;
    assert_eq!(text_of(&c.response().await.json()["result"]), "next");
}
