//! Resource subscriptions carried to 2026-07-28 upstreams. That revision has no
//! `resources/subscribe`: a client names the URIs it wants to hear about in the filter of a
//! `subscriptions/listen` stream. The router keeps one such stream per 2026 server for the
//! URIs any of its clients (of either era) subscribed to there. When that set changes it opens
//! a stream with the new set, and cancels the old one only once the server has acknowledged
//! the new one, so no update falls between; a subscriber is answered after that
//! acknowledgement too, so what it is told is granted is already being listened for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::upstream::UpstreamHandle;

/// Each server's resource listen streams.
#[derive(Default, Clone)]
pub struct ResourceListens(Arc<Mutex<HashMap<usize, Generations>>>);

#[derive(Default)]
struct Generations {
    /// The newest stream's generation (its cancellation key, with the server).
    newest: u64,
    /// Older streams, open until a newer one is acknowledged.
    retiring: Vec<u64>,
    /// Who waits for a generation (or a newer one) to be acknowledged.
    waiting: Vec<(u64, oneshot::Sender<()>)>,
}

fn key(server: usize, generation: u64) -> Bytes {
    Bytes::from(format!("resources-{server}-{generation}"))
}

/// `{"notifications":{"resourceSubscriptions":[...]}}`
fn listen_params(uris: &[String]) -> Bytes {
    Bytes::from(format!(
        "{{\"notifications\":{{\"resourceSubscriptions\":{}}}}}",
        serde_json::to_string(uris).unwrap_or_else(|_| "[]".into())
    ))
}

impl ResourceListens {
    /// Listen on `handle` (server `server`) for the URIs `uris` gives, replacing the stream
    /// opened before; with none, just end the old ones. `uris` is read under this lock, so
    /// concurrent changes are applied in order and the last one wins. The receiver completes
    /// when the server has acknowledged the new stream, and fails if it ended first (or
    /// could not be sent); `None` when there is nothing to listen for.
    pub fn relisten(
        &self,
        handle: &UpstreamHandle,
        server: usize,
        uris: impl FnOnce() -> Vec<String>,
    ) -> Option<oneshot::Receiver<()>> {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let g = all.entry(server).or_default();
        if g.newest > 0 {
            g.retiring.push(g.newest);
        }
        g.newest += 1;
        let generation = g.newest;
        let uris = uris();
        if uris.is_empty() {
            for old in g.retiring.drain(..) {
                handle.cancel_internal(key(server, old));
            }
            return None;
        }
        let ended = match handle.start_internal(
            "subscriptions/listen",
            Some(listen_params(&uris)),
            key(server, generation),
        ) {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!(server = %handle.shared.name, "resource subscriptions not carried: {e}");
                return None;
            }
        };
        let (tx, rx) = oneshot::channel();
        g.waiting.push((generation, tx));
        let this = self.clone();
        let name = handle.shared.name.clone();
        tokio::spawn(async move {
            let end = ended.await;
            tracing::debug!(server = %name, generation, ?end, "upstream resource listen ended");
            this.ended(server, generation);
        });
        Some(rx)
    }

    /// The server acknowledged listen stream `acked` (a key made here): the streams it
    /// replaces can go, and whoever waited for it is answered.
    pub fn acknowledged(&self, handle: &UpstreamHandle, acked: &Bytes) {
        let server = handle.shared.server;
        let Some(generation) = std::str::from_utf8(acked)
            .ok()
            .and_then(|k| k.strip_prefix(&format!("resources-{server}-")))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            return;
        };
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(g) = all.get_mut(&server) else {
            return;
        };
        g.retiring.retain(|old| {
            let replaced = *old < generation;
            if replaced {
                handle.cancel_internal(key(server, *old));
            }
            !replaced
        });
        let (done, still): (Vec<_>, Vec<_>) = std::mem::take(&mut g.waiting)
            .into_iter()
            .partition(|(waits_for, _)| *waits_for <= generation);
        g.waiting = still;
        for (_, tx) in done {
            let _ = tx.send(());
        }
    }

    /// Stream `generation` of `server` ended (cancelled, refused, or its connection gone):
    /// whoever still waits for it is told it failed.
    fn ended(&self, server: usize, generation: u64) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = all.get_mut(&server) {
            g.waiting.retain(|(waits_for, _)| *waits_for != generation);
            g.retiring.retain(|old| *old != generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_name_the_uris() {
        let p = listen_params(&["a://1".into(), "b://\"2\"".into()]);
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(
            v["notifications"]["resourceSubscriptions"],
            serde_json::json!(["a://1", "b://\"2\""])
        );
    }
}
