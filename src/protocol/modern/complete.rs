//! Results as a 2026-07-28 client expects them: `resultType`, and cache hints on lists
//! and reads, spliced into the upstream's bytes.

use super::*;

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
