//! 2026-07-28 `subscriptions/listen` (`2026-07-28/basic/patterns/subscriptions`): each
//! client's listen stream is fed from every upstream. Handshake-era upstreams announce list
//! changes on their own; 2026 upstreams are listened to by the router itself (one listen per
//! connection, opened when it becomes ready). Every notification a client gets carries its own
//! listen request's id as `subscriptionId`, never an upstream's.
//!
//! Notifications are rare, so listeners sit behind one plain mutex; nothing on the request
//! path touches it.

use std::sync::{Mutex, Weak};

use bytes::Bytes;
use serde::Deserialize;

use crate::session::Sink;
use crate::upstream::Session;

/// The list a `list_changed` notification is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl ListKind {
    fn notification(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources => "notifications/resources/list_changed",
        }
    }
}

/// What a client asked to hear about (`params.notifications`), and what it was granted.
#[derive(Deserialize, Default, Debug, Clone)]
pub struct Filter {
    #[serde(default, rename = "toolsListChanged")]
    pub tools: bool,
    #[serde(default, rename = "promptsListChanged")]
    pub prompts: bool,
    #[serde(default, rename = "resourcesListChanged")]
    pub resources: bool,
    /// Resource URIs to hear `notifications/resources/updated` for.
    #[serde(default, rename = "resourceSubscriptions")]
    pub uris: Vec<String>,
}

impl Filter {
    pub fn wants(&self, kind: ListKind) -> bool {
        match kind {
            ListKind::Tools => self.tools,
            ListKind::Prompts => self.prompts,
            ListKind::Resources => self.resources,
        }
    }

    /// The filter as the acknowledgement states it.
    pub fn to_json(&self) -> String {
        let mut parts = Vec::new();
        for (on, key) in [
            (self.tools, "toolsListChanged"),
            (self.prompts, "promptsListChanged"),
            (self.resources, "resourcesListChanged"),
        ] {
            if on {
                parts.push(format!("\"{key}\":true"));
            }
        }
        if !self.uris.is_empty() {
            parts.push(format!(
                "\"resourceSubscriptions\":{}",
                serde_json::to_string(&self.uris).unwrap_or_else(|_| "[]".into())
            ));
        }
        format!("{{{}}}", parts.join(","))
    }
}

struct Listener {
    /// The listen request's JSON-RPC id, raw: the subscription id.
    id: Bytes,
    filter: Filter,
    /// Granted resource subscriptions: (server, uri).
    uris: Vec<(usize, String)>,
    session: Weak<Session>,
    sink: Sink,
}

#[derive(Default)]
pub struct Listeners(Mutex<Vec<Listener>>);

/// `{"jsonrpc":"2.0","method":M,"params":{EXTRA"_meta":{"…/subscriptionId":ID}}}`.
fn tagged(method: &str, extra: &str, id: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(128 + extra.len() + id.len());
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":\"");
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b"\",\"params\":{");
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"\"_meta\":{\"io.modelcontextprotocol/subscriptionId\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b"}}}");
    Bytes::from(out)
}

impl Listeners {
    /// Open a listen stream: acknowledge `granted` on `sink`, then keep it for notifications
    /// until the session behind it is gone or stops reading.
    pub fn add(
        &self,
        id: Bytes,
        granted: Filter,
        uris: Vec<(usize, String)>,
        session: &std::sync::Arc<Session>,
        sink: Sink,
    ) {
        let ack = tagged(
            "notifications/subscriptions/acknowledged",
            &format!("\"notifications\":{},", granted.to_json()),
            &id,
        );
        if sink.send(ack).is_err() {
            return;
        }
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|l| l.session.strong_count() > 0);
        all.push(Listener {
            id,
            filter: granted,
            uris,
            session: std::sync::Arc::downgrade(session),
            sink,
        });
    }

    /// Send to every live listener `pick` chooses; drop the dead and the stuck.
    fn each(&self, pick: impl Fn(&Listener) -> Option<Bytes>) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|l| {
            if l.session.strong_count() == 0 {
                return false;
            }
            match pick(l) {
                Some(frame) => l.sink.send(frame).is_ok(),
                None => true,
            }
        });
    }

    pub fn list_changed(&self, kind: ListKind) {
        self.each(|l| {
            l.filter
                .wants(kind)
                .then(|| tagged(kind.notification(), "", &l.id))
        });
    }

    /// `notifications/resources/updated` for `uri` of server `server`.
    pub fn resource_updated(&self, server: usize, uri: &str) {
        let extra = format!(
            "\"uri\":{},",
            serde_json::to_string(uri).unwrap_or_else(|_| "\"\"".into())
        );
        self.each(|l| {
            l.uris
                .iter()
                .any(|(s, u)| *s == server && u == uri)
                .then(|| tagged("notifications/resources/updated", &extra, &l.id))
        });
    }
}

