//! Client-facing stdio (`switchyard stdio`): one client on stdin/stdout, as a desktop host
//! launches a server. One JSON-RPC message per line each way.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;

use crate::ingress::{self, Answer, Facts, ModernCalls, SessionSlot};
use crate::router::Router;
use crate::router::Session;
use crate::wire::envelope::code;
use crate::wire::frame::{Line, LineDecoder};
use crate::wire::json;

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
        while s.has_in_flight() && tokio::time::Instant::now() < deadline && !s.is_closed() {
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

async fn frame_in(
    router: &Arc<Router>,
    session: &mut Option<Arc<Session>>,
    calls: &mut ModernCalls,
    tx: &mpsc::Sender<Bytes>,
    frame: Bytes,
) {
    let facts = Facts {
        headers: None,
        session: SessionSlot::Connection {
            session,
            out: tx,
            calls,
        },
    };
    let out = match ingress::receive(router, frame, facts).await {
        Answer::Reply { frame, .. } | Answer::Started { frame, .. } => frame,
        Answer::Batch(answers) if !answers.is_empty() => {
            let mut out = bytes::BytesMut::new();
            json::push_array(&mut out, &answers);
            out.freeze()
        }
        // Replies of requests come on `tx` as they arrive.
        _ => return,
    };
    let _ = tx.send(out).await;
}
