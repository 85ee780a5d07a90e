//! The Python `mcp` SDK client (legacy mode) through Switchyard's HTTP front and its stdio
//! front, to server-everything (stdio) and a Python SDK server (Streamable HTTP) at once.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn two_servers_config(py_url: &str) -> String {
    format!(
        "{}[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n",
        everything_server("everything")
    )
}

fn run_py_client(args: &[&str]) {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/peers/py_client.py")).args(args);
    let (ok, out) = run_with_limit(&mut cmd, Duration::from_secs(120));
    assert!(
        ok && out.contains("PY-CLIENT-OK"),
        "python client failed:\n{out}"
    );
}

#[test]
fn python_client_over_http_front() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&two_servers_config(&py_url));
    run_py_client(&["http", &router.url]);
}

#[test]
fn python_client_over_stdio_front() {
    let (_py, py_url) = start_py_server();
    let dir = TempDir::new("stdio-front");
    let config = dir.write("switchyard.toml", &two_servers_config(&py_url));
    let bin = switchyard_bin();
    run_py_client(&[
        "stdio",
        bin.to_str().expect("utf-8 path"),
        config.to_str().expect("utf-8 path"),
    ]);
}

/// A real server's elicitation reaches the real client whose call caused it, through a
/// per-client upstream that declares that client's own capabilities, and its answer goes back.
#[test]
fn elicitation_round_trip_between_real_sdks() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&format!(
        "[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nera = \"legacy\"\nsharing = \"per-client\"\n"
    ));
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/peers/py_ask.py"))
        .args([router.url.as_str(), "legacy"]);
    let (ok, out) = run_with_limit(&mut cmd, Duration::from_secs(60));
    assert!(
        ok && out.contains("ASK-RESULT:accept:Ada"),
        "elicitation round trip failed:\n{out}"
    );
}

/// Each upstream's instructions reach the client labelled with the server they come from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instructions_are_labelled_per_server() {
    let (_py, py_url) = start_py_server();
    // `initialize` waits for every upstream's handshake up to the list timeout; on a busy
    // machine two servers starting at once can take longer than the default 5 s.
    let config = format!(
        "[limits]\nlist_timeout_ms = 30000\n{}",
        two_servers_config(&py_url)
    );
    let router = start_router(&config);
    let mut c = RawClient::new(&router.url);
    let init = c.initialize("2025-11-25", "{}").await;
    let text = init["result"]["instructions"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        text.contains("[py] A Python SDK server behind Switchyard."),
        "{text}"
    );
    assert!(text.contains("[everything] "), "{text}");
}
