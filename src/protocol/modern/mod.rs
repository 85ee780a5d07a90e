//! The 2026-07-28 (stateless) era's rules, no I/O: what a request must carry in `_meta`,
//! the header checks that keep a gateway from routing on a header the body contradicts, and
//! the result shape modern clients expect (`resultType`, cache hints).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

mod complete;
mod upstream;

pub use complete::{complete_result, completion};
use upstream::ENVELOPE_KEYS;
pub use upstream::{legacy_request, upstream_request, UpstreamRequest};

use super::header_value::decode_header_value;
use crate::wire::envelope::code;
use crate::wire::params::{raw_str, CallSpans, ParamsPeek};
use crate::wire::{Envelope, Method};

/// The stateless revision (`2026-07-28`).
pub const VERSION: &str = "2026-07-28";
/// Every revision Switchyard serves, newest first (for `server/discover` and -32022).
pub const SUPPORTED: [&str; 4] = [VERSION, "2025-11-25", "2025-06-18", "2025-03-26"];

/// 2026 error codes (`2026-07-28/basic/index#error-codes`).
pub const HEADER_MISMATCH: i64 = -32020;
/// A capability the request needs was not declared in its `_meta`.
pub const MISSING_CAPABILITY: i64 = -32021;
/// The request's `protocolVersion` is not one Switchyard serves (`data` lists those it does).
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// What a modern request says about its sender, from `params._meta` (and, over HTTP, the
/// `Mcp-Param-*` headers, which only the called tool's schema can check).
#[derive(Debug, Default)]
pub struct RequestMeta {
    /// `_meta` `io.modelcontextprotocol/protocolVersion`.
    pub protocol_version: Option<Cow<'static, str>>,
    /// Where `_meta` `io.modelcontextprotocol/clientCapabilities` sits in the frame (raw
    /// JSON).
    pub client_capabilities: Option<std::ops::Range<usize>>,
    /// `_meta` `io.modelcontextprotocol/logLevel`.
    pub log_level: Option<String>,
    /// The `Mcp-Param-*` headers of an HTTP request (lowercase names, in order, repeats
    /// kept), checked against the called tool's arguments once the tool is known; `None`
    /// where there are no headers (stdio).
    pub param_headers: Option<crate::protocol::param_headers::Received>,
    /// Whether `params` carry `requestState` or `inputResponses` (a multi round-trip retry).
    pub retry: bool,
    /// Where the request's routing keys sit, from that same pass (`None` when `params`
    /// could not be read: the router then answers with the reason).
    pub spans: Option<CallSpans>,
}

/// Could this frame be a 2026-07-28 request? A byte search for the version key, so the
/// `_meta` of a legacy client's request is never parsed to find out.
pub fn carries_envelope(frame: &[u8]) -> bool {
    crate::finder!(b"\"io.modelcontextprotocol/protocolVersion\"")
        .find(frame)
        .is_some()
}

impl RequestMeta {
    /// Could this be a retry resuming a parked call? Yes if `params` say so, or could not be
    /// read (then only the resume check can tell).
    pub fn may_be_retry(&self) -> bool {
        self.retry || self.spans.is_none()
    }

    /// What a 2026-07-28 request's `params` say (empty where they say nothing), read once.
    pub fn of(env: &Envelope) -> RequestMeta {
        match env.params_str().map(ParamsPeek::parse) {
            Some(Ok(peek)) => RequestMeta::read(&env.frame, &peek),
            _ => RequestMeta::default(),
        }
    }

