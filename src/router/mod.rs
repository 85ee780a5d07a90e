//! The router: takes each client message of a session and sends it where it belongs.
//!
//! Calls go straight to one upstream's mailbox (no task, no lock beyond the session's own);
//! lists are merged from the upstreams' cached lists; the router answers `ping`,
//! `logging/setLevel` and `initialize` itself.
//!
//! This file dispatches a session's messages and serves 2026-07-28 requests; its parts:
//! `resolve` (which server and name a call goes to), `call` (a resolved call on its way to
//! the pipeline), `pipeline` (the stages every call and its replies pass, and the only way
//! to an upstream actor), `catalogue` (merged lists), `subscriptions` and `resource_listen` (resource
//! updates), `listen` (2026 listen streams), `log_level`, `bridge` and `park` (multi
//! round-trip requests across eras), `upstreams` (the connections: start, reap, shut down)
//! and `events` (what upstreams say unasked).

mod bridge;
mod call;
mod catalogue;
mod error;
mod events;
mod listen;
mod log_level;
mod park;
mod pipeline;
mod resolve;
mod resource_listen;
mod subscriptions;
mod upstreams;

use call::*;
use events::Events;
use log_level::*;
use pipeline::{Action, Resolved};
pub use pipeline::{CallRoute, CallStage, CallView, Decision, Pipeline};
use resolve::*;
use subscriptions::*;
use upstreams::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::config::{Config, ServerConfig, Sharing, Transport};
use crate::protocol::modern::{self, Refusal, RequestMeta};
use crate::protocol::{log_level_rank, Era, IMPLEMENTATION, LOG_LEVELS};
use crate::session::{ReplyStream, Route, Sink};
use crate::upstream::stdio::StdioActor;
use crate::upstream::{
    self, Call, CallEdits, Cmd, NameEdit, Origin, UpstreamEvents, UpstreamHandle, UpstreamShared,
};
pub use crate::upstream::{Asker, Session, SessionStore};
use crate::wire::envelope::code;
use crate::wire::params::{raw_str, str_value, ParamsPeek, RefKind};
use crate::wire::rewrite::{splice, Edit};
use crate::wire::{json, Envelope, Kind, Method};
pub use error::{RouteError, Unlisted};

/// Mailbox size of each upstream actor.
const UPSTREAM_MAILBOX: usize = 4096;

/// A configured server and the upstream connections that serve it.
pub struct Server {
    /// Its configuration.
    pub config: ServerConfig,
    /// The shared connections (a pool); empty for per-client servers.
    pub instances: Vec<UpstreamHandle>,
    /// The worker shards its instances are spread over (instance `i` on shard `i % shards`;
    /// 0 when the router has none).
    shards: usize,
    /// Live per-client upstreams of this server (decremented when each actor ends).
    per_client: Arc<AtomicUsize>,
}

/// How a checked 2026-07-28 request is answered: at once (`server/discover`), or on a reply
/// stream of the request's own transient session.
pub enum Stateless {
    /// The whole response.
    Now(Bytes),
    /// Replies arrive on `stream`; the session completes each result for `method` (see [`Session::finish`]).
    Stream {
        /// The request's transient session.
        session: Arc<Session>,
        /// The stream its replies come on.
        stream: Arc<ReplyStream>,
        /// The request's method.
        method: Method,
    },
}

/// Sessions subscribed to one resource, by session key.
type Subscribers = HashMap<u64, Weak<Session>>;

/// Where each message goes: the servers, the sessions, the catalogue and the call pipeline.
pub struct Router {
    /// The configuration it was started with.
    pub config: Config,
    /// Every configured server, by index.
    pub servers: Vec<Server>,
    /// Live handshake-era sessions.
    pub sessions: SessionStore,
    /// (server, uri) -> subscribed sessions.
    subscriptions: Mutex<HashMap<(usize, String), Subscribers>>,
    /// Open 2026-07-28 listen streams.
    listeners: listen::Listeners,
    /// Handshake-era upstream calls waiting for a 2026 client's input.
    parked: park::ParkedCalls,
    /// The router's resource listen stream on each 2026 server.
    resource_listens: resource_listen::ResourceListens,
    /// The stages every call and its replies pass.
    pub pipeline: Pipeline,
}

