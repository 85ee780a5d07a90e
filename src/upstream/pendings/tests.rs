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
    named("s")
}

fn named(server: &str) -> UpstreamHandle {
    channel(UpstreamShared::new(0, server.into(), None), 8).0
}

/// An id map of its own upstream, as its actor makes one.
fn pendings(h: &UpstreamHandle, timeout: Duration) -> Pendings {
    Pendings::new(h.shared.clone(), timeout)
}

/// A client session (its unsolicited stream read by `rx`) and an upstream with its id map.
struct Fixture {
    s: Arc<Session>,
    rx: mpsc::Receiver<Bytes>,
    h: UpstreamHandle,
    p: Pendings,
}

fn fixture(server: &str, timeout: Duration) -> Fixture {
    let (s, rx) = session("{}");
    let h = named(server);
    let p = pendings(&h, timeout);
    Fixture { s, rx, h, p }
}

/// The server's empty result for our request `uid`.
fn reply_to(uid: u64) -> Envelope {
    env(&format!(r#"{{"jsonrpc":"2.0","id":{uid},"result":{{}}}}"#))
}

/// Carry out what the map decided, as an actor would; what is for the wire is returned.
fn run(p: &mut Pendings, h: &UpstreamHandle) -> Vec<Wire> {
    let mut out = Vec::new();
    super::effects::carry_out(p, h, &NoEvents, &mut |_, w| out.push(w));
    out
}

/// The frames written, in order.
fn writes(wire: Vec<Wire>) -> Vec<(Bytes, Option<u64>)> {
    wire.into_iter()
        .filter_map(|w| match w {
            Wire::Write { frame, uid } => Some((frame, uid)),
            Wire::Abandoned(_) => None,
        })
        .collect()
}

/// Start a call as the router does (a fresh id, recorded in its session); returns its id.
fn start(p: &mut Pendings, h: &UpstreamHandle, session: &Arc<Session>, frame: &str) -> u64 {
    let c = call(h, session, session.unsolicited.clone(), frame);
    let uid = c.uid;
    assert!(session.begin(&c.origin.client_id, h, uid));
    p.command(Cmd::Call(c), Instant::now());
    uid
}

fn session(caps: &str) -> (Arc<Session>, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(64);
    let raw = RawValue::from_string(caps.to_string()).unwrap();
    let s = Session::new(
        "t".into(),
        negotiate(None),
        ClientCaps::parse(Some(raw.get())),
        Sink::Channel(tx),
        8,
    );
    (s, rx)
}

fn env(s: &str) -> Envelope {
    Envelope::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
}

fn call(h: &UpstreamHandle, session: &Arc<Session>, rx_sink: Sink, frame: &str) -> Box<Call> {
    let e = env(frame);
    let peek_token = e
        .peek()
        .meta_progress_token()
        .map(|t| span_of(&e.frame, t.get()));
    let client_id = e.id_bytes().unwrap();
    Box::new(Call {
        env: e,
        uid: h.next_uid(),
        edits: CallEdits {
            token: peek_token,
            ..CallEdits::default()
        },
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
    let Fixture {
        s,
        mut rx,
        h,
        mut p,
    } = fixture("s", Duration::from_secs(60));
    let frame = r#"{"jsonrpc":"2.0","id":"1","method":"tools/call","params":{"name":"x","_meta":{"progressToken":"tok"},"arguments":{"k":[1, 2]}}}"#;
    let uid = start(&mut p, &h, &s, frame);
    let [(out, Some(sent_uid))] = &writes(run(&mut p, &h))[..] else {
        panic!("one request written")
    };
    assert_eq!(*sent_uid, uid);
    let sent = json(out);
    assert_eq!(
        (
            sent["id"].as_u64(),
            sent["params"]["_meta"]["progressToken"].as_u64()
        ),
        (Some(uid), Some(uid))
    );
    assert!(
        std::str::from_utf8(out)
            .unwrap()
            .contains(r#""arguments":{"k":[1, 2]}"#),
        "payload bytes untouched"
    );

    p.inbound(env(&format!(r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{uid},"progress":1}}}}"#)), None);
    run(&mut p, &h);
    assert_eq!(
        json(&rx.try_recv().unwrap())["params"]["progressToken"],
        "tok"
    );
    p.inbound(
        env(&format!(
            r#"{{"result":{{"ok":true}},"jsonrpc":"2.0","id":{uid}}}"#
        )),
        None,
    );
    run(&mut p, &h);
    let reply = rx.try_recv().unwrap();
    assert!(std::str::from_utf8(&reply).unwrap().contains(r#""id":"1""#));
    assert!(p.is_empty());
    assert!(
        !s.has_in_flight(),
        "the session's record ends with the reply"
    );
    // A late duplicate response is dropped, not delivered twice.
    p.inbound(
        env(&format!(r#"{{"result":{{}},"jsonrpc":"2.0","id":{uid}}}"#)),
        None,
    );
    assert!(run(&mut p, &h).is_empty());
    assert!(rx.try_recv().is_err());
}

#[test]
fn nothing_happens_until_its_actor_carries_it_out() {
    let Fixture {
        s,
        mut rx,
        h,
        mut p,
    } = fixture("s", Duration::from_secs(60));
    let uid = start(
        &mut p,
        &h,
        &s,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
    );
    p.inbound(reply_to(uid), None);
    assert!(rx.try_recv().is_err(), "the map delivers nothing itself");
    assert!(matches!(p.poll(), Some(Effect::Wire(Wire::Write { uid: Some(u), .. })) if u == uid));
    assert!(matches!(p.poll(), Some(Effect::Finish { uid: u, .. }) if u == uid));
    assert!(p.poll().is_none());
}

#[test]
fn cancellation_names_our_id_and_drops_the_late_reply() {
    let Fixture {
        s,
        mut rx,
        h,
        mut p,
    } = fixture("s", Duration::from_secs(60));
    let uid = start(
        &mut p,
        &h,
        &s,
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{}}"#,
    );
    run(&mut p, &h);
    p.command(
        Cmd::Cancel {
            uid: uid + 100,
            reason: None,
        },
        Instant::now(),
    );
    assert!(run(&mut p, &h).is_empty(), "not ours");
    p.command(
        Cmd::Cancel {
            uid,
            reason: Some("user".into()),
        },
        Instant::now(),
    );
    let wire = run(&mut p, &h);
    assert!(matches!(wire.last(), Some(Wire::Abandoned(u)) if *u == uid));
    let v = json(&writes(wire)[0].0);
    assert_eq!(
        (v["method"].as_str(), v["params"]["requestId"].as_u64()),
        (Some("notifications/cancelled"), Some(uid))
    );
    p.inbound(reply_to(uid), None);
    run(&mut p, &h);
    assert!(rx.try_recv().is_err(), "no response after cancellation");
}

#[test]
fn the_router_cancels_its_own_requests_by_key() {
    let h = handle();
    let mut p = pendings(&h, Duration::from_secs(60));
    let (reply, mut answered) = oneshot::channel();
    let key = Bytes::from_static(b"listen-1");
    let internal = Cmd::Internal {
        method: "subscriptions/listen",
        params: None,
        reply,
        key: Some(key.clone()),
    };
    p.command(internal, Instant::now());
    let [(_, Some(uid))] = writes(run(&mut p, &h))[..] else {
        panic!("one request")
    };
    p.command(
        Cmd::CancelInternal {
            key: Bytes::from_static(b"other"),
        },
        Instant::now(),
    );
    assert!(run(&mut p, &h).is_empty());
    p.command(Cmd::CancelInternal { key }, Instant::now());
    assert!(matches!(run(&mut p, &h).last(), Some(Wire::Abandoned(u)) if *u == uid));
    assert!(p.is_empty());
    assert!(
        answered.try_recv().is_err(),
        "a cancelled request's sender is dropped"
    );
}

#[test]
fn overdue_requests_get_a_timeout_error_and_a_cancel_upstream() {
    let Fixture {
        s,
        mut rx,
        h,
        mut p,
    } = fixture("srv", Duration::from_millis(0));
    let uid = start(
        &mut p,
        &h,
        &s,
        r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{}}"#,
    );
    run(&mut p, &h);
    // The clock is an input: nothing is overdue before its deadline.
    p.expire(Instant::now() - Duration::from_secs(1));
    assert!(run(&mut p, &h).is_empty());
    p.expire(Instant::now() + Duration::from_millis(1));
    let cancels = writes(run(&mut p, &h));
    assert_eq!(
        json(&cancels[0].0)["params"]["requestId"].as_u64(),
        Some(uid)
    );
    let err = json(&rx.try_recv().unwrap());
    assert_eq!(
        (err["id"].as_str(), err["error"]["code"].as_i64()),
        (Some("a"), Some(code::UPSTREAM_TIMEOUT))
    );
    assert_eq!(err["error"]["data"]["server"], "srv");
    assert!(!s.has_in_flight());
}

#[test]
fn fail_all_answers_everything_in_flight() {
    let Fixture {
        s,
        mut rx,
        h,
        mut p,
    } = fixture("s", Duration::from_secs(60));
    for id in 1..=3 {
        start(
            &mut p,
            &h,
            &s,
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{}}}}"#),
        );
    }
    run(&mut p, &h);
    p.fail_all("gone");
    run(&mut p, &h);
    let codes: Vec<_> = (0..3)
        .map(|_| json(&rx.try_recv().unwrap())["error"]["code"].as_i64())
        .collect();
    assert_eq!(codes, vec![Some(code::UPSTREAM_UNAVAILABLE); 3]);
    assert!(!s.has_in_flight());
}

#[test]
fn a_late_end_leaves_a_newer_request_with_the_same_id_alone() {
    let (s, _rx) = session("{}");
    let h = handle();
    let id = Bytes::from_static(b"7");
    assert!(s.begin(&id, &h, 1));
    assert!(!s.begin(&id, &h, 2), "an id in flight is refused");
    s.end(&id, 1);
    assert!(s.begin(&id, &h, 3), "reused once over");
    s.end(&id, 1);
    assert!(
        s.has_in_flight(),
        "the old request's end is not the new one's"
    );
    assert_eq!(s.take_in_flight(&id).map(|f| f.uid), Some(3));
}

#[test]
fn server_requests_go_to_a_capable_owner_only() {
    let h = handle();
    let ask = |id: &str| {
        env(&format!(
            r#"{{"jsonrpc":"2.0","id":"{id}","method":"elicitation/create","params":{{}}}}"#
        ))
    };
    // No capability: refused back to the server.
    let (s, _rx) = session("{}");
    let mut p = pendings(&h, Duration::from_secs(60));
    start(
        &mut p,
        &h,
        &s,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    );
    run(&mut p, &h);
    p.inbound(ask("e1"), None);
    let [(a, None)] = &writes(run(&mut p, &h))[..] else {
        panic!("expected a refusal")
    };
    assert_eq!(
        (json(a)["id"].as_str(), json(a)["error"]["code"].as_i64()),
        (Some("e1"), Some(code::METHOD_NOT_FOUND))
    );

    // Capable: forwarded with our own id; the reply maps back to the server's id.
    let (s, mut rx) = session(r#"{"elicitation":{}}"#);
    let mut p = pendings(&h, Duration::from_secs(60));
    start(
        &mut p,
        &h,
        &s,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    );
    run(&mut p, &h);
    p.inbound(ask("e1"), None);
    assert!(run(&mut p, &h).is_empty());
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
    let uid = start(
        &mut p,
        &h,
        &s2,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
    );
    run(&mut p, &h);
    p.inbound(ask("e2"), None);
    assert_eq!(writes(run(&mut p, &h)).len(), 1, "refused");
    // ...unless the transport says which request it belongs to.
    p.inbound(ask("e3"), Some(uid));
    assert!(run(&mut p, &h).is_empty());
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
