//! The wire layer: framing and the JSON-RPC envelope. Pure functions over bytes; no I/O.
//!
//! A frame is parsed once ([`envelope::Envelope::parse`]) into byte ranges of its parts;
//! payloads travel as slices of the received buffer and are rewritten by splicing
//! ([`rewrite::splice`]), never by re-encoding.

pub mod envelope;
pub mod frame;
pub mod hex;
pub mod json;
pub mod method;
pub mod params;
pub mod rewrite;
pub mod scan;
pub mod sse;

pub use envelope::{Envelope, Kind, Method, WireError};

/// A byte-string searcher for a fixed needle, built once (building one costs more than a
/// search of a small frame): `finder!(b"\"error\"").find(frame)`.
#[macro_export]
macro_rules! finder {
    ($needle:expr) => {{
        static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memchr::memmem::Finder::new($needle));
        &*FINDER
    }};
}
