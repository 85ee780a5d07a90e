//! MCP semantics that need no I/O: protocol versions and eras, client capabilities, log
//! levels, name prefixing, cursors and URI templates.

pub mod header_value;
pub mod list_page;
pub mod modern;
pub mod names;
pub mod param_headers;
pub mod template;

use bytes::Bytes;
use serde_json::value::RawValue;

/// Handshake-era revisions Switchyard serves, oldest first.
pub const LEGACY_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
/// The revision Switchyard proposes to upstreams and answers when a client asks for one it
/// does not know.
pub const LATEST_LEGACY: &str = "2025-11-25";

/// A peer's protocol era, decided per peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// The initialize handshake era, at one of [`LEGACY_VERSIONS`].
    Legacy(&'static str),
    /// 2026-07-28: stateless requests carrying `_meta`; no handshake, sessions or event ids.
    Modern,
}

impl Era {
    /// The revision string this era speaks (`protocolVersion`).
    pub fn version(self) -> &'static str {
        match self {
            Era::Legacy(v) => v,
            Era::Modern => modern::VERSION,
        }
    }

    /// 2025-03-26 is the only revision whose receivers must accept batches.
    pub fn accepts_batches(self) -> bool {
        self.version() == "2025-03-26"
    }

    /// From 2025-11-25, SSE streams start with a priming event (an id and empty data); 2026
    /// streams have no event ids at all.
    pub fn primes_streams(self) -> bool {
        matches!(self, Era::Legacy(v) if v >= "2025-11-25")
    }
}

/// The version to answer a client's `initialize` with: its own if served, else our newest.
pub fn negotiate(requested: Option<&str>) -> Era {
    let v = LEGACY_VERSIONS
        .iter()
        .find(|v| Some(**v) == requested)
        .copied()
        .unwrap_or(LATEST_LEGACY);
    Era::Legacy(v)
}

/// Whether `v` is a handshake-era revision Switchyard serves.
pub fn is_known_version(v: &str) -> bool {
    LEGACY_VERSIONS.contains(&v)
}

/// The 2026-07-28 tasks extension's key in `capabilities.extensions`.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// A client's capabilities without task support (2025-11-25 `tasks`, the 2026 tasks
/// extension), or `None` if it declared none. Switchyard carries no tasks, so an upstream
/// must not be told a client can take them: it could answer with a task the client then
/// cannot poll through Switchyard.
pub fn without_tasks(raw: &str) -> Option<Box<RawValue>> {
    crate::finder!(b"tasks").find(raw.as_bytes())?;
    let mut caps: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw).ok()?;
    let mut changed = caps.remove("tasks").is_some();
    if let Some(serde_json::Value::Object(ext)) = caps.get_mut("extensions") {
        changed |= ext.remove(TASKS_EXTENSION).is_some();
    }
    if !changed {
        return None;
    }
    serde_json::value::to_raw_value(&caps).ok()
}

/// What a client said it can receive (server-to-client requests go only to clients that can).
#[derive(Debug, Clone, Default)]
pub struct ClientCaps {
    /// `sampling/createMessage` may be sent to it.
    pub sampling: bool,
    /// `elicitation/create` may be sent to it.
    pub elicitation: bool,
    /// `roots/list` may be sent to it.
    pub roots: bool,
    /// The raw capabilities object (without task support, which is not carried), passed to
    /// upstreams that speak for this client; see [`ClientCaps::json`].
    raw: Option<Bytes>,
}

impl ClientCaps {
    /// Reads the client's `capabilities` object; anything unreadable declares nothing.
    pub fn parse(raw: Option<&str>) -> ClientCaps {
        raw.map_or_else(ClientCaps::default, |raw| {
            ClientCaps::read(raw, || Bytes::copy_from_slice(raw.as_bytes()))
        })
    }

    /// The same for capabilities that are a slice of a frame (a 2026 request's `_meta`):
    /// kept as that slice, not copied.
    pub fn parse_shared(raw: Bytes) -> ClientCaps {
        match std::str::from_utf8(&raw) {
            Ok(text) => ClientCaps::read(text, || raw.clone()),
            Err(_) => ClientCaps::default(),
        }
    }

