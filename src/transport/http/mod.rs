//! Client-facing Streamable HTTP (2025 handshake era): POST, GET and DELETE on one endpoint.
//!
//! A request's replies are answered as one JSON body when the response is the only message,
//! otherwise as an SSE stream whose event ids (`<stream>-<seq>`) let the client resume with
//! `Last-Event-ID` after a cut.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::ingress::{self, Answer, CancelOnDrop, Facts, ModernReply, SessionSlot};
use crate::protocol::is_known_version;
use crate::protocol::modern;
use crate::router::Router;
use crate::router::Session;
use crate::session::ReplyStream;
use crate::wire::envelope::code;
use crate::wire::{json, sse};

mod body;
mod h1;
pub mod hygiene;
mod mcp_headers;
mod session_streams;

use body::*;
pub use body::{GetGuard, HttpBody, SseBody};
pub use h1::Socket;
use mcp_headers::McpHeaders;
use session_streams::*;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Reconnect delay suggested to 2025-11-25 clients in the priming event.
const RETRY_MS: u64 = 1000;

/// The HTTP front end: the router plus what the listener itself tracks.
pub struct HttpFront {
    /// The router every request goes to.
    pub router: Arc<Router>,
    /// Requests being handled, for draining on shutdown.
    in_flight: AtomicUsize,
    /// Open connections, in all and per client address.
    pub connections: Arc<hygiene::ConnectionCaps>,
}

impl HttpFront {
    /// A front for `router`, with caps of its own on open connections.
    pub fn new(router: Arc<Router>) -> Arc<HttpFront> {
        let connections = hygiene::ConnectionCaps::new(&router.config.limits, 1);
        HttpFront::with_caps(router, connections)
    }

    /// A front for `router` counting its connections in `connections` (shared by the
    /// fronts of every worker shard, so the caps hold in all).
    pub fn with_caps(
        router: Arc<Router>,
        connections: Arc<hygiene::ConnectionCaps>,
    ) -> Arc<HttpFront> {
        Arc::new(HttpFront {
            router,
            in_flight: AtomicUsize::new(0),
            connections,
        })
    }

