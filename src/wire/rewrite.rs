//! Rewriting a frame by splicing: replace a few byte ranges (an id, a name, a progress
//! token) and copy every other byte unchanged.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// One replacement: the bytes in `range` of the frame become `with`.
pub struct Edit<'a> {
    /// Bytes of the frame to replace.
    pub range: Range<usize>,
    /// What goes in their place.
    pub with: &'a [u8],
}

/// Apply non-overlapping edits (any order) to `frame`.
pub fn splice(frame: &[u8], edits: &mut [Edit<'_>]) -> Bytes {
    edits.sort_unstable_by_key(|e| e.range.start);
    let grow: usize = edits.iter().map(|e| e.with.len()).sum();
    let mut out = BytesMut::with_capacity(frame.len() + grow);
    let mut at = 0;
    for e in edits.iter() {
        debug_assert!(e.range.start >= at, "overlapping edits");
        out.put_slice(&frame[at..e.range.start]);
        out.put_slice(e.with);
        at = e.range.end;
    }
    out.put_slice(&frame[at..]);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_apply_in_any_order() {
        let f = b"{\"id\":1,\"p\":{\"name\":\"a__b\"}}";
        let out = splice(
            f,
            &mut [
                Edit {
                    range: 20..26,
                    with: b"\"b\"",
                },
                Edit {
                    range: 6..7,
                    with: b"\"x\"",
                },
            ],
        );
        assert_eq!(&out[..], b"{\"id\":\"x\",\"p\":{\"name\":\"b\"}}");
    }
}
