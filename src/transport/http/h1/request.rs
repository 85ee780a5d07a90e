//! Reading a request: its head (with `httparse`) and how its body is framed, and chunked
//! bodies decoded as they arrive.

use bytes::{Buf, BytesMut};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri};

use super::{MAX_HEAD, MAX_HEADERS};

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyFraming {
    Empty,
    Length(usize),
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub(super) struct Head {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) http10: bool,
    pub(super) headers: HeaderMap,
    pub(super) framing: BodyFraming,
    pub(super) keep_alive: bool,
    pub(super) expect_continue: bool,
}

/// Why a request could not be read: answered with this status and the connection closed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) message: &'static str,
}

pub(super) const fn refusal(status: StatusCode, message: &'static str) -> Refusal {
    Refusal { status, message }
}

/// Parse a request head at the start of `buf`: the head and its length, `None` if it is not
/// all there yet.
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let used = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err(refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request head too large",
            ))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refusal(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header fields",
            ))
        }
        Err(_) => {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "malformed HTTP request head",
            ))
        }
    };
    if used > MAX_HEAD {
        return Err(refusal(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    let bad = |message| refusal(StatusCode::BAD_REQUEST, message);
    let method = req
        .method
        .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
        .ok_or(bad("malformed method"))?;
    let uri = req
        .path
        .and_then(|p| p.parse::<Uri>().ok())
        .ok_or(bad("malformed request target"))?;
    let http10 = req.version == Some(0);
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let mut length: Option<usize> = None;
    let (mut chunked, mut other_coding) = (false, false);
    let (mut close, mut keep) = (false, false);
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let name =
            HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad("malformed header name"))?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| bad("malformed header value"))?;
        if name == hyper::header::CONTENT_LENGTH {
            // Several values (or fields) are allowed only when they agree.
            for v in h.value.split(|b| *b == b',') {
                let n = std::str::from_utf8(v)
                    .ok()
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or(bad("malformed Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("conflicting Content-Length values"));
                }
                length = Some(n);
            }
        } else if name == hyper::header::TRANSFER_ENCODING {
            for coding in tokens(h.value) {
                // Only chunked is understood, and it must come last and once.
                if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                    other_coding = true;
                }
                chunked = true;
            }
        } else if name == hyper::header::CONNECTION {
            for t in tokens(h.value) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == hyper::header::EXPECT {
            if !h.value.eq_ignore_ascii_case(b"100-continue") {
                return Err(refusal(
                    StatusCode::EXPECTATION_FAILED,
                    "only 100-continue is understood in Expect",
                ));
            }
            expect_continue = !http10;
        }
        headers.append(name, value);
    }
    // HTTP/1.1 requires exactly one Host (RFC 9112, 3.2): the Host check against DNS
    // rebinding must never be skipped by leaving it out or sending two.
    match headers.get_all(hyper::header::HOST).iter().count() {
        0 if !http10 => return Err(bad("a Host header is required")),
        0 | 1 => {}
        _ => return Err(bad("more than one Host header")),
    }
    let framing = match (chunked, length) {
        // Both at once is how requests are smuggled past proxies: refused.
        (true, Some(_)) => {
            return Err(bad(
                "Transfer-Encoding and Content-Length in the same request",
            ))
        }
        (true, None) if other_coding || http10 => {
            return Err(refusal(
                StatusCode::NOT_IMPLEMENTED,
                "only chunked Transfer-Encoding is understood",
            ))
        }
        (true, None) => BodyFraming::Chunked,
        (false, Some(0)) | (false, None) => BodyFraming::Empty,
        (false, Some(n)) => BodyFraming::Length(n),
    };
    let head = Head {
        method,
        uri,
        http10,
        headers,
        framing,
        keep_alive: !close && (!http10 || keep),
        expect_continue,
    };
    Ok(Some((head, used)))
}

/// A header value's comma-separated tokens, trimmed, empty ones skipped.
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Where a chunked body's decoding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailers,
}

/// Decodes a chunked body as its bytes arrive.
pub(super) struct Chunked {
    state: ChunkState,
    pub(super) body: BytesMut,
    trailer_bytes: usize,
}

impl Chunked {
    pub(super) fn new() -> Chunked {
        Chunked {
            state: ChunkState::Size,
            body: BytesMut::new(),
            trailer_bytes: 0,
        }
    }

    /// Take what can be decoded from `buf`: `true` once the body is complete.
    pub(super) fn decode(&mut self, buf: &mut BytesMut, max: usize) -> Result<bool, Refusal> {
        let bad = refusal(StatusCode::BAD_REQUEST, "malformed chunked body");
        loop {
            match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        if size == 0 {
                            self.state = ChunkState::Trailers;
                            continue;
                        }
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if size > max.saturating_sub(self.body.len()) {
                            return Err(too_large());
                        }
                        self.state = ChunkState::Data(size);
                    }
                    Ok(httparse::Status::Partial) if buf.len() > 1024 => return Err(bad),
                    Ok(httparse::Status::Partial) => return Ok(false),
                    Err(_) => return Err(bad),
                },
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(false);
                    }
                    let take = left.min(buf.len());
                    self.body.extend_from_slice(&buf[..take]);
                    buf.advance(take);
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(false);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(bad);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    // Trailer fields are read and dropped, up to an empty line.
                    let Some(end) = memchr::memchr(b'\n', buf) else {
                        if self.trailer_bytes + buf.len() > MAX_HEAD {
                            return Err(bad);
                        }
                        return Ok(false);
                    };
                    let empty = end == 0 || (end == 1 && buf[0] == b'\r');
                    self.trailer_bytes += end + 1;
                    buf.advance(end + 1);
                    if empty {
                        return Ok(true);
                    }
                    if self.trailer_bytes > MAX_HEAD {
                        return Err(bad);
                    }
                }
            }
        }
    }
}

pub(super) fn too_large() -> Refusal {
    refusal(StatusCode::PAYLOAD_TOO_LARGE, "message over the size limit")
}
