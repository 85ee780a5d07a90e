//! A Streamable HTTP upstream (2025 handshake era): one upstream session, each message a
//! POST from a small task that reports the reply (JSON or an SSE stream) back to the actor,
//! plus a GET stream for the server's own notifications. A 404 means the upstream session
//! expired: the actor answers what was in flight and initializes again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};

use super::{
    hold, initialize_params, reject, ActorParts, Backoff, Cmd, Inbound, Pendings, UpstreamInfo,
    UpstreamShared, INIT_TIMEOUT,
};
use crate::config::{Transport, UpstreamEra};
use crate::protocol::header_value::encode_header_value;
use crate::protocol::modern;
use crate::wire::envelope::{code, is_batch, split_batch};
use crate::wire::sse::SseDecoder;
use crate::wire::{json, Envelope, Kind};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Reconnects of one request's SSE stream (2025-11-25 polling) before giving up.
const MAX_RESUMES: usize = 5;

pub struct HttpActor {
    pub parts: ActorParts,
}

/// What a POST or GET task reports back to the actor.
enum Report {
    Frame {
        env: Envelope,
        related: Option<u64>,
    },
    Failed {
        uid: Option<u64>,
        why: String,
        expired: bool,
    },
}

/// One upstream session: what every request of it carries.
#[derive(Clone)]
struct Conn {
    client: HttpClient,
    uri: Uri,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    session: Option<HeaderValue>,
    version: HeaderValue,
    max_frame: usize,
    /// Spoken to in 2026-07-28: no session, `_meta` and Mcp-* headers on every request.
    modern: bool,
    /// Its tools' `Mcp-Param-*` headers (see [`UpstreamShared::param_headers`]).
    shared: Arc<UpstreamShared>,
}

enum Ended {
    Expired,
    Shutdown,
}

