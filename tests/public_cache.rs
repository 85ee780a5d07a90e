//! The shared cache of `public` results (2026-07-28 caching): what a server marks `public` is
//! fetched once and served to every client, of either era, for its `ttlMs`; what it marks
//! `private` is fetched for each request and never shared. Upstream: the Python SDK server
//! pinned to 2026-07-28, with and without public hints; its `py://reads` counts its reads.

mod common;

use common::*;
use serde_json::{json, Value};

async fn read_modern(c: &RawClient, uri: &str, caps: Value) -> Value {
    let r = c
        .send(modern_request(
            c,
            json!(1),
            "resources/read",
            json!({ "uri": uri }),
            caps,
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        !r.response()["result"].is_null(),
        "a read without a result: {:?}",
        r.body
    );
    r.response()["result"].clone()
}

async fn list_modern(c: &RawClient, method: &str) -> Value {
    let r = c
        .send(modern_request(c, json!(2), method, json!({}), json!({})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.response()["result"].clone()
}

fn text(read: &Value) -> &str {
    read["contents"][0]["text"].as_str().unwrap_or("")
}

fn ttl(result: &Value) -> u64 {
    result["ttlMs"].as_u64().unwrap_or(u64::MAX)
}

fn py_config(py_url: &str) -> String {
    format!("[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_and_lists_are_shared_across_clients_and_eras() {
    let (_py, py_url) =
        start_py_server_with(free_port(), &["--only", "2026-07-28", "--public-hints"]);
    let router = start_router(&py_config(&py_url));
    let c = RawClient::new(&router.url);

    let first = read_modern(&c, "py://reads", json!({})).await;
    assert_eq!(text(&first), "read 1", "{first}");
    assert_eq!(first["cacheScope"], "public");
    assert!((1..=60_000).contains(&ttl(&first)), "{first}");

    // Another client, with other capabilities: the same result, from the cache, its ttl what
    // is left.
    let second = read_modern(&c, "py://reads", json!({"elicitation": {}})).await;
    assert_eq!(text(&second), "read 1", "{second}");
    assert_eq!(second["cacheScope"], "public");
    assert!(ttl(&second) <= ttl(&first), "{first} then {second}");

    // A handshake-era client shares it too.
    let mut legacy = RawClient::new(&router.url);
    legacy.initialize("2025-11-25", "{}").await;
    let r = legacy
        .call(json!(3), "resources/read", json!({"uri": "py://reads"}))
        .await;
    assert_eq!(text(&r.response()["result"]), "read 1", "{:?}", r.body);

    // The server was read once: asked directly now, it counts its second read.
    let direct = read_modern(&RawClient::new(&py_url), "py://reads", json!({})).await;
    assert_eq!(text(&direct), "read 2", "{direct}");

    // An update drops what was kept: a subscriber told of it reads it fresh.
    let r = legacy
        .call(
            json!(4),
            "resources/subscribe",
            json!({"uri": "py://reads"}),
        )
        .await;
    assert_eq!(r.response()["result"], json!({}), "{:?}", r.body);
    let mut get = EventStream::open(&legacy, legacy.request("GET", "", &[])).await;
    let r = legacy
        .call(
            json!(5),
            "tools/call",
            json!({"name": "py__touch_resource", "arguments": {"uri": "py://reads"}}),
        )
        .await;
    assert_eq!(text_of(&r.response()["result"]), "touched");
    get.until(std::time::Duration::from_secs(10), |m| {
        m["method"] == "notifications/resources/updated"
    })
    .await
    .expect("the update");
    let fresh = read_modern(&c, "py://reads", json!({})).await;
    assert_eq!(text(&fresh), "read 3", "{fresh}");

    // Lists: public with the server's ttl (or less: kept and shared).
    for method in ["tools/list", "resources/list", "prompts/list"] {
        let l = list_modern(&c, method).await;
        assert_eq!(l["cacheScope"], "public", "{method}: {l}");
        assert!((1..=60_000).contains(&ttl(&l)), "{method}: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_results_are_never_shared() {
    let (_py, py_url) = start_py_server_with(free_port(), &["--only", "2026-07-28"]);
    let router = start_router(&py_config(&py_url));
    let c = RawClient::new(&router.url);
    for n in 1..=3 {
        let r = read_modern(&c, "py://reads", json!({})).await;
        assert_eq!(text(&r), format!("read {n}"), "{r}");
        assert_eq!(r["cacheScope"], "private");
        assert_eq!(ttl(&r), 0);
    }
    let l = list_modern(&c, "tools/list").await;
    assert_eq!(
        (l["cacheScope"].as_str(), ttl(&l)),
        (Some("private"), 0),
        "{l}"
    );
}

/// A merged list is only as shareable as its least shareable part: a handshake-era server
/// gives no ttl, so the whole has 0. Handshake-era clients get no hints at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_lists_carry_the_most_careful_hint() {
    let (_py, py_url) =
        start_py_server_with(free_port(), &["--only", "2026-07-28", "--public-hints"]);
    let (_legacy, legacy_url) = start_py_server();
    let shared = start_router(&format!(
        "{}[[servers]]\nname = \"old\"\nurl = \"{legacy_url}\"\nera = \"legacy\"\n",
        py_config(&py_url)
    ));
    let l = list_modern(&RawClient::new(&shared.url), "tools/list").await;
    assert_eq!(
        (l["cacheScope"].as_str(), ttl(&l)),
        (Some("public"), 0),
        "{l}"
    );

    let mut legacy = RawClient::new(&shared.url);
    legacy.initialize("2025-11-25", "{}").await;
    let l = legacy.call(json!(1), "tools/list", json!({})).await;
    let result = &l.response()["result"];
    assert!(
        result.get("ttlMs").is_none() && result.get("cacheScope").is_none(),
        "handshake-era clients get no 2026 hints: {result}"
    );
}

/// A TCP relay to `to` that holds every connection made in its first `hold` before relaying
/// it: an upstream whose first handshake is slow.
async fn slow_start_relay(to: String, hold: std::time::Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let addr = listener.local_addr().expect("relay address");
    let open_at = tokio::time::Instant::now() + hold;
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(open_at).await;
                if let Ok(mut server) = tokio::net::TcpStream::connect(&to).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    format!("http://{addr}/mcp")
}

/// A 2026 request sent while an upstream's first handshake is still under way waits for it
/// (as `initialize` does), instead of being refused because the server is not known yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_request_waits_for_an_upstream_still_starting() {
    let port = free_port();
    let (_py, _) = start_py_server_with(port, &["--only", "2026-07-28"]);
    let relay = slow_start_relay(
        format!("127.0.0.1:{port}"),
        std::time::Duration::from_millis(1500),
    )
    .await;
    let router = start_router(&py_config(&relay));
    let c = RawClient::new(&router.url);
    let r = read_modern(&c, "py://reads", json!({})).await;
    assert_eq!(text(&r), "read 1", "{r}");
}
