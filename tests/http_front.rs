//! Switchyard's HTTP front against real upstreams: bad input of every kind gets its
//! documented error while other sessions keep working; many sessions share one stdio
//! upstream without seeing each other's messages; a killed upstream is answered for and
//! restarted; a cut SSE reply is resumed with Last-Event-ID.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};

fn demo_config() -> &'static str {
    "[limits]\nmax_frame_bytes = 65536\nrequest_timeout_ms = 20000\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_documented_errors_and_harms_no_one() {
    let router = start_router(demo_config());
    let mut a = RawClient::new(&router.url);
    a.initialize("2025-11-25", "{}").await;
    let mut b = RawClient::new(&router.url);
    b.initialize("2025-11-25", "{}").await;
    echo_works(&b, "before").await;

    // Malformed JSON: HTTP 400 with a parse error.
    let r = a.post("{\"jsonrpc\":\"2.0\",\"id\":1,").await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32700))
    );
    echo_works(&b, "after-malformed").await;

    // Non-object params: -32602 carrying the request's id.
    let r = a
        .post(r#"{"jsonrpc":"2.0","id":"p","method":"tools/call","params":["demo__echo"]}"#)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        (
            r.response()["id"].clone(),
            r.response()["error"]["code"].as_i64()
        ),
        (json!("p"), Some(-32602))
    );

    // Not JSON-RPC 2.0, an id of the wrong type.
    let r = a.post(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).await;
    assert_eq!(r.response()["error"]["code"].as_i64(), Some(-32600));
    let r = a
        .post(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#)
        .await;
    assert_eq!(r.response()["error"]["code"].as_i64(), Some(-32600));

    // A frame over the size limit: 413.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"demo__echo","arguments":{{"text":"{}"}}}}}}"#,
        "x".repeat(70_000)
    );
    let r = a.post(&big).await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (413, Some(-32600))
    );
    echo_works(&b, "after-oversized").await;

    // Pretty-printed JSON (newlines between tokens) reaches a newline-framed upstream intact.
    let r = a.post("{\"jsonrpc\": \"2.0\",\n  \"id\": \"ml\",\r\n  \"method\": \"tools/call\",\n  \"params\": {\"name\": \"demo__echo\",\n \"arguments\": {\"text\": \"multi\\nline\"}}\n}").await;
    assert_eq!(
        text_of(&r.response()["result"]),
        "multi\nline",
        "{:?}",
        r.response()
    );

    // A response to an id nobody asked: accepted (202) and dropped.
    let r = a
        .post(r#"{"jsonrpc":"2.0","id":"never-sent","result":{}}"#)
        .await;
    assert_eq!(r.status, 202);
    echo_works(&a, "a-still-works").await;

    // An unknown tool and an unknown method.
    let r = a
        .call(json!(3), "tools/call", json!({"name": "demo__nope"}))
        .await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (200, Some(-32602))
    );
    let r = a
        .call(json!(4), "tools/call", json!({"name": "nobody__x"}))
        .await;
    assert_eq!(r.response()["error"]["code"].as_i64(), Some(-32602));
    let r = a.call(json!(5), "no/such/method", json!({})).await;
    assert_eq!(r.response()["error"]["code"].as_i64(), Some(-32601));

    // Missing and foreign session ids.
    let anon = RawClient::new(&router.url);
    let r = anon
        .post(r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#)
        .await;
    assert_eq!(r.status, 400);
    let mut foreign = RawClient::new(&router.url);
    foreign.session = Some("0123456789abcdef0123456789abcdef".into());
    let r = foreign
        .post(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#)
        .await;
    assert_eq!(r.status, 404);

    // Bad Origin and Host: 403, before anything else is looked at.
    let r = a
        .send(a.request(
            "POST",
            r#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#,
            &[("origin", "http://evil.example")],
        ))
        .await;
    assert_eq!(r.status, 403);
    let r = a
        .send(a.request(
            "POST",
            r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
            &[("host", "evil.example:80")],
        ))
        .await;
    assert_eq!(r.status, 403);
    let r = a
        .send(a.request(
            "POST",
            r#"{"jsonrpc":"2.0","id":10,"method":"ping"}"#,
            &[("origin", "http://localhost:3000")],
        ))
        .await;
    assert_eq!(r.status, 200, "a loopback Origin is allowed");

    // Wrong Accept, wrong Content-Type, unknown protocol version, unsupported HTTP method.
    let mut req = a.request("POST", r#"{"jsonrpc":"2.0","id":11,"method":"ping"}"#, &[]);
    req.headers_mut()
        .insert("accept", "application/json".parse().unwrap());
    assert_eq!(a.send(req).await.status, 406);
    let mut req = a.request("POST", r#"{"jsonrpc":"2.0","id":12,"method":"ping"}"#, &[]);
    req.headers_mut()
        .insert("content-type", "text/plain".parse().unwrap());
    assert_eq!(a.send(req).await.status, 415);
    let r = a
        .send(a.request(
            "POST",
            r#"{"jsonrpc":"2.0","id":13,"method":"ping"}"#,
            &[("mcp-protocol-version", "1999-01-01")],
        ))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(a.send(a.request("PUT", "", &[])).await.status, 405);

    // Batches belong to 2025-03-26 only.
    let r = a
        .post(r#"[{"jsonrpc":"2.0","id":14,"method":"ping"}]"#)
        .await;
    assert_eq!(r.status, 400);

    // A reused in-flight id is refused, not mixed up.
    let slow = a.call(
        json!(77),
        "tools/call",
        json!({"name": "demo__sleep", "arguments": {"ms": 500}}),
    );
    let dup = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.call(
            json!(77),
            "tools/call",
            json!({"name": "demo__echo", "arguments": {"text": "dup"}}),
        )
        .await
    };
    let (slow, dup) = tokio::join!(slow, dup);
    assert_eq!(dup.response()["error"]["code"].as_i64(), Some(-32600));
    assert_eq!(text_of(&slow.response()["result"]), "slept 500 ms");

    // DELETE ends a session; B is untouched.
    assert_eq!(a.send(a.request("DELETE", "", &[])).await.status, 200);
    assert_eq!(
        a.post(r#"{"jsonrpc":"2.0","id":15,"method":"ping"}"#)
            .await
            .status,
        404
    );
    echo_works(&b, "after-all").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_work_in_2025_03_26_sessions() {
    let router = start_router(demo_config());
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-03-26", "{}").await;
    let r = c
        .post(r#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"demo__add","arguments":{"a":2,"b":3}}},{"jsonrpc":"2.0","method":"notifications/initialized"},{"bad":true}]"#)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.messages.len(), 3, "{:?}", r.messages);
    let by_id = |id: Value| {
        r.messages
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by_id(json!("a"))["result"], json!({}));
    assert_eq!(text_of(&by_id(json!(2))["result"]), "5");
    assert!(r
        .messages
        .iter()
        .any(|m| m["error"]["code"] == json!(-32600)));
}

/// 100 sessions on one shared stdio upstream (server-everything), all using the same request
/// id and each its own progress token: every response and progress reaches its own client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_sessions_share_one_stdio_upstream_without_crosstalk() {
    let router = start_router(&everything_server("everything"));
    const SESSIONS: usize = 100;
    const STEPS: u64 = 4;
    let mut tasks = Vec::new();
    for i in 0..SESSIONS {
        let url = router.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = RawClient::new(&url);
            c.initialize("2025-11-25", "{}").await;
            let token = format!("tok-{i}");
            let params = json!({"name": "everything__trigger-long-running-operation",
                "arguments": {"duration": 0.4, "steps": STEPS}, "_meta": {"progressToken": token}});
            let r = c.call(json!(1), "tools/call", params).await;
            let progress: Vec<&Value> = r
                .messages
                .iter()
                .filter(|m| m["method"] == "notifications/progress")
                .collect();
            for p in &progress {
                assert_eq!(
                    p["params"]["progressToken"],
                    json!(token),
                    "session {i} got a foreign progress"
                );
            }
            assert_eq!(r.response()["id"], json!(1));
            assert!(
                text_of(&r.response()["result"]).contains("Long running operation completed"),
                "{:?}",
                r.response()
            );
            progress.len() as u64
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("session task");
    }
    assert_eq!(
        total,
        SESSIONS as u64 * STEPS,
        "every progress notification arrives exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_upstream_answers_in_flight_calls_and_restarts() {
    let router = start_router(demo_config());
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    echo_works(&c, "warm").await;
    let children = child_pids(router.proc.0.id());
    assert_eq!(children.len(), 1, "one demo child: {children:?}");

    let slow = c.call(
        json!("slow"),
        "tools/call",
        json!({"name": "demo__sleep", "arguments": {"ms": 10000}}),
    );
    let killer = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = Instant::now();
        assert!(std::process::Command::new("kill")
            .args(["-9", &children[0].to_string()])
            .status()
            .expect("kill")
            .success());
        killed
    };
    let (r, killed) = tokio::join!(slow, killer);
    let waited = killed.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "in-flight call answered {waited:?} after the kill"
    );
    assert_eq!(r.response()["id"], json!("slow"));
    assert_eq!(
        r.response()["error"]["code"].as_i64(),
        Some(-31002),
        "{:?}",
        r.response()
    );
    assert_eq!(r.response()["error"]["data"]["server"], json!("demo"));

    // The server comes back; the next call succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c
            .call(
                json!("again"),
                "tools/call",
                json!({"name": "demo__echo", "arguments": {"text": "back"}}),
            )
            .await;
        if text_of(&r.response()["result"]) == "back" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "upstream not back: {:?}",
            r.response()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = child_pids(router.proc.0.id());
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], children[0], "a new child process");
}

/// A reply stream cut after its first progress event, resumed by GET with Last-Event-ID:
/// the rest arrives, and the response exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_sse_reply_resumes_with_last_event_id() {
    let router = start_router(demo_config());
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let body = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "demo__sleep", "arguments": {"ms": 800, "steps": 4}, "_meta": {"progressToken": "p"}}});
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let resp = client
        .request(c.request("POST", &body.to_string(), &[]))
        .await
        .expect("POST");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.into_body();
    let mut seen = Vec::new();
    let mut first_part = Vec::new();
    while let Some(frame) = stream.frame().await {
        let data = frame.expect("frame").into_data().unwrap_or_default();
        first_part.extend_from_slice(&data);
        let (msgs, ids) = parse_sse(&first_part);
        if !msgs.is_empty() {
            seen = msgs;
            first_part = ids.last().cloned().unwrap_or_default().into_bytes();
            break;
        }
    }
    drop(stream); // cut the connection mid-response
    let last_id = String::from_utf8(first_part).expect("id");
    assert_eq!(seen.len(), 1, "one progress event before the cut: {seen:?}");
    assert_eq!(seen[0]["method"], "notifications/progress");

    let r = c
        .send(c.request("GET", "", &[("last-event-id", &last_id)]))
        .await;
    assert_eq!(r.status, 200);
    let mut all = seen.clone();
    all.extend(r.messages.iter().cloned());
    let responses: Vec<&Value> = all.iter().filter(|m| m.get("result").is_some()).collect();
    assert_eq!(responses.len(), 1, "the response exactly once: {all:?}");
    assert_eq!(responses[0]["id"], json!(42));
    assert_eq!(text_of(&responses[0]["result"]), "slept 800 ms");
    let steps: Vec<u64> = all
        .iter()
        .filter_map(|m| m["params"]["progress"].as_u64())
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4], "no progress lost or repeated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_unknown_paths() {
    let router = start_router(demo_config());
    let c = RawClient::new(&router.url.replace("/mcp", "/healthz"));
    let r = c.send(c.request("GET", "", &[])).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).expect("json")["status"],
        "ok"
    );
    let c = RawClient::new(&router.url.replace("/mcp", "/elsewhere"));
    assert_eq!(c.send(c.request("POST", "{}", &[])).await.status, 404);
}
