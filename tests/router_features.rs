//! Router features against real upstreams: list_changed forwarding and cache refresh,
//! subscriptions counted and delivered only to subscribers, merged-list pagination, name
//! collisions, per-session log levels, timeouts, graceful shutdown, and the stdio front.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_reaches_every_session_and_refreshes_the_catalogue() {
    let (_py, py_url) = start_py_server();
    // The handshake era's list_changed (2026 servers send it only on subscriptions/listen).
    let router = start_router(&format!(
        "[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nera = \"legacy\"\n"
    ));
    let mut a = RawClient::new(&router.url);
    a.initialize("2025-11-25", "{}").await;
    let mut b = RawClient::new(&router.url);
    b.initialize("2025-11-25", "{}").await;
    let mut b_stream = EventStream::open(&b, b.request("GET", "", &[])).await;
    assert_eq!(b_stream.status, 200);
    let listed = a.call(json!(1), "tools/list", json!({})).await;
    assert!(listed.response()["result"]["tools"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));

    let r = a
        .call(
            json!(2),
            "tools/call",
            json!({"name": "py__touch_tools", "arguments": {}}),
        )
        .await;
    assert_eq!(
        text_of(&r.response()["result"]),
        "touched",
        "{:?}",
        r.response()
    );
    let got = b_stream
        .until(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await;
    assert!(
        got.is_some(),
        "session B heard the list change on its GET stream"
    );
    let again = a.call(json!(3), "tools/list", json!({})).await;
    assert_eq!(
        again.response()["result"]["tools"],
        listed.response()["result"]["tools"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_updates_go_only_to_subscribers() {
    let router = start_router(&everything_server("everything"));
    let mut sub = RawClient::new(&router.url);
    sub.initialize("2025-11-25", "{}").await;
    let mut other = RawClient::new(&router.url);
    other.initialize("2025-11-25", "{}").await;
    let mut sub_stream = EventStream::open(&sub, sub.request("GET", "", &[])).await;
    let mut other_stream = EventStream::open(&other, other.request("GET", "", &[])).await;

    let list = sub.call(json!(1), "resources/list", json!({})).await;
    let uri = list.response()["result"]["resources"][0]["uri"]
        .as_str()
        .expect("a resource")
        .to_string();
    let r = sub
        .call(json!(2), "resources/subscribe", json!({"uri": uri}))
        .await;
    assert_eq!(r.response()["result"], json!({}), "{:?}", r.response());
    let r = sub
        .call(
            json!(3),
            "tools/call",
            json!({"name": "everything__toggle-subscriber-updates", "arguments": {}}),
        )
        .await;
    assert!(r.response().get("result").is_some(), "{:?}", r.response());

    let got = sub_stream
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await;
    let got = got.expect("the subscriber hears the update");
    assert_eq!(got.last().expect("a message")["params"]["uri"], json!(uri));
    let leaked = other_stream
        .until(Duration::from_millis(1500), |m| {
            m["method"] == "notifications/resources/updated"
        })
        .await;
    assert!(
        leaked.is_none(),
        "a session that did not subscribe heard nothing: {leaked:?}"
    );

    let r = sub
        .call(json!(4), "resources/unsubscribe", json!({"uri": uri}))
        .await;
    assert_eq!(r.response()["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_lists_page_with_router_cursors_and_collisions_resolve() {
    let router = start_router(
        "[limits]\npage_size = 2\n[[servers]]\nname = \"a\"\nbuiltin = \"demo\"\nprefix = \"\"\n\
         [[servers]]\nname = \"b\"\nbuiltin = \"demo\"\nprefix = \"\"\n",
    );
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10, "too many pages");
        let params = cursor
            .as_ref()
            .map(|c| json!({"cursor": c}))
            .unwrap_or(json!({}));
        let r = c.call(json!(page), "tools/list", params).await;
        let result = &r.response()["result"];
        let tools = result["tools"].as_array().expect("tools");
        assert!(tools.len() <= 2);
        names.extend(
            tools
                .iter()
                .map(|t| t["name"].as_str().unwrap_or("").to_string()),
        );
        match result["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(
        names,
        ["echo", "add", "sleep", "b__echo", "b__add", "b__sleep"],
        "stable order, collisions renamed"
    );
    for (i, name) in ["echo", "b__echo"].iter().enumerate() {
        let r = c
            .call(
                json!(100 + i),
                "tools/call",
                json!({"name": name, "arguments": {"text": name}}),
            )
            .await;
        assert_eq!(text_of(&r.response()["result"]), *name);
    }
    let r = c
        .call(json!(200), "tools/list", json!({"cursor": "not-ours"}))
        .await;
    assert_eq!(r.response()["error"]["code"].as_i64(), Some(-32602));

    // Resources: a listed URI and a template route to a server; with two resource servers an
    // unknown URI has no owner and the router answers resource-not-found itself.
    let r = c
        .call(json!(300), "resources/templates/list", json!({}))
        .await;
    assert_eq!(
        r.response()["result"]["resourceTemplates"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let r = c
        .call(
            json!(301),
            "resources/read",
            json!({"uri": "demo://item/7"}),
        )
        .await;
    assert_eq!(
        r.response()["result"]["contents"][0]["text"],
        json!("item 7")
    );
    let r = c
        .call(json!(302), "resources/read", json!({"uri": "nowhere://x"}))
        .await;
    assert_eq!(
        r.response()["error"]["code"].as_i64(),
        Some(-32002),
        "{:?}",
        r.response()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_time_out_with_a_router_error() {
    let router = start_router(
        "[limits]\nrequest_timeout_ms = 300\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n",
    );
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let start = Instant::now();
    let r = c
        .call(
            json!("t"),
            "tools/call",
            json!({"name": "demo__sleep", "arguments": {"ms": 5000}}),
        )
        .await;
    assert_eq!(
        r.response()["error"]["code"].as_i64(),
        Some(-31001),
        "{:?}",
        r.response()
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "answered at the timeout, not when the server finished"
    );
    let r = c
        .call(
            json!("u"),
            "tools/call",
            json!({"name": "demo__echo", "arguments": {"text": "ok"}}),
        )
        .await;
    assert_eq!(text_of(&r.response()["result"]), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_is_per_session() {
    let router = start_router(&everything_server("everything"));
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let r = c
        .call(json!(1), "logging/setLevel", json!({"level": "error"}))
        .await;
    assert_eq!(r.response()["result"], json!({}));
    let r = c
        .call(json!(2), "logging/setLevel", json!({"level": "loud"}))
        .await;
    assert_eq!(r.response()["error"]["code"].as_i64(), Some(-32602));
    let r = c.call(json!(3), "ping", json!({})).await;
    assert_eq!(r.response()["result"], json!({}));
}

/// SIGTERM and SIGINT (Ctrl-C) alike: the in-flight call is answered, children stopped.
#[test]
fn graceful_shutdown_drains_in_flight_requests_and_stops_children() {
    for signal in ["-TERM", "-INT"] {
        shutdown_on(signal);
    }
}

fn shutdown_on(signal: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut router = start_router("[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n");
    let pid = router.proc.0.id();
    let r = rt.block_on(async {
        let mut c = RawClient::new(&router.url);
        c.initialize("2025-11-25", "{}").await;
        let call = c.call(
            json!(1),
            "tools/call",
            json!({"name": "demo__sleep", "arguments": {"ms": 600}}),
        );
        let term = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert!(Command::new("kill")
                .args([signal, &pid.to_string()])
                .status()
                .expect("kill")
                .success());
        };
        tokio::join!(call, term).0
    });
    assert_eq!(
        text_of(&r.response()["result"]),
        "slept 600 ms",
        "{signal}: the in-flight call finished: {:?}",
        r.response()
    );
    let status = router.proc.0.wait().expect("router exits");
    assert!(status.success(), "{signal}: clean exit: {status:?}");
    let children = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .expect("pgrep");
    assert!(children.stdout.is_empty(), "{signal}: no child left behind");
}

/// A stdio client is read no faster than it reads its replies: a burst of requests waits
/// for room and is answered in full. One that stops reading while messages keep coming on
/// their own (progress) is shed, never buffered without bound: Switchyard ends the session
/// and exits.
#[test]
fn a_stdio_client_that_stops_reading_is_shed() {
    let dir = TempDir::new("stdio-shed");
    let config = dir.write(
        "s.toml",
        "[limits]\nclient_queue = 8\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n",
    );
    let spawn = |log: &std::path::Path| {
        spawn_stdio(
            &config,
            std::fs::File::create(log).expect("log file").into(),
        )
    };
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    // A burst of 5,000 pings, written all at once, read back slowly: every answer arrives.
    let mut child = spawn(&dir.0.join("burst.txt"));
    let mut stdin = child.0.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        writeln!(stdin, "{init}").expect("write");
        for i in 1..=5_000 {
            writeln!(stdin, r#"{{"jsonrpc":"2.0","id":{i},"method":"ping"}}"#).expect("write");
        }
        stdin
    });
    let out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut answered = 0;
    for line in out.lines() {
        let v: Value = serde_json::from_str(&line.expect("line")).expect("JSON");
        if v["result"] == json!({}) {
            answered += 1;
        }
        if v["id"] == json!(5_000) {
            break;
        }
        if answered % 500 == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert_eq!(answered, 5_000, "every ping of the burst answered");
    drop(writer.join().expect("writer"));

    // Ten calls whose progress (10,000 notifications, about 1 MB) comes on its own while
    // the client reads nothing: shed.
    let log = dir.0.join("shed.txt");
    let mut child = spawn(&log);
    let mut stdin = child.0.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = writeln!(stdin, "{init}");
        for i in 1..=10 {
            let call = format!(
                r#"{{"jsonrpc":"2.0","id":{i},"method":"tools/call","params":{{"name":"demo__sleep","arguments":{{"ms":2000,"steps":1000}},"_meta":{{"progressToken":{i}}}}}}}"#
            );
            writeln!(stdin, "{call}").expect("write");
        }
        stdin // kept open: the client is still there, just not reading
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "switchyard kept a client that does not read"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(writer.join().expect("writer"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("session shed"), "{status:?}: {text}");
}

#[test]
fn stdio_front_refuses_bad_input_and_keeps_going() {
    let dir = TempDir::new("stdio-bad");
    let config = dir.write(
        "s.toml",
        "[limits]\nmax_frame_bytes = 2048\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n",
    );
    let mut child = spawn_stdio(&config, Stdio::inherit());
    let mut stdin = child.0.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut next = || {
        let mut line = String::new();
        out.read_line(&mut line).expect("a line");
        serde_json::from_str::<Value>(&line).expect("JSON")
    };
    let mut send = |s: &str| {
        stdin.write_all(s.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    };
    send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
    assert_eq!(next()["error"]["code"], json!(-32600), "initialize first");
    send(
        r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    );
    assert_eq!(next()["result"]["protocolVersion"], json!("2025-06-18"));
    send("{oops");
    assert_eq!(next()["error"]["code"], json!(-32700));
    send(&format!(
        r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(4096)
    ));
    assert_eq!(
        next()["error"]["code"],
        json!(-32600),
        "over the frame limit"
    );
    send(r#"[{"jsonrpc":"2.0","id":4,"method":"ping"}]"#);
    assert_eq!(
        next()["error"]["code"],
        json!(-32600),
        "no batches after 2025-03-26"
    );
    send(
        r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"still here"}}}"#,
    );
    let r = next();
    assert_eq!(
        (r["id"].clone(), text_of(&r["result"])),
        (json!(5), "still here".to_string())
    );

    // A 2026-07-28 request needs no initialize: `_meta` carries everything.
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    send(&format!(
        r#"{{"jsonrpc":"2.0","id":"m1","method":"tools/call","params":{{"name":"demo__echo","arguments":{{"text":"modern"}},{meta}}}}}"#
    ));
    let r = next();
    assert_eq!(
        (text_of(&r["result"]), r["result"]["resultType"].clone()),
        ("modern".to_string(), json!("complete"))
    );
    send(&format!(
        r#"{{"jsonrpc":"2.0","id":"m2","method":"server/discover","params":{{{meta}}}}}"#
    ));
    assert_eq!(
        next()["result"]["supportedVersions"][0],
        json!("2026-07-28")
    );
    send(&format!(
        r#"{{"jsonrpc":"2.0","id":"m3","method":"ping","params":{{{meta}}}}}"#
    ));
    assert_eq!(next()["error"]["code"], json!(-32601));

    // Input ends with a call in flight: it is answered before Switchyard exits.
    send(
        r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"demo__sleep","arguments":{"ms":300}}}"#,
    );
    drop(stdin);
    let r = next();
    assert_eq!(
        (r["id"].clone(), text_of(&r["result"])),
        (json!(6), "slept 300 ms".to_string())
    );
    let status = child.0.wait().expect("exit");
    assert!(status.success(), "{status:?}");
}

/// An upstream's elicitation reaches the client whose call caused it, on that call's stream;
/// the client's answer (a POST) goes back to the upstream and the call completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_requests_round_trip_to_the_calling_client() {
    let router = start_router(&fixture_config());
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", r#"{"elicitation":{}}"#).await;
    let body = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "test_elicitation", "arguments": {"message": "Your name?"}}});
    let mut stream = EventStream::open(&c, c.request("POST", &body.to_string(), &[])).await;
    let got = stream
        .until(WAIT, |m| m["method"] == "elicitation/create")
        .await
        .expect("the elicitation request");
    let ask = got.last().expect("message");
    assert_eq!(ask["params"]["message"], "Your name?");
    let answer = json!({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"response": "Ada"}}});
    assert_eq!(c.post(&answer.to_string()).await.status, 202);
    let got = stream
        .until(WAIT, |m| m["id"] == "call-1")
        .await
        .expect("the call's response");
    let text = text_of(&got.last().expect("response")["result"]);
    assert!(
        text.contains("action=accept") && text.contains("Ada"),
        "{text}"
    );

    // A client that did not declare elicitation is never asked; the server is refused.
    let mut plain = RawClient::new(&router.url);
    plain.initialize("2025-11-25", "{}").await;
    let r = plain
        .call(
            json!(1),
            "tools/call",
            json!({"name": "test_elicitation", "arguments": {"message": "x"}}),
        )
        .await;
    assert!(r
        .messages
        .iter()
        .all(|m| m["method"] != "elicitation/create"));
    assert!(
        text_of(&r.response()["result"]).contains("did not declare"),
        "{:?}",
        r.response()
    );
}

/// Log lines of a per-client upstream reach its session on the call's stream, filtered by
/// that session's own level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_follow_each_sessions_level() {
    let router = start_router(&fixture_config());
    let mut chatty = RawClient::new(&router.url);
    chatty.initialize("2025-11-25", "{}").await;
    let mut quiet = RawClient::new(&router.url);
    quiet.initialize("2025-11-25", "{}").await;
    let r = quiet
        .call(json!(0), "logging/setLevel", json!({"level": "error"}))
        .await;
    assert_eq!(r.response()["result"], json!({}));
    let logs = |r: &Reply| {
        r.messages
            .iter()
            .filter(|m| m["method"] == "notifications/message")
            .count()
    };
    let call = json!({"name": "test_tool_with_logging", "arguments": {}});
    let (a, b) = tokio::join!(
        chatty.call(json!(1), "tools/call", call.clone()),
        quiet.call(json!(1), "tools/call", call)
    );
    assert_eq!(logs(&a), 3, "{:?}", a.messages);
    assert_eq!(logs(&b), 0, "{:?}", b.messages);
    assert!(text_of(&b.response()["result"]).contains("executed successfully"));
}

