//! The JSON-RPC envelope, parsed once per frame.
//!
//! Parsing validates the whole frame (every byte is checked as JSON) and records where the
//! id, params and result/error sit as byte ranges of the frame. Nothing is copied: payloads
//! are later taken as `Bytes` slices of the frame.
//!
//! The parser is serde_json with borrowed `RawValue` parts. It sits behind this one type so
//! that a different backend (simd-json's tape) can be chosen by measurement without touching
//! callers.

use std::ops::Range;

use bytes::Bytes;
use serde::Deserialize;

use super::params::ParamsPeek;
use super::scan::{str_value, ScanError, Scanner};

pub use super::method::Method;

/// JSON-RPC error codes (spec) and Switchyard's own codes (outside the reserved range, so a
/// client can tell a router-made error from a server's).
pub mod code {
    /// The frame is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The frame is JSON but no JSON-RPC message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The method's `params` are wrong.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The receiver failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Legacy-era "resource not found" (2025-11-25 and before).
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// The upstream did not answer within the request timeout.
    pub const UPSTREAM_TIMEOUT: i64 = -31001;
    /// The upstream is down, restarting, or exited while the request was in flight.
    pub const UPSTREAM_UNAVAILABLE: i64 = -31002;
    /// Overloaded: the server's mailbox is full, or too many calls wait for it to start.
    pub const OVERLOADED: i64 = -31003;
    /// The request was cancelled by the router (shutdown).
    pub const CANCELLED: i64 = -31004;
    /// A call needed input from the client (bridged multi round-trip request, or a parked
    /// upstream call), and none came within the request timeout.
    pub const INPUT_TIMEOUT: i64 = -31005;
    /// A call needed the client's input (a server-to-client request bridged as a round),
    /// and the client cannot give it: it did not declare the capability, or refused.
    pub const CLIENT_DECLINED: i64 = -31006;
    /// The server cannot serve a request of this era (a per-client server and a 2026-07-28
    /// request, which has no session to key one to).
    pub const WRONG_ERA: i64 = -31007;
    /// A configured limit is reached: a per-client server's `max_clients`, or `max_sessions`.
    pub const LIMIT_REACHED: i64 = -31008;
}

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has a method and an id.
    Request,
    /// Has a method, no id.
    Notification,
    /// Has `result`.
    Response,
    /// Has `error`.
    Error,
}

/// Why a frame was refused. `id` is the request id when it could be read, so the error
/// reply can carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    /// JSON-RPC code of the error reply.
    pub code: i64,
    /// Its message.
    pub message: String,
    /// The request's id, raw JSON, when it could be read.
    pub id: Option<Bytes>,
}

impl WireError {
    fn new(code: i64, message: impl Into<String>, id: Option<Bytes>) -> Self {
        Self {
            code,
            message: message.into(),
            id,
        }
    }
}

/// A parsed frame: its kind and method, and byte ranges into `frame` for the rest.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The whole frame.
    pub frame: Bytes,
    /// Request, notification, response or error.
    pub kind: Kind,
    /// Its method (`Method::None` for responses).
    pub method: Method,
    /// Raw JSON of the id (`1`, `"1"`), exactly as received.
    pub id: Option<Range<usize>>,
    /// Raw JSON of `params`, if present.
    pub params: Option<Range<usize>>,
    /// `result` of a response, or `error` of an error response.
    pub payload: Option<Range<usize>>,
}

/// Where each envelope member sits, by slot (`jsonrpc`, `id`, `method`, `params`, `result`,
/// `error`); `null` counts as present (`"id": null` is not a notification).
#[derive(Default)]
struct Parts([Option<Range<usize>>; 6]);

