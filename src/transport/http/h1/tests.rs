use super::*;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;

fn head(raw: &[u8]) -> Result<Option<(Head, usize)>, Refusal> {
    parse_head(raw)
}

fn complete(raw: &[u8]) -> Head {
    match head(raw) {
        Ok(Some((h, used))) => {
            assert_eq!(used, raw.len(), "the whole head is taken");
            h
        }
        other => panic!("not a complete head: {other:?}"),
    }
}

fn status_of(raw: &[u8]) -> StatusCode {
    match head(raw) {
        Err(r) => r.status,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_head_is_parsed_with_its_framing_and_connection_rules() {
    let h = complete(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n");
    assert_eq!((h.method.clone(), h.uri.path()), (Method::POST, "/mcp"));
    assert_eq!(h.framing, BodyFraming::Length(12));
    assert!(h.keep_alive && !h.http10 && !h.expect_continue);
    assert_eq!(h.headers.get("host").map(|v| v.as_bytes()), Some(&b"x"[..]));

    let h = complete(
        b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(h.framing, BodyFraming::Chunked);
    assert!(!h.keep_alive);

    let h = complete(b"GET /mcp HTTP/1.0\r\n\r\n");
    assert!(h.http10 && !h.keep_alive, "1.0 closes unless asked");
    assert_eq!(h.framing, BodyFraming::Empty);
    let h = complete(b"GET /mcp HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert!(h.keep_alive);

    let h = complete(
        b"POST /mcp HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5, 5\r\n\r\n",
    );
    assert!(h.expect_continue);
    assert_eq!(
        h.framing,
        BodyFraming::Length(5),
        "agreeing values are one length"
    );

    // Empty lines before a request line are skipped.
    let h = complete(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.uri.path(), "/");
}

#[test]
fn a_partial_head_waits_and_a_bad_one_is_refused_with_its_status() {
    assert!(matches!(
        head(b"POST /mcp HTTP/1.1\r\nHost: x\r\n"),
        Ok(None)
    ));
    assert!(matches!(head(b""), Ok(None)));
    assert_eq!(
        status_of(
            b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
        StatusCode::BAD_REQUEST,
        "both framings at once is a smuggling attempt"
    );
    assert_eq!(
        status_of(b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        status_of(b"POST /mcp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        status_of(b"POST /mcp HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n"),
        StatusCode::EXPECTATION_FAILED
    );
    assert_eq!(
        status_of(b"NOT HTTP AT ALL\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status_of(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: x\r\n\r\n"),
        StatusCode::BAD_REQUEST
    );

    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..=MAX_HEADERS {
        many.extend_from_slice(format!("x-{i}: y\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(
        status_of(&many),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );

    let mut long = b"GET / HTTP/1.1\r\nx-long: ".to_vec();
    long.resize(MAX_HEAD + 1, b'a');
    assert_eq!(
        status_of(&long),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "an unfinished head over the limit"
    );
}

/// Decode `wire` fed in pieces of `step` bytes.
fn decode_in_steps(wire: &[u8], step: usize, max: usize) -> Result<(Bytes, BytesMut), Refusal> {
    let mut chunked = Chunked::new();
    let mut buf = BytesMut::new();
    for piece in wire.chunks(step) {
        buf.extend_from_slice(piece);
        if chunked.decode(&mut buf, max)? {
            return Ok((chunked.body.freeze(), buf));
        }
    }
    panic!(
        "incomplete after all of {:?}",
        String::from_utf8_lossy(wire)
    );
}

#[test]
fn a_chunked_body_decodes_however_its_bytes_arrive() {
    let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
    for step in [1, 2, 3, 7, wire.len()] {
        let (body, rest) = decode_in_steps(wire, step, 1024).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(&body[..], b"hello, world", "step {step}");
        // What follows the body (a pipelined request) is left for the next head.
        assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
        if step == wire.len() {
            assert_eq!(&rest[..], b"NEXT");
        }
    }
}

#[test]
fn a_chunked_body_over_the_limit_or_malformed_is_refused() {
    let over = decode_in_steps(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 64, 8);
    assert_eq!(
        over.err().map(|r| r.status),
        Some(StatusCode::PAYLOAD_TOO_LARGE)
    );
    let huge = decode_in_steps(b"ffffffffffffffff\r\n", 64, 8);
    assert_eq!(
        huge.err().map(|r| r.status),
        Some(StatusCode::PAYLOAD_TOO_LARGE)
    );
    let no_crlf = decode_in_steps(b"5\r\nhelloXX0\r\n\r\n", 64, 64);
    assert_eq!(
        no_crlf.err().map(|r| r.status),
        Some(StatusCode::BAD_REQUEST)
    );
    let not_hex = decode_in_steps(b"zz\r\n", 64, 64);
    assert_eq!(
        not_hex.err().map(|r| r.status),
        Some(StatusCode::BAD_REQUEST)
    );
}

#[test]
fn a_response_head_says_its_length_or_chunking_and_whether_it_closes() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut out = BytesMut::new();
    write_head(
        &mut out,
        false,
        StatusCode::OK,
        &headers,
        Delimit::Length(42),
        false,
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.starts_with(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 42\r\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("\r\ndate: ") && text.ends_with(" GMT\r\n\r\n"),
        "{text}"
    );
    assert!(!text.contains("connection:"), "{text}");

    out.clear();
    write_head(
        &mut out,
        false,
        StatusCode::PAYLOAD_TOO_LARGE,
        &HeaderMap::new(),
        Delimit::Chunked,
        true,
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.starts_with(
            "HTTP/1.1 413 Payload Too Large\r\ntransfer-encoding: chunked\r\nconnection: close\r\n"
        ),
        "{text}"
    );

    out.clear();
    write_head(
        &mut out,
        true,
        StatusCode::OK,
        &HeaderMap::new(),
        Delimit::Close,
        false,
    );
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(
        text.starts_with("HTTP/1.0 200 OK\r\nconnection: keep-alive\r\n"),
        "{text}"
    );

    out.clear();
    put_chunk(&mut out, b"0123456789abcdefX");
    put_chunk(&mut out, b"");
    assert_eq!(
        &out[..],
        b"11\r\n0123456789abcdefX\r\n",
        "an empty chunk would end the body: never written"
    );
}

/// What an idle connection holds is mostly its task: the answer's future is boxed and the
/// buffers are dropped between requests, so the task must stay small. (A future that grew
/// past this bound by holding a buffer or an inline answer would be seen here first.)
#[test]
fn a_connection_task_stays_small() {
    let config = crate::config::Config::parse("", "t").unwrap_or_else(|e| panic!("{e}"));
    let front = crate::transport::http::HttpFront::new(crate::router::Router::new(config));
    let (a, _b) = tokio::io::duplex(64);
    let task = crate::transport::http::serve_connection(front, a);
    let size = std::mem::size_of_val(&task);
    assert!(size < 3 * 1024, "a connection's future is {size} bytes");
}
