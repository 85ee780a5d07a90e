//! Why a request the router makes of an upstream itself (a list, a subscription, its
//! handshake) got no result: the one error type of the upstream layer.

use bytes::Bytes;

/// See the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// The server answered with a JSON-RPC error (its `error` object, raw JSON).
    Answered {
        /// The server's configured name.
        server: String,
        /// The `error` member as the server sent it.
        error: String,
    },
    /// No answer could be had: the server is shut down, overloaded or gone, or the request
    /// timed out or its exchange failed.
    Unavailable {
        /// The server's configured name.
        server: String,
        /// The JSON-RPC code a client would be told (see the README's table).
        code: i64,
        /// What happened.
        why: String,
    },
}

/// What a request of the router's own comes back with.
pub type InternalResult = Result<Bytes, UpstreamError>;

impl UpstreamError {
    /// No answer from `server`, for this reason.
    pub fn unavailable(server: &str, code: i64, why: impl Into<String>) -> Self {
        UpstreamError::Unavailable {
            server: server.to_string(),
            code,
            why: why.into(),
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Answered { server, error } => write!(f, "{server} answered: {error}"),
            UpstreamError::Unavailable { server, why, .. } => write!(f, "{server}: {why}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

impl From<UpstreamError> for String {
    fn from(e: UpstreamError) -> String {
        e.to_string()
    }
}
