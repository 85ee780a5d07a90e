//! Resource subscriptions carried to a 2026-07-28 upstream (the Python SDK server pinned to
//! that revision), for clients of both eras: Switchyard listens on the server for the URIs
//! its clients subscribed to, widens that listen as subscriptions come, and each update
//! reaches exactly the clients subscribed to its URI, once, in each one's own form.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn subscription_id(m: &Value) -> &Value {
    &m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"]
}

async fn touch(c: &RawClient, uri: &str) {
    let r = c
        .send(modern_request(
            c,
            json!("touch"),
            "tools/call",
            json!({"name": "py__touch_resource", "arguments": {"uri": uri}}),
            json!({}),
        ))
        .await;
    assert_eq!(text_of(&r.response()["result"]), "touched", "{:?}", r.body);
}

fn updates_of(got: &[Value], uri: &str) -> usize {
    got.iter()
        .filter(|m| m["method"] == "notifications/resources/updated" && m["params"]["uri"] == uri)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_from_a_2026_server_reach_exactly_their_subscribers() {
    let (_py, py_url) = start_py_server_with(free_port(), &["--only", "2026-07-28"]);
    let router = start_router(&format!("[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n"));

    // A handshake-era session is offered subscriptions and subscribes to py://reads.
    let mut legacy = RawClient::new(&router.url);
    let init = legacy.initialize("2025-11-25", "{}").await;
    assert_eq!(
        init["result"]["capabilities"]["resources"]["subscribe"], true,
        "{init}"
    );
    let mut get = EventStream::open(&legacy, legacy.request("GET", "", &[])).await;
    assert_eq!(get.status, 200);

    // A 2026 client listens for py://note.
    let c = RawClient::new(&router.url);
    let listen = modern_request(
        &c,
        json!("mine"),
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": ["py://note"]}}),
        json!({}),
    );
    let mut stream = EventStream::open(&c, listen).await;
    let ack = stream.until(WAIT, |_| true).await.expect("the ack");
    assert_eq!(
        ack[0]["params"]["notifications"]["resourceSubscriptions"],
        json!(["py://note"]),
        "{ack:?}"
    );

    // The second subscription widens Switchyard's listen on the server.
    let r = legacy
        .call(
            json!(1),
            "resources/subscribe",
            json!({"uri": "py://reads"}),
        )
        .await;
    assert_eq!(r.response()["result"], json!({}), "{:?}", r.body);

    touch(&c, "py://note").await;
    touch(&c, "py://reads").await;
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .expect("py://note's update on the listen stream");
    let updated = got.last().expect("message");
    assert_eq!(updated["params"]["uri"], "py://note");
    assert_eq!(subscription_id(updated), "mine");
    let got = get
        .until(WAIT, |m| m["params"]["uri"] == "py://reads")
        .await
        .expect("py://reads's update on the GET stream");
    assert_eq!(updates_of(&got, "py://note"), 0, "{got:?}");
    assert_eq!(
        got.last().expect("message")["params"],
        json!({"uri": "py://reads"}),
        "plain: Switchyard's own subscription id stays with it"
    );

    // Once each: the listen stream the widening replaced is gone, or every update would
    // come twice.
    touch(&c, "py://note").await;
    touch(&c, "py://reads").await;
    let got = stream
        .until(WAIT, |m| m["method"] == "notifications/resources/updated")
        .await
        .expect("the second update of py://note");
    assert_eq!(updates_of(&got, "py://note"), 1, "{got:?}");
    let got = get
        .until(WAIT, |m| m["params"]["uri"] == "py://reads")
        .await
        .expect("the second update of py://reads");
    assert_eq!(updates_of(&got, "py://reads"), 1, "{got:?}");
    let quiet = Duration::from_secs(1);
    let is_update = |m: &Value| m["method"] == "notifications/resources/updated";
    assert!(
        stream.until(quiet, is_update).await.is_none(),
        "a duplicate on the listen stream"
    );
    assert!(
        get.until(quiet, is_update).await.is_none(),
        "a duplicate on the GET stream"
    );

    // Subscribers that go away take their subscriptions with them: Switchyard's listen for
    // list changes stays, its resource listen narrows, then ends.
    assert_eq!(listen_streams(&c).await, 2);
    drop(stream);
    drop(get);
    let r = legacy.send(legacy.request("DELETE", "", &[])).await;
    assert_eq!(r.status, 200);
    let start = std::time::Instant::now();
    while listen_streams(&c).await != 1 {
        assert!(
            start.elapsed() < WAIT,
            "the resource listen outlived its subscribers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many listen streams the Python server has open (its `listen_streams` tool).
async fn listen_streams(c: &RawClient) -> u64 {
    let r = c
        .send(modern_request(
            c,
            json!("count"),
            "tools/call",
            json!({"name": "py__listen_streams", "arguments": {}}),
            json!({}),
        ))
        .await;
    text_of(&r.response()["result"]).parse().unwrap_or(u64::MAX)
}
