//! The connections Switchyard keeps to a Streamable HTTP upstream (the Python SDK's server,
//! under uvicorn, or under hypercorn for HTTP/2), counted by a TCP forwarder in front of it:
//! calls reuse kept-alive connections, no more of them open than `max_connections` (calls
//! beyond wait), a connection the server closed while idle costs no call, and with
//! `http2 = true` one HTTP/2 connection carries calls at once.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections made through the forwarder: in all, open at once at most, and those that
/// began with the HTTP/2 preface.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
    http2: AtomicUsize,
}

const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A TCP forwarder to `127.0.0.1:to`; returns its URL for the MCP endpoint and its counts.
async fn counting_forwarder(to: u16) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            c.accepted.fetch_add(1, Ordering::SeqCst);
            let now = c.open.fetch_add(1, Ordering::SeqCst) + 1;
            c.peak.fetch_max(now, Ordering::SeqCst);
            let c = c.clone();
            tokio::spawn(async move {
                // Every request head is longer than the preface, so these bytes come at once.
                let mut first = [0u8; 24];
                if client.read_exact(&mut first).await.is_ok() {
                    if &first == HTTP2_PREFACE {
                        c.http2.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", to)).await {
                        if server.write_all(&first).await.is_ok() {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    }
                }
                c.open.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (format!("http://127.0.0.1:{port}/mcp"), counts)
}

fn port_of(url: &str) -> u16 {
    url.trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/mcp")
        .parse()
        .expect("a port")
}

/// A handshake-era client's `py__shout` call; panics unless it is answered.
async fn shout(c: &RawClient, id: i64, text: &str) {
    let r = c
        .call(
            json!(id),
            "tools/call",
            json!({"name": "py__shout", "arguments": {"text": text}}),
        )
        .await;
    assert_eq!(
        text_of(&r.response()["result"]),
        text.to_uppercase(),
        "call {id}: {:?}",
        r.response()
    );
}

/// Six clients each start a 300 ms `py__slow` call at once; each task says whether its call
/// got a result.
fn six_slow_calls_at_once(url: &str) -> Vec<tokio::task::JoinHandle<bool>> {
    (0..6)
        .map(|i| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let c = client(&url).await;
                let r = c
                    .call(
                        json!(i),
                        "tools/call",
                        json!({"name": "py__slow", "arguments": {"ms": 300}}),
                    )
                    .await;
                r.response()["result"].is_object()
            })
        })
        .collect()
}

async fn client(url: &str) -> RawClient {
    let mut c = RawClient::new(url);
    c.initialize("2025-11-25", "{}").await;
    c
}

/// The Python server behind a counting forwarder, Switchyard in front speaking `era` to it
/// (`extra`: more of its `[[servers]]` entry), and a client whose first call has been answered.
struct Setup {
    _py: Proc,
    router: Router,
    counts: Arc<Counts>,
    first: RawClient,
}

async fn setup(era: &str, extra: &str) -> Setup {
    setup_on(start_py_server(), era, extra).await
}

async fn setup_on((py, py_url): (Proc, String), era: &str, extra: &str) -> Setup {
    let (url, counts) = counting_forwarder(port_of(&py_url)).await;
    let router = start_router(&format!(
        "[[servers]]\nname = \"py\"\nurl = \"{url}\"\nera = \"{era}\"\n{extra}"
    ));
    let first = client(&router.url).await;
    shout(&first, 1, "warm").await;
    Setup {
        _py: py,
        router,
        counts,
        first,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reuse_kept_alive_connections() {
    for era in ["legacy", "2026-07-28"] {
        let Setup { router, counts, .. } = &setup(era, "").await;
        let before = counts.accepted.load(Ordering::SeqCst);
        // Four clients, fifteen calls each, one at a time per client.
        let mut runs = Vec::new();
        for k in 0..4 {
            let url = router.url.clone();
            runs.push(tokio::spawn(async move {
                let c = client(&url).await;
                for i in 0..15 {
                    shout(&c, i, &format!("c{k} n{i}")).await;
                }
            }));
        }
        for run in runs {
            run.await.expect("a client's calls");
        }
        let new = counts.accepted.load(Ordering::SeqCst) - before;
        assert!(
            new <= 4,
            "upstream era {era}: 60 calls, at most 4 at once, opened {new} connections"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_max_connections_wait_for_a_free_one() {
    for (era, lasting) in [("legacy", 1), ("2026-07-28", 0)] {
        let Setup { router, counts, .. } = &setup(era, "max_connections = 2\n").await;
        // A connection the setup used once (the handshake's or discovery's own) may still be
        // closing at the forwarder: count from when only the kept ones are left.
        let settling = std::time::Instant::now();
        while counts.open.load(Ordering::SeqCst) > 1 + lasting
            && settling.elapsed() < Duration::from_secs(3)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        counts
            .peak
            .store(counts.open.load(Ordering::SeqCst), Ordering::SeqCst);
        let calls = six_slow_calls_at_once(&router.url);
        for call in calls {
            assert!(
                call.await.expect("a call"),
                "upstream era {era}: every queued call is answered"
            );
        }
        // The handshake era's GET stream stays open beside the two for calls.
        let peak = counts.peak.load(Ordering::SeqCst);
        assert!(
            peak <= 2 + lasting,
            "upstream era {era}: {peak} connections open at once with max_connections = 2"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_server_closed_while_idle_costs_no_call() {
    for era in ["legacy", "2026-07-28"] {
        let Setup {
            counts, first: c, ..
        } = &setup(era, "").await;
        let before = counts.accepted.load(Ordering::SeqCst);
        // uvicorn closes a connection idle for 5 s.
        tokio::time::sleep(Duration::from_secs(6)).await;
        shout(c, 2, "after").await;
        assert!(
            counts.accepted.load(Ordering::SeqCst) > before,
            "upstream era {era}: the server kept its idle connection, so this test proved nothing"
        );
    }
}

/// With `http2 = true`, calls at once share one HTTP/2 connection (HTTP/1.1 would need one
/// each: six slow calls would open five more), every one answered; hypercorn serves both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_carries_calls_at_once_on_one_connection() {
    for (era, lasting) in [("legacy", 1), ("2026-07-28", 0)] {
        let py = start_py_server_with_flags(&["--hypercorn"]);
        let Setup { router, counts, .. } = &setup_on(py, era, "http2 = true\n").await;
        // The first call opened the connection; the six at once open none.
        let before = counts.accepted.load(Ordering::SeqCst);
        let calls = six_slow_calls_at_once(&router.url);
        for call in calls {
            assert!(
                call.await.expect("a call"),
                "upstream era {era}: a call unanswered"
            );
        }
        let (accepted, http2) = (
            counts.accepted.load(Ordering::SeqCst),
            counts.http2.load(Ordering::SeqCst),
        );
        assert_eq!(
            accepted, http2,
            "upstream era {era}: every connection spoke HTTP/2"
        );
        assert_eq!(
            accepted - before,
            0,
            "upstream era {era}: six calls at once opened connections of their own"
        );
        // Besides it, only the handshake era's GET stream stays open (and its initialize's
        // connection may not have closed yet).
        let open = counts.open.load(Ordering::SeqCst);
        assert!(
            open <= 1 + 2 * lasting,
            "upstream era {era}: {open} connections open"
        );
    }
}
