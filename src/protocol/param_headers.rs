//! Tool arguments mirrored into HTTP headers (2026-07-28, SEP-2243): a property of a tool's
//! `inputSchema` annotated `"x-mcp-header": "Region"` travels, on a `tools/call` over HTTP,
//! as `Mcp-Param-Region` beside the body, so intermediaries can route on it. Switchyard
//! checks the headers a 2026 client sends against the body (as the server it is to that
//! client) and sends them to a 2026 HTTP upstream (as the client it is to that server).
//!
//! A tool's annotations are compiled once, when its server's tool list is stored, into a
//! [`ParamHeaders`]; calls only walk that. Rules follow the 2026-07-28 Streamable HTTP
//! transport and the Python SDK, its reference: an annotation counts only on a property
//! reached from the schema's root through `properties` alone, names an RFC 9110 token unique
//! (ignoring case) in the schema, and sits on a `string`, `integer` or `boolean` property.
//! A schema breaking any of these validates and sends nothing, as clients drop such a tool.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;

use crate::wire::params::Raw;

use super::header_value::{decode_header_value, encode_header_value};

/// The schema annotation.
pub const ANNOTATION: &str = "x-mcp-header";
/// The header prefix the annotation's token is joined to.
pub const PREFIX: &str = "Mcp-Param-";

/// Schema keywords whose value is one subschema, a list of them, or a map of them: crossing
/// one leaves the plain `properties` chain, so an annotation below it is invalid.
const SUBSCHEMA_ONE: [&str; 11] = [
    "items",
    "contains",
    "unevaluatedItems",
    "additionalProperties",
    "propertyNames",
    "unevaluatedProperties",
    "not",
    "if",
    "then",
    "else",
    "contentSchema",
];
const SUBSCHEMA_LIST: [&str; 4] = ["allOf", "anyOf", "oneOf", "prefixItems"];
const SUBSCHEMA_MAP: [&str; 4] = [
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];
/// Bounds on the walk, so a hostile schema cannot make compiling it expensive.
const MAX_POSITIONS: usize = 10_000;

/// The JSON type of an annotated property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ParamType {
    String,
    Integer,
    Boolean,
}

/// One annotated property.
#[derive(Debug)]
struct Param {
    /// Property names from the root of `arguments`.
    path: Box<[Box<str>]>,
    /// `Mcp-Param-<token>`, as the annotation spells it.
    header: Box<str>,
    /// The same, lowercase, for matching received headers.
    lower: Box<str>,
    ty: ParamType,
}

/// A tool's `Mcp-Param-*` headers, compiled from its `inputSchema`.
#[derive(Debug)]
pub struct ParamHeaders {
    params: Box<[Param]>,
}

/// The `Mcp-Param-*` headers a request came with: lowercase names and values, in order,
/// repeats kept (a repeated header is refused, so it must stay visible).
pub type Received = Box<[(Box<str>, Box<str>)]>;

/// Compiled headers by the server's own tool name, for the tools that declare any.
pub type ParamTable = HashMap<Box<str>, Arc<ParamHeaders>>;

/// An RFC 9110 token: the only characters allowed in a header name.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// How a body value is written in a header, or `None` when it has no header form
/// (objects, arrays; `null` counts as absent).
fn render(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A header value in plain decimal (`-?[0-9]+(\.[0-9]+)?`): its whole part and fraction.
fn decimal(h: &str) -> Option<(&str, &str)> {
    let (whole, fraction) = match h.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (h, ""),
    };
    let digits = whole.strip_prefix('-').unwrap_or(whole);
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!digits.is_empty() && all_digits(digits) && all_digits(fraction)).then_some((whole, fraction))
}

