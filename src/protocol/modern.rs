//! The 2026-07-28 (stateless) era's rules, no I/O: what a request must carry in `_meta`,
//! the header checks that keep a gateway from routing on a header the body contradicts, and
//! the result shape modern clients expect (`resultType`, cache hints).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::header_value::decode_header_value;
use crate::wire::envelope::{code, raw_str};
use crate::wire::{Envelope, Method};

pub const VERSION: &str = "2026-07-28";
/// Every revision Switchyard serves, newest first (for `server/discover` and -32022).
pub const SUPPORTED: [&str; 4] = [VERSION, "2025-11-25", "2025-06-18", "2025-03-26"];

/// 2026 error codes (`2026-07-28/basic/index#error-codes`).
pub const HEADER_MISMATCH: i64 = -32020;
pub const MISSING_CAPABILITY: i64 = -32021;
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// What a modern request says about its sender, from `params._meta` (and, over HTTP, the
/// `Mcp-Param-*` headers, which only the called tool's schema can check).
#[derive(Debug, Default)]
pub struct RequestMeta {
    pub protocol_version: Option<String>,
    pub client_capabilities: Option<Box<RawValue>>,
    pub log_level: Option<String>,
    /// The `Mcp-Param-*` headers of an HTTP request (lowercase names, in order, repeats
    /// kept), checked against the called tool's arguments once the tool is known; `None`
    /// where there are no headers (stdio).
    pub param_headers: Option<crate::protocol::param_headers::Received>,
}

#[derive(Deserialize, Default)]
struct MetaFields<'a> {
    #[serde(borrow, default, rename = "io.modelcontextprotocol/protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "io.modelcontextprotocol/clientCapabilities")]
    client_capabilities: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "io.modelcontextprotocol/logLevel")]
    log_level: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct WithMeta<'a> {
    #[serde(borrow, default, rename = "_meta")]
    meta: Option<MetaFields<'a>>,
}

/// Could this frame be a 2026-07-28 request? A byte search for the version key, so the
/// `_meta` of a legacy client's request is never parsed to find out.
pub fn carries_envelope(frame: &[u8]) -> bool {
    crate::finder!(b"\"io.modelcontextprotocol/protocolVersion\"")
        .find(frame)
        .is_some()
}

impl RequestMeta {
    pub fn of(env: &Envelope) -> RequestMeta {
        let Some(params) = env.params_str() else {
            return RequestMeta::default();
        };
        let Ok(w) = serde_json::from_str::<WithMeta<'_>>(params) else {
            return RequestMeta::default();
        };
        let m = w.meta.unwrap_or_default();
        RequestMeta {
            protocol_version: m.protocol_version.map(Cow::into_owned),
            client_capabilities: m.client_capabilities.map(|c| c.to_owned()),
            log_level: m.log_level.map(Cow::into_owned),
            param_headers: None,
        }
    }
}