    /// Requests being handled now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Accept connections until `stop` resolves.
pub async fn serve(
    front: Arc<HttpFront>,
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admitted = match front.connections.admit(peer.ip()) {
            Ok(a) => a,
            Err(_) => {
                // Refused at once (the cap logged it): a 503 if the socket takes it, then closed.
                let _ = tcp.try_write(hygiene::REFUSAL);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let front = front.clone();
        tokio::spawn(async move {
            serve_connection(front, tcp).await;
            drop(admitted);
        });
    }
}

/// Serve HTTP/1.1 on one connection (a TCP socket, or an in-memory pipe in the fuzzer)
/// until it closes.
pub async fn serve_connection<S: Socket>(front: Arc<HttpFront>, io: S) {
    let limits = &front.router.config.limits;
    let (header, idle) = (limits.header_read_timeout, limits.idle_timeout);
    let clock = hygiene::Clock::new();
    // A client that sends half a request head and stalls, or keeps a connection open and
    // sends nothing, holds a socket and a task: the watchdog closes it once overdue.
    tokio::select! {
        () = h1::serve(front.clone(), io, clock.clone()) => {}
        why = clock.overdue(header, idle) => tracing::debug!("connection closed: {why}"),
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Answers one HTTP request (its body read whole, within `max_frame_bytes`) on the MCP
/// endpoint (or `/healthz`): checks Host and Origin, then hands the body to the ingress.
pub async fn handle(front: &Arc<HttpFront>, req: Request<Bytes>) -> Response<HttpBody> {
    front.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(&front.in_flight);
    let router = &front.router;
    let listen = &router.config.listen;
    if let Err(resp) = check_host_and_origin(
        req.headers(),
        &listen.allowed_hosts,
        &listen.allowed_origins,
    ) {
        return *resp;
    }
    let path = req.uri().path();
    if path == "/healthz" && req.method() == HttpMethod::GET {
        let by_worker: Vec<String> = front
            .connections
            .open_by_shard()
            .iter()
            .map(usize::to_string)
            .collect();
        let body = format!(
            "{{\"status\":\"ok\",\"sessions\":{},\"connections\":{},\"connections_by_worker\":[{}]}}",
            router.sessions.len(),
            front.connections.open(),
            by_worker.join(",")
        );
        return full(StatusCode::OK, Some("application/json"), Bytes::from(body));
    }
    if path != listen.path {
        return full(StatusCode::NOT_FOUND, None, Bytes::new());
    }
    match *req.method() {
        HttpMethod::POST => post(router, req).await,
        HttpMethod::GET => get(router, req),
        HttpMethod::DELETE => delete(router, req),
        _ => {
            let mut r = full(StatusCode::METHOD_NOT_ALLOWED, None, Bytes::new());
            r.headers_mut().insert(
                hyper::header::ALLOW,
                HeaderValue::from_static("GET, POST, DELETE"),
            );
            r
        }
    }
}

/// DNS-rebinding protection: Host must name this machine (or a configured name), and a
/// present Origin must be a loopback or configured origin.
fn check_host_and_origin(
    h: &HeaderMap,
    hosts: &[String],
    origins: &[String],
) -> Result<(), Box<Response<HttpBody>>> {
    let loopback = |host: &str| {
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        matches!(
            name.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "::1"
        )
    };
    if let Some(host) = h.get(hyper::header::HOST) {
        let host = host.to_str().unwrap_or("");
        if !loopback(host) && !hosts.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return Err(Box::new(rpc_error(
                StatusCode::FORBIDDEN,
                None,
                code::INVALID_REQUEST,
                "Host not allowed",
            )));
        }
    }
    if let Some(origin) = h.get(hyper::header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        let ok = host.is_some_and(|h| !h.contains('/') && loopback(h))
            || origins.iter().any(|o| o == origin);
        if !ok {
            return Err(Box::new(rpc_error(
                StatusCode::FORBIDDEN,
                None,
                code::INVALID_REQUEST,
                "Origin not allowed",
            )));
        }
    }
    Ok(())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn accepts(h: &HeaderMap, mime: &str) -> bool {
    h.get_all(hyper::header::ACCEPT).iter().any(|v| {
        v.to_str().unwrap_or("").split(',').any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m == mime || m == "*/*" || (m.ends_with("/*") && mime.starts_with(&m[..m.len() - 1]))
        })
    })
}

async fn post(router: &Arc<Router>, req: Request<Bytes>) -> Response<HttpBody> {
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    if !(accepts(h, "application/json") && accepts(h, "text/event-stream")) {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::INVALID_REQUEST,
            "Accept must list application/json and text/event-stream",
        );
    }
    let ct = header(h, "content-type").unwrap_or("");
    if !ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/json")
    {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
            code::INVALID_REQUEST,
            "Content-Type must be application/json",
        );
    }
    let mcp = McpHeaders::read(h);
    let session_header = mcp.session_id().map(str::to_owned);
    let facts = Facts {
        headers: Some(&mcp),
        session: SessionSlot::Named(session_header.as_deref()),
    };
    match ingress::receive(router, body, facts).await {
        Answer::Reply { status, frame } => full(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Some("application/json"),
            frame,
        ),
        Answer::Batch(answers) if answers.is_empty() => {
            full(StatusCode::ACCEPTED, None, Bytes::new())
        }
        Answer::Batch(answers) => {
            let mut out = bytes::BytesMut::new();
            json::push_array(&mut out, &answers);
            full(StatusCode::OK, Some("application/json"), out.freeze())
        }
        Answer::Accepted => full(StatusCode::ACCEPTED, None, Bytes::new()),
        Answer::Started { frame, session } => {
            let mut r = full(StatusCode::OK, Some("application/json"), frame);
            if let Ok(v) = HeaderValue::from_str(&session.id) {
                r.headers_mut().insert(SESSION_HEADER, v);
            }
            r
        }
        Answer::Legacy { session, stream } => reply(&session, stream).await,
        Answer::Modern(m) => modern_reply(m).await,
    }
}

/// A refusal from the ingress as a response.
fn answer(a: Answer) -> Response<HttpBody> {
    match a {
        Answer::Reply { status, frame } => full(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Some("application/json"),
            frame,
        ),
        _ => full(StatusCode::ACCEPTED, None, Bytes::new()),
    }
}

/// Answer with plain JSON if the response is the only message, else stream SSE.
async fn reply(session: &Arc<Session>, stream: Arc<ReplyStream>) -> Response<HttpBody> {
    if stream.next_after(0).await.is_none() {
        return rpc_error(
            StatusCode::NOT_FOUND,
            None,
            code::INVALID_REQUEST,
            "session closed",
        );
    }
    if let Some(only) = stream.only_message() {
        return full(StatusCode::OK, Some("application/json"), only);
    }
    session.keep_stream(&stream);
    let era = session.era();
    let prefix = era
        .primes_streams()
        .then(|| sse::priming_event(&format!("{}-0", stream.stream_no), RETRY_MS));
    sse_response(sse_body(stream, 0, prefix), None)
}

/// A 2026-07-28 request's replies: plain JSON (with the status its error calls for) when the
/// response is the only message, else an SSE stream without event ids; closing it cancels.
async fn modern_reply(m: ModernReply) -> Response<HttpBody> {
    if m.stream.next_after(0).await.is_none() {
        return rpc_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            code::INTERNAL_ERROR,
            "no reply",
        );
    }
    if let Some(only) = m.stream.only_message() {
        let status = StatusCode::from_u16(modern::http_status(&only)).unwrap_or(StatusCode::OK);
        return full(status, Some("application/json"), only);
    }
    let (stream, cancel) = m.into_parts();
    let mut body = sse_body(stream, 0, None);
    body.ids = false;
    body._cancel = Some(cancel);
    sse_response(body, None)
}
