//! Upstream server actors: one task per upstream connection (a stdio child, or a Streamable
//! HTTP session) owning that connection's id map, progress tokens and deadlines.
//!
//! The router talks to an actor only through its [`UpstreamHandle`] (a bounded mailbox). The
//! actor rewrites each client request's id (and progress token) to its own, keeps
//! `upstream id -> origin`, and on the reply splices the client's original id back in.

pub mod http;
pub mod read_cache;
pub mod stdio;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::session::{Session, Sink};
use crate::wire::envelope::{code, span_of};
use crate::wire::rewrite::{splice, Edit};
use crate::wire::{json, Envelope, Kind, Method};

/// Who is waiting for a request's replies.
#[derive(Clone)]
pub struct Origin {
    pub session: Arc<Session>,
    pub sink: Sink,
    /// The client's own id, raw JSON as it sent it.
    pub client_id: Bytes,
}

/// A client request bound for an upstream.
pub struct Call {
    pub env: Envelope,
    /// Replace this range of the frame (the prefixed tool or prompt name) with these bytes.
    pub name_edit: Option<(Range<usize>, Bytes)>,
    /// Where the client's progress token sits in the frame, if it sent one.
    pub token: Option<Range<usize>>,
    pub origin: Origin,
    /// Offer the result to this upstream's read cache under this URI (a first-time
    /// `resources/read` of a 2026-07-28 server).
    pub cache_uri: Option<Box<str>>,
}

pub enum Cmd {
    Call(Box<Call>),
    /// The client cancelled the request it knows as `client_id`.
    Cancel {
        session: u64,
        client_id: Bytes,
        reason: Option<String>,
    },
    /// A client's reply to a server-to-client request, its id already the upstream's.
    Reply(Bytes),
    /// A request the router makes itself (lists, subscribe, setLevel, listen). One with a
    /// `key` can be cancelled: `Cancel { session: ROUTER_KEY, client_id: key }`.
    Internal {
        method: &'static str,
        params: Option<Bytes>,
        reply: oneshot::Sender<Result<Bytes, String>>,
        key: Option<Bytes>,
    },
    /// A notification to pass on (e.g. `notifications/roots/list_changed`).
    Notify(Bytes),
    /// Call `uid`, parked while its client (2026-07-28) supplied input, now answers `origin`:
    /// the client's retry of it.
    Reattach {
        uid: u64,
        origin: Origin,
    },
    /// Answer what is in flight, stop the server, and end the actor.
    Shutdown,
}

/// What the upstream told us at initialize.
#[derive(Debug, Clone)]
pub struct UpstreamInfo {
    pub protocol_version: String,
    /// Raw `capabilities` object of the InitializeResult.
    pub capabilities: Box<RawValue>,
    pub server_info: Option<Box<RawValue>>,
    pub instructions: Option<String>,
    /// The capabilities offered (top-level keys of `capabilities` whose value is not null).
    offered: Vec<String>,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("session", &self.session.id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

impl UpstreamInfo {
    /// From an InitializeResult (the handshake era).
    pub fn from_result(result: &str) -> Result<UpstreamInfo, String> {
        #[derive(Deserialize)]
        struct Init<'a> {
            #[serde(rename = "protocolVersion")]
            protocol_version: String,
            #[serde(borrow)]
            capabilities: &'a RawValue,
            #[serde(borrow, default, rename = "serverInfo")]
            server_info: Option<&'a RawValue>,
            #[serde(default)]
            instructions: Option<String>,
        }
        let i: Init<'_> =
            serde_json::from_str(result).map_err(|e| format!("bad initialize result: {e}"))?;
        UpstreamInfo::new(
            i.protocol_version,
            i.capabilities,
            i.server_info,
            i.instructions,
        )
    }

    /// From a DiscoverResult: the upstream speaks 2026-07-28 if it lists it.
    pub fn from_discover(result: &str) -> Result<UpstreamInfo, String> {
        #[derive(Deserialize)]
        struct Discover<'a> {
            #[serde(rename = "supportedVersions")]
            supported: Vec<String>,
            #[serde(borrow)]
            capabilities: &'a RawValue,
            #[serde(borrow, default, rename = "serverInfo")]
            server_info: Option<&'a RawValue>,
            #[serde(default)]
            instructions: Option<String>,
        }
        let d: Discover<'_> =
            serde_json::from_str(result).map_err(|e| format!("bad discover result: {e}"))?;
        let version = crate::protocol::modern::VERSION;
        if !d.supported.iter().any(|v| v == version) {
            return Err(format!(
                "the server does not offer {version} (it offers {:?})",
                d.supported
            ));
        }
        UpstreamInfo::new(
            version.to_string(),
            d.capabilities,
            d.server_info,
            d.instructions,
        )
    }

