//! Multi round-trip requests across eras, between real SDKs (the Python `mcp` client and
//! server): Switchyard turns a handshake-era server's mid-call elicitation into an
//! `input_required` result for a 2026-07-28 client, runs a 2026 server's `input_required`
//! rounds for a handshake-era client, and passes them through between two 2026 peers.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// Call `tool` on the Python server with the Python client in `mode`; the elicitation is
/// answered "Ada".
fn ask(router: &Router, mode: &str, tool: &str) -> String {
    wait_until_listed(&router.url, &format!("py__{tool}"));
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/peers/py_ask.py"))
        .args([router.url.as_str(), mode, tool]);
    let (ok, out) = run_with_limit(&mut cmd, Duration::from_secs(60));
    assert!(ok, "py_ask.py {mode} {tool} failed:\n{out}");
    out
}

fn py_router(py_url: &str, era: &str) -> Router {
    start_router(&format!(
        "[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nera = \"{era}\"\n"
    ))
}

#[test]
fn a_2026_client_answers_a_legacy_servers_elicitation() {
    let (_py, py_url) = start_py_server();
    let router = py_router(&py_url, "legacy");
    let out = ask(&router, "2026-07-28", "ask");
    assert!(out.contains("ASK-RESULT:accept:Ada"), "{out}");
}

#[test]
fn a_legacy_client_answers_a_2026_servers_input_required() {
    let (_py, py_url) = start_py_server();
    let router = py_router(&py_url, "2026-07-28");
    let out = ask(&router, "legacy", "ask_resolved");
    assert!(out.contains("ASK-RESULT:accept:Ada"), "{out}");
}

#[test]
fn input_required_passes_through_between_2026_peers() {
    let (_py, py_url) = start_py_server();
    let router = py_router(&py_url, "2026-07-28");
    let out = ask(&router, "2026-07-28", "ask_resolved");
    assert!(out.contains("ASK-RESULT:accept:Ada"), "{out}");
}

#[test]
fn a_legacy_server_asks_a_2026_client_over_stdio_too() {
    // The same bridge with the Python server as a stdio child (detected era pinned legacy).
    let router =
        start_router(&format!(
        "[[servers]]\nname = \"py\"\ncommand = {:?}\nargs = [{:?}, \"stdio\"]\nera = \"legacy\"\n",
        python().display().to_string(),
        root().join("tests/peers/py_server.py").display().to_string(),
    ));
    let out = ask(&router, "2026-07-28", "ask");
    assert!(out.contains("ASK-RESULT:accept:Ada"), "{out}");
}