impl HttpActor {
    pub async fn run(mut self) {
        let name = self.parts.config.name.clone();
        let Transport::Http { url, headers } = &self.parts.config.transport else {
            return;
        };
        let uri: Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(server = %name, "bad url {url}: {e}");
                return;
            }
        };
        let mut fixed = Vec::new();
        for (k, v) in headers {
            match (
                HeaderName::try_from(k.as_str()),
                HeaderValue::try_from(v.as_str()),
            ) {
                (Ok(k), Ok(v)) => fixed.push((k, v)),
                _ => {
                    tracing::error!(server = %name, "header {k:?} is not a valid HTTP header; skipped")
                }
            }
        }
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let base = Conn {
            client,
            uri,
            headers: Arc::new(fixed),
            session: None,
            version: HeaderValue::from_static(crate::protocol::LATEST_LEGACY),
            max_frame: self.parts.max_frame,
            modern: false,
            shared: self.parts.handle.shared.clone(),
        };
        let mut backoff = Backoff::default();
        loop {
            let started = Instant::now();
            let mut held = Vec::new();
            let why = match self.initialize(&base, &mut held).await {
                Ok(conn) => match self.serve(conn, held).await {
                    Ended::Shutdown => {
                        self.parts.rx.close();
                        return;
                    }
                    Ended::Expired => {
                        tracing::warn!(server = %name, "upstream session expired; initializing again");
                        continue;
                    }
                },
                Err(Some(why)) => {
                    for cmd in held {
                        reject(
                            cmd,
                            &name,
                            code::UPSTREAM_UNAVAILABLE,
                            "the server is unreachable",
                        );
                    }
                    why
                }
                Err(None) => {
                    for cmd in held {
                        reject(
                            cmd,
                            &name,
                            code::UPSTREAM_UNAVAILABLE,
                            "the router is shutting down",
                        );
                    }
                    return;
                }
            };
            if !backoff.wait(&mut self.parts, started, &why).await {
                return;
            }
        }
    }

    /// Send one handshake message and wait for its answer; `Err(None)` when told to shut
    /// down meanwhile. Calls that arrive during it wait in `held` (bounded) rather than abort it.
    async fn handshake(
        &mut self,
        conn: &Conn,
        frame: Bytes,
        held: &mut Vec<Cmd>,
    ) -> Result<(Option<HeaderValue>, Envelope), Option<String>> {
        let attempt = tokio::time::timeout(INIT_TIMEOUT, exchange(conn, frame));
        tokio::pin!(attempt);
        loop {
            tokio::select! {
                r = &mut attempt => return match r {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(Some(e)),
                    Err(_) => Err(Some("no answer to the handshake".into())),
                },
                cmd = self.parts.rx.recv() => match cmd {
                    None | Some(Cmd::Shutdown) => return Err(None),
                    Some(cmd) => hold(held, cmd, &self.parts.config.name),
                },
            }
        }
    }

    /// Learn the upstream's era and open a connection to it: `server/discover` first (unless
    /// configured legacy), the `initialize` handshake if that does not show a 2026-07-28
    /// server (`2026-07-28/basic/versioning#backward-compatibility-with-initialization-based-versions`).
    async fn initialize(
        &mut self,
        base: &Conn,
        held: &mut Vec<Cmd>,
    ) -> Result<Conn, Option<String>> {
        let era = self.parts.config.era;
        if era != UpstreamEra::Legacy {
            let modern_conn = Conn {
                modern: true,
                version: HeaderValue::from_static(modern::VERSION),
                ..base.clone()
            };
            let discover = json::message(Some(b"0"), "server/discover", Some(b"{}"));
            let probe = match self.handshake(&modern_conn, discover, held).await {
                Ok((_, env)) if env.kind == Kind::Response => {
                    UpstreamInfo::from_discover(env.payload_str().unwrap_or(""))
                }
                Ok((_, env)) => Err(format!(
                    "server/discover answered {}",
                    env.payload_str().unwrap_or("")
                )),
                Err(None) => return Err(None),
                Err(Some(e)) => Err(e),
            };
            match probe {
                Ok(info) => {
                    let tools = info.has("tools");
                    self.parts.handle.shared.info.store(Some(Arc::new(info)));
                    if tools {
                        self.learn_param_headers(&modern_conn, held).await?;
                    }
                    tracing::info!(server = %self.parts.config.name, version = modern::VERSION, "upstream ready (stateless)");
                    return Ok(modern_conn);
                }
                Err(e) if era == UpstreamEra::Modern => return Err(Some(e)),
                Err(e) => {
                    tracing::debug!(server = %self.parts.config.name, "not a 2026-07-28 server ({e}); using initialize")
                }
            }
        }
        let params = initialize_params(&self.parts.client_capabilities);
        let frame = json::message(Some(b"0"), "initialize", Some(params.as_bytes()));
        let (session, env) = self.handshake(base, frame, held).await?;
        if env.kind != Kind::Response {
            return Err(Some(format!(
                "initialize failed: {}",
                env.payload_str().unwrap_or("")
            )));
        }
        let info = UpstreamInfo::from_result(env.payload_str().unwrap_or("")).map_err(Some)?;
        let version = HeaderValue::try_from(info.protocol_version.as_str())
            .map_err(|_| Some("bad protocolVersion".to_string()))?;
        tracing::info!(server = %self.parts.config.name, version = %info.protocol_version, "upstream ready");
        self.parts.handle.shared.info.store(Some(Arc::new(info)));
        Ok(Conn {
            session,
            version,
            ..base.clone()
        })
    }

    /// Before a 2026 server's first call: its tools' `Mcp-Param-*` headers, from its whole
    /// tool list (asked with no client capabilities), so that no call goes out without the
    /// headers the server checks. A list that cannot be had leaves the server usable, with
    /// the headers learned from the first list a client asks for.
    async fn learn_param_headers(
        &mut self,
        conn: &Conn,
        held: &mut Vec<Cmd>,
    ) -> Result<(), Option<String>> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let params = match &cursor {
                Some(c) => format!("{{\"cursor\":{c}}}"),
                None => "{}".into(),
            };
            let frame = json::message(Some(b"0"), "tools/list", Some(params.as_bytes()));
            let page = match self.handshake(conn, frame, held).await {
                Ok((_, env)) if env.kind == Kind::Response => {
                    ToolsPage::parse(env.payload_str().unwrap_or(""))
                }
                Ok(_) => None,
                Err(None) => return Err(None),
                Err(Some(_)) => None,
            };
            let Some(page) = page else {
                tracing::warn!(server = %self.parts.config.name, "no tools/list to learn Mcp-Param headers from");
                return Ok(());
            };
            tools.extend(page.tools);
            match page.next_cursor {
                Some(c) if c.get() != "null" => cursor = Some(c.get().to_string()),
                _ => break,
            }
        }
        self.parts.handle.learn_tools(&tools);
        Ok(())
    }

    async fn serve(&mut self, conn: Conn, held: Vec<Cmd>) -> Ended {
        let name = self.parts.config.name.clone();
        let (rtx, mut reports) = mpsc::channel::<Report>(1024);
        let none = Bytes::from_static(b"{}");
        let (stop_get, stopped) = oneshot::channel::<()>();
        if !conn.modern {
            // The handshake era's session: initialized, what clients had set up, the GET stream.
            post_in_background(
                &conn,
                json::message(None, "notifications/initialized", None),
                None,
                none.clone(),
                false,
                &rtx,
            );
            for frame in (self.parts.replay)() {
                post_in_background(&conn, frame, None, none.clone(), false, &rtx);
            }
            tokio::spawn(get_stream(conn.clone(), rtx.clone(), stopped));
        }
        self.parts.events.ready(&self.parts.handle);
        let mut pendings = Pendings::new(&name, self.parts.config.request_timeout);
        let mut tasks = Tasks::default();
        for cmd in held {
            if let Some((frame, uid)) = pendings.frame_for(cmd) {
                send(&conn, &pendings, frame, uid, &rtx, &mut tasks);
            }
        }
        let ended = loop {
            let next_deadline = pendings.next_deadline().map(tokio::time::Instant::from_std);
            tokio::select! {
                Some(report) = reports.recv() => match report {
                    Report::Frame { env, related } => {
                        if let Inbound::Answer(frame) = pendings.inbound(env, related, &self.parts.handle, self.parts.events.as_ref()) {
                            send(&conn, &pendings, frame, None, &rtx, &mut tasks);
                        }
                    }
                    Report::Failed { expired: true, .. } => break Ended::Expired,
                    Report::Failed { uid: Some(uid), why, .. } => pendings.fail_one(uid, code::UPSTREAM_UNAVAILABLE, &why),
                    Report::Failed { uid: None, why, .. } => tracing::warn!(server = %name, "upstream message failed: {why}"),
                },
                _ = async { match next_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    for (uid, cancel) in pendings.expire(Instant::now()) {
                        tasks.cancel(uid);
                        send(&conn, &pendings, cancel, None, &rtx, &mut tasks);
                    }
                }
                cmd = self.parts.rx.recv() => match cmd {
                    None | Some(Cmd::Shutdown) => break Ended::Shutdown,
                    // A 2026-07-28 upstream is told by closing the request's stream.
                    Some(Cmd::Cancel { session, client_id, reason }) if conn.modern => {
                        if let Some((uid, _)) = pendings.cancel(session, client_id, reason.as_deref()) {
                            tasks.cancel(uid);
                        }
                    }
                    Some(cmd) => {
                        if let Some((frame, uid)) = pendings.frame_for(cmd) {
                            send(&conn, &pendings, frame, uid, &rtx, &mut tasks);
                        }
                    }
                },
            }
        };
        let _ = stop_get.send(());
        let why = match ended {
            Ended::Expired => "the server's session expired; retry the request",
            Ended::Shutdown => "the router is shutting down",
        };
        pendings.fail_all(why);
        if matches!(ended, Ended::Shutdown) {
            delete_session(&conn).await;
        }
        ended
    }
}

