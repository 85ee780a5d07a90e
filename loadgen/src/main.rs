//! `switchyard-loadgen`: load for MCP servers and gateways, and a fast mock MCP server.

mod client;
mod cpu;
mod hold;
mod mock;
mod run;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use client::{Era, Request, Target};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Load-test an MCP server or gateway over Streamable HTTP or stdio, in the handshake era
/// or the 2026-07-28 stateless one; or run a fast mock MCP server to test a gateway against.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum EraArg {
    /// initialize handshake and sessions (2025-11-25)
    Legacy,
    /// stateless requests with `_meta` and Mcp-* headers (2026-07-28)
    Modern,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp
    #[arg(long, conflicts_with = "stdio")]
    url: Option<String>,
    /// A stdio server command line (split on spaces), spawned `--processes` times
    #[arg(long)]
    stdio: Option<String>,
    #[arg(long, value_enum, default_value = "legacy")]
    era: EraArg,
    /// Concurrent sessions
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Seconds over which sessions connect
    #[arg(long, default_value_t = 1.0)]
    ramp_up: f64,
    /// Seconds of load before measuring
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Seconds measured
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Total requests per second (open loop, latency from intended send time); closed loop if absent
    #[arg(long)]
    rate: Option<f64>,
    /// Request mix as kind=weight: call, list (tools/list), read (resources/read), ping
    #[arg(long, default_value = "call=1")]
    mix: String,
    /// Tool for `call`
    #[arg(long, default_value = "echo")]
    tool: String,
    /// Arguments for `call` (JSON object)
    #[arg(long, default_value = r#"{"text":"hello"}"#)]
    args: String,
    /// Resource URI for `read`
    #[arg(long, default_value = "mock://data")]
    resource: String,
    /// Per-request time limit in milliseconds
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Do not check that each reply carries its request's id (for fixed-body responders)
    #[arg(long)]
    no_check: bool,
    /// Stdio server processes to spread sessions over
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Write the report as JSON to this file ("-" for stdout)
    #[arg(long)]
    json: Option<String>,
    /// No live progress line
    #[arg(long)]
    quiet: bool,
    /// Worker threads of the load generator itself (default: one per core); its report says
    /// how busy they were, so a run can show the load generator was not the bottleneck
    #[arg(long)]
    threads: Option<usize>,
    /// HTTP connections the sessions share, taking turns on each (default: one per
    /// session), as a host serving many users over a small pool would
    #[arg(long)]
    connections: Option<usize>,
}

#[derive(Subcommand)]
enum Command {
    /// Send load and report throughput and latency percentiles.
    Run(Box<RunArgs>),
    /// A fast mock MCP server (tools echo, sized, sleep; both eras).
    MockServer {
        #[arg(long, conflicts_with = "http")]
        stdio: bool,
        /// Listen address for Streamable HTTP (loopback), e.g. 127.0.0.1:9000
        #[arg(long)]
        http: Option<SocketAddr>,
    },
    /// Open many handshake sessions (and optionally one GET stream each) and hold them, to
    /// measure a server's memory at scale. Prints "holding ..." once all are open.
    Hold {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Also open one GET (SSE) stream per session, each on its own connection
        #[arg(long)]
        streams: bool,
        /// Connections used to initialize the sessions
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// How long to hold them
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
    /// A minimal HTTP responder answering every request with one fixed body: the floor of one HTTP hop.
    HopServer {
        #[arg(long)]
        http: SocketAddr,
    },
}

fn mix(spec: &str, tool: &str, args: &str, resource: &str) -> Result<Vec<(Request, u32)>, String> {
    let args: serde_json::Value = serde_json::from_str(args).map_err(|e| format!("--args: {e}"))?;
    let mut out = Vec::new();
    for part in spec.split(',') {
        let (kind, weight) = part.split_once('=').unwrap_or((part, "1"));
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("--mix: bad weight in {part:?}"))?;
        let req = match kind.trim() {
            "call" => Request {
                method: "tools/call",
                params: serde_json::json!({"name": tool, "arguments": args}).to_string(),
                name: Some(tool.to_string()),
            },
            "list" => Request {
                method: "tools/list",
                params: "{}".into(),
                name: None,
            },
            "read" => Request {
                method: "resources/read",
                params: serde_json::json!({"uri": resource}).to_string(),
                name: Some(resource.to_string()),
            },
            "ping" => Request {
                method: "ping",
                params: "{}".into(),
                name: None,
            },
            other => {
                return Err(format!(
                    "--mix: unknown kind {other:?} (call, list, read, ping)"
                ))
            }
        };
        out.push((req, weight));
    }
    Ok(out)
}

