//! Connection hygiene on the HTTP listener (issue 10, point 6): a request head not complete
//! in time, a connection idle too long between requests, and connections beyond the caps (in
//! all and per client address) are closed or refused, while well-behaved clients are served.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn demo_config(limits: &str) -> String {
    format!("[limits]\n{limits}\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n")
}

/// Connect from `local` (a loopback address) to `addr`.
async fn connect_from(local: &str, addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{local}:0").parse().expect("local address"))
        .expect("bind");
    socket
        .connect(addr.parse().expect("router address"))
        .await
        .expect("connect")
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Send one request on `s` (kept alive) and read its whole response head and body.
async fn round_trip(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = tokio::time::timeout_at(deadline.into(), s.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .expect("read");
        assert!(n > 0, "closed before the response: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .expect("a content-length");
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// How long until the router closes `s` (reading and dropping anything it sends first).
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<(Duration, Vec<u8>)> {
    let start = Instant::now();
    let mut got = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut got)).await {
        Ok(_) => Some((start.elapsed(), got)),
        Err(_) => None,
    }
}

/// A client that sends half a request head and stalls is closed once the head is overdue
/// (`header_read_timeout_ms`); a well-behaved client is served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_request_heads_are_closed_after_the_timeout() {
    let router = start_router(&demo_config(
        "header_read_timeout_ms = 500\nidle_timeout_ms = 60000",
    ));
    let addr = router.addr();
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
            .await
            .expect("half a head");
        stalled.push(s);
    }
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    echo_works(&c, "while others stall").await;
    for mut s in stalled {
        // Closed within a few times the timeout (an error reply, if any, first).
        assert!(
            closed_within(&mut s, Duration::from_secs(5))
                .await
                .is_some(),
            "a stalled connection was still open after 5 s"
        );
    }
    echo_works(&c, "after").await;

    // One served first, idle for a while, then stalled halfway through its next head: the
    // head timeout applies from that head's first byte, not the (longer) idle timeout.
    let mut later = TcpStream::connect(&addr).await.expect("connect");
    assert!(round_trip(&mut later, HEALTH)
        .await
        .starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(800)).await;
    later
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .expect("half a head");
    let (after, _) = closed_within(&mut later, Duration::from_secs(10))
        .await
        .expect("closed by the head timeout");
    assert!(
        after < Duration::from_secs(3),
        "closed {after:?} after its half head"
    );
}

/// A kept-alive connection that sends nothing more is closed after `idle_timeout_ms`; one that
/// keeps sending requests, one waiting for a slow answer, and one holding an SSE stream stay
/// open past it. The head timeout is longer here, so it is not what closes the idle one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let router = start_router(&demo_config(
        "header_read_timeout_ms = 20000\nidle_timeout_ms = 700",
    ));
    let addr = router.addr();

    // Idle after one answer: closed about 700 ms after it, long before the head timeout
    // (which the connection's watchdog was counting down when the request came).
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(round_trip(&mut idle, HEALTH)
        .await
        .starts_with("HTTP/1.1 200"));
    let (after, _) = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .expect("the idle connection was closed");
    assert!(
        after >= Duration::from_millis(500) && after < Duration::from_secs(5),
        "closed after {after:?}"
    );

    // Requests every 300 ms for 2.4 s, all on one connection.
    let mut steady = TcpStream::connect(&addr).await.expect("connect");
    for _ in 0..8 {
        assert!(round_trip(&mut steady, HEALTH)
            .await
            .starts_with("HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A call answered after 2 s on a connection that sends nothing while it waits.
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let session = c.session.clone().expect("a session id");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "demo__sleep", "arguments": {"ms": 2000}}})
    .to_string();
    let call = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMcp-Session-Id: {session}\r\n\
         MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut slow = TcpStream::connect(&addr).await.expect("connect");
    let answer = round_trip(&mut slow, call.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("\"result\""),
        "{answer}"
    );

    // An SSE stream that carries nothing for 2 s is a response in progress, not idleness.
    let get = format!(
        "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
         Mcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-11-25\r\n\r\n"
    );
    let mut sse = TcpStream::connect(&addr).await.expect("connect");
    sse.write_all(get.as_bytes()).await.expect("write");
    assert!(
        closed_within(&mut sse, Duration::from_secs(2))
            .await
            .is_none(),
        "an open SSE stream was closed as idle"
    );
    echo_works(&c, "served throughout").await;
}

/// Beyond `max_connections_per_address` from one address, and beyond `max_connections` in
/// all, a connection is refused at once with a 503, whichever worker accepted it; a place
/// given back is taken again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_caps_are_refused_at_once() {
    // Two workers, each with its own listener: the caps count across both.
    let router = start_router_with(
        &demo_config("max_connections = 4\nmax_connections_per_address = 3"),
        &["--workers", "2"],
    );
    let addr = router.addr();
    let refused = |got: &[u8]| String::from_utf8_lossy(got).starts_with("HTTP/1.1 503");

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect_from("127.0.0.1", &addr).await;
        assert!(round_trip(&mut s, HEALTH).await.starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    // A fourth from the same address: the per-address cap.
    let mut extra = connect_from("127.0.0.1", &addr).await;
    let (after, got) = closed_within(&mut extra, Duration::from_secs(3))
        .await
        .expect("refused at once");
    assert!(
        refused(&got),
        "{:?} after {after:?}",
        String::from_utf8_lossy(&got)
    );

    // Another address still gets the last place in all, and is served on it.
    let mut other = connect_from("127.0.0.2", &addr).await;
    let health = round_trip(&mut other, HEALTH).await;
    assert!(health.contains("\"connections\":4"), "{health}");
    // Then the total cap refuses the next, whatever its address.
    let mut fifth = connect_from("127.0.0.3", &addr).await;
    let (_, got) = closed_within(&mut fifth, Duration::from_secs(3))
        .await
        .expect("refused at once");
    assert!(refused(&got), "{:?}", String::from_utf8_lossy(&got));

    // A place given back (its close noticed by the router) is taken again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut s = connect_from("127.0.0.1", &addr).await;
        s.write_all(HEALTH).await.expect("write");
        let mut got = vec![0u8; 512];
        let n = s.read(&mut got).await.unwrap_or(0);
        if String::from_utf8_lossy(&got[..n]).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place after one was given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in held.iter_mut().chain([&mut other]) {
        assert!(round_trip(s, HEALTH).await.starts_with("HTTP/1.1 200"));
    }
}
