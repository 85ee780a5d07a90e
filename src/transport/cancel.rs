//! Ending a 2026-07-28 request early is a cancellation: over HTTP the client closes the reply
//! stream, over stdio it sends `notifications/cancelled`. Either way the task carrying the
//! replies is dropped, and with it this guard, which tells the upstream (a legacy client's
//! disconnect is not a cancellation, by the 2025 rules, and gets no guard).

use std::sync::Arc;

use bytes::Bytes;

use crate::session::{ReplyStream, Session};

pub struct CancelOnDrop {
    session: Arc<Session>,
    client_id: Bytes,
    stream: Arc<ReplyStream>,
    reason: &'static str,
}

impl CancelOnDrop {
    pub fn new(
        session: Arc<Session>,
        client_id: Bytes,
        stream: Arc<ReplyStream>,
        reason: &'static str,
    ) -> CancelOnDrop {
        CancelOnDrop {
            session,
            client_id,
            stream,
            reason,
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.stream.is_done() {
            return;
        }
        if let Some(h) = self.session.in_flight_upstream(&self.client_id) {
            self.session.forget(&self.client_id);
            let _ = h.send(crate::upstream::Cmd::Cancel {
                session: self.session.key,
                client_id: self.client_id.clone(),
                reason: Some(self.reason.into()),
            });
        }
    }
}
