//! Our own HTTP/1.1 server side of one client connection: request heads parsed with
//! `httparse`, bodies by length or chunked, responses written with `Content-Length` or, for
//! SSE, chunked, one request after another (pipelined requests wait their turn in the buffer).
//!
//! Why not hyper's server: it reserves a read buffer and a write buffer of 8 KiB each for
//! every connection for the connection's whole life, so a host that keeps thousands of
//! sessions on connections of their own pays 16 KiB each while they sit idle. Here an idle
//! connection holds no buffer at all (it waits for readability, then reads), a response's
//! head and body go out in one vectored write, and SSE events that are ready together go out
//! in one write.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::{Request, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod request;
mod response;

use request::*;
use response::*;

use super::hygiene::Clock;
use super::{handle, rpc_error, HttpBody, HttpFront, SseBody};
use crate::wire::envelope::code;

/// Longest request head accepted (431 beyond).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields in a request head (431 beyond).
const MAX_HEADERS: usize = 100;
/// How much is read at a time.
const READ_CHUNK: usize = 4096;
/// Bytes of later (pipelined) requests read ahead while one is answered; beyond, the
/// connection is not read until the answer is done.
const READ_AHEAD: usize = 64 * 1024;
/// SSE events taken together into one write, at most.
const WRITE_BATCH: usize = 64 * 1024;

/// Bytes read and dropped after a refusal, at most, before the connection is closed.
const DRAIN_AFTER_REFUSAL: usize = 1 << 20;

/// A client connection's byte stream.
pub trait Socket: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when a read would not wait. An idle connection waits here, holding no buffer;
    /// streams that cannot tell say ready at once (and are read into a fresh buffer).
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Socket for tokio::net::TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

/// The fuzzer's in-memory pipe.
impl Socket for tokio::io::DuplexStream {}

