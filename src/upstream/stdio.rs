//! A stdio upstream: a child process spawned from configuration, restarted with backoff when
//! it exits. Requests are pipelined (many in flight); writes are batched by a writer task so
//! the actor never blocks on a full pipe and never stops reading the child's output.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

use super::{hold, reject, ActorParts, Backoff, Cmd, Pendings, UpstreamInfo, Wire, INIT_TIMEOUT};
use crate::config::{Transport, UpstreamEra, BUILTIN_SELF};
use crate::protocol::modern;
use crate::wire::envelope::code;
use crate::wire::frame::{Line, LineDecoder};
use crate::wire::{json, Envelope, Kind};

/// Frames queued toward the child's stdin before callers are told the server is overloaded.
const WRITE_QUEUE: usize = 4096;

/// The actor of one stdio server process: spawns it, writes to its stdin, reads its stdout.
pub struct StdioActor {
    /// Its configuration, mailbox and reporting.
    pub parts: ActorParts,
    /// The running child speaks 2026-07-28 (found by the handshake).
    pub modern: bool,
}

/// How long a `server/discover` probe may go unanswered before the server counts as legacy.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

enum Ended {
    /// The child exited or closed stdout; restart it.
    Exited(String),
    /// Our mailbox closed: the router is shutting down.
    Shutdown,
}

