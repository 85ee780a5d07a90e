//! 2026-07-28 (stateless) clients through Switchyard's HTTP front, to legacy upstreams
//! (server-everything over stdio, a Python SDK server over HTTP): the Python SDK client in
//! its 2026 and auto modes, and the rules a gateway must hold: `_meta` required, headers
//! checked against the body (a smuggled Mcp-Name never reaches an upstream), removed methods
//! 404, GET 405, `resultType` and cache hints on results.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn two_servers_config(py_url: &str) -> String {
    format!(
        "{}[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n",
        everything_server("everything")
    )
}

fn run_py_client(url: &str, mode: &str) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/peers/py_client.py"))
        .args(["http", url, mode]);
    let (ok, out) = run_with_limit(&mut cmd, Duration::from_secs(120));
    assert!(
        ok && out.contains("PY-CLIENT-OK"),
        "python client ({mode}) failed:\n{out}"
    );
    out
}

#[test]
fn python_client_in_2026_mode() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&two_servers_config(&py_url));
    let out = run_py_client(&router.url, "2026-07-28");
    assert!(out.contains("protocol 2026-07-28"), "{out}");
}

#[test]
fn python_client_in_auto_mode_discovers_2026() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&two_servers_config(&py_url));
    let out = run_py_client(&router.url, "auto");
    assert!(
        out.contains("protocol 2026-07-28"),
        "auto mode should settle on 2026-07-28 via server/discover:\n{out}"
    );
}

const META: &str = r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

fn modern(
    c: &RawClient,
    method: &str,
    params: Value,
    name: Option<&str>,
) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    let mut params = params;
    params["_meta"] = serde_json::from_str(META).expect("meta");
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string();
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(n) = name {
        headers.push(("mcp-name", n));
    }
    c.request("POST", &body, &headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_requests_are_checked_and_answered_in_2026_shape() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&two_servers_config(&py_url));
    let c = RawClient::new(&router.url);

    // server/discover: every revision, merged capabilities, cache hints.
    let r = c.send(modern(&c, "server/discover", json!({}), None)).await;
    let d = &r.response()["result"];
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(d["supportedVersions"][0], "2026-07-28");
    assert!(
        d["capabilities"]["tools"].is_object()
            && d["ttlMs"].is_number()
            && d["cacheScope"].is_string(),
        "{d}"
    );

    // Lists and calls: resultType on every result, ttlMs and cacheScope on lists.
    let r = c.send(modern(&c, "tools/list", json!({}), None)).await;
    let list = &r.response()["result"];
    assert_eq!(
        (list["resultType"].as_str(), list["cacheScope"].as_str()),
        (Some("complete"), Some("private"))
    );
    assert!(list["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "py__shout")));
    let r = c
        .send(modern(
            &c,
            "tools/call",
            json!({"name": "py__shout", "arguments": {"text": "hi"}}),
            Some("py__shout"),
        ))
        .await;
    assert_eq!(text_of(&r.response()["result"]), "HI");
    assert_eq!(r.response()["result"]["resultType"], "complete");
    let count = |r: &Reply| r.response()["result"]["structuredContent"]["result"].as_i64();
    let before = count(
        &c.send(modern(
            &c,
            "tools/call",
            json!({"name": "py__shout_count", "arguments": {}}),
            Some("py__shout_count"),
        ))
        .await,
    );
    assert_eq!(before, Some(1));

    // A smuggled name (header says one tool, body another) is refused and reaches no upstream.
    let r = c
        .send(modern(
            &c,
            "tools/call",
            json!({"name": "py__shout", "arguments": {"text": "x"}}),
            Some("py__shout_count"),
        ))
        .await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    let r = c
        .send(modern(
            &c,
            "tools/call",
            json!({"name": "py__shout", "arguments": {"text": "x"}}),
            None,
        ))
        .await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32020)),
        "Mcp-Name is required"
    );
    let after = count(
        &c.send(modern(
            &c,
            "tools/call",
            json!({"name": "py__shout_count", "arguments": {}}),
            Some("py__shout_count"),
        ))
        .await,
    );
    assert_eq!(after, before, "the refused calls never reached the server");
    // A base64-encoded Mcp-Name is decoded before comparing.
    let r = c
        .send(modern(
            &c,
            "tools/call",
            json!({"name": "py__shout", "arguments": {"text": "b64"}}),
            Some("=?base64?cHlfX3Nob3V0?="),
        ))
        .await;
    assert_eq!(text_of(&r.response()["result"]), "B64");

    // Mcp-Method and MCP-Protocol-Version must agree with the body too.
    let mut req = modern(&c, "tools/list", json!({}), None);
    req.headers_mut()
        .insert("mcp-method", "tools/call".parse().unwrap());
    let r = c.send(req).await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );

    // _meta is required; unknown versions get -32022 with the supported list.
    let r = c.post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#).await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32602))
    );
    let r = c
        .send(c.request(
            "POST",
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2031-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
            &[("mcp-method", "tools/list")],
        ))
        .await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32022))
    );
    assert_eq!(r.response()["error"]["data"]["supported"][0], "2026-07-28");

    // Methods removed in 2026: 404 with -32601. GET and DELETE: 405.
    let r = c.send(modern(&c, "ping", json!({}), None)).await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (404, Some(-32601))
    );
    let r = c
        .send(modern(
            &c,
            "logging/setLevel",
            json!({"level": "info"}),
            None,
        ))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        c.send(c.request("GET", "", &[("mcp-protocol-version", "2026-07-28")]))
            .await
            .status,
        405
    );
    assert_eq!(c.send(c.request("DELETE", "", &[])).await.status, 405);

    // Resources through a legacy upstream, with cache hints.
    let r = c
        .send(modern(
            &c,
            "resources/read",
            json!({"uri": "py://note"}),
            Some("py://note"),
        ))
        .await;
    let read = &r.response()["result"];
    assert_eq!(read["contents"][0]["text"], "a note from python");
    assert_eq!(
        (read["resultType"].as_str(), read["ttlMs"].as_i64()),
        (Some("complete"), Some(0))
    );
}

