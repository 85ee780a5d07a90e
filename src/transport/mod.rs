//! Client-facing listeners: Streamable HTTP and stdio. Thin I/O shells around
//! [`crate::ingress`]: sockets, pipes, headers, and the shape of their replies.

pub mod http;
pub mod stdio;
