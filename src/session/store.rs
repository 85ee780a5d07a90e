//! The store of live sessions, and the ids they are known by.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::FxBuildHasher;

use super::{Link, Session};

/// Session ids are 128 random bits of the router's making, so no client chooses the keys
/// (what defeats a fast hash); a client's unknown id only misses.
type Sessions<U> = HashMap<String, Arc<Session<U>>, FxBuildHasher>;

/// All live sessions, sharded by id so lookups from many connections do not contend.
pub struct SessionStore<U: Link> {
    shards: Vec<Mutex<Sessions<U>>>,
    count: AtomicUsize,
    max: usize,
}

impl<U: Link> SessionStore<U> {
    /// An empty store holding at most `max` sessions.
    pub fn new(max: usize) -> Self {
        SessionStore {
            shards: (0..32).map(|_| Mutex::new(HashMap::default())).collect(),
            count: AtomicUsize::new(0),
            max,
        }
    }

    fn shard(&self, id: &str) -> MutexGuard<'_, Sessions<U>> {
        // The hash's high bits pick the shard; the map inside uses its low ones.
        let i = ((FxBuildHasher.hash_one(id) >> 48) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a session; `false` when the store is full.
    pub fn insert(&self, s: Arc<Session<U>>) -> bool {
        if self.count.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.shard(&s.id).insert(s.id.to_string(), s);
        true
    }

    /// The session named `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Session<U>>> {
        self.shard(id).get(id).cloned()
    }

    /// Removes the session named `id` and returns it.
    pub fn remove(&self, id: &str) -> Option<Arc<Session<U>>> {
        let s = self.shard(id).remove(id);
        if s.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        s
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every live session (for rare broadcasts such as list_changed).
    pub fn all(&self) -> Vec<Arc<Session<U>>> {
        self.shards
            .iter()
            .flat_map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A 128-bit random session id, hex-encoded (visible ASCII, as the spec requires); `None`
/// if the operating system has no randomness to give.
pub fn new_session_id() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    Some(crate::wire::hex::encode(&b))
}
