//! `switchyard demo-server`: a small stdio MCP server of our own, so that the default
//! configuration works with nothing else installed. Tools, a resource, a template and a
//! prompt. Not on any hot path: it uses serde_json values for clarity.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

const README: &str =
    "Switchyard's demo server: tools echo, add, sleep; this resource; a greeting prompt.";

/// Serves the demo server on stdin and stdout until stdin closes.
pub async fn run() {
    let out = Arc::new(Mutex::new(tokio::io::stdout()));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let (Some(id), Some(method)) = (
            msg.get("id").cloned(),
            msg.get("method").and_then(Value::as_str),
        ) else {
            continue; // notifications and responses need no answer
        };
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        let method = method.to_string();
        let out = out.clone();
        tokio::spawn(async move {
            let reply = match answer(&method, &params, &out).await {
                Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err((code, message)) => {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
                }
            };
            send(&out, &reply).await;
        });
    }
}

async fn send(out: &Mutex<tokio::io::Stdout>, msg: &Value) {
    let mut line = msg.to_string();
    line.push('\n');
    let mut out = out.lock().await;
    let _ = out.write_all(line.as_bytes()).await;
    let _ = out.flush().await;
}

async fn answer(
    method: &str,
    params: &Value,
    out: &Mutex<tokio::io::Stdout>,
) -> Result<Value, (i64, String)> {
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    Ok(match method {
        "initialize" => json!({
            "protocolVersion": params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-11-25"),
            "capabilities": {"tools": {}, "resources": {"subscribe": false}, "prompts": {}, "logging": {}},
            "serverInfo": {"name": "switchyard-demo", "version": env!("CARGO_PKG_VERSION")},
        }),
        "ping" | "logging/setLevel" => json!({}),
        "tools/list" => json!({"tools": [
            {"name": "echo", "description": "Returns its text argument",
             "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
            {"name": "add", "description": "Adds two numbers",
             "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
            {"name": "sleep", "description": "Waits `ms` milliseconds, reporting progress `steps` times",
             "inputSchema": {"type": "object", "properties": {"ms": {"type": "integer"}, "steps": {"type": "integer"}}}},
        ]}),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            match name {
                "echo" => text_result(args.get("text").and_then(Value::as_str).unwrap_or("")),
                "add" => {
                    let n = |k: &str| args.get(k).and_then(Value::as_f64);
                    match (n("a"), n("b")) {
                        (Some(a), Some(b)) => text_result(&(a + b).to_string()),
                        _ => {
                            json!({"content": [{"type": "text", "text": "a and b must be numbers"}], "isError": true})
                        }
                    }
                }
                "sleep" => {
                    let ms = args
                        .get("ms")
                        .and_then(Value::as_u64)
                        .unwrap_or(100)
                        .min(60_000);
                    let steps = args
                        .get("steps")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                        .min(1000);
                    let token = params.pointer("/_meta/progressToken").cloned();
                    for step in 1..=steps.max(1) {
                        tokio::time::sleep(Duration::from_millis(ms / steps.max(1))).await;
                        if let (Some(token), true) = (&token, steps > 0) {
                            let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                                "params": {"progressToken": token, "progress": step, "total": steps}});
                            send(out, &note).await;
                        }
                    }
                    text_result(&format!("slept {ms} ms"))
                }
                other => return Err((-32602, format!("unknown tool: {other}"))),
            }
        }
        "resources/list" => json!({"resources": [
            {"uri": "demo://readme", "name": "readme", "mimeType": "text/plain"},
        ]}),
        "resources/templates/list" => json!({"resourceTemplates": [
            {"uriTemplate": "demo://item/{id}", "name": "item", "mimeType": "text/plain"},
        ]}),
        "resources/read" => {
            let uri = params.get("uri").and_then(Value::as_str).unwrap_or("");
            let text = if uri == "demo://readme" {
                README.to_string()
            } else if let Some(id) = uri.strip_prefix("demo://item/") {
                format!("item {id}")
            } else {
                return Err((-32002, format!("resource not found: {uri}")));
            };
            json!({"contents": [{"uri": uri, "mimeType": "text/plain", "text": text}]})
        }
        "prompts/list" => json!({"prompts": [
            {"name": "greeting", "description": "Greets someone", "arguments": [{"name": "name", "required": true}]},
        ]}),
        "prompts/get" => {
            let who = args.get("name").and_then(Value::as_str).unwrap_or("world");
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("Say hello to {who}.")}}]})
        }
        other => return Err((-32601, format!("method not found: {other}"))),
    })
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}
