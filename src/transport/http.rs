//! Client-facing Streamable HTTP (2025 handshake era): POST, GET and DELETE on one endpoint.
//!
//! A request's replies are answered as one JSON body when the response is the only message,
//! otherwise as an SSE stream whose event ids (`<stream>-<seq>`) let the client resume with
//! `Last-Event-ID` after a cut.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::ingress::{self, Answer, CancelOnDrop, Facts, Headers, ModernReply, SessionSlot};
use crate::protocol::is_known_version;
use crate::protocol::modern;
use crate::protocol::param_headers::Received;
use crate::router::Router;
use crate::session::{ReplyStream, Session};
use crate::wire::envelope::code;
use crate::wire::{json, sse, Method};

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Reconnect delay suggested to 2025-11-25 clients in the priming event.
const RETRY_MS: u64 = 1000;

/// The HTTP front end: the router plus what the listener itself tracks.
pub struct HttpFront {
    pub router: Arc<Router>,
    /// Requests being handled, for draining on shutdown.
    in_flight: AtomicUsize,
}

impl HttpFront {
    pub fn new(router: Arc<Router>) -> Arc<HttpFront> {
        Arc::new(HttpFront {
            router,
            in_flight: AtomicUsize::new(0),
        })
    }

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
        let (tcp, _) = tokio::select! {
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
        let _ = tcp.set_nodelay(true);
        tokio::spawn(serve_connection(front.clone(), tcp));
    }
}