    fn new(
        protocol_version: String,
        capabilities: &RawValue,
        server_info: Option<&RawValue>,
        instructions: Option<String>,
    ) -> Result<UpstreamInfo, String> {
        let caps: HashMap<String, &RawValue> = serde_json::from_str(capabilities.get())
            .map_err(|e| format!("bad capabilities: {e}"))?;
        let offered = caps
            .into_iter()
            .filter(|(_, v)| v.get() != "null")
            .map(|(k, _)| k)
            .collect();
        Ok(UpstreamInfo {
            offered,
            protocol_version,
            capabilities: capabilities.to_owned(),
            server_info: server_info.map(|r| r.to_owned()),
            instructions,
        })
    }

    /// Is this upstream spoken to in the 2026-07-28 era?
    pub fn is_modern(&self) -> bool {
        self.protocol_version == crate::protocol::modern::VERSION
    }

    /// Does the upstream offer this top-level capability (`tools`, `prompts`, ...)?
    pub fn has(&self, cap: &str) -> bool {
        self.offered.iter().any(|c| c == cap)
    }

    /// Does capability `cap` set `flag` to true (e.g. `resources.subscribe`)?
    pub fn declares(&self, cap: &str, flag: &str) -> bool {
        let Some(c) = self.capability(cap) else {
            return false;
        };
        serde_json::from_str::<HashMap<&str, &RawValue>>(c.get())
            .is_ok_and(|m| m.get(flag).is_some_and(|v| v.get() == "true"))
    }

    pub fn capability(&self, cap: &str) -> Option<Box<RawValue>> {
        let map: HashMap<&str, &RawValue> = serde_json::from_str(self.capabilities.get()).ok()?;
        map.get(cap)
            .filter(|v| v.get() != "null")
            .map(|v| (*v).to_owned())
    }
}

/// What every upstream actor starts with: its configuration, its mailbox, and how it reports
/// to the router.
pub struct ActorParts {
    pub config: crate::config::ServerConfig,
    pub handle: UpstreamHandle,
    pub rx: mpsc::Receiver<Cmd>,
    pub events: Arc<dyn UpstreamEvents>,
    pub max_frame: usize,
    /// Capabilities to declare in our initialize (a per-client upstream declares its client's).
    pub client_capabilities: Bytes,
    /// Frames replayed after every (re)start: resource subscriptions and the log level.
    pub replay: Arc<dyn Fn() -> Vec<Bytes> + Send + Sync>,
}

/// The `initialize` params we send upstream: our newest revision and the given capabilities.
pub fn initialize_params(client_capabilities: &[u8]) -> String {
    format!(
        "{{\"protocolVersion\":\"{}\",\"capabilities\":{},\"clientInfo\":{{\"name\":\"switchyard\",\"version\":\"{}\"}}}}",
        crate::protocol::LATEST_LEGACY,
        std::str::from_utf8(client_capabilities).unwrap_or("{}"),
        env!("CARGO_PKG_VERSION"),
    )
}

/// Router-side view of upstream happenings that concern more than one request.
pub trait UpstreamEvents: Send + Sync {
    /// A notification from `from` tied to no request (list_changed, resources/updated).
    fn unsolicited(&self, from: &UpstreamHandle, env: &Envelope);
    /// The upstream (re)started and finished its handshake.
    fn ready(&self, from: &UpstreamHandle);
    /// `request` from `from`, made while call `uid` of a 2026-07-28 client (`origin`) was in
    /// flight: park the call and give the client `input_required`. False if it cannot be.
    fn park(&self, from: &UpstreamHandle, uid: u64, origin: &Origin, request: &Envelope) -> bool {
        let _ = (from, uid, origin, request);
        false
    }
    /// The router's own listen stream started with `key` (see [`Cmd::Internal`]) was
    /// acknowledged by the server.
    fn listen_acknowledged(&self, from: &UpstreamHandle, key: &Bytes) {
        let _ = (from, key);
    }
}

/// A server's full list, and until when it may be used (`None`: until the server says it
/// changed, or restarts).
pub type ListItems = Arc<Vec<Box<RawValue>>>;
pub type CachedList = (ListItems, Option<Instant>);