/// A shared upstream is asked for the lowest level any session wants; each session gets only
/// the lines at its own level, and only from its own calls: log lines of a shared stdio
/// server go to the one session with calls in flight there, never to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_upstream_logs_at_the_lowest_level_and_to_the_caller_only() {
    let router =
        start_router(&format!(
        "[[servers]]\nname = \"py\"\ncommand = {:?}\nargs = [{:?}, \"stdio\"]\nera = \"legacy\"\n",
        python().display().to_string(),
        root().join("tests/peers/py_server.py").display().to_string(),
    ));
    let upstream_level = |c: RawClient| async move {
        let r = c
            .call(
                json!("lvl"),
                "tools/call",
                json!({"name": "py__log_level", "arguments": {}}),
            )
            .await;
        text_of(&r.response()["result"])
    };
    let mut quiet = RawClient::new(&router.url);
    quiet.initialize("2025-11-25", "{}").await;
    let mut chatty = RawClient::new(&router.url);
    chatty.initialize("2025-11-25", "{}").await;
    let mut quiet_get = EventStream::open(&quiet, quiet.request("GET", "", &[])).await;
    let mut chatty_get = EventStream::open(&chatty, chatty.request("GET", "", &[])).await;

    let set = |c: &RawClient, level: &str| {
        let c = c.clone();
        let level = level.to_string();
        async move {
            let r = c
                .call(json!("set"), "logging/setLevel", json!({"level": level}))
                .await;
            assert_eq!(r.response()["result"], json!({}));
        }
    };
    set(&quiet, "error").await;
    assert_eq!(upstream_level(quiet.clone()).await, "error");
    set(&chatty, "info").await;
    assert_eq!(
        upstream_level(quiet.clone()).await,
        "info",
        "the lowest level any session wants"
    );
    set(&chatty, "warning").await;
    assert_eq!(upstream_level(quiet.clone()).await, "warning");

    let chatter = json!({"name": "py__chatty", "arguments": {}});
    let r = quiet.call(json!(1), "tools/call", chatter.clone()).await;
    assert_eq!(log_levels(&r), ["error"], "{:?}", r.messages);
    set(&chatty, "info").await;
    let r = chatty.call(json!(2), "tools/call", chatter).await;
    assert_eq!(log_levels(&r), ["info", "error"], "{:?}", r.messages);

    // Neither session's GET stream carried the other's lines (nor its own).
    let is_log = |m: &Value| m["method"] == "notifications/message";
    let quiet_window = Duration::from_millis(300);
    assert!(quiet_get.until(quiet_window, is_log).await.is_none());
    assert!(chatty_get.until(quiet_window, is_log).await.is_none());
}

