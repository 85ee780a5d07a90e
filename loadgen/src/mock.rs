//! A fast mock MCP server for benchmarks: answers from the parsed envelope with prebuilt
//! bytes, so a benchmark measures the router in front of it, not the server. Both eras:
//! handshake (initialize, sessions) and 2026-07-28 stateless requests (`server/discover`,
//! `_meta`, `resultType`). Tools: `echo` (returns its arguments as text), `sized` (returns
//! `n` bytes of text), `sleep` (waits `ms` milliseconds).

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::value::RawValue;
use switchyard::wire::frame::{Line, LineDecoder};
use switchyard::wire::{json, Envelope, Kind, Method};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

const TOOLS: &[u8] = br#"{"tools":[{"name":"echo","description":"Returns its arguments as text","inputSchema":{"type":"object"}},{"name":"sized","description":"Returns n bytes of text","inputSchema":{"type":"object","properties":{"n":{"type":"integer"}}}},{"name":"sleep","description":"Waits ms milliseconds","inputSchema":{"type":"object","properties":{"ms":{"type":"integer"}}}}]"#;
const CAPABILITIES: &str = r#"{"tools":{},"resources":{}}"#;
const MAX_SIZED: u64 = 64 * 1024 * 1024;

#[derive(serde::Deserialize)]
struct CallPeek<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

#[derive(serde::Deserialize, Default)]
struct Args {
    n: Option<u64>,
    ms: Option<u64>,
}

/// A 2026-07-28 request carries its protocol version in `_meta`.
fn is_modern(env: &Envelope) -> bool {
    env.params_str()
        .is_some_and(|p| p.contains("\"io.modelcontextprotocol/protocolVersion\""))
}

fn text_result(text: &str, modern: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 64);
    out.put_slice(b"{\"content\":[{\"type\":\"text\",\"text\":");
    json::push_str(&mut out, text);
    out.put_slice(b"}]");
    if modern {
        out.put_slice(b",\"resultType\":\"complete\"");
    }
    out.put_u8(b'}');
    out.freeze()
}

fn with_result_type(result: &[u8], modern: bool) -> Bytes {
    if !modern {
        return Bytes::copy_from_slice(result);
    }
    let mut out = BytesMut::from(&result[..result.len() - 1]);
    out.put_slice(b",\"resultType\":\"complete\",\"ttlMs\":0,\"cacheScope\":\"public\"}");
    out.freeze()
}

