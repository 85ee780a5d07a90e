//! The upstream connections: shared ones started with the router, per-client ones on a
//! session's first use; waiting for handshakes, replay after a restart, reaping, shutdown.

use super::*;

impl Router {
    /// The upstream connection that serves `session` for server `idx` (created on first use
    /// for per-client servers).
    pub fn instance(
        self: &Arc<Self>,
        idx: usize,
        session: &Arc<Session>,
    ) -> Result<UpstreamHandle, RouteError> {
        let server = self
            .servers
            .get(idx)
            .ok_or_else(|| RouteError::new(code::INTERNAL_ERROR, "no such server"))?;
        if server.instances.is_empty() && session.era() == Era::Modern {
            // A per-client upstream lives as long as a session; 2026-07-28 requests have none.
            return Err(RouteError::new(
                code::WRONG_ERA,
                format!(
                    "server {} is per-client, which 2026-07-28 requests cannot use yet",
                    server.config.name
                ),
            ));
        }
        if !server.instances.is_empty() {
            // The instances on the session's own shard k (k, k + shards, ...), where it has
            // any: its calls then never leave that thread. Fixed per session, so its
            // upstream state stays put.
            let (key, n, shards) = (session.key as usize, server.instances.len(), server.shards);
            let i = match session.home.filter(|&k| k < shards && k < n) {
                Some(k) => k + shards * (key % (n - k).div_ceil(shards)),
                None => key % n,
            };
            return Ok(server.instances[i].clone());
        }
        let mut st = session.state();
        if let Some(h) = st.upstreams.get(&idx).filter(|h| !h.is_closed()) {
            h.shared.touch();
            return Ok(h.clone());
        }
        if server.per_client.load(Ordering::Relaxed) >= server.config.max_clients {
            return Err(RouteError::new(
                code::LIMIT_REACHED,
                format!("server {} has reached its max_clients", server.config.name),
            ));
        }
        let h = spawn_upstream(
            &Arc::downgrade(self),
            &self.config,
            idx,
            &server.config,
            Placement {
                instance: 0,
                on: None,
            },
            Some((session, server.per_client.clone())),
            self.events(),
        );
        st.upstreams.insert(idx, h.clone());
        Ok(h)
    }