/// Switchyard offers no tasks, so a task-augmented call (2025-11-25 `params.task`) runs as an
/// ordinary one, as the spec has a receiver without task support do: server-everything, which
/// does support tasks, never sees the `task` and answers with the tool's own result, not a
/// task the client could not poll through Switchyard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_augmented_call_runs_as_an_ordinary_one() {
    let router = start_router(&everything_server("everything"));
    let mut c = RawClient::new(&router.url);
    let init = c.initialize("2025-11-25", r#"{"tasks":{}}"#).await;
    assert!(
        init["result"]["capabilities"].get("tasks").is_none(),
        "no tasks offered: {init}"
    );
    for tool in ["everything__echo", "everything__simulate-research-query"] {
        let args = if tool.ends_with("echo") {
            json!({"message": "plain"})
        } else {
            json!({"topic": "routers", "ambiguous": false})
        };
        let r = c
            .call(
                json!(1),
                "tools/call",
                json!({"name": tool, "arguments": args, "task": {"ttl": 60000}}),
            )
            .await;
        let result = &r.response()["result"];
        assert!(result.get("task").is_none(), "{tool}: {result}");
        assert!(result["content"].is_array(), "{tool}: {:?}", r.body);
    }
}

fn children_of(pid: u32) -> usize {
    child_pids(pid).len()
}

