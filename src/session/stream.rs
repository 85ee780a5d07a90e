//! Where messages for a client go: a [`Sink`].
//!
//! Over HTTP, each request's replies (its progress, related server requests, then the response)
//! are pushed into a [`ReplyStream`]: a bounded record that the POST's SSE body reads from, and
//! that a client resuming with `Last-Event-ID` reads again from where it left off. Pushing never
//! waits, so an upstream actor never blocks on a slow client; the record keeps at most `cap`
//! events and drops the oldest non-final ones beyond that.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use tokio::sync::mpsc;

/// One client-bound message.
#[derive(Debug, Clone)]
pub struct Event {
    /// Sequence number within its stream (starts at 1; 0 is the priming event).
    pub seq: u64,
    /// The message (one JSON-RPC frame).
    pub data: Bytes,
}

#[derive(Default)]
struct Inner {
    /// Sequence number of `events[0]`.
    first: u64,
    events: VecDeque<Bytes>,
    /// The final message (a response) was pushed: no more will come.
    done: bool,
    wakers: Vec<Waker>,
}

/// A bounded, resumable record of one SSE stream.
pub struct ReplyStream {
    /// The stream's number within its session (part of each SSE event id).
    pub stream_no: u64,
    cap: usize,
    inner: Mutex<Inner>,
}

