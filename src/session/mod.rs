//! Client sessions: what the router knows of each client, and the store that finds them.
//!
//! A session's state sits behind its own small lock, taken only by that session's requests;
//! nothing here is global per message. The store is sharded by session id.

mod store;
pub mod stream;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

pub use store::{new_session_id, SessionStore};
pub use stream::{CallInfo, ReplyStage, ReplyStream, Shed, Sink, StagedSink};

use crate::protocol::{log_level_rank, ClientCaps, Era};
use crate::wire::Envelope;

/// The routes of a session that has listed nothing yet: one shared empty table (a listing
/// replaces it whole), so a 2026 request's transient session allocates none.
fn no_routes() -> Arc<Routes> {
    static EMPTY: std::sync::OnceLock<Arc<Routes>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

/// What a session keeps of an upstream: the router's handle to it. The session layer never
/// names the upstream layer (which delivers into sessions, and so imports this one); the
/// upstream layer's handle is the one implementation, and tests use their own.
pub trait Link: Clone + Send + Sync + 'static {
    /// The session that owned this per-client upstream closed: stop it.
    fn owner_closed(self);
}

/// A client request in flight: the upstream it went to and its id there. The only record of
/// it on the clients' side (the upstream's id map keeps the other half, by that id).
#[derive(Clone)]
pub struct InFlight<U> {
    /// Where it went.
    pub upstream: U,
    /// Its id on that upstream.
    pub uid: u64,
}

/// Where a client-facing name resolves: a server index and the server's own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The server's index in the configuration.
    pub server: usize,
    /// The server's own name for it.
    pub name: String,
}

/// Names and URIs a session has been shown, so calls resolve as listed.
#[derive(Default, Debug)]
pub struct Routes {
    /// Exposed tool names and where they go.
    pub tools: HashMap<String, Route>,
    /// Exposed prompt names and where they go.
    pub prompts: HashMap<String, Route>,
    /// Resource URIs listed and the server each came from.
    pub resources: HashMap<String, usize>,
    /// URI templates and the server each came from.
    pub templates: Vec<(String, usize)>,
}

/// What changes during a session, behind its lock.
pub struct SessionState<U> {
    /// The level set with `logging/setLevel` (a rank in `LOG_LEVELS`); `None` sends every line.
    pub log_level: Option<u8>,
    /// Resources subscribed to: (server index, URI).
    pub subscriptions: HashSet<(usize, String)>,
    /// Client request id -> where it went (for cancellation and the duplicate-id check).
    pub in_flight: HashMap<Bytes, InFlight<U>>,
    /// Ids we gave server-to-client requests -> who asked (and gets the answer).
    pub server_requests: HashMap<Bytes, Asker<U>>,
    next_server_request: u64,
    /// Reply streams kept for `Last-Event-ID` resumption, oldest first.
    streams: VecDeque<Arc<ReplyStream>>,
    /// Per-client upstreams of this session, by server index.
    pub upstreams: HashMap<usize, U>,
    /// The names and URIs this session has been shown.
    pub routes: Arc<Routes>,
    /// A transient session's one request: where its routing keys sit, from the ingress's
    /// read of its `params`, and the frame they are ranges of (its address and length).
    request_spans: Option<(crate::wire::params::CallSpans, usize, usize)>,
}

impl<U> SessionState<U> {
    /// Where the routing keys of `frame` sit, if it is this transient session's request and
    /// the ingress read them; taken, as one request is resolved once (a second resolve reads
    /// `params` itself).
    pub fn take_request_spans(&mut self, frame: &[u8]) -> Option<crate::wire::params::CallSpans> {
        let (_, at, len) = self.request_spans.as_ref()?;
        if *at != frame.as_ptr() as usize || *len != frame.len() {
            return None;
        }
        self.request_spans.take().map(|(spans, _, _)| spans)
    }
}

/// Who asked a server-to-client request, and so gets the client's answer.
pub enum Asker<U> {
    /// An upstream, under its own request id.
    Upstream(U, Bytes),
    /// The router (the whole reply frame).
    Router(tokio::sync::oneshot::Sender<Bytes>),
}

