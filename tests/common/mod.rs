//! Shared test harness: real peers (installed by scripts/install-peers.sh), Switchyard
//! processes on free loopback ports, and a raw HTTP MCP client for protocol-level checks.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const INSTALL_HINT: &str =
    "run `bash scripts/install-peers.sh` (the README test command does this)";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn peers() -> PathBuf {
    std::env::var_os("SWITCHYARD_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".peers"))
}

fn need(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "test peer missing: {what} at {}; {INSTALL_HINT}",
        path.display()
    );
    path
}

pub fn node() -> PathBuf {
    need(peers().join("node/node_modules/.bin/node"), "Node 22")
}

pub fn python() -> PathBuf {
    need(peers().join("venv/bin/python"), "Python venv with mcp")
}

pub fn everything_js() -> PathBuf {
    need(
        peers().join("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
        "@modelcontextprotocol/server-everything",
    )
}

pub fn conformance_js() -> PathBuf {
    need(
        peers().join("node/node_modules/@modelcontextprotocol/conformance/dist/index.js"),
        "@modelcontextprotocol/conformance",
    )
}

pub fn switchyard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchyard"))
}

/// A binary of this workspace that `cargo test` does not build for this package (an
/// example, another package's binary), built once per test binary with `cargo build ARGS`:
/// its path under the target directory (`rel`, e.g. `examples/conformance_fixture`).
pub fn built(once: &'static std::sync::Once, rel: &str, args: &[&str]) -> PathBuf {
    // target/debug/deps/<test binary> -> target/debug/<rel>
    let exe = std::env::current_exe().expect("test path");
    let path = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join(rel);
    once.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .arg("build")
            .args(args)
            .current_dir(root())
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "could not build {rel}");
    });
    assert!(path.exists(), "nothing at {}", path.display());
    path
}

/// The conformance fixture server (examples/conformance_fixture.rs), brought up to date once
/// per test binary (`cargo test` does not rebuild examples it has built before).
pub fn fixture() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    built(
        &BUILT,
        "examples/conformance_fixture",
        &["--example", "conformance_fixture"],
    )
}

/// The dual-era conformance fixture as a per-client, unprefixed upstream pinned to the
/// handshake era (it would otherwise be detected as 2026-07-28).
pub fn fixture_config() -> String {
    format!(
        "[[servers]]\nname = \"fixture\"\ncommand = {:?}\nsharing = \"per-client\"\nprefix = \"\"\nera = \"legacy\"\n",
        fixture().display().to_string()
    )
}