/// The answer to one request (`None` for notifications and responses).
pub async fn answer(env: &Envelope) -> Option<Bytes> {
    if env.kind != Kind::Request {
        return None;
    }
    let id = env.id_bytes().unwrap_or_default();
    let modern = is_modern(env);
    let result = match &env.method {
        Method::Initialize => {
            let requested = env
                .params_str()
                .and_then(|p| switchyard::wire::params::ParamsPeek::parse(p).ok())
                .and_then(|p| p.protocol_version.map(|v| v.into_owned()))
                .unwrap_or_else(|| "2025-11-25".into());
            Bytes::from(format!(
                r#"{{"protocolVersion":{},"capabilities":{CAPABILITIES},"serverInfo":{{"name":"switchyard-mock","version":"1"}}}}"#,
                String::from_utf8_lossy(&json::json_string(&requested))
            ))
        }
        Method::Other(m) if &**m == "server/discover" => Bytes::from(format!(
            r#"{{"supportedVersions":["2026-07-28","2025-11-25","2025-06-18","2025-03-26"],"capabilities":{CAPABILITIES},"serverInfo":{{"name":"switchyard-mock","version":"1"}},"resultType":"complete","ttlMs":0,"cacheScope":"public"}}"#
        )),
        Method::Ping => Bytes::from_static(b"{}"),
        Method::ToolsList => with_result_type(&[TOOLS, b"}"].concat(), modern),
        Method::ResourcesList => with_result_type(
            br#"{"resources":[{"uri":"mock://data","name":"data","mimeType":"text/plain"}]}"#,
            modern,
        ),
        Method::ResourcesRead => {
            let r = br#"{"contents":[{"uri":"mock://data","mimeType":"text/plain","text":"mock data"}]}"#;
            with_result_type(r, modern)
        }
        Method::ToolsCall => {
            let Some(call) = env
                .params_str()
                .and_then(|p| serde_json::from_str::<CallPeek<'_>>(p).ok())
            else {
                return Some(json::error(
                    Some(&id),
                    -32602,
                    "bad tools/call params",
                    None,
                ));
            };
            let raw_args = call.arguments.map(RawValue::get).unwrap_or("{}");
            let args: Args = serde_json::from_str(raw_args).unwrap_or_default();
            match &*call.name {
                "echo" => text_result(raw_args, modern),
                "sized" => text_result(
                    &"x".repeat(args.n.unwrap_or(0).min(MAX_SIZED) as usize),
                    modern,
                ),
                "sleep" => {
                    tokio::time::sleep(Duration::from_millis(args.ms.unwrap_or(0).min(60_000)))
                        .await;
                    text_result("slept", modern)
                }
                other => {
                    return Some(json::error(
                        Some(&id),
                        -32602,
                        &format!("unknown tool: {other}"),
                        None,
                    ))
                }
            }
        }
        other => {
            return Some(json::error(
                Some(&id),
                -32601,
                &format!("method not found: {}", other.name()),
                None,
            ))
        }
    };
    Some(json::result(&id, &result))
}

/// Serve on stdin/stdout; requests are answered concurrently (a `sleep` holds up nothing).
pub async fn serve_stdio() {
    let (tx, rx) = mpsc::channel::<Bytes>(4096);
    let writer = tokio::spawn(switchyard::lines::write_lines(tokio::io::stdout(), rx));
    let mut stdin = tokio::io::stdin();
    let mut decoder = LineDecoder::new(64 * 1024 * 1024);
    while matches!(stdin.read_buf(decoder.buffer()).await, Ok(n) if n > 0) {
        while let Some(line) = decoder.next_line() {
            let Line::Frame(frame) = line else { continue };
            let Ok(env) = Envelope::parse(frame) else {
                continue;
            };
            let slow = env.params_str().is_some_and(|p| p.contains("\"sleep\""));
            if slow {
                let tx = tx.clone();
                tokio::spawn(async move {
                    if let Some(reply) = answer(&env).await {
                        let _ = tx.send(reply).await;
                    }
                });
            } else if let Some(reply) = answer(&env).await {
                if tx.send(reply).await.is_err() {
                    return;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// How an HTTP/2 client with prior knowledge begins a connection.
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serve Streamable HTTP on `addr` (any path); JSON replies only. HTTP/1.1, or HTTP/2 on a
/// connection that opens with its preface (cleartext, prior knowledge).
pub async fn serve_http(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "mock-server listening on http://{}/mcp",
        listener.local_addr()?
    );
    let sessions = Arc::new(AtomicU64::new(1));
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let sessions = sessions.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let sessions = sessions.clone();
                async move { Ok::<_, Infallible>(http_answer(req, &sessions).await) }
            });
            // A client sends the preface in one write: if it is not all there, it is not one.
            let mut first = [0u8; 24];
            if matches!(tcp.peek(&mut first).await, Ok(24)) && &first == HTTP2_PREFACE {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
                return;
            }
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn http_answer(
    req: Request<hyper::body::Incoming>,
    sessions: &AtomicU64,
) -> Response<Full<Bytes>> {
    match *req.method() {
        hyper::Method::POST => {}
        hyper::Method::DELETE => return reply(StatusCode::OK, Bytes::new()),
        _ => return reply(StatusCode::METHOD_NOT_ALLOWED, Bytes::new()),
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, Bytes::new());
    };
    let env = match Envelope::parse(body) {
        Ok(env) => env,
        Err(e) => {
            return reply(
                StatusCode::BAD_REQUEST,
                json::error(None, e.code, &e.message, None),
            )
        }
    };
    match answer(&env).await {
        None => reply(StatusCode::ACCEPTED, Bytes::new()),
        Some(body) => {
            let mut r = reply(StatusCode::OK, body);
            if env.method == Method::Initialize {
                let id = format!("mock-{}", sessions.fetch_add(1, Ordering::Relaxed));
                if let Ok(v) = hyper::header::HeaderValue::from_str(&id) {
                    r.headers_mut().insert("mcp-session-id", v);
                }
            }
            r
        }
    }
}

/// The physical floor of one HTTP hop: answers every request with the same fixed body,
/// reading but not parsing the request.
pub async fn serve_hop(addr: SocketAddr) -> std::io::Result<()> {
    const BODY: &[u8] =
        br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "hop-server listening on http://{}/mcp",
        listener.local_addr()?
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, Infallible>(reply(StatusCode::OK, Bytes::from_static(BODY)))
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}