/// Per-client upstreams: one per session, counted against max_clients only while alive,
/// stopped when their session ends or when idle, and started again on next use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_upstreams_are_capped_reaped_and_restarted() {
    let config = fixture_config().replace(
        "prefix = \"\"\n",
        "prefix = \"\"\nmax_clients = 1\nidle_timeout_s = 1\n",
    );
    let router = start_router(&config);
    let pid = router.proc.0.id();
    let call = json!({"name": "test_simple_text", "arguments": {}});

    let mut a = RawClient::new(&router.url);
    a.initialize("2025-11-25", "{}").await;
    assert_eq!(children_of(pid), 1);
    let mut b = RawClient::new(&router.url);
    b.initialize("2025-11-25", "{}").await;
    let r = b.call(json!(1), "tools/call", call.clone()).await;
    assert_eq!(
        r.response()["error"]["code"].as_i64(),
        Some(-31008),
        "over max_clients: {:?}",
        r.response()
    );

    // A's session ends: its upstream stops and frees the place for B.
    assert_eq!(a.send(a.request("DELETE", "", &[])).await.status, 200);
    let deadline = Instant::now() + WAIT;
    loop {
        let r = b.call(json!(2), "tools/call", call.clone()).await;
        if text_of(&r.response()["result"]).contains("simple text") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B never got an upstream: {:?}",
            r.response()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Idle past idle_timeout_s: stopped; the next call starts a new one.
    let deadline = Instant::now() + WAIT;
    while children_of(pid) > 0 {
        assert!(
            Instant::now() < deadline,
            "idle per-client upstream not reaped"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = b.call(json!(3), "tools/call", call).await;
    assert!(
        text_of(&r.response()["result"]).contains("simple text"),
        "{:?}",
        r.response()
    );
    assert_eq!(children_of(pid), 1);
}

/// An HTTP upstream that restarts (and so forgets its session) is initialized again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_session_is_renewed_after_the_server_restarts() {
    let port = free_port();
    let (py, py_url) = start_py_server_on(port);
    let router = start_router(&format!("[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n"));
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let shout = |id: u64| {
        c.call(
            json!(id),
            "tools/call",
            json!({"name": "py__shout", "arguments": {"text": "again"}}),
        )
    };
    assert_eq!(text_of(&shout(1).await.response()["result"]), "AGAIN");

    drop(py);
    let (_py, _) = start_py_server_on(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in 2.. {
        let r = shout(id).await;
        if text_of(&r.response()["result"]) == "AGAIN" {
            break;
        }
        // Meanwhile only Switchyard's own, clearly marked errors.
        assert_eq!(
            r.response()["error"]["data"]["source"],
            json!("switchyard"),
            "{:?}",
            r.response()
        );
        assert!(
            Instant::now() < deadline,
            "upstream session never renewed: {:?}",
            r.response()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An HTTP upstream that is down when Switchyard starts: calls get a clear error at once, and
/// once the server comes up, calls arriving during its handshake wait for it instead of
/// aborting it (they used to, which could keep a busy upstream from ever initializing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_upstream_that_starts_late_is_picked_up_under_traffic() {
    let port = free_port();
    let router = start_router(&format!(
        "[[servers]]\nname = \"py\"\nurl = \"http://127.0.0.1:{port}/mcp\"\n"
    ));
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let call = json!({"name": "py__shout", "arguments": {"text": "late"}});
    let r = c.call(json!(0), "tools/call", call.clone()).await;
    assert_eq!(
        r.response()["error"]["code"].as_i64(),
        Some(-31002),
        "down: {:?}",
        r.response()
    );

    // Keep calling from several tasks while the server starts.
    let (_py, _) = start_py_server_on(port);
    let started = Instant::now();
    let mut callers = Vec::new();
    // Dense traffic: some call always arrives while a handshake is under way.
    let deadline = Instant::now() + Duration::from_secs(20);
    for t in 0..8u64 {
        let (c, call) = (c.clone(), call.clone());
        callers.push(tokio::spawn(async move {
            for n in 0.. {
                let r = c
                    .call(json!(format!("{t}-{n}")), "tools/call", call.clone())
                    .await;
                if text_of(&r.response()["result"]) == "LATE" {
                    return true;
                }
                if Instant::now() > deadline {
                    return false;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            false
        }));
    }
    for caller in callers {
        assert!(caller.await.expect("caller"), "calls never succeeded");
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A server that cannot start does not slow anyone's initialize, and the others still serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_does_not_slow_new_sessions() {
    let router = start_router(
        "[limits]\nlist_timeout_ms = 5000\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n\
         [[servers]]\nname = \"ghost\"\ncommand = \"/nonexistent/mcp-server\"\n",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let started = Instant::now();
        let mut c = RawClient::new(&router.url);
        c.initialize("2025-11-25", "{}").await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "initialize took {:?}",
            started.elapsed()
        );
        let r = c.call(json!(1), "tools/list", json!({})).await;
        let names: Vec<&str> = r.response()["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(names.contains(&"demo__echo"), "{names:?}");
        assert_eq!(
            r.response()["result"]["_meta"]["io.switchyard/unavailable"],
            json!(["ghost"])
        );
        let r = c
            .call(json!(2), "tools/call", json!({"name": "ghost__x"}))
            .await;
        assert_eq!(
            r.response()["error"]["code"].as_i64(),
            Some(-31002),
            "{:?}",
            r.response()
        );
    }
}

/// An HTTP upstream gets the credentials configured for it, never the client's own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_get_their_configured_credentials_not_the_clients_token() {
    let (_py, py_url) = start_py_server();
    for era in ["legacy", "2026-07-28"] {
        let router = start_router(&format!(
            "[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nera = \"{era}\"\nheaders = {{ Authorization = \"Bearer router-own\" }}\n"
        ));
        let mut c = RawClient::new(&router.url);
        c.initialize("2025-11-25", "{}").await;
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "py__seen_auth", "arguments": {}}});
        let r = c
            .send(c.request(
                "POST",
                &body.to_string(),
                &[("authorization", "Bearer client-secret")],
            ))
            .await;
        assert_eq!(
            text_of(&r.response()["result"]),
            "Bearer router-own",
            "era {era}: {:?}",
            r.response()
        );
    }
}

/// A stdio pool: several processes of one server, sessions spread over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_pool_spreads_sessions_over_its_processes() {
    let router = start_router("[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\npool = 3\n");
    for i in 0..6 {
        let mut c = RawClient::new(&router.url);
        c.initialize("2025-11-25", "{}").await;
        let r = c
            .call(
                json!(i),
                "tools/call",
                json!({"name": "demo__echo", "arguments": {"text": format!("s{i}")}}),
            )
            .await;
        assert_eq!(text_of(&r.response()["result"]), format!("s{i}"));
    }
    assert_eq!(
        children_of(router.proc.0.id()),
        3,
        "three processes in the pool"
    );
}

/// Listener settings as the README states them: `max_sessions` (beyond it, initialize gets
/// 503), `allowed_origins` and `allowed_hosts` (beyond loopback), `session_idle_timeout_s`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_limits_and_allow_lists() {
    let router = start_router(
        "[listen]\nallowed_origins = [\"https://app.example\"]\nallowed_hosts = [\"mcp.internal:8080\"]\n\
         [limits]\nmax_sessions = 2\nsession_idle_timeout_s = 1\n[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\n",
    );
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let mut a = RawClient::new(&router.url);
    a.initialize("2025-11-25", "{}").await;
    let r = a
        .send(a.request("POST", ping, &[("origin", "https://app.example")]))
        .await;
    assert_eq!(r.status, 200, "a configured Origin is allowed");
    let r = a
        .send(a.request("POST", ping, &[("origin", "https://other.example")]))
        .await;
    assert_eq!(r.status, 403);
    let r = a
        .send(a.request("POST", ping, &[("host", "mcp.internal:8080")]))
        .await;
    assert_eq!(r.status, 200, "a configured Host is allowed");

    let mut b = RawClient::new(&router.url);
    b.initialize("2025-11-25", "{}").await;
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#;
    let third = RawClient::new(&router.url);
    let over = third.post(init).await;
    assert_eq!(over.status, 503, "over max_sessions");
    assert_eq!(
        over.response()["error"]["code"],
        -31008,
        "{:?}",
        over.response()
    );

    // Idle sessions are closed (reaped every half second here); then there is room again.
    // Watched through /healthz, which touches no session.
    let health = RawClient::new(&router.url.replace("/mcp", "/healthz"));
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let h = health.send(health.request("GET", "", &[])).await;
        if serde_json::from_slice::<Value>(&h.body).expect("json")["sessions"] == json!(0) {
            break;
        }
        assert!(Instant::now() < deadline, "idle sessions were not reaped");
    }
    assert_eq!(a.post(ping).await.status, 404, "a reaped session is gone");
    assert_eq!(third.post(init).await.status, 200);
}

