//! What the router reads of a request's `params`: one pass of serde_json over them, values
//! borrowed and unparsed ([`ParamsPeek`]), and where those values sit in the frame
//! ([`CallSpans`]), which is what travels with a call so that nothing reads `params` again.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::envelope::span_of;
use super::json::Members;

/// The parts of `params` the router reads. Parsed only for methods that need them.
#[derive(Deserialize, Default)]
pub struct ParamsPeek<'a> {
    /// `name` (tools, prompts), raw JSON.
    #[serde(borrow, default)]
    pub name: Option<&'a RawValue>,
    /// `uri` (resources), raw JSON.
    #[serde(borrow, default)]
    pub uri: Option<&'a RawValue>,
    /// `ref` of `completion/complete`.
    #[serde(borrow, default, rename = "ref")]
    pub reference: Option<RefPeek<'a>>,
    /// `params._meta`, its members read in this same pass, their values unparsed.
    #[serde(borrow, default, rename = "_meta")]
    pub meta: Option<Members<'a>>,
    /// `cursor` of a list request.
    #[serde(borrow, default)]
    pub cursor: Option<Cow<'a, str>>,
    /// `requestId` of `notifications/cancelled`.
    #[serde(borrow, default, rename = "requestId")]
    pub request_id: Option<&'a RawValue>,
    /// `progressToken` of `notifications/progress`.
    #[serde(borrow, default, rename = "progressToken")]
    pub progress_token: Option<&'a RawValue>,
    /// `level` of `logging/setLevel`.
    #[serde(borrow, default)]
    pub level: Option<Cow<'a, str>>,
    /// `protocolVersion` of `initialize`.
    #[serde(borrow, default, rename = "protocolVersion")]
    pub protocol_version: Option<Cow<'a, str>>,
    /// `capabilities` of `initialize`, raw JSON.
    #[serde(borrow, default)]
    pub capabilities: Option<&'a RawValue>,
    /// A `tools/call`'s arguments (read only for tools that mirror some into headers).
    #[serde(borrow, default)]
    pub arguments: Option<&'a RawValue>,
    /// A multi round-trip retry (2026-07-28) carries these.
    #[serde(borrow, default, rename = "inputResponses")]
    pub input_responses: Option<&'a RawValue>,
    /// The `requestState` of a multi round-trip retry.
    #[serde(borrow, default, rename = "requestState")]
    pub request_state: Option<&'a RawValue>,
}

/// `ref` of `completion/complete`: a prompt by name or a resource template by URI.
#[derive(Deserialize, Default)]
pub struct RefPeek<'a> {
    /// `type`: `ref/prompt` or `ref/resource`.
    #[serde(borrow, default, rename = "type")]
    pub kind: Option<Cow<'a, str>>,
    /// The prompt's name, raw JSON.
    #[serde(borrow, default)]
    pub name: Option<&'a RawValue>,
    /// The template's URI, raw JSON.
    #[serde(borrow, default)]
    pub uri: Option<&'a RawValue>,
}

impl<'a> ParamsPeek<'a> {
    /// Read the routing keys of `params` (one pass; values are borrowed, not parsed).
    pub fn parse(params: &'a str) -> Result<ParamsPeek<'a>, String> {
        serde_json::from_str(params).map_err(|e| format!("invalid params: {e}"))
    }

    /// A request's progress token, `params._meta.progressToken`, raw.
    pub fn meta_progress_token(&self) -> Option<&'a RawValue> {
        self.meta.as_ref()?.get("progressToken")
    }

    /// Where the values a call is routed by sit in `frame` (the frame these `params` are a
    /// slice of). The cuts are left to the caller, which knows which members to drop.
    pub fn spans(&self, frame: &[u8]) -> CallSpans {
        let at = |raw: &RawValue| span_of(frame, raw.get());
        CallSpans {
            name: self.name.map(at),
            uri: self.uri.map(at),
            reference: self.reference.as_ref().map(|r| RefSpans {
                kind: match r.kind.as_deref() {
                    Some("ref/prompt") => RefKind::Prompt,
                    Some("ref/resource") => RefKind::Resource,
                    _ => RefKind::Other,
                },
                name: r.name.map(at),
                uri: r.uri.map(at),
            }),
            token: self.meta_progress_token().map(at),
            cuts: Vec::new(),
        }
    }
}

/// Where a call's routing keys sit in its frame (ranges of raw JSON), found by the one read
/// of its `params`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallSpans {
    /// `name` (tools, prompts).
    pub name: Option<Range<usize>>,
    /// `uri` (resources).
    pub uri: Option<Range<usize>>,
    /// `ref` of `completion/complete`.
    pub reference: Option<RefSpans>,
    /// `_meta.progressToken`.
    pub token: Option<Range<usize>>,
    /// Ranges to cut for a server that must not see some `_meta` members (a 2026-07-28
    /// client's envelope, for a handshake-era server); empty unless the caller filled them.
    pub cuts: Vec<Range<usize>>,
}

/// Where the parts of a completion's `ref` sit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSpans {
    /// What it refers to.
    pub kind: RefKind,
    /// A prompt's name.
    pub name: Option<Range<usize>>,
    /// A template's URI.
    pub uri: Option<Range<usize>>,
}

/// The `type` of a completion's `ref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// `ref/prompt`.
    Prompt,
    /// `ref/resource`.
    Resource,
    /// Missing or anything else.
    Other,
}

/// Decode a raw JSON string (`"a\u0041"` -> `aA`); `None` if it is not a string.
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    str_value(raw.get())
}

/// Decode the JSON string whose text is `raw` (valid JSON, as every span here is); one
/// without escapes is borrowed as it is, without a parse.
pub fn str_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.bytes().any(|b| b == b'\\' || b == b'"' || b < 0x20) {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_peek_reads_routing_keys() {
        let p = ParamsPeek::parse(
            r#"{"name":"a\u005fb","arguments":{"x":[1,2]},"_meta":{"progressToken":"t"}}"#,
        )
        .unwrap();
        assert_eq!(raw_str(p.name.unwrap()).unwrap(), "a_b");
        assert_eq!(p.meta_progress_token().unwrap().get(), "\"t\"");
    }

    #[test]
    fn spans_point_at_the_raw_values() {
        let frame =
            r#"{"params":{"ref":{"type":"ref/prompt","name":"p"},"_meta":{"progressToken":7}}}"#;
        let params = &frame[10..frame.len() - 1];
        let s = ParamsPeek::parse(params).unwrap().spans(frame.as_bytes());
        let r = s.reference.unwrap();
        assert_eq!(r.kind, RefKind::Prompt);
        assert_eq!(&frame[r.name.unwrap()], "\"p\"");
        assert_eq!(&frame[s.token.unwrap()], "7");
        assert!(s.name.is_none() && s.cuts.is_empty());
    }

    #[test]
    fn strings_decode_with_and_without_escapes() {
        assert_eq!(str_value(r#""plain""#).unwrap(), "plain");
        assert!(matches!(str_value(r#""plain""#), Some(Cow::Borrowed(_))));
        assert_eq!(str_value(r#""a\u0041\n""#).unwrap(), "aA\n");
        assert_eq!(str_value(r#""q\"""#).unwrap(), "q\"");
        assert_eq!(str_value("12"), None);
        assert_eq!(str_value(r#""""#).unwrap(), "");
    }
}
