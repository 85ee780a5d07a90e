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
    /// The server answered with a result that is not what the method returns.
    Malformed {
        /// The server's configured name.
        server: String,
        /// What was wrong with it.
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

impl UpstreamError {
    /// The JSON-RPC code a client is told when this error ends its request: the server's
    /// own code when it answered with one, the documented code when no answer could be had,
    /// an internal error for an answer that was not what was asked.
    pub fn code(&self) -> i64 {
        match self {
            UpstreamError::Answered { error, .. } => {
                #[derive(serde::Deserialize)]
                struct Code {
                    code: i64,
                }
                serde_json::from_str::<Code>(error)
                    .map_or(crate::wire::envelope::code::INTERNAL_ERROR, |c| c.code)
            }
            UpstreamError::Unavailable { code, .. } => *code,
            UpstreamError::Malformed { .. } => crate::wire::envelope::code::INTERNAL_ERROR,
        }
    }

    /// A result from `server` that is not what was asked for.
    pub fn malformed(server: &str, why: impl Into<String>) -> Self {
        UpstreamError::Malformed {
            server: server.to_string(),
            why: why.into(),
        }
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpstreamError::Answered { server, error } => write!(f, "{server} answered: {error}"),
            UpstreamError::Unavailable { server, why, .. } => write!(f, "{server}: {why}"),
            UpstreamError::Malformed { server, why } => write!(f, "{server} answered badly: {why}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

impl From<UpstreamError> for String {
    fn from(e: UpstreamError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::envelope::code;

    #[test]
    fn each_error_knows_the_code_a_client_is_told() {
        let answered = UpstreamError::Answered {
            server: "s".into(),
            error: r#"{"code":-32601,"message":"no such method"}"#.into(),
        };
        assert_eq!(answered.code(), code::METHOD_NOT_FOUND);
        let garbled = UpstreamError::Answered {
            server: "s".into(),
            error: "\"oops\"".into(),
        };
        assert_eq!(garbled.code(), code::INTERNAL_ERROR);
        let gone = UpstreamError::unavailable("s", code::UPSTREAM_UNAVAILABLE, "went away");
        assert_eq!(gone.code(), code::UPSTREAM_UNAVAILABLE);
        assert_eq!(gone.to_string(), "s: went away");
        let bad = UpstreamError::malformed("s", "a tools/list result without tools");
        assert_eq!(bad.code(), code::INTERNAL_ERROR);
        assert_eq!(
            bad.to_string(),
            "s answered badly: a tools/list result without tools"
        );
    }
}
