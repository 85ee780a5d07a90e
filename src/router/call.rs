//! A resolved call on its way to the pipeline: the connection that carries it (or the
//! bridge, for a handshake-era client calling a 2026 upstream), then, once admitted, the read
//! cache and the upstream's mailbox.

use super::*;

impl Router {
    /// Send a call to the upstream that serves `idx` for this session.
    pub(super) fn forward(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        env: Envelope,
        mut edits: CallEdits,
        sink: Sink,
    ) {
        let Some(handle) = self.instance_or_refuse(session, idx, &env, &sink) else {
            return;
        };
        // A 2026 client's envelope is cut only where the server is known to be of the
        // handshake era; one whose era is not known yet gets it taken out by its actor, or
        // keeps it if it is a 2026 server after all.
        if !handle.is_legacy() {
            edits.cuts.clear();
        }
        // A handshake-era client cannot answer a 2026 upstream's `input_required`: the router
        // runs those rounds for it, each one a call of its own through the pipeline.
        if session.era() != Era::Modern && bridge::may_need_input(&env.method) && handle.is_modern()
        {
            tokio::spawn(self.clone().bridge(session.clone(), idx, env, sink));
            return;
        }
        let call = Action::Call { env, edits };
        self.admit(Resolved::new(
            session,
            idx,
            handle,
            sink,
            CallRoute::Direct,
            call,
        ));
    }

    /// Send one bridged round to server `idx` as it is; its replies go to `sink`.
    pub(super) fn forward_round(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        env: Envelope,
        edits: CallEdits,
        sink: Sink,
    ) {
        let Some(handle) = self.instance_or_refuse(session, idx, &env, &sink) else {
            return;
        };
        let call = Action::Call { env, edits };
        self.admit(Resolved::new(
            session,
            idx,
            handle,
            sink,
            CallRoute::Bridged,
            call,
        ));
    }

    /// The connection to server `idx` for this session, or the call refused on `sink`.
    pub(super) fn instance_or_refuse(
        self: &Arc<Self>,
        session: &Arc<Session>,
        idx: usize,
        env: &Envelope,
        sink: &Sink,
    ) -> Option<UpstreamHandle> {
        match self.instance(idx, session) {
            Ok(h) => Some(h),
            Err(e) => {
                let id = env.id_bytes().unwrap_or_default();
                // Marked as the router's own: no server was reached.
                session.finish(sink, e.reply_from(&id, None));
                None
            }
        }
    }
}

/// Put an admitted call in an upstream's mailbox (or answer it from the read cache),
/// answering `sink` at once if it cannot go. Only [`Router::admit`] calls this.
pub(super) fn send_call(
    session: &Arc<Session>,
    handle: &UpstreamHandle,
    env: Envelope,
    edits: CallEdits,
    sink: Sink,
) {
    let client_id = env.id_bytes().unwrap_or_default();
    let cache_uri = match read_cache_key(handle, &env) {
        Some(uri) => match handle.shared.reads.get(&uri) {
            Some(result) => {
                session.finish(&sink, json::result(&client_id, &result));
                return;
            }
            None => Some(uri),
        },
        None => None,
    };
    let uid = handle.next_uid();
    if !session.begin(&client_id, handle, uid) {
        session.finish(
            &sink,
            error_reply(
                &client_id,
                code::INVALID_REQUEST,
                "a request with this id is already in flight",
            ),
        );
        return;
    }
    let origin = Origin {
        session: session.clone(),
        sink,
        client_id,
    };
    if let Err(cmd) = handle.send(Cmd::Call(Box::new(Call {
        env,
        uid,
        edits,
        origin,
        cache_uri,
    }))) {
        let why = if handle.is_closed() {
            "the server is shut down"
        } else {
            "the server is overloaded"
        };
        upstream::reject(cmd, &handle.shared.name, code::OVERLOADED, why);
    }
}

/// A 2026-07-28 HTTP client's `Mcp-Param-*` headers against the arguments of the tool it
/// calls, by the tool's schema as its server listed it: a server must refuse a request whose
/// headers and body disagree (-32020), and to that client Switchyard is the server.
pub(super) fn check_param_headers(
    session: &Session,
    handle: &UpstreamHandle,
    env: &Envelope,
    own_name: Option<&Bytes>,
) -> Result<(), String> {
    let Some(received) = session.param_headers() else {
        return Ok(());
    };
    if env.method != Method::ToolsCall {
        return Ok(());
    }
    let table = handle.shared.param_headers.load();
    if table.is_empty() {
        return Ok(());
    }
    let peek = env.peek();
    // The server's own name: the one spliced in, else the one the client gave.
    let own = match own_name {
        Some(quoted) => serde_json::from_slice::<String>(quoted).ok(),
        None => peek.name.and_then(raw_str).map(|n| n.into_owned()),
    };
    let Some(headers) = own.and_then(|n| table.get(n.as_str()).cloned()) else {
        return Ok(());
    };
    let arguments = crate::protocol::param_headers::parse_arguments(peek.arguments)?;
    headers.check(arguments.as_ref(), received)
}

/// A task-augmented call (2025-11-25 `params.task`) made an ordinary one, as a receiver
/// without task support runs it: Switchyard offers no tasks, and passing `task` on could get
/// the client a task it cannot poll through Switchyard.
pub(super) fn without_task(env: Envelope) -> Envelope {
    let Some(params) = env.params.clone() else {
        return env;
    };
    if env.method != Method::ToolsCall
        || crate::finder!(b"\"task\"")
            .find(&env.frame[params.clone()])
            .is_none()
    {
        return env;
    }
    let Some(with) = env
        .params_str()
        .and_then(|p| json::without_members(p, |k| k == "task"))
    else {
        return env;
    };
    let frame = splice(
        &env.frame,
        &mut [Edit {
            range: params,
            with: &with,
        }],
    );
    Envelope::parse(frame).unwrap_or(env)
}

/// The URI a `resources/read` may be answered from (and kept under) in the upstream's shared
/// read cache: only for 2026-07-28 servers (the only ones that say what may be shared; one
/// not yet connected may be one, and the answer is checked again when it comes), and never
/// for a multi round-trip retry.
pub(super) fn read_cache_key(handle: &UpstreamHandle, env: &Envelope) -> Option<Box<str>> {
    if env.method != Method::ResourcesRead
        || handle
            .shared
            .info
            .load()
            .as_ref()
            .is_some_and(|i| !i.is_modern())
    {
        return None;
    }
    let peek = ParamsPeek::parse(env.params_str()?).ok()?;
    if peek.input_responses.is_some() || peek.request_state.is_some() {
        return None;
    }
    raw_str(peek.uri?).map(|u| u.into())
}
