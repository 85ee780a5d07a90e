//! Multi round-trip requests across eras, the other way (`2026-07-28/basic/patterns/mrtr`):
//! a 2026-07-28 client calling a handshake-era upstream that asks something mid-call
//! (elicitation, sampling, roots). The client takes no requests, so the upstream's call is
//! parked, still open, and the client gets an `input_required` result whose `requestState` is
//! Switchyard's own: a handle to the parked call, HMAC-signed with a key made at start-up. The
//! retry carries the client's answer; it goes to the upstream under its request id, and the
//! call's replies go to the retry from then on.
//!
//! A parked call keeps its upstream deadline (the server's request timeout): if no retry comes
//! in time, the upstream call times out and a late retry is told the call is gone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::upstream::UpstreamHandle;
use crate::wire::hex;

/// Prefix of Switchyard's own `requestState` (anything else belongs to an upstream).
pub const STATE_PREFIX: &str = "switchyard-mrtr-1.";
/// The key under which the client's answer is expected in `inputResponses`.
pub const INPUT_KEY: &str = "switchyard";
/// Parked calls at most; beyond that a server's request is refused.
const MAX_PARKED: usize = 10_000;

/// One parked upstream call (`H`: the connection it waits on).
pub struct Parked<H = UpstreamHandle> {
    pub handle: H,
    /// Our id for the call on that upstream.
    pub uid: u64,
    /// The upstream's id for its request to the client (raw JSON).
    pub request_id: Bytes,
    /// When the call's own request timeout ends it.
    until: Instant,
}

pub struct ParkedCalls<H = UpstreamHandle> {
    key: [u8; 32],
    limit: usize,
    calls: Mutex<HashMap<String, Parked<H>>>,
}

/// What a retry's `requestState` says.
pub enum State<H = UpstreamHandle> {
    /// Not ours: the upstream's own, passed through untouched.
    NotOurs,
    /// Ours, and the parked call.
    Parked(Parked<H>),
    /// Ours in form, but forged, altered, or for a call no longer parked.
    Invalid(&'static str),
}

impl<H> ParkedCalls<H> {
    pub fn new() -> ParkedCalls<H> {
        ParkedCalls::with_limit(MAX_PARKED)
    }

    fn with_limit(limit: usize) -> ParkedCalls<H> {
        let mut key = [0u8; 32];
        // Without randomness every state is refused (the all-zero key is never used to sign).
        let ok = getrandom::fill(&mut key).is_ok();
        ParkedCalls {
            key: if ok { key } else { [0; 32] },
            limit,
            calls: Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, handle: &str) -> Option<Hmac<Sha256>> {
        if self.key == [0; 32] {
            return None;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).ok()?;
        mac.update(handle.as_bytes());
        Some(mac)
    }

    /// Park call `uid` on `handle`, which waits for the answer to upstream request
    /// `request_id`, for `lifetime`; the signed `requestState` that names it.
    pub fn park(
        &self,
        handle: H,
        uid: u64,
        request_id: Bytes,
        lifetime: Duration,
    ) -> Option<String> {
        let name = crate::session::new_session_id()?;
        let tag = hex::encode(&self.mac(&name)?.finalize().into_bytes());
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        calls.retain(|_, p| p.until > now);
        if calls.len() >= self.limit {
            return None;
        }
        calls.insert(
            name.clone(),
            Parked {
                handle,
                uid,
                request_id,
                until: now + lifetime,
            },
        );
        Some(format!("{STATE_PREFIX}{name}.{tag}"))
    }

    /// Check a retry's `requestState` (the JSON string's contents) and take its parked call.
    pub fn take(&self, state: &str) -> State<H> {
        let Some(rest) = state.strip_prefix(STATE_PREFIX) else {
            return State::NotOurs;
        };
        let Some((handle, tag)) = rest.split_once('.') else {
            return State::Invalid("requestState failed its integrity check");
        };
        let verified = match (self.mac(handle), hex::decode(tag)) {
            (Some(mac), Some(tag)) => mac.verify_slice(&tag).is_ok(),
            _ => false,
        };
        if !verified {
            return State::Invalid("requestState failed its integrity check");
        }
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match calls.remove(handle) {
            Some(p) if p.until > Instant::now() => State::Parked(p),
            _ => State::Invalid("the parked call is gone (it timed out, or was answered)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_calls_are_limited_and_taken_once() {
        let calls = ParkedCalls::<()>::with_limit(2);
        let long = Duration::from_secs(60);
        let a = calls.park((), 1, Bytes::from_static(b"1"), long).unwrap();
        let _b = calls.park((), 2, Bytes::from_static(b"2"), long).unwrap();
        assert!(calls.park((), 3, Bytes::from_static(b"3"), long).is_none());
        assert!(matches!(calls.take(&a), State::Parked(p) if p.uid == 1));
        assert!(matches!(calls.take(&a), State::Invalid(_)));
        // Taking one made room; an expired one makes room too.
        let c = calls
            .park((), 4, Bytes::from_static(b"4"), Duration::ZERO)
            .unwrap();
        assert!(calls.park((), 5, Bytes::from_static(b"5"), long).is_some());
        assert!(matches!(calls.take(&c), State::Invalid(_)));
    }

    #[test]
    fn states_verify_and_resist_tampering() {
        let calls = ParkedCalls::<()>::new();
        assert!(matches!(calls.take("some-upstream-state"), State::NotOurs));
        assert!(matches!(
            calls.take(&format!("{STATE_PREFIX}00.11")),
            State::Invalid(_)
        ));
        // A state signed with another key is refused.
        let other = ParkedCalls::<()>::new();
        let handle = "0123456789abcdef0123456789abcdef";
        let tag = hex::encode(&other.mac(handle).unwrap().finalize().into_bytes());
        assert!(matches!(
            calls.take(&format!("{STATE_PREFIX}{handle}.{tag}")),
            State::Invalid(_)
        ));
    }
}
