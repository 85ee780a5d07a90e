//! The version matrix: clients of every revision Switchyard serves (2025-03-26, 2025-06-18,
//! 2025-11-25 and 2026-07-28), the Python `mcp` client and the Rust `rmcp` client, through one
//! router to a handshake-era server (server-everything, stdio) and a server pinned to
//! 2026-07-28 (the Python SDK server refusing anything else), at once. Each client lists, calls,
//! reads and gets on both; every client of a revision with elicitation answers a question from
//! each server, so elicitation crosses eras in both directions and passes through within each.
//!
//! One test, run in sequence: a shared stdio server can only route its question to the one
//! client with calls in flight there.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, ElicitRequestParams, ElicitResult,
    ElicitationAction, GetPromptRequestParams, ProtocolVersion, ReadResourceRequestParams,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{json, Map, Value};

/// server-everything as `everything`, told of elicitation (so it offers its asking tool), and
/// the 2026-only Python server as `py`, its era detected.
fn matrix_config(py_url: &str) -> String {
    format!(
        "{}client_capabilities = [\"elicitation\"]\n[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n",
        everything_server("everything")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revision_reaches_servers_of_both_eras() {
    let (_py, py_url) = start_py_server_with(free_port(), &["--only", "2026-07-28"]);
    let router = start_router(&matrix_config(&py_url));

    // The server really is pinned: a handshake-era client is refused by it directly.
    let refused = RawClient::new(&py_url)
        .post(r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"direct","version":"1"}}}"#)
        .await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.response()["error"]["code"], -32022);

    for version in ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"] {
        python_client(&router, version);
    }
    for version in ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"] {
        rmcp_client(&router, version).await;
    }
}

/// tests/peers/py_client.py at `version`; it checks each step itself.
fn python_client(router: &Router, version: &str) {
    let mut cmd = Command::new(python());
    cmd.arg(root().join("tests/peers/py_client.py"))
        .args(["http", router.url.as_str(), version]);
    // 2025-03-26 has no elicitation; a client of it declares none.
    if version != "2025-03-26" {
        cmd.arg("--elicit");
    }
    let (ok, out) = run_with_limit(&mut cmd, Duration::from_secs(120));
    assert!(
        ok && out.contains("PY-CLIENT-OK"),
        "python client at {version} failed:\n{out}"
    );
    assert!(
        out.contains("connected in mode") && out.contains("ok: everything__echo"),
        "{out}"
    );
    if version != "2025-03-26" {
        assert!(out.contains("ok: py's question answered"), "{out}");
    }
}

/// An rmcp client that declares elicitation and answers every question with the name "Ada".
#[derive(Clone)]
struct AnswersAda(ClientConfig);

impl ClientHandler for AnswersAda {
    fn get_info(&self) -> ClientConfig {
        self.0.clone()
    }

    async fn create_elicitation(
        &self,
        _request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let content = json!({"name": "Ada"});
        Ok(ElicitResult::new(ElicitationAction::Accept).with_content(content))
    }
}

fn args(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    text_of(&serde_json::to_value(result).unwrap_or_default())
}

async fn rmcp_client(router: &Router, version: &str) {
    let elicits = version != "2025-03-26";
    let capabilities: ClientCapabilities = serde_json::from_value(if elicits {
        json!({"elicitation": {}})
    } else {
        json!({})
    })
    .unwrap_or_default();
    let protocol = match version {
        "2025-03-26" => ProtocolVersion::V_2025_03_26,
        "2025-06-18" => ProtocolVersion::V_2025_06_18,
        "2025-11-25" => ProtocolVersion::V_2025_11_25,
        _ => ProtocolVersion::V_2026_07_28,
    };
    let config = ClientConfig::new(
        capabilities,
        rmcp::model::Implementation::new("matrix", "1"),
    )
    .with_protocol_version(protocol);
    let handler = AnswersAda(config);
    let transport = StreamableHttpClientTransport::from_uri(router.url.as_str());
    let client = if version == "2026-07-28" {
        let mode = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        handler.serve_with_lifecycle(transport, mode).await
    } else {
        handler.serve(transport).await
    }
    .unwrap_or_else(|e| panic!("rmcp at {version}: connecting failed: {e}"));
    let negotiated = client
        .peer_info()
        .map(|i| i.protocol_version.to_string())
        .unwrap_or_default();
    assert_eq!(negotiated, version, "rmcp negotiated another revision");

    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap_or_else(|e| panic!("rmcp at {version}: tools/list: {e}"))
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for want in ["everything__echo", "py__shout"] {
        assert!(tools.iter().any(|t| t == want), "{version}: {tools:?}");
    }
    let call = |name: &'static str, a: Value| {
        let client = &client;
        async move {
            client
                .call_tool(CallToolRequestParams::new(name).with_arguments(args(a)))
                .await
                .unwrap_or_else(|e| panic!("rmcp at {version}: {name}: {e}"))
        }
    };
    let r = call("everything__echo", json!({"message": version})).await;
    assert_eq!(text(&r), format!("Echo: {version}"));
    let r = call("py__shout", json!({"text": "matrix"})).await;
    assert_eq!(text(&r), "MATRIX");
    let r = call("py__proto", json!({})).await;
    assert_eq!(
        text(&r),
        "2026-07-28",
        "{version}: the 2026-only server is spoken to in its own revision"
    );

    for (uri, want) in [
        ("py://note", "a note from python"),
        (
            "demo://resource/static/document/architecture.md",
            "Architecture",
        ),
    ] {
        let r = client
            .read_resource(ReadResourceRequestParams::new(uri))
            .await
            .unwrap_or_else(|e| panic!("rmcp at {version}: read {uri}: {e}"));
        let body = serde_json::to_string(&r).unwrap_or_default();
        assert!(body.contains(want), "{version}: {uri}: {body}");
    }

    let g = client
        .get_prompt(
            GetPromptRequestParams::new("py__summarize")
                .with_arguments(args(json!({"topic": "eras"}))),
        )
        .await
        .unwrap_or_else(|e| panic!("rmcp at {version}: py__summarize: {e}"));
    assert!(serde_json::to_string(&g)
        .unwrap_or_default()
        .contains("Summarize eras."));
    let g = client
        .get_prompt(GetPromptRequestParams::new("everything__simple-prompt"))
        .await
        .unwrap_or_else(|e| panic!("rmcp at {version}: everything__simple-prompt: {e}"));
    assert!(!g.messages.is_empty(), "{version}: {g:?}");

    if elicits {
        let r = call("everything__trigger-elicitation-request", json!({})).await;
        assert!(text(&r).contains("- Name: Ada"), "{version}: {}", text(&r));
        let r = call("py__ask_resolved", json!({})).await;
        assert_eq!(text(&r), "accept:Ada", "{version}");
    } else {
        // A client that declared no elicitation is never asked: the server is refused and
        // says so in its result, at once.
        let r = call("everything__trigger-elicitation-request", json!({})).await;
        assert_eq!(r.is_error, Some(true), "{version}: {}", text(&r));
        assert!(
            text(&r).contains("did not declare"),
            "{version}: {}",
            text(&r)
        );
    }
    client
        .cancel()
        .await
        .unwrap_or_else(|e| panic!("rmcp at {version}: close: {e}"));
}
