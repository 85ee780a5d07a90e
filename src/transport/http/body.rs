//! Response bodies: a whole JSON body, or a reply stream read as SSE (with keep-alives,
//! event ids for resuming, and 2026-07-28 completion).

use super::*;

/// Response bodies: a whole JSON body, or an SSE stream.
pub enum HttpBody {
    /// A whole body (sent with its length).
    Full(Bytes),
    /// An SSE stream.
    Sse(Box<SseBody>),
}

/// Reads a [`ReplyStream`] as SSE, from after a sequence number.
pub struct SseBody {
    stream: Arc<ReplyStream>,
    after: u64,
    prefix: Option<Bytes>,
    keepalive: Pin<Box<tokio::time::Sleep>>,
    /// Where a reader of the session's GET stream got to, shared with the next GET.
    pub(super) cursor: Option<Arc<AtomicU64>>,
    /// Released when this body ends: one GET stream per session at a time.
    pub(super) _guard: Option<GetGuard>,
    /// Event ids (2025 eras) or none (2026-07-28 has no resumption).
    pub(super) ids: bool,
    /// 2026-07-28: closing the stream cancels the request.
    pub(super) _cancel: Option<CancelOnDrop>,
}

/// Marks a session's GET stream open; dropping it marks it closed.
pub struct GetGuard(pub(super) Arc<AtomicBool>);

impl Drop for GetGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl SseBody {
    pub(super) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
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
                let data = ev.data;
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

pub(super) fn sse_body(stream: Arc<ReplyStream>, after: u64, prefix: Option<Bytes>) -> SseBody {
    SseBody {
        stream,
        after,
        prefix,
        keepalive: Box::pin(tokio::time::sleep(KEEPALIVE)),
        cursor: None,
        _guard: None,
        ids: true,
        _cancel: None,
    }
}

pub(super) fn full(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: Bytes,
) -> Response<HttpBody> {
    let mut r = Response::new(HttpBody::Full(body));
    *r.status_mut() = status;
    if let Some(ct) = content_type {
        r.headers_mut()
            .insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    r
}

/// An HTTP error carrying a JSON-RPC error body (id null unless known).
pub(super) fn rpc_error(
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

pub(super) fn sse_response(body: SseBody, session_id: Option<&str>) -> Response<HttpBody> {
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
