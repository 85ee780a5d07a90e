//! One load-generating session against an MCP server: Streamable HTTP (a dedicated
//! HTTP/1.1 connection per session) or stdio (sessions pipelined onto a few child
//! processes), in the handshake era or the 2026-07-28 stateless one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use switchyard::wire::frame::{Line, LineDecoder};
use switchyard::wire::sse::SseDecoder;
use switchyard::wire::{json, Envelope, Kind};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

pub const MODERN: &str = "2026-07-28";
pub const LEGACY: &str = "2025-11-25";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    Legacy,
    Modern,
}

#[derive(Clone, Debug)]
pub enum Target {
    Http { uri: Uri },
    Stdio { program: String, args: Vec<String> },
}

/// One kind of request in the mix.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: &'static str,
    /// The params object, raw JSON, without `_meta` (added for the modern era).
    pub params: String,
    /// `Mcp-Name` for the modern era (the tool name or resource URI).
    pub name: Option<String>,
}

/// Why a request did not succeed, for the report.
pub fn kind_of(e: &str) -> String {
    e.split(':').next().unwrap_or(e).to_string()
}

fn modern_meta(params: &str) -> String {
    let meta = format!(
        r#""_meta":{{"io.modelcontextprotocol/protocolVersion":"{MODERN}","io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"switchyard-loadgen","version":"1"}}}}"#
    );
    match params.trim_end().strip_suffix('}') {
        Some(head) if head.trim() == "{" => format!("{{{meta}}}"),
        Some(head) => format!("{head},{meta}}}"),
        None => format!("{{{meta}}}"),
    }
}

/// Check a reply frame: the response to `id`, not an error, not a tool error.
fn check(frame: Bytes, id: u64, check_ids: bool) -> Result<(), String> {
    let env = Envelope::parse(frame).map_err(|e| format!("bad-reply: {}", e.message))?;
    if check_ids && env.id_bytes().as_deref() != Some(id.to_string().as_bytes()) {
        return Err("wrong-id: the reply carried another id".into());
    }
    match env.kind {
        Kind::Response
            if env
                .payload_str()
                .is_some_and(|p| p.contains("\"isError\":true")) =>
        {
            Err("tool-error".into())
        }
        Kind::Response => Ok(()),
        Kind::Error => {
            let code = env
                .payload_str()
                .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
                .and_then(|v| v["code"].as_i64());
            Err(format!("rpc-error {}", code.unwrap_or(0)))
        }
        _ => Err("bad-reply: not a response".into()),
    }
}

pub enum Session {
    Http(HttpSession),
    Stdio(StdioSession),
}

/// HTTP connections that sessions share (`--connections`): each session uses one, taking
/// turns with the others on it (HTTP/1.1 carries one exchange at a time).
pub struct SharedConnections(Vec<Arc<tokio::sync::Mutex<SendRequest<Full<Bytes>>>>>);

impl SharedConnections {
    /// Open `n` connections to `uri`.
    pub async fn open(uri: &Uri, n: usize) -> Result<SharedConnections, String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let sender = connect(uri).await?;
            out.push(Arc::new(tokio::sync::Mutex::new(sender)));
        }
        Ok(SharedConnections(out))
    }

    fn for_session(&self, i: usize) -> Arc<tokio::sync::Mutex<SendRequest<Full<Bytes>>>> {
        self.0[i % self.0.len()].clone()
    }
}

/// A session's way to the server: a connection of its own, or one it shares.
enum Link {
    Own(SendRequest<Full<Bytes>>),
    Shared(Arc<tokio::sync::Mutex<SendRequest<Full<Bytes>>>>),
}

/// The Host header for `uri`.
pub fn host_header(uri: &Uri) -> Result<HeaderValue, String> {
    let host = uri.host().ok_or("connect: no host in URL")?;
    let port = uri.port_u16().unwrap_or(80);
    HeaderValue::try_from(format!("{host}:{port}")).map_err(|e| format!("connect: {e}"))
}

/// Open one HTTP/1.1 connection to `uri`.
pub async fn connect(uri: &Uri) -> Result<SendRequest<Full<Bytes>>, String> {
    let host = uri.host().ok_or("connect: no host in URL")?;
    let tcp = tokio::net::TcpStream::connect((host, uri.port_u16().unwrap_or(80)))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request and its whole response on `sender`.
async fn exchange(
    sender: &mut SendRequest<Full<Bytes>>,
    req: hyper::Request<Full<Bytes>>,
) -> Result<(hyper::StatusCode, hyper::HeaderMap, Bytes), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("connection: {e}"))?
        .to_bytes();
    Ok((status, headers, body))
}

impl Session {
    /// Session number `i`: over HTTP on a connection of its own, or on one of `shared`.
    pub async fn connect(
        target: &Target,
        era: Era,
        check_ids: bool,
        procs: &StdioPool,
        shared: Option<(&SharedConnections, usize)>,
    ) -> Result<Session, String> {
        match target {
            Target::Http { uri } => HttpSession::connect(uri, era, check_ids, shared)
                .await
                .map(Session::Http),
            Target::Stdio { .. } => Ok(Session::Stdio(StdioSession {
                proc: procs.next(),
                era,
                check_ids,
            })),
        }
    }

