//! The id map of one upstream connection: every request in flight there, by the
//! connection's own id, with its origin, progress token and deadline; what comes back is
//! matched to it and delivered.

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
        reply: oneshot::Sender<Result<Bytes, String>>,
        /// Its cancellation key, if it has one (see [`Cmd::Internal`]).
        key: Option<Bytes>,
    },
}

/// The id map and deadlines of one upstream connection: the protocol half of an upstream
/// actor, shared by the stdio and HTTP actors. No I/O: it turns commands and upstream frames
/// into frames to write and deliveries.
pub struct Pendings {
    server: String,
    next_id: u64,
    map: HashMap<u64, Pending>,
    /// (session key, client id) -> upstream id, for cancellation.
    by_client: HashMap<(u64, Bytes), u64>,
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    timeout: std::time::Duration,
}

/// The outcome of handling a frame from the upstream.
pub enum Inbound {
    /// Handled (delivered, or dropped with a log line).
    Done,
    /// A frame to write back to the upstream (an answer to its request).
    Answer(Bytes),
}

impl Pendings {
    pub fn new(server: &str, timeout: std::time::Duration) -> Self {
        Pendings {
            server: server.to_string(),
            next_id: 1,
            map: HashMap::new(),
            by_client: HashMap::new(),
            deadlines: BinaryHeap::new(),
            timeout,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Turn a client call into the frame for the upstream: its id (and progress token) become
    /// ours, the exposed name becomes the server's own. Every other byte is kept.
    pub fn start_call(&mut self, call: Box<Call>) -> Result<(u64, Bytes), (Origin, &'static str)> {
        let Call {
            env,
            name_edit,
            token,
            origin,
            cache_uri,
        } = *call;
        let key = (origin.session.key, origin.client_id.clone());
        if self.by_client.contains_key(&key) {
            return Err((origin, "a request with this id is already in flight"));
        }
        let uid = self.take_id();
        let uid_text = uid.to_string();
        let Some(id_range) = env.id.clone() else {
            return Err((origin, "request without id"));
        };
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
        if let Some((range, name)) = &name_edit {
            edits.push(Edit {
                range: range.clone(),
                with: name,
            });
        }
        let frame = splice(&env.frame, &mut edits);
        let deadline = Instant::now() + self.timeout;
        self.deadlines.push(Reverse((deadline, uid)));
        self.by_client.insert(key, uid);
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
        Ok((uid, frame))
    }

    /// The frame a command puts on the wire, with the upstream id it waits for (if any).
    /// `None` when there is nothing to send: the call was refused, the cancellation was not
    /// ours, or it is a shutdown (which the actor handles itself).
    pub fn frame_for(&mut self, cmd: Cmd) -> Option<(Bytes, Option<u64>)> {
        match cmd {
            Cmd::Call(call) => match self.start_call(call) {
                Ok((uid, frame)) => Some((frame, Some(uid))),
                Err((origin, why)) => {
                    origin.session.finish(
                        &origin.sink,
                        json::error(Some(&origin.client_id), code::INVALID_REQUEST, why, None),
                    );
                    None
                }
            },
            Cmd::Internal {
                method,
                params,
                reply,
                key,
            } => {
                let (uid, frame) = self.start_internal(method, params.as_deref(), reply, key);
                Some((frame, Some(uid)))
            }
            Cmd::Cancel {
                session,
                client_id,
                reason,
            } => self
                .cancel(session, client_id, reason.as_deref())
                .map(|(_, f)| (f, None)),
            Cmd::Reply(frame) | Cmd::Notify(frame) => Some((frame, None)),
            Cmd::Reattach { uid, origin } => {
                self.reattach(uid, origin);
                None
            }
            Cmd::Shutdown => None,
        }
    }

    fn reattach(&mut self, uid: u64, origin: Origin) {
        match self.map.get_mut(&uid) {
            Some(Pending::Client {
                origin: old,
                parked,
                ..
            }) => {
                *parked = false;
                self.by_client
                    .remove(&(old.session.key, old.client_id.clone()));
                self.by_client
                    .insert((origin.session.key, origin.client_id.clone()), uid);
                *old = origin;
            }
            _ => {
                let msg = json::router_error(
                    Some(&origin.client_id),
                    code::UPSTREAM_UNAVAILABLE,
                    "the parked call is gone (it timed out, or its server restarted)",
                    Some(&self.server),
                );
                deliver_final(&origin, msg);
            }
        }
    }

    /// Answer one request with a router error (its HTTP exchange failed).
    pub fn fail_one(&mut self, uid: u64, code: i64, why: &str) {
        match self.remove(uid) {
            Some(Pending::Client { origin, .. }) => {
                let msg =
                    json::router_error(Some(&origin.client_id), code, why, Some(&self.server));
                deliver_final(&origin, msg);
            }
            Some(Pending::Internal { reply, .. }) => {
                let _ = reply.send(Err(format!("{}: {why}", self.server)));
            }
            None => {}
        }
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
    fn origin_of(&self, uid: Option<u64>) -> Option<Origin> {
        match self.map.get(&uid?) {
            Some(Pending::Client { origin, .. }) => Some(origin.clone()),
            _ => None,
        }
    }

    pub fn start_internal(
        &mut self,
        method: &str,
        params: Option<&[u8]>,
        reply: oneshot::Sender<Result<Bytes, String>>,
        key: Option<Bytes>,
    ) -> (u64, Bytes) {
        let uid = self.take_id();
        if let Some(k) = &key {
            self.by_client.insert((ROUTER_KEY, k.clone()), uid);
        }
        self.map.insert(uid, Pending::Internal { reply, key });
        (
            uid,
            json::message(Some(uid.to_string().as_bytes()), method, params),
        )
    }

    /// A client's cancellation, if the request is ours: our id for it and the
    /// `notifications/cancelled` frame that tells a stdio or handshake-era upstream.
    pub fn cancel(
        &mut self,
        session: u64,
        client_id: Bytes,
        reason: Option<&str>,
    ) -> Option<(u64, Bytes)> {
        let uid = self.by_client.remove(&(session, client_id))?;
        self.map.remove(&uid);
        Some((uid, json::cancelled(uid, reason)))
    }

    /// Expire overdue requests: each gets a timeout error; returns their ids and the
    /// cancellations to send upstream.
    pub fn expire(&mut self, now: Instant) -> Vec<(u64, Bytes)> {
        let mut cancels = Vec::new();
        while let Some(Reverse((at, uid))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            if let Some(Pending::Client { deadline, .. }) = self.map.get(&uid) {
                if *deadline <= now {
                    if let Some(Pending::Client { origin, .. }) = self.remove(uid) {
                        let msg = json::router_error(
                            Some(&origin.client_id),
                            code::UPSTREAM_TIMEOUT,
                            "the server did not answer in time",
                            Some(&self.server),
                        );
                        deliver_final(&origin, msg);
                    }
                    cancels.push((uid, json::cancelled(uid, Some("timed out in router"))));
                }
            }
        }
        cancels
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    fn remove(&mut self, uid: u64) -> Option<Pending> {
        let p = self.map.remove(&uid)?;
        match &p {
            Pending::Client { origin, .. } => {
                self.by_client
                    .remove(&(origin.session.key, origin.client_id.clone()));
            }
            Pending::Internal { key: Some(k), .. } => {
                self.by_client.remove(&(ROUTER_KEY, k.clone()));
            }
            Pending::Internal { key: None, .. } => {}
        }
        Some(p)
    }

    /// Answer everything in flight at once: the connection is gone.
    pub fn fail_all(&mut self, why: &str) {
        for (_, p) in self.map.drain() {
            match p {
                Pending::Client { origin, .. } => {
                    let msg = json::router_error(
                        Some(&origin.client_id),
                        code::UPSTREAM_UNAVAILABLE,
                        why,
                        Some(&self.server),
                    );
                    deliver_final(&origin, msg);
                }
                Pending::Internal { reply, .. } => {
                    let _ = reply.send(Err(why.to_string()));
                }
            }
        }
        self.by_client.clear();
        self.deadlines.clear();
    }

    /// The sessions with requests in flight, with the sink of each one's newest request.
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
        best.into_iter().map(|(k, (_, o))| (k, o.clone())).collect()
    }

    /// Handle one frame from the upstream. `related` is the upstream id of the request whose
    /// reply stream carried it, when the transport tells (an HTTP POST's SSE stream).
    pub fn inbound(
        &mut self,
        env: Envelope,
        related: Option<u64>,
        handle: &UpstreamHandle,
        events: &dyn UpstreamEvents,
    ) -> Inbound {
        match env.kind {
            Kind::Response | Kind::Error => {
                self.response(env, handle);
                Inbound::Done
            }
            Kind::Notification => {
                self.notification(env, related, handle, events);
                Inbound::Done
            }
            Kind::Request => self.server_request(env, related, handle, events),
        }
    }

    fn response(&mut self, env: Envelope, handle: &UpstreamHandle) {
        let uid = env
            .id
            .clone()
            .and_then(|r| std::str::from_utf8(&env.frame[r]).ok()?.parse::<u64>().ok());
        let Some(p) = uid.and_then(|uid| self.remove(uid)) else {
            tracing::debug!(server = %self.server, "response to an unknown or cancelled id dropped");
            return;
        };
        match p {
            Pending::Client {
                origin, cache_uri, ..
            } => {
                if let (Some(uri), Kind::Response, Some(result)) =
                    (cache_uri, &env.kind, env.payload.clone())
                {
                    if handle.is_modern() {
                        handle.shared.reads.store(&uri, env.frame.slice(result));
                    }
                }
                let id_range = env.id.clone().unwrap_or(0..0);
                let frame = splice(
                    &env.frame,
                    &mut [Edit {
                        range: id_range,
                        with: &origin.client_id,
                    }],
                );
                deliver_final(&origin, frame);
            }
            Pending::Internal { reply, .. } => {
                let out = match env.kind {
                    Kind::Response => Ok(env
                        .payload
                        .clone()
                        .map(|r| env.frame.slice(r))
                        .unwrap_or_default()),
                    _ => Err(format!(
                        "{} answered: {}",
                        self.server,
                        env.payload_str().unwrap_or("")
                    )),
                };
                let _ = reply.send(out);
            }
        }
    }

    fn notification(
        &mut self,
        env: Envelope,
        related: Option<u64>,
        handle: &UpstreamHandle,
        events: &dyn UpstreamEvents,
    ) {
        let owner = handle.shared.owner.as_ref().and_then(|w| w.upgrade());
        if env.method == Method::SubscriptionsAcknowledged {
            // Ours if it names (or, over HTTP, came on) one of our keyed listen requests.
            let uid = related.or_else(|| subscription_uid(&env));
            if let Some(Pending::Internal { key: Some(k), .. }) = uid.and_then(|u| self.map.get(&u))
            {
                events.listen_acknowledged(handle, k);
                return;
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
                    tracing::debug!(server = %self.server, "progress for an unknown token dropped");
                    return;
                };
                let frame = splice(
                    &env.frame,
                    &mut [Edit {
                        range,
                        with: client_token,
                    }],
                );
                if origin.sink.send(frame).is_err() {
                    origin.session.shed("client not reading its replies");
                }
            }
            Method::LogMessage => {
                // Logs of a shared upstream carry no request id: deliver them only when exactly one
                // session has requests in flight, never broadcast.
                if let Some(origin) = self.origin_of(related) {
                    return origin.session.deliver_log(&env, Some(&origin.sink));
                }
                // Logs carry no request id: deliver them with the only session that has requests in
                // flight here (always the owner of a per-client upstream), never broadcast.
                match (self.owners().as_slice(), owner.as_ref()) {
                    ([(_, origin)], _) => origin.session.deliver_log(&env, Some(&origin.sink)),
                    ([], Some(session)) => session.deliver_log(&env, None),
                    _ => {
                        tracing::info!(server = %self.server, log = env.params_str().unwrap_or(""), "upstream log")
                    }
                }
            }
            _ => events.unsolicited(handle, &env),
        }
    }

    fn server_request(
        &mut self,
        env: Envelope,
        related: Option<u64>,
        handle: &UpstreamHandle,
        events: &dyn UpstreamEvents,
    ) -> Inbound {
        let upstream_id = env.id_bytes().unwrap_or_default();
        if env.method == Method::Ping {
            return Inbound::Answer(json::result(&upstream_id, b"{}"));
        }
        // The client whose request caused this: the owner of a per-client upstream, or the only
        // session with requests in flight on a shared one.
        let target = match handle.shared.owner.as_ref().and_then(|w| w.upgrade()) {
            _ if related.is_some() && self.origin_of(related).is_some() => self.origin_of(related),
            Some(session) => self
                .owners()
                .into_iter()
                .find(|(k, _)| *k == session.key)
                .map(|(_, o)| o)
                .or_else(|| {
                    Some(Origin {
                        sink: session.unsolicited.clone(),
                        session,
                        client_id: Bytes::new(),
                    })
                }),
            None => match self.owners().as_slice() {
                [(_, o)] => Some(o.clone()),
                _ => None,
            },
        };
        let refuse = |why: &str| {
            Inbound::Answer(json::error(
                Some(&upstream_id),
                code::METHOD_NOT_FOUND,
                why,
                None,
            ))
        };
        let Some(target) = target else {
            return refuse("switchyard: no single client to send this request to");
        };
        // A 2026-07-28 client takes no requests: its call is parked and it gets an
        // `input_required` result; its retry answers this request.
        if target.session.era() == crate::protocol::Era::Modern {
            let uid = self
                .by_client
                .get(&(target.session.key, target.client_id.clone()))
                .copied();
            return match uid {
                Some(uid) if events.park(handle, uid, &target, &env) => {
                    if let Some(Pending::Client { parked, .. }) = self.map.get_mut(&uid) {
                        *parked = true;
                    }
                    Inbound::Done
                }
                _ => refuse("switchyard: the client did not declare this capability"),
            };
        }
        if !target.session.caps().allows(&env.method) {
            return refuse("switchyard: the client did not declare this capability");
        }
        let client_id = target
            .session
            .register_server_request(handle.clone(), upstream_id);
        let range = env.id.clone().unwrap_or(0..0);
        let frame = splice(
            &env.frame,
            &mut [Edit {
                range,
                with: &client_id,
            }],
        );
        if target.sink.send(frame).is_err() {
            target.session.shed("client not reading its replies");
        }
        Inbound::Done
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

fn deliver_final(origin: &Origin, frame: Bytes) {
    origin.session.forget(&origin.client_id);
    if origin.sink.finish(frame).is_err() {
        origin.session.shed("client not reading its replies");
    }
}

#[cfg(test)]
mod tests;
