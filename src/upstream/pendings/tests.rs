//! Unit tests of the id map: rewriting and restoring, cancellation, deadlines, owners of
//! server-to-client requests.

use super::*;
use crate::protocol::{negotiate, ClientCaps};
use std::time::Duration;

struct NoEvents;
impl UpstreamEvents for NoEvents {
    fn unsolicited(&self, _: &UpstreamHandle, _: &Envelope) {}
    fn ready(&self, _: &UpstreamHandle) {}
}

fn handle() -> UpstreamHandle {
    channel(UpstreamShared::new(0, "s".into(), None), 8).0
}

fn session(caps: &str) -> (Arc<Session>, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(64);
    let raw = RawValue::from_string(caps.to_string()).unwrap();
    let s = Session::new(
        "t".into(),
        negotiate(None),
        ClientCaps::parse(Some(&raw)),
        Sink::Channel(tx),
        8,
    );
    (s, rx)
}

fn env(s: &str) -> Envelope {
    Envelope::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

fn call(session: &Arc<Session>, rx_sink: Sink, frame: &str) -> Box<Call> {
    let e = env(frame);
    let peek_token = e
        .peek()
        .meta
        .and_then(|m| m.progress_token)
        .map(|t| span_of(&e.frame, t.get()));
    let client_id = e.id_bytes().unwrap();
    Box::new(Call {
        env: e,
        name_edit: None,
        token: peek_token,
        origin: Origin {
            session: session.clone(),
            sink: rx_sink,
            client_id,
        },
        cache_uri: None,
    })
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap()
}

#[test]
fn ids_and_tokens_are_rewritten_and_restored_byte_for_byte() {
    let (s, mut rx) = session("{}");
    let mut p = Pendings::new("s", Duration::from_secs(60));
    let h = handle();
    let frame = r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"tok"},"arguments":{"k":[1, 2]}}}"#;
    let (uid, out) = p
        .start_call(call(&s, s.unsolicited.clone(), frame))
        .unwrap();
    let sent = json(&out);
    assert_eq!(
        (
            sent["id"].as_u64(),
            sent["params"]["_meta"]["progressToken"].as_u64()
        ),
        (Some(uid), Some(uid))
    );
    assert!(
        std::str::from_utf8(&out)
            .unwrap()
            .contains(r#""arguments":{"k":[1, 2]}"#),
        "payload bytes untouched"
    );

    p.inbound(env(&format!(r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{uid},"progress":1}}}}"#)), None, &h, &NoEvents);
    assert_eq!(
        json(&rx.try_recv().unwrap())["params"]["progressToken"],
        "tok"
    );
    p.inbound(
        env(&format!(
            r#"{{"result":{{"ok":true}},"jsonrpc":"2.0","id":{uid}}}"#
        )),
        None,
        &h,
        &NoEvents,
    );
    let reply = rx.try_recv().unwrap();
    assert!(std::str::from_utf8(&reply).unwrap().contains(r#""id":"1""#));
    assert!(p.is_empty());
    // A late duplicate response is dropped, not delivered twice.
    p.inbound(
        env(&format!(r#"{{"result":{{}},"jsonrpc":"2.0","id":{uid}}}"#)),
        None,
        &h,
        &NoEvents,
    );
    assert!(rx.try_recv().is_err());
}

#[test]
fn cancellation_maps_the_client_id_to_ours() {
    let (s, mut rx) = session("{}");
    let mut p = Pendings::new("s", Duration::from_secs(60));
    let (uid, _) = p
        .start_call(call(
            &s,
            s.unsolicited.clone(),
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}"#,
        ))
        .unwrap();
    assert!(
        p.cancel(s.key, Bytes::from_static(b"10"), None).is_none(),
        "not ours"
    );
    let (_, frame) = p
        .cancel(s.key, Bytes::from_static(b"9"), Some("user"))
        .unwrap();
    let v = json(&frame);
    assert_eq!(
        (v["method"].as_str(), v["params"]["requestId"].as_u64()),
        (Some("notifications/cancelled"), Some(uid))
    );
    p.inbound(
        env(&format!(r#"{{"jsonrpc":"2.0","id":{uid},"result":{{}}}}"#)),
        None,
        &handle(),
        &NoEvents,
    );
    assert!(rx.try_recv().is_err(), "no response after cancellation");
}

#[test]
fn overdue_requests_get_a_timeout_error_and_a_cancel_upstream() {
    let (s, mut rx) = session("{}");
    let mut p = Pendings::new("srv", Duration::from_millis(0));
    let (uid, _) = p
        .start_call(call(
            &s,
            s.unsolicited.clone(),
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{}}"#,
        ))
        .unwrap();
    let cancels = p.expire(Instant::now() + Duration::from_millis(1));
    assert_eq!(
        json(&cancels[0].1)["params"]["requestId"].as_u64(),
        Some(uid)
    );
    let err = json(&rx.try_recv().unwrap());
    assert_eq!(
        (err["id"].as_str(), err["error"]["code"].as_i64()),
        (Some("a"), Some(code::UPSTREAM_TIMEOUT))
    );
    assert_eq!(err["error"]["data"]["server"], "srv");
}

#[test]
fn fail_all_answers_everything_in_flight() {
    let (s, mut rx) = session("{}");
    let mut p = Pendings::new("s", Duration::from_secs(60));
    for id in 1..=3 {
        p.start_call(call(
            &s,
            s.unsolicited.clone(),
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{}}}}"#),
        ))
        .unwrap();
    }
    p.fail_all("gone");
    let codes: Vec<_> = (0..3)
        .map(|_| json(&rx.try_recv().unwrap())["error"]["code"].as_i64())
        .collect();
    assert_eq!(codes, vec![Some(code::UPSTREAM_UNAVAILABLE); 3]);
}