/// A router-made error reply for a request.
pub fn error_reply(id: &[u8], code: i64, message: &str) -> Bytes {
    json::error(Some(id), code, message, None)
}

impl Router {
    /// Starts an actor for every shared upstream and returns the router that owns them.
    pub fn new(config: Config) -> Arc<Router> {
        Router::with_shards(config, Vec::new())
    }

    /// The same, with the shared upstreams' actors spread over worker shards: instance `i`
    /// of a pool runs on shard `i % shards.len()`, and a session is served by the instances
    /// on its own shard where there are any (see [`Router::instance`]).
    pub fn with_shards(config: Config, shards: Vec<tokio::runtime::Handle>) -> Arc<Router> {
        Arc::new_cyclic(|weak: &Weak<Router>| {
            let events: Arc<dyn UpstreamEvents> = Arc::new(Events(weak.clone()));
            let servers = config
                .servers
                .iter()
                .enumerate()
                .map(|(idx, sc)| {
                    let instances = match sc.sharing {
                        Sharing::Shared => (0..sc.pool)
                            .map(|i| {
                                let at = Placement {
                                    instance: i,
                                    on: (!shards.is_empty()).then(|| &shards[i % shards.len()]),
                                };
                                spawn_upstream(weak, &config, idx, sc, at, None, events.clone())
                            })
                            .collect(),
                        Sharing::PerClient => Vec::new(),
                    };
                    Server {
                        config: sc.clone(),
                        instances,
                        shards: shards.len(),
                        per_client: Arc::new(AtomicUsize::new(0)),
                    }
                })
                .collect();
            Router {
                sessions: SessionStore::new(config.limits.max_sessions),
                servers,
                subscriptions: Mutex::new(HashMap::new()),
                listeners: listen::Listeners::default(),
                parked: park::ParkedCalls::new(),
                resource_listens: Default::default(),
                pipeline: Pipeline::new(),
                config,
            }
        })
    }

    fn events(self: &Arc<Self>) -> Arc<dyn UpstreamEvents> {
        Arc::new(Events(Arc::downgrade(self)))
    }

