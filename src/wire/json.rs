//! Building the few frames the router writes itself: its own errors and results, and
//! requests to upstreams. Payloads from peers are embedded as raw bytes, never re-encoded.

use crate::wire::params::Raw;
use crate::wire::scan::{ScanError, Scanner};
use bytes::{BufMut, Bytes, BytesMut};

/// Append `s` as a JSON string literal.
pub fn push_str(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.put_slice(&bytes[start..i]);
                out.put_slice(format!("\\u{b:04x}").as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.put_slice(&bytes[start..i]);
        out.put_slice(esc);
        start = i + 1;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

/// Append `[item,item,...]`, each item raw JSON.
pub fn push_array(out: &mut BytesMut, items: &[Bytes]) {
    out.reserve(items.iter().map(|i| i.len() + 1).sum::<usize>() + 2);
    out.put_u8(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item);
    }
    out.put_u8(b']');
}

/// `s` as a JSON string literal (quoted and escaped).
pub fn json_string(s: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(s.len() + 2);
    push_str(&mut out, s);
    out.freeze()
}

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}`
pub fn result(id: &[u8], result: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(id.len() + result.len() + 40);
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(id);
    out.put_slice(b",\"result\":");
    out.put_slice(result);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"jsonrpc":"2.0","id":<id or null>,"error":{"code":..,"message":..,"data"?:..}}`
pub fn error(id: Option<&[u8]>, code: i64, message: &str, data: Option<&[u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 96);
    out.put_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.put_slice(id.unwrap_or(b"null"));
    out.put_slice(b",\"error\":{\"code\":");
    out.put_slice(code.to_string().as_bytes());
    out.put_slice(b",\"message\":");
    push_str(&mut out, message);
    if let Some(data) = data {
        out.put_slice(b",\"data\":");
        out.put_slice(data);
    }
    out.put_slice(b"}}");
    out.freeze()
}

/// A router-made error naming the server it concerns, so clients can tell it from the server's own.
pub fn router_error(id: Option<&[u8]>, code: i64, message: &str, server: Option<&str>) -> Bytes {
    let mut data = BytesMut::with_capacity(64);
    data.put_slice(b"{\"source\":\"switchyard\"");
    if let Some(server) = server {
        data.put_slice(b",\"server\":");
        push_str(&mut data, server);
    }
    data.put_u8(b'}');
    error(id, code, message, Some(&data))
}

/// `notifications/cancelled` for our request `request_id`, with an optional reason.
pub fn cancelled(request_id: u64, reason: Option<&str>) -> Bytes {
    let mut params = format!("{{\"requestId\":{request_id}");
    if let Some(r) = reason {
        params.push_str(",\"reason\":");
        params.push_str(std::str::from_utf8(&json_string(r)).unwrap_or("\"\""));
    }
    params.push('}');
    message(None, "notifications/cancelled", Some(params.as_bytes()))
}

/// A request or notification: `{"jsonrpc":"2.0"[,"id":<id>],"method":..[,"params":<params>]}`
pub fn message(id: Option<&[u8]>, method: &str, params: Option<&[u8]>) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + method.len() + params.map_or(0, |p| p.len()));
    out.put_slice(b"{\"jsonrpc\":\"2.0\"");
    if let Some(id) = id {
        out.put_slice(b",\"id\":");
        out.put_slice(id);
    }
    out.put_slice(b",\"method\":");
    push_str(&mut out, method);
    if let Some(params) = params {
        out.put_slice(b",\"params\":");
        out.put_slice(params);
    }
    out.put_u8(b'}');
    out.freeze()
}

/// A JSON object's members in order, values unparsed.
#[derive(Default)]
pub struct Members<'a>(pub Vec<(Key<'a>, Raw<'a>)>);

/// A member's key: borrowed from the text where it has no escapes (so its place is known).
pub struct Key<'a>(pub std::borrow::Cow<'a, str>);

