//! The request's `Mcp-*` headers as the ingress reads them, found in one pass over the
//! header map: a lookup by name parses and hashes the name each time, and a 2026-07-28
//! request has its version, method and name looked up several times.

use hyper::header::HeaderMap;

use crate::ingress::Headers;
use crate::protocol::param_headers::Received;

/// The `Mcp-*` headers of one request: the first value of each, where it is text.
pub(super) struct McpHeaders<'a> {
    protocol_version: Option<&'a str>,
    method: Option<&'a str>,
    name: Option<&'a str>,
    session_id: Option<&'a str>,
    map: &'a HeaderMap,
    /// Whether any `Mcp-Param-*` header came (they are collected only then).
    any_param: bool,
}

impl<'a> McpHeaders<'a> {
    pub(super) fn read(map: &'a HeaderMap) -> McpHeaders<'a> {
        let mut h = McpHeaders {
            protocol_version: None,
            method: None,
            name: None,
            session_id: None,
            map,
            any_param: false,
        };
        let mut seen = [false; 4];
        for (name, value) in map.iter() {
            let Some(rest) = name.as_str().strip_prefix("mcp-") else {
                continue;
            };
            let (slot, i) = match rest {
                "protocol-version" => (&mut h.protocol_version, 0),
                "method" => (&mut h.method, 1),
                "name" => (&mut h.name, 2),
                "session-id" => (&mut h.session_id, 3),
                _ => {
                    h.any_param |= rest.starts_with("param-");
                    continue;
                }
            };
            // Only the first value counts, as a lookup by name would give it.
            if !std::mem::replace(&mut seen[i], true) {
                *slot = value.to_str().ok();
            }
        }
        h
    }

    /// `Mcp-Session-Id`, if it is text.
    pub(super) fn session_id(&self) -> Option<&'a str> {
        self.session_id
    }
}

impl Headers for McpHeaders<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "mcp-protocol-version" => self.protocol_version,
            "mcp-method" => self.method,
            "mcp-name" => self.name,
            "mcp-session-id" => self.session_id,
            other => self.map.get(other).and_then(|v| v.to_str().ok()),
        }
    }

    fn param_headers(&self) -> Received {
        if !self.any_param {
            return Received::default();
        }
        self.map
            .iter()
            .filter(|(n, _)| n.as_str().starts_with("mcp-param-"))
            .map(|(n, v)| {
                (
                    n.as_str().into(),
                    String::from_utf8_lossy(v.as_bytes()).into(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn first_values_found_in_one_pass_as_lookups_would_find_them() {
        let mut map = HeaderMap::new();
        map.insert("content-type", HeaderValue::from_static("application/json"));
        map.append("mcp-method", HeaderValue::from_static("tools/call"));
        map.append("mcp-method", HeaderValue::from_static("tools/list"));
        map.insert("mcp-name", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        map.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2026-07-28"),
        );
        let h = McpHeaders::read(&map);
        for name in [
            "mcp-method",
            "mcp-name",
            "mcp-protocol-version",
            "mcp-session-id",
            "content-type",
        ] {
            assert_eq!(
                h.get(name),
                map.get(name).and_then(|v| v.to_str().ok()),
                "{name}"
            );
        }
        assert_eq!(h.get("mcp-method"), Some("tools/call"));
        assert!(h.param_headers().is_empty());

        map.append("mcp-param-region", HeaderValue::from_static("eu"));
        map.append("mcp-param-region", HeaderValue::from_static("us"));
        let params = McpHeaders::read(&map).param_headers();
        assert_eq!(params.len(), 2);
        assert_eq!((&*params[1].0, &*params[1].1), ("mcp-param-region", "us"));
    }
}