/// One client session: its era and capabilities, its streams, and what it has in flight.
pub struct Session<U: Link> {
    /// The `Mcp-Session-Id` (HTTP) or a fixed name (stdio, and every transient session).
    pub id: Cow<'static, str>,
    /// A small number for maps and for choosing a pool member.
    pub key: u64,
    /// The worker shard it was started on, if any: its calls go to the upstream instances
    /// that run there.
    pub home: Option<usize>,
    era: Era,
    /// What the client can receive; a transient session's is read from `caps_declared` (its
    /// slice of the request) only if something asks.
    caps: std::sync::OnceLock<ClientCaps>,
    caps_declared: Option<Bytes>,
    /// Messages tied to no request: the GET stream over HTTP, stdout over stdio.
    pub unsolicited: Sink,
    state: Mutex<SessionState<U>>,
    closed: AtomicBool,
    /// Woken when the session closes (see [`Session::closed`]).
    on_close: tokio::sync::Notify,
    /// Numbers for reply streams (0 is the unsolicited stream).
    next_stream: AtomicU64,
    /// One GET stream at a time, and where the last one stopped reading (made on the first
    /// GET: a 2026 request's transient session never has one).
    get_stream: std::sync::OnceLock<(Arc<AtomicBool>, Arc<AtomicU64>)>,
    last_seen: AtomicU64,
    epoch: Instant,
    replay_cap: usize,
    /// Run when the session is dropped, with its key and the resources it was still
    /// subscribed to, so upstreams stop sending updates nobody will read.
    farewell: std::sync::OnceLock<Farewell>,
    /// The one request a transient 2026-07-28 session serves.
    request: Option<ModernRequest>,
}

/// What a transient session knows of its one 2026-07-28 request.
struct ModernRequest {
    /// Its method: what its result must carry (see [`Session::finish`]).
    method: crate::wire::Method,
    /// Its `Mcp-Param-*` headers, over HTTP (see
    /// [`crate::protocol::modern::RequestMeta::param_headers`]).
    param_headers: Option<crate::protocol::param_headers::Received>,
}

/// See [`Session::on_drop_with_subscriptions`].
pub type Farewell = Box<dyn Fn(u64, Vec<(usize, String)>) + Send + Sync>;

impl<U: Link> Drop for Session<U> {
    fn drop(&mut self) {
        let Some(farewell) = self.farewell.take() else {
            return;
        };
        let subs = std::mem::take(
            &mut self
                .state
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .subscriptions,
        );
        if !subs.is_empty() {
            farewell(self.key, subs.into_iter().collect());
        }
    }
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

impl<U: Link> Session<U> {
    /// A session named `id` of `era`, whose messages tied to no request go on `unsolicited`.
    pub fn new(
        id: String,
        era: Era,
        caps: ClientCaps,
        unsolicited: Sink,
        replay_cap: usize,
    ) -> Arc<Self> {
        let s = Self::with_request(id.into(), era, None, unsolicited, replay_cap, None);
        let _ = s.caps.set(caps);
        s
    }

    fn with_request(
        id: Cow<'static, str>,
        era: Era,
        caps_declared: Option<Bytes>,
        unsolicited: Sink,
        replay_cap: usize,
        request: Option<ModernRequest>,
    ) -> Arc<Self> {
        Arc::new(Session {
            id,
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            home: crate::shard::current(),
            era,
            caps: std::sync::OnceLock::new(),
            caps_declared,
            unsolicited,
            state: Mutex::new(SessionState {
                log_level: None,
                subscriptions: HashSet::new(),
                in_flight: HashMap::new(),
                server_requests: HashMap::new(),
                next_server_request: 1,
                streams: VecDeque::new(),
                upstreams: HashMap::new(),
                routes: no_routes(),
                request_spans: None,
            }),
            closed: AtomicBool::new(false),
            on_close: tokio::sync::Notify::new(),
            next_stream: AtomicU64::new(1),
            get_stream: std::sync::OnceLock::new(),
            last_seen: AtomicU64::new(0),
            epoch: Instant::now(),
            replay_cap,
            farewell: std::sync::OnceLock::new(),
            request,
        })
    }

