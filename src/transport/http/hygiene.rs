//! Connection hygiene on the HTTP listener: caps on open connections (in all and per client
//! address), a deadline for each request head, and an idle keep-alive timeout.
//!
//! Caps are counted once per connection (never per message). The two timeouts share one
//! watchdog per connection, in the connection's own task, that looks at its phase at least
//! every `min(header_read_timeout, idle_timeout)`; a request only flips two atomics and reads
//! the clock when it ends, so nothing is woken per message.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Limits;

/// Which cap a refused connection met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `max_connections`.
    Total,
    /// `max_connections_per_address`.
    PerAddress,
}

impl Refused {
    fn setting(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerAddress => "max_connections_per_address",
        }
    }
}

/// Sent to a refused connection before it is closed.
pub const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-type: text/plain\r\ncontent-length: 28\r\n\r\ntoo many connections, sorry\n";

/// Address counts in shards, so that accepts from many addresses do not meet on one lock.
const ADDRESS_SHARDS: usize = 16;

/// Open connections, in all and per client address.
pub struct ConnectionCaps {
    max_total: usize,
    max_per_address: usize,
    open: AtomicUsize,
    /// Open connections on each worker shard (one slot when there are none).
    on_shard: Vec<AtomicUsize>,
    by_address: [Mutex<HashMap<IpAddr, usize>>; ADDRESS_SHARDS],
    /// Refusals are logged at most once a second, with how many went unlogged.
    last_log_s: AtomicU64,
    unlogged: AtomicU64,
    epoch: Instant,
}

impl ConnectionCaps {
    /// Caps from the configuration, for connections on `shards` worker shards.
    pub fn new(limits: &Limits, shards: usize) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            max_total: limits.max_connections,
            max_per_address: limits.max_connections_per_address,
            open: AtomicUsize::new(0),
            on_shard: (0..shards.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            by_address: Default::default(),
            last_log_s: AtomicU64::new(u64::MAX),
            unlogged: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections open now on each worker shard.
    pub fn open_by_shard(&self) -> Vec<usize> {
        self.on_shard
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    fn address_bucket(&self, peer: &IpAddr) -> &Mutex<HashMap<IpAddr, usize>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(peer);
        &self.by_address[(h as usize) % ADDRESS_SHARDS]
    }

    /// Count a new connection from `peer`, or say which cap it meets (and log that).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Admitted, Refused> {
        let refused = if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_total {
            Some(Refused::Total)
        } else {
            let mut counts = self
                .address_bucket(&peer)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // A new entry is never refused (the cap is at least 1), so none is left at 0.
            let n = counts.entry(peer).or_insert(0);
            if *n >= self.max_per_address {
                Some(Refused::PerAddress)
            } else {
                *n += 1;
                None
            }
        };
        match refused {
            None => {
                let shard = crate::shard::current()
                    .unwrap_or(0)
                    .min(self.on_shard.len() - 1);
                self.on_shard[shard].fetch_add(1, Ordering::Relaxed);
                Ok(Admitted {
                    caps: self.clone(),
                    peer,
                    shard,
                })
            }
            Some(why) => {
                self.open.fetch_sub(1, Ordering::AcqRel);
                if let Some(unlogged) = self.log_now(self.epoch.elapsed().as_secs()) {
                    tracing::warn!(
                        %peer,
                        limit = why.setting(),
                        open = self.open(),
                        refused_unlogged_since_last = unlogged,
                        "connection refused"
                    );
                }
                Err(why)
            }
        }
    }

    fn release(&self, peer: IpAddr, shard: usize) {
        {
            let mut counts = self
                .address_bucket(&peer)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&peer) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&peer);
                }
            }
        }
        self.on_shard[shard].fetch_sub(1, Ordering::Relaxed);
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// A flood of refusals must not become a flood of log lines: the first refusal in each
    /// second (`now_s`) is logged, with how many went unlogged since the last one (`Some`);
    /// the others are only counted (`None`).
    fn log_now(&self, now_s: u64) -> Option<u64> {
        let last = self.last_log_s.load(Ordering::Relaxed);
        if last == now_s
            || self
                .last_log_s
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }
}

/// A counted connection; dropping it gives its place back.
pub struct Admitted {
    caps: Arc<ConnectionCaps>,
    peer: IpAddr,
    /// The worker shard it was counted on.
    shard: usize,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.caps.release(self.peer, self.shard);
    }
}

/// Set in [`Clock::mark`] while a request head is being read (or awaited, on a new
/// connection); clear while the connection is idle between requests.
const HEAD: u64 = 1 << 63;
const MS: u64 = HEAD - 1;

/// What a connection is doing, for its watchdog: answering requests, reading a head, or idle
/// since a moment.
pub struct Clock {
    epoch: Instant,
    /// Requests whose responses are not finished.
    busy: AtomicU32,
    /// Milliseconds since `epoch` when the head or the idle time began, with [`HEAD`].
    mark: AtomicU64,
}

impl Clock {
    /// A new connection: its first head is awaited from now.
    pub fn new() -> Arc<Clock> {
        Arc::new(Clock {
            epoch: Instant::now(),
            busy: AtomicU32::new(0),
            mark: AtomicU64::new(HEAD),
        })
    }

