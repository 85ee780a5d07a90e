//! Upstream server actors: one task per upstream connection (a stdio child, or a Streamable
//! HTTP session) owning that connection's id map, progress tokens and deadlines.
//!
//! The router talks to an actor only through its [`UpstreamHandle`] (a bounded mailbox). The
//! actor rewrites each client request's id (and progress token) to its own, keeps
//! `upstream id -> origin`, and on the reply splices the client's original id back in.

pub mod effects;
mod error;
mod handle;
pub mod http;
mod info;
mod pendings;
pub mod read_cache;
pub mod stdio;

pub use effects::{Effect, Wire};
pub use error::{InternalResult, UpstreamError};
pub use handle::*;
pub use info::UpstreamInfo;
pub use pendings::Pendings;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use crate::session::Sink;
use crate::wire::envelope::{code, span_of};
use crate::wire::rewrite::{splice, Edit};
use crate::wire::{json, Envelope, Kind, Method};

/// A client session as this layer, and every layer above it, knows it: one whose in-flight
/// requests went to [`UpstreamHandle`]s.
pub type Session = crate::session::Session<UpstreamHandle>;
/// Every live session (see [`crate::session::SessionStore`]).
pub type SessionStore = crate::session::SessionStore<UpstreamHandle>;
/// Who asked a server-to-client request (see [`crate::session::Asker`]).
pub type Asker = crate::session::Asker<UpstreamHandle>;

impl crate::session::Link for UpstreamHandle {
    fn owner_closed(self) {
        // Per-client upstreams die with their session (their actors hold their own handles,
        // so dropping ours would not stop them).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { self.shutdown(std::time::Duration::from_secs(5)).await });
        }
    }
}

/// Who is waiting for a request's replies.
#[derive(Clone)]
pub struct Origin {
    /// The client session that sent it.
    pub session: Arc<Session>,
    /// Where its replies go.
    pub sink: Sink,
    /// The client's own id, raw JSON as it sent it.
    pub client_id: Bytes,
}

/// A client request bound for an upstream.
pub struct Call {
    /// The client's frame.
    pub env: Envelope,
    /// Its id upstream, given by the router (see [`UpstreamHandle::next_uid`]).
    pub uid: u64,
    /// What the router's parse found to change in the frame.
    pub edits: CallEdits,
    /// Who waits for its replies.
    pub origin: Origin,
    /// Offer the result to this upstream's read cache under this URI (a first-time
    /// `resources/read` of a 2026-07-28 server).
    pub cache_uri: Option<Box<str>>,
}

/// A name's byte range in a frame, and the name (quoted JSON) that replaces it.
pub type NameEdit = (Range<usize>, Bytes);

/// The changes a call's frame needs on its way to the server, as byte ranges of the client's
/// frame found when the router read it: made in one splice with the upstream id, so nothing
/// parses `params` again.
#[derive(Clone, Debug, Default)]
pub struct CallEdits {
    /// Replace this range (the exposed tool or prompt name) with these bytes (the server's own
    /// name, quoted).
    pub name: Option<NameEdit>,
    /// Where the client's progress token sits, if it sent one (it becomes the upstream id).
    pub token: Option<Range<usize>>,
    /// Ranges to cut out: a 2026-07-28 client's envelope in `_meta`, for a handshake-era server.
    pub cuts: Vec<Range<usize>>,
}

/// What the router asks of an upstream actor.
pub enum Cmd {
    /// A client request to send.
    Call(Box<Call>),
    /// The client cancelled request `uid`.
    Cancel {
        /// The call's id upstream.
        uid: u64,
        /// The client's reason, if it gave one.
        reason: Option<String>,
    },
    /// The router cancels its own request started with `key`.
    CancelInternal {
        /// The key the request was started with.
        key: Bytes,
    },
    /// A client's reply to a server-to-client request, its id already the upstream's.
    Reply(Bytes),
    /// A request the router makes itself (lists, subscribe, setLevel, listen). One with a
    /// `key` can be cancelled: [`Cmd::CancelInternal`].
    Internal {
        /// The method.
        method: &'static str,
        /// Its `params`, raw JSON.
        params: Option<Bytes>,
        /// Where the answer goes.
        reply: oneshot::Sender<InternalResult>,
        /// A key to cancel it by.
        key: Option<Bytes>,
    },
    /// A notification to pass on (e.g. `notifications/roots/list_changed`).
    Notify(Bytes),
    /// Call `uid`, parked while its client (2026-07-28) supplied input, now answers `origin`:
    /// the client's retry of it.
    Reattach {
        /// The parked call's id upstream.
        uid: u64,
        /// Who waits for it now.
        origin: Origin,
    },
    /// Answer what is in flight, stop the server, and end the actor.
    Shutdown,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("session", &self.session.id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// What every upstream actor starts with: its configuration, its mailbox, and how it reports
/// to the router.
pub struct ActorParts {
    /// The server it speaks to.
    pub config: crate::config::ServerConfig,
    /// Its own handle (shared state and next ids).
    pub handle: UpstreamHandle,
    /// Its mailbox.
    pub rx: mpsc::Receiver<Cmd>,
    /// How it reports to the router.
    pub events: Arc<dyn UpstreamEvents>,
    /// Largest frame accepted from the server.
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

/// Reject a command at once: the upstream cannot take it (down, restarting, overloaded).
pub fn reject(cmd: Cmd, server: &str, code: i64, why: &str) {
    match cmd {
        Cmd::Call(call) => {
            let msg = json::router_error(Some(&call.origin.client_id), code, why, Some(server));
            effects::finish(&call.origin, call.uid, msg);
        }
        Cmd::Internal { reply, .. } => {
            let _ = reply.send(Err(UpstreamError::unavailable(server, code, why)));
        }
        Cmd::Reattach { uid, origin } => {
            let msg = json::router_error(Some(&origin.client_id), code, why, Some(server));
            effects::finish(&origin, uid, msg);
        }
        Cmd::Cancel { .. }
        | Cmd::CancelInternal { .. }
        | Cmd::Reply(_)
        | Cmd::Notify(_)
        | Cmd::Shutdown => {}
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