/// A 2026-07-28 request gets log lines only if it asks (`_meta` logLevel), at or above that level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_follow_the_requests_own_level() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&format!("[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n"));
    let c = RawClient::new(&router.url);
    let call = |level: Option<&str>| {
        let mut meta: Value = serde_json::from_str(META).expect("meta");
        if let Some(l) = level {
            meta["io.modelcontextprotocol/logLevel"] = json!(l);
        }
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "py__chatty", "arguments": {}, "_meta": meta}});
        c.request(
            "POST",
            &body.to_string(),
            &[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", "py__chatty"),
            ],
        )
    };
    let r = c.send(call(None)).await;
    assert_eq!(text_of(&r.response()["result"]), "said things");
    assert!(
        log_levels(&r).is_empty(),
        "no logLevel, no log lines: {:?}",
        r.messages
    );
    let r = c.send(call(Some("info"))).await;
    assert_eq!(log_levels(&r), ["info", "error"], "{:?}", r.messages);
    let r = c.send(call(Some("error"))).await;
    assert_eq!(log_levels(&r), ["error"], "{:?}", r.messages);
    let r = c.send(call(Some("shouting"))).await;
    assert_eq!(
        (r.status, r.response()["error"]["code"].as_i64()),
        (400, Some(-32602))
    );
}

/// Upstreams are spoken to in their own era: a dual-era server is found to be 2026-07-28 by
/// `server/discover` (and gets the calling client's requests in 2026 shape), unless configured
/// legacy; clients of either era are served through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_era_is_detected_or_configured() {
    let (_py, py_url) = start_py_server();
    for (era, expected) in [
        ("auto", "2026-07-28"),
        ("legacy", "2025-11-25"),
        ("2026-07-28", "2026-07-28"),
    ] {
        let router = start_router(&format!(
            "[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nera = \"{era}\"\n"
        ));
        // A legacy client...
        let mut legacy = RawClient::new(&router.url);
        legacy.initialize("2025-11-25", "{}").await;
        let r = legacy
            .call(
                json!(1),
                "tools/call",
                json!({"name": "py__proto", "arguments": {}}),
            )
            .await;
        assert_eq!(
            text_of(&r.response()["result"]),
            expected,
            "era {era}: {:?}",
            r.response()
        );
        let r = legacy
            .call(
                json!(2),
                "tools/call",
                json!({"name": "py__shout", "arguments": {"text": "both"}}),
            )
            .await;
        assert_eq!(text_of(&r.response()["result"]), "BOTH", "era {era}");
        let r = legacy
            .call(json!(3), "resources/read", json!({"uri": "py://note"}))
            .await;
        assert_eq!(
            r.response()["result"]["contents"][0]["text"],
            "a note from python",
            "era {era}"
        );
        // ...and a modern one.
        let c = RawClient::new(&router.url);
        let r = c
            .send(modern(
                &c,
                "tools/call",
                json!({"name": "py__proto", "arguments": {}}),
                Some("py__proto"),
            ))
            .await;
        assert_eq!(text_of(&r.response()["result"]), expected, "era {era}");
        assert_eq!(r.response()["result"]["resultType"], "complete");
        // An unknown tool comes back as that server's own answer (a tool error), not an outage.
        let r = legacy
            .call(
                json!(4),
                "tools/call",
                json!({"name": "py__nope", "arguments": {}}),
            )
            .await;
        assert_eq!(
            r.response()["result"]["isError"],
            json!(true),
            "era {era}: {:?}",
            r.response()
        );
        assert_eq!(
            text_of(&r.response()["result"]),
            "Unknown tool: nope",
            "era {era}"
        );
    }
}