    /// What the upstreams serving `session` offer, merged: the capabilities object (only what
    /// some upstream offers; 2026-07-28 sessions get no subscribe or listChanged, which that
    /// revision moved to `subscriptions/listen`) and the servers' instructions, each labelled.
    fn merged(self: &Arc<Self>, session: &Arc<Session>) -> (String, Option<String>) {
        let handles: Vec<UpstreamHandle> = (0..self.servers.len())
            .filter_map(|i| self.instance(i, session).ok())
            .collect();
        let infos: Vec<(&str, Arc<crate::upstream::UpstreamInfo>)> = handles
            .iter()
            .filter_map(|h| {
                let info = h.shared.info.load_full()?;
                Some((self.servers[h.shared.server].config.name.as_str(), info))
            })
            .collect();
        let any = |cap: &str| infos.iter().any(|(_, i)| i.has(cap));
        let mut caps = Vec::new();
        // List changes reach clients of both eras (2026 ones on their listen streams).
        for list in ["tools", "prompts"] {
            if any(list) {
                caps.push(format!(r#""{list}":{{"listChanged":true}}"#));
            }
        }
        if any("resources") {
            let subscribe = handles.iter().any(subscribable);
            caps.push(format!(
                r#""resources":{{"subscribe":{subscribe},"listChanged":true}}"#
            ));
        }
        for plain in ["logging", "completions"] {
            if any(plain) {
                caps.push(format!(r#""{plain}":{{}}"#));
            }
        }
        let instructions: Vec<String> = infos
            .iter()
            .filter_map(|(name, i)| i.instructions.as_ref().map(|t| format!("[{name}] {t}")))
            .collect();
        let instructions = (!instructions.is_empty()).then(|| {
            String::from_utf8_lossy(&json::json_string(&instructions.join("\n"))).into_owned()
        });
        (format!("{{{}}}", caps.join(",")), instructions)
    }

    /// The InitializeResult for a new session (after [`Router::wait_ready`]).
    pub fn initialize_result(self: &Arc<Self>, session: &Arc<Session>) -> Bytes {
        let (caps, instructions) = self.merged(session);
        let mut out = format!(
            r#"{{"protocolVersion":"{}","capabilities":{caps},"serverInfo":{IMPLEMENTATION}"#,
            session.era().version(),
        );
        if let Some(i) = instructions {
            out.push_str(",\"instructions\":");
            out.push_str(&i);
        }
        out.push('}');
        Bytes::from(out)
    }

    /// The DiscoverResult for a 2026-07-28 client: every revision served, the merged
    /// capabilities, and cache hints (not cached: what is offered can change at any time).
    pub fn discover_result(self: &Arc<Self>, session: &Arc<Session>) -> Bytes {
        let (caps, instructions) = self.merged(session);
        let versions =
            serde_json::to_string(&crate::protocol::modern::SUPPORTED).unwrap_or_default();
        let mut out = format!(
            r#"{{"supportedVersions":{versions},"capabilities":{caps},"serverInfo":{IMPLEMENTATION}"#
        );
        if let Some(i) = instructions {
            out.push_str(",\"instructions\":");
            out.push_str(&i);
        }
        out.push_str(&format!(
            r#","_meta":{{"io.modelcontextprotocol/serverInfo":{IMPLEMENTATION}}}"#
        ));
        out.push_str(r#","resultType":"complete","ttlMs":0,"cacheScope":"private"}"#);
        Bytes::from(out)
    }

    /// Serve a 2026-07-28 request whose `_meta` (and, over HTTP, headers) were checked; a
    /// method that revision removed is refused (404 with -32601). Shared by both fronts.
    pub async fn stateless(
        self: &Arc<Self>,
        env: Envelope,
        meta: RequestMeta,
    ) -> Result<Stateless, Refusal> {
        if !modern::is_modern_method(&env.method) {
            return Err(modern::refuse(
                404,
                code::METHOD_NOT_FOUND,
                format!("method not found in 2026-07-28: {}", env.method.name()),
            ));
        }
        let method = env.method.clone();
        let retry = meta.may_be_retry();
        let session = Session::for_request(
            method.clone(),
            meta,
            &env.frame,
            self.config.limits.replay_events,
        );
        if method == Method::ServerDiscover {
            let id = env.id_bytes().unwrap_or_default();
            self.wait_ready(&session).await;
            return Ok(Stateless::Now(json::result(
                &id,
                &self.discover_result(&session),
            )));
        }
        let stream = session.new_stream();
        if retry
            && bridge::may_need_input(&method)
            && self.resume_parked(&session, &env, &stream)?
        {
            return Ok(Stateless::Stream {
                session,
                stream,
                method,
            });
        }
        if method == Method::SubscriptionsListen {
            self.listen(&session, &env, Sink::Stream(stream.clone()))
                .await?;
        } else {
            self.handle(&session, env, Sink::Stream(stream.clone()));
        }
        Ok(Stateless::Stream {
            session,
            stream,
            method,
        })
    }

    /// A retry carrying Switchyard's own `requestState`: hand the client's answer to the
    /// parked upstream call and let its replies come to `stream`. False when the state (if
    /// any) is not ours, so the request goes on as usual.
    fn resume_parked(
        self: &Arc<Self>,
        session: &Arc<Session>,
        env: &Envelope,
        stream: &Arc<ReplyStream>,
    ) -> Result<bool, Refusal> {
        if crate::finder!(park::STATE_PREFIX.as_bytes())
            .find(&env.frame)
            .is_none()
        {
            return Ok(false);
        }
        #[derive(serde::Deserialize)]
        struct Retry<'a> {
            #[serde(borrow, default, rename = "requestState")]
            state: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default, rename = "inputResponses")]
            responses: Option<HashMap<std::borrow::Cow<'a, str>, &'a RawValue>>,
        }
        let bad = |m: &str| modern::refuse(400, code::INVALID_PARAMS, m);
        let retry: Retry<'_> = match env.params_str().map(serde_json::from_str) {
            Some(Ok(r)) => r,
            _ => return Ok(false),
        };
        let Some(state) = retry.state else {
            return Ok(false);
        };
        if !state.starts_with(park::STATE_PREFIX) {
            return Ok(false);
        }
        let Some(answer) = retry
            .responses
            .as_ref()
            .and_then(|r| r.get(park::INPUT_KEY))
        else {
            return Err(bad(&format!(
                "inputResponses.{} is required to resume this call",
                park::INPUT_KEY
            )));
        };
        let parked = match self.parked.take(&state) {
            park::State::Parked(p) => p,
            park::State::Invalid(why) => return Err(bad(why)),
            park::State::NotOurs => return Ok(false),
        };
        let (server, handle) = (parked.handle.shared.server, parked.handle.clone());
        let resume = Action::Resume {
            env: env.clone(),
            parked,
            answer: Bytes::copy_from_slice(answer.get().as_bytes()),
        };
        let sink = Sink::Stream(stream.clone());
        self.admit(Resolved::new(
            session,
            server,
            handle,
            sink,
            CallRoute::Resumed,
            resume,
        ));
        Ok(true)
    }

    /// Handle one message from a client session. Replies go to `sink`; this never waits on an
    /// upstream (work that must wait is spawned).
    pub fn handle(self: &Arc<Self>, session: &Arc<Session>, env: Envelope, sink: Sink) {
        session.touch();
        match env.kind {
            Kind::Request => self.request(session, env, sink),
            Kind::Notification => self.client_notification(session, env),
            Kind::Response | Kind::Error => self.client_reply(session, env),
        }
    }

    fn request(self: &Arc<Self>, session: &Arc<Session>, env: Envelope, sink: Sink) {
        let env = without_task(env);
        let id = env.id_bytes().unwrap_or_default();
        let reply = |msg: Bytes| {
            session.finish(&sink, msg);
        };
        match env.method {
            Method::Ping => reply(json::result(&id, b"{}")),
            Method::Initialize => reply(error_reply(
                &id,
                code::INVALID_REQUEST,
                "the session is already initialized",
            )),
            Method::ToolsCall
            | Method::PromptsGet
            | Method::ResourcesRead
            | Method::CompletionComplete => match self.resolve_call(session, &env) {
                Ok((idx, edits)) => self.forward(session, idx, env, edits, sink),
                Err(e)
                    if match e.unlisted {
                        Some(Unlisted::Uri) => true,
                        Some(Unlisted::Name) => self.has_unprefixed_server(),
                        None => false,
                    } =>
                {
                    // Not among what this session was shown (a 2026-07-28 request has no
                    // session memory at all): learn the catalogue, then try once more. (A
                    // name whose prefix is no server's can only belong to a server exposing
                    // its names unprefixed.)
                    let this = self.clone();
                    let session = session.clone();
                    tokio::spawn(async move {
                        for list in lists_naming(&env.method) {
                            this.merge(&session, &list).await;
                        }
                        match this.resolve_call(&session, &env) {
                            Ok((idx, edits)) => this.forward(&session, idx, env, edits, sink),
                            Err(e) => {
                                session.finish(&sink, e.reply(&id));
                            }
                        }
                    });
                }
                Err(e) => reply(e.reply(&id)),
            },
            Method::ToolsList
            | Method::PromptsList
            | Method::ResourcesList
            | Method::ResourcesTemplatesList => {
                let this = self.clone();
                let session = session.clone();
                tokio::spawn(async move {
                    let msg = match this.list(&session, &env).await {
                        Ok(result) => json::result(&id, &result),
                        Err(e) => e.reply(&id),
                    };
                    session.finish(&sink, msg);
                });
            }
            Method::ResourcesSubscribe | Method::ResourcesUnsubscribe => {
                let this = self.clone();
                let session = session.clone();
                tokio::spawn(async move {
                    let msg = match this.subscribe(&session, &env).await {
                        Ok(()) => json::result(&id, b"{}"),
                        Err(e) => e.reply(&id),
                    };
                    session.finish(&sink, msg);
                });
            }
            Method::LoggingSetLevel => {
                let level = env.peek().level.map(|l| l.into_owned());
                match level.as_deref().and_then(log_level_rank) {
                    Some(rank) => {
                        session.state().log_level = Some(rank);
                        // Answered once the upstreams have it: the level is in effect when the
                        // client hears so.
                        let pushed = self.push_log_level(session);
                        let (session, sink) = (session.clone(), sink.clone());
                        tokio::spawn(async move {
                            pushed.await;
                            session.finish(&sink, json::result(&id, b"{}"));
                        });
                    }
                    None => reply(error_reply(
                        &id,
                        code::INVALID_PARAMS,
                        "level must be one of the syslog levels",
                    )),
                }
            }
            _ => reply(error_reply(
                &id,
                code::METHOD_NOT_FOUND,
                &format!("method not found: {}", env.method.name()),
            )),
        }
    }

    fn client_notification(self: &Arc<Self>, session: &Arc<Session>, env: Envelope) {
        match env.method {
            Method::Cancelled => {
                let peek = env.peek();
                let Some(rid) = peek.request_id else { return };
                self.cancel(session, &Bytes::copy_from_slice(rid.get().as_bytes()), None);
            }
            Method::RootsListChanged => {
                let handles: Vec<_> = session.state().upstreams.values().cloned().collect();
                for h in handles {
                    let _ = h.send(Cmd::Notify(env.frame.clone()));
                }
            }
            _ => {} // initialized, and anything unknown: nothing to do
        }
    }

    /// Stop a client's request in flight: its upstream is told (`notifications/cancelled`,
    /// or a closed stream for a 2026 HTTP upstream) and its late replies are dropped. Every
    /// front cancels through here: a legacy client's notification, a 2026 client's closed
    /// stream or stdio notification.
    pub fn cancel(&self, session: &Session, client_id: &Bytes, reason: Option<&str>) {
        if let Some(f) = session.take_in_flight(client_id) {
            let reason = reason.map(Into::into);
            let _ = f.upstream.send(Cmd::Cancel { uid: f.uid, reason });
        }
    }

    /// A client's answer to a server-to-client request: back to the upstream under its own id.
    fn client_reply(self: &Arc<Self>, session: &Arc<Session>, env: Envelope) {
        let Some(range) = env.id.clone() else { return };
        let (handle, upstream_id) = match session.take_server_request(&env.frame[range.clone()]) {
            Some(Asker::Upstream(handle, upstream_id)) => (handle, upstream_id),
            Some(Asker::Router(reply)) => {
                let _ = reply.send(env.frame);
                return;
            }
            None => {
                tracing::debug!(session = %session.id, "client reply to an unknown id dropped");
                return;
            }
        };
        let frame = splice(
            &env.frame,
            &mut [Edit {
                range,
                with: &upstream_id,
            }],
        );
        let _ = handle.send(Cmd::Reply(frame));
    }
}

pub use catalogue::merged_list_result;
