use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use switchyard::config::Config;
use switchyard::router::Router;
use switchyard::{shard, transport};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: one MCP endpoint in front of many MCP servers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP over Streamable HTTP (the built-in default configuration if no --config).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override `listen.http` (loopback only), e.g. 127.0.0.1:0 for any free port.
        #[arg(long)]
        listen: Option<String>,
        /// Worker shards (default: one per core): each a thread that accepts its own
        /// connections and runs its share of the upstream actors.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Serve one client over stdin/stdout, as a desktop host launches an MCP server.
    Stdio {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and exit.
    CheckConfig { file: PathBuf },
    /// Run the built-in demo MCP server on stdin/stdout.
    DemoServer,
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    let config = match path {
        Some(p) => Config::load(p),
        None => Config::default_config(),
    }
    .map_err(|e| e.to_string())?;
    Ok(config)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr: stdout belongs to the protocol in stdio mode.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("switchyard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::CheckConfig { file } => {
                let c = load(Some(&file))?;
                println!(
                    "{}: ok ({} servers, listening on {})",
                    file.display(),
                    c.servers.len(),
                    c.listen.http
                );
                Ok(())
            }
            Command::DemoServer => {
                switchyard::demo::run().await;
                Ok(())
            }
            Command::Stdio { config } => {
                let router = Router::new(load(config.as_ref())?);
                transport::stdio::serve(router.clone(), tokio::io::stdin(), tokio::io::stdout())
                    .await;
                router.shutdown().await;
                Ok(())
            }
            Command::Serve {
                config,
                listen,
                workers,
            } => serve(load(config.as_ref())?, listen, workers).await,
        }
    });
    // A write to a client that stopped reading (a shed stdio client) may be stuck in a
    // blocking thread for good: do not wait for it to exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    mut config: Config,
    listen: Option<String>,
    workers: Option<usize>,
) -> Result<(), String> {
    if let Some(addr) = listen {
        let addr: std::net::SocketAddr = addr
            .parse()
            .map_err(|_| format!("--listen {addr}: not an address"))?;
        if !addr.ip().is_loopback() {
            return Err(
                "--listen: only loopback addresses are allowed without authentication".into(),
            );
        }
        config.listen.http = addr;
    }
    let workers = workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256);
    let listeners = shard::listeners(config.listen.http, workers)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen.http))?;
    let local = listeners[0].local_addr().map_err(|e| e.to_string())?;
    let shards = shard::Shards::start(workers).map_err(|e| format!("worker shards: {e}"))?;
    let path = config.listen.path.clone();
    let router = Router::with_shards(config, shards.handles().to_vec());
    let caps = transport::http::hygiene::ConnectionCaps::new(&router.config.limits, workers);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut fronts = Vec::new();
    let mut accepting = Vec::new();
    for (listener, shard) in listeners.into_iter().zip(shards.handles()) {
        let front = transport::http::HttpFront::with_caps(router.clone(), caps.clone());
        fronts.push(front.clone());
        let mut stopped = stopped.clone();
        accepting.push(shard.spawn(async move {
            // Registered with this shard's own reactor, so its connections are served here.
            match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => {
                    let stop = async move {
                        let _ = stopped.wait_for(|s| *s).await;
                    };
                    transport::http::serve(front, l, stop).await;
                }
                Err(e) => tracing::error!("a worker shard cannot listen: {e}"),
            }
        }));
    }
    // Announced on stdout so scripts and tests can find a port chosen with `--listen 127.0.0.1:0`.
    println!("switchyard listening on http://{local}{path}");
    tracing::info!(workers, "listening on http://{local}{path}");

    let reaper = {
        let router = router.clone();
        tokio::spawn(async move {
            let every = router.reap_interval();
            loop {
                tokio::time::sleep(every).await;
                router.reap_idle();
            }
        })
    };
    shutdown_signal().await;
    let _ = stop.send(true);
    for a in accepting {
        let _ = a.await;
    }
    let in_flight = || fronts.iter().map(|f| f.in_flight()).sum::<usize>();
    tracing::info!("shutting down: draining {} in-flight requests", in_flight());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    reaper.abort();
    router.shutdown().await;
    drop(fronts);
    drop(router);
    // Off the runtime: a shard's thread is joined, which must not block a runtime thread.
    tokio::task::spawn_blocking(move || shards.stop())
        .await
        .map_err(|e| format!("worker shards: {e}"))?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
