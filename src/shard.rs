//! Worker shards: threads that each run a current-thread runtime. A shard accepts its own
//! connections and runs the upstream actors assigned to it, so a request served there
//! (its connection's task, the actor it goes to, that actor's reader) wakes tasks on one
//! thread, where a wake-up costs a fraction of one across threads.

use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The shard the calling thread is, if it is one.
pub fn current() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// Running shards: a runtime handle each, to spawn onto it.
pub struct Shards {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Shards {
    /// Start `n` shards (at least one).
    pub fn start(n: usize) -> std::io::Result<Shards> {
        let mut shards = Shards {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for k in 0..n.max(1) {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("switchyard-shard-{k}"))
                .spawn(move || {
                    CURRENT.with(|c| c.set(Some(k)));
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = handle_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = handle_tx.send(Ok(rt.handle().clone()));
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                    // A write stuck in a blocking thread (a client that stopped reading) must
                    // not hold the process at exit.
                    rt.shutdown_timeout(Duration::from_millis(500));
                })?;
            let handle = handle_rx
                .recv()
                .map_err(|_| std::io::Error::other("a shard thread ended at start"))??;
            shards.handles.push(handle);
            shards.stops.push(stop_tx);
            shards.threads.push(thread);
        }
        Ok(shards)
    }

    /// A handle on each shard's runtime, by shard number.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stop every shard (tasks still running on it are dropped) and wait for its thread.
    pub fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// `n` listening sockets on `addr` (the first one's port, if `addr` asks for any), each for
/// one shard: the kernel spreads new connections over them (`SO_REUSEPORT`).
pub fn listeners(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    use socket2::{Domain, Socket, Type};
    let mut out: Vec<std::net::TcpListener> = Vec::new();
    let mut at = addr;
    for _ in 0..n.max(1) {
        let socket = Socket::new(Domain::for_address(at), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&at.into())?;
        socket.listen(1024)?;
        let listener: std::net::TcpListener = socket.into();
        at = listener.local_addr()?;
        out.push(listener);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_knows_itself_and_runs_what_is_spawned_on_it() {
        let shards = Shards::start(3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(current(), None, "the test thread is no shard");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let seen: Vec<Option<usize>> = rt.block_on(async {
            let mut seen = Vec::new();
            for h in shards.handles() {
                seen.push(h.spawn(async { current() }).await.ok().flatten());
            }
            seen
        });
        assert_eq!(seen, vec![Some(0), Some(1), Some(2)]);
        shards.stop();
    }

    #[test]
    fn listeners_share_one_port() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"));
        let ls = listeners(addr, 3).unwrap_or_else(|e| panic!("{e}"));
        let ports: Vec<u16> = ls
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .map(|a| a.port())
            .collect();
        assert_eq!(ports.len(), 3);
        assert!(ports.iter().all(|p| *p == ports[0] && *p != 0), "{ports:?}");
    }
}
