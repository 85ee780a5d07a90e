//! Worker shards (issue 10): connections land on whichever shard the kernel picks, so one
//! handshake-era session's requests, sent over several connections at once, are served on
//! several shards; each must be answered exactly once, on its own reply, progress included.
//! `/healthz` shows that the connections did land on several shards.

mod common;

use std::collections::HashSet;

use common::*;
use serde_json::json;

const CONNECTIONS: usize = 8;
const CALLS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sessions_requests_over_many_connections_are_each_answered_once() {
    let config = "[[servers]]\nname = \"demo\"\nbuiltin = \"demo\"\npool = 2\n";
    let router = start_router_with(config, &["--workers", "4"]);
    let mut first = RawClient::new(&router.url);
    first.initialize("2025-11-25", "{}").await;
    let session = first.session.clone().expect("a session id");

    let mut tasks = Vec::new();
    for conn in 0..CONNECTIONS {
        // A client of its own: its own connections, the same session.
        let mut c = RawClient::new(&router.url);
        c.session = Some(session.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = Vec::new();
            for n in 0..CALLS {
                let id = format!("c{conn}-{n}");
                // Every fifth reports progress on its own reply stream first.
                let params = if n % 5 == 0 {
                    json!({"name": "demo__sleep", "arguments": {"ms": 30, "steps": 3},
                           "_meta": {"progressToken": id}})
                } else {
                    json!({"name": "demo__echo", "arguments": {"text": id}})
                };
                let r = c.call(json!(id), "tools/call", params).await;
                assert_eq!(r.status, 200, "{id}: {r:?}");
                let responses: Vec<_> = r
                    .messages
                    .iter()
                    .filter(|m| m.get("result").is_some() || m.get("error").is_some())
                    .collect();
                assert_eq!(responses.len(), 1, "{id}: one response: {r:?}");
                assert_eq!(responses[0]["id"], json!(id), "{id}: {r:?}");
                if n % 5 == 0 {
                    let progress: Vec<_> = r
                        .messages
                        .iter()
                        .filter(|m| m["method"] == "notifications/progress")
                        .collect();
                    assert_eq!(progress.len(), 3, "{id}: its own progress: {r:?}");
                    assert!(
                        progress
                            .iter()
                            .all(|p| p["params"]["progressToken"] == json!(id)),
                        "{id}: {r:?}"
                    );
                } else {
                    assert_eq!(text_of(&responses[0]["result"]), id, "{r:?}");
                }
                answered.push(id);
            }
            (answered, c)
        }));
    }
    let mut all = Vec::new();
    let mut clients = Vec::new();
    for t in tasks {
        let (answered, c) = t.await.expect("a connection's calls");
        all.extend(answered);
        clients.push(c);
    }
    // The clients' connections are still open: they were served on more than one shard.
    let health = RawClient::new(&router.url.replace("/mcp", "/healthz"));
    let r = health.send(health.request("GET", "", &[])).await;
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("healthz JSON");
    let busy = body["connections_by_worker"]
        .as_array()
        .expect("connections by worker")
        .iter()
        .filter(|n| n.as_u64() > Some(0))
        .count();
    assert!(busy >= 2, "connections on {busy} of 4 workers: {body}");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), CONNECTIONS * CALLS);
    assert_eq!(unique.len(), all.len(), "every reply exactly once");
    echo_works(&first, "and the first connection still").await;
}

/// A session is served by the pool members on the shard it started on: with a pool of four
/// on two shards (members 0 and 2 on shard 0, 1 and 3 on shard 1), every session started on
/// shard k gets a member with k's parity, and each of those members serves some.
#[test]
fn a_session_is_served_by_a_pool_member_on_its_own_shard() {
    use switchyard::config::Config;
    use switchyard::protocol::{negotiate, ClientCaps};
    use switchyard::router::{Router, Session};
    use switchyard::session::{ReplyStream, Sink};
    use switchyard::shard::Shards;

    let shards = Shards::start(2).expect("shards");
    let config = format!(
        "[[servers]]\nname = \"demo\"\ncommand = {:?}\nargs = [\"demo-server\"]\npool = 4\n",
        env!("CARGO_BIN_EXE_switchyard")
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let members = rt.block_on(async {
        let router = Router::with_shards(
            Config::parse(&config, "test").expect("config"),
            shards.handles().to_vec(),
        );
        let mut members = Vec::new();
        for (k, shard) in shards.handles().iter().enumerate() {
            for _ in 0..8 {
                let router = router.clone();
                let name = shard
                    .spawn(async move {
                        let s = Session::new(
                            "t".into(),
                            negotiate(None),
                            ClientCaps::default(),
                            Sink::Stream(ReplyStream::new(0, 2)),
                            8,
                        );
                        assert_eq!(s.home, switchyard::shard::current());
                        router.instance(0, &s).map(|h| h.shared.name.clone())
                    })
                    .await
                    .expect("on the shard")
                    .expect("a member");
                members.push((k, name));
            }
        }
        router.shutdown().await;
        members
    });
    shards.stop();
    for (k, name) in &members {
        let member: usize = name
            .strip_prefix("demo#")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a pool member's name: {name}"));
        assert_eq!(member % 2, *k, "{members:?}");
    }
    // Both members of each shard serve some of its sessions.
    let used: HashSet<_> = members.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(used.len(), 4, "{members:?}");
}
