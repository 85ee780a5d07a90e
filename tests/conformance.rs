//! The official MCP conformance suite (pinned in scripts/install-peers.sh), server mode,
//! against Switchyard fronting the project's own conformance fixture
//! (examples/conformance_fixture.rs) as a per-client, unprefixed stdio upstream.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn run_suite(router: &Router, args: &[&str]) {
    let out = TempDir::new("conformance");
    let mut cmd = Command::new(node());
    cmd.arg(conformance_js())
        .args(["server", "--url", &router.url])
        .args(args)
        .arg("-o")
        .arg(&out.0)
        .current_dir(&out.0);
    let (ok, log) = run_with_limit(&mut cmd, Duration::from_secs(600));
    let summary: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("passed") || l.contains("Total") || l.contains("FAIL"))
        .collect();
    println!("{}", summary.join("\n"));
    assert!(ok, "conformance suite failed:\n{log}");
    assert!(
        log.contains("Total:") || log.contains("Passed:"),
        "no results:\n{log}"
    );
    assert!(
        !log.contains(" 0 passed") || log.contains("0 failed"),
        "{log}"
    );
}

#[test]
fn conformance_active_suite_2025_11_25() {
    let router = start_router(&fixture_config());
    run_suite(
        &router,
        &["--suite", "active", "--spec-version", "2025-11-25"],
    );
}

#[test]
fn conformance_json_schema_2020_12() {
    let router = start_router(&fixture_config());
    run_suite(&router, &["--scenario", "json-schema-2020-12"]);
}