/// State of one upstream connection visible to the router.
pub struct UpstreamShared {
    pub server: usize,
    pub name: String,
    pub info: ArcSwapOption<UpstreamInfo>,
    /// The session a per-client upstream belongs to (`None` for shared upstreams).
    pub owner: Option<std::sync::Weak<Session>>,
    /// Cached full lists (tools, prompts, ...), dropped on list_changed and restart.
    pub lists: Mutex<HashMap<&'static str, CachedList>>,
    /// `public` read results of a 2026-07-28 server, shared by every client.
    pub reads: read_cache::ReadCache,
    /// The `Mcp-Param-*` headers of its tools that declare any, compiled whenever its tool
    /// list is fetched (kept across a list_changed until the new list arrives).
    pub param_headers: arc_swap::ArcSwap<crate::protocol::param_headers::ParamTable>,
    /// When a session last used it (seconds on [`clock`]), for reaping idle per-client upstreams.
    last_used: AtomicU64,
    /// Down and waiting to retry (so nobody should wait for its handshake).
    down: std::sync::atomic::AtomicBool,
}

/// Seconds since the process started: a cheap clock for idleness.
pub fn clock() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs()
}

impl UpstreamShared {
    pub fn new(server: usize, name: String, owner: Option<std::sync::Weak<Session>>) -> Self {
        UpstreamShared {
            server,
            name,
            info: ArcSwapOption::empty(),
            owner,
            lists: Mutex::new(HashMap::new()),
            reads: read_cache::ReadCache::default(),
            param_headers: Default::default(),
            last_used: AtomicU64::new(clock()),
            down: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Is it down and waiting to retry? (Neither ready nor starting.)
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    pub fn touch(&self) {
        self.last_used.store(clock(), Ordering::Relaxed);
    }

    pub fn idle_secs(&self) -> u64 {
        clock().saturating_sub(self.last_used.load(Ordering::Relaxed))
    }
}

#[derive(Clone)]
pub struct UpstreamHandle {
    tx: mpsc::Sender<Cmd>,
    pub shared: Arc<UpstreamShared>,
}

impl UpstreamHandle {
    /// Queue a command; `Err` when the mailbox is full (the upstream is overloaded) or gone.
    pub fn send(&self, cmd: Cmd) -> Result<(), Cmd> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        })
    }

    /// A request the router makes itself; waits for the result (or error text).
    pub async fn internal(
        &self,
        method: &'static str,
        params: Option<Bytes>,
    ) -> Result<Bytes, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Internal {
                method,
                params,
                reply,
                key: None,
            })
            .await
            .map_err(|_| format!("server {} is shut down", self.shared.name))?;
        rx.await
            .map_err(|_| format!("server {} went away", self.shared.name))?
    }

    /// Queue a request the router makes itself, cancellable by `key` with
    /// [`UpstreamHandle::cancel_internal`]; its result (or error text) arrives on the receiver,
    /// and a cancelled one's sender is dropped. Queued at once, so calls keep their order.
    pub fn start_internal(
        &self,
        method: &'static str,
        params: Option<Bytes>,
        key: Bytes,
    ) -> Result<oneshot::Receiver<Result<Bytes, String>>, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Internal {
            method,
            params,
            reply,
            key: Some(key),
        })
        .map_err(|_| format!("server {} is overloaded or shut down", self.shared.name))?;
        Ok(rx)
    }

    /// Is it a 2026-07-28 server (as far as is known: `false` before its handshake)?
    pub fn is_modern(&self) -> bool {
        self.shared
            .info
            .load()
            .as_ref()
            .is_some_and(|i| i.is_modern())
    }

    /// Cancel the router's own request started with `key` (no-op if it already ended).
    pub fn cancel_internal(&self, key: Bytes) {
        let _ = self.send(Cmd::Cancel {
            session: ROUTER_KEY,
            client_id: key,
            reason: None,
        });
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Ask the actor to stop its server, and wait (bounded) until it has.
    pub async fn shutdown(&self, wait: std::time::Duration) {
        if self.tx.send(Cmd::Shutdown).await.is_ok() {
            let _ = tokio::time::timeout(wait, self.tx.closed()).await;
        }
    }

    pub fn cached_list(&self, method: &'static str) -> Option<ListItems> {
        self.cached_list_expiring(method).map(|(items, _)| items)
    }

    /// A cached list and, for one kept for a ttl, how long it has left.
    pub fn cached_list_expiring(
        &self,
        method: &'static str,
    ) -> Option<(ListItems, Option<std::time::Duration>)> {
        let g = self.shared.lists.lock().unwrap_or_else(|e| e.into_inner());
        let (items, until) = g.get(method)?;
        match until {
            None => Some((items.clone(), None)),
            Some(t) => {
                let left = t.checked_duration_since(Instant::now())?;
                (!left.is_zero()).then(|| (items.clone(), Some(left)))
            }
        }
    }

    /// Cache a full list, for `ttl` (a 2026-07-28 server's `ttlMs`) or, with `None`, until
    /// the server says it changed.
    pub fn store_list(
        &self,
        method: &'static str,
        items: Arc<Vec<Box<RawValue>>>,
        ttl: Option<std::time::Duration>,
    ) {
        let until = ttl.map(|d| Instant::now() + d);
        self.shared
            .lists
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(method, (items, until));
    }

    /// Compile the `Mcp-Param-*` headers of a tool list just fetched from this server
    /// (cached or not: a 2026 server's private list is not kept, but its schemas count).
    pub fn learn_tools(&self, tools: &[Box<RawValue>]) {
        let table = crate::protocol::param_headers::compile_tools(&self.shared.name, tools);
        self.shared.param_headers.store(Arc::new(table));
    }

    /// Drop a cached list (all of them for `None`). Templates and kept reads go with
    /// resources: servers signal all three with `notifications/resources/list_changed`.
    pub fn invalidate_lists(&self, method: Option<&'static str>) {
        let mut g = self.shared.lists.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(method, None | Some("resources/list")) {
            self.shared.reads.clear();
        }
        match method {
            Some("resources/list") => {
                g.remove("resources/list");
                g.remove("resources/templates/list");
            }
            Some(m) => {
                g.remove(m);
            }
            None => g.clear(),
        }
    }
}

