//! Requests rewritten for an upstream's era: `_meta` added for a 2026-07-28 server (with the
//! Mcp-* header values), the 2026 envelope taken out for a handshake-era one.

use super::*;

/// A request as a 2026-07-28 upstream needs it: `params._meta` carrying our protocol version,
/// the calling client's capabilities and our client info (keys the client already set, such
/// as a progress token or its own version, are kept), plus the `Mcp-Method` and `Mcp-Name`
/// header values. `None` for a frame that is not a request.
pub struct UpstreamRequest {
    /// The frame to send, the envelope in its `_meta`.
    pub frame: Bytes,
    /// The `Mcp-Method` header value.
    pub method: String,
    /// The `Mcp-Name` header value, for methods that name a tool, prompt or resource.
    pub name: Option<String>,
}

/// The request with task support taken out of its `_meta` client capabilities, if it
/// declared any.
fn strip_client_tasks(env: &Envelope) -> Option<Bytes> {
    let params = env.params_str()?;
    crate::finder!(b"tasks").find(params.as_bytes())?;
    let peek = ParamsPeek::parse(params).ok()?;
    let caps = peek
        .meta?
        .get("io.modelcontextprotocol/clientCapabilities")?;
    let stripped = crate::protocol::without_tasks(caps.get())?;
    let range = crate::wire::envelope::span_of(&env.frame, caps.get());
    Some(crate::wire::rewrite::splice(
        &env.frame,
        &mut [crate::wire::rewrite::Edit {
            range,
            with: stripped.get().as_bytes(),
        }],
    ))
}

/// A handshake-era request `frame` turned into a 2026-07-28 one for a stateless server, declaring
/// `client_capabilities` (a JSON object).
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
    let meta = RequestMeta::read(&env.frame, &peek);
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
        add.push_str(crate::protocol::IMPLEMENTATION);
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
pub(super) const ENVELOPE_KEYS: [&str; 4] = [
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