/// An HTTP request to the upstream. For a 2026-07-28 upstream a POSTed request gets the
/// `_meta` it needs (with `caps`, the calling client's capabilities) and the Mcp-* headers.
fn request(
    conn: &Conn,
    method: hyper::Method,
    body: Bytes,
    caps: &[u8],
    strip_envelope: bool,
) -> Result<Request<Full<Bytes>>, String> {
    let mut extra: Vec<(HeaderName, String)> = Vec::new();
    let body = if conn.modern && method == hyper::Method::POST {
        match modern::upstream_request(&body, caps) {
            Some(r) => {
                if r.method == "tools/call" {
                    extra.extend(param_headers(&conn.shared, &r)?);
                }
                extra.push((HeaderName::from_static("mcp-method"), r.method));
                if let Some(name) = r.name {
                    extra.push((
                        HeaderName::from_static("mcp-name"),
                        encode_header_value(&name),
                    ));
                }
                r.frame
            }
            None => body,
        }
    } else if strip_envelope {
        // A legacy upstream must not see a 2026 client's envelope.
        modern::legacy_request(&body)
    } else {
        body
    };
    let mut b = Request::builder()
        .method(method.clone())
        .uri(conn.uri.clone());
    for (k, v) in conn.headers.iter() {
        b = b.header(k, v);
    }
    if method == hyper::Method::GET {
        b = b.header("accept", "text/event-stream");
    } else {
        b = b
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
    }
    if conn.modern {
        b = b.header("mcp-protocol-version", &conn.version);
        for (k, v) in extra {
            b = b.header(k, v);
        }
    } else if let Some(s) = &conn.session {
        b = b
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", &conn.version);
    }
    b.body(Full::new(body)).map_err(|e| e.to_string())
}