impl Parts {
    /// One pass of the scanner over the frame: every byte checked, the members placed.
    fn read(text: &str, read_params: bool) -> Result<(Parts, Option<ParamsPeek<'_>>), WireError> {
        let mut parts = Parts::default();
        let mut peek = None;
        let mut s = Scanner::new(text);
        if s.peek() != Some(b'{') {
            // Batches are split before this; anything else that is JSON is no message.
            let mut whole = Scanner::new(text);
            let (code, message) = match whole.value().and_then(|_| whole.finish()) {
                Ok(()) => (
                    code::INVALID_REQUEST,
                    "invalid request: expected a JSON object".to_string(),
                ),
                Err(e) => (code::PARSE_ERROR, format!("parse error: {e}")),
            };
            return Err(WireError::new(code, message, None));
        }
        let read = s
            .members(|key, s| {
                let name = key.text();
                let slot = match &*name {
                    "jsonrpc" => 0,
                    "id" => 1,
                    "method" => 2,
                    "params" => 3,
                    "result" => 4,
                    "error" => 5,
                    _ => return s.value().map(drop),
                };
                let v = if slot == 3 && read_params && s.peek() == Some(b'{') {
                    // `params` read in this same pass; if they cannot be read as the router
                    // reads them, they are only skipped here (and the router says why).
                    let start = s.position();
                    match ParamsPeek::read(s) {
                        Ok(p) => {
                            peek = Some(p);
                            start..s.position()
                        }
                        Err(_) => {
                            s.set_position(start);
                            s.value()?
                        }
                    }
                } else {
                    s.value()?
                };
                if parts.0[slot].replace(v).is_some() {
                    return Err(ScanError::Invalid(format!("duplicate field `{name}`")));
                }
                Ok(())
            })
            .and_then(|_| s.finish());
        match read {
            Ok(()) => Ok((parts, peek)),
            Err(e @ ScanError::Syntax { .. }) => Err(WireError::new(
                code::PARSE_ERROR,
                format!("parse error: {e}"),
                None,
            )),
            Err(ScanError::Invalid(why)) => Err(WireError::new(
                code::INVALID_REQUEST,
                format!("invalid request: {why}"),
                None,
            )),
        }
    }
}

/// The byte range of `part` inside `base`; `part` must borrow from `base`.
pub fn span_of(base: &[u8], part: &str) -> Range<usize> {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    start..start + part.len()
}

/// First non-whitespace byte of a JSON text.
fn first_byte(s: &str) -> u8 {
    s.bytes().find(|b| !b.is_ascii_whitespace()).unwrap_or(b' ')
}

/// Is this raw JSON a valid request id (a string or an integer)?
pub fn is_valid_id(raw: &str) -> bool {
    match first_byte(raw) {
        b'"' => true,
        b'-' | b'0'..=b'9' => !raw.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')),
        _ => false,
    }
}

impl Envelope {
    /// Parse one frame. Batches (arrays) are the caller's concern: see [`split_batch`].
    pub fn parse(frame: Bytes) -> Result<Envelope, WireError> {
        let text = utf8(&frame)?;
        let (shape, _) = Shape::read(text, false)?;
        Ok(shape.with(frame))
    }

    /// Parse one frame and read its `params` in the same pass: `read` is given the frame and
    /// what the read found, and its answer comes back beside the envelope.
    /// `None` when there are no `params`, they are no object, or they could not be read as
    /// [`ParamsPeek::parse`] reads them (which then says why).
    pub fn parse_reading_params<T>(
        frame: Bytes,
        read: impl FnOnce(&[u8], &ParamsPeek<'_>) -> T,
    ) -> Result<(Envelope, Option<T>), WireError> {
        let text = utf8(&frame)?;
        let (shape, peek) = Shape::read(text, true)?;
        let out = peek.map(|p| read(text.as_bytes(), &p));
        Ok((shape.with(frame), out))
    }
}

/// The frame as text; JSON is UTF-8.
fn utf8(frame: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(frame).map_err(|e| {
        WireError::new(
            code::PARSE_ERROR,
            format!("parse error: not UTF-8 (byte {})", e.valid_up_to()),
            None,
        )
    })
}

/// What [`Envelope::parse`] finds, before the frame is moved into the envelope.
struct Shape {
    kind: Kind,
    method: Method,
    id: Option<Range<usize>>,
    params: Option<Range<usize>>,
    payload: Option<Range<usize>>,
}

impl Shape {
    fn with(self, frame: Bytes) -> Envelope {
        Envelope {
            frame,
            kind: self.kind,
            method: self.method,
            id: self.id,
            params: self.params,
            payload: self.payload,
        }
    }

