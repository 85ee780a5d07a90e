//! What upstreams tell the router unasked: list changes, resource updates, requests to
//! park, acknowledged listens, and a connection ready.

use super::*;

/// The router's side of upstream events, held weakly by the actors.
pub(super) struct Events(pub(super) Weak<Router>);

impl UpstreamEvents for Events {
    fn unsolicited(&self, from: &UpstreamHandle, env: &Envelope) {
        let Some(router) = self.0.upgrade() else {
            return;
        };
        let server = from.shared.server;
        let list = match env.method {
            Method::ToolsListChanged => Some(("tools/list", listen::ListKind::Tools)),
            Method::PromptsListChanged => Some(("prompts/list", listen::ListKind::Prompts)),
            Method::ResourcesListChanged => Some(("resources/list", listen::ListKind::Resources)),
            _ => None,
        };
        if let Some((list, kind)) = list {
            if list == "tools/list" && from.is_modern() {
                // Its tools' Mcp-Param headers may have changed with them.
                let handle = from.clone();
                tokio::spawn(async move { catalogue::learn_param_headers(&handle).await });
            }
            // Drop the stale cache, then tell the clients that see this server: handshake-era
            // sessions with a plain notification (a 2026 upstream's carries its listen id,
            // which is ours), 2026 listen streams with their own ids.
            let targets = match from.shared.owner.as_ref().and_then(Weak::upgrade) {
                Some(owner) => {
                    from.invalidate_lists(Some(list));
                    vec![owner]
                }
                None => {
                    router.servers[server]
                        .instances
                        .iter()
                        .for_each(|h| h.invalidate_lists(Some(list)));
                    router.listeners.list_changed(kind);
                    router.sessions.all()
                }
            };
            let frame = json::message(None, env.method.name(), None);
            for s in targets {
                s.send(&s.unsolicited, frame.clone());
            }
            return;
        }
        if env.method == Method::ResourceUpdated {
            let uri = env.peek().uri.and_then(raw_str).map(|u| u.into_owned());
            let Some(uri) = uri else { return };
            for h in &router.servers[server].instances {
                h.shared.reads.forget(&uri);
            }
            router.listeners.resource_updated(server, &uri);
            // A 2026 upstream's carries our listen's id in `_meta`: handshake-era sessions
            // get the plain notification.
            let modern = from.is_modern();
            let frame = if modern {
                json::message(None, env.method.name(), Some(&uri_params(&uri)))
            } else {
                env.frame.clone()
            };
            let targets: Vec<Arc<Session>> = {
                let subs = router
                    .subscriptions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                subs.get(&(server, uri))
                    .map(|m| m.values().filter_map(Weak::upgrade).collect())
                    .unwrap_or_default()
            };
            for s in targets {
                s.send(&s.unsolicited, frame.clone());
            }
            return;
        }
        tracing::debug!(
            server,
            method = env.method.name(),
            "unsolicited upstream notification dropped"
        );
    }

    fn park(&self, from: &UpstreamHandle, uid: u64, origin: &Origin, request: &Envelope) -> bool {
        let Some(router) = self.0.upgrade() else {
            return false;
        };
        if !origin.session.caps().allows(&request.method) {
            return false;
        }
        let Some(request_id) = request.id_bytes() else {
            return false;
        };
        let lifetime = router.servers[from.shared.server].config.request_timeout;
        let Some(state) = router.parked.park(from.clone(), uid, request_id, lifetime) else {
            return false;
        };
        let method = json::json_string(request.method.name());
        let result = format!(
            r#"{{"resultType":"input_required","inputRequests":{{"{}":{{"method":{},"params":{}}}}},"requestState":"{state}"}}"#,
            park::INPUT_KEY,
            String::from_utf8_lossy(&method),
            request.params_str().unwrap_or("{}"),
        );
        origin.session.end(&origin.client_id, uid);
        origin.session.finish(
            &origin.sink,
            json::result(&origin.client_id, result.as_bytes()),
        );
        true
    }

    fn listen_acknowledged(&self, from: &UpstreamHandle, key: &Bytes) {
        if let Some(router) = self.0.upgrade() {
            router.resource_listens.acknowledged(from, key);
        }
    }

    fn ready(&self, from: &UpstreamHandle) {
        let Some(router) = self.0.upgrade() else {
            return;
        };
        for h in &router.servers[from.shared.server].instances {
            h.invalidate_lists(None);
        }
        // A 2026 upstream announces list changes only on a listen stream: open one for the
        // lists it says can change. It lasts until the connection ends.
        let Some(info) = from.shared.info.load_full() else {
            return;
        };
        if !info.is_modern() || from.shared.owner.is_some() {
            return;
        }
        // Its resource subscriptions ended with the old connection: listen for them again.
        let server = from.shared.server;
        if router.servers[server]
            .instances
            .first()
            .is_some_and(|h| Arc::ptr_eq(&h.shared, &from.shared))
        {
            router.relisten_resources(server);
        }
        let changes = |cap: &str| info.declares(cap, "listChanged");
        let filter = listen::Filter {
            tools: changes("tools"),
            prompts: changes("prompts"),
            resources: changes("resources"),
            uris: Vec::new(),
        };
        if !(filter.tools || filter.prompts || filter.resources) {
            return;
        }
        let params = Bytes::from(format!("{{\"notifications\":{}}}", filter.to_json()));
        let handle = from.clone();
        tokio::spawn(async move {
            let end = handle.internal("subscriptions/listen", Some(params)).await;
            tracing::debug!(server = %handle.shared.name, ?end, "upstream listen stream ended");
        });
    }
}
