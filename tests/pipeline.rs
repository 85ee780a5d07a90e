//! The call pipeline cannot be bypassed: a counting call stage and a counting reply stage,
//! added to a router run in this process behind its real HTTP and stdio fronts, see every
//! call that reaches an upstream and every final reply, on every route: handshake-era and
//! 2026-07-28 clients, calls bridged for a handshake-era client (each round), a 2026 client's
//! retry resuming a parked handshake-era call, a public read made twice within its ttl (the
//! shared cache itself is proven in tests/public_cache.rs), over
//! HTTP and over stdio. A new route that skipped `Router::admit` would leave a count short.
//! Upstreams: the dual-era fixture, once detected as 2026-07-28 (`m__`) and once pinned to
//! the handshake era (`l__`).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use serde_json::{json, Value};
use switchyard::config::Config;
use switchyard::router::{CallRoute, CallStage, CallView, Decision, Router};
use switchyard::session::{CallInfo, ReplyStage};
use switchyard::transport::http::{serve, HttpFront};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Counts {
    calls: Mutex<HashMap<(String, &'static str), u64>>,
    finals: AtomicU64,
    progress: AtomicU64,
}

fn route_name(r: CallRoute) -> &'static str {
    match r {
        CallRoute::Direct => "direct",
        CallRoute::Bridged => "bridged",
        CallRoute::Resumed => "resumed",
    }
}

struct CountCalls(Arc<Counts>);

impl CallStage for CountCalls {
    fn admit(&self, call: &CallView<'_>) -> Decision {
        let server = call.handle.shared.name.clone();
        *self
            .0
            .calls
            .lock()
            .unwrap()
            .entry((server, route_name(call.route)))
            .or_default() += 1;
        Decision::Continue
    }
}

struct CountReplies(Arc<Counts>);

impl ReplyStage for CountReplies {
    fn reply(&self, _call: &CallInfo, msg: Bytes, last: bool) -> Bytes {
        let counter = if last {
            &self.0.finals
        } else {
            &self.0.progress
        };
        counter.fetch_add(1, Ordering::SeqCst);
        msg
    }
}

fn calls(c: &Counts, server: &str, route: &str) -> u64 {
    c.calls
        .lock()
        .unwrap()
        .get(&(server.to_string(), route))
        .copied()
        .unwrap_or(0)
}

fn total_calls(c: &Counts) -> u64 {
    c.calls.lock().unwrap().values().sum()
}

async fn modern_call(c: &RawClient, id: &str, params: Value, caps: Value) -> Reply {
    c.send(modern_request(c, json!(id), "tools/call", params, caps))
        .await
}