/// The conformance fixture as a shared, unprefixed upstream, its era detected (2026-07-28).
pub fn modern_fixture_config() -> String {
    format!(
        "[[servers]]\nname = \"fixture\"\ncommand = {:?}\nprefix = \"\"\n",
        fixture().display().to_string()
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pids of a process's children (its stdio upstreams).
pub fn child_pids(parent: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `switchyard serve` and its MCP endpoint URL.
pub struct Router {
    pub proc: Proc,
    pub url: String,
    pub _dir: TempDir,
}

impl Router {
    /// Its `host:port`, for raw sockets.
    pub fn addr(&self) -> String {
        self.url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_string()
    }
}

/// Start `switchyard serve` with this configuration (its `[listen]` is overridden to a free port).
pub fn start_router(config: &str) -> Router {
    start_router_with(config, &[])
}

/// The same, with more `serve` arguments (`--workers N`).
pub fn start_router_with(config: &str, args: &[&str]) -> Router {
    let dir = TempDir::new("router");
    let path = dir.write("switchyard.toml", config);
    let mut child = Command::new(switchyard_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .args(args)
        .env(
            "SWITCHYARD_LOG",
            std::env::var("SWITCHYARD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn switchyard");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("switchyard listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line}"))
        .to_string();
    Router {
        proc: Proc(child),
        url,
        _dir: dir,
    }
}

/// Configuration text for server-everything over stdio, named `name`.
pub fn everything_server(name: &str) -> String {
    format!(
        "[[servers]]\nname = \"{name}\"\ncommand = {:?}\nargs = [{:?}, \"stdio\"]\n",
        node().display().to_string(),
        everything_js().display().to_string()
    )
}

/// Start tests/peers/py_server.py on a free port; returns it and its MCP URL.
pub fn start_py_server() -> (Proc, String) {
    start_py_server_on(free_port())
}

/// Start tests/peers/py_server.py on this port.
pub fn start_py_server_on(port: u16) -> (Proc, String) {
    start_py_server_with(port, &[])
}

/// Start tests/peers/py_server.py on this port with these flags (`--only 2026-07-28`: pinned
/// to that revision; `--public-hints`: public cache hints).
pub fn start_py_server_with(port: u16, extra: &[&str]) -> (Proc, String) {
    let child = Command::new(python())
        .arg(root().join("tests/peers/py_server.py"))
        .arg(port.to_string())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the Python server");
    let proc = Proc(child);
    wait_for_port(port, Duration::from_secs(30));
    (proc, format!("http://127.0.0.1:{port}/mcp"))
}

/// tests/peers/py_server.py on a free port with these flags (`--hypercorn`: under hypercorn,
/// which speaks HTTP/1.1 and cleartext HTTP/2, a peer that `scripts/install-peers.sh` installs).
pub fn start_py_server_with_flags(flags: &[&str]) -> (Proc, String) {
    if flags.contains(&"--hypercorn") {
        let found = Command::new(python())
            .args(["-c", "import hypercorn"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "test peer missing: hypercorn in {}; run `bash scripts/install-peers.sh`",
            python().display()
        );
    }
    start_py_server_with(free_port(), flags)
}

pub fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "nothing listening on port {port} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run a command to completion with a time limit; returns (success, stdout+stderr).
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let dir = TempDir::new("out");
    let out_path = dir.0.join("out.txt");
    let out = std::fs::File::create(&out_path).expect("output file");
    let err = out.try_clone().expect("clone output file");
    let mut child = Proc(
        cmd.stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let start = Instant::now();
    let ok = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status.success();
        }
        if start.elapsed() > limit {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (ok, text)
}

/// A raw Streamable HTTP MCP client, for checks the SDK clients would hide.
#[derive(Clone)]
pub struct RawClient {
    pub url: String,
    pub session: Option<String>,
    pub client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

/// One HTTP reply: status, headers, and the JSON-RPC messages it carried (SSE or JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    pub messages: Vec<Value>,
    pub event_ids: Vec<String>,
}

impl Reply {
    /// The response (the message with a result or error).
    pub fn response(&self) -> &Value {
        self.messages
            .iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or(&Value::Null)
    }
}

pub fn parse_sse(body: &[u8]) -> (Vec<Value>, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    for block in text.split("\n\n") {
        let mut data = String::new();
        for line in block.lines() {
            if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            } else if let Some(id) = line.strip_prefix("id:") {
                ids.push(id.trim().to_string());
            }
        }
        if !data.trim().is_empty() {
            messages.push(serde_json::from_str(&data).unwrap_or(Value::Null));
        }
    }
    (messages, ids)
}

impl RawClient {
    pub fn new(url: &str) -> RawClient {
        RawClient {
            url: url.to_string(),
            session: None,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn request(
        &self,
        method: &str,
        body: &str,
        extra: &[(&str, &str)],
    ) -> hyper::Request<Full<Bytes>> {
        let mut b = hyper::Request::builder().method(method).uri(&self.url);
        if method == "POST" {
            b = b
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream");
        } else {
            b = b.header("accept", "text/event-stream");
        }
        if let Some(s) = &self.session {
            b = b.header("mcp-session-id", s);
        }
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        b.body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("request")
    }

    pub async fn send(&self, req: hyper::Request<Full<Bytes>>) -> Reply {
        let resp = tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .expect("reply within 30 s")
            .expect("HTTP exchange");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = tokio::time::timeout(Duration::from_secs(30), resp.into_body().collect())
            .await
            .expect("body within 30 s")
            .expect("body")
            .to_bytes();
        let is_sse = headers
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let (messages, event_ids) = if is_sse {
            parse_sse(&body)
        } else if body.is_empty() {
            (vec![], vec![])
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Array(a)) => (a, vec![]),
                Ok(v) => (vec![v], vec![]),
                Err(_) => (vec![], vec![]),
            }
        };
        Reply {
            status,
            headers,
            body,
            messages,
            event_ids,
        }
    }

    pub async fn post(&self, body: &str) -> Reply {
        self.send(self.request("POST", body, &[])).await
    }

    /// initialize + initialized; keeps the session id.
    pub async fn initialize(&mut self, version: &str, capabilities: &str) -> Value {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{version}","capabilities":{capabilities},"clientInfo":{{"name":"raw-test","version":"1"}}}}}}"#
        );
        let r = self.post(&body).await;
        assert_eq!(r.status, 200, "initialize: {:?}", r.body);
        self.session = Some(
            r.headers
                .get("mcp-session-id")
                .expect("session id")
                .to_str()
                .expect("ascii")
                .to_string(),
        );
        let n = self
            .post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        assert_eq!(n.status, 202);
        r.response().clone()
    }

    /// A request; returns the whole reply (all messages of its stream).
    pub async fn call(&self, id: Value, method: &str, params: Value) -> Reply {
        let body =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.post(&body.to_string()).await
    }
}

/// An open SSE response read incrementally (a GET stream, or a long reply).
pub struct EventStream {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    pub status: u16,
}

impl EventStream {
    pub async fn open(c: &RawClient, req: hyper::Request<Full<Bytes>>) -> EventStream {
        let resp = tokio::time::timeout(Duration::from_secs(30), c.client.request(req))
            .await
            .expect("in time")
            .expect("HTTP");
        EventStream {
            status: resp.status().as_u16(),
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    /// Messages until `pred` holds for one of them, or `limit` passes (then `None`).
    pub async fn until(
        &mut self,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Vec<Value>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut got = Vec::new();
        loop {
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                for m in parse_sse(&block).0 {
                    let hit = pred(&m);
                    got.push(m);
                    if hit {
                        return Some(got);
                    }
                }
            }
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Ok(Some(Ok(frame))) => self
                    .buf
                    .extend_from_slice(&frame.into_data().unwrap_or_default()),
                _ => return None,
            }
        }
    }
}

pub fn text_of(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c["text"].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A 2026-07-28 request (headers as the body says), with `caps` as client capabilities.
pub fn modern_request(
    c: &RawClient,
    id: Value,
    method: &str,
    params: Value,
    caps: Value,
) -> hyper::Request<http_body_util::Full<bytes::Bytes>> {
    let mut params = params;
    params["_meta"] = serde_json::json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps});
    let name = params["name"]
        .as_str()
        .or(params["uri"].as_str())
        .map(str::to_owned);
    let body = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        .to_string();
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if let Some(n) = &name {
        headers.push(("mcp-name", n.as_str()));
    }
    c.request("POST", &body, &headers)
}

/// `switchyard stdio --config CONFIG` with piped stdin and stdout (logs at warn to `stderr`).
pub fn spawn_stdio(config: &std::path::Path, stderr: Stdio) -> Proc {
    Proc(
        Command::new(switchyard_bin())
            .args(["stdio", "--config"])
            .arg(config)
            .env("SWITCHYARD_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn switchyard stdio"),
    )
}

/// The levels of the log lines (`notifications/message`) among a reply's messages, in order.
pub fn log_levels(r: &Reply) -> Vec<String> {
    r.messages
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .map(|m| m["params"]["level"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A one-scenario conformance run passed every check: its "Passed: N/N, 0 failed" line,
/// with N above zero. Returns that line (empty when there is none) for messages.
pub fn scenario_passed(log: &str) -> (bool, &str) {
    let line = log
        .lines()
        .find(|l| l.starts_with("Passed: "))
        .unwrap_or("");
    let counts = line.trim_start_matches("Passed: ").split(',').next();
    let (got, of) = counts.and_then(|c| c.split_once('/')).unwrap_or(("0", "?"));
    (got == of && got != "0", line)
}

/// Wait (up to 30 s) until the router lists `tool` to a 2026-07-28 client: its upstream
/// connects in the background, and a list made while it is still retrying leaves it out.
pub fn wait_until_listed(url: &str, tool: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let c = RawClient::new(url);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let req = modern_request(
                &c,
                Value::from(1),
                "tools/list",
                serde_json::json!({}),
                serde_json::json!({}),
            );
            let r = c.send(req).await;
            let listed = r.response()["result"]["tools"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t["name"] == tool));
            if listed {
                return;
            }
            assert!(Instant::now() < deadline, "{tool} never listed at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Call the demo server's `echo` through Switchyard: its text comes back, as a whole JSON
/// body sent with its length (not chunked).
pub async fn echo_works(c: &RawClient, tag: &str) {
    let r = c
        .call(
            serde_json::json!(tag),
            "tools/call",
            serde_json::json!({"name": "demo__echo", "arguments": {"text": tag}}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.response()["id"], serde_json::json!(tag));
    assert_eq!(text_of(&r.response()["result"]), tag, "{:?}", r.response());
    // A whole JSON reply goes out with its length, not chunked.
    assert_eq!(
        r.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(r.body.len().to_string().as_str()),
        "{:?}",
        r.headers
    );
    assert!(r.headers.get("transfer-encoding").is_none());
}
