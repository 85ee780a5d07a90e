//! The project's conformance fixture: a stdio MCP server implementing the tools, resources and
//! prompts that the official conformance suite's server scenarios call (see the suite's
//! SERVER_REQUIREMENTS.md). Switchyard fronts it in tests/conformance.rs; it is our own code,
//! written for that purpose, and uses serde_json values for clarity, not speed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{oneshot, Mutex};

const IMAGE: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// Writes to stdout and matches replies to the requests this server sends the client.
struct Peer {
    out: Mutex<tokio::io::Stdout>,
    next: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

impl Peer {
    async fn send(&self, msg: Value) {
        let mut line = msg.to_string();
        line.push('\n');
        let mut out = self.out.lock().await;
        let _ = out.write_all(line.as_bytes()).await;
        let _ = out.flush().await;
    }

    async fn notify(&self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// A server-to-client request; the reply's `result`, or its `error` as Err.
    async fn request(&self, method: &str, params: Value) -> Result<Value, String> {
        let id = format!("fixture-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().await.insert(id.clone(), tx);
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let reply = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .map_err(|_| "no reply".to_string())?
            .map_err(|_| "dropped".to_string())?;
        match reply.get("error") {
            Some(e) => Err(e["message"].as_str().unwrap_or("error").to_string()),
            None => Ok(reply["result"].clone()),
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let peer = Arc::new(Peer {
        out: Mutex::new(tokio::io::stdout()),
        next: AtomicU64::new(1),
        waiting: Mutex::new(HashMap::new()),
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(msg) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        let id = msg.get("id").cloned();
        let Some(method) = msg.get("method").and_then(Value::as_str).map(str::to_owned) else {
            // A reply to one of our requests.
            if let Some(key) = id.as_ref().and_then(Value::as_str) {
                if let Some(tx) = peer.waiting.lock().await.remove(key) {
                    let _ = tx.send(msg);
                }
            }
            continue;
        };
        let Some(id) = id else { continue }; // notifications need nothing
        let params = msg.get("params").cloned().unwrap_or(json!({}));
        let peer = peer.clone();
        tokio::spawn(async move {
            let reply = match handle(&peer, &method, &params).await {
                Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err((code, message)) => {
                    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
                }
            };
            peer.send(reply).await;
        });
    }
}

fn text(t: &str) -> Value {
    json!({"content": [{"type": "text", "text": t}]})
}

fn tool(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "description": description, "inputSchema": schema})
}

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn string_arg(name: &str, description: &str) -> Value {
    json!({"type": "object", "properties": {name: {"type": "string", "description": description}}, "required": [name]})
}

async fn handle(peer: &Peer, method: &str, params: &Value) -> Result<Value, (i64, String)> {
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    Ok(match method {
        "initialize" => json!({
            "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-11-25"),
            "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true},
                             "prompts": {"listChanged": true}, "logging": {}, "completions": {}},
            "serverInfo": {"name": "switchyard-conformance-fixture", "version": "1.0.0"},
        }),
        "ping" | "resources/subscribe" | "resources/unsubscribe" => json!({}),
        "logging/setLevel" => {
            let level = params["level"].as_str().unwrap_or("info").to_string();
            peer.notify("notifications/message", json!({"level": "info", "logger": "fixture", "data": format!("Log level set to: {level}")})).await;
            json!({})
        }
        "completion/complete" => {
            json!({"completion": {"values": [], "total": 0, "hasMore": false}})
        }
        "tools/list" => json!({"tools": [
            tool("test_simple_text", "Tests simple text content response", no_args()),
            tool("test_image_content", "Tests image content response", no_args()),
            tool("test_audio_content", "Tests audio content response", no_args()),
            tool("test_embedded_resource", "Tests embedded resource content response", no_args()),
            tool("test_multiple_content_types", "Tests response with multiple content types", no_args()),
            tool("test_tool_with_logging", "Tests tool that emits log messages during execution", no_args()),
            tool("test_tool_with_progress", "Tests tool that reports progress notifications", no_args()),
            tool("test_error_handling", "Tests error response handling", no_args()),
            tool("test_sampling", "Tests server-initiated sampling", string_arg("prompt", "The prompt to send to the LLM")),
            tool("test_elicitation", "Tests server-initiated elicitation", string_arg("message", "The message to show the user")),
            tool("test_elicitation_sep1034_defaults", "Tests elicitation with default values per SEP-1034", no_args()),
            tool("test_elicitation_sep1330_enums", "Tests elicitation with enum schemas per SEP-1330", no_args()),
            tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features (SEP-1613)", json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
                "additionalProperties": false
            })),
        ]}),
        "tools/call" => {
            return call_tool(peer, params["name"].as_str().unwrap_or(""), &args, params).await
        }
        "resources/list" => json!({"resources": [
            {"uri": "test://static-text", "name": "static-text", "title": "Static Text Resource", "description": "A static text resource for testing", "mimeType": "text/plain"},
            {"uri": "test://static-binary", "name": "static-binary", "title": "Static Binary Resource", "description": "A static binary resource (image) for testing", "mimeType": "image/png"},
            {"uri": "test://watched-resource", "name": "watched-resource", "title": "Watched Resource", "description": "A resource that can be subscribed to", "mimeType": "text/plain"},
        ]}),
        "resources/templates/list" => json!({"resourceTemplates": [
            {"uriTemplate": "test://template/{id}/data", "name": "template", "title": "Resource Template", "description": "A resource template with parameter substitution", "mimeType": "application/json"},
        ]}),
        "resources/read" => {
            let uri = params["uri"].as_str().unwrap_or("");
            let content = match uri {
                "test://static-text" => {
                    json!({"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."})
                }
                "test://static-binary" => {
                    json!({"uri": uri, "mimeType": "image/png", "blob": IMAGE})
                }
                "test://watched-resource" => {
                    json!({"uri": uri, "mimeType": "text/plain", "text": "Watched resource content"})
                }
                _ => match uri
                    .strip_prefix("test://template/")
                    .and_then(|r| r.strip_suffix("/data"))
                {
                    Some(id) => json!({"uri": uri, "mimeType": "application/json",
                        "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()}),
                    None => return Err((-32002, format!("Resource not found: {uri}"))),
                },
            };
            json!({"contents": [content]})
        }
        "prompts/list" => json!({"prompts": [
            {"name": "test_simple_prompt", "description": "A simple prompt without arguments"},
            {"name": "test_prompt_with_arguments", "description": "A prompt with required arguments", "arguments": [
                {"name": "arg1", "description": "First test argument", "required": true},
                {"name": "arg2", "description": "Second test argument", "required": true}]},
            {"name": "test_prompt_with_embedded_resource", "description": "A prompt that includes an embedded resource", "arguments": [
                {"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
            {"name": "test_prompt_with_image", "description": "A prompt that includes image content"},
        ]}),
        "prompts/get" => {
            let user = |content: Value| json!({"role": "user", "content": content});
            let messages = match params["name"].as_str().unwrap_or("") {
                "test_simple_prompt" => vec![user(
                    json!({"type": "text", "text": "This is a simple prompt for testing."}),
                )],
                "test_prompt_with_arguments" => vec![user(json!({"type": "text", "text": format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'", args["arg1"].as_str().unwrap_or(""), args["arg2"].as_str().unwrap_or(""))}))],
                "test_prompt_with_embedded_resource" => vec![
                    user(
                        json!({"type": "resource", "resource": {"uri": args["resourceUri"].as_str().unwrap_or(""), "mimeType": "text/plain", "text": "Embedded resource content for testing."}}),
                    ),
                    user(
                        json!({"type": "text", "text": "Please process the embedded resource above."}),
                    ),
                ],
                "test_prompt_with_image" => vec![
                    user(json!({"type": "image", "data": IMAGE, "mimeType": "image/png"})),
                    user(json!({"type": "text", "text": "Please analyze the image above."})),
                ],
                other => return Err((-32602, format!("Unknown prompt: {other}"))),
            };
            json!({"messages": messages})
        }
        other => return Err((-32601, format!("Method not found: {other}"))),
    })
}

async fn call_tool(
    peer: &Peer,
    name: &str,
    args: &Value,
    params: &Value,
) -> Result<Value, (i64, String)> {
    let pause = || tokio::time::sleep(Duration::from_millis(50));
    Ok(match name {
        "test_simple_text" => text("This is a simple text response for testing."),
        "test_image_content" => {
            json!({"content": [{"type": "image", "data": IMAGE, "mimeType": "image/png"}]})
        }
        "test_audio_content" => {
            json!({"content": [{"type": "audio", "data": AUDIO, "mimeType": "audio/wav"}]})
        }
        "test_embedded_resource" => json!({"content": [{"type": "resource", "resource": {
            "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]}),
        "test_multiple_content_types" => json!({"content": [
            {"type": "text", "text": "Multiple content types test:"},
            {"type": "image", "data": IMAGE, "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json", "text": "{\"test\":\"data\",\"value\":123}"}},
        ]}),
        "test_tool_with_logging" => {
            for (i, msg) in [
                "Tool execution started",
                "Tool processing data",
                "Tool execution completed",
            ]
            .iter()
            .enumerate()
            {
                if i > 0 {
                    pause().await;
                }
                peer.notify(
                    "notifications/message",
                    json!({"level": "info", "logger": "fixture", "data": msg}),
                )
                .await;
            }
            text("Tool with logging executed successfully")
        }
        "test_tool_with_progress" => {
            let token = params.pointer("/_meta/progressToken").cloned();
            for (i, step) in [0, 50, 100].iter().enumerate() {
                if i > 0 {
                    pause().await;
                }
                if let Some(token) = &token {
                    peer.notify(
                        "notifications/progress",
                        json!({"progressToken": token, "progress": step, "total": 100,
                        "message": format!("Completed step {step} of 100")}),
                    )
                    .await;
                }
            }
            text(&token.map(|t| t.to_string()).unwrap_or_default())
        }
        "test_error_handling" => {
            json!({"content": [{"type": "text", "text": "This tool intentionally returns an error for testing"}], "isError": true})
        }
        "test_sampling" => {
            let prompt = args["prompt"].as_str().unwrap_or("");
            let r = peer.request("sampling/createMessage", json!({
                "messages": [{"role": "user", "content": {"type": "text", "text": prompt}}], "maxTokens": 100})).await;
            match r {
                Ok(r) => text(&format!(
                    "LLM response: {}",
                    r.pointer("/content/text")
                        .and_then(Value::as_str)
                        .unwrap_or("No response")
                )),
                Err(e) => text(&format!("Sampling not supported or error: {e}")),
            }
        }
        "test_elicitation"
        | "test_elicitation_sep1034_defaults"
        | "test_elicitation_sep1330_enums" => {
            let (message, schema) = match name {
                "test_elicitation" => (
                    args["message"].as_str().unwrap_or("").to_string(),
                    json!({
                    "type": "object", "properties": {"response": {"type": "string", "description": "User's response"}}, "required": ["response"]}),
                ),
                "test_elicitation_sep1034_defaults" => (
                    "Please review and update the form fields with defaults".into(),
                    json!({
                    "type": "object", "required": [], "properties": {
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "description": "Verification status", "default": true}}}),
                ),
                _ => (
                    "Please select options from the enum fields".into(),
                    json!({
                    "type": "object", "required": [], "properties": {
                        "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                            {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}, {"const": "value3", "title": "Third Option"}]},
                        "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                            "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                            "items": {"anyOf": [{"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"}, {"const": "value3", "title": "Third Choice"}]}}}}),
                ),
            };
            let r = peer
                .request(
                    "elicitation/create",
                    json!({"mode": "form", "message": message, "requestedSchema": schema}),
                )
                .await;
            match r {
                Ok(r) => text(&format!(
                    "User response: action={}, content={}",
                    r["action"].as_str().unwrap_or(""),
                    r.get("content").cloned().unwrap_or(json!({}))
                )),
                Err(e) => text(&format!("Elicitation not supported or error: {e}")),
            }
        }
        "json_schema_2020_12_tool" => {
            text(&format!("JSON Schema 2020-12 tool called with: {args}"))
        }
        other => return Err((-32602, format!("Unknown tool: {other}"))),
    })
}
