//! Results as a 2026-07-28 client expects them: `resultType`, and cache hints on lists
//! and reads, spliced into the upstream's bytes.

use super::*;

/// Give a result what a modern client expects: `resultType: "complete"` (legacy upstreams
/// never send it) and, on list and read results, `ttlMs` and `cacheScope` (a legacy upstream
/// gives no ttl, which means 0; `private` is the safe scope). Splices them in; every other
/// byte is kept. Errors and results that have them pass unchanged. Where the response is
/// parsed anyway (an upstream's, in its actor), [`completion`] does this in that parse.
pub fn complete_result(frame: &Bytes, method: &Method) -> Bytes {
    let Ok(env) = Envelope::parse(frame.clone()) else {
        return frame.clone();
    };
    let (crate::wire::Kind::Response, Some(range)) = (env.kind, env.payload.clone()) else {
        return frame.clone(); // not a response with a result: nothing to add
    };
    match completion(env.payload_str().unwrap_or(""), method) {
        Some((at, with)) => crate::wire::rewrite::splice(
            frame,
            &mut [crate::wire::rewrite::Edit {
                range: range.start + at..range.start + at,
                with: with.as_bytes(),
            }],
        ),
        None => frame.clone(),
    }
}

/// What a 2026-07-28 client needs added to a `result` (the raw object), if anything: where
/// (a byte offset into `result`, just before its closing brace) and what. `None` for a
/// result that is not an object or already has it all. Keys are looked for with a byte
/// search first: only a result that names them somewhere is parsed, to see whether at the top.
pub fn completion(result: &str, method: &Method) -> Option<(usize, Cow<'static, str>)> {
    const RESULT_TYPE: &str = r#","resultType":"complete""#;
    const TTL: &str = r#","ttlMs":0"#;
    const SCOPE: &str = r#","cacheScope":"private""#;
    const ALL: &str = r#","resultType":"complete","ttlMs":0,"cacheScope":"private""#;
    let cacheable = matches!(
        method,
        Method::ToolsList
            | Method::PromptsList
            | Method::ResourcesList
            | Method::ResourcesTemplatesList
            | Method::ResourcesRead
    );
    let bytes = result.as_bytes();
    let open = bytes.iter().position(|b| !b.is_ascii_whitespace())?;
    let close = bytes.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if bytes[open] != b'{' || bytes[close] != b'}' || close <= open {
        return None;
    }
    // Finders built once (building one costs more than searching a small result).
    let mut has = ResultKeys {
        result_type: crate::finder!(b"\"resultType\"").find(bytes).is_some(),
        ttl: !cacheable || crate::finder!(b"\"ttlMs\"").find(bytes).is_some(),
        scope: !cacheable || crate::finder!(b"\"cacheScope\"").find(bytes).is_some(),
    };
    if has.result_type || (cacheable && (has.ttl || has.scope)) {
        let top = serde_json::from_str::<ResultKeys>(result).ok()?;
        has = ResultKeys {
            result_type: top.result_type,
            ttl: !cacheable || top.ttl,
            scope: !cacheable || top.scope,
        };
    }
    // An empty object takes them without the leading comma.
    let skip = usize::from(bytes[open + 1..close].iter().all(u8::is_ascii_whitespace));
    let with = match (has.result_type, has.ttl, has.scope) {
        (true, true, true) => return None,
        (false, true, true) => Cow::Borrowed(&RESULT_TYPE[skip..]),
        (false, false, false) => Cow::Borrowed(&ALL[skip..]),
        (t, l, s) => {
            let pieces = [(t, RESULT_TYPE), (l, TTL), (s, SCOPE)];
            let mut all: String = pieces.iter().filter(|(has, _)| !has).map(|p| p.1).collect();
            all.drain(..skip);
            Cow::Owned(all)
        }
    };
    Some((close, with))
}

/// Which of the keys a 2026-07-28 result needs a `result` object has at its top level.
struct ResultKeys {
    result_type: bool,
    ttl: bool,
    scope: bool,
}

/// A `result` key, as far as [`ResultKeys`] cares.
enum ResultKey {
    ResultType,
    Ttl,
    Scope,
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
                    "cacheScope" => ResultKey::Scope,
                    _ => ResultKey::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for ResultKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ResultKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<ResultKeys, M::Error> {
                let mut k = ResultKeys {
                    result_type: false,
                    ttl: false,
                    scope: false,
                };
                while let Some(key) = m.next_key::<ResultKey>()? {
                    m.next_value::<serde::de::IgnoredAny>()?;
                    match key {
                        ResultKey::ResultType => k.result_type = true,
                        ResultKey::Ttl => k.ttl = true,
                        ResultKey::Scope => k.scope = true,
                        ResultKey::Other => {}
                    }
                }
                Ok(k)
            }
        }
        d.deserialize_map(V)
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