/// The same for a stdio upstream: a dual-era server run as a child is probed with
/// `server/discover` and spoken to in 2026-07-28; a legacy one (server-everything, which
/// answers the probe with -32601) is initialized; both in one router.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_upstream_era_is_detected() {
    for (era, expected) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let config = format!(
            "{}[[servers]]\nname = \"py\"\ncommand = {:?}\nargs = [{:?}, \"stdio\"]\nera = \"{era}\"\n",
            everything_server("everything"),
            python().display().to_string(),
            root().join("tests/peers/py_server.py").display().to_string()
        );
        let router = start_router(&config);
        let mut c = RawClient::new(&router.url);
        c.initialize("2025-11-25", "{}").await;
        let r = c
            .call(
                json!(1),
                "tools/call",
                json!({"name": "py__proto", "arguments": {}}),
            )
            .await;
        assert_eq!(
            text_of(&r.response()["result"]),
            expected,
            "era {era}: {:?}",
            r.response()
        );
        let r = c
            .call(
                json!(2),
                "tools/call",
                json!({"name": "everything__echo", "arguments": {"message": "old"}}),
            )
            .await;
        assert_eq!(text_of(&r.response()["result"]), "Echo: old");
        let m = RawClient::new(&router.url);
        let r = m
            .send(modern(
                &m,
                "tools/call",
                json!({"name": "py__shout", "arguments": {"text": "new"}}),
                Some("py__shout"),
            ))
            .await;
        assert_eq!(
            text_of(&r.response()["result"]),
            "NEW",
            "era {era}: {:?}",
            r.response()
        );
    }
}

/// Closing a 2026-07-28 reply before the response cancels the request upstream (a legacy
/// upstream gets notifications/cancelled, a 2026 one has its request stream closed: its
/// connection over HTTP/1.1, its HTTP/2 stream reset over HTTP/2, to the server under
/// hypercorn); a legacy client's disconnect does not cancel (the 2025 rule: clients cancel
/// explicitly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_2026_reply_cancels_and_a_legacy_disconnect_does_not() {
    let cases: [(&str, &[&str], &str); 3] = [
        ("legacy", &[], ""),
        ("2026-07-28", &[], ""),
        ("2026-07-28", &["--hypercorn"], "http2 = true\n"),
    ];
    for (era, flags, extra) in cases {
        let (_py, py_url) = start_py_server_with_flags(flags);
        let era_name = era;
        let era = format!(
            "{era_name}{}",
            if extra.is_empty() { "" } else { " over HTTP/2" }
        );
        let router = start_router(&format!(
            "[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nera = \"{era_name}\"\n{extra}"
        ));
        let done = |c: RawClient| async move {
            let r = c
                .send(modern(
                    &c,
                    "tools/call",
                    json!({"name": "py__slow_done", "arguments": {}}),
                    Some("py__slow_done"),
                ))
                .await;
            r.response()["result"]["structuredContent"]["result"].as_i64()
        };
        let c = RawClient::new(&router.url);
        assert_eq!(done(c.clone()).await, Some(0));

        // A 2026 client hangs up 300 ms into a 1.5 s call.
        let req = modern(
            &c,
            "tools/call",
            json!({"name": "py__slow", "arguments": {"ms": 1500}}),
            Some("py__slow"),
        );
        let call = tokio::time::timeout(Duration::from_millis(300), c.send(req)).await;
        assert!(
            call.is_err(),
            "the call was still running when the client left"
        );
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(
            done(c.clone()).await,
            Some(0),
            "upstream era {era}: the call was cancelled"
        );

        // A legacy client hangs up the same way: the call runs to its end.
        let mut legacy = RawClient::new(&router.url);
        legacy.initialize("2025-11-25", "{}").await;
        let call = tokio::time::timeout(
            Duration::from_millis(300),
            legacy.call(
                json!(1),
                "tools/call",
                json!({"name": "py__slow", "arguments": {"ms": 1500}}),
            ),
        )
        .await;
        assert!(call.is_err());
        tokio::time::sleep(Duration::from_millis(2000)).await;
        assert_eq!(
            done(c.clone()).await,
            Some(1),
            "upstream era {era}: a legacy disconnect is not a cancellation"
        );
    }
}
