//! Log levels: each session's own, and the lowest any session wants pushed to a shared upstream.

use super::*;

impl Router {
    /// The log level to ask of server `idx`: the lowest any of its clients asked for.
    pub(super) fn wanted_log_level(&self, idx: usize) -> Option<u8> {
        let shared = !self.servers[idx].instances.is_empty();
        self.sessions
            .all()
            .iter()
            .filter(|s| shared || s.state().upstreams.contains_key(&idx))
            .filter_map(|s| s.state().log_level)
            .min()
    }

    /// Tell the upstreams `session` reaches the log level they should now use (a shared one:
    /// the lowest any of its sessions wants). The returned future completes when they have
    /// answered, or after the list timeout.
    pub(super) fn push_log_level(
        self: &Arc<Self>,
        session: &Arc<Session>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut pushes = Vec::new();
        for idx in 0..self.servers.len() {
            let Ok(h) = self.instance(idx, session) else {
                continue;
            };
            if !h
                .shared
                .info
                .load()
                .as_ref()
                .is_some_and(|i| i.has("logging") && !i.is_modern())
            {
                // (A 2026 upstream has no setLevel: it is told the level with each call.)
                continue;
            }
            let level = if h.shared.owner.is_some() {
                session.state().log_level
            } else {
                self.wanted_log_level(idx)
            };
            if let Some(level) = level {
                let params = format!("{{\"level\":\"{}\"}}", LOG_LEVELS[level as usize]);
                pushes.push(tokio::spawn(async move {
                    if let Err(e) = h
                        .internal("logging/setLevel", Some(Bytes::from(params)))
                        .await
                    {
                        tracing::debug!("setLevel upstream failed: {e}");
                    }
                }));
            }
        }
        let limit = self.config.limits.list_timeout;
        async move {
            let _ = tokio::time::timeout(limit, async {
                for push in pushes {
                    let _ = push.await;
                }
            })
            .await;
        }
    }
}

pub(super) fn set_level_frame(level: u8) -> Bytes {
    let params = format!("{{\"level\":\"{}\"}}", LOG_LEVELS[level as usize]);
    json::message(
        Some(b"\"sy-replay-level\""),
        "logging/setLevel",
        Some(params.as_bytes()),
    )
}
