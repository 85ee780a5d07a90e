//! Writing a response head, and chunks of a streamed body.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};
use hyper::header::HeaderMap;
use hyper::StatusCode;

/// How a response's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delimit {
    Length(usize),
    Chunked,
    /// HTTP/1.0 streams end when the connection does.
    Close,
}

/// Write a response head into `out`.
pub(super) fn write_head(
    out: &mut BytesMut,
    http10: bool,
    status: StatusCode,
    headers: &HeaderMap,
    delimit: Delimit,
    close: bool,
) {
    out.put_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    match delimit {
        Delimit::Length(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Delimit::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
        Delimit::Close => {}
    }
    if close {
        out.put_slice(b"connection: close\r\n");
    } else if http10 {
        out.put_slice(b"connection: keep-alive\r\n");
    }
    out.put_slice(b"date: ");
    date::put(out);
    out.put_slice(b"\r\n\r\n");
}

/// The `Date` header's value, formatted once a second per thread.
mod date {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};

    use bytes::{BufMut, BytesMut};

    thread_local! {
        static NOW: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }

    pub(super) fn put(out: &mut BytesMut) {
        let now = SystemTime::now();
        let second = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        NOW.with_borrow_mut(|(at, text)| {
            if *at != second {
                *at = second;
                *text = httpdate::fmt_http_date(now);
            }
            out.put_slice(text.as_bytes());
        });
    }
}

/// One chunk of a chunked body.
pub(super) fn put_chunk(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let _ = write!(out, "{:x}\r\n", data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}
