//! Ending a 2026-07-28 request early is a cancellation: over HTTP the client closes the reply
//! stream, over stdio it sends `notifications/cancelled`. Either way the task carrying the
//! replies is dropped, and with it this guard, which cancels the request through the router
//! (a legacy client's disconnect is not a cancellation, by the 2025 rules, and gets no guard).

use std::sync::Arc;

use bytes::Bytes;

use crate::router::Router;
use crate::router::Session;
use crate::session::ReplyStream;

/// Cancels its request through the router when dropped before the request's reply stream
/// is done.
pub struct CancelOnDrop {
    router: Arc<Router>,
    session: Arc<Session>,
    client_id: Bytes,
    stream: Arc<ReplyStream>,
    reason: &'static str,
}

impl CancelOnDrop {
    /// A guard that cancels `client_id` of `session` with `reason` unless `stream` is done by the
    /// time it is dropped.
    pub fn new(
        router: Arc<Router>,
        session: Arc<Session>,
        client_id: Bytes,
        stream: Arc<ReplyStream>,
        reason: &'static str,
    ) -> CancelOnDrop {
        CancelOnDrop {
            router,
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
        self.router
            .cancel(&self.session, &self.client_id, Some(self.reason));
    }
}
