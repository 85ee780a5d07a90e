//! The 2026-07-28 requests in flight on a connection that carries one client (stdio): the
//! task carrying each one's replies to the client, by request id, so that
//! `notifications/cancelled` (or the end of input) can stop it. A stopped task drops its
//! [`CancelOnDrop`](super::CancelOnDrop), which cancels the request through the router.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::ModernReply;
use crate::wire::{Envelope, Kind, Method};

/// See the module documentation.
#[derive(Default)]
pub struct ModernCalls(HashMap<Bytes, (tokio::task::JoinHandle<()>, bool)>);

impl ModernCalls {
    /// Carry a request's replies to `out`.
    pub(super) fn start(&mut self, id: Bytes, reply: ModernReply, out: mpsc::Sender<Bytes>) {
        let is_listen = reply.is_listen();
        let (stream, cancel) = reply.into_parts();
        let task = tokio::spawn(async move {
            // The request lives as long as this task (a listen stream: until the client
            // cancels it or its input ends): the guard goes when the task does.
            let _cancel = cancel;
            let mut after = 0;
            while let Some(ev) = stream.next_after(after).await {
                after = ev.seq;
                if out.send(ev.data).await.is_err() {
                    return;
                }
            }
        });
        // Finished ones are dropped now and then, not on every request.
        if self.0.len() >= 256 {
            self.0.retain(|_, (t, _)| !t.is_finished());
        }
        self.0.insert(id, (task, is_listen));
    }

    /// A client's `notifications/cancelled` for one of these requests stops it; false for
    /// any other message.
    pub(super) fn cancelled(&mut self, env: &Envelope) -> bool {
        if env.kind != Kind::Notification || env.method != Method::Cancelled {
            return false;
        }
        let Some(rid) = env.peek().request_id.map(|r| r.get().as_bytes().to_vec()) else {
            return false;
        };
        match self.0.remove(rid.as_slice()) {
            Some((task, _)) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// How many are tracked (finished ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None is tracked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client was shed: nothing more reaches it.
    pub fn abort_all(self) {
        for (task, _) in self.0.into_values() {
            task.abort();
        }
    }

    /// Input ended: listen streams end now (they never finish on their own); other requests
    /// get until `deadline` to be answered.
    pub async fn finish(self, deadline: tokio::time::Instant) {
        for (task, is_listen) in self.0.into_values() {
            if is_listen {
                task.abort();
                continue;
            }
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
    }
}
