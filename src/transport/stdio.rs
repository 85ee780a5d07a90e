//! Client-facing stdio (`switchyard stdio`): one client on stdin/stdout, as a desktop host
//! launches a server. One JSON-RPC message per line each way.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;

use super::cancel::CancelOnDrop;
use crate::protocol::modern::{self, RequestMeta};
use crate::protocol::{negotiate, ClientCaps};
use crate::router::{Router, Stateless};
use crate::session::{Session, Sink};
use crate::wire::envelope::{code, is_batch, split_batch, ParamsPeek};
use crate::wire::frame::{Line, LineDecoder};
use crate::wire::{json, Envelope, Kind, Method};

/// Serve one client until its input ends.
pub async fn serve(
    router: Arc<Router>,
    input: impl AsyncRead + Unpin,
    output: impl AsyncWrite + Unpin + Send + 'static,
) {
    let (tx, rx) = mpsc::channel::<Bytes>(router.config.limits.client_queue);
    let writer = tokio::spawn(crate::lines::write_lines(output, rx));
    let mut input = input;
    let mut decoder = LineDecoder::new(router.config.limits.max_frame_bytes);
    let mut session: Option<Arc<Session>> = None;
    let mut modern_calls = ModernCalls::default();
    let input_ended = loop {
        // A shed session stops reading at once, whether or not more input comes.
        let n = tokio::select! {
            n = input.read_buf(decoder.buffer()) => n,
            _ = until_closed(&session) => break false,
        };
        let eof = !matches!(n, Ok(k) if k > 0);
        while let Some(line) = if eof {
            decoder.finish()
        } else {
            decoder.next_line()
        } {
            match line {
                Line::Frame(frame) => {
                    // Backpressure: read no more while the client is behind on its replies
                    // (a burst of requests waits; only replies that still find no room,
                    // arriving on their own, shed it).
                    tokio::select! {
                        room = tx.reserve() => drop(room),
                        _ = until_closed(&session) => {}
                    }
                    frame_in(&router, &mut session, &mut modern_calls, &tx, frame).await
                }
                Line::Oversized { len } => {
                    let msg = format!(
                        "message of {len} bytes is over the {}-byte limit",
                        router.config.limits.max_frame_bytes
                    );
                    let _ = tx
                        .send(json::error(None, code::INVALID_REQUEST, &msg, None))
                        .await;
                }
            }
            if eof || session.as_ref().is_some_and(|s| s.is_closed()) {
                break;
            }
        }
        if eof || session.as_ref().is_some_and(|s| s.is_closed()) {
            break eof;
        }
    };
    // Input ended: answer what is still in flight before closing (bounded by the timeout).
    let deadline = tokio::time::Instant::now() + router.config.limits.request_timeout;
    if input_ended {
        modern_calls.finish(deadline).await;
    } else {
        modern_calls.abort_all();
    }
    if let Some(s) = session {
        while !s.state().in_flight.is_empty()
            && tokio::time::Instant::now() < deadline
            && !s.is_closed()
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        router.sessions.remove(&s.id);
        s.close();
    }
    drop(tx);
    if input_ended {
        let _ = writer.await;
    } else {
        // Shed for not reading: what is still queued for it would never be read either.
        writer.abort();
    }
}

/// Completes when this connection's session closes (shed); never without one.
async fn until_closed(session: &Option<Arc<Session>>) {
    match session {
        Some(s) => s.closed().await,
        None => std::future::pending().await,
    }
}

/// The 2026-07-28 requests in flight on this connection: the task carrying each one's replies,
/// by request id, so that `notifications/cancelled` (or the end of input) can stop it. A
/// stopped task drops its [`CancelOnDrop`], which tells the upstream.
#[derive(Default)]
struct ModernCalls(HashMap<Bytes, (tokio::task::JoinHandle<()>, bool)>);

impl ModernCalls {
    fn track(&mut self, id: Bytes, task: tokio::task::JoinHandle<()>, is_listen: bool) {
        // Finished ones are dropped now and then, not on every request.
        if self.0.len() >= 256 {
            self.0.retain(|_, (t, _)| !t.is_finished());
        }
        self.0.insert(id, (task, is_listen));
    }