#[test]
fn server_requests_go_to_a_capable_owner_only() {
    let h = handle();
    // No capability: refused back to the server.
    let (s, _rx) = session("{}");
    let mut p = Pendings::new("s", Duration::from_secs(60));
    p.start_call(call(
        &s,
        s.unsolicited.clone(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    ))
    .unwrap();
    let Inbound::Answer(a) = p.inbound(
        env(r#"{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{}}"#),
        None,
        &h,
        &NoEvents,
    ) else {
        panic!("expected a refusal")
    };
    assert_eq!(
        (json(&a)["id"].as_str(), json(&a)["error"]["code"].as_i64()),
        (Some("e1"), Some(code::METHOD_NOT_FOUND))
    );

    // Capable: forwarded with our own id; the reply maps back to the server's id.
    let (s, mut rx) = session(r#"{"elicitation":{}}"#);
    let mut p = Pendings::new("s", Duration::from_secs(60));
    p.start_call(call(
        &s,
        s.unsolicited.clone(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    ))
    .unwrap();
    assert!(matches!(
        p.inbound(
            env(r#"{"jsonrpc":"2.0","id":"e1","method":"elicitation/create","params":{}}"#),
            None,
            &h,
            &NoEvents
        ),
        Inbound::Done
    ));
    let fwd = json(&rx.try_recv().unwrap());
    let ours = fwd["id"].to_string();
    let Some(crate::session::Asker::Upstream(_, upstream_id)) =
        s.take_server_request(ours.as_bytes())
    else {
        panic!("not registered for the upstream");
    };
    assert_eq!(&upstream_id[..], b"\"e1\"");

    // Two sessions in flight on a shared upstream: nobody to ask, refused.
    let (s2, _rx2) = session(r#"{"elicitation":{}}"#);
    p.start_call(call(
        &s2,
        s2.unsolicited.clone(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    ))
    .unwrap();
    assert!(matches!(
        p.inbound(
            env(r#"{"jsonrpc":"2.0","id":"e2","method":"elicitation/create","params":{}}"#),
            None,
            &h,
            &NoEvents
        ),
        Inbound::Answer(_)
    ));
    // ...unless the transport says which request it belongs to.
    let uid = p.by_client[&(s2.key, Bytes::from_static(b"1"))];
    assert!(matches!(
        p.inbound(
            env(r#"{"jsonrpc":"2.0","id":"e3","method":"elicitation/create","params":{}}"#),
            Some(uid),
            &h,
            &NoEvents
        ),
        Inbound::Done
    ));
}

#[test]
fn cached_lists_expire_after_their_ttl() {
    let h = handle();
    h.store_list("tools/list", Arc::new(Vec::new()), None);
    assert!(h.cached_list("tools/list").is_some());
    h.store_list(
        "prompts/list",
        Arc::new(Vec::new()),
        Some(Duration::from_millis(0)),
    );
    assert!(h.cached_list("prompts/list").is_none(), "expired at once");
    h.store_list(
        "prompts/list",
        Arc::new(Vec::new()),
        Some(Duration::from_secs(60)),
    );
    assert!(h.cached_list("prompts/list").is_some());
    h.invalidate_lists(None);
    assert!(h.cached_list("tools/list").is_none());
}

#[test]
fn a_reused_client_id_is_refused() {
    let (s, _rx) = session("{}");
    let mut p = Pendings::new("s", Duration::from_secs(60));
    let f = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{}}"#;
    assert!(p.start_call(call(&s, s.unsolicited.clone(), f)).is_ok());
    assert!(p.start_call(call(&s, s.unsolicited.clone(), f)).is_err());
}
