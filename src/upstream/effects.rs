//! What an upstream actor does with what its id map decided: delivery into client
//! sessions, answers to the router's own requests, the read cache, parking, and the events
//! the router hears. The one place a server's message reaches a client.

use super::*;

/// What the upstream connection's side must put on its wire.
#[derive(Debug)]
pub enum Wire {
    /// A frame to send: our request `uid`, or (`None`) a message that is no request.
    Write {
        /// The frame.
        frame: Bytes,
        /// Our id for it, if it is a request of ours.
        uid: Option<u64>,
    },
    /// Request `uid` ended here without its answer (cancelled, overdue); a 2026-07-28 HTTP
    /// upstream learns it by its stream closing.
    Abandoned(u64),
}

/// What [`Pendings`] decided must happen; its actor carries it out (see
/// [`carry_out`]).
pub enum Effect {
    /// Something for the upstream.
    Wire(Wire),
    /// The final message of client request `uid`: it ends.
    Finish {
        /// Who waits for it.
        origin: Origin,
        /// Its id upstream.
        uid: u64,
        /// The message, its id already the client's.
        frame: Bytes,
    },
    /// A message about a client request in flight (progress).
    Progress {
        /// Who waits for the request.
        origin: Origin,
        /// The message, its token already the client's.
        frame: Bytes,
    },
    /// A log line for a session, filtered by its level: on `sink`, else on its unsolicited
    /// stream.
    Log {
        /// The session it is for.
        session: Arc<Session>,
        /// The reply sink of the request it came with, if any.
        sink: Option<Sink>,
        /// The `notifications/message` frame.
        env: Envelope,
    },
    /// The router's own request is answered.
    Answer {
        /// Where the router waits.
        reply: oneshot::Sender<InternalResult>,
        /// The server's result or error.
        result: InternalResult,
    },
    /// A `resources/read` result for the read cache (kept only if the server is 2026-07-28,
    /// which says what is public).
    KeepRead {
        /// The resource read.
        uri: Box<str>,
        /// The `result` member, raw JSON.
        result: Bytes,
    },
    /// A server-to-client request for a handshake-era client, under our id for it.
    Ask {
        /// The client request it was made during.
        target: Origin,
        /// The server's id for it.
        upstream_id: Bytes,
        /// The server's request.
        request: Envelope,
    },
    /// A server-to-client request made during 2026-07-28 call `uid`: park the call (its client
    /// answers by retrying) and report back with [`Pendings::parked`]; if it cannot be
    /// parked, `refusal` goes back to the server.
    Park {
        /// The call it was made during.
        uid: u64,
        /// Who waits for that call.
        origin: Origin,
        /// The server's request.
        request: Envelope,
        /// The error answer to send the server if the call cannot be parked.
        refusal: Bytes,
    },
    /// A notification tied to no request (list_changed, resources/updated).
    Unsolicited(Envelope),
    /// The router's own listen stream started with this key was acknowledged.
    ListenAcknowledged(Bytes),
}

/// Carry out everything `pendings` has queued, in order. What is for the upstream goes to
/// `wire`, which the stdio and HTTP actors each implement.
pub fn carry_out(
    pendings: &mut Pendings,
    handle: &UpstreamHandle,
    events: &dyn UpstreamEvents,
    wire: &mut dyn FnMut(&Pendings, Wire),
) {
    while let Some(effect) = pendings.poll() {
        match effect {
            Effect::Wire(w) => wire(pendings, w),
            Effect::Park {
                uid,
                origin,
                request,
                refusal,
            } => {
                if events.park(handle, uid, &origin, &request) {
                    pendings.parked(uid);
                } else {
                    let w = Wire::Write {
                        frame: refusal,
                        uid: None,
                    };
                    wire(pendings, w);
                }
            }
            other => deliver(other, handle, events),
        }
    }
}

/// An effect that concerns the clients' side or the router, not the upstream's wire.
fn deliver(effect: Effect, handle: &UpstreamHandle, events: &dyn UpstreamEvents) {
    match effect {
        Effect::Finish { origin, uid, frame } => finish(&origin, uid, frame),
        Effect::Progress { origin, frame } => origin.session.send(&origin.sink, frame),
        Effect::Log { session, sink, env } => session.deliver_log(&env, sink.as_ref()),
        Effect::Answer { reply, result } => {
            let _ = reply.send(result);
        }
        Effect::KeepRead { uri, result } => {
            // One not yet known to be 2026-07-28 may still have been asked: only such a server
            // says what is public.
            if handle.is_modern() {
                handle.shared.reads.store(&uri, result);
            }
        }
        Effect::Ask {
            target,
            upstream_id,
            request,
        } => {
            let ours = target
                .session
                .register_server_request(handle.clone(), upstream_id);
            let range = request.id.clone().unwrap_or(0..0);
            let frame = splice(&request.frame, &mut [Edit { range, with: &ours }]);
            target.session.send(&target.sink, frame);
        }
        Effect::Unsolicited(env) => events.unsolicited(handle, &env),
        Effect::ListenAcknowledged(key) => events.listen_acknowledged(handle, &key),
        Effect::Wire(_) | Effect::Park { .. } => {}
    }
}

/// Give a client request `uid` its final message (already in its client's shape: see
/// `Pendings`' response); it is no longer in flight.
pub fn finish(origin: &Origin, uid: u64, frame: Bytes) {
    origin.session.end(&origin.client_id, uid);
    origin.session.finish_as_is(&origin.sink, frame);
}
