//! The 2026-07-28 header-value codec (`2026-07-28/basic/transports/streamable-http`): a value
//! that is not safe as plain header text travels as `=?base64?...?=`. Decoding is strict
//! (standard alphabet, padding, canonical form), so a corrupt header never matches a body
//! value by accident; the conformance suite checks that bad padding and characters are refused.

/// The standard base64 alphabet (RFC 4648 section 4).
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Decode a header value: the text inside `=?base64?...?=`, or the value itself when it is
/// not wrapped. `None` for a wrapped value that is not canonical base64 of UTF-8 text.
pub fn decode_header_value(v: &str) -> Option<std::borrow::Cow<'_, str>> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(base64_decode(b64)?).ok().map(Into::into),
        None => Some(v.into()),
    }
}

/// A header value as 2026-07-28 sends it: plain when it is visible ASCII without edge
/// spaces (and does not itself look wrapped), else `=?base64?...?=`.
pub fn encode_header_value(v: &str) -> String {
    let plain = !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && !v.starts_with("=?");
    if plain {
        return v.to_string();
    }
    let mut out = String::from("=?base64?");
    for chunk in v.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push_str("?=");
    out
}

/// Strict base64: whole quanta of four, `=` only as the last one or two characters, and
/// the unused bits of the last quantum zero (so each text has exactly one encoding).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let pad = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if pad > 2 {
        return None;
    }
    let digits = &bytes[..bytes.len() - pad];
    let val = |c: u8| ALPHABET.iter().position(|a| *a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for quantum in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in quantum.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let take = quantum.len() - 1; // 4 digits: 3 bytes; 3: 2; 2: 1
        if take == 0 {
            return None;
        }
        let unused = 24 - 8 * take as u32;
        if quantum.len() < 4 && n & ((1 << unused) - 1) != 0 {
            return None; // non-canonical: bits beyond the data
        }
        out.extend_from_slice(&n.to_be_bytes()[1..1 + take]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip() {
        for v in [
            "plain",
            "héllo",
            " edge ",
            "=?base64?x?=",
            "",
            "a\tb",
            "日本",
        ] {
            let enc = encode_header_value(v);
            assert_eq!(
                decode_header_value(&enc).as_deref(),
                Some(v),
                "{v:?} as {enc}"
            );
        }
        assert_eq!(encode_header_value("plain"), "plain");
        assert_eq!(
            decode_header_value("=?base64?aMOpbGxv?=").as_deref(),
            Some("héllo")
        );
    }

    #[test]
    fn only_canonical_base64_decodes() {
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=?=").as_deref(),
            Some("Hello")
        );
        for bad in [
            "=?base64?SGVsbG8?=",     // padding missing
            "=?base64?SGVs!!!bG8=?=", // not the alphabet
            "=?base64?SGVsbG9=?=",    // non-canonical trailing bits
            "=?base64?SGV=sbG8?=",    // padding inside
            "=?base64?S===?=",        // three pad characters
            "=?base64?SGVsbG8_?=",    // the URL-safe alphabet
            "=?base64?/w==?=",        // not UTF-8
        ] {
            assert_eq!(decode_header_value(bad), None, "{bad}");
        }
        // Not wrapped on both sides: the value is literal.
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=").as_deref(),
            Some("=?base64?SGVsbG8=")
        );
    }
}
