//! The one front door: every client frame, from every transport and of either era, enters
//! through [`receive`], which returns what to send back and on which stream. It owns what is
//! the same on every front: batches, era detection, `initialize`, the 2026-07-28 checks and
//! cancellation (a 2026 result is completed by its request's session: see
//! [`Session::finish`]). Transports are left with sockets, pipes, headers and the shape of
//! their replies (a JSON body or SSE; a line).

mod cancel;
mod modern_calls;

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

pub use cancel::CancelOnDrop;
pub use modern_calls::ModernCalls;

use crate::protocol::modern::{self, RequestMeta};
use crate::protocol::param_headers::Received;
use crate::protocol::{is_known_version, negotiate, ClientCaps};
use crate::router::Session;
use crate::router::{Router, Stateless};
use crate::session::{new_session_id, ReplyStream, Sink};
use crate::wire::envelope::{code, is_batch, split_batch};
use crate::wire::params::ParamsPeek;
use crate::wire::{json, Envelope, Kind, Method};

/// A transport's request headers, as the ingress reads them (HTTP; stdio has none).
pub trait Headers: Sync {
    /// The first value of a header (name in lowercase), if it is text.
    fn get(&self, name: &str) -> Option<&str>;
    /// Every `Mcp-Param-*` header, in order, repeats kept.
    fn param_headers(&self) -> Received;
}

/// Where a frame's session is.
pub enum SessionSlot<'a> {
    /// Each message names its session, or none (HTTP's `Mcp-Session-Id`).
    Named(Option<&'a str>),
    /// One session per connection, started by its `initialize` (stdio): every message for
    /// the client goes to `out`, and the connection's 2026-07-28 requests are tracked in
    /// `calls` so that `notifications/cancelled` and the end of input can stop them.
    Connection {
        /// The connection's session, once `initialize` has started it.
        session: &'a mut Option<Arc<Session>>,
        /// The connection's output, for every message to its client.
        out: &'a mpsc::Sender<Bytes>,
        /// The connection's 2026-07-28 requests in flight.
        calls: &'a mut ModernCalls,
    },
}

/// What the transport knows of a frame besides its bytes.
pub struct Facts<'a> {
    /// The request's headers; `None` where the transport has none (stdio).
    pub headers: Option<&'a dyn Headers>,
    /// Where its session is.
    pub session: SessionSlot<'a>,
}

/// What to send back for one frame.
pub enum Answer {
    /// One message now, with the HTTP status it goes out with over HTTP.
    Reply {
        /// The HTTP status.
        status: u16,
        /// The message.
        frame: Bytes,
    },
    /// The answers to a batch, to go out as one JSON array (none: nothing to send).
    Batch(Vec<Bytes>),
    /// Nothing to send back (a notification or a response was taken; over stdio, replies
    /// come on the connection's own output).
    Accepted,
    /// A session was started: the `initialize` result, and the session (its id is
    /// `session.id`).
    Started {
        /// The `initialize` result.
        frame: Bytes,
        /// The new session.
        session: Arc<Session>,
    },
    /// A handshake-era request: its replies come on `stream`, one of `session`'s.
    Legacy {
        /// The request's session.
        session: Arc<Session>,
        /// The stream its replies come on.
        stream: Arc<ReplyStream>,
    },
    /// A 2026-07-28 request whose replies come on a stream of their own.
    Modern(ModernReply),
}

/// The replies of one 2026-07-28 request, already in 2026 shape (its session completes its
/// result: see [`Session::finish`]); dropping this before the stream is done cancels the
/// request.
pub struct ModernReply {
    /// The stream its replies come on, already completed and in 2026 shape.
    pub stream: Arc<ReplyStream>,
    method: Method,
    cancel: CancelOnDrop,
}

impl ModernReply {
    /// A `subscriptions/listen` stream, which never ends by itself.
    pub fn is_listen(&self) -> bool {
        self.method == Method::SubscriptionsListen
    }

    /// The guard that cancels the request if dropped early; the stream it watches.
    pub fn into_parts(self) -> (Arc<ReplyStream>, CancelOnDrop) {
        (self.stream, self.cancel)
    }
}

fn reply(status: u16, frame: Bytes) -> Answer {
    Answer::Reply { status, frame }
}

fn refuse(status: u16, id: Option<&[u8]>, code: i64, message: &str) -> Answer {
    reply(status, json::error(id, code, message, None))
}