/// Most pages of a tool list read at connect time (a guard against endless cursors).
const MAX_LIST_PAGES: usize = 100;

/// One page of a `tools/list` result.
#[derive(serde::Deserialize)]
struct ToolsPage {
    #[serde(default)]
    tools: Vec<Box<serde_json::value::RawValue>>,
    #[serde(default, rename = "nextCursor")]
    next_cursor: Option<Box<serde_json::value::RawValue>>,
}

impl ToolsPage {
    fn parse(result: &str) -> Option<ToolsPage> {
        serde_json::from_str(result).ok()
    }
}

/// The `Mcp-Param-*` headers a `tools/call` to a 2026 upstream carries, mirrored from its
/// arguments by the tool's schema (none for a tool that declares none: no parse then).
fn param_headers(
    shared: &UpstreamShared,
    r: &modern::UpstreamRequest,
) -> Result<Vec<(HeaderName, String)>, String> {
    let table = shared.param_headers.load();
    let Some(headers) = r.name.as_deref().and_then(|n| table.get(n)) else {
        return Ok(Vec::new());
    };
    let env = Envelope::parse(r.frame.clone()).map_err(|e| e.message)?;
    let arguments = env
        .peek()
        .arguments
        .map(|a| serde_json::from_str::<serde_json::Value>(a.get()))
        .transpose()
        .map_err(|e| format!("arguments: {e}"))?;
    headers
        .emit(arguments.as_ref())
        .into_iter()
        .map(|(name, value)| {
            let name = HeaderName::try_from(name).map_err(|e| format!("{name}: {e}"))?;
            Ok((name, value))
        })
        .collect()
}

/// POST one frame and return the response to it (for the handshake), with the session id.
async fn exchange(conn: &Conn, frame: Bytes) -> Result<(Option<HeaderValue>, Envelope), String> {
    let resp = conn
        .client
        .request(request(conn, hyper::Method::POST, frame, b"{}", false)?)
        .await
        .map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let session = resp.headers().get("mcp-session-id").cloned();
    let (tx, mut rx) = mpsc::channel(64);
    let reader = read_replies(conn.max_frame, resp, None, tx);
    let (_, env) = tokio::join!(reader, async {
        while let Some(Report::Frame { env, .. }) = rx.recv().await {
            if matches!(env.kind, Kind::Response | Kind::Error) {
                return Some(env);
            }
        }
        None
    });
    env.map(|e| (session, e))
        .ok_or_else(|| "no response to initialize".into())
}

