//! Property tests of the invariants the router lives by: ids restored exactly, rewriting
//! never changes a payload byte, no input panics a parser, and at most one response per
//! request, none to a notification.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use switchyard::config::Config;
use switchyard::protocol::{negotiate, ClientCaps};
use switchyard::router::Router;
use switchyard::router::Session;
use switchyard::session::Sink;
use switchyard::upstream::effects::carry_out;
use switchyard::upstream::{
    channel, Call, CallEdits, Cmd, Origin, Pendings, UpstreamEvents, UpstreamHandle,
    UpstreamShared, Wire,
};
use switchyard::wire::envelope::{span_of, split_batch};
use switchyard::wire::frame::{Line, LineDecoder};
use switchyard::wire::params::ParamsPeek;
use switchyard::wire::rewrite::{splice, Edit};
use switchyard::wire::sse::SseDecoder;
use switchyard::wire::Envelope;
use tokio::sync::mpsc;

/// Arbitrary JSON text, sometimes with odd but valid whitespace.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A request id as raw JSON: an integer, or a string, with some characters \u-escaped.
fn raw_id() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        ("\\PC{0,10}", any::<u64>()).prop_map(|(s, mask)| {
            let plain = serde_json::to_string(&s).unwrap();
            // Escape some alphanumerics: the same string, other bytes.
            let mut out = String::new();
            for (i, c) in plain.chars().enumerate() {
                if c.is_ascii_alphanumeric() && (mask >> (i % 64)) & 1 == 1 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push(c);
                }
            }
            out
        }),
    ]
}

struct NoEvents;
impl UpstreamEvents for NoEvents {
    fn unsolicited(&self, _: &UpstreamHandle, _: &Envelope) {}
    fn ready(&self, _: &switchyard::upstream::UpstreamHandle) {}
}

