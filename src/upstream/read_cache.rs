//! The shared cache of one 2026-07-28 upstream's `public` `resources/read` results.
//!
//! A result the server marks `cacheScope: "public"` with a `ttlMs` above 0 does not depend on
//! who asked, so the first read of a URI is kept for that long and every client's read of it
//! is answered from here, with `ttlMs` lowered to what is left. `private` results, results
//! without hints (handshake-era servers give none), `input_required` results and MRTR retries
//! are never kept. Bounded in entries, in bytes per result and in bytes in all. A URI's entry
//! goes when the server says that resource was updated; all go when it restarts or says its
//! resources changed.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::wire::envelope::span_of;

/// Most URIs kept per upstream; further results are not kept until some expire.
pub const MAX_ENTRIES: usize = 1024;
/// Largest result kept (bytes of the `result` object).
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Most bytes kept per upstream, all results together.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;

struct Entry {
    /// The `result` object as the server sent it.
    result: Bytes,
    /// Where its `ttlMs` value sits, to splice in what is left.
    ttl: Range<usize>,
    until: Instant,
}

/// Results of `resources/read` that a 2026-07-28 server marked public, by URI, until they expire.
#[derive(Default)]
pub struct ReadCache {
    // Read-mostly: every client's read takes the shared lock; only a miss that brings back a
    // public result takes the exclusive one.
    entries: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    by_uri: HashMap<Box<str>, Entry>,
    /// Bytes of every kept result.
    bytes: usize,
}

impl Entries {
    fn remove(&mut self, uri: &str) {
        if let Some(old) = self.by_uri.remove(uri) {
            self.bytes -= old.result.len();
        }
    }
}

impl ReadCache {
    /// The kept result for `uri`, its `ttlMs` what is left, if there is one and it is fresh.
    pub fn get(&self, uri: &str) -> Option<Bytes> {
        let g = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let e = g.by_uri.get(uri)?;
        let left = e.until.checked_duration_since(Instant::now())?.as_millis();
        if left == 0 {
            return None;
        }
        let left = left.to_string();
        let mut out = BytesMut::with_capacity(e.result.len() + 8);
        out.put_slice(&e.result[..e.ttl.start]);
        out.put_slice(left.as_bytes());
        out.put_slice(&e.result[e.ttl.end..]);
        Some(out.freeze())
    }

    /// Keep `result` (a `resources/read` result object) for `uri` if the server said anyone
    /// may have it, for as long as it said. Returns whether it was kept.
    pub fn store(&self, uri: &str, result: Bytes) -> bool {
        if result.len() > MAX_RESULT_BYTES {
            return false;
        }
        let Some((ttl, ttl_ms)) = public_ttl(&result) else {
            return false;
        };
        let now = Instant::now();
        let mut g = self.entries.write().unwrap_or_else(|e| e.into_inner());
        g.remove(uri);
        if g.by_uri.len() >= MAX_ENTRIES || g.bytes + result.len() > MAX_TOTAL_BYTES {
            let mut freed = 0;
            g.by_uri.retain(|_, e| {
                let keep = e.until > now;
                if !keep {
                    freed += e.result.len();
                }
                keep
            });
            g.bytes -= freed;
            if g.by_uri.len() >= MAX_ENTRIES || g.bytes + result.len() > MAX_TOTAL_BYTES {
                return false;
            }
        }
        g.bytes += result.len();
        g.by_uri.insert(
            uri.into(),
            Entry {
                result,
                ttl,
                until: now + Duration::from_millis(ttl_ms),
            },
        );
        true
    }

    /// Drop what is kept for `uri` (the server said it was updated).
    pub fn forget(&self, uri: &str) {
        self.entries
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uri);
    }

    /// Forgets every entry (the server restarted or said its resources changed).
    pub fn clear(&self) {
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Entries::default();
    }
}

