//! Multi round-trip requests across eras (`2026-07-28/basic/patterns/mrtr`), for a
//! handshake-era client calling a 2026-07-28 upstream. Such a client cannot answer an
//! `input_required` result, so the router runs the rounds for it: each input request goes to
//! the client as an ordinary server-to-client request on the call's own stream, and the call is
//! sent again with the answers and the upstream's `requestState`, byte for byte.
//!
//! Only these calls take the bridged path (a task per call); every other call goes straight
//! to the upstream's mailbox.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::RouteError;
use super::{error_reply, Router};
use crate::session::{ReplyStream, Sink};
use crate::upstream::Session;
use crate::wire::envelope::code;
use crate::wire::{json, Envelope, Kind, Method};

/// Rounds one call may take before the router gives up on it.
pub const MAX_ROUNDS: usize = 8;

/// Methods a 2026 server may answer with `input_required`.
pub fn may_need_input(m: &Method) -> bool {
    matches!(
        m,
        Method::ToolsCall | Method::PromptsGet | Method::ResourcesRead
    )
}

/// One input request: its key, method and params.
pub struct InputRequest {
    pub key: String,
    pub method: String,
    pub params: Option<Bytes>,
}

/// An `input_required` result: what it asks for, and the state to echo.
pub struct InputRequired {
    pub requests: Vec<InputRequest>,
    pub state: Option<Bytes>,
}

/// The `input_required` result in a response frame, if that is what it is.
pub fn input_required(frame: &Bytes) -> Option<InputRequired> {
    crate::finder!(b"input_required").find(frame)?;
    let env = Envelope::parse(frame.clone()).ok()?;
    if env.kind != Kind::Response {
        return None;
    }
    #[derive(Deserialize)]
    struct Result<'a> {
        #[serde(borrow, rename = "resultType")]
        result_type: Cow<'a, str>,
        #[serde(borrow, default, rename = "inputRequests")]
        input_requests: Option<std::collections::BTreeMap<Cow<'a, str>, &'a RawValue>>,
        #[serde(borrow, default, rename = "requestState")]
        request_state: Option<&'a RawValue>,
    }
    #[derive(Deserialize)]
    struct Req<'a> {
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(borrow, default)]
        params: Option<&'a RawValue>,
    }
    let r: Result<'_> = serde_json::from_str(env.payload_str()?).ok()?;
    if r.result_type != "input_required" {
        return None;
    }
    let mut requests = Vec::new();
    for (key, raw) in r.input_requests.unwrap_or_default() {
        let req: Req<'_> = serde_json::from_str(raw.get()).ok()?;
        requests.push(InputRequest {
            key: key.into_owned(),
            method: req.method.into_owned(),
            params: req
                .params
                .map(|p| Bytes::copy_from_slice(p.get().as_bytes())),
        });
    }
    Some(InputRequired {
        requests,
        state: r
            .request_state
            .map(|s| Bytes::copy_from_slice(s.get().as_bytes())),
    })
}

/// The original request again, its params given `inputResponses` and `requestState`
/// (every other byte of the params kept).
pub fn retry_frame(original: &Envelope, responses: &[u8], state: Option<&[u8]>) -> Bytes {
    let mut params = Vec::with_capacity(responses.len() + 64);
    params.extend_from_slice(b"{\"inputResponses\":");
    params.extend_from_slice(responses);
    if let Some(state) = state {
        params.extend_from_slice(b",\"requestState\":");
        params.extend_from_slice(state);
    }
    let rest = original
        .params_str()
        .map(str::trim)
        .and_then(|p| p.strip_prefix('{'))
        .unwrap_or("}")
        .trim_start();
    if !rest.starts_with('}') {
        params.push(b',');
    }
    params.extend_from_slice(rest.as_bytes());
    json::message(
        original.id_bytes().as_deref(),
        original.method.name(),
        Some(&params),
    )
}

