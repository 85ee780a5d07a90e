//! What the router reads of a request's `params`: one pass of the scanner over them, values
//! borrowed and unparsed ([`ParamsPeek`]), and where those values sit in the frame
//! ([`CallSpans`]), which is what travels with a call so that nothing reads `params` again.

use std::borrow::Cow;
use std::ops::Range;

use super::envelope::span_of;
use super::json::Members;
pub use super::scan::str_value;
use super::scan::{is_json, ScanError, Scanner};

/// A JSON value's text as written (checked JSON: the scanner read it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw<'a>(pub(crate) &'a str);

impl<'a> Raw<'a> {
    /// The value's text.
    pub fn get(&self) -> &'a str {
        self.0
    }
}

/// The parts of `params` the router reads. Parsed only for methods that need them.
#[derive(Default)]
pub struct ParamsPeek<'a> {
    /// `name` (tools, prompts), raw JSON.
    pub name: Option<Raw<'a>>,
    /// `uri` (resources), raw JSON.
    pub uri: Option<Raw<'a>>,
    /// `ref` of `completion/complete`.
    pub reference: Option<RefPeek<'a>>,
    /// `params._meta`, its members read in this same pass, their values unparsed.
    pub meta: Option<Members<'a>>,
    /// `cursor` of a list request.
    pub cursor: Option<Cow<'a, str>>,
    /// `requestId` of `notifications/cancelled`.
    pub request_id: Option<Raw<'a>>,
    /// `progressToken` of `notifications/progress`.
    pub progress_token: Option<Raw<'a>>,
    /// `level` of `logging/setLevel`.
    pub level: Option<Cow<'a, str>>,
    /// `protocolVersion` of `initialize`.
    pub protocol_version: Option<Cow<'a, str>>,
    /// `capabilities` of `initialize`, raw JSON.
    pub capabilities: Option<Raw<'a>>,
    /// A `tools/call`'s arguments (read only for tools that mirror some into headers).
    pub arguments: Option<Raw<'a>>,
    /// A multi round-trip retry (2026-07-28) carries these.
    pub input_responses: Option<Raw<'a>>,
    /// The `requestState` of a multi round-trip retry.
    pub request_state: Option<Raw<'a>>,
}

/// `ref` of `completion/complete`: a prompt by name or a resource template by URI.
#[derive(Default)]
pub struct RefPeek<'a> {
    /// `type`: `ref/prompt` or `ref/resource`.
    pub kind: Option<Cow<'a, str>>,
    /// The prompt's name, raw JSON.
    pub name: Option<Raw<'a>>,
    /// The template's URI, raw JSON.
    pub uri: Option<Raw<'a>>,
}

/// Marks member `i` as seen; a second time is an error, as a repeated member is ambiguous.
fn first_time(seen: &mut u16, i: usize, name: &str) -> Result<(), ScanError> {
    if *seen & (1 << i) != 0 {
        return Err(ScanError::Invalid(format!("duplicate field `{name}`")));
    }
    *seen |= 1 << i;
    Ok(())
}

/// The value next in `s`, `None` for `null`.
fn raw_value<'a>(s: &mut Scanner<'a>) -> Result<Option<Raw<'a>>, ScanError> {
    let v = s.value_str()?;
    Ok((v != "null").then_some(Raw(v)))
}

/// The string next in `s`, `None` for `null`; anything else is the wrong type.
fn string_value<'a>(s: &mut Scanner<'a>, field: &str) -> Result<Option<Cow<'a, str>>, ScanError> {
    match raw_value(s)? {
        None => Ok(None),
        Some(Raw(v)) => str_value(v)
            .map(Some)
            .ok_or_else(|| ScanError::Invalid(format!("invalid type: `{field}` must be a string"))),
    }
}

/// Whether `null` comes next (then it is consumed).
fn null_next(s: &mut Scanner<'_>) -> Result<bool, ScanError> {
    if s.peek() == Some(b'n') {
        s.value()?;
        return Ok(true);
    }
    Ok(false)
}

impl<'a> RefPeek<'a> {
    fn read(s: &mut Scanner<'a>) -> Result<RefPeek<'a>, ScanError> {
        let mut r = RefPeek::default();
        let mut seen = 0u16;
        s.members(|key, s| {
            let name = key.text();
            let bit = match &*name {
                "type" => 0,
                "name" => 1,
                "uri" => 2,
                _ => return s.value().map(drop),
            };
            first_time(&mut seen, bit, &name)?;
            match bit {
                0 => r.kind = string_value(s, "type")?,
                1 => r.name = raw_value(s)?,
                _ => r.uri = raw_value(s)?,
            }
            Ok(())
        })?;
        Ok(r)
    }
}

impl<'a> ParamsPeek<'a> {
    /// Read the routing keys of `params` in one pass that also checks every byte of them
    /// (values are borrowed, not parsed). `null` reads as absent.
    pub fn parse(params: &'a str) -> Result<ParamsPeek<'a>, String> {
        let mut s = Scanner::new(params);
        if s.peek() != Some(b'{') {
            return Err(if is_json(params) {
                "invalid params: expected an object".into()
            } else {
                "invalid params: not JSON".into()
            });
        }
        ParamsPeek::read(&mut s)
            .and_then(|p| s.finish().map(|_| p))
            .map_err(|e| format!("invalid params: {e}"))
    }

    /// The same, for the object `s` is before (the envelope's pass reads `params` with it).
    pub fn read(s: &mut Scanner<'a>) -> Result<ParamsPeek<'a>, ScanError> {
        let mut p = ParamsPeek::default();
        let mut seen = 0u16;
        s.members(|key, s| {
            let name = key.text();
            let bit = match &*name {
                "name" => 0,
                "uri" => 1,
                "ref" => 2,
                "_meta" => 3,
                "cursor" => 4,
                "requestId" => 5,
                "progressToken" => 6,
                "level" => 7,
                "protocolVersion" => 8,
                "capabilities" => 9,
                "arguments" => 10,
                "inputResponses" => 11,
                "requestState" => 12,
                _ => return s.value().map(drop),
            };
            first_time(&mut seen, bit, &name)?;
            // `ref` and `_meta` given as `null` are consumed by the check and read as absent.
            match bit {
                0 => p.name = raw_value(s)?,
                1 => p.uri = raw_value(s)?,
                2 if !null_next(s)? => p.reference = Some(RefPeek::read(s)?),
                3 if !null_next(s)? => p.meta = Some(Members::read(s)?),
                4 => p.cursor = string_value(s, "cursor")?,
                5 => p.request_id = raw_value(s)?,
                6 => p.progress_token = raw_value(s)?,
                7 => p.level = string_value(s, "level")?,
                8 => p.protocol_version = string_value(s, "protocolVersion")?,
                9 => p.capabilities = raw_value(s)?,
                10 => p.arguments = raw_value(s)?,
                11 => p.input_responses = raw_value(s)?,
                12 => p.request_state = raw_value(s)?,
                _ => {}
            }
            Ok(())
        })?;
        Ok(p)
    }

    /// A request's progress token, `params._meta.progressToken`, raw.
    pub fn meta_progress_token(&self) -> Option<Raw<'a>> {
        self.meta.as_ref()?.get("progressToken")
    }

    /// Where the values a call is routed by sit in `frame` (the frame these `params` are a
    /// slice of). The cuts are left to the caller, which knows which members to drop.
    pub fn spans(&self, frame: &[u8]) -> CallSpans {
        let at = |raw: Raw<'_>| span_of(frame, raw.get());
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
pub fn raw_str(raw: Raw<'_>) -> Option<Cow<'_, str>> {
    str_value(raw.get())
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