pub fn channel(shared: UpstreamShared, cap: usize) -> (UpstreamHandle, mpsc::Receiver<Cmd>) {
    let (tx, rx) = mpsc::channel(cap);
    (
        UpstreamHandle {
            tx,
            shared: Arc::new(shared),
        },
        rx,
    )
}

/// The session key under which the router's own cancellable requests are kept (sessions
/// count from 1).
pub const ROUTER_KEY: u64 = 0;

/// Reject a command at once: the upstream cannot take it (down, restarting, overloaded).
pub fn reject(cmd: Cmd, server: &str, code: i64, why: &str) {
    match cmd {
        Cmd::Call(call) => {
            let msg = json::router_error(Some(&call.origin.client_id), code, why, Some(server));
            call.origin.session.forget(&call.origin.client_id);
            call.origin.session.finish(&call.origin.sink, msg);
        }
        Cmd::Internal { reply, .. } => {
            let _ = reply.send(Err(format!("{server}: {why}")));
        }
        Cmd::Reattach { origin, .. } => {
            let msg = json::router_error(Some(&origin.client_id), code, why, Some(server));
            origin.session.forget(&origin.client_id);
            origin.session.finish(&origin.sink, msg);
        }
        Cmd::Cancel { .. } | Cmd::Reply(_) | Cmd::Notify(_) | Cmd::Shutdown => {}
    }
}

/// How long an upstream has to answer our `initialize`.
pub const INIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Restart pacing for an upstream connection: 100 ms doubling to 10 s, and back to 100 ms
/// after a connection that lived 30 s.
pub struct Backoff {
    next: std::time::Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: std::time::Duration::from_millis(100),
        }
    }
}

impl Backoff {
    /// The connection started at `started` is down (`why`): forget what we knew of it, then
    /// wait out the backoff, answering calls at once meanwhile. `false` when told to shut down.
    pub async fn wait(&mut self, parts: &mut ActorParts, started: Instant, why: &str) -> bool {
        let name = parts.config.name.clone();
        parts.handle.shared.info.store(None);
        parts.handle.invalidate_lists(None);
        if started.elapsed() > std::time::Duration::from_secs(30) {
            self.next = std::time::Duration::from_millis(100);
        }
        tracing::warn!(server = %name, "upstream down ({why}); retrying in {:?}", self.next);
        let until = tokio::time::Instant::now() + self.next;
        self.next = (self.next * 2).min(std::time::Duration::from_secs(10));
        parts.handle.shared.down.store(true, Ordering::Relaxed);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {
                    parts.handle.shared.down.store(false, Ordering::Relaxed);
                    return true;
                }
                cmd = parts.rx.recv() => match cmd {
                    None | Some(Cmd::Shutdown) => return false,
                    Some(cmd) => reject(cmd, &name, code::UPSTREAM_UNAVAILABLE, "the server is down; Switchyard is retrying it"),
                },
            }
        }
    }
}

/// Calls held while an upstream finishes its handshake; beyond this they are refused.
pub const HELD_MAX: usize = 4096;

