//! The router's own refusals: why it answers a request itself instead of a server.

use bytes::Bytes;

use crate::wire::json;

/// A request the router answers with an error: its JSON-RPC code (see the README's table)
/// and message. It travels in-band, on the request's reply stream: the HTTP status was
/// settled by the ingress when that stream started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// What the client is told.
    pub message: String,
    /// Set when the name or URI is not among what the session was shown, which learning the
    /// catalogue again may change.
    pub unlisted: Option<Unlisted>,
}

/// What a call named that the session's routes do not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// A tool or prompt name.
    Name,
    /// A resource URI.
    Uri,
}

impl RouteError {
    /// A refusal with this code and message.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RouteError {
            code,
            message: message.into(),
            unlisted: None,
        }
    }

    /// A name or URI the session's routes do not hold.
    pub fn unlisted(what: Unlisted, code: i64, message: impl Into<String>) -> Self {
        RouteError {
            unlisted: Some(what),
            ..RouteError::new(code, message)
        }
    }

    /// The error response to request `id`.
    pub fn reply(&self, id: &[u8]) -> Bytes {
        json::error(Some(id), self.code, &self.message, None)
    }

    /// The error response to request `id`, marked as the router's own (and naming the
    /// server it concerns, if any).
    pub fn reply_from(&self, id: &[u8], server: Option<&str>) -> Bytes {
        json::router_error(Some(id), self.code, &self.message, server)
    }
}

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for RouteError {}

impl From<crate::upstream::UpstreamError> for RouteError {
    /// A request the router made for the client (a subscription, say) got no result: the
    /// client is told the code the upstream error carries.
    fn from(e: crate::upstream::UpstreamError) -> Self {
        RouteError::new(e.code(), e.to_string())
    }
}
