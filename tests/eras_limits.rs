//! What README.md says of listen streams and multi round-trip bridging that the conformance
//! suite does not reach: list changes and resource updates crossing eras, resource
//! subscriptions granted only where they can be carried, and the limits of bridged and parked
//! calls (timeouts, rounds, tampered state). Upstream: the project's dual-era fixture.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

async fn call_tool(c: &RawClient, name: &str, caps: Value) -> Reply {
    c.send(modern_request(
        c,
        json!(name),
        "tools/call",
        json!({"name": name, "arguments": {}}),
        caps,
    ))
    .await
}

fn fixture_with(era: &str, extra: &str) -> String {
    format!(
        "[[servers]]\nname = \"fixture\"\ncommand = {:?}\nprefix = \"\"\nera = \"{era}\"\n{extra}",
        fixture().display().to_string()
    )
}

fn subscription_id(m: &Value) -> &Value {
    &m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_upstreams_changes_reach_2026_listen_streams() {
    let router = start_router(&fixture_with("legacy", ""));
    let c = RawClient::new(&router.url);
    let listen = modern_request(
        &c,
        json!("listen-1"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["test://watched-resource"]}}),
        json!({}),
    );
    let mut stream = EventStream::open(&c, listen).await;
    assert_eq!(stream.status, 200);
    let ack = stream.until(WAIT, |_| true).await.expect("the ack");
    let ack = &ack[0];
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(subscription_id(ack), "listen-1");
    // Granted: both lists, and the resource (a handshake-era upstream that offers subscribe).
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "promptsListChanged": true,
            "resourceSubscriptions": ["test://watched-resource"]})
    );

    let r = call_tool(&c, "test_trigger_tool_change", json!({})).await;
    assert!(text_of(&r.response()["result"]).contains("changed"));
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await
        .expect("tools list_changed on the listen stream");
    assert_eq!(subscription_id(got.last().expect("message")), "listen-1");

    call_tool(&c, "test_touch_watched", json!({})).await;
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .expect("resources/updated on the listen stream");
    let updated = got.last().expect("message");
    assert_eq!(updated["params"]["uri"], "test://watched-resource");
    assert_eq!(subscription_id(updated), "listen-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_upstreams_changes_reach_subscribers_of_both_eras() {
    let router = start_router(&fixture_with("auto", ""));
    let mut legacy = RawClient::new(&router.url);
    legacy.initialize("2025-11-25", "{}").await;
    let mut get = EventStream::open(&legacy, legacy.request("GET", "", &[])).await;
    assert_eq!(get.status, 200);

    // A 2026 listen on the same router is granted the resource: Switchyard listens for it on
    // the 2026 upstream itself.
    let c = RawClient::new(&router.url);
    let listen = modern_request(
        &c,
        json!(9),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true,
            "resourceSubscriptions": ["test://watched-resource"]}}),
        json!({}),
    );
    let mut stream = EventStream::open(&c, listen).await;
    let ack = stream.until(WAIT, |_| true).await.expect("the ack");
    assert_eq!(
        ack[0]["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": ["test://watched-resource"]})
    );
    // And so is the handshake-era session's `resources/subscribe`.
    let r = legacy
        .call(
            json!("sub"),
            "resources/subscribe",
            json!({"uri": "test://watched-resource"}),
        )
        .await;
    assert_eq!(r.response()["result"], json!({}), "{:?}", r.body);

    // The change comes from the fixture's 2026 side, on Switchyard's own upstream listen.
    let r = call_tool(&c, "test_trigger_tool_change", json!({})).await;
    assert!(text_of(&r.response()["result"]).contains("changed"));
    let got = get
        .until(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await
        .expect("list_changed on the legacy session's GET stream");
    // Plain: the upstream's subscription id stays with Switchyard.
    assert!(got.last().expect("message").get("params").is_none());
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await
        .expect("list_changed on the 2026 listen stream");
    assert_eq!(subscription_id(got.last().expect("message")), 9);

    // One update from the 2026 upstream reaches both subscribers, each in its own form.
    call_tool(&c, "test_touch_watched", json!({})).await;
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .expect("resources/updated on the 2026 listen stream");
    let updated = got.last().expect("message");
    assert_eq!(updated["params"]["uri"], "test://watched-resource");
    assert_eq!(subscription_id(updated), 9);
    let got = get
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .expect("resources/updated on the legacy session's GET stream");
    let updated = got.last().expect("message");
    assert_eq!(
        updated["params"],
        json!({"uri": "test://watched-resource"}),
        "plain: no upstream subscription id"
    );
    // Exactly once each: a second touch brings exactly one more to the listen stream.
    call_tool(&c, "test_touch_watched", json!({})).await;
    call_tool(&c, "test_trigger_tool_change", json!({})).await;
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/tools/list_changed")
        .await
        .expect("the next list change");
    let updates = got
        .iter()
        .filter(|m| m["method"] == "notifications/resources/updated")
        .count();
    assert_eq!(updates, 1, "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_calls_refuse_tampering_and_expire_with_their_timeout() {
    let router = start_router(&fixture_with("legacy", "request_timeout_ms = 1500\n"));
    let c = RawClient::new(&router.url);
    let caps = json!({"elicitation": {}});
    let first = call_tool(&c, "test_input_required_result_elicitation", caps.clone()).await;
    let result = &first.response()["result"];
    assert_eq!(result["resultType"], "input_required", "{result}");
    let state = result["requestState"]
        .as_str()
        .expect("our state")
        .to_string();
    assert!(state.starts_with("switchyard-mrtr-1."), "{state}");

    let retry = |state: String| {
        modern_request(
            &c,
            json!("retry"),
            "tools/call",
            json!({"name": "test_input_required_result_elicitation", "arguments": {},
                "inputResponses": {"switchyard": {"action": "accept", "content": {"name": "Ada"}}},
                "requestState": state}),
            caps.clone(),
        )
    };
    // One hex digit of the signature changed: refused, and the call stays parked.
    let mut tampered = state.clone();
    let last = tampered.pop().expect("a digit");
    tampered.push(if last == '0' { '1' } else { '0' });
    let r = c.send(retry(tampered)).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{:?}", r.response());
    assert!(r.response()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("integrity"));

    // Past the server's request timeout, the call is gone.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let r = c.send(retry(state)).await;
    assert_eq!(r.response()["error"]["code"], -32602, "{:?}", r.response());
    assert!(
        r.response()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("gone"),
        "{:?}",
        r.response()
    );

    // A client that did not declare elicitation is not asked: the server is refused.
    let r = call_tool(&c, "test_input_required_result_elicitation", json!({})).await;
    assert_ne!(r.response()["result"]["resultType"], "input_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridged_round_the_client_never_answers_times_out() {
    let router = start_router(&fixture_with("auto", "request_timeout_ms = 1000\n"));
    let mut legacy = RawClient::new(&router.url);
    legacy
        .initialize("2025-11-25", r#"{"elicitation":{}}"#)
        .await;
    let body = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "test_elicitation", "arguments": {"message": "Your name?"}}});
    let mut stream =
        EventStream::open(&legacy, legacy.request("POST", &body.to_string(), &[])).await;
    let got = stream
        .until(WAIT, |m| m["id"] == "call-1")
        .await
        .expect("the call's response");
    assert!(got.iter().any(|m| m["method"] == "elicitation/create"));
    let reply = got.last().expect("response");
    assert_eq!(reply["error"]["code"], -31005, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridged_rounds_stop_after_eight() {
    let router = start_router(&fixture_with("auto", ""));
    let mut legacy = RawClient::new(&router.url);
    legacy
        .initialize("2025-11-25", r#"{"elicitation":{}}"#)
        .await;
    let body = json!({"jsonrpc": "2.0", "id": "forever", "method": "tools/call",
        "params": {"name": "test_ask_forever", "arguments": {}}});
    let mut stream =
        EventStream::open(&legacy, legacy.request("POST", &body.to_string(), &[])).await;
    let mut asked = 0;
    loop {
        let got = stream
            .until(WAIT, |m| {
                m["method"] == "elicitation/create" || m["id"] == "forever"
            })
            .await
            .expect("a question or the end");
        let m = got.last().expect("message");
        if m["id"] == "forever" {
            assert_eq!(m["error"]["code"], -32603, "{m}");
            assert!(m["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("more than 8"));
            break;
        }
        asked += 1;
        assert!(asked <= 8, "asked a ninth time");
        let answer = json!({"jsonrpc": "2.0", "id": m["id"],
            "result": {"action": "accept", "content": {"name": "Ada"}}});
        assert_eq!(legacy.post(&answer.to_string()).await.status, 202);
    }
    assert_eq!(asked, 8);
}

/// Over `switchyard stdio`, a 2026 client's listen stream carries list changes with its own id
/// until the client cancels it (`notifications/cancelled`, stdio having no stream to close),
/// and the end of input ends the process at once, listen streams or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_listen_stream_ends_when_cancelled() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let dir = TempDir::new("stdio-listen");
    let config = dir.write("switchyard.toml", &fixture_with("auto", ""));
    let mut child = tokio::process::Command::new(switchyard_bin())
        .args(["stdio", "--config"])
        .arg(&config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn switchyard stdio");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let lines_until = async |out: &mut tokio::io::Lines<_>, id: Value| -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let line = tokio::time::timeout(WAIT, out.next_line())
                .await
                .expect("a line in time")
                .expect("read")
                .expect("not the end");
            let v: Value = serde_json::from_str(&line).expect("json");
            let done = v["id"] == id;
            seen.push(v);
            if done {
                return seen;
            }
        }
    };
    let listen = json!({"jsonrpc": "2.0", "id": "l1", "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": true}, "_meta": meta}});
    stdin
        .write_all(format!("{listen}\n").as_bytes())
        .await
        .expect("write");
    let ack = tokio::time::timeout(WAIT, out.next_line())
        .await
        .expect("the ack in time")
        .expect("read")
        .expect("a line");
    let ack: Value = serde_json::from_str(&ack).expect("json");
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(subscription_id(&ack), "l1");

    let call = |id: i64, name: &str| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": {}, "_meta": meta}})
    };
    stdin
        .write_all(format!("{}\n", call(2, "test_trigger_tool_change")).as_bytes())
        .await
        .expect("write");
    let mut seen = lines_until(&mut out, json!(2)).await;
    // The change may come just after the call's answer.
    if !seen
        .iter()
        .any(|m| m["method"] == "notifications/tools/list_changed")
    {
        stdin
            .write_all(format!("{}\n", call(3, "test_simple_text")).as_bytes())
            .await
            .expect("write");
        seen.extend(lines_until(&mut out, json!(3)).await);
    }
    let changed = seen
        .iter()
        .find(|m| m["method"] == "notifications/tools/list_changed")
        .expect("list_changed on the listen stream");
    assert_eq!(subscription_id(changed), "l1");

    // Cancelled: the next change does not come.
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": "l1"}});
    stdin
        .write_all(format!("{cancel}\n").as_bytes())
        .await
        .expect("write");
    stdin
        .write_all(format!("{}\n", call(4, "test_trigger_tool_change")).as_bytes())
        .await
        .expect("write");
    let mut seen = lines_until(&mut out, json!(4)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stdin
        .write_all(format!("{}\n", call(5, "test_simple_text")).as_bytes())
        .await
        .expect("write");
    seen.extend(lines_until(&mut out, json!(5)).await);
    assert!(
        !seen
            .iter()
            .any(|m| m["method"] == "notifications/tools/list_changed"),
        "{seen:?}"
    );

    // A second listen, left open: the end of input still ends the process promptly.
    stdin
        .write_all(format!("{}\n", listen.to_string().replace("\"l1\"", "\"l2\"")).as_bytes())
        .await
        .expect("write");
    lines_until(&mut out, json!(null)).await; // its ack (no id)
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("switchyard stdio exits when its input ends")
        .expect("wait");
    assert!(status.success(), "{status}");
}

/// Conditions that used to share codes each have their own: a bridged question the client
/// cannot answer (-31006), and a per-client server asked by a 2026 request (-31007).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_have_codes_of_their_own() {
    let router = start_router(&fixture_with("auto", ""));
    let mut legacy = RawClient::new(&router.url);
    legacy.initialize("2025-11-25", "{}").await;
    let call = json!({"name": "test_elicitation", "arguments": {"message": "Your name?"}});
    let r = legacy.call(json!(1), "tools/call", call).await;
    let err = &r.response()["error"];
    assert_eq!(err["code"], -31006, "{:?}", r.response());
    assert!(
        err["message"]
            .as_str()
            .is_some_and(|m| m.contains("did not declare")),
        "{err}"
    );

    let router = start_router(&fixture_with("auto", "sharing = \"per-client\"\n"));
    let modern = RawClient::new(&router.url);
    let req = modern_request(
        &modern,
        json!(2),
        "tools/call",
        json!({"name": "test_simple_text", "arguments": {}}),
        json!({}),
    );
    let r = modern.send(req).await;
    let err = &r.response()["error"];
    assert_eq!(err["code"], -31007, "{:?}", r.response());
    assert_eq!(err["data"]["source"], "switchyard", "{err}");
}