    fn read(raw: &str, as_declared: impl FnOnce() -> Bytes) -> ClientCaps {
        let members = crate::wire::json::Members::parse(raw).unwrap_or_default();
        let on = |key: &str| members.get(key).is_some_and(|v| v.get() != "null");
        let kept = match without_tasks(raw) {
            Some(stripped) => Bytes::copy_from_slice(stripped.get().as_bytes()),
            None => as_declared(),
        };
        ClientCaps {
            sampling: on("sampling"),
            elicitation: on("elicitation"),
            roots: on("roots"),
            raw: Some(kept),
        }
    }

    /// The capabilities object as declared (`{}` for none), for upstreams that speak for this
    /// client: shared, not copied, per message.
    pub fn json(&self) -> Bytes {
        self.raw
            .clone()
            .unwrap_or_else(|| Bytes::from_static(b"{}"))
    }

    /// May a server-to-client request with this method go to this client?
    pub fn allows(&self, method: &crate::wire::Method) -> bool {
        use crate::wire::Method;
        match method {
            Method::SamplingCreateMessage => self.sampling,
            Method::ElicitationCreate => self.elicitation,
            Method::RootsList => self.roots,
            Method::Ping => true,
            _ => false,
        }
    }
}

/// Syslog severities of `logging/setLevel` and `notifications/message`, least severe first.
/// Switchyard's `Implementation` object (serverInfo to clients, clientInfo to upstreams).
pub const IMPLEMENTATION: &str = concat!(
    r#"{"name":"switchyard","version":""#,
    env!("CARGO_PKG_VERSION"),
    r#""}"#
);

/// The `logging/setLevel` levels, least severe first (RFC 5424 order).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// Where `level` stands in [`LOG_LEVELS`] (0 is `debug`); `None` for an unknown level.
pub fn log_level_rank(level: &str) -> Option<u8> {
    LOG_LEVELS.iter().position(|l| *l == level).map(|p| p as u8)
}

/// Router-issued list cursors: the offset into the merged list, hex-encoded with a check.
/// Clients never see an upstream's own cursor.
pub mod cursor {
    const MAGIC: u64 = 0x5359_4355_5253_4f52; // "SYCURSOR"

    /// The opaque cursor for a merged list's page starting at `offset`.
    pub fn encode(offset: usize) -> String {
        let v = offset as u64;
        format!("{:016x}{:016x}", v, v ^ MAGIC)
    }

    /// The offset in a cursor made by [`encode`]; `None` for anything else (forged or foreign).
    pub fn decode(s: &str) -> Option<usize> {
        if s.len() != 32 {
            return None;
        }
        let v = u64::from_str_radix(s.get(..16)?, 16).ok()?;
        let check = u64::from_str_radix(s.get(16..)?, 16).ok()?;
        (v ^ MAGIC == check).then_some(v as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_keeps_known_versions() {
        assert_eq!(negotiate(Some("2025-03-26")).version(), "2025-03-26");
        assert_eq!(negotiate(Some("2024-11-05")).version(), LATEST_LEGACY);
        assert_eq!(negotiate(None).version(), LATEST_LEGACY);
        assert!(negotiate(Some("2025-03-26")).accepts_batches());
        assert!(!negotiate(Some("2025-06-18")).accepts_batches());
    }

    #[test]
    fn client_caps() {
        let raw = RawValue::from_string(r#"{"sampling":{},"roots":{"listChanged":true}}"#.into())
            .unwrap();
        let c = ClientCaps::parse(Some(raw.get()));
        assert!(c.sampling && c.roots && !c.elicitation);
        assert!(c.allows(&crate::wire::Method::SamplingCreateMessage));
        assert!(!c.allows(&crate::wire::Method::ElicitationCreate));
    }

    #[test]
    fn task_support_is_not_passed_on() {
        let raw = RawValue::from_string(
            r#"{"tasks":{"requests":{}},"sampling":{},"extensions":{"io.modelcontextprotocol/tasks":{}}}"#.into(),
        )
        .unwrap();
        let c = ClientCaps::parse(Some(raw.get()));
        let kept: serde_json::Value = serde_json::from_slice(&c.json()).unwrap();
        assert_eq!(kept, serde_json::json!({"sampling": {}, "extensions": {}}));
        let plain = RawValue::from_string(r#"{"roots":{"listChanged":true}}"#.into()).unwrap();
        assert!(without_tasks(plain.get()).is_none());
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        assert_eq!(cursor::decode(&cursor::encode(1234)), Some(1234));
        assert_eq!(cursor::decode("00000000000004d2000000000000beef"), None);
        assert_eq!(cursor::decode("zz"), None);
    }
}