/// The router's side of a listen request.
mod open {
    use std::sync::Arc;

    use super::super::subscriptions::subscribable;
    use super::super::{Router, Sink};
    use super::*;
    use crate::protocol::modern::{self, Refusal};
    use crate::wire::envelope::code;
    use crate::wire::{Envelope, Method};

    impl Router {
        /// Open a 2026-07-28 listen stream on `sink`: grant what the upstreams can tell (list
        /// changes of any list they serve; subscriptions to resources of handshake-era upstreams
        /// that offer them), acknowledge it, and register the stream.
        pub(in crate::router) async fn listen(
            self: &Arc<Self>,
            session: &Arc<Session>,
            env: &Envelope,
            sink: Sink,
        ) -> Result<(), Refusal> {
            #[derive(serde::Deserialize, Default)]
            struct Params {
                #[serde(default)]
                notifications: Option<Filter>,
            }
            let bad = |m: &str| modern::refuse(400, code::INVALID_PARAMS, m);
            let params: Params = match env.params_str() {
                Some(p) => serde_json::from_str(p).map_err(|e| bad(&format!("bad params: {e}")))?,
                None => Params::default(),
            };
            let wanted = params
                .notifications
                .ok_or_else(|| bad("params.notifications is required"))?;
            self.wait_ready(session).await;
            let offers = |cap: &str| {
                (0..self.servers.len()).any(|i| {
                    self.instance(i, session)
                        .ok()
                        .and_then(|h| h.shared.info.load_full())
                        .is_some_and(|info| info.has(cap))
                })
            };
            let mut granted = Filter {
                tools: wanted.tools && offers("tools"),
                prompts: wanted.prompts && offers("prompts"),
                resources: wanted.resources && offers("resources"),
                uris: Vec::new(),
            };
            let mut uris = Vec::new();
            if !wanted.uris.is_empty() {
                self.merge(session, &Method::ResourcesList).await;
                self.merge(session, &Method::ResourcesTemplatesList).await;
                let routes = session.state().routes.clone();
                for uri in wanted.uris {
                    let Some(idx) = self.resolve_uri(&routes, &uri) else {
                        continue;
                    };
                    let can = self.instance(idx, session).is_ok_and(|h| subscribable(&h));
                    if can && self.subscribe_uri(session, idx, &uri, true).await.is_ok() {
                        granted.uris.push(uri.clone());
                        uris.push((idx, uri));
                    }
                }
            }
            let id = env.id_bytes().unwrap_or_default();
            self.listeners.add(id, granted, uris, session, sink);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_carry_the_listen_id() {
        let f = tagged("notifications/tools/list_changed", "", b"\"listen-7\"");
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            "listen-7"
        );
        let f = tagged(
            "notifications/resources/updated",
            "\"uri\":\"a://b\",",
            b"3",
        );
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["params"]["uri"], "a://b");
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
            3
        );
    }

    #[test]
    fn filter_round_trip() {
        let f: Filter = serde_json::from_str(
            r#"{"toolsListChanged":true,"promptsListChanged":false,"resourceSubscriptions":["x://1"]}"#,
        )
        .unwrap();
        assert!(f.wants(ListKind::Tools) && !f.wants(ListKind::Prompts));
        assert_eq!(
            f.to_json(),
            r#"{"toolsListChanged":true,"resourceSubscriptions":["x://1"]}"#
        );
    }
}