    /// The same, from a read of `params` already made (the ingress's, in the envelope's own
    /// pass: [`Envelope::parse_reading_params`]) of `frame`: `_meta`'s envelope, and where the
    /// routing keys sit (with the cuts that take the envelope out for a handshake-era server),
    /// so the router reads nothing again.
    pub fn read(frame: &[u8], peek: &ParamsPeek<'_>) -> RequestMeta {
        let mut spans = peek.spans(frame);
        let meta = peek.meta.as_ref();
        if let Some(m) = meta {
            spans.cuts = m
                .cuts(frame, |k| ENVELOPE_KEYS.contains(&k))
                .unwrap_or_default();
        }
        // One look at each member's key (the first of a repeated key counts).
        let (mut version, mut caps, mut level) = (None, None, None);
        for (k, v) in meta.map_or(&[][..], |m| &m.0[..]) {
            let slot = match &*k.0 {
                "io.modelcontextprotocol/protocolVersion" => &mut version,
                "io.modelcontextprotocol/clientCapabilities" => &mut caps,
                "io.modelcontextprotocol/logLevel" => &mut level,
                _ => continue,
            };
            slot.get_or_insert(*v);
        }
        // The version a 2026 client sends is almost always ours: no copy of it then.
        let protocol_version = version.and_then(raw_str).map(|v| {
            if v == VERSION {
                Cow::Borrowed(VERSION)
            } else {
                Cow::Owned(v.into_owned())
            }
        });
        RequestMeta {
            protocol_version,
            client_capabilities: caps.map(|c| crate::wire::envelope::span_of(frame, c.get())),
            log_level: level.and_then(raw_str).map(Cow::into_owned),
            param_headers: None,
            retry: peek.request_state.is_some() || peek.input_responses.is_some(),
            spans: Some(spans),
        }
    }
}

/// A refusal: HTTP status, JSON-RPC code, message and optional `data` (raw JSON).
#[derive(Debug, PartialEq)]
pub struct Refusal {
    /// HTTP status of the answer, over HTTP.
    pub status: u16,
    /// JSON-RPC error code.
    pub code: i64,
    /// Error message.
    pub message: String,
    /// `data` of the error, raw JSON, if any.
    pub data: Option<String>,
}

/// A refusal without `data`.
pub fn refuse(status: u16, code: i64, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        data: None,
    }
}

/// Methods a 2026-07-28 client may call; anything else is answered 404 + -32601.
pub fn is_modern_method(m: &Method) -> bool {
    matches!(
        m,
        Method::ToolsList
            | Method::ToolsCall
            | Method::PromptsList
            | Method::PromptsGet
            | Method::ResourcesList
            | Method::ResourcesTemplatesList
            | Method::ResourcesRead
            | Method::CompletionComplete
            | Method::ServerDiscover
            | Method::SubscriptionsListen
    )
}

/// Check what a modern request carries in `_meta`: a supported version and the client's
/// capabilities.
pub fn validate_meta(meta: &RequestMeta) -> Result<(), Refusal> {
    let Some(version) = meta.protocol_version.as_deref() else {
        return Err(refuse(
            400,
            code::INVALID_PARAMS,
            "params._meta is missing io.modelcontextprotocol/protocolVersion",
        ));
    };
    if version != VERSION {
        let supported = serde_json::to_string(&SUPPORTED).unwrap_or_default();
        let requested = serde_json::to_string(version).unwrap_or_default();
        return Err(Refusal {
            status: 400,
            code: UNSUPPORTED_VERSION,
            message: format!("unsupported protocol version {version}"),
            data: Some(format!(
                r#"{{"supported":{supported},"requested":{requested}}}"#
            )),
        });
    }
    if meta.client_capabilities.is_none() {
        return Err(refuse(
            400,
            code::INVALID_PARAMS,
            "params._meta is missing io.modelcontextprotocol/clientCapabilities",
        ));
    }
    if meta
        .log_level
        .as_deref()
        .is_some_and(|l| super::log_level_rank(l).is_none())
    {
        return Err(refuse(
            400,
            code::INVALID_PARAMS,
            "invalid io.modelcontextprotocol/logLevel",
        ));
    }
    Ok(())
}