/// Write `a` then `b`, in as few writes as the stream takes.
async fn write_both<S: Socket>(io: &mut S, mut a: &[u8], mut b: &[u8]) -> io::Result<()> {
    while !a.is_empty() || !b.is_empty() {
        let n = io
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    io.flush().await
}

/// Room for the next read.
fn reserve(buf: &mut BytesMut, at_least: usize) {
    if buf.capacity() - buf.len() < at_least.min(READ_CHUNK) {
        buf.reserve(at_least.max(READ_CHUNK));
    }
}

/// Read what is there once the stream is readable: `false` at the end of the stream or on
/// an error.
async fn read_more<S: Socket>(io: &mut S, buf: &mut BytesMut, at_least: usize) -> bool {
    if buf.is_empty() && poll_fn(|cx| io.poll_read_ready(cx)).await.is_err() {
        return false;
    }
    reserve(buf, at_least);
    matches!(io.read_buf(buf).await, Ok(n) if n > 0)
}

/// While a request is answered: read ahead (a later pipelined request), up to a bound;
/// resolves only when the client has gone.
async fn client_gone<S: Socket>(io: &mut S, buf: &mut BytesMut) {
    while buf.len() < READ_AHEAD {
        if !read_more(io, buf, READ_CHUNK).await {
            return;
        }
    }
    std::future::pending::<()>().await
}

/// A whole response, head and body in one write: `false` if the write failed.
async fn send_whole<S: Socket>(
    io: &mut S,
    http10: bool,
    parts: &hyper::http::response::Parts,
    body: &[u8],
    close: bool,
) -> bool {
    let mut head = BytesMut::with_capacity(256);
    let delimit = Delimit::Length(body.len());
    write_head(
        &mut head,
        http10,
        parts.status,
        &parts.headers,
        delimit,
        close,
    );
    write_both(io, &head, body).await.is_ok()
}

/// Answer `refused` and close.
async fn refuse<S: Socket>(io: &mut S, http10: bool, refused: Refusal, max_body: usize) {
    let message = if refused.status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("message over the {max_body}-byte limit")
    } else {
        refused.message.to_owned()
    };
    let (parts, body) =
        rpc_error(refused.status, None, code::INVALID_REQUEST, &message).into_parts();
    if let HttpBody::Full(body) = body {
        let _ = send_whole(io, http10, &parts, &body, true).await;
    }
    let _ = io.shutdown().await;
    // What the client still sends (the body refused, say) is read and dropped for a moment:
    // closing with unread bytes would reset the connection, and the client could lose the
    // answer before reading it.
    let mut sink = vec![0u8; 1024];
    let drain = async {
        let mut left = DRAIN_AFTER_REFUSAL;
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(n) if n > 0 => left = left.saturating_sub(n),
                _ => return,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// Serve requests on `io` one after another until the client closes it, a request cannot be
/// read, or a response says to close.
pub(super) async fn serve<S: Socket>(front: Arc<HttpFront>, mut io: S, clock: Arc<Clock>) {
    let max_body = front.router.config.limits.max_frame_bytes;
    let mut buf = BytesMut::new();
    loop {
        let head = loop {
            match parse_head(&buf) {
                Ok(Some((head, used))) => {
                    buf.advance(used);
                    break head;
                }
                Ok(None) => {}
                Err(refused) => return refuse(&mut io, false, refused, max_body).await,
            }
            if !read_more(&mut io, &mut buf, READ_CHUNK).await {
                return;
            }
            clock.on_read();
        };
        let answering = clock.request_started();
        let body = match read_body(&mut io, &mut buf, &head, max_body).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(refused) => return refuse(&mut io, head.http10, refused, max_body).await,
        };
        let http10 = head.http10;
        let mut close = !head.keep_alive;
        let mut req = Request::new(body);
        *req.method_mut() = head.method;
        *req.uri_mut() = head.uri;
        *req.version_mut() = if http10 {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        *req.headers_mut() = head.headers;

        let resp = {
            // Boxed: inline, the answer's future would make every connection's task as large
            // as the largest answer for as long as the connection lives, idle or not.
            let mut answer = Box::pin(handle(&front, req));
            // Biased: the answer first, so that one ready at once costs no read of the socket.
            tokio::select! {
                biased;
                resp = &mut answer => resp,
                () = client_gone(&mut io, &mut buf) => return,
            }
        };
        let (parts, body) = resp.into_parts();
        let sent = match body {
            HttpBody::Full(b) => send_whole(&mut io, http10, &parts, &b, close).await,
            HttpBody::Sse(mut sse) => {
                let mut out = BytesMut::with_capacity(256);
                let delimit = if http10 {
                    close = true;
                    Delimit::Close
                } else {
                    Delimit::Chunked
                };
                write_head(
                    &mut out,
                    http10,
                    parts.status,
                    &parts.headers,
                    delimit,
                    close,
                );
                stream(&mut io, &mut buf, out, &mut sse, delimit).await
            }
        };
        drop(answering);
        if !sent {
            return;
        }
        if close {
            let _ = io.shutdown().await;
            return;
        }
        if buf.is_empty() {
            // Idle connections hold no buffer.
            buf = BytesMut::new();
        }
    }
}

/// Read the body `head` announces: `None` if the client went away first.
async fn read_body<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    head: &Head,
    max: usize,
) -> Result<Option<Bytes>, Refusal> {
    // A client that asked sends the body once told to (unless it is already here).
    let ask = head.expect_continue && buf.is_empty();
    match head.framing {
        BodyFraming::Empty => Ok(Some(Bytes::new())),
        BodyFraming::Length(n) if n > max => Err(too_large()),
        BodyFraming::Length(n) => {
            if ask && !continue_now(io).await {
                return Ok(None);
            }
            while buf.len() < n {
                if !read_more(io, buf, n - buf.len()).await {
                    return Ok(None);
                }
            }
            Ok(Some(buf.split_to(n).freeze()))
        }
        BodyFraming::Chunked => {
            if ask && !continue_now(io).await {
                return Ok(None);
            }
            let mut chunked = Chunked::new();
            while !chunked.decode(buf, max)? {
                if !read_more(io, buf, READ_CHUNK).await {
                    return Ok(None);
                }
            }
            Ok(Some(chunked.body.freeze()))
        }
    }
}

async fn continue_now<S: Socket>(io: &mut S) -> bool {
    write_both(io, b"HTTP/1.1 100 Continue\r\n\r\n", b"")
        .await
        .is_ok()
}

/// Send an SSE body after its head (in `out`): events ready together go out in one write;
/// `false` if the client went away or a write failed.
async fn stream<S: Socket>(
    io: &mut S,
    buf: &mut BytesMut,
    mut out: BytesMut,
    sse: &mut SseBody,
    delimit: Delimit,
) -> bool {
    let put = |out: &mut BytesMut, event: &[u8]| match delimit {
        Delimit::Chunked => put_chunk(out, event),
        _ => out.put_slice(event),
    };
    // The head goes out with the events ready now (or alone): the client learns at once
    // that it has a stream.
    let mut ended = false;
    loop {
        while !ended && out.len() < WRITE_BATCH {
            match poll_fn(|cx| Poll::Ready(sse.poll_next(cx))).await {
                Poll::Ready(Some(event)) => put(&mut out, &event),
                Poll::Ready(None) => ended = true,
                Poll::Pending => break,
            }
        }
        if ended && delimit == Delimit::Chunked {
            out.put_slice(b"0\r\n\r\n");
        }
        if !out.is_empty() {
            if write_both(io, &out, b"").await.is_err() {
                return false;
            }
            out.clear();
        }
        if ended {
            return true;
        }
        let next = tokio::select! {
            biased;
            event = poll_fn(|cx| sse.poll_next(cx)) => event,
            () = client_gone(io, buf) => return false,
        };
        match next {
            Some(event) => put(&mut out, &event),
            None => ended = true,
        }
    }
}

#[cfg(test)]
mod tests;