/// Serve HTTP/1.1 on one connection (any byte stream: a TCP socket, or an in-memory pipe in
/// the fuzzer) until it closes.
pub async fn serve_connection<I>(front: Arc<HttpFront>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let front = front.clone();
        async move { Ok::<_, Infallible>(handle(&front, req).await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await
    {
        tracing::debug!("connection ended: {e}");
    }
}

/// Response bodies: a whole JSON body, or an SSE stream.
pub enum HttpBody {
    Full(Option<Bytes>),
    Sse(Box<SseBody>),
}

impl Body for HttpBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            HttpBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            HttpBody::Sse(s) => s.poll_next(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// Reads a [`ReplyStream`] as SSE, from after a sequence number.
pub struct SseBody {
    stream: Arc<ReplyStream>,
    after: u64,
    prefix: Option<Bytes>,
    keepalive: Pin<Box<tokio::time::Sleep>>,
    /// Where a reader of the session's GET stream got to, shared with the next GET.
    cursor: Option<Arc<AtomicU64>>,
    /// Released when this body ends: one GET stream per session at a time.
    _guard: Option<GetGuard>,
    /// Event ids (2025 eras) or none (2026-07-28 has no resumption).
    ids: bool,
    /// 2026-07-28: the request's method, to give its result `resultType` and cache hints.
    modern: Option<Method>,
    /// 2026-07-28: closing the stream cancels the request.
    _cancel: Option<CancelOnDrop>,
}

pub struct GetGuard(Arc<AtomicBool>);

impl Drop for GetGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SseBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if let Some(p) = self.prefix.take() {
            return Poll::Ready(Some(p));
        }
        match self.stream.poll_after(self.after, cx) {
            Poll::Ready(Some(ev)) => {
                self.after = ev.seq;
                if let Some(c) = &self.cursor {
                    c.store(ev.seq, Ordering::Relaxed);
                }
                self.keepalive
                    .as_mut()
                    .reset(tokio::time::Instant::now() + KEEPALIVE);
                let data = match &self.modern {
                    Some(method) => modern::complete_result(&ev.data, method),
                    None => ev.data,
                };
                if !self.ids {
                    return Poll::Ready(Some(sse::encode_event(None, &data)));
                }
                let id = format!("{}-{}", self.stream.stream_no, ev.seq);
                Poll::Ready(Some(sse::encode_event(Some(&id), &data)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.keepalive.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.keepalive
                        .as_mut()
                        .reset(tokio::time::Instant::now() + KEEPALIVE);
                    Poll::Ready(Some(Bytes::from_static(b": keep-alive\n\n")))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

fn sse_body(stream: Arc<ReplyStream>, after: u64, prefix: Option<Bytes>) -> SseBody {
    SseBody {
        stream,
        after,
        prefix,
        keepalive: Box::pin(tokio::time::sleep(KEEPALIVE)),
        cursor: None,
        _guard: None,
        ids: true,
        modern: None,
        _cancel: None,
    }
}

fn full(status: StatusCode, content_type: Option<&'static str>, body: Bytes) -> Response<HttpBody> {
    let mut r = Response::new(HttpBody::Full(if body.is_empty() {
        None
    } else {
        Some(body)
    }));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

/// An HTTP error carrying a JSON-RPC error body (id null unless known).
fn rpc_error(
    status: StatusCode,
    id: Option<&[u8]>,
    code: i64,
    message: &str,
) -> Response<HttpBody> {
    full(
        status,
        Some("application/json"),
        json::error(id, code, message, None),
    )
}

fn sse_response(body: SseBody, session_id: Option<&str>) -> Response<HttpBody> {
    let mut r = Response::new(HttpBody::Sse(Box::new(body)));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = session_id.and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert(SESSION_HEADER, id);
    }
    r
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn handle(front: &Arc<HttpFront>, req: Request<Incoming>) -> Response<HttpBody> {
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
        let body = format!(
            "{{\"status\":\"ok\",\"sessions\":{}}}",
            router.sessions.len()
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

impl Headers for HeaderMap {
    fn get(&self, name: &str) -> Option<&str> {
        header(self, name)
    }

    fn param_headers(&self) -> Received {
        self.iter()
            .filter(|(n, _)| n.as_str().starts_with("mcp-param-"))
            .map(|(n, v)| {
                (
                    n.as_str().into(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect()
    }
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

/// The session named by the request, or the HTTP error for its absence.
fn session_of(router: &Router, h: &HeaderMap) -> Result<Arc<Session>, Box<Response<HttpBody>>> {
    let Some(id) = header(h, SESSION_HEADER) else {
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            None,
            code::INVALID_REQUEST,
            "Mcp-Session-Id header is required",
        )));
    };
    match router.sessions.get(id) {
        Some(s) if !s.is_closed() => Ok(s),
        _ => Err(Box::new(rpc_error(
            StatusCode::NOT_FOUND,
            None,
            code::INVALID_REQUEST,
            "session not found (it may have expired); initialize again",
        ))),
    }
}

async fn post(router: &Arc<Router>, req: Request<Incoming>) -> Response<HttpBody> {
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
    let session_header = header(h, SESSION_HEADER).map(str::to_owned);
    let max = router.config.limits.max_frame_bytes;
    let body = match http_body_util::Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return rpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                None,
                code::INVALID_REQUEST,
                &format!("message over the {max}-byte limit"),
            )
        }
        Err(_) => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                code::PARSE_ERROR,
                "could not read the body",
            )
        }
    };

    let facts = Facts {
        headers: Some(h),
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
        Answer::Started { frame, session_id } => {
            let mut r = full(StatusCode::OK, Some("application/json"), frame);
            if let Ok(v) = HeaderValue::from_str(&session_id) {
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
        return full(status, Some("application/json"), m.complete(&only));
    }
    let (stream, method, cancel) = m.into_parts();
    let mut body = sse_body(stream, 0, None);
    body.ids = false;
    body.modern = Some(method);
    body._cancel = Some(cancel);
    sse_response(body, None)
}

/// GET and DELETE without a session come from 2026-07-28 clients (which have neither) or from
/// clients that never initialized: 405, as the 2026 transport says, unless a legacy version
/// header shows a legacy client that lost its session id (400).
fn no_session_method(h: &HeaderMap) -> Option<Response<HttpBody>> {
    if h.contains_key(SESSION_HEADER) {
        return None;
    }
    match header(h, VERSION_HEADER) {
        Some(v) if is_known_version(v) => None,
        _ => {
            let mut r = full(StatusCode::METHOD_NOT_ALLOWED, None, Bytes::new());
            r.headers_mut()
                .insert(hyper::header::ALLOW, HeaderValue::from_static("POST"));
            Some(r)
        }
    }
}

fn get(router: &Arc<Router>, req: Request<Incoming>) -> Response<HttpBody> {
    let h = req.headers();
    if let Some(r) = no_session_method(h) {
        return r;
    }
    if !accepts(h, "text/event-stream") {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            None,
            code::INVALID_REQUEST,
            "Accept must list text/event-stream",
        );
    }
    if let Some(refused) = ingress::check_version(h, None) {
        return answer(refused);
    }
    let session = match session_of(router, h) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    session.touch();
    // Resuming: `<stream>-<seq>` names the stream and the last event the client saw.
    if let Some(last) = header(h, "last-event-id") {
        let parsed = last
            .split_once('-')
            .and_then(|(s, n)| Some((s.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        let Some((no, seq)) = parsed else {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                None,
                code::INVALID_REQUEST,
                "malformed Last-Event-ID",
            );
        };
        let Some(stream) = session.stream(no) else {
            return rpc_error(
                StatusCode::NOT_FOUND,
                None,
                code::INVALID_REQUEST,
                "that stream is no longer kept",
            );
        };
        if no != 0 {
            return sse_response(sse_body(stream, seq, None), None);
        }
    }
    let Some(stream) = session.stream(0) else {
        return full(StatusCode::METHOD_NOT_ALLOWED, None, Bytes::new());
    };
    let (flag, cursor) = session.get_stream_state();
    if flag.swap(true, Ordering::AcqRel) {
        return rpc_error(
            StatusCode::CONFLICT,
            None,
            code::INVALID_REQUEST,
            "a GET stream is already open for this session",
        );
    }
    let after = header(h, "last-event-id")
        .and_then(|l| l.split_once('-')?.1.parse::<u64>().ok())
        .unwrap_or_else(|| cursor.load(Ordering::Relaxed));
    let mut body = sse_body(stream, after, None);
    body.cursor = Some(cursor);
    body._guard = Some(GetGuard(flag));
    sse_response(body, None)
}

fn delete(router: &Arc<Router>, req: Request<Incoming>) -> Response<HttpBody> {
    if let Some(r) = no_session_method(req.headers()) {
        return r;
    }
    let session = match session_of(router, req.headers()) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    router.sessions.remove(&session.id);
    session.close();
    tracing::info!(session = %session.id, "session deleted by client");
    full(StatusCode::OK, None, Bytes::new())
}