/// Check a modern HTTP request: its `_meta`, then its headers against the body
/// (`header(name)` gives a header's value). A router that routes on headers must check them
/// against the body before acting on either
/// (`2026-07-28/basic/transports/streamable-http#server-validation`).
pub fn validate<'h>(
    env: &Envelope,
    meta: &RequestMeta,
    header: &dyn Fn(&str) -> Option<&'h str>,
) -> Result<(), Refusal> {
    let mismatch = |what: &str| refuse(400, HEADER_MISMATCH, what.to_string());
    // Header and body disagreeing is a mismatch even when neither version is one we serve.
    if let (Some(h), Some(b)) = (header("mcp-protocol-version"), &meta.protocol_version) {
        if h != b {
            return Err(mismatch("MCP-Protocol-Version does not match params._meta"));
        }
    }
    validate_meta(meta)?;
    // (A header present now equals the body's version, which is one we serve.)
    if header("mcp-protocol-version").is_none() {
        return Err(mismatch("MCP-Protocol-Version header is required"));
    }
    match header("mcp-method").and_then(decode_header_value) {
        Some(h) if h == env.method.name() => {}
        Some(_) => return Err(mismatch("Mcp-Method does not match the request's method")),
        None => return Err(mismatch("Mcp-Method header is required")),
    }
    let named = match env.method {
        Method::ToolsCall | Method::PromptsGet => Some("name"),
        Method::ResourcesRead => Some("uri"),
        _ => None,
    };
    if let Some(field) = named {
        // What `Mcp-Name` must equal: `params.name` (`params.uri` for a read), a string.
        let body = meta
            .spans
            .as_ref()
            .and_then(|s| {
                if field == "uri" {
                    s.uri.clone()
                } else {
                    s.name.clone()
                }
            })
            .and_then(|r| crate::wire::params::str_value(env.str_at(r)));
        match (
            header("mcp-name").and_then(decode_header_value),
            body.as_deref(),
        ) {
            (Some(h), Some(b)) if h == b => {}
            (None, _) => return Err(mismatch("Mcp-Name header is required")),
            _ => return Err(mismatch(&format!("Mcp-Name does not match params.{field}"))),
        }
    }
    Ok(())
}

/// The HTTP status for a 2026 reply: 400 for the errors 2026-07-28 ties to it (header
/// mismatch, missing capability, unsupported version), whoever raised them; else 200.
pub fn http_status(frame: &Bytes) -> u16 {
    if crate::finder!(b"\"error\"").find(frame).is_none() {
        return 200;
    }
    let Ok(env) = Envelope::parse(frame.clone()) else {
        return 200;
    };
    match env.error_code() {
        Some(HEADER_MISMATCH | MISSING_CAPABILITY | UNSUPPORTED_VERSION) => 400,
        _ => 200,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(s: &str) -> Envelope {
        Envelope::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    fn headers(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<&'static str> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn headers_must_match_the_body() {
        let e = env(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"a__b",{META}}}}}"#
        ));
        let m = RequestMeta::of(&e);
        let ok = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "a__b"),
        ]);
        assert_eq!(validate(&e, &m, &ok), Ok(()));
        let b64 = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?YV9fYg==?="),
        ]);
        assert_eq!(validate(&e, &m, &b64), Ok(()));
        let smuggled = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "a__other"),
        ]);
        assert_eq!(
            validate(&e, &m, &smuggled).unwrap_err().code,
            HEADER_MISMATCH
        );
        let no_name = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ]);
        assert_eq!(
            validate(&e, &m, &no_name).unwrap_err().code,
            HEADER_MISMATCH
        );
        let wrong_method = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/list"),
            ("mcp-name", "a__b"),
        ]);
        assert_eq!(
            validate(&e, &m, &wrong_method).unwrap_err().code,
            HEADER_MISMATCH
        );
    }

    #[test]
    fn meta_is_required_and_versions_checked() {
        let none = headers(&[]);
        let e = env(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#);
        let r = validate(&e, &RequestMeta::of(&e), &none).unwrap_err();
        assert_eq!((r.status, r.code), (400, code::INVALID_PARAMS));
        let e = env(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        let r = validate(&e, &RequestMeta::of(&e), &none).unwrap_err();
        assert_eq!(r.code, UNSUPPORTED_VERSION);
        let data: serde_json::Value = serde_json::from_str(r.data.as_deref().unwrap()).unwrap();
        assert_eq!(data["supported"][0], VERSION);
        assert_eq!(data["requested"], "2099-01-01");
    }

    #[test]
    fn results_get_result_type_and_cache_hints() {
        let f = Bytes::from_static(br#"{"id":1,"jsonrpc":"2.0","result":{"tools":[]}}"#);
        let out = complete_result(&f, &Method::ToolsList);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (
                v["result"]["resultType"].as_str(),
                v["result"]["ttlMs"].as_i64()
            ),
            (Some("complete"), Some(0))
        );
        assert_eq!(v["result"]["cacheScope"], "private");
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#);
        let v: serde_json::Value =
            serde_json::from_slice(&complete_result(&f, &Method::ToolsCall)).unwrap();
        assert_eq!(v["result"], serde_json::json!({"resultType": "complete"}));
        let f = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"input_required"}}"#,
        );
        assert_eq!(complete_result(&f, &Method::ToolsCall), f);
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#);
        assert_eq!(complete_result(&f, &Method::ToolsCall), f);
    }
}
