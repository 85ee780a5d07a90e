//! Every `switchyard-loadgen` command that README.md shows, taken from the README itself and
//! run as printed against the mock server (and Switchyard, where the README points there):
//! each must succeed with no errors, and its report's counts must add up. Only the addresses
//! are changed, to free ports, and `$L` is this build's binary.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// This build's load generator, brought up to date once (it is another package's binary).
fn loadgen() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    built(&BUILT, "switchyard-loadgen", &["-p", "switchyard-loadgen"])
}

/// The README's load-generator lines (`$L ...`), comments cut off.
fn readme_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let start = readme
        .find("L=target/release/switchyard-loadgen")
        .expect("the README's load-test block");
    readme[start..]
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.split(" #").next().unwrap_or(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// What a run printed: the text report's counts and, with `--json -`, the JSON report.
struct Outcome {
    ok: u64,
    errors: u64,
    error_lines: u64,
    json: Option<Value>,
}

fn parse_report(out: &str) -> Outcome {
    let counts = out
        .lines()
        .find_map(|l| l.strip_prefix("requests"))
        .unwrap_or_else(|| panic!("no requests line in:\n{out}"));
    let mut words = counts.split_whitespace();
    let ok = words.next().and_then(|w| w.parse().ok()).expect("ok count");
    let errors = words
        .nth(1)
        .and_then(|w| w.parse().ok())
        .expect("errors count");
    let error_lines = out
        .lines()
        .filter_map(|l| l.strip_prefix("error "))
        .filter_map(|l| l.rsplit(':').next()?.trim().parse::<u64>().ok())
        .sum();
    let json = out
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("the JSON report parses"));
    Outcome {
        ok,
        errors,
        error_lines,
        json,
    }
}

/// Run one README line with bash, `$L` set; it must succeed with requests answered and
/// none failed, and the counts must agree with each other.
fn run_line(line: &str, limit: Duration) -> Outcome {
    let (ok, out) = run_with_limit(
        Command::new("bash")
            .args(["-c", line])
            .env("L", loadgen())
            .current_dir(root()),
        limit,
    );
    assert!(ok, "`{line}` failed:\n{out}");
    let o = parse_report(&out);
    assert!(o.ok > 0, "`{line}`: no request succeeded:\n{out}");
    assert_eq!(o.errors, 0, "`{line}`: errors:\n{out}");
    assert_eq!(o.errors, o.error_lines, "`{line}`: errors by kind:\n{out}");
    if let Some(j) = &o.json {
        let errors: u64 = j["errors"]
            .as_object()
            .expect("errors")
            .values()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(j["ok"].as_u64(), Some(o.ok), "{j}");
        assert_eq!(j["requests"].as_u64(), Some(o.ok + errors), "{j}");
        assert!(j["total"].as_u64() >= Some(o.ok), "{j}");
        assert!(j["loadgen_cpu_s"].as_f64().is_some_and(|s| s > 0.0), "{j}");
        // Its own threads, as asked, and how busy they were (a share of them, above zero).
        let asked = line
            .split_whitespace()
            .skip_while(|w| *w != "--threads")
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = asked {
            assert_eq!(j["loadgen_threads"].as_u64(), Some(n), "{j}");
        }
        assert!(j["loadgen_threads"].as_u64().is_some_and(|n| n >= 1), "{j}");
        assert!(
            j["loadgen_busy"]
                .as_f64()
                .is_some_and(|b| b > 0.0 && b < 1.5),
            "{j}"
        );
    }
    o
}

#[test]
fn every_readme_loadgen_command_runs_as_printed() {
    let lines = readme_commands();
    assert!(lines.len() >= 6, "README load-test block: {lines:?}");
    let mock_port = free_port();
    let default_config =
        std::fs::read_to_string(root().join("switchyard.toml")).expect("switchyard.toml");
    let router = start_router(&default_config);
    let router_addr = router
        .url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/mcp"))
        .expect("router address")
        .to_string();
    let local = |l: &str| {
        l.replace("127.0.0.1:9000", &format!("127.0.0.1:{mock_port}"))
            .replace("127.0.0.1:8080", &router_addr)
    };

    // The mock first (the README starts it in the background).
    let mock_line = lines
        .iter()
        .find(|l| l.starts_with("$L mock-server --http"))
        .expect("the mock-server line");
    let mock_args = local(mock_line.trim_end_matches('&').trim());
    let mut mock_args = mock_args.split_whitespace().skip(1);
    let _mock = Proc(
        Command::new(loadgen())
            .args(&mut mock_args)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the mock"),
    );
    wait_for_port(mock_port, Duration::from_secs(10));

    let mut ran = Vec::new();
    for line in &lines {
        if line.starts_with("$L mock-server") {
            continue;
        }
        if line.contains("--help") {
            let (ok, out) = run_with_limit(
                Command::new("bash").args(["-c", line]).env("L", loadgen()),
                Duration::from_secs(10),
            );
            assert!(ok && out.contains("Usage"), "`{line}`:\n{out}");
            ran.push("help");
            continue;
        }
        let o = run_line(&local(line), Duration::from_secs(60));
        if line.contains("--json -") {
            assert!(o.json.is_some(), "`{line}` printed no JSON report");
        }
        if line.contains("--stdio") {
            ran.push("stdio");
        } else if line.contains("--era modern") {
            ran.push("modern");
        } else if line.contains("--rate") {
            ran.push("rate");
        } else {
            ran.push("closed");
        }
    }
    for kind in ["closed", "rate", "modern", "stdio", "help"] {
        assert!(
            ran.contains(&kind),
            "the README has no {kind} command: {ran:?}"
        );
    }
}

/// The case of the bug report: one stdio process, a few sessions, a short run. A limit that
/// wrapped to zero in the line decoder lost every reply.
#[test]
fn stdio_mode_with_one_process_answers_every_request() {
    let lg = loadgen().display().to_string();
    let line = format!(
        "{lg} run --stdio \"{lg} mock-server --stdio\" --sessions 4 --duration 2 --warmup 0.5 --ramp-up 0.2 --json -"
    );
    let o = run_line(&line, Duration::from_secs(30));
    let j = o.json.expect("JSON report");
    assert!(
        j["server_cpu_s"].as_f64().is_some_and(|s| s >= 0.0),
        "the stdio server's CPU is reported: {j}"
    );
}

/// The 2026-07-28 era over stdio, spread over several processes, with the whole request mix.
#[test]
fn stdio_mode_modern_mix_over_several_processes() {
    let lg = loadgen().display().to_string();
    let line = format!(
        "{lg} run --stdio \"{lg} mock-server --stdio\" --era modern --processes 3 --sessions 12 --mix call=2,list=1,read=1,ping=1 --duration 2 --warmup 0.5 --ramp-up 0.2 --json -"
    );
    run_line(&line, Duration::from_secs(30));
}

/// An open-loop run over stdio keeps to its rate.
#[test]
fn stdio_mode_open_loop() {
    let lg = loadgen().display().to_string();
    let line = format!(
        "{lg} run --stdio \"{lg} mock-server --stdio\" --processes 2 --sessions 8 --rate 200 --duration 2 --warmup 0.5 --ramp-up 0.2 --json -"
    );
    let o = run_line(&line, Duration::from_secs(30));
    let j = o.json.expect("JSON report");
    // 200/s for 2 s: every scheduled request is in the report, answered or not.
    let requests = j["requests"].as_u64().unwrap_or(0);
    assert!((360..=440).contains(&requests), "{j}");
}
