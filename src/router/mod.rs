//! The router: takes each client message of a session and sends it where it belongs.
//!
//! Calls go straight to one upstream's mailbox (no task, no lock beyond the session's own);
//! lists are merged from the upstreams' cached lists; the router answers `ping`,
//! `logging/setLevel` and `initialize` itself.

mod bridge;
mod catalogue;
mod listen;
mod park;
mod resource_listen;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;

use crate::config::{Config, ServerConfig, Sharing, Transport};
use crate::protocol::modern::{self, Refusal, RequestMeta};
use crate::protocol::{log_level_rank, Era, IMPLEMENTATION, LOG_LEVELS};
use crate::session::{Asker, ReplyStream, Route, Session, SessionStore, Sink};
use crate::upstream::stdio::StdioActor;
use crate::upstream::{self, Call, Cmd, Origin, UpstreamEvents, UpstreamHandle, UpstreamShared};
use crate::wire::envelope::{code, raw_str, span_of, ParamsPeek};
use crate::wire::rewrite::{splice, Edit};
use crate::wire::{json, Envelope, Kind, Method};

/// Mailbox size of each upstream actor.
const UPSTREAM_MAILBOX: usize = 4096;

pub struct Server {
    pub config: ServerConfig,
    /// The shared connections (a pool); empty for per-client servers.
    pub instances: Vec<UpstreamHandle>,
    /// Live per-client upstreams of this server (decremented when each actor ends).
    per_client: Arc<AtomicUsize>,
}

/// How a checked 2026-07-28 request is answered: at once (`server/discover`), or on a reply
/// stream of the request's own transient session.
pub enum Stateless {
    /// The whole response.
    Now(Bytes),
    /// Replies arrive on `stream`; results need `modern::complete_result` for `method`.
    Stream {
        session: Arc<Session>,
        stream: Arc<ReplyStream>,
        method: Method,
    },
}

/// The lists whose items a call of this method names.
fn lists_naming(method: &Method) -> Vec<Method> {
    match method {
        Method::ToolsCall => vec![Method::ToolsList],
        Method::PromptsGet => vec![Method::PromptsList],
        Method::ResourcesRead => vec![Method::ResourcesList, Method::ResourcesTemplatesList],
        _ => vec![Method::PromptsList, Method::ResourcesTemplatesList],
    }
}

/// Sessions subscribed to one resource, by session key.
type Subscribers = HashMap<u64, Weak<Session>>;

pub struct Router {
    pub config: Config,
    pub servers: Vec<Server>,
    pub sessions: SessionStore,
    /// (server, uri) -> subscribed sessions.
    subscriptions: Mutex<HashMap<(usize, String), Subscribers>>,
    /// Open 2026-07-28 listen streams.
    listeners: listen::Listeners,
    /// Handshake-era upstream calls waiting for a 2026 client's input.
    parked: park::ParkedCalls,
    /// The router's resource listen stream on each 2026 server.
    resource_listens: resource_listen::ResourceListens,
}

/// Put a call in an upstream's mailbox, answering `sink` at once if it cannot go.
fn send_call(
    session: &Arc<Session>,
    handle: &UpstreamHandle,
    env: Envelope,
    name_edit: Option<(std::ops::Range<usize>, Bytes)>,
    token: Option<std::ops::Range<usize>>,
    sink: Sink,
) {
    let client_id = env.id_bytes().unwrap_or_default();
    let cache_uri = match read_cache_key(handle, &env) {
        Some(uri) => match handle.shared.reads.get(&uri) {
            Some(result) => {
                session.finish(&sink, json::result(&client_id, &result));
                return;
            }
            None => Some(uri),
        },
        None => None,
    };
    if !session.begin(&client_id, handle) {
        session.finish(
            &sink,
            error_reply(
                &client_id,
                code::INVALID_REQUEST,
                "a request with this id is already in flight",
            ),
        );
        return;
    }
    let origin = Origin {
        session: session.clone(),
        sink,
        client_id,
    };
    if let Err(cmd) = handle.send(Cmd::Call(Box::new(Call {
        env,
        name_edit,
        token,
        origin,
        cache_uri,
    }))) {
        let why = if handle.is_closed() {
            "the server is shut down"
        } else {
            "the server is overloaded"
        };
        upstream::reject(cmd, &handle.shared.name, code::OVERLOADED, why);
    }
}

