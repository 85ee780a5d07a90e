//! The call pipeline: [`Router::admit`] is the one way a call reaches an upstream actor, on
//! every route (a client's call, a round bridged for a handshake-era client, the retry that
//! resumes a parked call), and the reply stages are the one way that call's messages come
//! back (its sink is wrapped in [`Sink::Staged`], so progress, log lines, server-to-client
//! requests and the final reply all pass them, whoever produced them).
//!
//! Each direction is an ordered list of stages, read through an atomic pointer (no lock per
//! call) and replaced whole when it changes. A call stage continues, answers the call in
//! place, or holds it (a future decides later; the call waits off the hot path and nothing
//! waits behind it). Built in: the `Mcp-Param-*` check of 2026 HTTP clients. Authentication,
//! authorization, validation, approval and audit add theirs here, never in a transport.

use std::future::Future;
use std::pin::Pin;

use arc_swap::ArcSwap;

use super::*;
use crate::session::{CallInfo, ReplyStage, StagedSink};

/// How a call came to the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallRoute {
    /// A client's call, as the client sent it.
    Direct,
    /// A round the router runs for a handshake-era client calling a 2026-07-28 upstream
    /// (the first and each retry carrying the client's answers).
    Bridged,
    /// A 2026-07-28 client's retry that answers a handshake-era upstream's parked call.
    Resumed,
}

/// What a call stage decides.
pub enum Decision {
    /// On to the next stage.
    Continue,
    /// The call is answered here with this message, and not sent.
    Answer(Bytes),
    /// Decided later, by this future; the call waits for it without holding anything up.
    Hold(Pin<Box<dyn Future<Output = Decision> + Send>>),
}

/// A call as the stages see it.
pub struct CallView<'a> {
    /// The calling session.
    pub session: &'a Arc<Session>,
    /// The server (index in the configuration) and the connection that will carry it.
    pub server: usize,
    /// The upstream connection that will carry it.
    pub handle: &'a UpstreamHandle,
    /// The client's frame (the exposed name still in it).
    pub env: &'a Envelope,
    /// The server's own name, when it differs from the exposed one (a JSON string).
    pub own_name: Option<&'a Bytes>,
    /// How the call travels (direct, bridged either way, retried, resumed, from the cache).
    pub route: CallRoute,
}

/// One stage on the way to an upstream.
pub trait CallStage: Send + Sync {
    /// Lets the call on, answers it, rewrites it or holds it.
    fn admit(&self, call: &CallView<'_>) -> Decision;
}

/// The stages of both directions.
pub struct Pipeline {
    calls: ArcSwap<Vec<Arc<dyn CallStage>>>,
    replies: ArcSwap<Vec<Arc<dyn ReplyStage>>>,
}

impl Pipeline {
    /// The built-in stages.
    pub(super) fn new() -> Pipeline {
        let calls: Vec<Arc<dyn CallStage>> = vec![Arc::new(ParamHeaderCheck)];
        Pipeline {
            calls: ArcSwap::from_pointee(calls),
            replies: ArcSwap::from_pointee(Vec::new()),
        }
    }

    /// Add a call stage after the others.
    pub fn add_call_stage(&self, stage: Arc<dyn CallStage>) {
        self.calls.rcu(|v| {
            let mut v = Vec::clone(v);
            v.push(stage.clone());
            v
        });
    }

    /// Add a reply stage after the others.
    pub fn add_reply_stage(&self, stage: Arc<dyn ReplyStage>) {
        self.replies.rcu(|v| {
            let mut v = Vec::clone(v);
            v.push(stage.clone());
            v
        });
    }
}

/// What an admitted call does at its upstream.
pub(super) enum Action {
    /// Send it: a new request there.
    Call { env: Envelope, edits: CallEdits },
    /// Resume a parked call: the client's `answer` goes to the upstream's request, and the
    /// call's replies come to this call from then on.
    Resume {
        env: Envelope,
        parked: park::Parked,
        answer: Bytes,
    },
}

impl Action {
    fn env(&self) -> &Envelope {
        match self {
            Action::Call { env, .. } | Action::Resume { env, .. } => env,
        }
    }
}

/// A call resolved to the connection that will carry it.
pub(super) struct Resolved {
    pub session: Arc<Session>,
    pub server: usize,
    pub handle: UpstreamHandle,
    pub sink: Sink,
    pub route: CallRoute,
    pub action: Action,
}

impl Resolved {
    pub(super) fn new(
        session: &Arc<Session>,
        server: usize,
        handle: UpstreamHandle,
        sink: Sink,
        route: CallRoute,
        action: Action,
    ) -> Resolved {
        Resolved {
            session: session.clone(),
            server,
            handle,
            sink,
            route,
            action,
        }
    }
}

impl Router {
    /// The one way a call reaches an upstream actor: the call stages in order, then the
    /// read cache, then the upstream's mailbox; its replies through the reply stages.
    pub(super) fn admit(self: &Arc<Self>, call: Resolved) {
        let stages = self.pipeline.calls.load();
        self.admit_from(call, &stages, 0);
    }

