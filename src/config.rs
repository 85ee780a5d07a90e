//! The configuration file (TOML), validated with errors that name the file, line and field.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The configuration that ships with Switchyard: fronts the built-in demo server.
pub const DEFAULT_CONFIG: &str = include_str!("../switchyard.toml");

/// A validated configuration: the listener, the limits and the servers behind Switchyard.
#[derive(Debug, Clone)]
pub struct Config {
    /// The client-facing HTTP listener (`[listen]`).
    pub listen: Listen,
    /// Sizes, timeouts and queue bounds (`[limits]`).
    pub limits: Limits,
    /// The upstream servers (`[[servers]]`), in file order: a server's index is its place here.
    pub servers: Vec<ServerConfig>,
}

/// Where and how the HTTP front listens.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Address to bind (loopback by default).
    pub http: SocketAddr,
    /// Path of the MCP endpoint (`/mcp` by default).
    pub path: String,
    /// Extra origins allowed besides loopback ones (`http://localhost:*` and the like).
    pub allowed_origins: Vec<String>,
    /// Extra Host header values allowed besides loopback names.
    pub allowed_hosts: Vec<String>,
}

/// Bounds that keep one client or one server from taking everything.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest JSON-RPC frame accepted, from clients and from servers.
    pub max_frame_bytes: usize,
    /// How long a client request may wait for its upstream before it is answered with an error.
    pub request_timeout: Duration,
    /// How long a merged list waits for each upstream before answering with what arrived.
    pub list_timeout: Duration,
    /// Live handshake-era sessions at most; `initialize` beyond it is refused.
    pub max_sessions: usize,
    /// A session unused this long is closed.
    pub session_idle_timeout: Duration,
    /// SSE events kept per reply stream for `Last-Event-ID` replay.
    pub replay_events: usize,
    /// Items per page of merged lists.
    pub page_size: usize,
    /// Messages queued toward one client before it is shed as not reading.
    pub client_queue: usize,
    /// How long an HTTP client may take to send a request's head (from the connection's
    /// start, or from the first byte of a later one); a connection that sends half of one and
    /// stalls is closed after it.
    pub header_read_timeout: Duration,
    /// How long an HTTP connection may sit between requests (no request being answered, no
    /// byte of the next one) before it is closed.
    pub idle_timeout: Duration,
    /// Open HTTP connections at most; one more is refused at once (503).
    pub max_connections: usize,
    /// Open HTTP connections from one client address at most (behind a proxy every client
    /// has the proxy's address: raise it there).
    pub max_connections_per_address: usize,
}

/// Whether clients share one upstream session or each gets its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One upstream session (or a pool of stdio processes) serves every client.
    Shared,
    /// One upstream session per client session, created lazily and reaped when idle.
    PerClient,
}

/// Which protocol era to speak to an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamEra {
    /// Probe with `server/discover`; fall back to the `initialize` handshake.
    Auto,
    /// Always the `initialize` handshake (2025-11-25).
    Legacy,
    /// Always 2026-07-28 stateless requests.
    Modern,
}

/// How Switchyard reaches a server.
#[derive(Debug, Clone)]
pub enum Transport {
    /// A child process speaking newline-delimited JSON-RPC on stdin and stdout.
    Stdio {
        /// The program to run (`<switchyard>` for this executable).
        command: PathBuf,
        /// Its arguments.
        args: Vec<String>,
        /// Environment variables set for it, on top of those it inherits.
        env: BTreeMap<String, String>,
        /// Its working directory, if not ours.
        cwd: Option<PathBuf>,
    },
    /// A remote Streamable HTTP server.
    Http {
        /// The server's MCP endpoint.
        url: String,
        /// Headers sent with every request to it (for example its own credentials).
        headers: BTreeMap<String, String>,
        /// Speak HTTP/2 to it from the first byte (cleartext, "prior knowledge"): one
        /// connection per upstream session carries every request at once.
        http2: bool,
    },
}