/// Hold a command until the handshake is done, or refuse it when too many wait already.
pub fn hold(held: &mut Vec<Cmd>, cmd: Cmd, server: &str) {
    if held.len() >= HELD_MAX {
        reject(
            cmd,
            server,
            code::OVERLOADED,
            "the server is starting and too many requests wait for it",
        );
    } else {
        held.push(cmd);
    }
}

/// A request in flight on one upstream connection.
enum Pending {
    Client {
        origin: Origin,
        token: Option<Bytes>,
        deadline: Instant,
        /// Waiting for its (2026-07-28) client's input: it cannot be what asks next.
        parked: bool,
        /// Offer the result to the read cache under this URI.
        cache_uri: Option<Box<str>>,
    },
    Internal {
        reply: oneshot::Sender<Result<Bytes, String>>,
        /// Its cancellation key, if it has one (see [`Cmd::Internal`]).
        key: Option<Bytes>,
    },
}

/// The id map and deadlines of one upstream connection: the protocol half of an upstream
/// actor, shared by the stdio and HTTP actors. No I/O: it turns commands and upstream frames
/// into frames to write and deliveries.
pub struct Pendings {
    server: String,
    next_id: u64,
    map: HashMap<u64, Pending>,
    /// (session key, client id) -> upstream id, for cancellation.
    by_client: HashMap<(u64, Bytes), u64>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    timeout: std::time::Duration,
}

/// The outcome of handling a frame from the upstream.
pub enum Inbound {
    /// Handled (delivered, or dropped with a log line).
    Done,
    /// A frame to write back to the upstream (an answer to its request).
    Answer(Bytes),
}