    fn admit_from(
        self: &Arc<Self>,
        call: Resolved,
        stages: &Arc<Vec<Arc<dyn CallStage>>>,
        from: usize,
    ) {
        for (i, stage) in stages.iter().enumerate().skip(from) {
            let own_name = match &call.action {
                Action::Call { edits, .. } => edits.name.as_ref().map(|(_, n)| n),
                Action::Resume { .. } => None,
            };
            let view = CallView {
                session: &call.session,
                server: call.server,
                handle: &call.handle,
                env: call.action.env(),
                own_name,
                route: call.route,
            };
            match stage.admit(&view) {
                Decision::Continue => {}
                Decision::Answer(msg) => {
                    call.session.finish(&call.sink, msg);
                    return;
                }
                Decision::Hold(decided) => {
                    // Only a held call keeps the stage list alive past this call.
                    let (this, stages) = (self.clone(), stages.clone());
                    tokio::spawn(async move {
                        let mut d = decided.await;
                        while let Decision::Hold(later) = d {
                            d = later.await;
                        }
                        match d {
                            Decision::Answer(msg) => call.session.finish(&call.sink, msg),
                            _ => this.admit_from(call, &stages, i + 1),
                        }
                    });
                    return;
                }
            }
        }
        self.dispatch(call);
    }

    /// After the stages: its sink staged for the way back, then to the upstream.
    fn dispatch(&self, call: Resolved) {
        let Resolved {
            session,
            server,
            handle,
            sink,
            action,
            ..
        } = call;
        let replies = self.pipeline.replies.load();
        let sink = if replies.is_empty() {
            sink
        } else {
            Sink::Staged(Arc::new(StagedSink {
                inner: sink,
                stages: Arc::clone(&replies),
                call: CallInfo {
                    server,
                    session: session.key,
                    method: action.env().method.clone(),
                },
            }))
        };
        match action {
            Action::Call { env, edits } => send_call(&session, &handle, env, edits, sink),
            Action::Resume {
                env,
                parked,
                answer,
            } => resume(&session, env, parked, answer, sink),
        }
    }
}

/// Hand a parked call the client's answer; its replies come to `sink` from now on.
fn resume(session: &Arc<Session>, env: Envelope, parked: park::Parked, answer: Bytes, sink: Sink) {
    let client_id = env.id_bytes().unwrap_or_default();
    if !session.begin(&client_id, &parked.handle, parked.uid) {
        session.finish(
            &sink,
            error_reply(
                &client_id,
                code::INVALID_PARAMS,
                "a request with this id is already in flight",
            ),
        );
        return;
    }
    let mut reply = Vec::with_capacity(answer.len() + parked.request_id.len() + 40);
    reply.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    reply.extend_from_slice(&parked.request_id);
    reply.extend_from_slice(b",\"result\":");
    reply.extend_from_slice(&answer);
    reply.push(b'}');
    let origin = Origin {
        session: session.clone(),
        sink,
        client_id,
    };
    // One mailbox, in order: the call answers the retry before the upstream hears back.
    let sent = parked
        .handle
        .send(Cmd::Reattach {
            uid: parked.uid,
            origin,
        })
        .and_then(|_| parked.handle.send(Cmd::Reply(Bytes::from(reply))));
    if let Err(cmd) = sent {
        upstream::reject(
            cmd,
            &parked.handle.shared.name,
            code::OVERLOADED,
            "the server is overloaded",
        );
    }
}

/// The built-in first stage: a 2026-07-28 HTTP client's `Mcp-Param-*` headers must agree
/// with the arguments of the tool it calls (-32020 otherwise).
struct ParamHeaderCheck;

impl CallStage for ParamHeaderCheck {
    fn admit(&self, call: &CallView<'_>) -> Decision {
        match check_param_headers(call.session, call.handle, call.env, call.own_name) {
            Ok(()) => Decision::Continue,
            Err(why) => {
                let id = call.env.id_bytes().unwrap_or_default();
                Decision::Answer(error_reply(&id, modern::HEADER_MISMATCH, &why))
            }
        }
    }
}