    /// The envelope's checks, and (with `read_params`) the read of its `params`.
    fn read(text: &str, read_params: bool) -> Result<(Shape, Option<ParamsPeek<'_>>), WireError> {
        let (Parts([jsonrpc, id, method, params, result, error]), peek) =
            Parts::read(text, read_params)?;
        let raw = |r: &Option<Range<usize>>| r.clone().map(|r| &text[r]);
        let (raw_id, raw_method) = (raw(&id), raw(&method));
        // `"id": null` is allowed only on an error answering a request that could not be read.
        let null_id_error = method.is_none() && error.is_some() && result.is_none();
        let id = match raw_id {
            Some(raw) if is_valid_id(raw) => id.clone(),
            Some("null") if null_id_error => None,
            Some(_) => {
                return Err(WireError::new(
                    code::INVALID_REQUEST,
                    "id must be a string or an integer",
                    None,
                ))
            }
            None => None,
        };
        let id_bytes = || {
            id.clone()
                .map(|r| Bytes::copy_from_slice(text[r].as_bytes()))
        };
        if raw(&jsonrpc) != Some("\"2.0\"") {
            return Err(WireError::new(
                code::INVALID_REQUEST,
                "jsonrpc must be \"2.0\"",
                id_bytes(),
            ));
        }
        if let Some(method) = raw_method {
            let name = str_value(method).ok_or_else(|| {
                WireError::new(code::INVALID_REQUEST, "method must be a string", id_bytes())
            })?;
            if result.is_some() || error.is_some() {
                return Err(WireError::new(
                    code::INVALID_REQUEST,
                    "a request may not carry result or error",
                    id_bytes(),
                ));
            }
            if let Some(p) = raw(&params) {
                if first_byte(p) != b'{' {
                    return Err(WireError::new(
                        code::INVALID_PARAMS,
                        "params must be an object",
                        id_bytes(),
                    ));
                }
            }
            let kind = if id.is_some() {
                Kind::Request
            } else {
                Kind::Notification
            };
            let shape = Shape {
                kind,
                method: Method::from_name(&name),
                id,
                params,
                payload: None,
            };
            return Ok((shape, peek));
        }
        let (kind, payload) = match (result, error) {
            (Some(r), None) => (Kind::Response, r),
            (None, Some(e)) => (Kind::Error, e),
            _ => {
                return Err(WireError::new(
                    code::INVALID_REQUEST,
                    "a message needs a method, or exactly one of result and error",
                    id_bytes(),
                ))
            }
        };
        // An error may lack an id only when the request could not be read (`"id": null`).
        if id.is_none() && (kind == Kind::Response || raw_id.is_none()) {
            return Err(WireError::new(
                code::INVALID_REQUEST,
                "a response needs an id",
                None,
            ));
        }
        let shape = Shape {
            kind,
            method: Method::None,
            id,
            params,
            payload: Some(payload),
        };
        Ok((shape, peek))
    }
}

impl Envelope {
    /// An error reply's `error.code`.
    pub fn error_code(&self) -> Option<i64> {
        if self.kind != Kind::Error {
            return None;
        }
        #[derive(Deserialize)]
        struct Code {
            code: i64,
        }
        let range = self.payload.clone()?;
        serde_json::from_slice::<Code>(&self.frame[range])
            .ok()
            .map(|c| c.code)
    }

    /// The raw id, if any.
    pub fn id_bytes(&self) -> Option<Bytes> {
        self.id.clone().map(|r| self.frame.slice(r))
    }

    /// The routing-relevant parts of `params` (empty when there are none or they do not parse:
    /// the envelope parse already validated the JSON).
    pub fn peek(&self) -> crate::wire::params::ParamsPeek<'_> {
        self.params_str()
            .and_then(|p| ParamsPeek::parse(p).ok())
            .unwrap_or_default()
    }

    /// `params` as text, if present.
    pub fn params_str(&self) -> Option<&str> {
        self.params.clone().map(|r| self.str_at(r))
    }

    /// `result` or `error` as text, if present.
    pub fn payload_str(&self) -> Option<&str> {
        self.payload.clone().map(|r| self.str_at(r))
    }

    /// The frame as text: parsing checked it is UTF-8 JSON.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.frame).unwrap_or("")
    }

    /// The text of a range of the frame (empty if it is out of the frame or does not fall
    /// on character boundaries). Only those bytes are checked as UTF-8, not the whole frame.
    pub fn str_at(&self, r: Range<usize>) -> &str {
        self.frame
            .get(r)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or("")
    }
}

/// Does the frame start with `[` (a JSON-RPC batch)?
pub fn is_batch(frame: &[u8]) -> bool {
    frame.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
}