/// A restarted shared upstream gets its clients' resource subscriptions back, and updates
/// reach the subscriber again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_replayed_to_a_restarted_upstream() {
    let router = start_router(&everything_server("everything"));
    let mut sub = RawClient::new(&router.url);
    sub.initialize("2025-11-25", "{}").await;
    let list = sub.call(json!(1), "resources/list", json!({})).await;
    let uri = list.response()["result"]["resources"][0]["uri"]
        .as_str()
        .expect("a resource")
        .to_string();
    let r = sub
        .call(json!(2), "resources/subscribe", json!({"uri": uri}))
        .await;
    assert_eq!(r.response()["result"], json!({}));

    let children = child_pids(router.proc.0.id());
    assert!(Command::new("kill")
        .args(["-9", &children[0].to_string()])
        .status()
        .expect("kill")
        .success());
    let deadline = Instant::now() + WAIT;
    loop {
        let r = sub
            .call(
                json!("e"),
                "tools/call",
                json!({"name": "everything__echo", "arguments": {"message": "back"}}),
            )
            .await;
        if text_of(&r.response()["result"]) == "Echo: back" {
            break;
        }
        assert!(Instant::now() < deadline, "upstream not back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream = EventStream::open(&sub, sub.request("GET", "", &[])).await;
    let r = sub
        .call(
            json!(3),
            "tools/call",
            json!({"name": "everything__toggle-subscriber-updates", "arguments": {}}),
        )
        .await;
    assert!(r.response().get("result").is_some(), "{:?}", r.response());
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await;
    assert_eq!(
        got.expect("an update after the restart")
            .last()
            .expect("msg")["params"]["uri"],
        json!(uri)
    );
}