/// Send a frame for request `uid` (or a message that is not a request). A 2026-07-28 upstream
/// gets requests only: it has no notifications from clients over HTTP (a cancellation is a
/// closed stream), and it sends no requests to answer.
fn send(
    conn: &Conn,
    pendings: &Pendings,
    frame: Bytes,
    uid: Option<u64>,
    reports: &mpsc::Sender<Report>,
    tasks: &mut Tasks,
) {
    match uid {
        Some(uid) => {
            let strip = !conn.modern && pendings.from_modern_client(uid);
            let task = post_in_background(
                conn,
                frame,
                Some(uid),
                pendings.caps_of(uid),
                strip,
                reports,
            );
            if conn.modern {
                tasks.track(uid, task);
            }
        }
        None if conn.modern => {
            tracing::debug!("message for a 2026-07-28 upstream dropped (not a request)")
        }
        None => {
            post_in_background(conn, frame, None, Bytes::from_static(b"{}"), false, reports);
        }
    }
}

/// The tasks carrying requests to a 2026-07-28 upstream, by our request id: over HTTP that
/// era cancels a request by closing its stream, which aborting the task does.
#[derive(Default)]
struct Tasks(std::collections::HashMap<u64, tokio::task::AbortHandle>);

impl Tasks {
    fn track(&mut self, uid: u64, task: tokio::task::AbortHandle) {
        if self.0.len() >= 1024 {
            self.0.retain(|_, t| !t.is_finished());
        }
        self.0.insert(uid, task);
    }

    fn cancel(&mut self, uid: u64) {
        if let Some(t) = self.0.remove(&uid) {
            t.abort();
        }
    }
}

fn post_in_background(
    conn: &Conn,
    frame: Bytes,
    uid: Option<u64>,
    caps: Bytes,
    strip_envelope: bool,
    reports: &mpsc::Sender<Report>,
) -> tokio::task::AbortHandle {
    let conn = conn.clone();
    let reports = reports.clone();
    tokio::spawn(async move {
        let failed = |why: String, expired: bool| Report::Failed { uid, why, expired };
        let resp = match request(&conn, hyper::Method::POST, frame, &caps, strip_envelope) {
            Ok(req) => conn.client.request(req).await,
            Err(e) => {
                let _ = reports.send(failed(e, false)).await;
                return;
            }
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                let _ = reports
                    .send(failed(format!("request failed: {e}"), false))
                    .await;
                return;
            }
        };
        match resp.status() {
            // A 2026-07-28 server answers refusals with a 4xx and a JSON-RPC error: that error
            // is the request's response (404 means an unknown method, not an expired session).
            s if conn.modern && s.is_client_error() && uid.is_some() => {
                let got = read_replies(conn.max_frame, resp, uid, reports.clone()).await;
                if !matches!(got, Ok((true, _))) {
                    let _ = reports.send(failed(format!("HTTP {s}"), false)).await;
                }
            }
            // server-everything answers 400 for an unknown session; the spec says 404.
            StatusCode::NOT_FOUND => {
                let _ = reports
                    .send(failed("upstream session expired".into(), true))
                    .await;
            }
            StatusCode::BAD_REQUEST if conn.session.is_some() && uid.is_some() => {
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body);
                let expired = text.contains("session") || text.contains("Session");
                let _ = reports
                    .send(failed(format!("HTTP 400: {text}"), expired))
                    .await;
            }
            s if s.is_success() => {
                let got = read_replies(conn.max_frame, resp, uid, reports.clone()).await;
                if let (Some(uid), Ok((false, Some(last)))) = (uid, &got) {
                    resume(&conn, uid, last.clone(), &reports).await;
                } else if let (Some(_), Ok((false, None)) | Err(_)) = (uid, &got) {
                    let why = got
                        .err()
                        .unwrap_or_else(|| "the reply ended without a response".into());
                    let _ = reports.send(failed(why, false)).await;
                }
            }
            s => {
                let _ = reports.send(failed(format!("HTTP {s}"), false)).await;
            }
        }
    })
    .abort_handle()
}

