//! The HTTP/1.1 connections of one upstream session, kept alive and driven inside the
//! actor's own task: a call takes an idle connection (or opens one, up to
//! `max_connections`, or waits for one), and its exchange, the connection's I/O and the
//! actor's bookkeeping are all polled by the actor itself. No task per request and no
//! wake-up of another thread on the way (issue 10); the actor's shard serves the call
//! start to end. Rare exchanges (the handshake, a resumed stream, the GET stream, the
//! DELETE) take a connection of their own with [`send_once`].
//!
//! With `http2 = true` the session speaks HTTP/2 from the first byte (cleartext, prior
//! knowledge) on one connection that carries every request at once (hyper's client holds
//! back those beyond the server's `SETTINGS_MAX_CONCURRENT_STREAMS`), so `max_connections`
//! does not apply; a connection that closes is replaced by the next request.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;

use futures_util::future::{AbortHandle, Abortable};
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::*;

/// A connection that does not connect (TCP and the HTTP/1 handshake) within this is given up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an upstream's requests go: resolved from its URL once.
pub(super) struct Target {
    host: String,
    port: u16,
    /// The `Host` header.
    pub(super) authority: HeaderValue,
    /// The request target, in origin form (path and query) for HTTP/1.1, absolute for
    /// HTTP/2 (whose `:authority` and `:scheme` come from it).
    pub(super) path: Uri,
    /// Speak HTTP/2 (prior knowledge).
    pub(super) http2: bool,
}

impl Target {
    /// From an `http://` URL (the configuration admits no other).
    pub(super) fn from_uri(uri: &Uri, http2: bool) -> Result<Target, String> {
        let host = uri.host().ok_or("the URL has no host")?;
        let authority = uri.authority().ok_or("the URL has no host")?;
        Ok(Target {
            // `[::1]` in a URL, `::1` to connect to.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: uri.port_u16().unwrap_or(80),
            authority: HeaderValue::try_from(authority.as_str()).map_err(|e| e.to_string())?,
            path: if http2 {
                uri.clone()
            } else {
                uri.path_and_query()
                    .map_or("/", |p| p.as_str())
                    .parse()
                    .map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?
            },
            http2,
        })
    }

    async fn connect(&self) -> Result<(Sender, Driver), String> {
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| {
            let (host, port) = (&self.host, self.port);
            format!("no connection to {host}:{port} within {CONNECT_TIMEOUT:?}")
        })?
        .map_err(|e| format!("cannot connect to {}:{}: {e}", self.host, self.port))?;
        // Small frames both ways: Nagle would hold a request back for the previous one's ACK.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(tcp);
        let timed_out = |_| "the HTTP handshake timed out".to_string();
        if self.http2 {
            // The executor spawns on the current runtime: the shard's own thread.
            let (sender, conn) =
                tokio::time::timeout(CONNECT_TIMEOUT, http2::handshake(TokioExecutor::new(), io))
                    .await
                    .map_err(timed_out)?
                    .map_err(|e| e.to_string())?;
            let driver: Driver = Box::pin(async move {
                let _ = conn.await;
            });
            return Ok((Sender::H2(sender), driver));
        }
        let (sender, conn) = tokio::time::timeout(CONNECT_TIMEOUT, http1::handshake(io))
            .await
            .map_err(timed_out)?
            .map_err(|e| e.to_string())?;
        let driver: Driver = Box::pin(async move {
            let _ = conn.await;
        });
        Ok((Sender::H1(sender), driver))
    }
}

/// A connection's sending half: HTTP/1.1 carries one request at a time, HTTP/2 any number.
pub(super) enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    fn is_ready(&self) -> bool {
        match self {
            Sender::H1(s) => s.is_ready(),
            Sender::H2(s) => s.is_ready(),
        }
    }

    /// Another handle on the same HTTP/2 connection (`None` for HTTP/1.1).
    fn share(&self) -> Option<Sender> {
        match self {
            Sender::H1(_) => None,
            Sender::H2(s) => Some(Sender::H2(s.clone())),
        }
    }

    async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, TrySendError<Request<Full<Bytes>>>> {
        match self {
            Sender::H1(s) => s.try_send_request(req).await,
            Sender::H2(s) => s.try_send_request(req).await,
        }
    }

    /// Whether it can take another request once this one is done (an HTTP/1.1 connection
    /// once its response has been read, and the server did not close it).
    async fn reusable(&mut self) -> bool {
        match self {
            Sender::H1(s) => s.ready().await.is_ok(),
            Sender::H2(_) => false,
        }
    }
}

