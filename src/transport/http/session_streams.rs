//! What a handshake-era session does besides POST: its GET stream (resumable with
//! `Last-Event-ID`) and DELETE.

use super::*;

/// The session named by the request, or the HTTP error for its absence.
pub(super) fn session_of(
    router: &Router,
    h: &HeaderMap,
) -> Result<Arc<Session>, Box<Response<HttpBody>>> {
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

/// GET and DELETE without a session come from 2026-07-28 clients (which have neither) or from
/// clients that never initialized: 405, as the 2026 transport says, unless a legacy version
/// header shows a legacy client that lost its session id (400).
pub(super) fn no_session_method(h: &HeaderMap) -> Option<Response<HttpBody>> {
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

pub(super) fn get(router: &Arc<Router>, req: Request<Bytes>) -> Response<HttpBody> {
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
    if let Some(refused) = ingress::check_version(&McpHeaders::read(h), None) {
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

pub(super) fn delete(router: &Arc<Router>, req: Request<Bytes>) -> Response<HttpBody> {
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
