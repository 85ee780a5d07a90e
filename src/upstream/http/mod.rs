//! A Streamable HTTP upstream, of either era: one upstream session, each message a POST on
//! one of the session's keep-alive connections, its exchange polled by the actor itself
//! (`conns`), its reply (JSON or an SSE stream) reported back to the actor; for the handshake
//! era also a GET stream for the server's own notifications. A 404 means the upstream
//! session expired: the actor answers what was in flight and initializes again.

mod conns;
mod requests;

use conns::*;
use requests::*;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use tokio::sync::{mpsc, oneshot};

use super::{
    hold, initialize_params, reject, ActorParts, Backoff, Cmd, Pendings, UpstreamInfo,
    UpstreamShared, Wire, INIT_TIMEOUT,
};
use crate::config::{Transport, UpstreamEra};
use crate::protocol::header_value::encode_header_value;
use crate::protocol::list_page::ListPage;
use crate::protocol::modern;
use crate::wire::envelope::{code, is_batch, split_batch};
use crate::wire::sse::SseDecoder;
use crate::wire::{json, Envelope, Kind};

/// Reconnects of one request's SSE stream (2025-11-25 polling) before giving up.
const MAX_RESUMES: usize = 5;

/// The actor of one Streamable HTTP upstream, of either era.
pub struct HttpActor {
    /// Its configuration, mailbox and reporting.
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
    target: Arc<Target>,
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
    /// Serves the mailbox until shutdown, reconnecting with backoff.
    pub async fn run(mut self) {
        let name = self.parts.config.name.clone();
        let Transport::Http {
            url,
            headers,
            http2,
        } = &self.parts.config.transport
        else {
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
        let target = match Target::from_uri(&uri, *http2) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                tracing::error!(server = %name, "bad url {url}: {e}");
                return;
            }
        };
        let base = Conn {
            target,
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
                    ListPage::parse(env.payload_str().unwrap_or(""), "tools").ok()
                }
                Ok(_) => None,
                Err(None) => return Err(None),
                Err(Some(_)) => None,
            };
            let Some(page) = page else {
                tracing::warn!(server = %self.parts.config.name, "no tools/list to learn Mcp-Param headers from");
                return Ok(());
            };
            tools.extend(page.items);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        self.parts.handle.learn_tools(&tools);
        Ok(())
    }

    async fn serve(&mut self, conn: Conn, held: Vec<Cmd>) -> Ended {
        let name = self.parts.config.name.clone();
        let (rtx, mut reports) = mpsc::channel::<Report>(1024);
        let mut conns =
            Connections::new(conn.clone(), rtx.clone(), self.parts.config.max_connections);
        let (stop_get, stopped) = oneshot::channel::<()>();
        if !conn.modern {
            // The handshake era's session: initialized, what clients had set up, the GET stream.
            let initialized = json::message(None, "notifications/initialized", None);
            conns.post(initialized, None, b"{}", false);
            for frame in (self.parts.replay)() {
                conns.post(frame, None, b"{}", false);
            }
            tokio::spawn(get_stream(conn.clone(), rtx.clone(), stopped));
        }
        self.parts.events.ready(&self.parts.handle);
        let mut pendings = Pendings::new(
            self.parts.handle.shared.clone(),
            self.parts.config.request_timeout,
        );
        let (handle, events) = (self.parts.handle.clone(), self.parts.events.clone());
        // Carry out what the id map decided: requests become POSTs (a 2026-07-28 one tracked,
        // so abandoning it closes its stream).
        let carry_out = |pendings: &mut Pendings, conns: &mut Connections| {
            let mut wire = |p: &Pendings, w: Wire| match w {
                Wire::Write { frame, uid } => send(conns, p, frame, uid),
                Wire::Abandoned(uid) => conns.cancel(uid),
            };
            super::effects::carry_out(pendings, &handle, events.as_ref(), &mut wire);
        };
        for cmd in held {
            pendings.command(cmd, Instant::now());
        }
        carry_out(&mut pendings, &mut conns);
        let ended = loop {
            let next_deadline = pendings.next_deadline().map(tokio::time::Instant::from_std);
            let woke = tokio::select! {
                Some(report) = reports.recv() => Woke::Report(report),
                event = conns.next() => Woke::Conns(event),
                _ = async { match next_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => Woke::Deadline,
                cmd = self.parts.rx.recv() => match cmd {
                    None | Some(Cmd::Shutdown) => break Ended::Shutdown,
                    Some(cmd) => Woke::Command(cmd),
                },
            };
            let mut expired = false;
            match woke {
                Woke::Report(report) => expired = apply(&mut pendings, report, &name),
                Woke::Conns(event) => {
                    for report in conns.ended(event) {
                        expired |= apply(&mut pendings, report, &name);
                    }
                }
                Woke::Deadline => pendings.expire(Instant::now()),
                Woke::Command(cmd) => pendings.command(cmd, Instant::now()),
            }
            if expired {
                break Ended::Expired;
            }
            carry_out(&mut pendings, &mut conns);
        };
        let _ = stop_get.send(());
        let why = match ended {
            Ended::Expired => "the server's session expired; retry the request",
            Ended::Shutdown => "the router is shutting down",
        };
        pendings.fail_all(why);
        carry_out(&mut pendings, &mut conns);
        tracing::debug!(server = %name, connections = conns.opened, "upstream session ended");
        drop(conns);
        if matches!(ended, Ended::Shutdown) {
            delete_session(&conn).await;
        }
        ended
    }
}

/// Learn what an exchange reported; true when it shows the upstream session expired.
fn apply(pendings: &mut Pendings, report: Report, name: &str) -> bool {
    match report {
        Report::Frame { env, related } => pendings.inbound(env, related),
        Report::Failed { expired: true, .. } => return true,
        Report::Failed {
            uid: Some(uid),
            why,
            ..
        } => pendings.fail_one(uid, code::UPSTREAM_UNAVAILABLE, &why),
        Report::Failed { uid: None, why, .. } => {
            tracing::warn!(server = %name, "upstream message failed: {why}")
        }
    }
    false
}

/// What woke an HTTP upstream's actor.
enum Woke {
    Report(Report),
    Conns(Event),
    Deadline,
    Command(Cmd),
}

/// Most pages of a tool list read at connect time (a guard against endless cursors).
const MAX_LIST_PAGES: usize = 100;