/// The server closed a request's SSE stream before its response: reconnect with
/// `Last-Event-ID` (2025-11-25 polling), a few times.
async fn resume(conn: &Conn, uid: u64, mut last: String, reports: &mpsc::Sender<Report>) {
    for _ in 0..MAX_RESUMES {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(mut req) = request(conn, hyper::Method::GET, Bytes::new(), b"{}", false) else {
            break;
        };
        if let Ok(v) = HeaderValue::try_from(last.as_str()) {
            req.headers_mut().insert("last-event-id", v);
        }
        let Ok(resp) = conn.client.request(req).await else {
            continue;
        };
        if !resp.status().is_success() {
            break;
        }
        match read_replies(conn.max_frame, resp, Some(uid), reports.clone()).await {
            Ok((true, _)) => return,
            Ok((false, Some(l))) => last = l,
            _ => {}
        }
    }
    let why = "the reply stream ended without a response".to_string();
    let _ = reports
        .send(Report::Failed {
            uid: Some(uid),
            why,
            expired: false,
        })
        .await;
}

/// Read a reply (JSON or SSE) and report its messages. Returns whether a response to
/// `related` was seen, and the last SSE event id.
async fn read_replies(
    max: usize,
    resp: Response<Incoming>,
    related: Option<u64>,
    reports: mpsc::Sender<Report>,
) -> Result<(bool, Option<String>), String> {
    let is_sse = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = resp.into_body();
    let mut answered = false;
    let report = |frame: Bytes, answered: &mut bool| -> Vec<Report> {
        let frames = if is_batch(&frame) {
            split_batch(&frame).unwrap_or_default()
        } else {
            vec![frame]
        };
        let mut out = Vec::new();
        for f in frames {
            match Envelope::parse(f) {
                Ok(env) => {
                    if matches!(env.kind, Kind::Response | Kind::Error)
                        && related.is_some_and(|u| {
                            env.id_bytes().as_deref() == Some(u.to_string().as_bytes())
                        })
                    {
                        *answered = true;
                    }
                    out.push(Report::Frame { env, related });
                }
                Err(e) => tracing::warn!("bad message from upstream dropped: {}", e.message),
            }
        }
        out
    };
    if !is_sse {
        let bytes = http_body_util::Limited::new(body, max)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((false, None));
        }
        for r in report(bytes, &mut answered) {
            let _ = reports.send(r).await;
        }
        return Ok((answered, None));
    }
    let mut decoder = SseDecoder::new(max);
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        decoder.push(&data);
        while let Some(ev) = decoder.next_event()? {
            if ev.event.as_deref().is_some_and(|e| e != "message") {
                continue;
            }
            for r in report(ev.data, &mut answered) {
                let _ = reports.send(r).await;
            }
        }
    }
    Ok((answered, decoder.last_event_id().map(str::to_owned)))
}

/// The GET stream for server messages not tied to a request; reconnects until stopped.
async fn get_stream(conn: Conn, reports: mpsc::Sender<Report>, mut stop: oneshot::Receiver<()>) {
    let mut last: Option<String> = None;
    loop {
        let Ok(mut req) = request(&conn, hyper::Method::GET, Bytes::new(), b"{}", false) else {
            return;
        };
        if let Some(v) = last.as_deref().and_then(|l| HeaderValue::try_from(l).ok()) {
            req.headers_mut().insert("last-event-id", v);
        }
        let run = async {
            match conn.client.request(req).await {
                Ok(resp) if resp.status().is_success() => {
                    read_replies(conn.max_frame, resp, None, reports.clone())
                        .await
                        .ok()
                        .and_then(|(_, l)| l)
                }
                Ok(resp) if resp.status() == StatusCode::METHOD_NOT_ALLOWED => {
                    // The server offers no GET stream.
                    std::future::pending::<()>().await;
                    None
                }
                _ => None,
            }
        };
        tokio::select! {
            _ = &mut stop => return,
            l = run => { if l.is_some() { last = l } }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn delete_session(conn: &Conn) {
    if conn.session.is_none() {
        return;
    }
    if let Ok(req) = request(conn, hyper::Method::DELETE, Bytes::new(), b"{}", false) {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.client.request(req)).await;
    }
}
