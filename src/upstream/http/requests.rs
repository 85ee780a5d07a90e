//! The HTTP exchanges of an upstream session: each request POSTed (with the Mcp-* headers a
//! 2026 server needs) and its reply read as JSON or SSE, resumed after a cut; the GET
//! stream of a handshake-era session, and its DELETE. Which connection carries them is
//! [`super::conns`]'s business.

use super::*;

/// An HTTP request to the upstream. For a 2026-07-28 upstream a POSTed request gets the
/// `_meta` it needs (with `caps`, the calling client's capabilities) and the Mcp-* headers.
pub(super) fn request(
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
    // Built in place: each step of `Request::builder()` moves the whole request (a third of
    // this function's cost was those copies).
    let get = method == hyper::Method::GET;
    let mut req = Request::new(Full::new(body));
    *req.method_mut() = method;
    *req.uri_mut() = conn.target.path.clone();
    let h = req.headers_mut();
    // HTTP/2 names the server in `:authority`, from the absolute target.
    if !conn.target.http2 {
        h.append(hyper::header::HOST, conn.target.authority.clone());
    }
    for (k, v) in conn.headers.iter() {
        h.append(k, v.clone());
    }
    if get {
        h.append(ACCEPT, HeaderValue::from_static("text/event-stream"));
    } else {
        h.append(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        h.append(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    if conn.modern {
        h.append(PROTOCOL_VERSION, conn.version.clone());
        for (k, v) in extra {
            h.append(k, HeaderValue::try_from(v).map_err(|e| e.to_string())?);
        }
    } else if let Some(s) = &conn.session {
        h.append(SESSION_ID, s.clone());
        h.append(PROTOCOL_VERSION, conn.version.clone());
    }
    Ok(req)
}

const ACCEPT: HeaderName = hyper::header::ACCEPT;
const CONTENT_TYPE: HeaderName = hyper::header::CONTENT_TYPE;
const PROTOCOL_VERSION: HeaderName = HeaderName::from_static("mcp-protocol-version");
const SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// The `Mcp-Param-*` headers a `tools/call` to a 2026 upstream carries, mirrored from its
/// arguments by the tool's schema (none for a tool that declares none: no parse then).
pub(super) fn param_headers(
    shared: &UpstreamShared,
    r: &modern::UpstreamRequest,
) -> Result<Vec<(HeaderName, String)>, String> {
    let table = shared.param_headers.load();
    let Some(headers) = r.name.as_deref().and_then(|n| table.get(n)) else {
        return Ok(Vec::new());
    };
    let env = Envelope::parse(r.frame.clone()).map_err(|e| e.message)?;
    let arguments = crate::protocol::param_headers::parse_arguments(env.peek().arguments)?;
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
pub(super) async fn exchange(
    conn: &Conn,
    frame: Bytes,
) -> Result<(Option<HeaderValue>, Envelope), String> {
    let resp = send_once(
        conn,
        request(conn, hyper::Method::POST, frame, b"{}", false)?,
    )
    .await?;
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
pub(super) fn send(conns: &mut Connections, pendings: &Pendings, frame: Bytes, uid: Option<u64>) {
    match uid {
        Some(uid) => {
            let strip = !conns.modern() && pendings.from_modern_client(uid);
            conns.post(frame, Some(uid), &pendings.caps_of(uid), strip);
        }
        None if conns.modern() => {
            tracing::debug!("message for a 2026-07-28 upstream dropped (not a request)")
        }
        None => conns.post(frame, None, b"{}", false),
    }
}

/// Report the reply to a POST (request `uid`, or a message that is no request): its
/// messages, or why it has none.
pub(super) async fn handle_reply(
    conn: &Conn,
    uid: Option<u64>,
    resp: Response<Incoming>,
    reports: &mpsc::Sender<Report>,
) {
    let failed = |why: String, expired: bool| Report::Failed { uid, why, expired };
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
                resume(conn, uid, last.clone(), reports).await;
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
}

/// The server closed a request's SSE stream before its response: reconnect with
/// `Last-Event-ID` (2025-11-25 polling), a few times.
pub(super) async fn resume(
    conn: &Conn,
    uid: u64,
    mut last: String,
    reports: &mpsc::Sender<Report>,
) {
    for _ in 0..MAX_RESUMES {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(mut req) = request(conn, hyper::Method::GET, Bytes::new(), b"{}", false) else {
            break;
        };
        if let Ok(v) = HeaderValue::try_from(last.as_str()) {
            req.headers_mut().insert("last-event-id", v);
        }
        let Ok(resp) = send_once(conn, req).await else {
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
pub(super) async fn read_replies(
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
pub(super) async fn get_stream(
    conn: Conn,
    reports: mpsc::Sender<Report>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut last: Option<String> = None;
    loop {
        let Ok(mut req) = request(&conn, hyper::Method::GET, Bytes::new(), b"{}", false) else {
            return;
        };
        if let Some(v) = last.as_deref().and_then(|l| HeaderValue::try_from(l).ok()) {
            req.headers_mut().insert("last-event-id", v);
        }
        let run = async {
            match send_once(&conn, req).await {
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

pub(super) async fn delete_session(conn: &Conn) {
    if conn.session.is_none() {
        return;
    }
    if let Ok(req) = request(conn, hyper::Method::DELETE, Bytes::new(), b"{}", false) {
        let _ = tokio::time::timeout(Duration::from_secs(2), send_once(conn, req)).await;
    }
}
