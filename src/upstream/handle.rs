//! The router's side of an upstream actor: its mailbox, and the state the router reads
//! without asking the actor (info, cached lists, the read cache, `Mcp-Param-*` rules).

use super::*;

/// A server's full list: its items, raw JSON.
pub type ListItems = Arc<Vec<Box<RawValue>>>;
/// A server's full list, and until when it may be used (`None`: until the server says it changed,
/// or restarts).
pub type CachedList = (ListItems, Option<Instant>);

/// State of one upstream connection visible to the router.
pub struct UpstreamShared {
    /// The server's index in the configuration.
    pub server: usize,
    /// The server's configured name.
    pub name: String,
    /// What the server said at its handshake; `None` until it has (and while it is down).
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
    pub(super) down: std::sync::atomic::AtomicBool,
    /// Request ids on this upstream, for the router's calls and the actor's own requests
    /// alike, never reused across restarts (a late reply cannot reach a newer request).
    next_uid: AtomicU64,
}

/// Seconds since the process started: a cheap clock for idleness.
pub fn clock() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_secs()
}

impl UpstreamShared {
    /// State for a connection to server `server`; `owner` is the session of a per-client upstream.
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
            next_uid: AtomicU64::new(1),
        }
    }

    /// Is it down and waiting to retry? (Neither ready nor starting.)
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// A fresh request id on this upstream.
    pub fn next_uid(&self) -> u64 {
        self.next_uid.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the connection as used now.
    pub fn touch(&self) {
        self.last_used.store(clock(), Ordering::Relaxed);
    }

    /// Seconds since a session last used the connection.
    pub fn idle_secs(&self) -> u64 {
        clock().saturating_sub(self.last_used.load(Ordering::Relaxed))
    }
}

/// The router's end of an upstream actor: its mailbox and its shared state.
#[derive(Clone)]
pub struct UpstreamHandle {
    tx: mpsc::Sender<Cmd>,
    /// What the router may read without asking the actor.
    pub shared: Arc<UpstreamShared>,
}

impl UpstreamHandle {
    /// A fresh request id on this upstream, for a call about to be sent (the session records
    /// it, so a cancellation names it).
    pub fn next_uid(&self) -> u64 {
        self.shared.next_uid()
    }

    /// Queue a command; `Err` when the mailbox is full (the upstream is overloaded) or gone.
    pub fn send(&self, cmd: Cmd) -> Result<(), Cmd> {
        self.tx.try_send(cmd).map_err(|e| match e {
            mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => c,
        })
    }

    /// A request the router makes itself; waits for the result (or why there is none).
    pub async fn internal(&self, method: &'static str, params: Option<Bytes>) -> InternalResult {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Internal {
                method,
                params,
                reply,
                key: None,
            })
            .await
            .map_err(|_| {
                UpstreamError::unavailable(
                    &self.shared.name,
                    code::UPSTREAM_UNAVAILABLE,
                    "shut down",
                )
            })?;
        rx.await.map_err(|_| {
            UpstreamError::unavailable(&self.shared.name, code::UPSTREAM_UNAVAILABLE, "went away")
        })?
    }

    /// Queue a request the router makes itself, cancellable by `key` with
    /// [`UpstreamHandle::cancel_internal`]; its result (or error text) arrives on the receiver,
    /// and a cancelled one's sender is dropped. Queued at once, so calls keep their order.
    pub fn start_internal(
        &self,
        method: &'static str,
        params: Option<Bytes>,
        key: Bytes,
    ) -> Result<oneshot::Receiver<InternalResult>, UpstreamError> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Internal {
            method,
            params,
            reply,
            key: Some(key),
        })
        .map_err(|_| {
            UpstreamError::unavailable(
                &self.shared.name,
                code::OVERLOADED,
                "overloaded or shut down",
            )
        })?;
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

    /// Is it known to be a handshake-era server (`false` before its handshake)?
    pub fn is_legacy(&self) -> bool {
        self.shared
            .info
            .load()
            .as_ref()
            .is_some_and(|i| !i.is_modern())
    }

    /// Cancel the router's own request started with `key` (no-op if it already ended).
    pub fn cancel_internal(&self, key: Bytes) {
        let _ = self.send(Cmd::CancelInternal { key });
    }

    /// Whether the actor has ended.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Ask the actor to stop its server, and wait (bounded) until it has.
    pub async fn shutdown(&self, wait: std::time::Duration) {
        if self.tx.send(Cmd::Shutdown).await.is_ok() {
            let _ = tokio::time::timeout(wait, self.tx.closed()).await;
        }
    }

    /// The server's cached list for `method`, while it may still be used.
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

/// A handle and the mailbox its actor reads, `cap` commands deep.
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An actor's mailbox, fed from several shards' threads at once, wakes the actor once per
    /// batch: once it is asleep, the first command wakes it and the rest find it already woken.
    #[test]
    fn a_mailbox_wakes_its_actor_once_per_batch() {
        let (handle, mut rx) = channel(UpstreamShared::new(0, "s".into(), None), 1024);
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        for round in 1..=3 {
            assert!(rx.poll_recv(&mut cx).is_pending(), "the actor sleeps");
            let senders: Vec<_> = (0..4)
                .map(|t| {
                    let h = handle.clone();
                    std::thread::spawn(move || {
                        for i in 0..50 {
                            let cmd = Cmd::Reply(Bytes::from(format!("{t}-{i}")));
                            assert!(h.send(cmd).is_ok(), "room in the mailbox");
                        }
                    })
                })
                .collect();
            for s in senders {
                assert!(s.join().is_ok());
            }
            assert_eq!(
                wakes.0.load(Ordering::Relaxed),
                round,
                "one wake for 200 commands"
            );
            let mut got = 0;
            while let std::task::Poll::Ready(Some(_)) = rx.poll_recv(&mut cx) {
                got += 1;
            }
            assert_eq!(got, 200);
        }
    }
}