    pub async fn call(&mut self, req: &Request) -> Result<(), String> {
        match self {
            Session::Http(s) => s.call(req).await,
            Session::Stdio(s) => s.call(req).await,
        }
    }
}

pub struct HttpSession {
    link: Link,
    uri: Uri,
    host: HeaderValue,
    era: Era,
    session: Option<HeaderValue>,
    next_id: u64,
    check_ids: bool,
}

impl HttpSession {
    async fn connect(
        uri: &Uri,
        era: Era,
        check_ids: bool,
        shared: Option<(&SharedConnections, usize)>,
    ) -> Result<HttpSession, String> {
        let host = host_header(uri)?;
        let link = match shared {
            Some((conns, i)) => Link::Shared(conns.for_session(i)),
            None => Link::Own(connect(uri).await?),
        };
        let mut s = HttpSession {
            link,
            uri: uri.clone(),
            host,
            era,
            session: None,
            next_id: 1,
            check_ids,
        };
        if era == Era::Legacy {
            let init = format!(
                r#"{{"protocolVersion":"{LEGACY}","capabilities":{{}},"clientInfo":{{"name":"switchyard-loadgen","version":"1"}}}}"#
            );
            let (headers, _) = s
                .post(Some(0), "initialize", &init, None)
                .await
                .map_err(|e| format!("initialize: {e}"))?;
            s.session = headers.get("mcp-session-id").cloned();
            s.post(None, "notifications/initialized", "{}", None)
                .await
                .map_err(|e| format!("initialize: {e}"))?;
        }
        Ok(s)
    }

    /// POST one message; returns the headers and, for a request, the reply frame.
    async fn post(
        &mut self,
        id: Option<u64>,
        method: &str,
        params: &str,
        name: Option<&str>,
    ) -> Result<(hyper::HeaderMap, Option<Bytes>), String> {
        let path = self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let params = if self.era == Era::Modern {
            modern_meta(params)
        } else {
            params.to_string()
        };
        let body = json::message(
            id.map(|i| i.to_string()).as_deref().map(str::as_bytes),
            method,
            Some(params.as_bytes()),
        );
        let mut b = hyper::Request::post(path)
            .header("host", &self.host)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        match self.era {
            Era::Legacy => {
                if let Some(s) = &self.session {
                    b = b
                        .header("mcp-session-id", s)
                        .header("mcp-protocol-version", LEGACY);
                }
            }
            Era::Modern => {
                b = b
                    .header("mcp-protocol-version", MODERN)
                    .header("mcp-method", method);
                if let Some(name) = name {
                    b = b.header("mcp-name", name);
                }
            }
        }
        let req = b
            .body(Full::new(body))
            .map_err(|e| format!("request: {e}"))?;
        let (status, headers, body) = match &mut self.link {
            Link::Own(sender) => exchange(sender, req).await?,
            // Held until the whole response is read: the connection carries one at a time.
            Link::Shared(conn) => exchange(&mut *conn.lock().await, req).await?,
        };
        let sse = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if !status.is_success() {
            return Err(format!(
                "http-{}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&body)
            ));
        }
        if id.is_none() {
            return Ok((headers, None));
        }
        if !sse {
            return Ok((headers, Some(body)));
        }
        // The response is the last message of the stream.
        let mut d = SseDecoder::new(usize::MAX);
        d.push(&body);
        d.push(b"\n\n");
        let mut last = None;
        while let Ok(Some(ev)) = d.next_event() {
            last = Some(ev.data);
        }
        Ok((headers, last))
    }

    async fn call(&mut self, req: &Request) -> Result<(), String> {
        let id = self.next_id;
        self.next_id += 1;
        let (_, frame) = self
            .post(Some(id), req.method, &req.params, req.name.as_deref())
            .await?;
        check(frame.ok_or("bad-reply: empty")?, id, self.check_ids)
    }
}

/// A stdio server process shared by several sessions: requests are pipelined, replies matched
/// by id.
pub struct StdioProc {
    tx: mpsc::Sender<Bytes>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    next_id: AtomicU64,
    pid: Option<u32>,
    _child: Mutex<Child>,
}