/// A refusal: HTTP status, JSON-RPC code, message and optional `data` (raw JSON).
#[derive(Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub data: Option<String>,
}

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
    ) || matches!(m, Method::Other(name) if matches!(&**name, "server/discover" | "subscriptions/listen"))
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
pub fn validate(
    env: &Envelope,
    meta: &RequestMeta,
    header: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Refusal> {
    let mismatch = |what: &str| refuse(400, HEADER_MISMATCH, what.to_string());
    // Header and body disagreeing is a mismatch even when neither version is one we serve.
    if let (Some(h), Some(b)) = (header("mcp-protocol-version"), &meta.protocol_version) {
        if h != *b {
            return Err(mismatch("MCP-Protocol-Version does not match params._meta"));
        }
    }
    validate_meta(meta)?;
    // (A header present now equals the body's version, which is one we serve.)
    if header("mcp-protocol-version").is_none() {
        return Err(mismatch("MCP-Protocol-Version header is required"));
    }
    match header("mcp-method").and_then(|h| decode_header_value(&h)) {
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
        let peek = env.peek();
        let body = if field == "name" { peek.name } else { peek.uri }.and_then(raw_str);
        match (
            header("mcp-name").and_then(|h| decode_header_value(&h)),
            body,
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

/// Give a result what a modern client expects: `resultType: "complete"` (legacy upstreams
/// never send it) and, on list and read results, `ttlMs` and `cacheScope` (a legacy upstream
/// gives no ttl, which means 0; `private` is the safe scope). Splices them in; every other
/// byte is kept. Errors and results that have them pass unchanged.
pub fn complete_result(frame: &Bytes, method: &Method) -> Bytes {
    let cacheable = matches!(
        method,
        Method::ToolsList
            | Method::PromptsList
            | Method::ResourcesList
            | Method::ResourcesTemplatesList
            | Method::ResourcesRead
    );
    let Some(keys) = result_keys(frame) else {
        return frame.clone(); // not a response with an object result: nothing to add
    };
    let mut add = Vec::new();
    if !keys.result_type {
        add.push(r#""resultType":"complete""#);
    }
    if cacheable && !keys.ttl {
        add.push(r#""ttlMs":0,"cacheScope":"private""#);
    }
    if add.is_empty() {
        return frame.clone();
    }
    let add = add.join(",");
    // After the last member, so nothing is parsed twice; an empty object gets them inside
    // its braces (found with a second, small parse).
    let (at, with) = match keys.last {
        Some(last) => (
            crate::wire::envelope::span_of(frame, last.get()).end,
            format!(",{add}"),
        ),
        None => match Envelope::parse(frame.clone()).ok().and_then(|e| e.payload) {
            Some(result) => (result.start + 1, add),
            None => return frame.clone(),
        },
    };
    let mut out = BytesMut::with_capacity(frame.len() + with.len());
    out.put_slice(&frame[..at]);
    out.put_slice(with.as_bytes());
    out.put_slice(&frame[at..]);
    out.freeze()
}

/// What the top-level keys of a response's `result` object say, and its last member's value.
struct ResultKeys<'a> {
    result_type: bool,
    ttl: bool,
    last: Option<&'a RawValue>,
}

/// The `result` object's top-level keys, read in one pass over the frame (its values are
/// skipped, not parsed); `None` if the frame has no `result` object.
fn result_keys(frame: &[u8]) -> Option<ResultKeys<'_>> {
    #[derive(Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default)]
        result: Option<ResultKeys<'a>>,
    }
    serde_json::from_slice::<Top<'_>>(frame).ok()?.result
}

/// A `result` key, as far as [`ResultKeys`] cares.
enum ResultKey {
    ResultType,
    Ttl,
    Other,
}

impl<'de> Deserialize<'de> for ResultKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ResultKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<ResultKey, E> {
                Ok(match k {
                    "resultType" => ResultKey::ResultType,
                    "ttlMs" => ResultKey::Ttl,
                    _ => ResultKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ResultKeys<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ResultKeys<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<ResultKeys<'a>, M::Error> {
                let mut k = ResultKeys {
                    result_type: false,
                    ttl: false,
                    last: None,
                };
                while let Some(key) = m.next_key::<ResultKey>()? {
                    let value: &'de RawValue = m.next_value()?;
                    match key {
                        ResultKey::ResultType => k.result_type = true,
                        ResultKey::Ttl => k.ttl = true,
                        ResultKey::Other => {}
                    }
                    k.last = Some(value);
                }
                Ok(k)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod complete_tests {
    use super::*;

    fn done(frame: &str, method: Method) -> serde_json::Value {
        let out = complete_result(&Bytes::copy_from_slice(frame.as_bytes()), &method);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn results_get_what_2026_requires_once() {
        let v = done(
            r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"resultType\":1}"}],"structuredContent":{"resultType":"x"}} }"#,
            Method::ToolsCall,
        );
        assert_eq!(v["result"]["resultType"], "complete");
        assert!(v["result"].get("ttlMs").is_none());
        assert_eq!(v["result"]["structuredContent"]["resultType"], "x");
        let v = done(
            r#"{"result" : { "contents" : [] , "ttlMs":5,"cacheScope":"public"} ,"jsonrpc":"2.0","id":2}"#,
            Method::ResourcesRead,
        );
        assert_eq!(
            (
                v["result"]["resultType"].as_str(),
                v["result"]["ttlMs"].as_u64()
            ),
            (Some("complete"), Some(5))
        );
        let v = done(
            r#"{"jsonrpc":"2.0","id":3,"result":{"resources":[]}}"#,
            Method::ResourcesList,
        );
        assert_eq!(v["result"]["cacheScope"], "private");
        // Unchanged: results that have it, errors, notifications; an empty result the
        // general path handles.
        for plain in [
            r#"{"jsonrpc":"2.0","id":4,"result":{"resultType":"input_required","inputRequests":{}}}"#,
            r#"{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progress":1}}"#,
        ] {
            let f = Bytes::copy_from_slice(plain.as_bytes());
            assert_eq!(complete_result(&f, &Method::ToolsCall), f, "{plain}");
        }
        assert_eq!(
            done(r#"{"jsonrpc":"2.0","id":6,"result":{}}"#, Method::ToolsCall)["result"],
            serde_json::json!({"resultType": "complete"})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(s: &str) -> Envelope {
        Envelope::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    const META: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

    fn headers(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_string())
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

/// A request as a 2026-07-28 upstream needs it: `params._meta` carrying our protocol version,
/// the calling client's capabilities and our client info (keys the client already set, such
/// as a progress token or its own version, are kept), plus the `Mcp-Method` and `Mcp-Name`
/// header values. `None` for a frame that is not a request.
pub struct UpstreamRequest {
    pub frame: Bytes,
    pub method: String,
    pub name: Option<String>,
}

/// The request with task support taken out of its `_meta` client capabilities, if it
/// declared any.
fn strip_client_tasks(env: &Envelope) -> Option<Bytes> {
    let params = env.params_str()?;
    crate::finder!(b"tasks").find(params.as_bytes())?;
    let w: WithMeta<'_> = serde_json::from_str(params).ok()?;
    let caps = w.meta?.client_capabilities?;
    let stripped = super::without_tasks(caps)?;
    let range = crate::wire::envelope::span_of(&env.frame, caps.get());
    Some(crate::wire::rewrite::splice(
        &env.frame,
        &mut [crate::wire::rewrite::Edit {
            range,
            with: stripped.get().as_bytes(),
        }],
    ))
}

pub fn upstream_request(frame: &Bytes, client_capabilities: &[u8]) -> Option<UpstreamRequest> {
    let env = Envelope::parse(frame.clone()).ok()?;
    if env.kind != crate::wire::Kind::Request {
        return None;
    }
    let peek = env.peek();
    let name = match env.method {
        Method::ToolsCall | Method::PromptsGet => peek.name.and_then(raw_str).map(Cow::into_owned),
        Method::ResourcesRead => peek.uri.and_then(raw_str).map(Cow::into_owned),
        _ => None,
    };
    // The client's own capabilities go through, but never its task support (not carried).
    if let Some(stripped) = strip_client_tasks(&env) {
        return upstream_request(&stripped, client_capabilities);
    }
    let meta = RequestMeta::of(&env);
    let mut add = String::new();
    if meta.protocol_version.is_none() {
        add.push_str(&format!(
            r#""io.modelcontextprotocol/protocolVersion":"{VERSION}","#
        ));
    }
    if meta.client_capabilities.is_none() {
        add.push_str(r#""io.modelcontextprotocol/clientCapabilities":"#);
        add.push_str(std::str::from_utf8(client_capabilities).unwrap_or("{}"));
        add.push(',');
        add.push_str(r#""io.modelcontextprotocol/clientInfo":"#);
        add.push_str(super::IMPLEMENTATION);
        add.push(',');
    }
    let out = if add.is_empty() {
        frame.clone()
    } else {
        add.pop(); // the last comma
        let edit = |range: std::ops::Range<usize>, with: &[u8]| {
            let mut out = BytesMut::with_capacity(frame.len() + with.len() + 16);
            out.put_slice(&frame[..range.start]);
            out.put_slice(with);
            out.put_slice(&frame[range.end..]);
            out.freeze()
        };
        match (&env.params, peek.meta.is_some()) {
            // Into the existing `_meta` object, after its brace.
            (Some(p), true) => {
                let params = &frame[p.clone()];
                let meta_key = memchr::memmem::find(params, b"\"_meta\"")?;
                let brace =
                    p.start + meta_key + params[meta_key..].iter().position(|b| *b == b'{')?;
                let empty =
                    frame[brace + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
                let with = if empty { add } else { format!("{add},") };
                edit(brace + 1..brace + 1, with.as_bytes())
            }
            // A new `_meta` member at the start of params.
            (Some(p), false) => {
                let empty = frame[p.start + 1..p.end]
                    .iter()
                    .all(|b| b.is_ascii_whitespace() || *b == b'}');
                let with = format!("\"_meta\":{{{add}}}{}", if empty { "" } else { "," });
                edit(p.start + 1..p.start + 1, with.as_bytes())
            }
            // No params at all.
            (None, _) => {
                let id = env.id_bytes()?;
                crate::wire::json::message(
                    Some(&id),
                    env.method.name(),
                    Some(format!("{{\"_meta\":{{{add}}}}}").as_bytes()),
                )
            }
        }
    };
    Some(UpstreamRequest {
        frame: out,
        method: env.method.name().to_string(),
        name,
    })
}

#[cfg(test)]
mod upstream_tests {
    use super::*;

    fn meta_of(b: &Bytes) -> serde_json::Value {
        serde_json::from_slice::<serde_json::Value>(b).unwrap()["params"]["_meta"].clone()
    }

    #[test]
    fn a_clients_task_support_never_reaches_an_upstream() {
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"tasks","arguments":{"tasks":1},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{},"extensions":{"io.modelcontextprotocol/tasks":{},"io.modelcontextprotocol/ui":{}}}}}}"#);
        let r = upstream_request(&f, b"{}").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&r.frame).unwrap();
        assert_eq!(
            v["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"],
            serde_json::json!({"elicitation": {}, "extensions": {"io.modelcontextprotocol/ui": {}}})
        );
        // Everything else as it was, "tasks" elsewhere included.
        assert_eq!(v["params"]["name"], "tasks");
        assert_eq!(v["params"]["arguments"]["tasks"], 1);
        // Nothing to strip: the frame passes unchanged.
        let plain = Bytes::from_static(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"tasks","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#);
        assert_eq!(upstream_request(&plain, b"{}").unwrap().frame, plain);
    }

    #[test]
    fn meta_is_added_and_existing_keys_kept() {
        let caps = br#"{"sampling":{}}"#;
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"t","arguments":{},"_meta":{"progressToken":9}}}"#);
        let r = upstream_request(&f, caps).unwrap();
        let m = meta_of(&r.frame);
        assert_eq!(
            (
                m["progressToken"].as_i64(),
                m["io.modelcontextprotocol/protocolVersion"].as_str()
            ),
            (Some(9), Some(VERSION))
        );
        assert_eq!(
            m["io.modelcontextprotocol/clientCapabilities"]["sampling"],
            serde_json::json!({})
        );
        assert_eq!(
            (r.method.as_str(), r.name.as_deref()),
            ("tools/call", Some("t"))
        );

        let f =
            Bytes::from_static(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list","params":{}}"#);
        assert_eq!(
            meta_of(&upstream_request(&f, b"{}").unwrap().frame)
                ["io.modelcontextprotocol/protocolVersion"],
            VERSION
        );
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":"a","method":"tools/list"}"#);
        assert_eq!(
            meta_of(&upstream_request(&f, b"{}").unwrap().frame)
                ["io.modelcontextprotocol/protocolVersion"],
            VERSION
        );
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"x://y","_meta":{}}}"#);
        let r = upstream_request(&f, b"{}").unwrap();
        assert_eq!(
            (
                meta_of(&r.frame)["io.modelcontextprotocol/protocolVersion"].as_str(),
                r.name.as_deref()
            ),
            (Some(VERSION), Some("x://y"))
        );

        // A modern client's own _meta passes untouched.
        let f = Bytes::from(format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{{}}}}}"#,
            r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}"#
        ));
        assert_eq!(upstream_request(&f, b"{}").unwrap().frame, f);
        // Notifications are not requests.
        assert!(upstream_request(
            &Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/cancelled"}"#),
            b"{}"
        )
        .is_none());
    }
}

