//! A validating JSON scanner: it walks a JSON text (RFC 8259) without building anything,
//! checks every byte (strings and their escapes, the number grammar, literals, structure),
//! and tells its caller where the members of an object sit.
//!
//! It replaces serde_json on the per-message path (the envelope and the `params` read):
//! serde_json's borrowed `RawValue` parts cost a visitor, an `ignore_value` pass and a
//! UTF-8 check per part, and the parse bench has this scanner ahead of them at every size
//! (BENCHMARKS.md, "Our own JSON scanner"). The text is a `&str`, so UTF-8 is checked
//! once, by whoever made it.
//! Nesting is tracked on a bit stack, not by recursion: any depth is accepted, as serde_json
//! accepts it, and no input can exhaust the call stack.

use std::borrow::Cow;
use std::ops::Range;

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// Not JSON: what was wrong, and the byte offset where it was seen.
    Syntax {
        /// Byte offset of the fault.
        at: usize,
        /// What was expected or found.
        what: &'static str,
    },
    /// JSON, but not what the caller reads (a wrong type, a repeated member).
    Invalid(String),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::Syntax { at, what } => write!(f, "{what} at byte {at}"),
            ScanError::Invalid(why) => f.write_str(why),
        }
    }
}

/// A member's key as written: its text with its quotes, where its opening quote is, and
/// whether it has escapes (then [`Key::text`] decodes it).
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    /// The key with its quotes, escapes as written.
    quoted: &'a str,
    /// Whether it has escapes.
    pub escaped: bool,
    /// Offset of the opening quote in the scanned text.
    pub at: usize,
}

impl<'a> Key<'a> {
    /// The key's value: the text between its quotes, decoded when it has escapes.
    pub fn text(&self) -> Cow<'a, str> {
        let inner = &self.quoted[1..self.quoted.len() - 1];
        if !self.escaped {
            return Cow::Borrowed(inner);
        }
        str_value(self.quoted).unwrap_or(Cow::Borrowed(inner))
    }
}

/// Decode the JSON string whose text is `raw` (valid JSON, as every span here is); one
/// without escapes is borrowed as it is, without a parse. `None` if it is not a string, or
/// an escape names no character (a lone surrogate).
pub fn str_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.bytes().any(|b| b == b'\\' || b == b'"' || b < 0x20) {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str(raw).ok()
}

/// A position in a JSON text being scanned.
pub struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

type Scan<T> = Result<T, ScanError>;

