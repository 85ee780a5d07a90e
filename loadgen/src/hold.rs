//! Holding many sessions open at once, for measuring a server's memory at scale: `sessions`
//! handshake-era sessions initialized over a few connections, and optionally one open GET
//! (SSE) stream per session, each on its own connection.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Uri;

use crate::client::{connect, host_header, LEGACY};

/// Initialize one session; returns its id.
async fn initialize(sender: &mut SendRequest<Full<Bytes>>, uri: &Uri) -> Result<String, String> {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{LEGACY}","capabilities":{{}},"clientInfo":{{"name":"switchyard-loadgen","version":"1"}}}}}}"#
    );
    let req = hyper::Request::post(uri.path())
        .header("host", host_header(uri)?)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let id = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if !status.is_success() {
        return Err(format!("initialize: HTTP {status}"));
    }
    id.ok_or_else(|| "initialize: no Mcp-Session-Id".into())
}

pub async fn hold(
    uri: Uri,
    sessions: usize,
    streams: bool,
    connections: usize,
    seconds: u64,
) -> Result<(), String> {
    let ids = Arc::new(tokio::sync::Mutex::new(Vec::with_capacity(sessions)));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections.max(1) {
        let (uri, ids, next) = (uri.clone(), ids.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut sender = connect(&uri).await?;
            while next.fetch_add(1, Ordering::Relaxed) < sessions {
                let id = initialize(&mut sender, &uri).await?;
                ids.lock().await.push(id);
            }
            Ok::<(), String>(())
        }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    let ids = std::mem::take(&mut *ids.lock().await);
    let mut open = Vec::new();
    if streams {
        for id in &ids {
            let mut sender = connect(&uri).await?;
            let req = hyper::Request::get(uri.path())
                .header("host", host_header(&uri)?)
                .header("accept", "text/event-stream")
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", LEGACY)
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            sender.ready().await.map_err(|e| e.to_string())?;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("GET stream: HTTP {}", resp.status()));
            }
            open.push((sender, resp));
        }
    }
    // The line scripts wait for before measuring.
    println!(
        "holding {} sessions, {} open streams",
        ids.len(),
        open.len()
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    drop(open);
    Ok(())
}