    /// Have `farewell` run when this session is dropped while subscribed to resources (set
    /// once; later calls keep the first).
    pub fn on_drop_with_subscriptions(&self, farewell: impl FnOnce() -> Farewell) {
        self.farewell.get_or_init(farewell);
    }

    /// The transient session of one 2026-07-28 request (checked with
    /// [`crate::protocol::modern::validate_meta`]): its log level comes from `_meta`. It
    /// declares no sampling, elicitation or roots: server-to-client requests do not exist in
    /// 2026 (MRTR replaces them, and bridging them is still to come).
    /// `frame` is the request's own (the spans in `meta` are ranges of it).
    /// `stream_cap` bounds each reply stream as for any session (a reader that lags further
    /// behind loses the oldest progress, never the response).
    pub fn for_request(
        method: crate::wire::Method,
        meta: crate::protocol::modern::RequestMeta,
        frame: &bytes::Bytes,
        stream_cap: usize,
    ) -> Arc<Self> {
        let s = Self::with_request(
            Cow::Borrowed("modern"),
            Era::Modern,
            meta.client_capabilities
                .clone()
                .filter(|r| r.end <= frame.len())
                .map(|r| frame.slice(r)),
            Sink::Discard,
            stream_cap,
            Some(ModernRequest {
                method,
                param_headers: meta.param_headers,
            }),
        );
        {
            let mut st = s.state();
            st.log_level = meta.log_level.as_deref().and_then(log_level_rank);
            st.request_spans = meta
                .spans
                .map(|spans| (spans, frame.as_ptr() as usize, frame.len()));
        }
        s
    }

    /// The `Mcp-Param-*` headers its request came with: `Some` only for a 2026-07-28
    /// request over HTTP, where they must agree with the called tool's arguments.
    pub fn param_headers(&self) -> Option<&[(Box<str>, Box<str>)]> {
        self.request.as_ref()?.param_headers.as_deref()
    }

    /// The method of the one 2026-07-28 request a transient session serves (`None` for a
    /// handshake-era session).
    pub fn modern_method(&self) -> Option<&crate::wire::Method> {
        self.request.as_ref().map(|r| &r.method)
    }

    /// The protocol era the session speaks.
    pub fn era(&self) -> Era {
        self.era
    }

    /// What the client said it can receive.
    pub fn caps(&self) -> &ClientCaps {
        self.caps.get_or_init(|| {
            self.caps_declared
                .clone()
                .map_or_else(ClientCaps::default, ClientCaps::parse_shared)
        })
    }

    /// The session's changing state (a poisoned lock is taken over: the state stays consistent per
    /// operation).
    pub fn state(&self) -> MutexGuard<'_, SessionState<U>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a GET stream is open, and the last event id it delivered.
    pub fn get_stream_state(&self) -> (Arc<AtomicBool>, Arc<AtomicU64>) {
        let (open, cursor) = self.get_stream.get_or_init(|| {
            (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicU64::new(0)),
            )
        });
        (open.clone(), cursor.clone())
    }

    /// Marks the session as used now.
    pub fn touch(&self) {
        self.last_seen
            .store(self.epoch.elapsed().as_secs(), Ordering::Relaxed);
    }

    /// Seconds since the session was last used.
    pub fn idle_secs(&self) -> u64 {
        self.epoch
            .elapsed()
            .as_secs()
            .saturating_sub(self.last_seen.load(Ordering::Relaxed))
    }

    /// Whether the session has been closed (DELETE, idle timeout or end of input).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// Completes once the session is closed (at once if it already is).
    pub async fn closed(&self) {
        let notified = self.on_close.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.is_closed() {
            return;
        }
        notified.await;
    }

