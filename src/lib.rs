//! Switchyard: a high-throughput router for the Model Context Protocol.
#![warn(missing_docs)]
//!
//! The layers, from the bytes up: [`wire`] (framing and the envelope, no I/O), [`protocol`]
//! (MCP rules, no I/O), [`session`] and [`upstream`] (the state of each client and each
//! server connection), [`router`] (where each message goes), [`ingress`] (the one entry
//! every transport hands its frames to), [`transport`] (the listeners), [`shard`] (the worker
//! threads connections and upstream actors are served on).

pub mod config;
pub mod demo;
pub mod fuzz_checks;
pub mod ingress;
pub mod lines;
pub mod protocol;
pub mod router;
pub mod session;
pub mod shard;
pub mod transport;
pub mod upstream;
pub mod wire;