fn loopback(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!("{addr}: listen on a loopback address only"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(a) => a.threads,
        _ => None,
    }
    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(run_command(cli, threads)),
        Err(e) => {
            eprintln!("switchyard-loadgen: no runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_command(cli: Cli, threads: usize) -> ExitCode {
    let result: Result<(), String> = async {
        match cli.command {
            Command::MockServer { stdio: true, .. } => {
                mock::serve_stdio().await;
                Ok(())
            }
            Command::MockServer {
                http: Some(addr), ..
            } => {
                loopback(&addr)?;
                mock::serve_http(addr).await.map_err(|e| e.to_string())
            }
            Command::MockServer { .. } => Err("mock-server needs --stdio or --http ADDR".into()),
            Command::Hold {
                url,
                sessions,
                streams,
                connections,
                seconds,
            } => {
                let uri = url.parse().map_err(|e| format!("--url: {e}"))?;
                hold::hold(uri, sessions, streams, connections, seconds).await
            }
            Command::HopServer { http } => {
                loopback(&http)?;
                mock::serve_hop(http).await.map_err(|e| e.to_string())
            }
            Command::Run(a) => {
                let RunArgs {
                    url,
                    stdio,
                    era,
                    sessions,
                    ramp_up,
                    warmup,
                    duration,
                    rate,
                    mix: mix_spec,
                    tool,
                    args,
                    resource,
                    timeout_ms,
                    no_check,
                    processes,
                    json,
                    quiet,
                    threads: _,
                    connections,
                } = *a;
                let target = match (url, stdio) {
                    (Some(u), None) => Target::Http {
                        uri: u.parse().map_err(|e| format!("--url: {e}"))?,
                    },
                    (None, Some(cmd)) => {
                        let mut parts = cmd.split_whitespace().map(str::to_string);
                        let program = parts.next().ok_or("--stdio: empty command")?;
                        Target::Stdio {
                            program,
                            args: parts.collect(),
                        }
                    }
                    _ => return Err("give --url or --stdio".into()),
                };
                if rate.is_some_and(|r| r <= 0.0) {
                    return Err("--rate must be positive".into());
                }
                let secs = |s: f64| Duration::from_secs_f64(s.max(0.0));
                let cfg = run::RunConfig {
                    target,
                    era: match era {
                        EraArg::Legacy => Era::Legacy,
                        EraArg::Modern => Era::Modern,
                    },
                    sessions: sessions.max(1),
                    ramp_up: secs(ramp_up),
                    warmup: secs(warmup),
                    duration: secs(duration.max(0.1)),
                    rate,
                    mix: mix(&mix_spec, &tool, &args, &resource)?,
                    timeout: Duration::from_millis(timeout_ms.max(1)),
                    check_ids: !no_check,
                    processes,
                    quiet,
                    threads,
                    connections: connections.map(|n| n.max(1)),
                };
                let report = run::run(cfg).await?;
                report.print();
                match json.as_deref() {
                    Some("-") => println!("{}", report.json()),
                    Some(path) => std::fs::write(path, report.json().to_string())
                        .map_err(|e| format!("{path}: {e}"))?,
                    None => {}
                }
                if report.ok == 0 {
                    return Err("no request succeeded".into());
                }
                Ok(())
            }
        }
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