/// Does a received (decoded) header value agree with the body's value? An integer property
/// with an integral body value compares as a number against a plain decimal header (`42`
/// matches `42.0`); everything else compares as text.
fn agrees(ty: ParamType, body: &Value, rendered: &str, header: &str) -> bool {
    let integral = body
        .as_i64()
        .map(i128::from)
        .or_else(|| body.as_u64().map(i128::from))
        .or_else(|| {
            let f = body.as_f64()?;
            (f.fract() == 0.0 && f.abs() < 1e18).then_some(f as i128)
        });
    if let (ParamType::Integer, Some(n), Some((whole, fraction))) = (ty, integral, decimal(header))
    {
        return fraction.bytes().all(|b| b == b'0') && whole.parse::<i128>().is_ok_and(|h| h == n);
    }
    header == rendered
}

impl ParamHeaders {
    /// Compile a tool's `inputSchema`: `Ok(None)` when it declares no header, `Err` with the
    /// reason when an annotation breaks the rules.
    pub fn compile(schema: &Value) -> Result<Option<ParamHeaders>, String> {
        let mut params = Vec::new();
        let mut stack: Vec<(Option<Vec<Box<str>>>, &Value)> = vec![(Some(Vec::new()), schema)];
        let mut seen = 0;
        while let Some((path, node)) = stack.pop() {
            let Value::Object(map) = node else { continue };
            seen += 1;
            if seen > MAX_POSITIONS {
                return Err(format!("the schema has over {MAX_POSITIONS} positions"));
            }
            if let Some(token) = map.get(ANNOTATION) {
                params.push(Self::param(path.as_deref(), token, map.get("type"))?);
            }
            for (kw, val) in map {
                match (kw.as_str(), val) {
                    ("properties", Value::Object(props)) => {
                        for (name, sub) in props {
                            let p = path.as_ref().map(|p| {
                                let mut p = p.clone();
                                p.push(name.as_str().into());
                                p
                            });
                            stack.push((p, sub));
                        }
                    }
                    (k, v) if SUBSCHEMA_ONE.contains(&k) => stack.push((None, v)),
                    (k, Value::Array(list)) if SUBSCHEMA_LIST.contains(&k) => {
                        stack.extend(list.iter().map(|v| (None, v)))
                    }
                    (k, Value::Object(m)) if SUBSCHEMA_MAP.contains(&k) => {
                        stack.extend(m.values().map(|v| (None, v)))
                    }
                    _ => {}
                }
            }
        }
        let mut lowers: Vec<&str> = params.iter().map(|p: &Param| &*p.lower).collect();
        lowers.sort_unstable();
        if let Some(w) = lowers.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("{ANNOTATION} {} is declared twice", w[0]));
        }
        Ok((!params.is_empty()).then(|| ParamHeaders {
            params: params.into(),
        }))
    }

    fn param(
        path: Option<&[Box<str>]>,
        token: &Value,
        ty: Option<&Value>,
    ) -> Result<Param, String> {
        let path = match path {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(format!(
                    "{ANNOTATION} outside a plain `properties` chain from the root"
                ))
            }
        };
        let at = path.join(".");
        let token = token
            .as_str()
            .filter(|t| is_token(t))
            .ok_or_else(|| format!("property {at:?}: {ANNOTATION} must be an RFC 9110 token"))?;
        let ty = match ty.and_then(Value::as_str) {
            Some("string") => ParamType::String,
            Some("integer") => ParamType::Integer,
            Some("boolean") => ParamType::Boolean,
            _ => {
                return Err(format!(
                    "property {at:?}: {ANNOTATION} is only allowed on string, integer and boolean properties"
                ))
            }
        };
        let header: Box<str> = format!("{PREFIX}{token}").into();
        Ok(Param {
            path: path.into(),
            lower: header.to_ascii_lowercase().into(),
            header,
            ty,
        })
    }

    fn value_at<'a>(&self, arguments: Option<&'a Value>, path: &[Box<str>]) -> Option<&'a Value> {
        let mut node = arguments?;
        for key in path {
            node = node.as_object()?.get(&**key)?;
        }
        (!node.is_null()).then_some(node)
    }

    /// The headers a call with these arguments carries: name and encoded value.
    pub fn emit(&self, arguments: Option<&Value>) -> Vec<(&str, String)> {
        self.params
            .iter()
            .filter_map(|p| {
                let v = render(self.value_at(arguments, &p.path)?)?;
                Some((&*p.header, encode_header_value(&v)))
            })
            .collect()
    }

    /// Check the `Mcp-Param-*` headers a request carried (lowercase names, as received; a
    /// name may repeat) against its arguments: each annotated property and its header
    /// present together and equal, or absent together. `Err` names the first disagreement.
    pub fn check(
        &self,
        arguments: Option<&Value>,
        received: &[(Box<str>, Box<str>)],
    ) -> Result<(), String> {
        for p in self.params.iter() {
            let mut copies = received.iter().filter(|(n, _)| **n == *p.lower);
            let raw = copies.next().map(|(_, v)| &**v);
            if raw.is_some() && copies.next().is_some() {
                return Err(format!("{} header appears more than once", p.header));
            }
            let at = p.path.join(".");
            let body = self.value_at(arguments, &p.path);
            let (raw, body) = match (raw, body) {
                (None, None) => continue,
                (Some(_), None) => {
                    return Err(format!(
                        "{} header is present but the body's {at:?} argument is absent",
                        p.header
                    ))
                }
                (raw, Some(body)) => (raw, body),
            };
            let Some(rendered) = render(body) else {
                if raw.is_some() {
                    return Err(format!(
                        "{} header does not match the body's {at:?} argument",
                        p.header
                    ));
                }
                continue;
            };
            let Some(raw) = raw else {
                return Err(format!(
                    "{} header is missing but the body's {at:?} argument is present",
                    p.header
                ));
            };
            let Some(decoded) = decode_header_value(raw) else {
                return Err(format!("{} header has a malformed base64 value", p.header));
            };
            if !agrees(p.ty, body, &rendered, &decoded) {
                return Err(format!(
                    "{} header does not match the body's {at:?} argument",
                    p.header
                ));
            }
        }
        Ok(())
    }
}

