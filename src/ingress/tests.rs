//! The ingress without sockets: frames in, answers out, against a router with no servers
//! (so every answer is the ingress's or the router's own).

use super::*;
use crate::config::Config;

fn router() -> Arc<Router> {
    Router::new(Config::parse("", "test").expect("an empty configuration"))
}

/// Request headers as a list of lowercase names and values.
struct Pairs(Vec<(&'static str, &'static str)>);

impl Headers for Pairs {
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn param_headers(&self) -> Received {
        Received::default()
    }
}

fn json_of(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).expect("JSON")
}

async fn http(r: &Arc<Router>, frame: &str, h: &Pairs, session: Option<&str>) -> Answer {
    let facts = Facts {
        headers: Some(h),
        session: SessionSlot::Named(session),
    };
    receive(r, Bytes::from(frame.to_string()), facts).await
}

fn refused(a: &Answer) -> (u16, i64) {
    match a {
        Answer::Reply { status, frame } => (
            *status,
            json_of(frame)["error"]["code"].as_i64().unwrap_or(0),
        ),
        _ => panic!("expected a reply"),
    }
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

#[tokio::test]
async fn http_sessions_are_found_or_refused() {
    let r = router();
    let none = Pairs(vec![]);
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    assert_eq!(
        refused(&http(&r, ping, &none, None).await),
        (400, code::INVALID_REQUEST)
    );
    assert_eq!(
        refused(&http(&r, ping, &none, Some("nope")).await),
        (404, code::INVALID_REQUEST)
    );
    let Answer::Started { frame, session } = http(&r, INIT, &none, None).await else {
        panic!("initialize starts a session");
    };
    let session_id = session.id.clone();
    assert_eq!(json_of(&frame)["result"]["protocolVersion"], "2025-03-26");
    let Answer::Legacy { stream, .. } = http(&r, ping, &none, Some(&session_id)).await else {
        panic!("a request of the session");
    };
    let ev = stream.next_after(0).await.expect("the reply");
    assert_eq!(json_of(&ev.data)["result"], serde_json::json!({}));
    // Batches: this is a 2025-03-26 session; every answer in one array.
    let batch = r#"[{"jsonrpc":"2.0","id":3,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":4,"method":"ping"}]"#;
    let Answer::Batch(answers) = http(&r, batch, &none, Some(&session_id)).await else {
        panic!("a batch");
    };
    let ids: Vec<_> = answers.iter().map(|a| json_of(a)["id"].clone()).collect();
    assert_eq!(ids, [3, 4]);
    // A version header that names no revision is refused.
    let odd = Pairs(vec![("mcp-protocol-version", "1999-01-01")]);
    assert_eq!(
        refused(&http(&r, ping, &odd, Some(&session_id)).await),
        (400, code::INVALID_REQUEST)
    );
}

#[tokio::test]
async fn modern_requests_are_checked_before_anything_is_routed() {
    let r = router();
    let version = ("mcp-protocol-version", "2026-07-28");
    let list = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{{META}}}}}"#);
    // Without Mcp-Method: a header mismatch.
    let a = http(&r, &list, &Pairs(vec![version]), None).await;
    assert_eq!(refused(&a), (400, modern::HEADER_MISMATCH));
    // With it: answered, with `resultType`.
    let h = Pairs(vec![version, ("mcp-method", "tools/list")]);
    let Answer::Modern(m) = http(&r, &list, &h, None).await else {
        panic!("a 2026 request");
    };
    let ev = m.stream.next_after(0).await.expect("the reply");
    assert_eq!(json_of(&ev.data)["result"]["resultType"], "complete");
    // Missing capabilities in `_meta`.
    let bare = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
    assert_eq!(
        refused(&http(&r, bare, &h, None).await),
        (400, code::INVALID_PARAMS)
    );
    // A method 2026-07-28 removed.
    let ping = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"ping","params":{{{META}}}}}"#);
    let h = Pairs(vec![version, ("mcp-method", "ping")]);
    assert_eq!(
        refused(&http(&r, &ping, &h, None).await),
        (404, code::METHOD_NOT_FOUND)
    );
}

async fn over(
    r: &Arc<Router>,
    frame: &str,
    session: &mut Option<Arc<Session>>,
    out: &mpsc::Sender<Bytes>,
    calls: &mut ModernCalls,
) -> Answer {
    let facts = Facts {
        headers: None,
        session: SessionSlot::Connection {
            session,
            out,
            calls,
        },
    };
    receive(r, Bytes::from(frame.to_string()), facts).await
}

#[tokio::test]
async fn a_connection_carries_one_session_and_its_2026_calls() {
    let r = router();
    let (tx, mut rx) = mpsc::channel(16);
    let mut session = None;
    let mut calls = ModernCalls::default();
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    assert_eq!(
        refused(&over(&r, list, &mut session, &tx, &mut calls).await),
        (200, code::INVALID_REQUEST),
        "initialize first"
    );
    let listen = format!(
        r#"{{"jsonrpc":"2.0","id":"l","method":"subscriptions/listen","params":{{{META},"notifications":{{"toolsListChanged":true}}}}}}"#
    );
    assert!(matches!(
        over(&r, &listen, &mut session, &tx, &mut calls).await,
        Answer::Accepted
    ));
    let ack = json_of(&rx.recv().await.expect("acknowledged"));
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    let cancel =
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"l"}}"#;
    assert!(matches!(
        over(&r, cancel, &mut session, &tx, &mut calls).await,
        Answer::Accepted
    ));
    assert_eq!(calls.len(), 0, "the listen stream is stopped");
    assert!(matches!(
        over(&r, INIT, &mut session, &tx, &mut calls).await,
        Answer::Started { .. }
    ));
    assert!(session.is_some(), "the connection has its session");
}
