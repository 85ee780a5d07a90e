//! The properties the fuzzers check, one function per target. The cargo-fuzz targets in
//! `fuzz/` call these, and `tests/fuzz_inputs.rs` runs every seed and every saved crash
//! input through them in the normal test suite. Each panics when its property fails.
#![doc(hidden)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Config;
use crate::router::Router;
use crate::transport::http::{serve_connection, HttpFront};
use crate::wire::envelope::{code, split_batch};
use crate::wire::frame::{Line, LineDecoder};
use crate::wire::params::ParamsPeek;
use crate::wire::rewrite::{splice, Edit};
use crate::wire::sse::{encode_event, SseDecoder};
use crate::wire::Envelope;

fn decode_lines<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Line> {
    decode_lines_within(64, chunks)
}

/// Every item a line decoder with limit `max` gives for a stream read in these chunks.
pub fn decode_lines_within<'a>(max: usize, chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Line> {
    let mut d = LineDecoder::new(max);
    let mut out = Vec::new();
    for c in chunks {
        d.buffer().extend_from_slice(c);
        while let Some(l) = d.next_line() {
            out.push(l);
        }
    }
    out.extend(d.finish());
    out
}

/// Newline framing: frames within the limit, without newlines, the same however cut.
pub fn newline_framing(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let whole = decode_lines(std::iter::once(rest));
    let pieces = decode_lines(rest.chunks(cut as usize % 17 + 1));
    assert_eq!(whole, pieces);
    for l in whole {
        if let Line::Frame(f) = l {
            assert!(f.len() <= 64 && !f.contains(&b'\n'));
        }
    }
}

/// The limits `decoder_limits` picks from: small ones, and the top of the range where
/// `max + 1` used to wrap.
const LIMITS: [usize; 12] = [
    0,
    1,
    2,
    7,
    64,
    4096,
    u32::MAX as usize,
    usize::MAX / 2,
    usize::MAX - 8,
    usize::MAX - 2,
    usize::MAX - 1,
    usize::MAX,
];

/// Every event (or size error) an SSE decoder with limit `max` gives for these chunks.
pub fn decode_events<'a>(
    max: usize,
    chunks: impl Iterator<Item = &'a [u8]>,
) -> Vec<Result<Bytes, ()>> {
    let mut d = SseDecoder::new(max);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        loop {
            match d.next_event() {
                Ok(Some(ev)) => out.push(Ok(ev.data)),
                Ok(None) => break,
                Err(_) => out.push(Err(())),
            }
        }
    }
    out
}

/// Both decoders at a limit taken from the input (first byte), cut at a size taken from the
/// second: frames and events never over the limit; lines the same however cut; a limit no
/// input can reach (the whole stream fits) drops nothing, and neither decoder then depends
/// on read boundaries.
pub fn decoder_limits(data: &[u8]) {
    let [pick, cut, rest @ ..] = data else {
        return;
    };
    let max = LIMITS[*pick as usize % LIMITS.len()];
    let cut = *cut as usize % 17 + 1;
    let whole = decode_lines_within(max, std::iter::once(rest));
    assert_eq!(whole, decode_lines_within(max, rest.chunks(cut)));
    let unreachable = max >= rest.len().saturating_add(8);
    for l in &whole {
        match l {
            Line::Frame(f) => assert!(f.len() <= max && !f.contains(&b'\n')),
            Line::Oversized { .. } => assert!(!unreachable, "oversized under limit {max}"),
        }
    }
    let events = decode_events(max, std::iter::once(rest));
    for ev in &events {
        match ev {
            Ok(d) => assert!(d.len() <= max),
            Err(()) => assert!(!unreachable, "SSE error under limit {max}"),
        }
    }
    if unreachable {
        assert_eq!(events, decode_events(max, rest.chunks(cut)));
    }
}

/// SSE: events or a size error, never a panic; what we encode decodes back unchanged.
pub fn sse_parse(data: &[u8]) {
    let mut d = SseDecoder::new(1024);
    for chunk in data.chunks(7) {
        d.push(chunk);
        while let Ok(Some(ev)) = d.next_event() {
            assert!(ev.data.len() <= 1024);
        }
    }
    if !data.is_empty() && !data.contains(&b'\n') && !data.contains(&b'\r') {
        let mut d = SseDecoder::new(usize::MAX);
        d.push(&encode_event(Some("1-2"), data));
        let ev = d
            .next_event()
            .ok()
            .flatten()
            .expect("our own event decodes");
        assert_eq!(&ev.data[..], data);
    }
}

/// The envelope: a frame or a JSON-RPC error code; splicing an id changes nothing else.
pub fn envelope(data: &[u8]) {
    // The scanner accepts exactly what serde_json accepts.
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            crate::wire::scan::is_json(text),
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
            "the scanner and serde_json disagree on {text:?}"
        );
    }
    let frame = Bytes::copy_from_slice(data);
    let _ = split_batch(&frame);
    // Reading `params` in the envelope's pass changes nothing about the envelope.
    let plain = Envelope::parse(frame.clone());
    let with = Envelope::parse_reading_params(frame.clone(), |_, _| ());
    match (&plain, &with) {
        (Ok(a), Ok((b, _))) => assert_eq!(
            (a.kind, &a.method, &a.id, &a.params, &a.payload),
            (b.kind, &b.method, &b.id, &b.params, &b.payload)
        ),
        (Err(a), Err(b)) => assert_eq!(a.code, b.code),
        _ => panic!("parse and parse_reading_params disagree"),
    }
    match plain {
        Err(e) => assert!([
            code::PARSE_ERROR,
            code::INVALID_REQUEST,
            code::INVALID_PARAMS
        ]
        .contains(&e.code)),
        Ok(env) => {
            if let Some(p) = env.params_str() {
                let _ = ParamsPeek::parse(p);
            }
            if let Some(id) = env.id.clone() {
                let out = splice(
                    &frame,
                    &mut [Edit {
                        range: id.clone(),
                        with: b"123",
                    }],
                );
                assert_eq!(&out[..id.start], &frame[..id.start]);
                assert_eq!(&out[id.start + 3..], &frame[id.end..]);
                let again = Envelope::parse(out).expect("still valid after an id splice");
                assert_eq!(again.kind, env.kind);
            }
        }
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn front() -> Arc<HttpFront> {
    static FRONT: OnceLock<Arc<HttpFront>> = OnceLock::new();
    FRONT
        .get_or_init(|| {
            let _guard = runtime().enter();
            let config =
                Config::parse("[limits]\nmax_frame_bytes = 4096\n", "fuzz").expect("config");
            HttpFront::new(Router::new(config))
        })
        .clone()
}

/// The HTTP front: raw bytes as an HTTP/1.1 request stream into the real handler over an
/// in-memory pipe; an answer or a closed connection comes out, never a panic or a hang.
pub fn http_request(data: &[u8]) {
    let front = front();
    runtime().block_on(async {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let conn = tokio::spawn(serve_connection(front, server));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the connection hung");
        conn.abort();
        if !out.is_empty() {
            // HTTP/1.0 requests are answered in HTTP/1.0.
            assert!(
                out.starts_with(b"HTTP/1.1 ") || out.starts_with(b"HTTP/1.0 "),
                "not an HTTP response"
            );
        }
    });
}

/// Configuration: a configuration or an error that names its origin.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, "fuzz.toml") {
        assert!(e.0.starts_with("fuzz.toml"), "{}", e.0);
    }
}