impl StdioProc {
    async fn spawn(program: &str, args: &[String], era: Era) -> Result<Arc<StdioProc>, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let stdin = child.stdin.take().ok_or("spawn: no stdin")?;
        let mut stdout = child.stdout.take().ok_or("spawn: no stdout")?;
        let (tx, rx) = mpsc::channel(8192);
        tokio::spawn(switchyard::lines::write_lines(stdin, rx));
        let proc = Arc::new(StdioProc {
            tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            pid: child.id(),
            _child: Mutex::new(child),
        });
        let reader = Arc::downgrade(&proc);
        tokio::spawn(async move {
            let mut d = LineDecoder::new(usize::MAX);
            while matches!(stdout.read_buf(d.buffer()).await, Ok(n) if n > 0) {
                let Some(proc) = reader.upgrade() else { return };
                while let Some(line) = d.next_line() {
                    let Line::Frame(frame) = line else { continue };
                    let Ok(env) = Envelope::parse(frame.clone()) else {
                        continue;
                    };
                    let id = env
                        .id
                        .clone()
                        .and_then(|r| std::str::from_utf8(&frame[r]).ok()?.parse::<u64>().ok());
                    if let Some(tx) = id.and_then(|id| proc.pending.lock().ok()?.remove(&id)) {
                        let _ = tx.send(frame);
                    }
                }
            }
        });
        if era == Era::Legacy {
            let init = format!(
                r#"{{"protocolVersion":"{LEGACY}","capabilities":{{}},"clientInfo":{{"name":"switchyard-loadgen","version":"1"}}}}"#
            );
            proc.request("initialize", &init)
                .await
                .map_err(|e| format!("initialize: {e}"))?;
            let _ = proc
                .tx
                .send(json::message(None, "notifications/initialized", None))
                .await;
        }
        Ok(proc)
    }

    async fn request(&self, method: &str, params: &str) -> Result<(u64, Bytes), String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| "internal: lock")?
            .insert(id, tx);
        // A request given up (timed out) leaves no entry behind.
        let _forget = Forget { proc: self, id };
        let frame = json::message(
            Some(id.to_string().as_bytes()),
            method,
            Some(params.as_bytes()),
        );
        self.tx
            .send(frame)
            .await
            .map_err(|_| "connection: the server's input closed")?;
        let reply = rx.await.map_err(|_| "connection: the server exited")?;
        Ok((id, reply))
    }
}

/// Removes a request's pending entry when its caller stops waiting for it.
struct Forget<'a> {
    proc: &'a StdioProc,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Ok(mut pending) = self.proc.pending.lock() {
            pending.remove(&self.id);
        }
    }
}

/// The stdio processes of a run, handed out round-robin to sessions.
#[derive(Default)]
pub struct StdioPool {
    procs: Vec<Arc<StdioProc>>,
    next: AtomicU64,
}

impl StdioPool {
    pub async fn start(target: &Target, era: Era, count: usize) -> Result<StdioPool, String> {
        let Target::Stdio { program, args } = target else {
            return Ok(StdioPool::default());
        };
        let mut procs = Vec::new();
        for _ in 0..count.max(1) {
            procs.push(StdioProc::spawn(program, args, era).await?);
        }
        Ok(StdioPool {
            procs,
            next: AtomicU64::new(0),
        })
    }

    /// CPU seconds the server processes have used so far (Linux), for CPU per request.
    pub fn cpu_seconds(&self) -> Option<f64> {
        if self.procs.is_empty() {
            return None;
        }
        self.procs
            .iter()
            .map(|p| crate::cpu::process_seconds(&p.pid?.to_string()))
            .sum()
    }

    fn next(&self) -> Arc<StdioProc> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        self.procs[i % self.procs.len()].clone()
    }
}

pub struct StdioSession {
    proc: Arc<StdioProc>,
    era: Era,
    check_ids: bool,
}

impl StdioSession {
    async fn call(&mut self, req: &Request) -> Result<(), String> {
        let params = if self.era == Era::Modern {
            modern_meta(&req.params)
        } else {
            req.params.clone()
        };
        let (id, frame) = self.proc.request(req.method, &params).await?;
        check(frame, id, self.check_ids)
    }
}

/// Time limit for one request.
pub async fn with_timeout<T>(
    limit: Duration,
    f: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| Err("timeout".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_meta_is_merged_into_params() {
        let p: serde_json::Value =
            serde_json::from_str(&modern_meta(r#"{"name":"echo","arguments":{}}"#)).unwrap();
        assert_eq!(
            p["_meta"]["io.modelcontextprotocol/protocolVersion"],
            MODERN
        );
        assert_eq!(p["name"], "echo");
        let p: serde_json::Value = serde_json::from_str(&modern_meta("{}")).unwrap();
        assert!(p["_meta"].is_object());
    }

    #[test]
    fn replies_are_checked() {
        let ok = Bytes::from_static(br#"{"jsonrpc":"2.0","id":3,"result":{}}"#);
        assert!(check(ok.clone(), 3, true).is_ok());
        assert!(check(ok, 4, true).unwrap_err().starts_with("wrong-id"));
        let err = Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"x"}}"#,
        );
        assert_eq!(check(err, 3, true).unwrap_err(), "rpc-error -32601");
        let tool = Bytes::from_static(br#"{"jsonrpc":"2.0","id":3,"result":{"isError":true}}"#);
        assert_eq!(check(tool, 3, true).unwrap_err(), "tool-error");
    }
}