    /// Close the session: its streams end and its per-client upstreams shut down.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        self.on_close.notify_waiters();
        let mut st = self.state();
        st.streams.drain(..).for_each(|s| s.close());
        // Per-client upstreams die with their session (their actors hold their own handles,
        // so dropping ours would not stop them).
        for (_, h) in st.upstreams.drain() {
            h.owner_closed();
        }
        st.in_flight.clear();
        st.server_requests.clear();
        drop(st);
        if let Sink::Stream(s) = &self.unsolicited {
            s.close();
        }
    }

    /// Give `sink` its final message; a client too far behind to take it is shed (a lost
    /// response would leave it waiting forever).
    ///
    /// A 2026-07-28 request's result is completed first (`resultType`, and cache hints on
    /// lists and reads), so every final reply its client gets has them.
    pub fn finish(&self, sink: &Sink, msg: Bytes) {
        let msg = match self.modern_method() {
            Some(method) => crate::protocol::modern::complete_result(&msg, method),
            None => msg,
        };
        self.finish_as_is(sink, msg);
    }

    /// [`Session::finish`] for a message already in its client's shape: an upstream's
    /// result, completed in the same splice that gave it its client id back.
    pub fn finish_as_is(&self, sink: &Sink, msg: Bytes) {
        if sink.finish(msg).is_err() {
            self.shed("client not reading its replies");
        }
    }

    /// Give `sink` a message that is not a request's last (progress, a log line, a
    /// notification); a client too far behind to take it is shed.
    pub fn send(&self, sink: &Sink, msg: Bytes) {
        if sink.send(msg).is_err() {
            self.shed("client not reading its replies");
        }
    }

    /// The client stopped reading: drop it rather than let it hold anyone else up.
    pub fn shed(&self, why: &str) {
        if !self.is_closed() {
            tracing::warn!(session = %self.id, "session shed: {why}");
            self.close();
        }
    }

    /// Record that `client_id` is in flight on `upstream` as its request `uid`; `false` if
    /// the id is already in use (JSON-RPC ids are unique among a session's requests in flight).
    pub fn begin(&self, client_id: &Bytes, upstream: &U, uid: u64) -> bool {
        let mut st = self.state();
        if st.in_flight.contains_key(client_id) {
            return false;
        }
        let upstream = upstream.clone();
        st.in_flight
            .insert(client_id.clone(), InFlight { upstream, uid });
        true
    }

    /// Request `uid` (`client_id` to the client) is over. A newer request that reuses the id
    /// is left alone.
    pub fn end(&self, client_id: &Bytes, uid: u64) {
        if client_id.is_empty() {
            return;
        }
        let mut st = self.state();
        if st.in_flight.get(client_id).is_some_and(|f| f.uid == uid) {
            st.in_flight.remove(client_id);
        }
    }

    /// Take `client_id` out of flight (it is being cancelled): where it went, if anywhere.
    pub fn take_in_flight(&self, client_id: &Bytes) -> Option<InFlight<U>> {
        self.state().in_flight.remove(client_id)
    }

    /// Has it requests in flight?
    pub fn has_in_flight(&self) -> bool {
        !self.state().in_flight.is_empty()
    }

    /// Give a server-to-client request an id of ours; returns that id (raw JSON).
    pub fn register_server_request(&self, upstream: U, upstream_id: Bytes) -> Bytes {
        self.register(Asker::Upstream(upstream, upstream_id))
    }

    /// Give a request the router itself sends the client (bridging a 2026 upstream's
    /// `input_required` for a handshake-era client) an id; the client's answer goes to `reply`.
    pub fn register_router_request(&self, reply: tokio::sync::oneshot::Sender<Bytes>) -> Bytes {
        self.register(Asker::Router(reply))
    }

    fn register(&self, asker: Asker<U>) -> Bytes {
        let mut st = self.state();
        let id = Bytes::from(format!("\"sy-{}\"", st.next_server_request));
        st.next_server_request += 1;
        st.server_requests.insert(id.clone(), asker);
        id
    }

    /// Removes and returns who asked server-to-client request `id` (our id for it).
    pub fn take_server_request(&self, id: &[u8]) -> Option<Asker<U>> {
        self.state().server_requests.remove(id)
    }

    /// A new reply stream for one request. It is kept for resumption only once it is sent
    /// as SSE ([`Session::keep_stream`]): a plain JSON reply cannot be resumed.
    pub fn new_stream(&self) -> Arc<ReplyStream> {
        ReplyStream::new(
            self.next_stream.fetch_add(1, Ordering::Relaxed),
            self.replay_cap,
        )
    }

    /// Keep an SSE reply stream for `Last-Event-ID` resumption; beyond 64 kept streams the
    /// finished ones go first, then the oldest.
    pub fn keep_stream(&self, stream: &Arc<ReplyStream>) {
        let mut st = self.state();
        if st.streams.len() >= 64 {
            st.streams.retain(|s| !s.is_done());
            while st.streams.len() >= 64 {
                st.streams.pop_front();
            }
        }
        st.streams.push_back(stream.clone());
    }

    /// Find a reply stream by number (0 is the unsolicited stream).
    pub fn stream(&self, no: u64) -> Option<Arc<ReplyStream>> {
        if no == 0 {
            return self.unsolicited.stream().cloned();
        }
        self.state()
            .streams
            .iter()
            .find(|s| s.stream_no == no)
            .cloned()
    }

    /// Deliver an upstream's `notifications/message` if it meets this session's level.
    pub fn deliver_log(&self, env: &Envelope, sink: Option<&Sink>) {
        let level = env.peek().level.and_then(|l| log_level_rank(&l));
        let wanted = self.state().log_level;
        // A 2026-07-28 request gets log lines only if it asked for them (`_meta` logLevel).
        if self.era == Era::Modern && wanted.is_none() {
            return;
        }
        // Without logging/setLevel a legacy client gets what the server chooses to send.
        if let (Some(level), Some(min)) = (level, wanted) {
            if level < min {
                return;
            }
        }
        self.send(sink.unwrap_or(&self.unsolicited), env.frame.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::negotiate;

    /// No upstream: these tests never send anywhere.
    #[derive(Clone)]
    struct NoLink;
    impl Link for NoLink {
        fn owner_closed(self) {}
    }
    type Session = super::Session<NoLink>;
    type SessionStore = super::SessionStore<NoLink>;

    #[test]
    fn a_client_that_stops_reading_is_shed_not_waited_for() {
        let (tx, _rx) = tokio::sync::mpsc::channel(2);
        let s = Session::new(
            "slow".into(),
            negotiate(None),
            ClientCaps::default(),
            Sink::Channel(tx),
            8,
        );
        let sink = s.unsolicited.clone();
        assert!(sink.send(Bytes::from_static(b"1")).is_ok());
        assert!(sink.send(Bytes::from_static(b"2")).is_ok());
        // The queue is full: delivery fails at once rather than blocking the upstream actor.
        assert!(sink.send(Bytes::from_static(b"3")).is_err());
        s.shed("test");
        assert!(s.is_closed());
    }

    #[test]
    fn only_sse_streams_are_kept_and_the_store_is_bounded() {
        let s = Session::new(
            "s".into(),
            negotiate(None),
            ClientCaps::default(),
            Sink::Stream(ReplyStream::new(0, 4)),
            4,
        );
        let first = s.new_stream();
        assert!(
            s.stream(first.stream_no).is_none(),
            "not kept until sent as SSE"
        );
        s.keep_stream(&first);
        assert!(s.stream(first.stream_no).is_some());
        for _ in 0..100 {
            let st = s.new_stream();
            st.push(Bytes::from_static(b"x"), true);
            s.keep_stream(&st);
        }
        assert!(s.state().streams.len() <= 64);
        assert!(
            s.stream(0).is_some(),
            "the unsolicited stream is always there"
        );
    }

    #[test]
    fn the_store_refuses_beyond_its_limit() {
        let store = SessionStore::new(2);
        let mk = |id: &str| {
            Session::new(
                id.into(),
                negotiate(None),
                ClientCaps::default(),
                Sink::Stream(ReplyStream::new(0, 4)),
                4,
            )
        };
        assert!(store.insert(mk("a")) && store.insert(mk("b")));
        assert!(!store.insert(mk("c")));
        assert!(store.remove("a").is_some());
        assert!(store.insert(mk("c")));
        assert_eq!(store.len(), 2);
        assert!(store.get("c").is_some() && store.get("a").is_none());
    }
}