impl ReplyStream {
    /// An empty stream numbered `stream_no` that keeps its last `cap` events for replay.
    pub fn new(stream_no: u64, cap: usize) -> Arc<ReplyStream> {
        Arc::new(ReplyStream {
            stream_no,
            cap: cap.max(2),
            inner: Mutex::new(Inner {
                first: 1,
                ..Inner::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-push; the data is still sound.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a message; `last` ends the stream. Readers waiting are woken.
    pub fn push(&self, data: Bytes, last: bool) {
        let wakers = {
            let mut g = self.lock();
            if g.done {
                return;
            }
            if g.events.len() >= self.cap {
                g.events.pop_front();
                g.first += 1;
            }
            g.events.push_back(data);
            g.done = last;
            std::mem::take(&mut g.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// End the stream without a final message (session closed).
    pub fn close(&self) {
        let wakers = {
            let mut g = self.lock();
            g.done = true;
            std::mem::take(&mut g.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Whether the stream's last message has been pushed.
    pub fn is_done(&self) -> bool {
        self.lock().done
    }

    /// The next event after `after` (a sequence number), `None` at the end of a finished stream.
    /// Events already dropped from the record are skipped.
    pub fn poll_after(&self, after: u64, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let mut g = self.lock();
        let seq = (after + 1).max(g.first);
        let idx = (seq - g.first) as usize;
        if let Some(data) = g.events.get(idx) {
            return Poll::Ready(Some(Event {
                seq,
                data: data.clone(),
            }));
        }
        if g.done {
            return Poll::Ready(None);
        }
        if !g.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            g.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// The first event after sequence number `after`, waiting for it; `None` at the end of a
    /// finished stream. Events already dropped from the record are skipped.
    pub async fn next_after(&self, after: u64) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_after(after, cx)).await
    }

    /// If the stream finished with exactly one message, that message (it can go as plain JSON).
    pub fn only_message(&self) -> Option<Bytes> {
        let g = self.lock();
        (g.done && g.first == 1 && g.events.len() == 1).then(|| g.events[0].clone())
    }
}

/// Why a message could not be delivered: the client is gone or not reading.
#[derive(Debug)]
pub struct Shed;

/// The destination of one request's replies, or of a session's unsolicited messages.
#[derive(Clone)]
pub enum Sink {
    /// A byte pipe to one client (stdio): bounded; a full queue sheds the client.
    Channel(mpsc::Sender<Bytes>),
    /// An HTTP reply stream.
    Stream(Arc<ReplyStream>),
    /// The replies of one admitted call, passed through the call pipeline's reply stages on
    /// their way to the sink inside (see `router::pipeline`).
    Staged(Arc<StagedSink>),
    /// Nowhere: a 2026-07-28 request's transient session has no stream for messages tied
    /// to no request (2026 clients get those on `subscriptions/listen`).
    Discard,
}

/// A stage every message for an admitted call passes on its way back to the client:
/// progress, log lines, server-to-client requests and the final reply alike. It sees the
/// message and may give another in its place.
pub trait ReplyStage: Send + Sync {
    /// `last` is true for the final message of the call (its response or error).
    fn reply(&self, call: &CallInfo, msg: Bytes, last: bool) -> Bytes;
}

/// What a reply stage knows of the call a message belongs to.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// The server it went to (index in the configuration).
    pub server: usize,
    /// The session that made it.
    pub session: u64,
    /// The call's method.
    pub method: crate::wire::Method,
}

/// A sink whose messages pass reply stages first.
pub struct StagedSink {
    /// Where messages go once the stages have seen them.
    pub inner: Sink,
    /// The reply stages, in order.
    pub stages: Arc<Vec<Arc<dyn ReplyStage>>>,
    /// The call the messages belong to.
    pub call: CallInfo,
}

impl StagedSink {
    fn staged(&self, mut msg: Bytes, last: bool) -> Bytes {
        for stage in self.stages.iter() {
            msg = stage.reply(&self.call, msg, last);
        }
        msg
    }
}

impl Sink {
    /// Deliver a message related to a request (progress, a server request, a log line).
    pub fn send(&self, msg: Bytes) -> Result<(), Shed> {
        match self {
            Sink::Channel(tx) => tx.try_send(msg).map_err(|_| Shed),
            Sink::Stream(s) => {
                s.push(msg, false);
                Ok(())
            }
            Sink::Staged(s) => s.inner.send(s.staged(msg, false)),
            Sink::Discard => Ok(()),
        }
    }

    /// Deliver the final message (the response); nothing follows it on this sink.
    pub fn finish(&self, msg: Bytes) -> Result<(), Shed> {
        match self {
            Sink::Channel(tx) => tx.try_send(msg).map_err(|_| Shed),
            Sink::Stream(s) => {
                s.push(msg, true);
                Ok(())
            }
            Sink::Staged(s) => s.inner.finish(s.staged(msg, true)),
            Sink::Discard => Ok(()),
        }
    }

    /// The reply stream underneath, if it is one.
    pub fn stream(&self) -> Option<&Arc<ReplyStream>> {
        match self {
            Sink::Stream(s) => Some(s),
            Sink::Staged(s) => s.inner.stream(),
            Sink::Channel(_) | Sink::Discard => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_resume_after_a_sequence_number() {
        let s = ReplyStream::new(3, 8);
        s.push(Bytes::from_static(b"a"), false);
        s.push(Bytes::from_static(b"b"), true);
        s.push(Bytes::from_static(b"late"), true); // ignored: the stream is done
        assert_eq!(&s.next_after(0).await.unwrap().data[..], b"a");
        let e = s.next_after(1).await.unwrap();
        assert_eq!((e.seq, &e.data[..]), (2, &b"b"[..]));
        assert!(s.next_after(2).await.is_none());
        assert!(s.only_message().is_none());
    }

    #[tokio::test]
    async fn bounded_record_drops_oldest() {
        let s = ReplyStream::new(0, 2);
        for i in 0..5u8 {
            s.push(Bytes::copy_from_slice(&[i]), false);
        }
        let e = s.next_after(0).await.unwrap();
        assert_eq!((e.seq, &e.data[..]), (4, &[3u8][..]));
    }

    #[tokio::test]
    async fn waiting_reader_is_woken() {
        let s = ReplyStream::new(0, 8);
        let s2 = s.clone();
        let h = tokio::spawn(async move { s2.next_after(0).await.map(|e| e.data) });
        tokio::task::yield_now().await;
        s.push(Bytes::from_static(b"x"), true);
        assert_eq!(h.await.unwrap().as_deref(), Some(&b"x"[..]));
        assert_eq!(s.only_message().as_deref(), Some(&b"x"[..]));
    }
}
