//! Client-facing listeners: Streamable HTTP and stdio. Thin I/O shells around the router.

pub mod cancel;
pub mod http;
pub mod stdio;
