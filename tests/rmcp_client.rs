//! The Rust SDK client (`rmcp`, legacy handshake) through Switchyard's HTTP and stdio fronts,
//! to server-everything (stdio) and a Python SDK server (Streamable HTTP); and string and
//! integer request ids kept distinct end to end.

mod common;

use common::*;
use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams};
use rmcp::service::RunningService;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::json;

fn two_servers_config(py_url: &str) -> String {
    format!(
        "{}[[servers]]\nname = \"py\"\nurl = \"{py_url}\"\n",
        everything_server("everything")
    )
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).expect("serialize");
    text_of(&v)
}

async fn exercise(client: RunningService<RoleClient, ()>) {
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        tools.contains(&"everything__echo".to_string()) && tools.contains(&"py__shout".to_string()),
        "{tools:?}"
    );

    let args = json!({"message": "rmcp"})
        .as_object()
        .cloned()
        .expect("object");
    let r = client
        .call_tool(CallToolRequestParams::new("everything__echo").with_arguments(args))
        .await
        .expect("call");
    assert_eq!(text(&r), "Echo: rmcp");
    let args = json!({"text": "rust"})
        .as_object()
        .cloned()
        .expect("object");
    let r = client
        .call_tool(CallToolRequestParams::new("py__shout").with_arguments(args))
        .await
        .expect("call");
    assert_eq!(text(&r), "RUST");

    let prompts: Vec<String> = client
        .list_all_prompts()
        .await
        .expect("prompts/list")
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert!(
        prompts.contains(&"py__summarize".to_string()),
        "{prompts:?}"
    );
    let args = json!({"topic": "ids"})
        .as_object()
        .cloned()
        .expect("object");
    let p = client
        .get_prompt(GetPromptRequestParams::new("py__summarize").with_arguments(args))
        .await
        .expect("prompts/get");
    assert!(serde_json::to_string(&p)
        .expect("json")
        .contains("Summarize ids."));

    let resources: Vec<String> = client
        .list_all_resources()
        .await
        .expect("resources/list")
        .into_iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert!(
        resources.contains(&"py://note".to_string()),
        "{resources:?}"
    );
    let r = client
        .read_resource(ReadResourceRequestParams::new("py://note"))
        .await
        .expect("resources/read");
    assert!(serde_json::to_string(&r)
        .expect("json")
        .contains("a note from python"));

    let err = client
        .call_tool(CallToolRequestParams::new("nobody__x"))
        .await;
    assert!(err.is_err(), "an unknown tool is an error");
    client.cancel().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_over_http_front() {
    let (_py, py_url) = start_py_server();
    let router = start_router(&two_servers_config(&py_url));
    let transport = StreamableHttpClientTransport::from_uri(router.url.as_str());
    let client = ().serve(transport).await.expect("rmcp initialize through switchyard");
    exercise(client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_over_stdio_front() {
    let (_py, py_url) = start_py_server();
    let dir = TempDir::new("rmcp-stdio");
    let config = dir.write("switchyard.toml", &two_servers_config(&py_url));
    let mut cmd = tokio::process::Command::new(switchyard_bin());
    cmd.arg("stdio")
        .arg("--config")
        .arg(&config)
        .env("SWITCHYARD_LOG", "warn");
    let client =
        ().serve(TokioChildProcess::new(cmd).expect("spawn"))
            .await
            .expect("rmcp initialize over stdio");
    exercise(client).await;
}

/// rmcp in its 2026-07-28 mode: `server/discover`, then self-contained requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_in_discover_mode_over_http_front() {
    use rmcp::model::ProtocolVersion;
    use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
    let (_py, py_url) = start_py_server();
    let router = start_router(&two_servers_config(&py_url));
    let transport = StreamableHttpClientTransport::from_uri(router.url.as_str());
    let mode = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let client =
        ().serve_with_lifecycle(transport, mode)
            .await
            .expect("rmcp discover through switchyard");
    exercise(client).await;
}

/// The string "1" and the integer 1, in flight at once in one session, come back as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_and_integer_ids_stay_distinct() {
    let router = start_router(&everything_server("everything"));
    let mut c = RawClient::new(&router.url);
    c.initialize("2025-11-25", "{}").await;
    let call = |id: serde_json::Value, msg: &'static str| {
        let c = c.clone();
        async move {
            c.call(
                id,
                "tools/call",
                json!({"name": "everything__echo", "arguments": {"message": msg}}),
            )
            .await
        }
    };
    let (s, n) = tokio::join!(call(json!("1"), "string"), call(json!(1), "number"));
    assert_eq!(s.response()["id"], json!("1"));
    assert_eq!(text_of(&s.response()["result"]), "Echo: string");
    assert_eq!(n.response()["id"], json!(1));
    assert_eq!(text_of(&n.response()["result"]), "Echo: number");
    // Raw bytes too: the id comes back byte for byte (a string with escapes).
    let r = c
        .post(r#"{"jsonrpc":"2.0","id":"a\u0062c","method":"ping"}"#)
        .await;
    assert!(
        String::from_utf8_lossy(&r.body).contains(r#""id":"a\u0062c""#),
        "{:?}",
        r.body
    );
}
