//! The wire decoders at every limit, `usize::MAX` ("no limit") included: a limit is a
//! number like any other, never arithmetic that can wrap. Each property checks the decoder
//! against a plain model of what the limit means, fed whole and cut at random points.

use bytes::Bytes;
use proptest::prelude::*;
use switchyard::fuzz_checks;
use switchyard::wire::frame::Line;

/// Limits from the whole range, weighted to the edges where off-by-one and overflow live.
fn limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..80,
        (usize::MAX - 80)..=usize::MAX,
        Just(usize::MAX),
        any::<usize>(),
    ]
}

/// Cut a stream into pieces of the given sizes (cycled), as reads would.
fn pieces<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = (at + c).min(stream.len());
        out.push(&stream[at..end]);
        at = end;
    }
    out
}

fn decode_lines(max: usize, chunks: &[&[u8]]) -> Vec<Line> {
    fuzz_checks::decode_lines_within(max, chunks.iter().copied())
}

fn decode_events(max: usize, chunks: &[&[u8]]) -> Vec<Result<Bytes, ()>> {
    fuzz_checks::decode_events(max, chunks.iter().copied())
}

proptest! {
    /// Newline framing: a line (without its "\r\n") longer than the limit is one `Oversized`
    /// counting every byte dropped, any other non-blank line is a frame, however cut.
    #[test]
    fn line_limits_hold_across_the_range(
        max in limit(),
        lines in prop::collection::vec(("[ -~]{0,40}", any::<bool>()), 0..10),
        cuts in prop::collection::vec(1usize..23, 1..30),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (text, crlf) in &lines {
            stream.extend_from_slice(text.as_bytes());
            if *crlf {
                stream.push(b'\r');
            }
            stream.push(b'\n');
            if text.len() > max {
                expected.push(Line::Oversized { len: text.len() + usize::from(*crlf) });
            } else if !text.trim().is_empty() {
                expected.push(Line::Frame(Bytes::copy_from_slice(text.as_bytes())));
            }
        }
        prop_assert_eq!(&decode_lines(max, &[&stream]), &expected);
        prop_assert_eq!(&decode_lines(max, &pieces(&stream, &cuts)), &expected);
    }

    /// A last line without a newline is a frame when it fits, whatever the limit.
    #[test]
    fn an_unterminated_last_line_at_any_limit(max in limit(), text in "[!-~]{1,40}", cut in 1usize..41) {
        let expected = if text.len() > max {
            Line::Oversized { len: text.len() }
        } else {
            Line::Frame(Bytes::copy_from_slice(text.as_bytes()))
        };
        let got = decode_lines(max, &pieces(text.as_bytes(), &[cut]));
        prop_assert_eq!(got, vec![expected]);
    }

    /// SSE, fed whole: an event whose data (lines joined by "\n", plus one byte per line)
    /// exceeds the limit is one error; every other event arrives whole.
    #[test]
    fn sse_limits_hold_across_the_range(
        max in limit(),
        events in prop::collection::vec(prop::collection::vec("[ -~]{1,30}", 1..4), 0..6),
        cuts in prop::collection::vec(1usize..23, 1..30),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for lines in &events {
            for l in lines {
                stream.extend_from_slice(b"data: ");
                stream.extend_from_slice(l.as_bytes());
                stream.push(b'\n');
            }
            stream.push(b'\n');
            let size: usize = lines.iter().map(|l| l.len() + 1).sum();
            expected.push(if size > max { Err(()) } else { Ok(Bytes::from(lines.join("\n"))) });
        }
        prop_assert_eq!(&decode_events(max, &[&stream]), &expected);
        // Cut into reads, the same wherever the limit is out of the stream's reach.
        if max >= stream.len().saturating_add(8) {
            prop_assert_eq!(&decode_events(max, &pieces(&stream, &cuts)), &expected);
        }
    }

    /// SSE cut anywhere at any limit: never an event over the limit, and never a panic.
    #[test]
    fn sse_events_never_exceed_the_limit(max in limit(), bytes in prop::collection::vec(any::<u8>(), 0..400), cut in 1usize..23) {
        for ev in decode_events(max, &pieces(&bytes, &[cut])).into_iter().flatten() {
            prop_assert!(ev.len() <= max);
        }
    }
}