impl Pendings {
    pub fn new(server: &str, timeout: std::time::Duration) -> Self {
        Pendings {
            server: server.to_string(),
            next_id: 1,
            map: HashMap::new(),
            by_client: HashMap::new(),
            deadlines: BinaryHeap::new(),
            timeout,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Turn a client call into the frame for the upstream: its id (and progress token) become
    /// ours, the exposed name becomes the server's own. Every other byte is kept.
    pub fn start_call(&mut self, call: Box<Call>) -> Result<(u64, Bytes), (Origin, &'static str)> {
        let Call {
            env,
            name_edit,
            token,
            origin,
            cache_uri,
        } = *call;
        let key = (origin.session.key, origin.client_id.clone());
        if self.by_client.contains_key(&key) {
            return Err((origin, "a request with this id is already in flight"));
        }
        let uid = self.take_id();
        let uid_text = uid.to_string();
        let Some(id_range) = env.id.clone() else {
            return Err((origin, "request without id"));
        };
        let mut edits = vec![Edit {
            range: id_range,
            with: uid_text.as_bytes(),
        }];
        let client_token = token.map(|r| {
            edits.push(Edit {
                range: r.clone(),
                with: uid_text.as_bytes(),
            });
            env.frame.slice(r)
        });
        if let Some((range, name)) = &name_edit {
            edits.push(Edit {
                range: range.clone(),
                with: name,
            });
        }
        let frame = splice(&env.frame, &mut edits);
        let deadline = Instant::now() + self.timeout;
        self.deadlines.push(Reverse((deadline, uid)));
        self.by_client.insert(key, uid);
        self.map.insert(
            uid,
            Pending::Client {
                origin,
                token: client_token,
                deadline,
                parked: false,
                cache_uri,
            },
        );
        Ok((uid, frame))
    }

    /// The frame a command puts on the wire, with the upstream id it waits for (if any).
    /// `None` when there is nothing to send: the call was refused, the cancellation was not
    /// ours, or it is a shutdown (which the actor handles itself).
    pub fn frame_for(&mut self, cmd: Cmd) -> Option<(Bytes, Option<u64>)> {
        match cmd {
            Cmd::Call(call) => match self.start_call(call) {
                Ok((uid, frame)) => Some((frame, Some(uid))),
                Err((origin, why)) => {
                    origin.session.finish(
                        &origin.sink,
                        json::error(Some(&origin.client_id), code::INVALID_REQUEST, why, None),
                    );
                    None
                }
            },
            Cmd::Internal {
                method,
                params,
                reply,
                key,
            } => {
                let (uid, frame) = self.start_internal(method, params.as_deref(), reply, key);
                Some((frame, Some(uid)))
            }
            Cmd::Cancel {
                session,
                client_id,
                reason,
            } => self
                .cancel(session, client_id, reason.as_deref())
                .map(|(_, f)| (f, None)),
            Cmd::Reply(frame) | Cmd::Notify(frame) => Some((frame, None)),
            Cmd::Reattach { uid, origin } => {
                self.reattach(uid, origin);
                None
            }
            Cmd::Shutdown => None,
        }
    }

    fn reattach(&mut self, uid: u64, origin: Origin) {
        match self.map.get_mut(&uid) {
            Some(Pending::Client {
                origin: old,
                parked,
                ..
            }) => {
                *parked = false;
                self.by_client
                    .remove(&(old.session.key, old.client_id.clone()));
                self.by_client
                    .insert((origin.session.key, origin.client_id.clone()), uid);
                *old = origin;
            }
            _ => {
                let msg = json::router_error(
                    Some(&origin.client_id),
                    code::UPSTREAM_UNAVAILABLE,
                    "the parked call is gone (it timed out, or its server restarted)",
                    Some(&self.server),
                );
                deliver_final(&origin, msg);
            }
        }
    }

    /// Answer one request with a router error (its HTTP exchange failed).
    pub fn fail_one(&mut self, uid: u64, code: i64, why: &str) {
        match self.remove(uid) {
            Some(Pending::Client { origin, .. }) => {
                let msg =
                    json::router_error(Some(&origin.client_id), code, why, Some(&self.server));
                deliver_final(&origin, msg);
            }
            Some(Pending::Internal { reply, .. }) => {
                let _ = reply.send(Err(format!("{}: {why}", self.server)));
            }
            None => {}
        }
    }

    /// The capabilities of the client behind request `uid` (what a 2026-07-28 upstream is told
    /// in `_meta`); `{}` for the router's own requests.
    pub fn caps_of(&self, uid: u64) -> Bytes {
        match self.map.get(&uid) {
            Some(Pending::Client { origin, .. }) => origin.session.caps().json(),
            _ => Bytes::from_static(b"{}"),
        }
    }

    /// Did request `uid` come from a 2026-07-28 client (whose `_meta` envelope a legacy
    /// upstream must not see)?
    pub fn from_modern_client(&self, uid: u64) -> bool {
        matches!(self.map.get(&uid), Some(Pending::Client { origin, .. }) if origin.session.era() == crate::protocol::Era::Modern)
    }

    /// The origin of a client request in flight, if `uid` is one.
    fn origin_of(&self, uid: Option<u64>) -> Option<Origin> {
        match self.map.get(&uid?) {
            Some(Pending::Client { origin, .. }) => Some(origin.clone()),
            _ => None,
        }
    }

    pub fn start_internal(
        &mut self,
        method: &str,
        params: Option<&[u8]>,
        reply: oneshot::Sender<Result<Bytes, String>>,
        key: Option<Bytes>,
    ) -> (u64, Bytes) {
        let uid = self.take_id();
        if let Some(k) = &key {
            self.by_client.insert((ROUTER_KEY, k.clone()), uid);
        }
        self.map.insert(uid, Pending::Internal { reply, key });
        (
            uid,
            json::message(Some(uid.to_string().as_bytes()), method, params),
        )
    }

    /// A client's cancellation, if the request is ours: our id for it and the
    /// `notifications/cancelled` frame that tells a stdio or handshake-era upstream.
    pub fn cancel(
        &mut self,
        session: u64,
        client_id: Bytes,
        reason: Option<&str>,
    ) -> Option<(u64, Bytes)> {
        let uid = self.by_client.remove(&(session, client_id))?;
        self.map.remove(&uid);
        Some((uid, cancel_frame(uid, reason)))
    }

    /// Expire overdue requests: each gets a timeout error; returns their ids and the
    /// cancellations to send upstream.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, Bytes)> {
        let mut cancels = Vec::new();
        while let Some(Reverse((at, uid))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(Pending::Client { deadline, .. }) = self.map.get(&uid) {
                if *deadline <= now {
                    if let Some(Pending::Client { origin, .. }) = self.remove(uid) {
                        let msg = json::router_error(
                            Some(&origin.client_id),
                            code::UPSTREAM_TIMEOUT,
                            "the server did not answer in time",
                            Some(&self.server),
                        );
                        deliver_final(&origin, msg);
                    }
                    cancels.push((uid, cancel_frame(uid, Some("timed out in router"))));
                }
            }
        }
        cancels
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    fn remove(&mut self, uid: u64) -> Option<Pending> {
        let p = self.map.remove(&uid)?;
        match &p {
            Pending::Client { origin, .. } => {
                self.by_client
                    .remove(&(origin.session.key, origin.client_id.clone()));
            }
            Pending::Internal { key: Some(k), .. } => {
                self.by_client.remove(&(ROUTER_KEY, k.clone()));
            }
            Pending::Internal { key: None, .. } => {}
        }
        Some(p)
    }

    /// Answer everything in flight at once: the connection is gone.
    pub fn fail_all(&mut self, why: &str) {
        for (_, p) in self.map.drain() {
            match p {
                Pending::Client { origin, .. } => {
                    let msg = json::router_error(
                        Some(&origin.client_id),
                        code::UPSTREAM_UNAVAILABLE,
                        why,
                        Some(&self.server),
                    );
                    deliver_final(&origin, msg);
                }
                Pending::Internal { reply, .. } => {
                    let _ = reply.send(Err(why.to_string()));
                }
            }
        }
        self.by_client.clear();
        self.deadlines.clear();
    }

    /// The sessions with requests in flight, with the sink of each one's newest request.
    fn owners(&self) -> Vec<(u64, Origin)> {
        let mut best: HashMap<u64, (u64, &Origin)> = HashMap::new();
        for (uid, p) in &self.map {
            if let Pending::Client {
                origin,
                parked: false,
                ..
            } = p
            {
                let e = best.entry(origin.session.key).or_insert((*uid, origin));
                if *uid > e.0 {
                    *e = (*uid, origin);
                }
            }
        }
        best.into_iter().map(|(k, (_, o))| (k, o.clone())).collect()
    }

    /// Handle one frame from the upstream. `related` is the upstream id of the request whose
    /// reply stream carried it, when the transport tells (an HTTP POST's SSE stream).
    pub fn inbound(
        &mut self,
        env: Envelope,
        related: Option<u64>,
        handle: &UpstreamHandle,
        events: &dyn UpstreamEvents,
    ) -> Inbound {
        match env.kind {
            Kind::Response | Kind::Error => {
                self.response(env, handle);
                Inbound::Done
            }
            Kind::Notification => {
                self.notification(env, related, handle, events);
                Inbound::Done
            }
            Kind::Request => self.server_request(env, related, handle, events),
        }
    }

    fn response(&mut self, env: Envelope, handle: &UpstreamHandle) {
        let uid = env
            .id
            .clone()
            .and_then(|r| std::str::from_utf8(&env.frame[r]).ok()?.parse::<u64>().ok());
        let Some(p) = uid.and_then(|uid| self.remove(uid)) else {
            tracing::debug!(server = %self.server, "response to an unknown or cancelled id dropped");
            return;
        };
        match p {
            Pending::Client {
                origin, cache_uri, ..
            } => {
                if let (Some(uri), Kind::Response, Some(result)) =
                    (cache_uri, &env.kind, env.payload.clone())
                {
                    if handle.is_modern() {
                        handle.shared.reads.store(&uri, env.frame.slice(result));
                    }
                }
                let id_range = env.id.clone().unwrap_or(0..0);
                let frame = splice(
                    &env.frame,
                    &mut [Edit {
                        range: id_range,
                        with: &origin.client_id,
                    }],
                );
                deliver_final(&origin, frame);
            }
            Pending::Internal { reply, .. } => {
                let out = match env.kind {
                    Kind::Response => Ok(env
                        .payload
                        .clone()
                        .map(|r| env.frame.slice(r))
                        .unwrap_or_default()),
                    _ => Err(format!(
                        "{} answered: {}",
                        self.server,
                        env.payload_str().unwrap_or("")
                    )),
                };
                let _ = reply.send(out);
            }
        }
    }

    fn notification(
        &mut self,
        env: Envelope,
        related: Option<u64>,
        handle: &UpstreamHandle,
        events: &dyn UpstreamEvents,
    ) {
        let owner = handle.shared.owner.as_ref().and_then(|w| w.upgrade());
        if matches!(&env.method, Method::Other(m) if &**m == "notifications/subscriptions/acknowledged")
        {
            // Ours if it names (or, over HTTP, came on) one of our keyed listen requests.
            let uid = related.or_else(|| subscription_uid(&env));
            if let Some(Pending::Internal { key: Some(k), .. }) = uid.and_then(|u| self.map.get(&u))
            {
                events.listen_acknowledged(handle, k);
                return;
            }
        }
        match env.method {
            Method::Progress => {
                let peek = env.peek();
                let Some(tok) = peek.progress_token else {
                    return;
                };
                let range = span_of(&env.frame, tok.get());
                let Some(Pending::Client {
                    origin,
                    token: Some(client_token),
                    ..
                }) = tok
                    .get()
                    .parse::<u64>()
                    .ok()
                    .and_then(|uid| self.map.get(&uid))
                else {
                    tracing::debug!(server = %self.server, "progress for an unknown token dropped");
                    return;
                };
                let frame = splice(
                    &env.frame,
                    &mut [Edit {
                        range,
                        with: client_token,
                    }],
                );
                if origin.sink.send(frame).is_err() {
                    origin.session.shed("client not reading its replies");
                }
            }
            Method::LogMessage => {
                // Logs of a shared upstream carry no request id: deliver them only when exactly one
                // session has requests in flight, never broadcast.
                if let Some(origin) = self.origin_of(related) {
                    return origin.session.deliver_log(&env, Some(&origin.sink));
                }
                // Logs carry no request id: deliver them with the only session that has requests in
                // flight here (always the owner of a per-client upstream), never broadcast.
                match (self.owners().as_slice(), owner.as_ref()) {
                    ([(_, origin)], _) => origin.session.deliver_log(&env, Some(&origin.sink)),
                    ([], Some(session)) => session.deliver_log(&env, None),
                    _ => {
                        tracing::info!(server = %self.server, log = env.params_str().unwrap_or(""), "upstream log")
                    }
                }
            }
            _ => events.unsolicited(handle, &env),
        }
    }

    fn server_request(
        &mut self,
        env: Envelope,
        related: Option<u64>,
        handle: &UpstreamHandle,
        events: &dyn UpstreamEvents,
    ) -> Inbound {
        let upstream_id = env.id_bytes().unwrap_or_default();
        if env.method == Method::Ping {
            return Inbound::Answer(json::result(&upstream_id, b"{}"));
        }
        // The client whose request caused this: the owner of a per-client upstream, or the only
        // session with requests in flight on a shared one.
        let target = match handle.shared.owner.as_ref().and_then(|w| w.upgrade()) {
            _ if related.is_some() && self.origin_of(related).is_some() => self.origin_of(related),
            Some(session) => self
                .owners()
                .into_iter()
                .find(|(k, _)| *k == session.key)
                .map(|(_, o)| o)
                .or_else(|| {
                    Some(Origin {
                        sink: session.unsolicited.clone(),
                        session,
                        client_id: Bytes::new(),
                    })
                }),
            None => match self.owners().as_slice() {
                [(_, o)] => Some(o.clone()),
                _ => None,
            },
        };
        let refuse = |why: &str| {
            Inbound::Answer(json::error(
                Some(&upstream_id),
                code::METHOD_NOT_FOUND,
                why,
                None,
            ))
        };
        let Some(target) = target else {
            return refuse("switchyard: no single client to send this request to");
        };
        // A 2026-07-28 client takes no requests: its call is parked and it gets an
        // `input_required` result; its retry answers this request.
        if target.session.era() == crate::protocol::Era::Modern {
            let uid = self
                .by_client
                .get(&(target.session.key, target.client_id.clone()))
                .copied();
            return match uid {
                Some(uid) if events.park(handle, uid, &target, &env) => {
                    if let Some(Pending::Client { parked, .. }) = self.map.get_mut(&uid) {
                        *parked = true;
                    }
                    Inbound::Done
                }
                _ => refuse("switchyard: the client did not declare this capability"),
            };
        }
        if !target.session.caps().allows(&env.method) {
            return refuse("switchyard: the client did not declare this capability");
        }
        let client_id = target
            .session
            .register_server_request(handle.clone(), upstream_id);
        let range = env.id.clone().unwrap_or(0..0);
        let frame = splice(
            &env.frame,
            &mut [Edit {
                range,
                with: &client_id,
            }],
        );
        if target.sink.send(frame).is_err() {
            target.session.shed("client not reading its replies");
        }
        Inbound::Done
    }
}

/// The `_meta` subscription id of a 2026 listen notification, read as one of our request ids.
fn subscription_uid(env: &Envelope) -> Option<u64> {
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "_meta")]
        meta: Meta<'a>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(borrow, rename = "io.modelcontextprotocol/subscriptionId")]
        id: &'a RawValue,
    }
    let p: Params<'_> = serde_json::from_str(env.params_str()?).ok()?;
    p.meta.id.get().trim_matches('"').parse().ok()
}

fn cancel_frame(uid: u64, reason: Option<&str>) -> Bytes {
    let mut params = format!("{{\"requestId\":{uid}");
    if let Some(r) = reason {
        params.push_str(",\"reason\":");
        params.push_str(std::str::from_utf8(&json::json_string(r)).unwrap_or("\"\""));
    }
    params.push('}');
    json::message(None, "notifications/cancelled", Some(params.as_bytes()))
}

fn deliver_final(origin: &Origin, frame: Bytes) {
    origin.session.forget(&origin.client_id);
    if origin.sink.finish(frame).is_err() {
        origin.session.shed("client not reading its replies");
    }
}

#[cfg(test)]
mod tests {
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
}