/// The `_meta` keys that make a request a 2026-07-28 one.
const ENVELOPE_KEYS: [&str; 4] = [
    "io.modelcontextprotocol/protocolVersion",
    "io.modelcontextprotocol/clientCapabilities",
    "io.modelcontextprotocol/clientInfo",
    "io.modelcontextprotocol/logLevel",
];

/// A 2026-07-28 client's request as a handshake-era upstream accepts it: the 2026 envelope
/// keys taken out of `params._meta` (its other keys, such as a progress token or trace
/// context, stay). Frames without them, all a legacy client's, are returned as they are.
pub fn legacy_request(frame: &Bytes) -> Bytes {
    if crate::finder!(b"\"io.modelcontextprotocol/")
        .find(frame)
        .is_none()
    {
        return frame.clone();
    }
    // One pass over the frame for `params._meta`, then one over `_meta` for its members.
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(borrow, default)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default, rename = "_meta")]
        meta: Option<&'a RawValue>,
    }
    let Ok(Frame {
        params: Some(Params { meta: Some(meta) }),
    }) = serde_json::from_slice::<Frame<'_>>(frame)
    else {
        return frame.clone();
    };
    let Some(with) = crate::wire::json::without_members(meta.get(), |k| ENVELOPE_KEYS.contains(&k))
    else {
        return frame.clone();
    };
    let range = crate::wire::envelope::span_of(frame, meta.get());
    crate::wire::rewrite::splice(
        frame,
        &mut [crate::wire::rewrite::Edit { range, with: &with }],
    )
}

#[cfg(test)]
mod legacy_tests {
    use super::*;

    #[test]
    fn the_2026_envelope_is_taken_out_for_legacy_upstreams() {
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"progressToken":5,"traceparent":"00-ab"}}}"#);
        let v: serde_json::Value = serde_json::from_slice(&legacy_request(&f)).unwrap();
        assert_eq!(
            v["params"]["_meta"],
            serde_json::json!({"progressToken": 5, "traceparent": "00-ab"})
        );
        assert_eq!(v["params"]["name"], "t");
        let plain = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"progressToken":1}}}"#);
        assert_eq!(legacy_request(&plain), plain);
        // Kept members keep their order and bytes; everything outside `_meta` is untouched.
        let f = Bytes::from_static(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"z":[1, 2],"io.modelcontextprotocol/logLevel":"info","a\u0062":{"x":1}},"name":"t"}}"#);
        assert_eq!(
            &legacy_request(&f)[..],
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"z":[1, 2],"ab":{"x":1}},"name":"t"}}"#[..]
        );
    }
}
