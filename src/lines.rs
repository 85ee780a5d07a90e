//! Newline-framed output to a pipe (a stdio client's stdout, a stdio server's stdin): one
//! writer task per pipe takes frames from a bounded queue and flushes once per batch, so a
//! burst of messages costs one write syscall, not one each.

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::wire::frame::one_line;

/// Write every queued frame as one line until the queue closes or the pipe breaks; then
/// shut the pipe down (so a child sees end of input).
pub async fn write_lines(output: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Bytes>) {
    let mut out = tokio::io::BufWriter::with_capacity(64 * 1024, output);
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for frame in batch.drain(..) {
            if out.write_all(&one_line(&frame)).await.is_err()
                || out.write_all(b"\n").await.is_err()
            {
                return;
            }
        }
        if out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.shutdown().await;
}