/// What drives a connection's I/O; ends when the connection closes.
type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;
type Work = Pin<Box<dyn Future<Output = Event> + Send>>;

/// One request for the upstream, waiting for a connection or on one.
pub(super) struct Job {
    req: Request<Full<Bytes>>,
    uid: Option<u64>,
    /// Already handed to a connection that closed before writing it.
    retried: bool,
}

/// What a piece of the connections' work ended with.
pub(super) enum Event {
    /// A new connection is up, or could not be had (boxed: the driver is large, and rare).
    Connected(Box<Result<(Sender, Driver), String>>),
    /// A connection closed (its driver ended).
    Closed,
    /// An exchange ended; its connection comes back if it can take another request, and its
    /// request comes back if the connection closed before writing it.
    Done {
        uid: Option<u64>,
        sender: Option<Sender>,
        retry: Option<Box<Job>>,
    },
    /// A 2026-07-28 request was abandoned: its stream (and connection) closed.
    Aborted,
    /// A request that could not be sent at all.
    Failed { uid: Option<u64>, why: String },
}

/// The connections of one upstream session and the requests on or waiting for them.
pub(super) struct Connections {
    /// Shared by every exchange (one count per call, not one per field).
    conn: Arc<Conn>,
    reports: mpsc::Sender<Report>,
    /// Idle connections, the most recently used last (taken first: the others can age out).
    idle: Vec<Sender>,
    /// Connections open or being opened.
    open: usize,
    max: usize,
    waiting: VecDeque<Job>,
    work: FuturesUnordered<Work>,
    /// A 2026-07-28 request's exchange, by our id: abandoning it closes its stream.
    aborts: HashMap<u64, AbortHandle>,
    /// Connections opened so far (logged when the session ends).
    pub(super) opened: u64,
}

impl Connections {
    pub(super) fn new(conn: Conn, reports: mpsc::Sender<Report>, max: usize) -> Connections {
        Connections {
            conn: Arc::new(conn),
            reports,
            idle: Vec::new(),
            open: 0,
            max: max.max(1),
            waiting: VecDeque::new(),
            work: FuturesUnordered::new(),
            aborts: HashMap::new(),
            opened: 0,
        }
    }

    /// Whether the session speaks 2026-07-28.
    pub(super) fn modern(&self) -> bool {
        self.conn.modern
    }

    /// POST a frame for request `uid` (or a message that is no request).
    pub(super) fn post(&mut self, frame: Bytes, uid: Option<u64>, caps: &[u8], strip: bool) {
        match request(&self.conn, hyper::Method::POST, frame, caps, strip) {
            Ok(req) => self.submit(Job {
                req,
                uid,
                retried: false,
            }),
            Err(why) => self
                .work
                .push(Box::pin(std::future::ready(Event::Failed { uid, why }))),
        }
    }

    fn submit(&mut self, job: Job) {
        while let Some(sender) = self.idle.pop() {
            if sender.is_ready() {
                // An HTTP/2 connection stays where it is for the next request too.
                if let Some(shared) = sender.share() {
                    self.idle.push(sender);
                    return self.start(job, shared);
                }
                return self.start(job, sender);
            }
            // Closed while idle; its driver's end has been or will be counted.
        }
        self.waiting.push_back(job);
        if self.open < self.max_open() {
            self.connect();
        }
    }

    /// Connections open at most: one with HTTP/2, which carries every request at once.
    fn max_open(&self) -> usize {
        if self.conn.target.http2 {
            1
        } else {
            self.max
        }
    }

    fn connect(&mut self) {
        self.open += 1;
        self.opened += 1;
        let target = self.conn.target.clone();
        self.work.push(Box::pin(async move {
            Event::Connected(Box::new(target.connect().await))
        }));
    }

    fn start(&mut self, job: Job, sender: Sender) {
        let uid = job.uid;
        let exchange = exchange_on(self.conn.clone(), self.reports.clone(), sender, job);
        match uid {
            Some(uid) if self.conn.modern => {
                let (abort, registration) = AbortHandle::new_pair();
                self.aborts.insert(uid, abort);
                self.work.push(Box::pin(async move {
                    Abortable::new(exchange, registration)
                        .await
                        .unwrap_or(Event::Aborted)
                }));
            }
            _ => self.work.push(Box::pin(exchange)),
        }
    }