    /// Wait (up to the list timeout) until the upstreams serving `session` that are starting
    /// have finished their handshakes, so that capabilities are known. An upstream that is
    /// down is not waited for: one dead server must not slow every new session.
    pub async fn wait_ready(self: &Arc<Self>, session: &Arc<Session>) {
        let deadline = tokio::time::Instant::now() + self.config.limits.list_timeout;
        for idx in 0..self.servers.len() {
            let Ok(h) = self.instance(idx, session) else {
                continue;
            };
            while h.shared.info.load().is_none()
                && !h.shared.is_down()
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Stop: close every session, then stop every upstream (children get stdin closed, then
    /// are killed if they linger) and wait for them.
    pub async fn shutdown(&self) {
        let mut handles: Vec<UpstreamHandle> = self
            .servers
            .iter()
            .flat_map(|s| s.instances.iter().cloned())
            .collect();
        for s in self.sessions.all() {
            handles.extend(s.state().upstreams.values().cloned());
            self.sessions.remove(&s.id);
            s.close();
        }
        let waits = handles.iter().map(|h| h.shutdown(Duration::from_secs(5)));
        for w in waits {
            w.await;
        }
    }

    /// Close and forget sessions idle for longer than the limit, and stop per-client
    /// upstreams idle past their server's `idle_timeout` (with nothing in flight or
    /// subscribed; the next use starts a fresh one).
    pub fn reap_idle(&self) {
        let limit = self.config.limits.session_idle_timeout.as_secs();
        for s in self.sessions.all() {
            if s.idle_secs() > limit {
                tracing::info!(session = %s.id, "idle session closed");
                self.sessions.remove(&s.id);
                s.close();
                continue;
            }
            let idle: Vec<UpstreamHandle> = {
                let mut st = s.state();
                let busy = |h: &UpstreamHandle| {
                    st.in_flight
                        .values()
                        .any(|f| Arc::ptr_eq(&f.upstream.shared, &h.shared))
                        || st.subscriptions.iter().any(|(i, _)| *i == h.shared.server)
                };
                let stale: Vec<usize> = st
                    .upstreams
                    .iter()
                    .filter(|(idx, h)| {
                        h.shared.idle_secs() > self.servers[**idx].config.idle_timeout.as_secs()
                            && !busy(h)
                    })
                    .map(|(idx, _)| *idx)
                    .collect();
                stale
                    .into_iter()
                    .filter_map(|idx| st.upstreams.remove(&idx))
                    .collect()
            };
            for h in idle {
                tracing::info!(session = %s.id, server = %h.shared.name, "idle per-client upstream stopped");
                tokio::spawn(async move { h.shutdown(Duration::from_secs(5)).await });
            }
        }
    }

    /// How often [`Router::reap_idle`] should run: often enough for the shortest idle limit.
    pub fn reap_interval(&self) -> Duration {
        let shortest = self
            .servers
            .iter()
            .filter(|s| s.instances.is_empty())
            .map(|s| s.config.idle_timeout)
            .chain([self.config.limits.session_idle_timeout])
            .min()
            .unwrap_or(Duration::from_secs(60));
        (shortest / 2).clamp(Duration::from_millis(500), Duration::from_secs(30))
    }

    /// Frames to replay to a (re)started shared upstream: subscriptions and the log level.
    pub(super) fn replay_frames(&self, idx: usize) -> Vec<Bytes> {
        let subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Bytes> = subs
            .keys()
            .filter(|(s, _)| *s == idx)
            .enumerate()
            .map(|(n, (_, uri))| subscribe_frame(&format!("sy-replay-{n}"), uri))
            .collect();
        drop(subs);
        out.extend(self.wanted_log_level(idx).map(set_level_frame));
        out
    }
}

/// Which member of its server's pool an upstream is, and the shard its actor runs on (`None`:
/// where it is spawned from; a per-client upstream runs where its session's first call is).
pub(super) struct Placement<'a> {
    pub(super) instance: usize,
    pub(super) on: Option<&'a tokio::runtime::Handle>,
}

/// Start one upstream connection for server `idx`: shared by every session (`owner` is
/// `None`), or serving one session, whose server-wide count of live per-client upstreams it
/// holds a place in until its actor ends.
pub(super) fn spawn_upstream(
    router: &Weak<Router>,
    config: &Config,
    idx: usize,
    sc: &ServerConfig,
    at: Placement<'_>,
    owner: Option<(&Arc<Session>, Arc<AtomicUsize>)>,
    events: Arc<dyn UpstreamEvents>,
) -> UpstreamHandle {
    let Placement { instance, on } = at;
    let name = if sc.pool > 1 {
        format!("{}#{instance}", sc.name)
    } else {
        sc.name.clone()
    };
    let session = owner.as_ref().map(|(s, _)| Arc::downgrade(s));
    let shared = UpstreamShared::new(idx, name, session.clone());
    let (handle, rx) = upstream::channel(shared, UPSTREAM_MAILBOX);
    // A per-client upstream declares its client's own capabilities; a shared one only what
    // the configuration opts into, since it cannot speak for every client.
    let client_capabilities = match &owner {
        Some((s, _)) => s.caps().json(),
        None => Bytes::from(sc.shared_client_capabilities.clone()),
    };
    // After a restart the server gets back what its clients had set up: for a shared server
    // everyone's subscriptions, for a per-client one only its own session's.
    let weak = router.clone();
    let replay: Arc<dyn Fn() -> Vec<Bytes> + Send + Sync> = Arc::new(move || match &session {
        None => weak
            .upgrade()
            .map(|r| r.replay_frames(idx))
            .unwrap_or_default(),
        Some(s) => s
            .upgrade()
            .map(|s| session_replay_frames(&s, idx))
            .unwrap_or_default(),
    });
    let live = owner.map(|(_, count)| {
        count.fetch_add(1, Ordering::Relaxed);
        count
    });
    let parts = upstream::ActorParts {
        config: sc.clone(),
        handle: handle.clone(),
        rx,
        events,
        max_frame: config.limits.max_frame_bytes.max(64 * 1024 * 1024),
        client_capabilities,
        replay,
    };
    let run: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match &sc.transport {
        Transport::Stdio { .. } => Box::pin(
            StdioActor {
                parts,
                modern: false,
            }
            .run(),
        ),
        Transport::Http { .. } => Box::pin(crate::upstream::http::HttpActor { parts }.run()),
    };
    let actor = async move {
        run.await;
        if let Some(live) = live {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    };
    // On its shard, or (a per-client upstream) where its session's first call is served.
    match on {
        Some(shard) => drop(shard.spawn(actor)),
        None => drop(tokio::spawn(actor)),
    }
    handle
}

/// What a restarted per-client upstream gets back: its session's subscriptions and level.
pub(super) fn session_replay_frames(session: &Session, idx: usize) -> Vec<Bytes> {
    let st = session.state();
    let mut out: Vec<Bytes> = st
        .subscriptions
        .iter()
        .filter(|(s, _)| *s == idx)
        .enumerate()
        .map(|(n, (_, uri))| subscribe_frame(&format!("sy-replay-{n}"), uri))
        .collect();
    out.extend(st.log_level.map(set_level_frame));
    out
}