/// The `ttlMs` of a complete, `public` result with a ttl above 0: where it sits and its value.
fn public_ttl(result: &[u8]) -> Option<(Range<usize>, u64)> {
    #[derive(Deserialize)]
    struct Hints<'a> {
        #[serde(borrow, default, rename = "resultType")]
        result_type: Option<&'a RawValue>,
        #[serde(borrow, default, rename = "cacheScope")]
        scope: Option<&'a RawValue>,
        #[serde(borrow, default, rename = "ttlMs")]
        ttl: Option<&'a RawValue>,
    }
    let text = std::str::from_utf8(result).ok()?;
    let h: Hints<'_> = serde_json::from_str(text).ok()?;
    if h.result_type.is_some_and(|t| t.get() != "\"complete\"") || h.scope?.get() != "\"public\"" {
        return None;
    }
    let ttl = h.ttl?;
    let ms = ttl.get().parse::<u64>().ok().filter(|ms| *ms > 0)?;
    Some((span_of(result, ttl.get()), ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(scope: &str, ttl: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"contents":[{{"uri":"a://x","text":"hi"}}],"resultType":"complete","ttlMs":{ttl},"cacheScope":"{scope}"}}"#
        ))
    }

    #[test]
    fn public_results_are_kept_with_the_ttl_left() {
        let c = ReadCache::default();
        assert!(c.store("a://x", result("public", "60000")));
        let got: serde_json::Value = serde_json::from_slice(&c.get("a://x").unwrap()).unwrap();
        let left = got["ttlMs"].as_u64().unwrap();
        assert!(left > 0 && left <= 60000, "{left}");
        assert_eq!(got["contents"][0]["text"], "hi");
        assert_eq!(got["cacheScope"], "public");
        assert!(c.get("a://other").is_none());
        c.forget("a://x");
        assert!(c.get("a://x").is_none());
    }

    #[test]
    fn private_unhinted_zero_ttl_and_unfinished_results_are_not_kept() {
        let c = ReadCache::default();
        assert!(!c.store("a://x", result("private", "60000")));
        assert!(!c.store("a://x", result("public", "0")));
        assert!(!c.store("a://x", Bytes::from_static(br#"{"contents":[]}"#)));
        assert!(!c.store(
            "a://x",
            Bytes::from_static(
                br#"{"resultType":"input_required","ttlMs":5000,"cacheScope":"public"}"#
            )
        ));
        assert!(!c.store("a://x", Bytes::from_static(b"not json")));
        assert!(c.get("a://x").is_none());
    }

    #[test]
    fn expired_entries_are_not_served_and_make_room() {
        let c = ReadCache::default();
        assert!(c.store("a://x", result("public", "1")));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get("a://x").is_none());
        for i in 0..MAX_ENTRIES {
            c.store(&format!("a://{i}"), result("public", "1"));
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.store("a://fresh", result("public", "60000")));
        assert!(c.get("a://fresh").is_some());
    }

    #[test]
    fn the_byte_budget_holds() {
        let c = ReadCache::default();
        let big = |text: &str| {
            Bytes::from(format!(
                r#"{{"contents":[{{"text":"{text}"}}],"ttlMs":60000,"cacheScope":"public"}}"#
            ))
        };
        let text = "x".repeat(MAX_RESULT_BYTES - 100);
        let fits = MAX_TOTAL_BYTES / MAX_RESULT_BYTES;
        for i in 0..fits {
            assert!(c.store(&format!("a://{i}"), big(&text)), "{i}");
        }
        assert!(!c.store("a://over", big(&text)), "over the byte budget");
        // Replacing an entry frees its bytes first.
        assert!(c.store("a://0", big(&text)));
        assert!(!c.store("a://over", big(&text)));
    }

    #[test]
    fn a_full_cache_keeps_what_it_has() {
        let c = ReadCache::default();
        for i in 0..MAX_ENTRIES {
            assert!(c.store(&format!("a://{i}"), result("public", "60000")));
        }
        assert!(!c.store("a://one-more", result("public", "60000")));
        assert!(c.get("a://0").is_some());
        c.clear();
        assert!(c.get("a://0").is_none());
    }
}
