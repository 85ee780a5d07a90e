//! The id map of one upstream connection: every request in flight there, by the
//! connection's own id, with its origin, progress token and deadline; what comes back is
//! matched to it and delivered.

use super::effects::{Effect, Wire};
use super::*;

/// A request in flight on one upstream connection.
enum Pending {
    Client {
        origin: Origin,
        token: Option<Bytes>,
        deadline: Instant,
        /// Waiting for its (2026-07-28) client's input: it cannot be what asks next.
        parked: bool,
        /// Offer the result to the read cache under this URI.
        cache_uri: Option<Box<str>>,
    },
    Internal {
        reply: oneshot::Sender<InternalResult>,
        /// Its cancellation key, if it has one (see [`Cmd::Internal`]).
        key: Option<Bytes>,
    },
}

/// The id map and deadlines of one upstream connection: the protocol half of an upstream
/// actor, shared by the stdio and HTTP actors. Sans I/O, in the manner of quinn-proto: it is
/// given commands, upstream frames and the time, and queues [`Effect`]s for its actor to
/// [`poll`](Pendings::poll) and carry out.
pub struct Pendings {
    shared: Arc<UpstreamShared>,
    /// By our own ids (no client chooses them, so a fast hash is safe).
    map: HashMap<u64, Pending, rustc_hash::FxBuildHasher>,
    /// The router's own cancellable requests, by key.
    internal_keys: HashMap<Bytes, u64>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    timeout: std::time::Duration,
    effects: VecDeque<Effect>,
}

impl Pendings {
    /// An empty map for the upstream with `shared`, whose requests expire after `timeout`.
    pub fn new(shared: Arc<UpstreamShared>, timeout: std::time::Duration) -> Self {
        Pendings {
            shared,
            map: HashMap::default(),
            internal_keys: HashMap::new(),
            deadlines: BinaryHeap::new(),
            timeout,
            effects: VecDeque::new(),
        }
    }