/// A 2026-07-28 HTTP client's `Mcp-Param-*` headers against the arguments of the tool it
/// calls, by the tool's schema as its server listed it: a server must refuse a request whose
/// headers and body disagree (-32020), and to that client Switchyard is the server.
fn check_param_headers(
    session: &Session,
    handle: &UpstreamHandle,
    env: &Envelope,
    name_edit: Option<&(std::ops::Range<usize>, Bytes)>,
) -> Result<(), String> {
    let Some(received) = session.param_headers() else {
        return Ok(());
    };
    if env.method != Method::ToolsCall {
        return Ok(());
    }
    let table = handle.shared.param_headers.load();
    if table.is_empty() {
        return Ok(());
    }
    let peek = env.peek();
    // The server's own name: the one spliced in, else the one the client gave.
    let own = match name_edit {
        Some((_, quoted)) => serde_json::from_slice::<String>(quoted).ok(),
        None => peek.name.and_then(raw_str).map(|n| n.into_owned()),
    };
    let Some(headers) = own.and_then(|n| table.get(n.as_str()).cloned()) else {
        return Ok(());
    };
    let arguments = peek
        .arguments
        .map(|a| serde_json::from_str::<serde_json::Value>(a.get()))
        .transpose()
        .map_err(|e| format!("arguments: {e}"))?;
    headers.check(arguments.as_ref(), received)
}

/// A task-augmented call (2025-11-25 `params.task`) made an ordinary one, as a receiver
/// without task support runs it: Switchyard offers no tasks, and passing `task` on could get
/// the client a task it cannot poll through Switchyard.
fn without_task(env: Envelope) -> Envelope {
    let Some(params) = env.params.clone() else {
        return env;
    };
    if env.method != Method::ToolsCall
        || crate::finder!(b"\"task\"")
            .find(&env.frame[params.clone()])
            .is_none()
    {
        return env;
    }
    let Some(with) = env
        .params_str()
        .and_then(|p| json::without_members(p, |k| k == "task"))
    else {
        return env;
    };
    let frame = splice(
        &env.frame,
        &mut [Edit {
            range: params,
            with: &with,
        }],
    );
    Envelope::parse(frame).unwrap_or(env)
}

/// The URI a `resources/read` may be answered from (and kept under) in the upstream's shared
/// read cache: only for 2026-07-28 servers (the only ones that say what may be shared; one
/// not yet connected may be one, and the answer is checked again when it comes), and never
/// for a multi round-trip retry.
fn read_cache_key(handle: &UpstreamHandle, env: &Envelope) -> Option<Box<str>> {
    if env.method != Method::ResourcesRead
        || handle
            .shared
            .info
            .load()
            .as_ref()
            .is_some_and(|i| !i.is_modern())
    {
        return None;
    }
    let peek = ParamsPeek::parse(env.params_str()?).ok()?;
    if peek.input_responses.is_some() || peek.request_state.is_some() {
        return None;
    }
    raw_str(peek.uri?).map(|u| u.into())
}

/// Can clients subscribe to this upstream's resources? It must offer `resources.subscribe`;
/// a 2026-07-28 one is listened to by the router for every client, so it must be shared.
fn subscribable(h: &UpstreamHandle) -> bool {
    h.shared.info.load().as_ref().is_some_and(|info| {
        info.declares("resources", "subscribe") && !(info.is_modern() && h.shared.owner.is_some())
    })
}

/// A router-made error reply for a request.
pub fn error_reply(id: &[u8], code: i64, message: &str) -> Bytes {
    json::error(Some(id), code, message, None)
}