/// Split a batch into its element frames (slices of the original), validating the array.
pub fn split_batch(frame: &Bytes) -> Result<Vec<Bytes>, WireError> {
    let parse_error =
        |why: String| WireError::new(code::PARSE_ERROR, format!("parse error: {why}"), None);
    let text = std::str::from_utf8(frame).map_err(|_| parse_error("not UTF-8".into()))?;
    let mut items = Vec::new();
    let mut s = Scanner::new(text);
    s.items(|r| items.push(frame.slice(r)))
        .and_then(|_| s.finish())
        .map_err(|e| parse_error(e.to_string()))?;
    if items.is_empty() {
        return Err(WireError::new(code::INVALID_REQUEST, "empty batch", None));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Envelope, WireError> {
        Envelope::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn request_parts_are_ranges_of_the_frame() {
        let e =
            parse(r#"{"jsonrpc":"2.0","id":"7","method":"tools/call","params":{"name":"a__b"}}"#)
                .unwrap();
        assert_eq!(e.kind, Kind::Request);
        assert_eq!(e.method, Method::ToolsCall);
        assert_eq!(&e.frame[e.id.clone().unwrap()], b"\"7\"");
        assert_eq!(e.params_str(), Some(r#"{"name":"a__b"}"#));
    }

    #[test]
    fn id_after_a_large_payload_is_found() {
        let big = "x".repeat(100_000);
        let s = format!(r#"{{"result":{{"t":"{big}"}},"jsonrpc":"2.0","id":42}}"#);
        let e = parse(&s).unwrap();
        assert_eq!(e.kind, Kind::Response);
        assert_eq!(&e.frame[e.id.clone().unwrap()], b"42");
    }

    #[test]
    fn string_and_integer_ids_stay_distinct() {
        let a = parse(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap();
        let b = parse(r#"{"jsonrpc":"2.0","id":"1","result":{}}"#).unwrap();
        assert_ne!(a.id_bytes(), b.id_bytes());
    }

    #[test]
    fn bad_frames_get_the_right_codes() {
        assert_eq!(parse("{not json").unwrap_err().code, code::PARSE_ERROR);
        assert_eq!(
            parse("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"")
                .unwrap_err()
                .code,
            code::PARSE_ERROR
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":null,"method":"x"}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":5}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"method":"x","id":2}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        let e = parse(r#"{"jsonrpc":"2.0","id":9,"method":"x","params":[1]}"#).unwrap_err();
        assert_eq!(
            (e.code, e.id.as_deref()),
            (code::INVALID_PARAMS, Some(&b"9"[..]))
        );
        assert_eq!(
            parse(r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#)
                .unwrap_err()
                .code,
            code::INVALID_REQUEST
        );
        assert_eq!(parse("[1]").unwrap_err().code, code::INVALID_REQUEST);
        assert_eq!(parse("\"str\"").unwrap_err().code, code::INVALID_REQUEST);
    }

    #[test]
    fn error_with_null_id_is_accepted() {
        let e =
            parse(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#).unwrap();
        assert_eq!((e.kind, e.id), (Kind::Error, None));
    }

    #[test]
    fn notification_has_no_id() {
        let e = parse(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert_eq!(
            (e.kind, e.method),
            (Kind::Notification, Method::Initialized)
        );
    }

    #[test]
    fn batches_split_into_slices() {
        let f = Bytes::from_static(br#"[{"a":1}, {"b":2}]"#);
        assert!(is_batch(&f));
        let parts = split_batch(&f).unwrap();
        assert_eq!(
            parts,
            vec![
                Bytes::from_static(br#"{"a":1}"#),
                Bytes::from_static(br#"{"b":2}"#)
            ]
        );
        assert_eq!(
            split_batch(&Bytes::from_static(b"[]")).unwrap_err().code,
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn params_read_in_the_envelope_pass_as_a_separate_read_finds_them() {
        let frame = r#"{"jsonrpc":"2.0","params":{"name":"t","_meta":{"progressToken":3}},"id":1,"method":"tools/call"}"#;
        let read = |f: &[u8], p: &ParamsPeek<'_>| p.spans(f);
        let (env, spans) =
            Envelope::parse_reading_params(Bytes::from_static(frame.as_bytes()), read).unwrap();
        let alone = ParamsPeek::parse(env.params_str().unwrap())
            .unwrap()
            .spans(&env.frame);
        assert_eq!(env.method, Method::ToolsCall);
        assert_eq!(spans, Some(alone));
        // Params the router's read refuses still make a message (the router says why).
        let dup =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#;
        let (env, spans) =
            Envelope::parse_reading_params(Bytes::from_static(dup.as_bytes()), read).unwrap();
        assert!(spans.is_none() && env.params.is_some());
        let bad = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}"#;
        let e =
            Envelope::parse_reading_params(Bytes::from_static(bad.as_bytes()), read).unwrap_err();
        assert_eq!(e.code, code::INVALID_PARAMS);
        let broken = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a",}}"#;
        let e = Envelope::parse_reading_params(Bytes::from_static(broken.as_bytes()), read)
            .unwrap_err();
        assert_eq!(e.code, code::PARSE_ERROR);
    }
}