fn session() -> (Arc<Session>, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(4096);
    (
        Session::new(
            "p".into(),
            negotiate(None),
            ClientCaps::default(),
            Sink::Channel(tx),
            8,
        ),
        rx,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A 2026-07-28 result gets `resultType` (and, on lists and reads, cache hints) exactly
    /// when its top level lacks them; every member it had keeps its value, wherever the
    /// same key names appear deeper down, and with any whitespace.
    #[test]
    fn results_are_completed_once_and_keep_every_member(members in prop::collection::vec((0usize..5, json_value(), "[ \t\n]{0,2}"), 0..6), cacheable in any::<bool>()) {
        use switchyard::protocol::modern::complete_result;
        use switchyard::wire::Method;
        const KEYS: [&str; 5] = ["resultType", "ttlMs", "content", "x", "cacheScope"];
        let body: Vec<String> = members.iter().map(|(k, v, ws)| format!("{ws}\"{}\"{ws}:{ws}{}{ws}", KEYS[*k], serde_json::to_string(v).unwrap())).collect();
        let result = format!("{{{}}}", body.join(","));
        let frame = Bytes::from(format!(r#"{{"jsonrpc":"2.0","result":{result},"id":7}}"#));
        let method = if cacheable { Method::ResourcesRead } else { Method::ToolsCall };
        let out: serde_json::Value = serde_json::from_slice(&complete_result(&frame, &method)).unwrap();
        let before: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&result).unwrap();
        let after = out["result"].as_object().unwrap();
        for (k, v) in &before {
            prop_assert_eq!(&after[k], v);
        }
        let mut want = before.clone();
        want.entry("resultType").or_insert("complete".into());
        if cacheable {
            want.entry("ttlMs").or_insert(0.into());
            want.entry("cacheScope").or_insert("private".into());
        }
        prop_assert_eq!(after, &want);
        prop_assert_eq!(&out["id"], &serde_json::json!(7));
    }

    /// A 2026-07-28 client's envelope cut out of `_meta` in place leaves the same JSON as
    /// rebuilding `_meta` does, whatever mix of envelope keys and others it holds, and any
    /// whitespace between them.
    #[test]
    fn envelope_cuts_match_the_rebuilt_meta(members in prop::collection::vec((0usize..7, json_value(), "[ \t\n]{0,2}"), 0..7)) {
        use switchyard::protocol::modern::{legacy_request, RequestMeta};
        const KEYS: [&str; 7] = ["io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities", "io.modelcontextprotocol/clientInfo", "io.modelcontextprotocol/logLevel", "progressToken", "traceparent", "io.modelcontextprotocol/other"];
        let body: Vec<String> = members.iter().map(|(k, v, ws)| format!("{ws}\"{}\"{ws}:{ws}{}{ws}", KEYS[*k], serde_json::to_string(v).unwrap())).collect();
        let frame = Bytes::from(format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"t","_meta":{{{}}}}}}}"#, body.join(",")));
        let env = Envelope::parse(frame.clone()).unwrap();
        // The cuts the ingress's one read of `params` finds, as the router applies them.
        let cuts = RequestMeta::of(&env).spans.unwrap().cuts;
        let rebuilt = legacy_request(&frame);
        let cut = splice(&frame, &mut cuts.into_iter().map(|range| Edit { range, with: b"" }).collect::<Vec<_>>());
        // Duplicate keys: serde_json's Value keeps the last, for both.
        let a: serde_json::Value = serde_json::from_slice(&cut).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&rebuilt).unwrap();
        prop_assert_eq!(a, b);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A call's frame changes only at the id and progress token; the response gets the
    /// client's id back byte for byte and keeps every other byte.
    #[test]
    fn ids_restored_exactly_and_payload_untouched(id in raw_id(), token in raw_id(), args in json_value(), result in json_value()) {
        let args = serde_json::to_string(&args).unwrap();
        let frame = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"t","arguments":{args},"_meta":{{"progressToken":{token}}}}}}}"#);
        let env = Envelope::parse(Bytes::from(frame.clone())).unwrap();
        let peek = ParamsPeek::parse(env.params_str().unwrap()).unwrap();
        let token_range = span_of(&env.frame, peek.meta_progress_token().unwrap().get());
        let (s, mut rx) = session();
        let client_id = env.id_bytes().unwrap();
        let h = channel(UpstreamShared::new(0, "s".into(), None), 4).0;
        let uid = h.next_uid();
        let call = Box::new(Call { env, uid, edits: CallEdits { token: Some(token_range), ..CallEdits::default() }, cache_uri: None, origin: Origin { session: s.clone(), sink: s.unsolicited.clone(), client_id } });
        let mut p = Pendings::new(h.shared.clone(), Duration::from_secs(60));
        p.command(Cmd::Call(call), std::time::Instant::now());
        let mut wire = Vec::new();
        carry_out(&mut p, &h, &NoEvents, &mut |_, w| wire.push(w));
        let [Wire::Write { frame: up, uid: Some(_) }] = &wire[..] else { panic!("one request written") };
        let up = up.clone();

        // Undo our two edits: the original frame, byte for byte.
        let up_env = Envelope::parse(up.clone()).unwrap();
        let up_peek = ParamsPeek::parse(up_env.params_str().unwrap()).unwrap();
        let up_tok = span_of(&up_env.frame, up_peek.meta_progress_token().unwrap().get());
        let back = splice(&up, &mut [Edit { range: up_env.id.clone().unwrap(), with: id.as_bytes() }, Edit { range: up_tok, with: token.as_bytes() }]);
        prop_assert_eq!(&back[..], frame.as_bytes());

        let result = serde_json::to_string(&result).unwrap();
        let response = format!(r#"{{"result":{result},"jsonrpc":"2.0","id":{uid}}}"#);
        p.inbound(Envelope::parse(Bytes::from(response)).unwrap(), None);
        let mut wire = Vec::new();
        carry_out(&mut p, &h, &NoEvents, &mut |_, w| wire.push(w));
        prop_assert!(wire.is_empty(), "nothing back to the server");
        let delivered = rx.try_recv().unwrap();
        prop_assert_eq!(delivered, Bytes::from(format!(r#"{{"result":{result},"jsonrpc":"2.0","id":{id}}}"#)));
        prop_assert!(rx.try_recv().is_err(), "exactly one response");
    }

    /// No bytes make the parsers panic.
    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let b = Bytes::from(bytes.clone());
        let _ = Envelope::parse(b.clone());
        let _ = split_batch(&b);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = ParamsPeek::parse(s);
        }
        let mut sse = SseDecoder::new(256);
        sse.push(&bytes);
        while let Ok(Some(_)) = sse.next_event() {}
    }

    /// Nearly-valid JSON-RPC (valid JSON of any shape) never panics either, and an accepted
    /// frame's ranges lie inside it.
    #[test]
    fn envelope_ranges_are_inside_the_frame(v in json_value(), id in raw_id(), method in prop::option::of("[a-z/]{1,12}")) {
        let body = serde_json::to_string(&v).unwrap();
        let frames = [
            body.clone(),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"method":{},"params":{body}}}"#, serde_json::to_string(&method).unwrap()),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{body}}}"#),
        ];
        for f in frames {
            if let Ok(env) = Envelope::parse(Bytes::from(f.clone())) {
                for r in [env.id.clone(), env.params.clone(), env.payload.clone()].into_iter().flatten() {
                    prop_assert!(r.end <= f.len());
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&f.as_bytes()[r]).is_ok());
                }
            }
        }
    }

    /// Newline framing gives the same frames however the stream is cut.
    #[test]
    fn line_framing_ignores_read_boundaries(lines in prop::collection::vec("[ -~]{0,40}", 0..12), cuts in prop::collection::vec(1usize..17, 1..40)) {
        let stream: Vec<u8> = lines.iter().flat_map(|l| l.bytes().chain(std::iter::once(b'\n'))).collect();
        let decode = |chunks: &mut dyn Iterator<Item = &[u8]>| {
            let mut d = LineDecoder::new(32);
            let mut out = Vec::new();
            for c in chunks {
                d.buffer().extend_from_slice(c);
                while let Some(l) = d.next_line() { out.push(l) }
            }
            out.extend(d.finish());
            out
        };
        let whole = decode(&mut std::iter::once(&stream[..]));
        let mut pieces = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= stream.len() { break }
            let end = (at + c).min(stream.len());
            pieces.push(&stream[at..end]);
            at = end;
        }
        let cut = decode(&mut pieces.into_iter());
        prop_assert_eq!(&whole, &cut);
        let expected: Vec<Line> = lines.iter().filter(|l| !l.trim().is_empty()).map(|l| {
            if l.len() > 32 { Line::Oversized { len: l.len() } } else { Line::Frame(Bytes::copy_from_slice(l.as_bytes())) }
        }).collect();
        prop_assert_eq!(whole, expected);
    }
}

