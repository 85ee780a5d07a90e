//! Newline framing (stdio, and the custom byte-stream transports that reuse it).

use bytes::{Bytes, BytesMut};

/// One item out of a [`LineDecoder`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete frame, without its trailing `\n` (and `\r`, if any).
    Frame(Bytes),
    /// A line longer than the limit was skipped; `len` bytes were dropped (a "\r" before the
    /// newline included).
    Oversized {
        /// Bytes dropped.
        len: usize,
    },
}

/// Splits a byte stream into newline-terminated frames, with a maximum frame size.
///
/// An oversized line is reported once and its bytes discarded as they arrive, so a
/// hostile peer cannot make us buffer more than `max` bytes. Any `max` is valid, `usize::MAX`
/// (no limit) included: the arithmetic on it saturates.
pub struct LineDecoder {
    buf: BytesMut,
    max: usize,
    /// Bytes of an oversized line dropped so far; `Some` while skipping to its end.
    skipping: Option<usize>,
    /// Where to resume the newline search in `buf`.
    scanned: usize,
}

impl LineDecoder {
    /// A decoder that refuses frames over `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: BytesMut::with_capacity(8 * 1024),
            max,
            skipping: None,
            scanned: 0,
        }
    }

    /// The buffer to read more bytes into (reserve first, then extend).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Next complete item, or `None` when more bytes are needed.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                Some(pos) => {
                    let end = self.scanned + pos;
                    let mut line = self.buf.split_to(end + 1);
                    self.scanned = 0;
                    line.truncate(end);
                    // An oversized line reports every byte dropped, "\r" included, so the
                    // figure is the same however the line arrived.
                    let raw_len = line.len();
                    if let Some(dropped) = self.skipping.take() {
                        return Some(Line::Oversized {
                            len: dropped + raw_len,
                        });
                    }
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    if line.len() > self.max {
                        return Some(Line::Oversized { len: raw_len });
                    }
                    if line.iter().all(|b| b.is_ascii_whitespace()) {
                        continue; // blank lines carry no message
                    }
                    return Some(Line::Frame(line.freeze()));
                }
                None => {
                    // `max + 1`: a line of exactly `max` bytes may still end in "\r\n".
                    // Saturating: with `usize::MAX` (no limit) a plain `+ 1` wrapped to 0 and
                    // every partial read was thrown away as oversized.
                    if self.buf.len() > self.max.saturating_add(1) {
                        let dropped = self.buf.len();
                        self.buf.clear();
                        self.scanned = 0;
                        *self.skipping.get_or_insert(0) += dropped;
                    } else {
                        self.scanned = self.buf.len();
                    }
                    return None;
                }
            }
        }
    }

    /// Whatever is left when the stream ends (a last line without `\n`).
    pub fn finish(&mut self) -> Option<Line> {
        if self.skipping.is_some() {
            let dropped = self.skipping.take().unwrap_or(0) + self.buf.len();
            self.buf.clear();
            return Some(Line::Oversized { len: dropped });
        }
        if self.buf.iter().all(|b| b.is_ascii_whitespace()) {
            self.buf.clear();
            return None;
        }
        let line = self.buf.split().freeze();
        self.scanned = 0;
        if line.len() > self.max {
            return Some(Line::Oversized { len: line.len() });
        }
        Some(Line::Frame(line))
    }
}

/// A frame fit for newline framing. Valid JSON can hold a raw CR or LF only as whitespace
/// between tokens (inside strings they are escaped), so each becomes a space; a frame without
/// any (the usual case) is returned as is, without a copy.
pub fn one_line(frame: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if memchr::memchr2(b'\n', b'\r', frame).is_none() {
        return std::borrow::Cow::Borrowed(frame);
    }
    let mut out = frame.to_vec();
    for b in out.iter_mut() {
        if *b == b'\n' || *b == b'\r' {
            *b = b' ';
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_json_becomes_one_line() {
        let f = b"{\"a\":\r\n  \"x\\ny\"\n}";
        let one = one_line(f);
        assert_eq!(&one[..], b"{\"a\":    \"x\\ny\" }");
        let v: serde_json::Value = serde_json::from_slice(&one).unwrap();
        assert_eq!(v["a"], "x\ny");
        assert!(matches!(one_line(b"{}"), std::borrow::Cow::Borrowed(_)));
    }

    fn feed(d: &mut LineDecoder, s: &[u8]) -> Vec<Line> {
        d.buffer().extend_from_slice(s);
        std::iter::from_fn(|| d.next_line()).collect()
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut d = LineDecoder::new(100);
        assert_eq!(
            feed(&mut d, b"{\"a\":1}\n{\"b\""),
            vec![Line::Frame(Bytes::from_static(b"{\"a\":1}"))]
        );
        assert_eq!(
            feed(&mut d, b":2}\r\n\n"),
            vec![Line::Frame(Bytes::from_static(b"{\"b\":2}"))]
        );
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn oversized_line_is_reported_once_and_skipped() {
        let mut d = LineDecoder::new(8);
        assert!(feed(&mut d, b"0123456789").is_empty());
        assert!(feed(&mut d, b"abcdef").is_empty());
        assert_eq!(
            feed(&mut d, b"gh\n{}\n"),
            vec![
                Line::Oversized { len: 18 },
                Line::Frame(Bytes::from_static(b"{}"))
            ]
        );
    }

    #[test]
    fn a_full_line_with_cr_is_a_frame_however_it_arrives() {
        // Found by the fuzzer: a line of exactly the limit plus "\r" was refused when it came
        // in pieces and accepted when whole.
        let line = [b"12345678".as_slice(), b"\r\n"].concat();
        let mut whole = LineDecoder::new(8);
        assert_eq!(
            feed(&mut whole, &line),
            vec![Line::Frame(Bytes::from_static(b"12345678"))]
        );
        let mut pieces = LineDecoder::new(8);
        assert!(feed(&mut pieces, &line[..9]).is_empty());
        assert_eq!(
            feed(&mut pieces, &line[9..]),
            vec![Line::Frame(Bytes::from_static(b"12345678"))]
        );
    }

    #[test]
    fn no_limit_keeps_partial_reads() {
        // The load generator's `usize::MAX` used to wrap `max + 1` to 0: every partial read
        // was dropped as oversized and no reply ever arrived.
        let mut d = LineDecoder::new(usize::MAX);
        assert!(feed(&mut d, b"{\"a\":").is_empty());
        assert_eq!(
            feed(&mut d, b"1}\n"),
            vec![Line::Frame(Bytes::from_static(b"{\"a\":1}"))]
        );
    }

    #[test]
    fn last_line_without_newline_is_kept() {
        let mut d = LineDecoder::new(100);
        assert!(feed(&mut d, b"{}").is_empty());
        assert_eq!(d.finish(), Some(Line::Frame(Bytes::from_static(b"{}"))));
    }
}