    /// A free connection: to the oldest waiting request, else idle. (A new HTTP/2 one takes
    /// every waiting request at once.)
    fn give(&mut self, sender: Sender) {
        if let Sender::H2(h2) = &sender {
            while let Some(job) = self.waiting.pop_front() {
                self.start(job, Sender::H2(h2.clone()));
            }
            return self.idle.push(sender);
        }
        match self.waiting.pop_front() {
            Some(job) => self.start(job, sender),
            None => self.idle.push(sender),
        }
    }

    /// Request `uid` was abandoned: a waiting one is dropped; a 2026-07-28 one on its way
    /// has its stream closed, which is how that era cancels over HTTP.
    pub(super) fn cancel(&mut self, uid: u64) {
        if let Some(abort) = self.aborts.remove(&uid) {
            abort.abort();
        }
        self.waiting.retain(|job| job.uid != Some(uid));
    }

    /// The next piece of work that ends (pending while there is none).
    pub(super) async fn next(&mut self) -> Event {
        match self.work.next().await {
            Some(event) => event,
            None => std::future::pending().await,
        }
    }

    /// Account for what ended; returns what the actor must learn of it.
    pub(super) fn ended(&mut self, event: Event) -> Vec<Report> {
        match event {
            Event::Connected(connected) => match *connected {
                Ok((sender, driver)) => {
                    self.work.push(Box::pin(async move {
                        let _ = driver.await;
                        Event::Closed
                    }));
                    self.give(sender);
                }
                Err(why) => {
                    self.open -= 1;
                    // With no connection left to wait for, what waits fails now.
                    if self.open == 0 {
                        tracing::warn!(server = %self.conn.shared.name, "{why}");
                        return self
                            .waiting
                            .drain(..)
                            .map(|job| Report::Failed {
                                uid: job.uid,
                                why: why.clone(),
                                expired: false,
                            })
                            .collect();
                    }
                }
            },
            Event::Closed => {
                self.open -= 1;
                // An HTTP/2 connection is kept idle while in use: the closed one goes.
                self.idle.retain(Sender::is_ready);
                if !self.waiting.is_empty() && self.open < self.max_open() {
                    self.connect();
                }
            }
            Event::Done { uid, sender, retry } => {
                if let Some(uid) = uid {
                    self.aborts.remove(&uid);
                }
                if let Some(job) = retry {
                    self.submit(*job);
                }
                if let Some(sender) = sender {
                    self.give(sender);
                }
            }
            Event::Aborted => {}
            Event::Failed { uid, why } => {
                return vec![Report::Failed {
                    uid,
                    why,
                    expired: false,
                }]
            }
        }
        Vec::new()
    }
}

/// One request on one connection: send it, report its reply, and hand the connection back
/// once it is ready for another request.
async fn exchange_on(
    conn: Arc<Conn>,
    reports: mpsc::Sender<Report>,
    mut sender: Sender,
    job: Job,
) -> Event {
    let uid = job.uid;
    let resp = match sender.send(job.req).await {
        Ok(resp) => resp,
        Err(mut e) => {
            let retry = match e.take_message() {
                // The connection closed before writing it (a server's idle close, say):
                // another connection takes it, once.
                Some(req) if !job.retried => Some(Box::new(Job {
                    req,
                    uid,
                    retried: true,
                })),
                _ => None,
            };
            if retry.is_none() {
                let why = format!("request failed: {}", e.into_error());
                let _ = reports
                    .send(Report::Failed {
                        uid,
                        why,
                        expired: false,
                    })
                    .await;
            }
            return Event::Done {
                uid,
                sender: None,
                retry,
            };
        }
    };
    handle_reply(&conn, uid, resp, &reports).await;
    let sender = sender.reusable().await.then_some(sender);
    Event::Done {
        uid,
        sender,
        retry: None,
    }
}

/// Send one request on a connection of its own (the rare exchanges); the connection is
/// driven by a task of its own and closes when the response is done with.
pub(super) async fn send_once(
    conn: &Conn,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, String> {
    let (mut sender, driver) = conn.target.connect().await?;
    tokio::spawn(driver);
    sender
        .send(req)
        .await
        .map_err(|e| e.into_error().to_string())
}