    /// The client cancelled request `id`; false if it is not one of ours.
    fn cancel(&mut self, id: &[u8]) -> bool {
        match self.0.remove(id) {
            Some((task, _)) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// The client was shed: nothing more reaches it.
    fn abort_all(self) {
        for (task, _) in self.0.into_values() {
            task.abort();
        }
    }

    /// Input ended: listen streams end now (they never finish on their own); other requests
    /// get until `deadline` to be answered.
    async fn finish(self, deadline: tokio::time::Instant) {
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

/// A 2026-07-28 request over stdio: `_meta` checked (there are no headers on stdio), then
/// routed on a transient session; results get `resultType` and cache hints.
async fn modern_request(
    router: &Arc<Router>,
    calls: &mut ModernCalls,
    tx: &mpsc::Sender<Bytes>,
    env: Envelope,
    id: Bytes,
    meta: RequestMeta,
) {
    if let Err(r) = modern::validate_meta(&meta) {
        let _ = tx
            .send(json::error(
                Some(&id),
                r.code,
                &r.message,
                r.data.as_deref().map(str::as_bytes),
            ))
            .await;
        return;
    }
    let (stream, method, session) = match router.stateless(env, &meta).await {
        Ok(Stateless::Now(reply)) => {
            let _ = tx.send(reply).await;
            return;
        }
        Ok(Stateless::Stream {
            stream,
            method,
            session,
        }) => (stream, method, session),
        Err(r) => {
            let _ = tx
                .send(json::error(Some(&id), r.code, &r.message, None))
                .await;
            return;
        }
    };
    let tx = tx.clone();
    let is_listen = matches!(&method, Method::Other(m) if &**m == "subscriptions/listen");
    let cancel = CancelOnDrop::new(
        router.clone(),
        session,
        id.clone(),
        stream.clone(),
        "the client cancelled the request",
    );
    let task = tokio::spawn(async move {
        // The request's session lives as long as its stream (a listen stream: until the
        // client cancels it or its input ends).
        let _cancel = cancel;
        let mut after = 0;
        while let Some(ev) = stream.next_after(after).await {
            after = ev.seq;
            if tx
                .send(modern::complete_result(&ev.data, &method))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    calls.track(id, task, is_listen);
}

async fn frame_in(
    router: &Arc<Router>,
    session: &mut Option<Arc<Session>>,
    calls: &mut ModernCalls,
    tx: &mpsc::Sender<Bytes>,
    frame: Bytes,
) {
    if is_batch(&frame) {
        match (session.as_ref(), split_batch(&frame)) {
            (Some(s), Ok(parts)) if s.era().accepts_batches() => {
                for part in parts {
                    Box::pin(frame_in(router, session, calls, tx, part)).await;
                }
            }
            (_, Err(e)) => {
                let _ = tx.send(json::error(None, e.code, &e.message, None)).await;
            }
            _ => {
                let msg = "batches are accepted only in 2025-03-26 sessions";
                let _ = tx
                    .send(json::error(None, code::INVALID_REQUEST, msg, None))
                    .await;
            }
        }
        return;
    }
    let env = match Envelope::parse(frame) {
        Ok(env) => env,
        Err(e) => {
            let _ = tx
                .send(json::error(e.id.as_deref(), e.code, &e.message, None))
                .await;
            return;
        }
    };
    let id = env.id_bytes().unwrap_or_default();
    // 2026-07-28 requests stand alone (no initialize): `_meta` says so.
    if env.kind == Kind::Request && modern::carries_envelope(&env.frame) {
        let meta = RequestMeta::of(&env);
        if meta.protocol_version.is_some() {
            return modern_request(router, calls, tx, env, id, meta).await;
        }
    }
    // A 2026 client cancels a request (a listen stream too) by its id.
    if env.kind == Kind::Notification && env.method == Method::Cancelled {
        let rid = env.peek().request_id.map(|r| r.get().as_bytes().to_vec());
        if rid.is_some_and(|rid| calls.cancel(&rid)) {
            return;
        }
    }
    match (session.as_ref(), env.kind, &env.method) {
        (None, Kind::Request, Method::Initialize) => {
            let peek = env
                .params_str()
                .map(ParamsPeek::parse)
                .transpose()
                .ok()
                .flatten()
                .unwrap_or_default();
            let era = negotiate(peek.protocol_version.as_deref());
            let caps = ClientCaps::parse(peek.capabilities);
            let s = Session::new(
                "stdio".into(),
                era,
                caps,
                Sink::Channel(tx.clone()),
                router.config.limits.replay_events,
            );
            router.sessions.insert(s.clone());
            router.wait_ready(&s).await;
            let _ = tx
                .send(json::result(&id, &router.initialize_result(&s)))
                .await;
            *session = Some(s);
        }
        (None, Kind::Request, Method::Ping) => {
            let _ = tx.send(json::result(&id, b"{}")).await;
        }
        (None, Kind::Request, _) => {
            let _ = tx
                .send(json::error(
                    Some(&id),
                    code::INVALID_REQUEST,
                    "initialize first",
                    None,
                ))
                .await;
        }
        (None, _, _) => {}
        (Some(s), _, _) => router.handle(s, env, Sink::Channel(tx.clone())),
    }
}