/// The request with `params._meta["io.modelcontextprotocol/logLevel"]` set: how a 2026
/// upstream learns the log level a handshake-era session asked for with `logging/setLevel`.
pub fn with_log_level(env: &Envelope, level: &str) -> Option<Envelope> {
    let mut params: serde_json::Map<String, serde_json::Value> = match env.params_str() {
        Some(p) => serde_json::from_str(p).ok()?,
        None => serde_json::Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    meta.as_object_mut()?.insert(
        "io.modelcontextprotocol/logLevel".into(),
        serde_json::Value::String(level.into()),
    );
    let params = serde_json::to_vec(&params).ok()?;
    Envelope::parse(json::message(
        env.id_bytes().as_deref(),
        env.method.name(),
        Some(&params),
    ))
    .ok()
}

impl Router {
    /// Run a handshake-era client's call to a 2026 upstream to the end, answering the
    /// upstream's input requests by asking the client.
    pub(super) async fn bridge(
        self: Arc<Self>,
        session: Arc<Session>,
        idx: usize,
        original: Envelope,
        sink: Sink,
    ) {
        let id = original.id_bytes().unwrap_or_default();
        let timeout = self.servers[idx].config.request_timeout;
        let level = session.state().log_level;
        let original = level
            .and_then(|l| crate::protocol::LOG_LEVELS.get(l as usize))
            .and_then(|l| with_log_level(&original, l))
            .unwrap_or(original);
        let mut env = original.clone();
        for round in 0..=MAX_ROUNDS {
            let (server, edits) = match self.resolve_call(&session, &env) {
                Ok(r) => r,
                Err(e) => {
                    session.finish(&sink, e.reply(&id));
                    return;
                }
            };
            if server != idx {
                session.finish(
                    &sink,
                    error_reply(
                        &id,
                        code::INTERNAL_ERROR,
                        "the retried call no longer goes to the same server",
                    ),
                );
                return;
            }
            let inner = ReplyStream::new(0, self.config.limits.replay_events);
            self.forward_round(
                &session,
                idx,
                env.clone(),
                edits,
                Sink::Stream(inner.clone()),
            );
            // Pass everything on but the final reply.
            let mut after = 0;
            let mut last = None;
            while let Some(ev) = inner.next_after(after).await {
                after = ev.seq;
                let is_reply = Envelope::parse(ev.data.clone())
                    .is_ok_and(|e| matches!(e.kind, Kind::Response | Kind::Error));
                if is_reply {
                    last = Some(ev.data);
                    break;
                }
                if sink.send(ev.data).is_err() {
                    session.shed("client not reading its replies");
                    return;
                }
            }
            let Some(reply) = last else { return }; // the session closed
            let Some(needed) = input_required(&reply) else {
                session.finish(&sink, reply);
                return;
            };
            if round == MAX_ROUNDS {
                break;
            }
            let responses = match self.ask_client(&session, &sink, &needed, timeout).await {
                Ok(r) => r,
                Err(e) => {
                    session.finish(
                        &sink,
                        e.reply_from(&id, Some(&self.servers[idx].config.name)),
                    );
                    return;
                }
            };
            let frame = retry_frame(&original, &responses, needed.state.as_deref());
            env = match Envelope::parse(frame) {
                Ok(e) => e,
                Err(e) => {
                    session.finish(&sink, error_reply(&id, code::INTERNAL_ERROR, &e.message));
                    return;
                }
            };
        }
        session.finish(
            &sink,
            json::router_error(
                Some(&id),
                code::INTERNAL_ERROR,
                &format!("the server asked for input more than {MAX_ROUNDS} times"),
                Some(&self.servers[idx].config.name),
            ),
        );
    }

    /// Ask the client each input request (it must have declared the capability); the
    /// `inputResponses` object of its answers.
    async fn ask_client(
        &self,
        session: &Arc<Session>,
        sink: &Sink,
        needed: &InputRequired,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, RouteError> {
        let mut asked = Vec::new();
        for req in &needed.requests {
            let method = Method::from_name(&req.method);
            if !session.caps().allows(&method) {
                return Err(RouteError::new(
                    code::CLIENT_DECLINED,
                    format!(
                        "the server needs {}, which this client did not declare",
                        req.method
                    ),
                ));
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            let id = session.register_router_request(tx);
            let frame = json::message(Some(&id), &req.method, req.params.as_deref());
            if sink.send(frame).is_err() {
                return Err(RouteError::new(code::INTERNAL_ERROR, "client not reading"));
            }
            asked.push((req, rx));
        }
        let mut out = Vec::from(&b"{"[..]);
        for (n, (req, rx)) in asked.into_iter().enumerate() {
            let answer = match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(frame)) => frame,
                _ => {
                    return Err(RouteError::new(
                        code::INPUT_TIMEOUT,
                        format!("no answer from the client to {}", req.method),
                    ))
                }
            };
            let env = Envelope::parse(answer)
                .map_err(|e| RouteError::new(code::INVALID_REQUEST, e.message.clone()))?;
            if env.kind != Kind::Response {
                return Err(RouteError::new(
                    code::CLIENT_DECLINED,
                    format!(
                        "the client refused {}: {}",
                        req.method,
                        env.payload_str().unwrap_or("")
                    ),
                ));
            }
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&json::json_string(&req.key));
            out.push(b':');
            out.extend_from_slice(env.payload_str().unwrap_or("{}").as_bytes());
        }
        out.push(b'}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_input_required() {
        let f = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":4,"result":{"resultType":"input_required","inputRequests":{"a":{"method":"elicitation/create","params":{"message":"hi"}},"b":{"method":"roots/list"}},"requestState":"s.1"}}"#,
        );
        let r = input_required(&f).unwrap();
        assert_eq!(r.requests.len(), 2);
        assert_eq!(r.requests[0].key, "a");
        assert_eq!(r.requests[0].method, "elicitation/create");
        assert_eq!(r.requests[1].params, None);
        assert_eq!(r.state.as_deref(), Some(&b"\"s.1\""[..]));
        let done = Bytes::from_static(br#"{"jsonrpc":"2.0","id":4,"result":{"content":[]}}"#);
        assert!(input_required(&done).is_none());
    }

    #[test]
    fn retry_keeps_params_and_adds_answers() {
        let env = Envelope::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"x","arguments":{"k":1}}}"#,
        ))
        .unwrap();
        let f = retry_frame(&env, br#"{"a":{"action":"accept"}}"#, Some(br#""st""#));
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["id"], "c1");
        assert_eq!(v["params"]["name"], "x");
        assert_eq!(v["params"]["arguments"]["k"], 1);
        assert_eq!(v["params"]["inputResponses"]["a"]["action"], "accept");
        assert_eq!(v["params"]["requestState"], "st");
        let bare = Envelope::parse(Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{}}"#,
        ))
        .unwrap();
        let f = retry_frame(&bare, b"{}", None);
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert!(v["params"]["inputResponses"].is_object());
    }
}