    /// Requests in flight.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The next thing to carry out, oldest first.
    pub fn poll(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    fn push(&mut self, e: Effect) {
        self.effects.push_back(e);
    }

    fn write(&mut self, frame: Bytes, uid: Option<u64>) {
        self.push(Effect::Wire(Wire::Write { frame, uid }));
    }

    fn server(&self) -> &str {
        &self.shared.name
    }

    /// Take a command from the router, at `now`.
    pub fn command(&mut self, cmd: Cmd, now: Instant) {
        match cmd {
            Cmd::Call(call) => self.start_call(call, now),
            Cmd::Internal {
                method,
                params,
                reply,
                key,
            } => {
                let (uid, frame) = self.start_internal(method, params.as_deref(), reply, key);
                self.write(frame, Some(uid));
            }
            Cmd::Cancel { uid, reason } => self.cancel(uid, reason.as_deref()),
            Cmd::CancelInternal { key } => {
                if let Some(uid) = self.internal_keys.get(&key).copied() {
                    self.cancel(uid, None);
                }
            }
            Cmd::Reply(frame) | Cmd::Notify(frame) => self.write(frame, None),
            Cmd::Reattach { uid, origin } => self.reattach(uid, origin),
            Cmd::Shutdown => {}
        }
    }

    /// A client call becomes the frame for the upstream: its id (and progress token) become
    /// its upstream id, the exposed name becomes the server's own. Every other byte is kept.
    /// The router checked the id is not in flight already (see [`Session::begin`]).
    fn start_call(&mut self, call: Box<Call>, now: Instant) {
        let Call {
            env,
            uid,
            edits: CallEdits {
                name, token, cuts, ..
            },
            origin,
            cache_uri,
        } = *call;
        let Some(id_range) = env.id.clone() else {
            let frame = json::error(None, code::INVALID_REQUEST, "request without id", None);
            return self.push(Effect::Finish { origin, uid, frame });
        };
        let uid_text = uid.to_string();
        let mut edits = vec![Edit {
            range: id_range,
            with: uid_text.as_bytes(),
        }];
        let client_token = token.map(|r| {
            edits.push(Edit {
                range: r.clone(),
                with: uid_text.as_bytes(),
            });
            env.frame.slice(r)
        });
        if let Some((range, name)) = &name {
            edits.push(Edit {
                range: range.clone(),
                with: name,
            });
        }
        edits.extend(cuts.into_iter().map(|range| Edit { range, with: b"" }));
        let frame = splice(&env.frame, &mut edits);
        let deadline = now + self.timeout;
        self.deadlines.push(Reverse((deadline, uid)));
        self.map.insert(
            uid,
            Pending::Client {
                origin,
                token: client_token,
                deadline,
                parked: false,
                cache_uri,
            },
        );
        self.write(frame, Some(uid));
    }

    fn reattach(&mut self, uid: u64, origin: Origin) {
        match self.map.get_mut(&uid) {
            Some(Pending::Client {
                origin: old,
                parked,
                ..
            }) => {
                *parked = false;
                *old = origin;
            }
            _ => {
                let frame = json::router_error(
                    Some(&origin.client_id),
                    code::UPSTREAM_UNAVAILABLE,
                    "the parked call is gone (it timed out, or its server restarted)",
                    Some(self.server()),
                );
                self.push(Effect::Finish { origin, uid, frame });
            }
        }
    }

    /// Call `uid` was parked (see [`Effect::Park`]): it cannot be what asks next.
    pub fn parked(&mut self, uid: u64) {
        if let Some(Pending::Client { parked, .. }) = self.map.get_mut(&uid) {
            *parked = true;
        }
    }

    /// Answer one request with a router error (its HTTP exchange failed).
    pub fn fail_one(&mut self, uid: u64, code: i64, why: &str) {
        if let Some(p) = self.remove(uid) {
            self.fail(uid, p, code, why);
        }
    }

    fn fail(&mut self, uid: u64, p: Pending, code: i64, why: &str) {
        let e = match p {
            Pending::Client { origin, .. } => {
                let frame =
                    json::router_error(Some(&origin.client_id), code, why, Some(self.server()));
                Effect::Finish { origin, uid, frame }
            }
            Pending::Internal { reply, .. } => Effect::Answer {
                reply,
                result: Err(UpstreamError::unavailable(self.server(), code, why)),
            },
        };
        self.push(e);
    }

    /// The capabilities of the client behind request `uid` (what a 2026-07-28 upstream is told
    /// in `_meta`); `{}` for the router's own requests.
    pub fn caps_of(&self, uid: u64) -> Bytes {
        match self.map.get(&uid) {
            Some(Pending::Client { origin, .. }) => origin.session.caps().json(),
            _ => Bytes::from_static(b"{}"),
        }
    }

    /// Did request `uid` come from a 2026-07-28 client (whose `_meta` envelope a legacy
    /// upstream must not see)?
    pub fn from_modern_client(&self, uid: u64) -> bool {
        matches!(self.map.get(&uid), Some(Pending::Client { origin, .. }) if origin.session.era() == crate::protocol::Era::Modern)
    }

    /// The origin of a client request in flight, if `uid` is one.
    fn origin_of(&self, uid: Option<u64>) -> Option<(u64, Origin)> {
        let uid = uid?;
        match self.map.get(&uid) {
            Some(Pending::Client { origin, .. }) => Some((uid, origin.clone())),
            _ => None,
        }
    }

    /// A request of the router's own: its id and frame (the handshake writes it itself; a
    /// [`Cmd::Internal`] goes out as an [`Effect`]).
    pub fn start_internal(
        &mut self,
        method: &str,
        params: Option<&[u8]>,
        reply: oneshot::Sender<InternalResult>,
        key: Option<Bytes>,
    ) -> (u64, Bytes) {
        let uid = self.shared.next_uid();
        if let Some(k) = &key {
            self.internal_keys.insert(k.clone(), uid);
        }
        self.map.insert(uid, Pending::Internal { reply, key });
        (
            uid,
            json::message(Some(uid.to_string().as_bytes()), method, params),
        )
    }

    /// Request `uid` is cancelled: a stdio or handshake-era upstream is sent
    /// `notifications/cancelled`, and its late reply will be dropped.
    fn cancel(&mut self, uid: u64, reason: Option<&str>) {
        if self.remove(uid).is_some() {
            self.write(json::cancelled(uid, reason), None);
            self.push(Effect::Wire(Wire::Abandoned(uid)));
        }
    }

    /// Expire what is overdue at `now`: each gets a timeout error, and its upstream is told.
    pub fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, uid))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let overdue = matches!(self.map.get(&uid), Some(Pending::Client { deadline, .. }) if *deadline <= now);
            if let Some(p) = overdue.then(|| self.remove(uid)).flatten() {
                let why = "the server did not answer in time";
                self.fail(uid, p, code::UPSTREAM_TIMEOUT, why);
                self.write(json::cancelled(uid, Some("timed out in router")), None);
                self.push(Effect::Wire(Wire::Abandoned(uid)));
            }
        }
    }

    /// When the next request expires, for the actor's timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    fn remove(&mut self, uid: u64) -> Option<Pending> {
        let p = self.map.remove(&uid)?;
        if let Pending::Internal { key: Some(k), .. } = &p {
            self.internal_keys.remove(k);
        }
        Some(p)
    }

    /// Answer everything in flight at once: the connection is gone.
    pub fn fail_all(&mut self, why: &str) {
        for (uid, p) in std::mem::take(&mut self.map) {
            self.fail(uid, p, code::UPSTREAM_UNAVAILABLE, why);
        }
        self.internal_keys.clear();
        self.deadlines.clear();
    }

    /// The sessions with requests in flight (not parked), each with its newest request.
    fn owners(&self) -> Vec<(u64, Origin)> {
        let mut best: HashMap<u64, (u64, &Origin)> = HashMap::new();
        for (uid, p) in &self.map {
            if let Pending::Client {
                origin,
                parked: false,
                ..
            } = p
            {
                let e = best.entry(origin.session.key).or_insert((*uid, origin));
                if *uid > e.0 {
                    *e = (*uid, origin);
                }
            }
        }
        best.into_values()
            .map(|(uid, o)| (uid, o.clone()))
            .collect()
    }

    /// Take one frame from the upstream. `related` is the upstream id of the request whose
    /// reply stream carried it, when the transport tells (an HTTP POST's SSE stream).
    pub fn inbound(&mut self, env: Envelope, related: Option<u64>) {
        match env.kind {
            Kind::Response | Kind::Error => self.response(env),
            Kind::Notification => self.notification(env, related),
            Kind::Request => self.server_request(env, related),
        }
    }

    fn response(&mut self, env: Envelope) {
        let uid = env
            .id
            .clone()
            .and_then(|r| std::str::from_utf8(&env.frame[r]).ok()?.parse::<u64>().ok());
        let Some((uid, p)) = uid.and_then(|uid| Some((uid, self.remove(uid)?))) else {
            tracing::debug!(server = %self.server(), "response to an unknown or cancelled id dropped");
            return;
        };
        match p {
            Pending::Client {
                origin, cache_uri, ..
            } => {
                if let (Some(uri), Kind::Response, Some(result)) =
                    (cache_uri, &env.kind, env.payload.clone())
                {
                    let result = env.frame.slice(result);
                    self.push(Effect::KeepRead { uri, result });
                }
                let id_range = env.id.clone().unwrap_or(0..0);
                let mut edits = vec![Edit {
                    range: id_range,
                    with: &origin.client_id,
                }];
                // A 2026-07-28 client's result is completed in this same splice.
                let completion = match (origin.session.modern_method(), &env.kind) {
                    (Some(method), Kind::Response) => env.payload.clone().and_then(|r| {
                        let (at, with) =
                            crate::protocol::modern::completion(env.payload_str()?, method)?;
                        Some((r.start + at, with))
                    }),
                    _ => None,
                };
                if let Some((at, with)) = &completion {
                    edits.push(Edit {
                        range: *at..*at,
                        with: with.as_bytes(),
                    });
                }
                let frame = splice(&env.frame, &mut edits);
                self.push(Effect::Finish { origin, uid, frame });
            }
            Pending::Internal { reply, .. } => {
                let result = match env.kind {
                    Kind::Response => Ok(env
                        .payload
                        .clone()
                        .map(|r| env.frame.slice(r))
                        .unwrap_or_default()),
                    _ => Err(UpstreamError::Answered {
                        server: self.server().to_string(),
                        error: env.payload_str().unwrap_or("").to_string(),
                    }),
                };
                self.push(Effect::Answer { reply, result });
            }
        }
    }

    fn notification(&mut self, env: Envelope, related: Option<u64>) {
        if env.method == Method::SubscriptionsAcknowledged {
            // Ours if it names (or, over HTTP, came on) one of our keyed listen requests.
            let uid = related.or_else(|| subscription_uid(&env));
            if let Some(Pending::Internal { key: Some(k), .. }) = uid.and_then(|u| self.map.get(&u))
            {
                let key = k.clone();
                return self.push(Effect::ListenAcknowledged(key));
            }
        }
        match env.method {
            Method::Progress => {
                let peek = env.peek();
                let Some(tok) = peek.progress_token else {
                    return;
                };
                let range = span_of(&env.frame, tok.get());
                let Some(Pending::Client {
                    origin,
                    token: Some(client_token),
                    ..
                }) = tok
                    .get()
                    .parse::<u64>()
                    .ok()
                    .and_then(|uid| self.map.get(&uid))
                else {
                    tracing::debug!(server = %self.server(), "progress for an unknown token dropped");
                    return;
                };
                let frame = splice(
                    &env.frame,
                    &mut [Edit {
                        range,
                        with: client_token,
                    }],
                );
                let origin = origin.clone();
                self.push(Effect::Progress { origin, frame });
            }
            Method::LogMessage => {
                // Logs carry no request id: deliver them with the request whose stream carried
                // them, else with the only session that has requests in flight here (always
                // the owner of a per-client upstream); never broadcast.
                let owner = self.shared.owner.as_ref().and_then(|w| w.upgrade());
                let to = match self.origin_of(related) {
                    Some((_, o)) => Some((o.session, Some(o.sink))),
                    None => match (self.owners().as_slice(), owner) {
                        ([(_, o)], _) => Some((o.session.clone(), Some(o.sink.clone()))),
                        ([], Some(session)) => Some((session, None)),
                        _ => None,
                    },
                };
                match to {
                    Some((session, sink)) => self.push(Effect::Log { session, sink, env }),
                    None => {
                        tracing::info!(server = %self.server(), log = env.params_str().unwrap_or(""), "upstream log")
                    }
                }
            }
            _ => self.push(Effect::Unsolicited(env)),
        }
    }

    fn server_request(&mut self, env: Envelope, related: Option<u64>) {
        let upstream_id = env.id_bytes().unwrap_or_default();
        if env.method == Method::Ping {
            return self.write(json::result(&upstream_id, b"{}"), None);
        }
        let refusal = || {
            let why = "switchyard: the client did not declare this capability";
            json::error(Some(&upstream_id), code::METHOD_NOT_FOUND, why, None)
        };
        // The client whose request caused this: the one whose stream carried it, the owner of
        // a per-client upstream, or the only session with requests in flight on a shared one.
        let owner = self.shared.owner.as_ref().and_then(|w| w.upgrade());
        let target = match (self.origin_of(related), owner) {
            (Some(carried), _) => Some(carried),
            (None, Some(session)) => self
                .owners()
                .into_iter()
                .find(|(_, o)| o.session.key == session.key)
                .or_else(|| {
                    let sink = session.unsolicited.clone();
                    let client_id = Bytes::new();
                    Some((
                        0,
                        Origin {
                            sink,
                            session,
                            client_id,
                        },
                    ))
                }),
            (None, None) => match self.owners().as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            },
        };
        let Some((uid, target)) = target else {
            let why = "switchyard: no single client to send this request to";
            return self.write(
                json::error(Some(&upstream_id), code::METHOD_NOT_FOUND, why, None),
                None,
            );
        };
        // A 2026-07-28 client takes no requests: its call is parked and it gets an
        // `input_required` result; its retry answers this request.
        if target.session.era() == crate::protocol::Era::Modern {
            return match self.map.contains_key(&uid) {
                true => self.push(Effect::Park {
                    uid,
                    origin: target,
                    request: env,
                    refusal: refusal(),
                }),
                false => self.write(refusal(), None),
            };
        }
        if !target.session.caps().allows(&env.method) {
            return self.write(refusal(), None);
        }
        self.push(Effect::Ask {
            target,
            upstream_id,
            request: env,
        });
    }
}

/// The `_meta` subscription id of a 2026 listen notification, read as one of our request ids.
fn subscription_uid(env: &Envelope) -> Option<u64> {
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "_meta")]
        meta: Meta<'a>,
    }
    #[derive(Deserialize)]
    struct Meta<'a> {
        #[serde(borrow, rename = "io.modelcontextprotocol/subscriptionId")]
        id: &'a RawValue,
    }
    let p: Params<'_> = serde_json::from_str(env.params_str()?).ok()?;
    p.meta.id.get().trim_matches('"').parse().ok()
}

#[cfg(test)]
mod tests;