/// Take one frame from a client.
pub async fn receive(router: &Arc<Router>, frame: Bytes, facts: Facts<'_>) -> Answer {
    let Facts {
        headers,
        mut session,
    } = facts;
    if is_batch(&frame) {
        if let Some(a) = headers.and_then(|h| check_version(h, None)) {
            return a;
        }
        return batch(router, &session, frame).await;
    }
    // A frame that may be a 2026 request has its `params` read in the envelope's own pass.
    let parsed = if may_be_modern(&frame, headers, &session) {
        Envelope::parse_reading_params(frame, RequestMeta::read)
            .map(|(env, meta)| (env, Some(meta.unwrap_or_default())))
    } else {
        Envelope::parse(frame).map(|env| (env, None))
    };
    let (env, meta) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return refuse(400, e.id.as_deref(), e.code, &e.message),
    };
    // A 2026 client over stdio cancels a request (a listen stream too) by its id.
    if let SessionSlot::Connection { calls, .. } = &mut session {
        if calls.cancelled(&env) {
            return Answer::Accepted;
        }
    }
    if let Some(meta) = meta.filter(|m| is_modern(&env, m, &session)) {
        return modern_request(router, env, meta, headers, session).await;
    }
    if let Some(a) = headers.and_then(|h| check_version(h, env.id_bytes().as_deref())) {
        return a;
    }
    match session {
        SessionSlot::Named(id) => named(router, env, id).await,
        SessionSlot::Connection { session, out, .. } => connection(router, env, session, out).await,
    }
}

/// Could this frame be a 2026-07-28 request? Over HTTP: no session, and the version header
/// or `_meta` says 2026 (an `initialize` sent that way is a removed method). Over stdio: the
/// frame names a 2026 protocol version (confirmed by [`is_modern`] once it is read).
fn may_be_modern(frame: &[u8], headers: Option<&dyn Headers>, session: &SessionSlot<'_>) -> bool {
    match session {
        SessionSlot::Named(Some(_)) => false,
        SessionSlot::Named(None) => {
            headers.and_then(|h| h.get("mcp-protocol-version")) == Some(modern::VERSION)
                || modern::carries_envelope(frame)
        }
        SessionSlot::Connection { .. } => modern::carries_envelope(frame),
    }
}

/// Is the frame, read, a 2026-07-28 request? Over HTTP every candidate is (its checks then
/// refuse what is wrong with it); over stdio, only a request whose `_meta` names a version.
fn is_modern(env: &Envelope, meta: &RequestMeta, session: &SessionSlot<'_>) -> bool {
    match session {
        SessionSlot::Named(_) => true,
        SessionSlot::Connection { .. } => {
            env.kind == Kind::Request && meta.protocol_version.is_some()
        }
    }
}

/// A handshake-era request's `MCP-Protocol-Version` header, where there is one, must name a
/// revision Switchyard serves (a refusal otherwise).
pub fn check_version(h: &dyn Headers, id: Option<&[u8]>) -> Option<Answer> {
    match h.get("mcp-protocol-version") {
        Some(v) if !is_known_version(v) && v != modern::VERSION => Some(refuse(
            400,
            id,
            code::INVALID_REQUEST,
            &format!("unsupported MCP-Protocol-Version: {v}"),
        )),
        _ => None,
    }
}

/// A message of a session named by the request (HTTP).
async fn named(router: &Arc<Router>, env: Envelope, id: Option<&str>) -> Answer {
    if env.method == Method::Initialize && env.kind == Kind::Request {
        let unsolicited = Sink::Stream(ReplyStream::new(0, router.config.limits.replay_events));
        return initialize(router, env, unsolicited).await;
    }
    let Some(id) = id else {
        return refuse(
            400,
            None,
            code::INVALID_REQUEST,
            "Mcp-Session-Id header is required",
        );
    };
    let session = match router.sessions.get(id) {
        Some(s) if !s.is_closed() => s,
        _ => {
            return refuse(
                404,
                None,
                code::INVALID_REQUEST,
                "session not found (it may have expired); initialize again",
            )
        }
    };
    if env.kind == Kind::Request {
        let stream = session.new_stream();
        router.handle(&session, env, Sink::Stream(stream.clone()));
        Answer::Legacy { session, stream }
    } else {
        router.handle(&session, env, session.unsolicited.clone());
        Answer::Accepted
    }
}

/// A message on a connection that carries one session (stdio).
async fn connection(
    router: &Arc<Router>,
    env: Envelope,
    session: &mut Option<Arc<Session>>,
    out: &mpsc::Sender<Bytes>,
) -> Answer {
    if let Some(s) = session.as_ref() {
        router.handle(s, env, Sink::Channel(out.clone()));
        return Answer::Accepted;
    }
    let id = env.id_bytes().unwrap_or_default();
    match (env.kind, &env.method) {
        (Kind::Request, Method::Initialize) => {
            let answer = initialize(router, env, Sink::Channel(out.clone())).await;
            if let Answer::Started { session: s, .. } = &answer {
                *session = Some(s.clone());
            }
            answer
        }
        (Kind::Request, Method::Ping) => reply(200, json::result(&id, b"{}")),
        (Kind::Request, _) => refuse(200, Some(&id), code::INVALID_REQUEST, "initialize first"),
        _ => Answer::Accepted, // nothing is owed to a notification before initialize
    }
}

