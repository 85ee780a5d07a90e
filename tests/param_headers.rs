//! Tool arguments mirrored into `Mcp-Param-*` headers (2026-07-28, SEP-2243), against the
//! official conformance suite and the Python SDK server, whose `route` tool marks its
//! `region` argument `x-mcp-header: Region` and whose HTTP transport refuses a call whose
//! header and argument disagree. Switchyard must check a 2026 client's headers as a server
//! does (the scenario `http-custom-header-server-validation`, which also passes against the
//! Python server directly), and send them to a 2026 upstream as a client does, whatever
//! era and front the call came in on.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Run one conformance scenario at 2026-07-28 against `url`; all its checks must pass.
fn scenario_passes(url: &str, scenario: &str) -> String {
    let out = TempDir::new("conformance");
    let mut cmd = Command::new(node());
    cmd.arg(conformance_js())
        .args(["server", "--url", url, "--scenario", scenario])
        .args(["--spec-version", "2026-07-28", "-o"])
        .arg(&out.0)
        .current_dir(&out.0);
    let (ok, log) = run_with_limit(&mut cmd, Duration::from_secs(300));
    let (passed, line) = scenario_passed(&log);
    assert!(ok && passed, "{scenario} against {url}: {line}\n{log}");
    log
}

fn py_http_config(py_url: &str) -> String {
    format!("[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\nprefix = \"\"\n")
}

fn py_stdio_config() -> String {
    format!(
        "[[servers]]\nname = \"py\"\ncommand = {:?}\nargs = [{:?}, \"stdio\"]\nprefix = \"\"\n",
        python().display().to_string(),
        root()
            .join("tests/peers/py_server.py")
            .display()
            .to_string()
    )
}

#[test]
fn conformance_custom_headers_directly_and_through_switchyard() {
    let (_py, py_url) = start_py_server();
    // The baseline: the Python server itself passes the scenario.
    scenario_passes(&py_url, "http-custom-header-server-validation");
    // Through Switchyard to it as a 2026 HTTP upstream that validates the headers too.
    let router = start_router(&py_http_config(&py_url));
    scenario_passes(&router.url, "http-custom-header-server-validation");
    // And to the same server over stdio, where no header exists past Switchyard: every
    // refusal the scenario expects is Switchyard's own.
    let router = start_router(&py_stdio_config());
    scenario_passes(&router.url, "http-custom-header-server-validation");
}

/// Call `route` as a 2026 client with these extra headers; returns the HTTP status and the
/// JSON-RPC response.
async fn modern_route(c: &RawClient, args: Value, extra: &[(&str, &str)]) -> (u16, Value) {
    let mut params = json!({"name": "route", "arguments": args});
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params});
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "route"),
    ];
    headers.extend_from_slice(extra);
    let r = c.send(c.request("POST", &body.to_string(), &headers)).await;
    (r.status, r.response().clone())
}

#[tokio::test(flavor = "multi_thread")]
async fn switchyard_checks_and_sends_param_headers() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&py_http_config(&py_url));

    // A handshake-era client sends no such header: Switchyard adds it for the 2026 upstream,
    // base64 where the value needs it, or the server would refuse the call.
    let mut legacy = RawClient::new(&router.url);
    legacy.initialize("2025-11-25", "{}").await;
    for region in ["eu-west", "Zürich", " padded "] {
        let r = legacy
            .call(
                json!(1),
                "tools/call",
                json!({"name": "route", "arguments": {"region": region}}),
            )
            .await;
        assert_eq!(
            text_of(&r.response()["result"]),
            format!("routed to {region}"),
            "{r:?}"
        );
    }

    // A 2026 client's own headers are checked against its arguments before anything is sent.
    let modern = RawClient::new(&router.url);
    let (status, ok) = modern_route(
        &modern,
        json!({"region": "Zürich"}),
        &[("mcp-param-region", "=?base64?WsO8cmljaA==?=")],
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(text_of(&ok["result"]), "routed to Zürich", "{ok}");
    for (why, args, extra) in [
        ("missing", json!({"region": "a"}), vec![]),
        (
            "different",
            json!({"region": "a"}),
            vec![("mcp-param-region", "b")],
        ),
        ("no argument", json!({}), vec![("mcp-param-region", "a")]),
        (
            "bad base64",
            json!({"region": "Hello"}),
            vec![("mcp-param-region", "=?base64?SGVsbG8?=")],
        ),
    ] {
        let (status, r) = modern_route(&modern, args, &extra).await;
        assert_eq!(status, 400, "{why}: {r}");
        assert_eq!(r["error"]["code"], -32020, "{why}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Mcp-Param-Region")),
            "{why}: {r}"
        );
    }
}

/// Over `switchyard stdio` there are no headers to check: a 2026 client's call goes through,
/// and the 2026 HTTP upstream still gets the header it needs.
#[test]
fn stdio_front_calls_a_header_routed_tool() {
    use std::io::{BufRead, BufReader, Write};
    let (_py, py_url) = start_py_server();
    let dir = TempDir::new("param-stdio");
    let config = dir.write("switchyard.toml", &py_http_config(&py_url));
    let mut proc = spawn_stdio(&config, Stdio::inherit());
    let mut stdin = proc.0.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(proc.0.stdout.take().expect("stdout"));
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "route", "arguments": {"region": "Zürich"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    writeln!(stdin, "{call}").expect("write");
    let mut line = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let reply: Value = loop {
        line.clear();
        stdout.read_line(&mut line).expect("read");
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        if v["id"] == 1 {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no reply");
    };
    assert_eq!(text_of(&reply["result"]), "routed to Zürich", "{reply}");
}

/// A 2026 upstream that moves a tool's argument to another header says its tool list changed
/// on the listen stream Switchyard keeps open to it; Switchyard learns the new header from
/// that, so a session that listed the tool before goes on calling it without listing again
/// (it would be refused with -32020 if Switchyard kept sending the old header).
#[tokio::test(flavor = "multi_thread")]
async fn param_headers_relearned_when_the_upstream_tool_list_changes() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&py_http_config(&py_url));
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let mut events = EventStream::open(&c, c.request("GET", "", &[])).await;
    assert_eq!(events.status, 200);
    let listed = c.call(json!(1), "tools/list", json!({})).await;
    assert!(
        listed.response()["result"]["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "zoned")),
        "{:?}",
        listed.response()
    );
    let zoned = json!({"name": "zoned", "arguments": {"zone": "Zürich"}});
    let r = c.call(json!(2), "tools/call", zoned.clone()).await;
    assert_eq!(text_of(&r.response()["result"]), "zoned to Zürich", "{r:?}");

    let r = c
        .call(
            json!(3),
            "tools/call",
            json!({"name": "rezone", "arguments": {}}),
        )
        .await;
    assert_eq!(text_of(&r.response()["result"]), "rezoned", "{r:?}");
    let heard = events
        .until(Duration::from_secs(10), |m| {
            m["method"] == "notifications/tools/list_changed"
        })
        .await;
    assert!(heard.is_some(), "the list change reached the session");
    // The new header is learned by a tools/list Switchyard sends when it hears the change:
    // until that answer is in, a call may still carry the old header and be refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut id = 4;
    loop {
        let r = c.call(json!(id), "tools/call", zoned.clone()).await;
        let reply = r.response().clone();
        if reply.get("result").is_some() {
            assert_eq!(text_of(&reply["result"]), "zoned to Zürich", "{reply}");
            break;
        }
        assert_eq!(
            reply["error"]["code"], -32020,
            "only the old header's refusal: {reply}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "still refused 10 s after the list change: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        id += 1;
    }
}