/// The router's real HTTP front, in this process, on a free loopback port: its MCP URL.
async fn serve_http(router: &Arc<Router>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    tokio::spawn(serve(
        HttpFront::new(router.clone()),
        listener,
        std::future::pending(),
    ));
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_passes_the_pipeline_both_ways() {
    let fixture = fixture().display().to_string();
    let config = format!(
        "[[servers]]\nname = \"m\"\ncommand = {fixture:?}\n\n\
         [[servers]]\nname = \"l\"\ncommand = {fixture:?}\nera = \"legacy\"\n"
    );
    let router = Router::new(Config::parse(&config, "test").expect("config"));
    let counts = Arc::new(Counts::default());
    router
        .pipeline
        .add_call_stage(Arc::new(CountCalls(counts.clone())));
    router
        .pipeline
        .add_reply_stage(Arc::new(CountReplies(counts.clone())));
    let url = serve_http(&router).await;

    // Handshake-era client over HTTP: a direct call to the legacy upstream, one with
    // progress, and a call to the 2026 upstream, which is a bridged round.
    let mut legacy = RawClient::new(&url);
    legacy
        .initialize("2025-11-25", r#"{"elicitation":{}}"#)
        .await;
    let simple = json!({"name": "l__test_simple_text", "arguments": {}});
    let r = legacy.call(json!(1), "tools/call", simple).await;
    assert!(r.response()["result"].is_object(), "{:?}", r.response());
    let progress = json!({"name": "l__test_tool_with_progress", "arguments": {},
        "_meta": {"progressToken": "p"}});
    let r = legacy.call(json!(2), "tools/call", progress).await;
    let notes = r
        .messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(notes > 0, "{:?}", r.messages);
    let r = legacy
        .call(
            json!(3),
            "tools/call",
            json!({"name": "m__test_simple_text", "arguments": {}}),
        )
        .await;
    assert!(r.response()["result"].is_object(), "{:?}", r.response());
    assert_eq!(calls(&counts, "l", "direct"), 2);
    assert_eq!(calls(&counts, "m", "bridged"), 1);
    assert_eq!(counts.progress.load(Ordering::SeqCst) as usize, notes);

    // Bridged with a question: the 2026 upstream asks, the client answers, a second round.
    let body = json!({"jsonrpc": "2.0", "id": "ask", "method": "tools/call",
        "params": {"name": "m__test_elicitation", "arguments": {"message": "Your name?"}}});
    let mut stream =
        EventStream::open(&legacy, legacy.request("POST", &body.to_string(), &[])).await;
    let got = stream
        .until(WAIT, |m| m["method"] == "elicitation/create")
        .await
        .expect("the question");
    let q = got.last().expect("question");
    let answer = json!({"jsonrpc": "2.0", "id": q["id"],
        "result": {"action": "accept", "content": {"name": "Ada"}}});
    assert_eq!(legacy.post(&answer.to_string()).await.status, 202);
    let got = stream
        .until(WAIT, |m| m["id"] == "ask")
        .await
        .expect("the reply");
    assert!(got.last().expect("reply")["result"].is_object(), "{got:?}");
    assert_eq!(calls(&counts, "m", "bridged"), 3, "two rounds more");

    // 2026 clients over HTTP: a direct call, a cached read read twice, and a call parked at
    // the legacy upstream, then resumed by the client's retry.
    let modern = RawClient::new(&url);
    let r = modern_call(
        &modern,
        "a",
        json!({"name": "m__test_simple_text", "arguments": {}}),
        json!({}),
    )
    .await;
    assert!(r.response()["result"].is_object(), "{:?}", r.response());
    for id in ["r1", "r2"] {
        let read = modern_request(
            &modern,
            json!(id),
            "resources/read",
            json!({"uri": "test://static-text"}),
            json!({}),
        );
        let r = modern.send(read).await;
        assert!(r.response()["result"].is_object(), "{:?}", r.response());
    }
    assert_eq!(
        calls(&counts, "m", "direct"),
        3,
        "the cache hit is admitted too"
    );
    let caps = json!({"elicitation": {}});
    let ask = json!({"name": "l__test_input_required_result_elicitation", "arguments": {}});
    let first = modern_call(&modern, "p", ask.clone(), caps.clone()).await;
    let state = first.response()["result"]["requestState"]
        .as_str()
        .expect("parked")
        .to_string();
    let mut retry = ask;
    retry["inputResponses"] =
        json!({"switchyard": {"action": "accept", "content": {"name": "Ada"}}});
    retry["requestState"] = json!(state);
    let r = modern_call(&modern, "p2", retry, caps).await;
    assert_eq!(
        r.response()["result"]["resultType"],
        "complete",
        "{:?}",
        r.response()
    );
    assert_eq!(calls(&counts, "l", "direct"), 3);
    assert_eq!(calls(&counts, "l", "resumed"), 1);

    // Over stdio: a handshake-era session and a 2026 request on one connection.
    let (client, server) = tokio::io::duplex(1 << 16);
    let (server_in, server_out) = tokio::io::split(server);
    tokio::spawn(switchyard::transport::stdio::serve(
        router.clone(),
        server_in,
        server_out,
    ));
    let (client_in, mut out) = tokio::io::split(client);
    let mut lines = BufReader::new(client_in).lines();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params":
        {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let simple = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "l__test_simple_text", "arguments": {}}});
    let modern_simple = json!({"jsonrpc": "2.0", "id": "s26", "method": "tools/call",
        "params": {"name": "m__test_simple_text", "arguments": {}, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    for (frame, id) in [
        (init, json!(1)),
        (simple, json!(2)),
        (modern_simple, json!("s26")),
    ] {
        out.write_all(format!("{frame}\n").as_bytes())
            .await
            .expect("write");
        let reply = loop {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("in time");
            let v: Value =
                serde_json::from_str(&line.expect("read").expect("a line")).expect("JSON");
            if v["id"] == id {
                break v;
            }
        };
        assert!(reply["result"].is_object(), "{reply}");
    }
    assert_eq!(calls(&counts, "l", "direct"), 4);
    assert_eq!(calls(&counts, "m", "direct"), 4);

    // Every admitted call had exactly one final reply through the reply stages, and nothing
    // reached an upstream without being admitted.
    assert_eq!(
        total_calls(&counts),
        12,
        "{:?}",
        counts.calls.lock().unwrap()
    );
    assert_eq!(counts.finals.load(Ordering::SeqCst), 12);
}

/// Holds the call with id "held" until released; every other call goes on.
struct HoldOne(Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

impl CallStage for HoldOne {
    fn admit(&self, call: &CallView<'_>) -> Decision {
        if call.env.id_bytes().as_deref() != Some(b"\"held\"".as_slice()) {
            return Decision::Continue;
        }
        match self.0.lock().unwrap().take() {
            Some(release) => Decision::Hold(Box::pin(async move {
                let _ = release.await;
                Decision::Continue
            })),
            None => Decision::Continue,
        }
    }
}

/// Answers every call to one tool itself, as a policy stage refusing it would.
struct Refuse(&'static str);

impl CallStage for Refuse {
    fn admit(&self, call: &CallView<'_>) -> Decision {
        let name = call.env.peek().name.map(|n| n.get().to_string());
        if name.as_deref() != Some(self.0) {
            return Decision::Continue;
        }
        let id = call.env.id_bytes().unwrap_or_default();
        Decision::Answer(switchyard::wire::json::error(
            Some(&id),
            -32602,
            "refused by a stage",
            None,
        ))
    }
}

/// A held call waits off the hot path: the same session's next call goes through meanwhile,
/// and the held one is sent once released. A stage that answers keeps the call from the
/// upstream, and later stages never see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_waits_while_others_go_on() {
    let fixture = fixture().display().to_string();
    let config = format!("[[servers]]\nname = \"l\"\ncommand = {fixture:?}\nera = \"legacy\"\n");
    let router = Router::new(Config::parse(&config, "test").expect("config"));
    let (release, held) = tokio::sync::oneshot::channel();
    let counts = Arc::new(Counts::default());
    router
        .pipeline
        .add_call_stage(Arc::new(Refuse("\"l__test_error_handling\"")));
    let hold = Arc::new(HoldOne(Mutex::new(Some(held))));
    router.pipeline.add_call_stage(hold.clone());
    router
        .pipeline
        .add_call_stage(Arc::new(CountCalls(counts.clone())));
    let url = serve_http(&router).await;
    let mut c = RawClient::new(&url);
    c.initialize("2025-11-25", "{}").await;

    let simple = json!({"name": "l__test_simple_text", "arguments": {}});
    let first = {
        let c = c.clone();
        let simple = simple.clone();
        tokio::spawn(async move { c.call(json!("held"), "tools/call", simple).await })
    };
    // Until the held call has reached the stage.
    let deadline = tokio::time::Instant::now() + WAIT;
    while hold.0.lock().unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never reached the stage"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = c.call(json!("next"), "tools/call", simple).await;
    assert!(r.response()["result"].is_object(), "{:?}", r.response());
    assert!(!first.is_finished(), "the held call waits");
    assert_eq!(
        calls(&counts, "l", "direct"),
        1,
        "only the second got past the hold"
    );

    let r = c
        .call(
            json!("no"),
            "tools/call",
            json!({"name": "l__test_error_handling", "arguments": {}}),
        )
        .await;
    assert_eq!(
        r.response()["error"]["message"],
        "refused by a stage",
        "{:?}",
        r.response()
    );
    assert_eq!(
        calls(&counts, "l", "direct"),
        1,
        "an answered call goes no further"
    );

    release.send(()).expect("release");
    let r = tokio::time::timeout(WAIT, first)
        .await
        .expect("in time")
        .expect("task");
    assert!(r.response()["result"].is_object(), "{:?}", r.response());
    assert_eq!(calls(&counts, "l", "direct"), 2);
}