/// Start a handshake-era session: its era and capabilities from `initialize`, its
/// unsolicited messages to `unsolicited`; answered once its upstreams are ready.
async fn initialize(router: &Arc<Router>, env: Envelope, unsolicited: Sink) -> Answer {
    let id = env.id_bytes().unwrap_or_default();
    let peek = match env.params_str().map(ParamsPeek::parse).transpose() {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return refuse(400, Some(&id), code::INVALID_PARAMS, &e),
    };
    let era = negotiate(peek.protocol_version.as_deref());
    let caps = ClientCaps::parse(peek.capabilities.map(|c| c.get()));
    let Some(session_id) = new_session_id() else {
        return refuse(
            503,
            Some(&id),
            code::INTERNAL_ERROR,
            "no randomness for a session id",
        );
    };
    let session = Session::new(
        session_id.clone(),
        era,
        caps,
        unsolicited,
        router.config.limits.replay_events,
    );
    session.touch();
    if !router.sessions.insert(session.clone()) {
        return refuse(
            503,
            Some(&id),
            code::LIMIT_REACHED,
            "too many sessions (max_sessions)",
        );
    }
    router.wait_ready(&session).await;
    let frame = json::result(&id, &router.initialize_result(&session));
    tracing::info!(session = %session_id, version = era.version(), "session started");
    Answer::Started { frame, session }
}

/// A JSON-RPC batch: accepted only in 2025-03-26 sessions; its answers go out as one array.
async fn batch(router: &Arc<Router>, slot: &SessionSlot<'_>, frame: Bytes) -> Answer {
    let session = match slot {
        SessionSlot::Named(id) => id.and_then(|id| router.sessions.get(id)),
        SessionSlot::Connection { session, .. } => (*session).clone(),
    };
    let Some(session) = session.filter(|s| s.era().accepts_batches()) else {
        return refuse(
            400,
            None,
            code::INVALID_REQUEST,
            "batches are accepted only in 2025-03-26 sessions",
        );
    };
    let parts = match split_batch(&frame) {
        Ok(p) => p,
        Err(e) => return refuse(400, None, e.code, &e.message),
    };
    let mut answers = Vec::new();
    let mut streams = Vec::new();
    for part in parts {
        match Envelope::parse(part) {
            Ok(env) if env.method == Method::Initialize => answers.push(json::error(
                env.id_bytes().as_deref(),
                code::INVALID_REQUEST,
                "initialize may not be batched",
                None,
            )),
            Ok(env) if env.kind == Kind::Request => {
                let s = ReplyStream::new(0, 64);
                router.handle(&session, env, Sink::Stream(s.clone()));
                streams.push(s);
            }
            Ok(env) => router.handle(&session, env, session.unsolicited.clone()),
            Err(e) => answers.push(json::error(e.id.as_deref(), e.code, &e.message, None)),
        }
    }
    for s in streams {
        // The final message of each stream is its response; progress is not carried in batches.
        let mut last = None;
        let mut after = 0;
        while let Some(ev) = s.next_after(after).await {
            after = ev.seq;
            last = Some(ev.data);
        }
        answers.extend(last);
    }
    Answer::Batch(answers)
}

/// A 2026-07-28 request: `_meta` checked (and, over HTTP, the headers against the body),
/// then served on a transient session of its own.
async fn modern_request(
    router: &Arc<Router>,
    env: Envelope,
    mut meta: RequestMeta,
    headers: Option<&dyn Headers>,
    slot: SessionSlot<'_>,
) -> Answer {
    if env.kind != Kind::Request {
        // 2026 defines no client notification over HTTP, and clients never send responses.
        return Answer::Accepted;
    }
    let id = env.id_bytes().unwrap_or_default();
    let checked = match headers {
        Some(h) => modern::validate(&env, &meta, &|name| h.get(name)),
        None => modern::validate_meta(&meta),
    };
    if let Err(r) = checked {
        let data = r.data.as_deref().map(str::as_bytes);
        return reply(r.status, json::error(Some(&id), r.code, &r.message, data));
    }
    // Checked against the called tool's schema once the router knows the tool.
    meta.param_headers = headers.map(|h| h.param_headers());
    let (session, stream, method) = match router.stateless(env, meta).await {
        Ok(Stateless::Now(frame)) => return reply(200, frame),
        Ok(Stateless::Stream {
            session,
            stream,
            method,
        }) => (session, stream, method),
        Err(r) => return refuse(r.status, Some(&id), r.code, &r.message),
    };
    let closed = match slot {
        SessionSlot::Named(_) => "the client closed its reply stream",
        SessionSlot::Connection { .. } => "the client cancelled the request",
    };
    let cancel = CancelOnDrop::new(router.clone(), session, id.clone(), stream.clone(), closed);
    let reply = ModernReply {
        stream,
        method,
        cancel,
    };
    match slot {
        SessionSlot::Named(_) => Answer::Modern(reply),
        SessionSlot::Connection { out, calls, .. } => {
            calls.start(id, reply, out.clone());
            Answer::Accepted
        }
    }
}

#[cfg(test)]
mod tests;