    fn now_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64).min(MS)
    }

    /// Bytes arrived: an idle connection starts reading a head. (Bytes that arrive while a
    /// request is answered may be its body or the next head: they start nothing, so a head
    /// begun then is timed as idleness once the answer is done.)
    pub(super) fn on_read(&self) {
        let mark = self.mark.load(Ordering::Relaxed);
        if mark & HEAD != 0 || self.busy.load(Ordering::Acquire) > 0 {
            return;
        }
        let _ = self.mark.compare_exchange(
            mark,
            HEAD | self.now_ms(),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
    }

    /// A request head was read: its response is being made.
    pub fn request_started(self: &Arc<Self>) -> Answering {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Answering(self.clone())
    }

    fn request_finished(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.mark.store(self.now_ms(), Ordering::Release);
        }
    }

    /// Until the connection must close, or `None` if it is past that now. While answering,
    /// nothing is owed before the answer is done: `idle` is only when to look again.
    fn remaining(&self, header: Duration, idle: Duration) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return Some(idle);
        }
        let mark = self.mark.load(Ordering::Acquire);
        let limit = if mark & HEAD != 0 { header } else { idle };
        let since = Duration::from_millis(mark & MS);
        (since + limit).checked_sub(self.epoch.elapsed())
    }

    /// Resolves when the connection has been idle, or on a head, too long. It looks at least
    /// every `min(header, idle)`: a deadline set by a change of phase is never nearer than
    /// that to the change, so each is kept to the millisecond without waking it per request.
    pub async fn overdue(&self, header: Duration, idle: Duration) -> &'static str {
        let every = header.min(idle);
        loop {
            match self.remaining(header, idle) {
                Some(left) if !left.is_zero() => tokio::time::sleep(left.min(every)).await,
                _ => {
                    return if self.mark.load(Ordering::Acquire) & HEAD != 0 {
                        "request head not complete within header_read_timeout_ms"
                    } else {
                        "idle longer than idle_timeout_ms"
                    }
                }
            }
        }
    }
}

/// A request being answered; dropped when its response body is (sent, or abandoned).
pub struct Answering(Arc<Clock>);

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> Limits {
        let mut l = crate::config::Config::parse("", "test")
            .map(|c| c.limits)
            .unwrap_or_else(|e| panic!("{e}"));
        l.max_connections = total;
        l.max_connections_per_address = per_address;
        l
    }

    #[test]
    fn caps_count_in_all_and_per_address_and_give_places_back() {
        let caps = ConnectionCaps::new(&limits(3, 2), 1);
        let a: IpAddr = "127.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        let b: IpAddr = "127.0.0.2".parse().unwrap_or_else(|e| panic!("{e}"));
        let a1 = caps.admit(a).ok();
        let a2 = caps.admit(a).ok();
        assert!(a1.is_some() && a2.is_some());
        assert_eq!(caps.admit(a).err(), Some(Refused::PerAddress));
        let b1 = caps.admit(b).ok();
        assert!(b1.is_some());
        assert_eq!(caps.admit(b).err(), Some(Refused::Total));
        assert_eq!(caps.open(), 3);
        drop(a1);
        assert_eq!(caps.open(), 2);
        let a3 = caps.admit(a).ok();
        assert!(a3.is_some(), "a place given back is taken again");
        assert_eq!(caps.open_by_shard(), vec![3]);
        drop((a2, a3, b1));
        assert_eq!(caps.open(), 0);
        assert_eq!(caps.open_by_shard(), vec![0]);
        assert!(caps
            .by_address
            .iter()
            .all(|s| s.lock().unwrap_or_else(|e| e.into_inner()).is_empty()));
    }

    #[test]
    fn refusals_are_logged_once_a_second_with_a_count_of_the_rest() {
        let caps = ConnectionCaps::new(&limits(1, 1), 1);
        assert_eq!(caps.log_now(5), Some(0), "the first is logged");
        assert_eq!(
            (caps.log_now(5), caps.log_now(5), caps.log_now(5)),
            (None, None, None)
        );
        assert_eq!(
            caps.log_now(6),
            Some(3),
            "the next second, with the three unlogged"
        );
        assert_eq!(caps.log_now(6), None);
        assert_eq!(caps.log_now(9), Some(1));
    }

    #[test]
    fn a_head_is_timed_from_its_first_byte_and_idleness_from_the_last_answer() {
        let header = Duration::from_secs(10);
        let idle = Duration::from_secs(60);
        let clock = Clock::new();
        // A new connection owes its first head.
        assert!(clock.remaining(header, idle).is_some_and(|d| d <= header));
        let answering = clock.request_started();
        assert_eq!(clock.remaining(header, idle), Some(idle));
        drop(answering);
        // Idle: the longer timeout.
        assert!(clock
            .remaining(header, idle)
            .is_some_and(|d| d > header && d <= idle));
        // The next head's first byte: the head timeout again.
        clock.on_read();
        assert!(clock.remaining(header, idle).is_some_and(|d| d <= header));
        // Bytes that arrive while answering (a body, or the next head) start nothing.
        let answering = clock.request_started();
        clock.on_read();
        assert_eq!(clock.remaining(header, idle), Some(idle));
        drop(answering);
        assert!(clock
            .remaining(header, idle)
            .is_some_and(|d| d > header && d <= idle));
        // Past the deadline: none left.
        assert_eq!(clock.remaining(Duration::ZERO, Duration::ZERO), None);
    }
}