impl StdioActor {
    /// Serves the mailbox until shutdown, restarting the process with backoff.
    pub async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            let started = Instant::now();
            let why = match self.spawn() {
                Ok(child) => match self.serve(child).await {
                    Ended::Shutdown => {
                        self.parts.rx.close();
                        return;
                    }
                    Ended::Exited(why) => why,
                },
                Err(e) => format!("cannot start: {e}"),
            };
            if !backoff.wait(&mut self.parts, started, &why).await {
                return;
            }
        }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } = &self.parts.config.transport
        else {
            return Err(std::io::Error::other("not a stdio server"));
        };
        let program = if command.as_os_str() == BUILTIN_SELF {
            std::env::current_exe()?
        } else {
            command.clone()
        };
        let mut cmd = Command::new(&program);
        cmd.args(args)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.kill_on_drop(true);
        if let Some(cwd) = cwd {
            cmd.current_dir(cwd);
        }
        let child = cmd.spawn()?;
        tracing::info!(server = %self.parts.config.name, program = %program.display(), pid = child.id(), "spawned upstream");
        Ok(child)
    }

    async fn serve(&mut self, mut child: Child) -> Ended {
        let name = self.parts.config.name.clone();
        let (Some(stdin), Some(mut stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Ended::Exited("no pipes".into());
        };
        tokio::spawn(log_stderr(name.clone(), stderr));
        let (wtx, wrx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
        let writer = tokio::spawn(crate::lines::write_lines(stdin, wrx));

        let mut pendings = Pendings::new(
            self.parts.handle.shared.clone(),
            self.parts.config.request_timeout,
        );
        let mut decoder = LineDecoder::new(self.parts.max_frame);
        // The handshake: `server/discover` first unless configured legacy (a 2026-07-28 server
        // answers it; a legacy one errs or stays silent), then `initialize` if need be.
        let era = self.parts.config.era;
        let mut probing = era != UpstreamEra::Legacy;
        let (mut init_rx, mut init_deadline) = if probing {
            let limit = if era == UpstreamEra::Modern {
                INIT_TIMEOUT
            } else {
                PROBE_TIMEOUT
            };
            (
                self.start_discover(&mut pendings, &wtx),
                tokio::time::Instant::now() + limit,
            )
        } else {
            (
                self.start_initialize(&mut pendings, &wtx),
                tokio::time::Instant::now() + INIT_TIMEOUT,
            )
        };
        let mut ready = false;
        // Calls that arrive during the handshake wait here (bounded by the mailbox behind it).
        let mut held: Vec<Cmd> = Vec::new();

        let ended = loop {
            let next_deadline = pendings.next_deadline().map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                n = stdout.read_buf(decoder.buffer()) => {
                    match n {
                        Ok(0) | Err(_) => break Ended::Exited("stdout closed".into()),
                        Ok(_) => {}
                    }
                    while let Some(line) = decoder.next_line() {
                        self.inbound(line, &mut pendings, &wtx);
                    }
                }
                init = &mut init_rx, if !ready => {
                    let result = init.ok().and_then(|r| r.ok());
                    let text = result.as_ref().map(|r| String::from_utf8_lossy(r).into_owned());
                    let info = match (probing, text) {
                        (true, Some(t)) => UpstreamInfo::from_discover(&t),
                        (false, Some(t)) => UpstreamInfo::from_result(&t),
                        (_, None) => Err("the server refused the handshake".into()),
                    };
                    match info {
                        Ok(info) => {
                            tracing::info!(server = %name, version = %info.protocol_version, "upstream ready");
                            self.modern = info.is_modern();
                            self.parts.handle.shared.info.store(Some(Arc::new(info)));
                            ready = true;
                            if !self.modern {
                                let _ = wtx.try_send(json::message(None, "notifications/initialized", None));
                                for frame in (self.parts.replay)() {
                                    let _ = wtx.try_send(frame);
                                }
                            }
                            self.parts.events.ready(&self.parts.handle);
                            for cmd in std::mem::take(&mut held) {
                                self.command(cmd, &mut pendings, &wtx);
                            }
                        }
                        Err(e) if probing && era != UpstreamEra::Modern => {
                            tracing::debug!(server = %name, "not a 2026-07-28 server ({e}); using initialize");
                            probing = false;
                            init_rx = self.start_initialize(&mut pendings, &wtx);
                            init_deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
                        }
                        Err(e) => break Ended::Exited(e),
                    }
                }
                _ = tokio::time::sleep_until(init_deadline), if !ready => {
                    if probing && era != UpstreamEra::Modern {
                        // Silence is a legacy server's answer too.
                        probing = false;
                        init_rx = self.start_initialize(&mut pendings, &wtx);
                        init_deadline = tokio::time::Instant::now() + INIT_TIMEOUT;
                        continue;
                    }
                    break Ended::Exited("no answer to the handshake".into());
                }
                _ = async { match next_deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                    pendings.expire(Instant::now());
                    self.carry_out(&mut pendings, &wtx);
                }
                cmd = self.parts.rx.recv() => {
                    let Some(cmd) = cmd else { break Ended::Shutdown };
                    if matches!(cmd, Cmd::Shutdown) { break Ended::Shutdown }
                    // Until the handshake is done only replies to the server's own requests may go.
                    if ready || matches!(cmd, Cmd::Reply(_)) {
                        self.command(cmd, &mut pendings, &wtx);
                    } else {
                        hold(&mut held, cmd, &name);
                    }
                    // Drain what else is queued so the writer gets one batch.
                    let mut stop = false;
                    while let Ok(cmd) = self.parts.rx.try_recv() {
                        if matches!(cmd, Cmd::Shutdown) { stop = true; break }
                        if ready { self.command(cmd, &mut pendings, &wtx) } else { hold(&mut held, cmd, &name) }
                    }
                    if stop { break Ended::Shutdown }
                }
            }
        };
        let why = match &ended {
            Ended::Exited(w) => w.clone(),
            Ended::Shutdown => "the router is shutting down".into(),
        };
        pendings.fail_all(&format!(
            "the server exited while the request was in flight ({why})"
        ));
        self.carry_out(&mut pendings, &wtx);
        for cmd in held {
            reject(cmd, &name, code::UPSTREAM_UNAVAILABLE, "the server exited");
        }
        drop(wtx);
        // Close stdin so the child can exit on its own, then make sure it does.
        let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
        match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
            Ok(Ok(status)) => tracing::info!(server = %name, %status, "upstream exited"),
            _ => {
                let _ = child.kill().await;
            }
        }
        ended
    }

    fn start_initialize(
        &self,
        pendings: &mut Pendings,
        wtx: &mpsc::Sender<Bytes>,
    ) -> oneshot::Receiver<super::InternalResult> {
        let (tx, rx) = oneshot::channel();
        let params = super::initialize_params(&self.parts.client_capabilities);
        let _ = wtx.try_send(
            pendings
                .start_internal("initialize", Some(params.as_bytes()), tx, None)
                .1,
        );
        rx
    }

    fn start_discover(
        &self,
        pendings: &mut Pendings,
        wtx: &mpsc::Sender<Bytes>,
    ) -> oneshot::Receiver<super::InternalResult> {
        let (tx, rx) = oneshot::channel();
        let (_, frame) = pendings.start_internal("server/discover", Some(b"{}"), tx, None);
        let frame = modern::upstream_request(&frame, b"{}")
            .map(|r| r.frame)
            .unwrap_or(frame);
        let _ = wtx.try_send(frame);
        rx
    }

    fn command(&self, cmd: Cmd, pendings: &mut Pendings, wtx: &mpsc::Sender<Bytes>) {
        pendings.command(cmd, Instant::now());
        self.carry_out(pendings, wtx);
    }

    /// Carry out what the id map decided; what is for the server goes into its stdin.
    fn carry_out(&self, pendings: &mut Pendings, wtx: &mpsc::Sender<Bytes>) {
        let modern = self.modern;
        let name = &self.parts.config.name;
        let mut wire = |p: &Pendings, w: Wire| {
            let Wire::Write { frame, uid } = w else {
                return; // the cancellation written before it is all a stdio server needs
            };
            // A 2026-07-28 server needs `_meta` on every request (with the caller's
            // capabilities); a legacy one must not see a 2026 client's envelope.
            let frame = match uid {
                Some(uid) if modern => modern::upstream_request(&frame, &p.caps_of(uid))
                    .map(|r| r.frame)
                    .unwrap_or(frame),
                Some(uid) if p.from_modern_client(uid) => modern::legacy_request(&frame),
                _ => frame,
            };
            if wtx.try_send(frame).is_err() {
                tracing::warn!(server = %name, "write queue full; the server is not reading its input");
            }
        };
        let (handle, events) = (&self.parts.handle, self.parts.events.as_ref());
        super::effects::carry_out(pendings, handle, events, &mut wire);
    }

    fn inbound(&self, line: Line, pendings: &mut Pendings, wtx: &mpsc::Sender<Bytes>) {
        let name = &self.parts.config.name;
        let frame = match line {
            Line::Frame(f) => f,
            Line::Oversized { len } => {
                tracing::warn!(server = %name, len, "upstream frame over the size limit dropped");
                return;
            }
        };
        if crate::wire::envelope::is_batch(&frame) {
            match crate::wire::envelope::split_batch(&frame) {
                Ok(parts) => parts
                    .into_iter()
                    .for_each(|p| self.inbound(Line::Frame(p), pendings, wtx)),
                Err(e) => tracing::warn!(server = %name, "bad batch from upstream: {}", e.message),
            }
            return;
        }
        match Envelope::parse(frame) {
            Ok(env) => {
                if env.kind == Kind::Request && env.id.is_none() {
                    return;
                }
                pendings.inbound(env, None);
                self.carry_out(pendings, wtx);
            }
            Err(e) => {
                tracing::warn!(server = %name, "garbage from upstream dropped: {}", e.message)
            }
        }
    }
}

async fn log_stderr(server: String, stderr: tokio::process::ChildStderr) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(server = %server, "stderr: {line}");
    }
}