impl std::ops::Deref for Key<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> Members<'a> {
    /// The members of the object `s` is before, read by the scanner (which checks it).
    pub fn read(s: &mut Scanner<'a>) -> Result<Members<'a>, ScanError> {
        let mut out = Vec::new();
        s.members(|k, s| {
            out.push((Key(k.text()), Raw(s.value_str()?)));
            Ok(())
        })?;
        Ok(Members(out))
    }

    /// The members of the JSON object `object`; `None` if it is not one.
    pub fn parse(object: &'a str) -> Option<Members<'a>> {
        let mut s = Scanner::new(object);
        let m = Members::read(&mut s).ok()?;
        s.finish().ok()?;
        Some(m)
    }
}

/// The JSON object `object` without the members whose key `drop` picks, the others kept in
/// order and byte for byte; `None` if it is not an object or nothing is dropped.
pub fn without_members(object: &str, drop: impl Fn(&str) -> bool) -> Option<Vec<u8>> {
    let Members(members) = Members::parse(object)?;
    if !members.iter().any(|(k, _)| drop(k)) {
        return None;
    }
    let mut out = Vec::with_capacity(object.len());
    out.push(b'{');
    for (k, v) in members.iter().filter(|(k, _)| !drop(k)) {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(&json_string(k));
        out.push(b':');
        out.extend_from_slice(v.get().as_bytes());
    }
    out.push(b'}');
    Some(out)
}

/// The byte ranges of `base` to cut so that the JSON object `object` (a slice of `base`)
/// loses the members whose key `drop` picks, each with one of its commas, the rest left byte
/// for byte. Unlike [`without_members`] nothing is rebuilt, so the cuts can join the other
/// edits of one splice. `None` if it is not an object, nothing is dropped, or a dropped key
/// is written with escapes (it cannot be placed; the caller rebuilds instead).
pub fn member_cuts(
    base: &[u8],
    object: &str,
    drop: impl Fn(&str) -> bool,
) -> Option<Vec<std::ops::Range<usize>>> {
    Members::parse(object)?.cuts(base, drop)
}

impl<'a> Members<'a> {
    /// The value of the first member named `key`.
    pub fn get(&self, key: &str) -> Option<Raw<'a>> {
        self.0.iter().find(|(k, _)| **k == *key).map(|(_, v)| *v)
    }

    /// As [`member_cuts`], for members already read out of `base`.
    pub fn cuts(
        &self,
        base: &[u8],
        drop: impl Fn(&str) -> bool,
    ) -> Option<Vec<std::ops::Range<usize>>> {
        use std::borrow::Cow;
        // Each member: dropped or not, its key's opening quote (placed only for a dropped one,
        // whose key must then be unescaped), its value's end.
        let mut spans = Vec::with_capacity(self.0.len());
        for (k, v) in &self.0 {
            let dropped = drop(k);
            let start = match &k.0 {
                Cow::Borrowed(k) if dropped => crate::wire::envelope::span_of(base, k).start - 1,
                Cow::Owned(_) if dropped => return None,
                _ => 0,
            };
            spans.push((
                dropped,
                start,
                crate::wire::envelope::span_of(base, v.get()).end,
            ));
        }
        let last_kept = spans.iter().rposition(|(d, _, _)| !d);
        let last_end = spans.last()?.2;
        let mut cuts = Vec::new();
        for (i, &(dropped, start, end)) in spans.iter().enumerate() {
            if !dropped {
                continue;
            }
            match last_kept {
                // Before a kept member: up to the next key, taking the comma after it.
                Some(k) if i < k => {
                    let skip = |at: usize| {
                        base[at..]
                            .iter()
                            .position(|b| !b.is_ascii_whitespace())
                            .map(|n| at + n)
                    };
                    let comma = skip(end).filter(|&c| base[c] == b',')?;
                    cuts.push(start..skip(comma + 1)?);
                }
                // The run after the last kept member: one cut from that member's end.
                Some(k) if i == k + 1 => cuts.push(spans[k].2..last_end),
                Some(_) => {}
                // Nothing kept: everything between the braces.
                None if i == 0 => cuts.push(start..last_end),
                None => {}
            }
        }
        (!cuts.is_empty()).then_some(cuts)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn members_are_dropped_and_the_rest_kept_in_order() {
        let out = without_members(r#"{"b":1, "task":{"ttl":5},"a":[1, 2]}"#, |k| k == "task");
        assert_eq!(out.as_deref(), Some(&br#"{"b":1,"a":[1, 2]}"#[..]));
        assert_eq!(without_members(r#"{"b":1}"#, |k| k == "task"), None);
        assert_eq!(without_members("[1]", |_| true), None);
        assert_eq!(
            without_members(r#"{"task":1}"#, |k| k == "task").as_deref(),
            Some(&b"{}"[..])
        );
    }

    use super::*;

    #[test]
    fn strings_round_trip_through_serde() {
        for s in ["plain", "q\"uote\\", "ctl\u{1}\n\t", "ünï©ødé"] {
            let enc = json_string(s);
            let back: String = serde_json::from_slice(&enc).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn error_frames_are_valid_json() {
        let f = router_error(Some(b"\"a\""), -31001, "timed \"out\"", Some("srv"));
        let v: serde_json::Value = serde_json::from_slice(&f).unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["error"]["data"]["server"], "srv");
        let f = error(None, -32700, "bad", None);
        assert!(serde_json::from_slice::<serde_json::Value>(&f).unwrap()["id"].is_null());
    }

    #[test]
    fn cut_members_leave_valid_json_and_every_kept_byte() {
        use crate::wire::rewrite::{splice, Edit};
        let drop = |k: &str| k.starts_with('x');
        for (object, want) in [
            (r#"{"xa":1,"b":2}"#, r#"{"b":2}"#),
            (r#"{"b":2,"xa":1}"#, r#"{"b":2}"#),
            (
                r#"{"xa":1, "xb":[1,{}] ,"c" : 3 , "xd":"}"}"#,
                r#"{"c" : 3}"#,
            ),
            (r#"{ "xa":1 }"#, r#"{  }"#),
            (r#"{"a":1,"xb":2,"c":3,"xd":4}"#, r#"{"a":1,"c":3}"#),
            (r#"{"x\u0031":1,"a":2}"#, ""),
            (r#"{"xa":1,"b\u0031":2}"#, r#"{"b\u0031":2}"#),
            (
                r#"{"a\u0031":0, "xa":1 , "b":2,"xc":3}"#,
                r#"{"a\u0031":0, "b":2}"#,
            ),
            (r#"{"a":1}"#, ""),
        ] {
            let base = format!(r#"{{"params":{object}}}"#);
            let inner = &base[10..base.len() - 1];
            let Some(cuts) = member_cuts(base.as_bytes(), inner, drop) else {
                assert_eq!(want, "", "{object}");
                continue;
            };
            let mut edits: Vec<_> = cuts
                .into_iter()
                .map(|range| Edit { range, with: b"" })
                .collect();
            let out = splice(base.as_bytes(), &mut edits);
            assert_eq!(
                std::str::from_utf8(&out).unwrap(),
                format!(r#"{{"params":{want}}}"#)
            );
        }
    }
}