/// One upstream server (`[[servers]]`).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Its name: in logs, in errors, and unique in the file.
    pub name: String,
    /// Prepended to tool and prompt names as `<prefix>__<name>`; empty exposes names unprefixed.
    pub prefix: String,
    /// How it is reached.
    pub transport: Transport,
    /// One upstream session for all clients, or one per client.
    pub sharing: Sharing,
    /// Which protocol era to speak to it.
    pub era: UpstreamEra,
    /// Connections to a shared server (stdio processes, or HTTP upstream sessions), spread
    /// over the worker shards (member `i` on shard `i % workers`); each session is served by
    /// one member, on its own shard where that shard has any.
    pub pool: usize,
    /// How long a call to it may take (the global limit unless set).
    pub request_timeout: Duration,
    /// HTTP servers: keep-alive connections one upstream session (one pool member) opens at
    /// most; calls beyond them wait for a free one.
    pub max_connections: usize,
    /// Per-client upstream sessions at most (per-client sharing).
    pub max_clients: usize,
    /// A per-client upstream unused this long is stopped.
    pub idle_timeout: Duration,
    /// The `capabilities` a shared handshake-era upstream is told at `initialize` (a JSON
    /// object). Empty by default: a shared session cannot speak for every client, so it declares
    /// only what the operator opts into; each request is still delivered only to a client that
    /// declared the capability itself.
    pub shared_client_capabilities: String,
}

