//! Resource subscriptions of handshake-era sessions: forwarded once per server and URI,
//! replayed after a restart, and dropped with the last subscriber.

use super::*;

impl Router {
    pub(super) async fn subscribe(
        self: &Arc<Self>,
        session: &Arc<Session>,
        env: &Envelope,
    ) -> Result<(), RouteError> {
        let params = env
            .params_str()
            .ok_or_else(|| RouteError::new(code::INVALID_PARAMS, "params are required"))?;
        let peek =
            ParamsPeek::parse(params).map_err(|e| RouteError::new(code::INVALID_PARAMS, e))?;
        let uri = peek
            .uri
            .and_then(raw_str)
            .ok_or_else(|| RouteError::new(code::INVALID_PARAMS, "params.uri is required"))?
            .into_owned();
        let routes = session.state().routes.clone();
        let idx = self.resolve_uri(&routes, &uri).ok_or_else(|| {
            RouteError::new(
                code::RESOURCE_NOT_FOUND,
                format!("resource not found: {uri}"),
            )
        })?;
        self.subscribe_uri(session, idx, &uri, env.method == Method::ResourcesSubscribe)
            .await
    }

    /// Count `session` in (or out of) the subscribers of `uri` on server `idx`; the upstream
    /// hears of it on the first subscriber and the last leaving (a per-client one, always).
    pub(super) async fn subscribe_uri(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        uri: &str,
        subscribe: bool,
    ) -> Result<(), RouteError> {
        let key = (idx, uri.to_string());
        let first_or_last = {
            let mut subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
            let set = subs.entry(key.clone()).or_default();
            set.retain(|_, w| w.strong_count() > 0);
            let before = set.len();
            if subscribe {
                let router = Arc::downgrade(self);
                session.on_drop_with_subscriptions(|| {
                    // Later, on the runtime: a drop can happen anywhere, locks held.
                    Box::new(move |key, subs| {
                        let (Some(router), Ok(rt)) =
                            (router.upgrade(), tokio::runtime::Handle::try_current())
                        else {
                            return;
                        };
                        rt.spawn(async move { router.forget_subscriber(key, subs) });
                    })
                });
                set.insert(session.key, Arc::downgrade(session));
                session.state().subscriptions.insert(key.clone());
            } else {
                set.remove(&session.key);
                session.state().subscriptions.remove(&key);
            }
            let after = set.len();
            if after == 0 {
                subs.remove(&key);
            }
            (before == 0 && after == 1) || (before >= 1 && after == 0)
        };
        let handle = self.instance(idx, session)?;
        if handle.is_modern() {
            if !first_or_last {
                return Ok(());
            }
            let acked = self.relisten_resources(idx);
            // A subscriber is answered once the server listens for what it was granted.
            return match acked {
                None if !subscribe => Ok(()),
                None => Err(RouteError::new(
                    code::INTERNAL_ERROR,
                    "the server's listen stream could not be opened",
                )),
                Some(acked) => {
                    let limit = self.servers[idx].config.request_timeout;
                    match tokio::time::timeout(limit, acked).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(_)) => Err(RouteError::new(
                            code::INTERNAL_ERROR,
                            "the server ended the listen stream for this subscription",
                        )),
                        Err(_) => Err(RouteError::new(
                            code::UPSTREAM_TIMEOUT,
                            "the server did not acknowledge the subscription in time",
                        )),
                    }
                }
            };
        }
        if first_or_last || handle.shared.owner.is_some() {
            let method = if subscribe {
                "resources/subscribe"
            } else {
                "resources/unsubscribe"
            };
            handle.internal(method, Some(uri_params(uri))).await?;
        }
        Ok(())
    }

    /// A session that was still subscribed to `subs` is gone: take it out of their
    /// subscribers, and stop what nobody is subscribed to any more upstream (a handshake-era
    /// server is told `resources/unsubscribe`; a 2026 one's listen stream is narrowed). A
    /// per-client server went with its session.
    pub(super) fn forget_subscriber(self: &Arc<Self>, key: u64, subs: Vec<(usize, String)>) {
        let emptied: Vec<(usize, String)> = {
            let mut all = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
            subs.into_iter()
                .filter(|k| {
                    let Some(set) = all.get_mut(k) else {
                        return false;
                    };
                    set.remove(&key);
                    set.retain(|_, w| w.strong_count() > 0);
                    let empty = set.is_empty();
                    if empty {
                        all.remove(k);
                    }
                    empty
                })
                .collect()
        };
        let mut relisten = std::collections::BTreeSet::new();
        for (idx, uri) in emptied {
            let instances = &self.servers[idx].instances;
            let Some(first) = instances.first() else {
                continue;
            };
            if first.is_modern() {
                relisten.insert(idx);
                continue;
            }
            let params = uri_params(&uri);
            for h in instances.iter().cloned() {
                let params = params.clone();
                tokio::spawn(async move {
                    if let Err(e) = h.internal("resources/unsubscribe", Some(params)).await {
                        tracing::debug!(server = %h.shared.name, "unsubscribe failed: {e}");
                    }
                });
            }
        }
        for idx in relisten {
            self.relisten_resources(idx);
        }
    }

    /// Point the router's resource listen on 2026 server `idx` at the URIs its clients are
    /// subscribed to now; completes when the server acknowledges it (`None`: nothing to
    /// listen for, or it could not be sent).
    pub(super) fn relisten_resources(
        &self,
        idx: usize,
    ) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let handle = self.servers[idx].instances.first()?;
        self.resource_listens.relisten(handle, idx, || {
            let subs = self.subscriptions.lock().unwrap_or_else(|e| e.into_inner());
            let mut uris: Vec<String> = subs
                .iter()
                .filter(|((server, _), who)| {
                    *server == idx && who.values().any(|w| w.strong_count() > 0)
                })
                .map(|((_, uri), _)| uri.clone())
                .collect();
            uris.sort();
            uris
        })
    }
}

pub(super) fn subscribe_frame(id: &str, uri: &str) -> Bytes {
    json::message(
        Some(json::json_string(id).as_ref()),
        "resources/subscribe",
        Some(&uri_params(uri)),
    )
}

/// `{"uri":URI}`: the params of resources/subscribe, unsubscribe and updated.
pub(super) fn uri_params(uri: &str) -> Bytes {
    let quoted = json::json_string(uri);
    let mut out = Vec::with_capacity(quoted.len() + 8);
    out.extend_from_slice(b"{\"uri\":");
    out.extend_from_slice(&quoted);
    out.push(b'}');
    Bytes::from(out)
}

/// Can clients subscribe to this upstream's resources? It must offer `resources.subscribe`;
/// a 2026-07-28 one is listened to by the router for every client, so it must be shared.
pub(super) fn subscribable(h: &UpstreamHandle) -> bool {
    h.shared.info.load().as_ref().is_some_and(|info| {
        info.declares("resources", "subscribe") && !(info.is_modern() && h.shared.owner.is_some())
    })
}