#[derive(Debug, Clone)]
enum Msg {
    Request(u32, String, String),
    Notification(String, String),
    Response(u32),
}

fn message() -> impl Strategy<Value = Msg> {
    let method = prop_oneof![
        Just("ping"),
        Just("tools/list"),
        Just("tools/call"),
        Just("prompts/list"),
        Just("prompts/get"),
        Just("resources/list"),
        Just("resources/read"),
        Just("resources/templates/list"),
        Just("logging/setLevel"),
        Just("completion/complete"),
        Just("initialize"),
        Just("no/such"),
        Just("resources/subscribe"),
    ];
    let params = prop_oneof![
        Just("{}".to_string()),
        Just(r#"{"name":"x__y"}"#.to_string()),
        Just(r#"{"uri":"a://b"}"#.to_string()),
        Just(r#"{"level":"debug"}"#.to_string()),
        Just(r#"{"level":"nope"}"#.to_string()),
        Just(r#"{"cursor":"bad"}"#.to_string()),
        Just(r#"{"ref":{"type":"ref/prompt","name":"p"}}"#.to_string()),
        Just(r#"{"requestId":1}"#.to_string()),
    ];
    prop_oneof![
        (any::<u32>(), method.clone(), params.clone()).prop_map(|(i, m, p)| Msg::Request(
            i,
            m.to_string(),
            p
        )),
        (
            prop_oneof![
                Just("notifications/initialized"),
                Just("notifications/cancelled"),
                Just("notifications/roots/list_changed"),
                Just("notifications/x")
            ],
            params
        )
            .prop_map(|(m, p)| Msg::Notification(m.to_string(), p)),
        any::<u32>().prop_map(Msg::Response),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever a client sends, each request gets exactly one response (with its id) and
    /// notifications and responses get none.
    #[test]
    fn one_response_per_request_none_to_notifications(msgs in prop::collection::vec(message(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let router = Router::new(Config::parse("", "empty").unwrap());
            let (s, mut rx) = session();
            let mut expected: HashMap<String, usize> = HashMap::new();
            for (n, m) in msgs.iter().enumerate() {
                let text = match m {
                    Msg::Request(i, method, params) => {
                        // Ids unique within the session, as the protocol requires.
                        let id = format!("\"{n}-{i}\"");
                        *expected.entry(id.clone()).or_default() += 1;
                        format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#)
                    }
                    Msg::Notification(method, params) => format!(r#"{{"jsonrpc":"2.0","method":"{method}","params":{params}}}"#),
                    Msg::Response(i) => format!(r#"{{"jsonrpc":"2.0","id":{i},"result":{{}}}}"#),
                };
                let env = Envelope::parse(Bytes::from(text)).unwrap();
                router.handle(&s, env, s.unsolicited.clone());
            }
            let total: usize = expected.values().sum();
            let mut got: HashMap<String, usize> = HashMap::new();
            for _ in 0..total {
                let msg = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("a reply in time").expect("open");
                let v: serde_json::Value = serde_json::from_slice(&msg).unwrap();
                prop_assert!(v.get("result").is_some() || v.get("error").is_some(), "only responses: {}", v);
                *got.entry(v["id"].to_string()).or_default() += 1;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            prop_assert!(rx.try_recv().is_err(), "nothing more");
            prop_assert_eq!(got, expected);
            Ok(())
        })?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// The scanner that replaced serde_json on the message path accepts exactly what
    /// serde_json accepts: every JSON text (pretty or compact), and the same verdict once a
    /// byte of it is cut, doubled or replaced by one of JSON's structural characters.
    #[test]
    fn the_scanner_agrees_with_serde_json(v in json_value(), pretty in any::<bool>(), at in any::<prop::sample::Index>(), how in 0u8..3, with in prop::sample::select(b"{}[]\",:\\0-.eE tfn\x01".to_vec())) {
        use switchyard::wire::scan::is_json;
        let serde_accepts = |t: &str| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok();
        let text = if pretty { serde_json::to_string_pretty(&v).unwrap() } else { serde_json::to_string(&v).unwrap() };
        prop_assert!(is_json(&text), "{}", text);
        let mut bytes = text.clone().into_bytes();
        let i = at.index(bytes.len());
        match how {
            0 => { bytes.remove(i); }
            1 => { let b = bytes[i]; bytes.insert(i, b); }
            _ => bytes[i] = with,
        }
        if let Ok(mutated) = String::from_utf8(bytes) {
            prop_assert_eq!(is_json(&mutated), serde_accepts(&mutated), "{}", mutated);
        }
    }
}