/// A configuration error, already worded for a person: `file:line: field: problem`.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    servers: Vec<RawServer>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListen {
    http: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_frame_bytes: Option<usize>,
    request_timeout_ms: Option<u64>,
    list_timeout_ms: Option<u64>,
    max_sessions: Option<usize>,
    session_idle_timeout_s: Option<u64>,
    replay_events: Option<usize>,
    page_size: Option<usize>,
    client_queue: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: Spanned<String>,
    prefix: Option<Spanned<String>>,
    command: Option<Spanned<String>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    /// `"demo"`: run this binary's own demo server (`switchyard demo-server`).
    builtin: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    sharing: Option<Spanned<String>>,
    era: Option<Spanned<String>>,
    pool: Option<Spanned<usize>>,
    request_timeout_ms: Option<u64>,
    max_connections: Option<Spanned<usize>>,
    http2: Option<Spanned<bool>>,
    max_clients: Option<usize>,
    idle_timeout_s: Option<u64>,
    client_capabilities: Option<Spanned<Vec<String>>>,
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The built-in default configuration.
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, "<built-in switchyard.toml>")
    }

    /// Parse and validate configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let at = |span: std::ops::Range<usize>, field: &str, msg: &str| {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            ConfigError(format!("{origin}:{line}: {field}: {msg}"))
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let msg = e.message().to_string();
            match line {
                Some(line) => ConfigError(format!("{origin}:{line}: {msg}")),
                None => ConfigError(format!("{origin}: {msg}")),
            }
        })?;

        let http = match &raw.listen.http {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(s) => {
                let addr: SocketAddr = s.get_ref().parse().map_err(|_| {
                    at(
                        s.span(),
                        "listen.http",
                        "expected an address like \"127.0.0.1:8080\"",
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(at(
                        s.span(),
                        "listen.http",
                        "non-loopback listeners require authentication, which this version does not have yet; \
                         bind a loopback address (127.0.0.1 or [::1])",
                    ));
                }
                addr
            }
        };
        let path = match &raw.listen.path {
            None => "/mcp".to_string(),
            Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
            Some(p) => return Err(at(p.span(), "listen.path", "must start with '/'")),
        };
        let l = &raw.limits;
        let limits = Limits {
            max_frame_bytes: l.max_frame_bytes.unwrap_or(4 * 1024 * 1024).max(1024),
            request_timeout: Duration::from_millis(l.request_timeout_ms.unwrap_or(60_000).max(1)),
            list_timeout: Duration::from_millis(l.list_timeout_ms.unwrap_or(5_000).max(1)),
            max_sessions: l.max_sessions.unwrap_or(10_000).max(1),
            session_idle_timeout: Duration::from_secs(
                l.session_idle_timeout_s.unwrap_or(3600).max(1),
            ),
            replay_events: l.replay_events.unwrap_or(256).max(1),
            page_size: l.page_size.unwrap_or(500).max(1),
            client_queue: l.client_queue.unwrap_or(1024).max(8),
            header_read_timeout: Duration::from_millis(
                l.header_read_timeout_ms.unwrap_or(10_000).max(1),
            ),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms.unwrap_or(60_000).max(1)),
            max_connections: l.max_connections.unwrap_or(16_384).max(1),
            max_connections_per_address: l.max_connections_per_address.unwrap_or(4_096).max(1),
        };

        let mut servers = Vec::new();
        let mut prefixes = BTreeMap::new();
        for (i, s) in raw.servers.into_iter().enumerate() {
            let field = |f: &str| format!("servers[{i}].{f}");
            let name = s.name.get_ref().clone();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(at(s.name.span(), &field("name"), "must match [a-z0-9-]+"));
            }
            if servers.iter().any(|o: &ServerConfig| o.name == name) {
                return Err(at(
                    s.name.span(),
                    &field("name"),
                    &format!("duplicate server name {name:?}"),
                ));
            }
            let prefix = match &s.prefix {
                None => name.clone(),
                Some(p) => {
                    let v = p.get_ref();
                    if !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                        || v.contains("__")
                    {
                        return Err(at(
                            p.span(),
                            &field("prefix"),
                            "must match [A-Za-z0-9-]* (no \"__\")",
                        ));
                    }
                    v.clone()
                }
            };
            if !prefix.is_empty() {
                if let Some(other) = prefixes.insert(prefix.clone(), name.clone()) {
                    return Err(at(
                        s.name.span(),
                        &field("prefix"),
                        &format!("prefix {prefix:?} is already used by server {other:?}"),
                    ));
                }
            }
            let transport = match (&s.command, &s.builtin, &s.url) {
                (Some(cmd), None, None) => Transport::Stdio {
                    command: PathBuf::from(cmd.get_ref()),
                    args: s.args.clone(),
                    env: s.env.clone(),
                    cwd: s.cwd.as_ref().map(PathBuf::from),
                },
                (None, Some(b), None) => {
                    if b.get_ref() != "demo" {
                        return Err(at(
                            b.span(),
                            &field("builtin"),
                            "the only built-in server is \"demo\"",
                        ));
                    }
                    Transport::Stdio {
                        command: PathBuf::from(BUILTIN_SELF),
                        args: vec!["demo-server".into()],
                        env: s.env.clone(),
                        cwd: None,
                    }
                }
                (None, None, Some(url)) => {
                    let u = url.get_ref();
                    if !u.starts_with("http://") {
                        return Err(at(
                            url.span(),
                            &field("url"),
                            "must be an http:// URL (https upstreams are not supported yet)",
                        ));
                    }
                    Transport::Http {
                        url: u.clone(),
                        headers: s.headers.clone(),
                        http2: s.http2.as_ref().is_some_and(|h| *h.get_ref()),
                    }
                }
                _ => return Err(at(
                    s.name.span(),
                    &format!("servers[{i}] ({name})"),
                    "needs exactly one of `command` (stdio), `builtin` or `url` (Streamable HTTP)",
                )),
            };
            let sharing = match s.sharing.as_ref().map(|v| v.get_ref().as_str()) {
                None | Some("shared") => Sharing::Shared,
                Some("per-client") => Sharing::PerClient,
                Some(_) => {
                    let span = s.sharing.as_ref().map(|v| v.span()).unwrap_or(0..0);
                    return Err(at(
                        span,
                        &field("sharing"),
                        "must be \"shared\" or \"per-client\"",
                    ));
                }
            };
            let era = match s.era.as_ref().map(|v| v.get_ref().as_str()) {
                None | Some("auto") => UpstreamEra::Auto,
                Some("legacy") => UpstreamEra::Legacy,
                Some("2026-07-28") => UpstreamEra::Modern,
                Some(_) => {
                    let span = s.era.as_ref().map(|v| v.span()).unwrap_or(0..0);
                    return Err(at(
                        span,
                        &field("era"),
                        "must be \"auto\", \"legacy\" or \"2026-07-28\"",
                    ));
                }
            };
            let pool = match &s.pool {
                None => 1,
                Some(p) if *p.get_ref() >= 1 && *p.get_ref() <= 64 => *p.get_ref(),
                Some(p) => return Err(at(p.span(), &field("pool"), "must be between 1 and 64")),
            };
            let max_connections = match &s.max_connections {
                None => DEFAULT_UPSTREAM_CONNECTIONS,
                Some(m) if !matches!(transport, Transport::Http { .. }) => {
                    return Err(at(
                        m.span(),
                        &field("max_connections"),
                        "is for `url` servers only",
                    ))
                }
                Some(m) if (1..=4096).contains(m.get_ref()) => *m.get_ref(),
                Some(m) => {
                    return Err(at(
                        m.span(),
                        &field("max_connections"),
                        "must be between 1 and 4096",
                    ))
                }
            };
            if let (Some(h), false) = (&s.http2, matches!(transport, Transport::Http { .. })) {
                return Err(at(h.span(), &field("http2"), "is for `url` servers only"));
            }
            let shared_client_capabilities = match &s.client_capabilities {
                None => "{}".to_string(),
                Some(c) if sharing == Sharing::PerClient => {
                    return Err(at(
                        c.span(),
                        &field("client_capabilities"),
                        "a per-client server declares its own client's capabilities; \
                         this list is for shared servers",
                    ))
                }
                Some(c) => {
                    let mut object = Vec::new();
                    for cap in c.get_ref() {
                        if !CLIENT_CAPABILITIES.contains(&cap.as_str()) {
                            return Err(at(
                                c.span(),
                                &field("client_capabilities"),
                                &format!(
                                    "unknown capability {cap:?}; the choices are {CLIENT_CAPABILITIES:?}"
                                ),
                            ));
                        }
                        object.push(format!("\"{cap}\":{{}}"));
                    }
                    object.sort();
                    object.dedup();
                    format!("{{{}}}", object.join(","))
                }
            };
            servers.push(ServerConfig {
                name,
                prefix,
                transport,
                sharing,
                era,
                pool,
                request_timeout: s
                    .request_timeout_ms
                    .map(Duration::from_millis)
                    .unwrap_or(limits.request_timeout),
                max_connections,
                max_clients: s.max_clients.unwrap_or(256).max(1),
                idle_timeout: Duration::from_secs(s.idle_timeout_s.unwrap_or(300).max(1)),
                shared_client_capabilities,
            });
        }
        Ok(Config {
            listen: Listen {
                http,
                path,
                allowed_origins: raw.listen.allowed_origins,
                allowed_hosts: raw.listen.allowed_hosts,
            },
            limits,
            servers,
        })
    }
}

/// Connections one HTTP upstream session opens at most, unless `max_connections` says.
pub const DEFAULT_UPSTREAM_CONNECTIONS: usize = 256;

/// The client capabilities a shared server may be told of (`client_capabilities`): the
/// server-to-client requests Switchyard can deliver to the client that caused them.
pub const CLIENT_CAPABILITIES: [&str; 3] = ["elicitation", "roots", "sampling"];

/// Stands for this executable in a stdio command (used by `builtin = "demo"`).
pub const BUILTIN_SELF: &str = "<switchyard>";

#[cfg(test)]
mod tests;