impl Router {
    pub fn new(config: Config) -> Arc<Router> {
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
                                spawn_upstream(weak, &config, idx, sc, i, None, events.clone())
                            })
                            .collect(),
                        Sharing::PerClient => Vec::new(),
                    };
                    Server {
                        config: sc.clone(),
                        instances,
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
                config,
            }
        })
    }

    fn events(self: &Arc<Self>) -> Arc<dyn UpstreamEvents> {
        Arc::new(Events(Arc::downgrade(self)))
    }

    /// The upstream connection that serves `session` for server `idx` (created on first use
    /// for per-client servers).
    pub fn instance(
        self: &Arc<Self>,
        idx: usize,
        session: &Arc<Session>,
    ) -> Result<UpstreamHandle, (i64, String)> {
        let server = self
            .servers
            .get(idx)
            .ok_or((code::INTERNAL_ERROR, "no such server".to_string()))?;
        if server.instances.is_empty() && session.era() == Era::Modern {
            // A per-client upstream lives as long as a session; 2026-07-28 requests have none.
            return Err((
                code::WRONG_ERA,
                format!(
                    "server {} is per-client, which 2026-07-28 requests cannot use yet",
                    server.config.name
                ),
            ));
        }
        if !server.instances.is_empty() {
            return Ok(server.instances[(session.key as usize) % server.instances.len()].clone());
        }
        let mut st = session.state();
        if let Some(h) = st.upstreams.get(&idx).filter(|h| !h.is_closed()) {
            h.shared.touch();
            return Ok(h.clone());
        }
        if server.per_client.load(Ordering::Relaxed) >= server.config.max_clients {
            return Err((
                code::LIMIT_REACHED,
                format!("server {} has reached its max_clients", server.config.name),
            ));
        }
        let h = spawn_upstream(
            &Arc::downgrade(self),
            &self.config,
            idx,
            &server.config,
            0,
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
        meta: &RequestMeta,
    ) -> Result<Stateless, Refusal> {
        if !modern::is_modern_method(&env.method) {
            return Err(modern::refuse(
                404,
                code::METHOD_NOT_FOUND,
                format!("method not found in 2026-07-28: {}", env.method.name()),
            ));
        }
        let session = Session::for_request(meta, self.config.limits.replay_events);
        let method = env.method.clone();
        if matches!(&method, Method::Other(m) if &**m == "server/discover") {
            let id = env.id_bytes().unwrap_or_default();
            self.wait_ready(&session).await;
            return Ok(Stateless::Now(json::result(
                &id,
                &self.discover_result(&session),
            )));
        }
        let stream = session.new_stream();
        if bridge::may_need_input(&method) && self.resume_parked(&session, &env, &stream)? {
            return Ok(Stateless::Stream {
                session,
                stream,
                method,
            });
        }
        if matches!(&method, Method::Other(m) if &**m == "subscriptions/listen") {
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
        let client_id = env.id_bytes().unwrap_or_default();
        if !session.begin(&client_id, &parked.handle) {
            return Err(bad("a request with this id is already in flight"));
        }
        let mut reply = Vec::with_capacity(answer.get().len() + parked.request_id.len() + 40);
        reply.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        reply.extend_from_slice(&parked.request_id);
        reply.extend_from_slice(b",\"result\":");
        reply.extend_from_slice(answer.get().as_bytes());
        reply.push(b'}');
        let origin = Origin {
            session: session.clone(),
            sink: Sink::Stream(stream.clone()),
            client_id,
        };
        // One mailbox, in order: the call answers the retry before the upstream hears back.
        let sent = parked
            .handle
            .send(Cmd::Reattach {
                uid: parked.uid,
                origin,
            })
            .and_then(|_| parked.handle.send(Cmd::Reply(Bytes::from(reply))));
        if let Err(cmd) = sent {
            upstream::reject(
                cmd,
                &parked.handle.shared.name,
                code::OVERLOADED,
                "the server is overloaded",
            );
        }
        Ok(true)
    }

    /// Open a 2026-07-28 listen stream on `sink`: grant what the upstreams can tell (list
    /// changes of any list they serve; subscriptions to resources of handshake-era upstreams
    /// that offer them), acknowledge it, and register the stream.
    async fn listen(
        self: &Arc<Self>,
        session: &Arc<Session>,
        env: &Envelope,
        sink: Sink,
    ) -> Result<(), Refusal> {
        #[derive(serde::Deserialize, Default)]
        struct Params {
            #[serde(default)]
            notifications: Option<listen::Filter>,
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
        let mut granted = listen::Filter {
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
                Ok((idx, name_edit, token)) => {
                    self.forward(session, idx, env, name_edit, token, sink)
                }
                Err((c, m))
                    if c == code::RESOURCE_NOT_FOUND
                        || (m.starts_with("unknown ") && self.has_unprefixed_server()) =>
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
                            Ok((idx, name_edit, token)) => {
                                this.forward(&session, idx, env, name_edit, token, sink)
                            }
                            Err((c, m)) => {
                                session.finish(&sink, error_reply(&id, c, &m));
                            }
                        }
                    });
                }
                Err((c, m)) => reply(error_reply(&id, c, &m)),
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
                        Err((c, m)) => error_reply(&id, c, &m),
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
                        Err((c, m)) => error_reply(&id, c, &m),
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

    /// Send a call to the upstream that serves `idx` for this session.
    fn forward(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        env: Envelope,
        name_edit: Option<(std::ops::Range<usize>, Bytes)>,
        token: Option<std::ops::Range<usize>>,
        sink: Sink,
    ) {
        let Some(handle) = self.instance_or_refuse(session, idx, &env, &sink) else {
            return;
        };
        if let Err(why) = check_param_headers(session, &handle, &env, name_edit.as_ref()) {
            let id = env.id_bytes().unwrap_or_default();
            session.finish(&sink, error_reply(&id, modern::HEADER_MISMATCH, &why));
            return;
        }
        // A handshake-era client cannot answer a 2026 upstream's `input_required`: the router
        // runs those rounds for it.
        if session.era() != Era::Modern && bridge::may_need_input(&env.method) && handle.is_modern()
        {
            tokio::spawn(self.clone().bridge(session.clone(), idx, env, sink));
            return;
        }
        send_call(session, &handle, env, name_edit, token, sink);
    }

    /// Send one call to server `idx` as it is (no bridging); its replies go to `sink`.
    fn forward_once(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        env: Envelope,
        name_edit: Option<(std::ops::Range<usize>, Bytes)>,
        token: Option<std::ops::Range<usize>>,
        sink: Sink,
    ) {
        if let Some(handle) = self.instance_or_refuse(session, idx, &env, &sink) {
            send_call(session, &handle, env, name_edit, token, sink);
        }
    }

    /// The connection to server `idx` for this session, or the call refused on `sink`.
    fn instance_or_refuse(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        env: &Envelope,
        sink: &Sink,
    ) -> Option<UpstreamHandle> {
        match self.instance(idx, session) {
            Ok(h) => Some(h),
            Err((c, e)) => {
                let id = env.id_bytes().unwrap_or_default();
                session.finish(sink, json::router_error(Some(&id), c, &e, None));
                None
            }
        }
    }

    /// Which server a call goes to, the name edit to make, and where its progress token sits.
    #[allow(clippy::type_complexity)]
    fn resolve_call(
        &self,
        session: &Arc<Session>,
        env: &Envelope,
    ) -> Result<
        (
            usize,
            Option<(std::ops::Range<usize>, Bytes)>,
            Option<std::ops::Range<usize>>,
        ),
        (i64, String),
    > {
        let params = env
            .params_str()
            .ok_or((code::INVALID_PARAMS, "params are required".to_string()))?;
        let peek = ParamsPeek::parse(params).map_err(|e| (code::INVALID_PARAMS, e))?;
        let token = peek
            .meta
            .as_ref()
            .and_then(|m| m.progress_token)
            .map(|t| span_of(&env.frame, t.get()));
        let routes = session.state().routes.clone();
        let by_name = |raw: &RawValue,
                       prompts: bool|
         -> Result<
            (usize, Option<(std::ops::Range<usize>, Bytes)>),
            (i64, String),
        > {
            let name =
                raw_str(raw).ok_or((code::INVALID_PARAMS, "name must be a string".to_string()))?;
            let route = self.resolve_name(&routes, &name, prompts).ok_or_else(|| {
                (
                    code::INVALID_PARAMS,
                    format!(
                        "unknown {}: {name}",
                        if prompts { "prompt" } else { "tool" }
                    ),
                )
            })?;
            let edit = (route.name != name).then(|| {
                (
                    span_of(&env.frame, raw.get()),
                    json::json_string(&route.name),
                )
            });
            Ok((route.server, edit))
        };
        let by_uri = |raw: &RawValue| -> Result<usize, (i64, String)> {
            let uri =
                raw_str(raw).ok_or((code::INVALID_PARAMS, "uri must be a string".to_string()))?;
            self.resolve_uri(&routes, &uri).ok_or((
                code::RESOURCE_NOT_FOUND,
                format!("resource not found: {uri}"),
            ))
        };
        let missing = |what: &str| (code::INVALID_PARAMS, format!("params.{what} is required"));
        let (idx, edit) = match env.method {
            Method::ToolsCall => by_name(peek.name.ok_or_else(|| missing("name"))?, false)?,
            Method::PromptsGet => by_name(peek.name.ok_or_else(|| missing("name"))?, true)?,
            Method::ResourcesRead => (by_uri(peek.uri.ok_or_else(|| missing("uri"))?)?, None),
            _ => {
                let r = peek.reference.as_ref().ok_or_else(|| missing("ref"))?;
                match (r.kind.as_deref(), r.name, r.uri) {
                    (Some("ref/prompt"), Some(name), _) => by_name(name, true)?,
                    (Some("ref/resource"), _, Some(uri)) => (by_uri(uri)?, None),
                    _ => {
                        return Err((
                            code::INVALID_PARAMS,
                            "ref must be a ref/prompt with a name or a ref/resource with a uri"
                                .into(),
                        ))
                    }
                }
            }
        };
        Ok((idx, edit, token))
    }

    fn has_unprefixed_server(&self) -> bool {
        self.servers.iter().any(|s| s.config.prefix.is_empty())
    }

    /// Resolve an exposed tool or prompt name: as listed to this session, else by prefix, else
    /// by the servers that expose their names unprefixed.
    fn resolve_name(
        &self,
        routes: &crate::session::Routes,
        name: &str,
        prompts: bool,
    ) -> Option<Route> {
        let table = if prompts {
            &routes.prompts
        } else {
            &routes.tools
        };
        if let Some(r) = table.get(name) {
            return Some(r.clone());
        }
        if let Some((prefix, rest)) = crate::protocol::names::split(name) {
            if let Some(idx) = self.servers.iter().position(|s| s.config.prefix == prefix) {
                return Some(Route {
                    server: idx,
                    name: rest.to_string(),
                });
            }
        }
        let unprefixed: Vec<usize> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| s.config.prefix.is_empty())
            .map(|(i, _)| i)
            .collect();
        let method = if prompts {
            "prompts/list"
        } else {
            "tools/list"
        };
        let listed = |i: usize| {
            self.servers[i]
                .instances
                .first()
                .and_then(|h| h.cached_list(method))
                .is_some_and(|items| {
                    items
                        .iter()
                        .any(|it| catalogue::item_key(it, "name").as_deref() == Some(name))
                })
        };
        match unprefixed.as_slice() {
            [one] => Some(Route {
                server: *one,
                name: name.to_string(),
            }),
            many => many
                .iter()
                .copied()
                .find(|&i| listed(i))
                .map(|server| Route {
                    server,
                    name: name.to_string(),
                }),
        }
    }

    /// Resolve a resource URI: as listed to this session, else by a server's cached resources
    /// and templates, else the only server offering resources.
    fn resolve_uri(&self, routes: &crate::session::Routes, uri: &str) -> Option<usize> {
        if let Some(idx) = routes.resources.get(uri) {
            return Some(*idx);
        }
        if let Some((_, idx)) = routes
            .templates
            .iter()
            .find(|(t, _)| crate::protocol::template::matches(t, uri))
        {
            return Some(*idx);
        }
        for (idx, s) in self.servers.iter().enumerate() {
            let Some(h) = s.instances.first() else {
                continue;
            };
            if h.cached_list("resources/list").is_some_and(|l| {
                l.iter()
                    .any(|r| catalogue::item_key(r, "uri").as_deref() == Some(uri))
            }) {
                return Some(idx);
            }
            if h.cached_list("resources/templates/list").is_some_and(|l| {
                l.iter().any(|t| {
                    catalogue::item_key(t, "uriTemplate")
                        .is_some_and(|tpl| crate::protocol::template::matches(&tpl, uri))
                })
            }) {
                return Some(idx);
            }
        }
        let with_resources: Vec<usize> = self
            .servers
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.instances
                    .first()
                    .and_then(|h| h.shared.info.load_full())
                    .is_none_or(|i| i.has("resources"))
            })
            .map(|(i, _)| i)
            .collect();
        match with_resources.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    fn client_notification(self: &Arc<Self>, session: &Arc<Session>, env: Envelope) {
        match env.method {
            Method::Cancelled => {
                let peek = env.peek();
                let Some(rid) = peek.request_id else { return };
                let client_id = Bytes::copy_from_slice(rid.get().as_bytes());
                if let Some(h) = session.in_flight_upstream(&client_id) {
                    session.forget(&client_id);
                    let _ = h.send(Cmd::Cancel {
                        session: session.key,
                        client_id,
                        reason: None,
                    });
                }
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

    async fn subscribe(
        self: &Arc<Self>,
        session: &Arc<Session>,
        env: &Envelope,
    ) -> Result<(), (i64, String)> {
        let params = env
            .params_str()
            .ok_or((code::INVALID_PARAMS, "params are required".to_string()))?;
        let peek = ParamsPeek::parse(params).map_err(|e| (code::INVALID_PARAMS, e))?;
        let uri = peek
            .uri
            .and_then(raw_str)
            .ok_or((code::INVALID_PARAMS, "params.uri is required".to_string()))?
            .into_owned();
        let routes = session.state().routes.clone();
        let idx = self.resolve_uri(&routes, &uri).ok_or((
            code::RESOURCE_NOT_FOUND,
            format!("resource not found: {uri}"),
        ))?;
        self.subscribe_uri(session, idx, &uri, env.method == Method::ResourcesSubscribe)
            .await
    }

    /// Count `session` in (or out of) the subscribers of `uri` on server `idx`; the upstream
    /// hears of it on the first subscriber and the last leaving (a per-client one, always).
    async fn subscribe_uri(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        uri: &str,
        subscribe: bool,
    ) -> Result<(), (i64, String)> {
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
                None => Err((
                    code::INTERNAL_ERROR,
                    "the server's listen stream could not be opened".into(),
                )),
                Some(acked) => {
                    let limit = self.servers[idx].config.request_timeout;
                    match tokio::time::timeout(limit, acked).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(_)) => Err((
                            code::INTERNAL_ERROR,
                            "the server ended the listen stream for this subscription".into(),
                        )),
                        Err(_) => Err((
                            code::UPSTREAM_TIMEOUT,
                            "the server did not acknowledge the subscription in time".into(),
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
            handle
                .internal(method, Some(uri_params(uri)))
                .await
                .map_err(|e| (code::INTERNAL_ERROR, e))?;
        }
        Ok(())
    }

    /// A session that was still subscribed to `subs` is gone: take it out of their
    /// subscribers, and stop what nobody is subscribed to any more upstream (a handshake-era
    /// server is told `resources/unsubscribe`; a 2026 one's listen stream is narrowed). A
    /// per-client server went with its session.
    fn forget_subscriber(self: &Arc<Self>, key: u64, subs: Vec<(usize, String)>) {
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
    fn relisten_resources(&self, idx: usize) -> Option<tokio::sync::oneshot::Receiver<()>> {
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

    /// The log level to ask of server `idx`: the lowest any of its clients asked for.
    fn wanted_log_level(&self, idx: usize) -> Option<u8> {
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
    fn push_log_level(
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

    /// Frames to replay to a (re)started shared upstream: subscriptions and the log level.
    fn replay_frames(&self, idx: usize) -> Vec<Bytes> {
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
                        .any(|f| Arc::ptr_eq(&f.shared, &h.shared))
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
}

/// Start one upstream connection for server `idx`: shared by every session (`owner` is
/// `None`), or serving one session, whose server-wide count of live per-client upstreams it
/// holds a place in until its actor ends.
fn spawn_upstream(
    router: &Weak<Router>,
    config: &Config,
    idx: usize,
    sc: &ServerConfig,
    instance: usize,
    owner: Option<(&Arc<Session>, Arc<AtomicUsize>)>,
    events: Arc<dyn UpstreamEvents>,
) -> UpstreamHandle {
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
    tokio::spawn(async move {
        run.await;
        if let Some(live) = live {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    });
    handle
}

fn subscribe_frame(id: &str, uri: &str) -> Bytes {
    json::message(
        Some(json::json_string(id).as_ref()),
        "resources/subscribe",
        Some(&uri_params(uri)),
    )
}

/// `{"uri":URI}`: the params of resources/subscribe, unsubscribe and updated.
fn uri_params(uri: &str) -> Bytes {
    let quoted = json::json_string(uri);
    let mut out = Vec::with_capacity(quoted.len() + 8);
    out.extend_from_slice(b"{\"uri\":");
    out.extend_from_slice(&quoted);
    out.push(b'}');
    Bytes::from(out)
}

fn set_level_frame(level: u8) -> Bytes {
    let params = format!("{{\"level\":\"{}\"}}", LOG_LEVELS[level as usize]);
    json::message(
        Some(b"\"sy-replay-level\""),
        "logging/setLevel",
        Some(params.as_bytes()),
    )
}

/// What a restarted per-client upstream gets back: its session's subscriptions and level.
fn session_replay_frames(session: &Session, idx: usize) -> Vec<Bytes> {
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

/// The router's side of upstream events, held weakly by the actors.
struct Events(Weak<Router>);

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
                if s.unsolicited.send(frame.clone()).is_err() {
                    s.shed("client not reading its replies");
                }
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
                if s.unsolicited.send(frame.clone()).is_err() {
                    s.shed("client not reading its replies");
                }
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
        origin.session.forget(&origin.client_id);
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

pub use catalogue::merged_list_result;