impl<'a> Scanner<'a> {
    /// A scanner at the start of `text`.
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner { text, at: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn fail<T>(&self, what: &'static str) -> Scan<T> {
        Err(ScanError::Syntax { at: self.at, what })
    }

    fn ws(&mut self) {
        let b = self.bytes();
        while self.at < b.len() && matches!(b[self.at], b' ' | b'\t' | b'\n' | b'\r') {
            self.at += 1;
        }
    }

    /// Where the scanner is (a byte offset into the text).
    pub fn position(&self) -> usize {
        self.at
    }

    /// Go back to a position [`Scanner::position`] gave.
    pub fn set_position(&mut self, at: usize) {
        self.at = at.min(self.text.len());
    }

    /// The next byte after whitespace, not consumed.
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.at).copied()
    }

    /// The end of the text must come next (whitespace aside).
    pub fn finish(&mut self) -> Scan<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.fail("trailing characters"),
        }
    }

    /// Skip one value (after whitespace) and return its range in the text.
    pub fn value(&mut self) -> Scan<Range<usize>> {
        self.ws();
        let start = self.at;
        self.skip_value()?;
        Ok(start..self.at)
    }

    /// The value the next [`Scanner::value`] would skip, as text.
    pub fn value_str(&mut self) -> Scan<&'a str> {
        let r = self.value()?;
        Ok(&self.text[r])
    }

    /// Read the object that comes next, calling `member` with each key and this scanner
    /// placed before the key's value; `member` must consume that value (with
    /// [`Scanner::value`], or [`Scanner::members`] for an object). Returns the object's range.
    pub fn members(
        &mut self,
        mut member: impl FnMut(Key<'a>, &mut Scanner<'a>) -> Scan<()>,
    ) -> Scan<Range<usize>> {
        let (start, empty) = self.open(b'{', b'}', "expected an object")?;
        if empty {
            return Ok(start..self.at);
        }
        loop {
            let key = self.key()?;
            self.ws();
            let before = self.at;
            member(key, self)?;
            if self.at == before {
                // A caller that did not consume the value would loop on it.
                self.skip_value()?;
            }
            if !self.separator(b'}', "expected ',' or '}' in an object")? {
                return Ok(start..self.at);
            }
        }
    }

    /// Read the array that comes next, calling `item` with each element's range.
    pub fn items(&mut self, mut item: impl FnMut(Range<usize>)) -> Scan<Range<usize>> {
        let (start, empty) = self.open(b'[', b']', "expected an array")?;
        if empty {
            return Ok(start..self.at);
        }
        loop {
            item(self.value()?);
            if !self.separator(b']', "expected ',' or ']' in an array")? {
                return Ok(start..self.at);
            }
        }
    }

    /// Past the `open` byte that must come next, and past `close` too if the container is
    /// empty. Returns where the container starts, and whether it was empty.
    fn open(&mut self, open: u8, close: u8, what: &'static str) -> Scan<(usize, bool)> {
        self.ws();
        let start = self.at;
        if self.bytes().get(start) != Some(&open) {
            return self.fail(what);
        }
        self.at += 1;
        let empty = self.peek() == Some(close);
        if empty {
            self.at += 1;
        }
        Ok((start, empty))
    }

    /// After an element: true past a `,`, false past `close`.
    fn separator(&mut self, close: u8, what: &'static str) -> Scan<bool> {
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.at += 1;
                Ok(false)
            }
            _ => self.fail(what),
        }
    }

    /// A member's key and its colon; leaves the scanner before the value.
    fn key(&mut self) -> Scan<Key<'a>> {
        self.ws();
        let at = self.at;
        if self.bytes().get(at) != Some(&b'"') {
            return self.fail("expected a string key");
        }
        let escaped = self.string()?;
        let quoted = &self.text[at..self.at];
        if self.peek() != Some(b':') {
            return self.fail("expected ':' after a key");
        }
        self.at += 1;
        Ok(Key {
            quoted,
            escaped,
            at,
        })
    }

    /// Skip the string whose opening quote is here; true if it has escapes.
    fn string(&mut self) -> Scan<bool> {
        let b = self.bytes();
        self.at += 1;
        let mut escaped = false;
        loop {
            self.at = plain_run_end(b, self.at);
            match b.get(self.at) {
                None => return self.fail("unterminated string"),
                Some(c) if *c < 0x20 => return self.fail("control character in a string"),
                _ => {}
            }
            if b[self.at] == b'"' {
                self.at += 1;
                return Ok(escaped);
            }
            escaped = true;
            match b.get(self.at + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 2,
                Some(b'u') => {
                    let hex = b.get(self.at + 2..self.at + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return self.fail("invalid \\u escape");
                    }
                    self.at += 6;
                }
                _ => return self.fail("invalid escape"),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let b = self.bytes();
        let start = self.at;
        while self.at < b.len() && b[self.at].is_ascii_digit() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Scan<()> {
        let b = self.bytes();
        if b.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match b.get(self.at) {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail("invalid number"),
        }
        if b.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if matches!(b.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(b.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &'static [u8]) -> Scan<()> {
        if self.bytes()[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            self.fail("expected a value")
        }
    }

    /// Skip one value starting here, nested containers tracked on a bit stack (1: object).
    fn skip_value(&mut self) -> Scan<()> {
        let mut stack = BitStack::default();
        loop {
            // A value is expected here.
            self.ws();
            match self.bytes().get(self.at) {
                Some(b'{') => {
                    if !self.open(b'{', b'}', "expected an object")?.1 {
                        stack.push(true);
                        self.key()?;
                        continue;
                    }
                }
                Some(b'[') => {
                    if !self.open(b'[', b']', "expected an array")?.1 {
                        stack.push(false);
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal(b"true")?,
                Some(b'f') => self.literal(b"false")?,
                Some(b'n') => self.literal(b"null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                Some(_) => return self.fail("expected a value"),
                None => return self.fail("unexpected end of input"),
            }
            // A value ended: close what it ends, or go on to the next one.
            loop {
                let Some(object) = stack.top() else {
                    return Ok(());
                };
                match (object, self.peek()) {
                    (true, Some(b',')) => {
                        self.at += 1;
                        self.key()?;
                        break;
                    }
                    (false, Some(b',')) => {
                        self.at += 1;
                        break;
                    }
                    (true, Some(b'}')) | (false, Some(b']')) => {
                        self.at += 1;
                        stack.pop();
                    }
                    (true, _) => return self.fail("expected ',' or '}' in an object"),
                    (false, _) => return self.fail("expected ',' or ']' in an array"),
                }
            }
        }
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Where the run of plain string content starting at `at` ends: at the first closing quote,
/// backslash or control character, or the end of `b`. Eight bytes at a time: a byte is
/// flagged where its XOR with `"` or `\` is zero, or where it is below 0x20 (the lowest flag
/// is exact; those above it may be carries, and are not used).
fn plain_run_end(b: &[u8], mut at: usize) -> usize {
    while let Some(chunk) = b.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        let flags = (zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGHS;
        if flags != 0 {
            return at + (flags.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < b.len() && !STOPS[usize::from(b[at])] {
        at += 1;
    }
    at
}

/// Bytes that end a run of plain string content: the closing quote, an escape, and the
/// control characters a string may not hold.
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// Open containers, innermost last: 64 levels in a word, deeper ones on the heap.
#[derive(Default)]
struct BitStack {
    low: u64,
    high: Vec<u64>,
    depth: usize,
}

impl BitStack {
    fn push(&mut self, object: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if word > 0 && bit == 0 {
            self.high.push(0);
        }
        let w = if word == 0 {
            &mut self.low
        } else {
            &mut self.high[word - 1]
        };
        if object {
            *w |= 1 << bit;
        } else {
            *w &= !(1 << bit);
        }
        self.depth += 1;
    }

    fn top(&self) -> Option<bool> {
        let d = self.depth.checked_sub(1)?;
        let (word, bit) = (d / 64, d % 64);
        let w = if word == 0 {
            self.low
        } else {
            self.high[word - 1]
        };
        Some(w & (1 << bit) != 0)
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= 64 && self.depth % 64 == 0 {
            self.high.pop();
        }
    }
}

/// Whether `text` is one JSON value and nothing else.
pub fn is_json(text: &str) -> bool {
    let mut s = Scanner::new(text);
    s.value().is_ok() && s.finish().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_accepts(text: &str) -> bool {
        serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    }

    #[test]
    fn accepts_and_refuses_as_serde_json_does() {
        let cases = [
            "{}",
            "[]",
            "0",
            "-0",
            "1.5e+3",
            "1E5",
            "\"\"",
            "\"a\\u00e9\\n\"",
            "true",
            "null",
            " {\"a\" : [1, {\"b\":null}] } ",
            "[[[[]]]]",
            "{\"a\":1,\"a\":2}",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1e+",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{,}",
            "[,1]",
            "{\"a\"}",
            "{a:1}",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\tb\"",
            "\"unterminated",
            "[1 2]",
            "{} {}",
            "",
            " ",
            "[",
            "{\"a\":",
            "\"\\ud800\"",
            "1 ",
            "\u{feff}1",
            "[\"é\"]",
            "NaN",
            "[-]",
        ];
        for c in cases {
            assert_eq!(is_json(c), serde_accepts(c), "{c:?}");
        }
    }

    #[test]
    fn long_strings_are_checked_past_the_short_loop() {
        let long = "x".repeat(100);
        for c in [
            format!("\"{long}\""),
            format!("\"{long}\\n{long}\\u00e9\""),
            format!("\"{long}\u{1}\""),
            format!("\"{long}"),
            format!("\"{long}\\q\""),
            format!("[\"{}\",\"{long}\"]", "y".repeat(31)),
            format!("\"{}\"", "y".repeat(32)),
            format!("\"{}", "y".repeat(32)),
        ] {
            assert_eq!(is_json(&c), serde_accepts(&c), "{c:?}");
        }
    }

    #[test]
    fn depth_is_not_limited_and_the_stack_crosses_words() {
        for n in [63, 64, 65, 127, 128, 129, 1000] {
            let text = "[{\"a\":".repeat(n) + "1" + &"}]".repeat(n);
            assert!(is_json(&text), "{n}");
            let bad = "[{\"a\":".repeat(n) + "1" + &"]}".repeat(n);
            assert!(!is_json(&bad), "{n}");
        }
    }

    #[test]
    fn members_give_keys_where_they_sit_and_values_as_ranges() {
        let text = r#" {"id" :7, "k\u0065y":"v", "o":{"in":[1]}} "#;
        let mut seen = Vec::new();
        let mut s = Scanner::new(text);
        let whole = s
            .members(|k, s| {
                let v = s.value()?;
                seen.push((k.text().into_owned(), k.escaped, k.at, text[v].to_string()));
                Ok(())
            })
            .unwrap();
        s.finish().unwrap();
        assert_eq!(&text[whole], &text[1..text.len() - 1]);
        assert_eq!(seen[0], ("id".into(), false, 2, "7".into()));
        assert_eq!((seen[1].0.as_str(), seen[1].1), ("key", true));
        assert_eq!(seen[2].3, r#"{"in":[1]}"#);
    }

    #[test]
    fn a_member_reader_that_skips_a_value_still_advances() {
        let mut n = 0;
        let mut s = Scanner::new(r#"{"a":[1,2],"b":{}}"#);
        s.members(|_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 2);
    }
}