/// A `tools/call`'s raw `arguments`, parsed (only for a tool whose headers need them).
pub fn parse_arguments(raw: Option<Raw<'_>>) -> Result<Option<Value>, String> {
    raw.map(|a| serde_json::from_str::<Value>(a.get()))
        .transpose()
        .map_err(|e| format!("arguments: {e}"))
}

/// Compile the headers of every tool in a `tools/list` that declares any. Tools whose
/// annotations are invalid get none, with a warning naming the server and tool.
pub fn compile_tools(server: &str, tools: &[Box<RawValue>]) -> ParamTable {
    let mut table = ParamTable::new();
    for tool in tools {
        // Most tools declare none: skip their parse.
        if memchr::memmem::find(tool.get().as_bytes(), ANNOTATION.as_bytes()).is_none() {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(tool.get()) else {
            continue;
        };
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        match v.get("inputSchema").map(ParamHeaders::compile) {
            Some(Ok(Some(ph))) => {
                table.insert(name.into(), Arc::new(ph));
            }
            Some(Err(why)) => tracing::warn!(
                server,
                tool = name,
                "invalid {ANNOTATION} annotation, no Mcp-Param headers for this tool: {why}"
            ),
            _ => {}
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compiled(schema: Value) -> ParamHeaders {
        ParamHeaders::compile(&schema).unwrap().unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(Box<str>, Box<str>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).into(), (*v).into()))
            .collect()
    }

    fn region() -> ParamHeaders {
        compiled(json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "count": {"type": "integer", "x-mcp-header": "Count"},
            "opts": {"type": "object", "properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}}},
            "text": {"type": "string"},
        }}))
    }

    #[test]
    fn headers_are_emitted_from_arguments() {
        let args = json!({"region": "eu west", "count": 3, "opts": {"dry": true}, "text": "x"});
        let ph = region();
        let mut got = ph.emit(Some(&args));
        got.sort();
        assert_eq!(
            got,
            vec![
                ("Mcp-Param-Count", "3".to_string()),
                ("Mcp-Param-Dry-Run", "true".to_string()),
                ("Mcp-Param-Region", "eu west".to_string()),
            ]
        );
        let odd = json!({"region": "日本", "count": null});
        assert_eq!(
            ph.emit(Some(&odd)),
            vec![("Mcp-Param-Region", encode_header_value("日本"))]
        );
        assert!(ph.emit(None).is_empty());
    }

    #[test]
    fn received_headers_must_agree_with_the_body() {
        let ph = region();
        let args = json!({"region": "Hello", "count": 42});
        let ok = |h: &[(&str, &str)]| ph.check(Some(&args), &headers(h));
        assert!(ok(&[("mcp-param-region", "Hello"), ("mcp-param-count", "42")]).is_ok());
        assert!(ok(&[
            ("mcp-param-region", "=?base64?SGVsbG8=?="),
            ("mcp-param-count", "42.0")
        ])
        .is_ok());
        for bad in [
            vec![("mcp-param-count", "42")], // missing
            vec![("mcp-param-region", "hello"), ("mcp-param-count", "42")], // case of value
            vec![
                ("mcp-param-region", "=?base64?SGVsbG8?="),
                ("mcp-param-count", "42"),
            ], // padding
            vec![("mcp-param-region", "Hello"), ("mcp-param-count", "43")],
            vec![
                ("mcp-param-region", "Hello"),
                ("mcp-param-region", "Hello"),
                ("mcp-param-count", "42"),
            ],
            vec![
                ("mcp-param-region", "Hello"),
                ("mcp-param-count", "42"),
                ("mcp-param-dry-run", "true"),
            ], // no body value
        ] {
            assert!(ok(&bad).is_err(), "{bad:?}");
        }
        // The literal text of a base64 value is not its decoding.
        let b64 = json!({"region": "SGVsbG8="});
        assert!(ph
            .check(Some(&b64), &headers(&[("mcp-param-region", "SGVsbG8=")]))
            .is_ok());
        // Nothing in the body, nothing in the headers: fine.
        assert!(ph.check(Some(&json!({})), &[]).is_ok());
    }

    #[test]
    fn invalid_annotations_are_refused() {
        for schema in [
            json!({"x-mcp-header": "Root"}),
            json!({"properties": {"a": {"type": "number", "x-mcp-header": "A"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "bad name"}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": 7}}}),
            json!({"properties": {"a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}}),
            json!({"properties": {"a": {"type": "array", "items": {"type": "string", "x-mcp-header": "I"}}}}),
            json!({"anyOf": [{"properties": {"a": {"type": "string", "x-mcp-header": "A"}}}]}),
        ] {
            assert!(ParamHeaders::compile(&schema).is_err(), "{schema}");
        }
        assert!(
            ParamHeaders::compile(&json!({"properties": {"a": {"type": "string"}}}))
                .unwrap()
                .is_none()
        );
        // Instance data that merely looks like an annotation is not one.
        assert!(ParamHeaders::compile(
            &json!({"properties": {"a": {"type": "string", "default": {"x-mcp-header": "D"}}}})
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn only_tools_that_declare_headers_are_compiled() {
        let tools: Vec<Box<RawValue>> = [
            r#"{"name":"plain","inputSchema":{"type":"object"}}"#,
            r#"{"name":"routed","inputSchema":{"type":"object","properties":{"r":{"type":"string","x-mcp-header":"R"}}}}"#,
            r#"{"name":"broken","inputSchema":{"type":"object","properties":{"r":{"type":"number","x-mcp-header":"R"}}}}"#,
        ]
        .iter()
        .map(|t| RawValue::from_string(t.to_string()).unwrap())
        .collect();
        let table = compile_tools("s", &tools);
        assert_eq!(
            table.keys().map(|k| &**k).collect::<Vec<_>>(),
            vec!["routed"]
        );
    }
}
