//! The project's conformance fixture: a dual-era stdio MCP server implementing the tools,
//! resources and prompts that the official conformance suite's server scenarios call (see each
//! scenario's description in the suite). Switchyard fronts it in tests/conformance.rs; it is our
//! own code, written for that purpose, and uses serde_json values for clarity, not speed.
//!
//! Eras: it answers `initialize` (2025 handshake era) and `server/discover` (2026-07-28). A
//! request whose `params._meta` carries `io.modelcontextprotocol/protocolVersion` is served the
//! 2026 way: results carry `resultType` and cache hints, logs need a per-request level, and
//! whatever needs the client (elicitation, sampling, roots) comes back as an `input_required`
//! result with an HMAC-signed `requestState`, never as a request of our own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use switchyard::protocol::log_level_rank;
use switchyard::wire::hex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{oneshot, Mutex};

const IMAGE: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
const AUDIO: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// The fixture's state: its stdout, the requests it has sent the client (legacy era), the
/// key that signs its `requestState`, the lists the trigger tools change, and the 2026
/// `subscriptions/listen` requests open on it.
struct Fixture {
    out: Mutex<tokio::io::Stdout>,
    next: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    key: [u8; 32],
    extra_tool: AtomicBool,
    extra_prompt: AtomicBool,
    listens: Mutex<Vec<(Value, Value)>>,
    /// A handshake was made: the connection is a handshake-era session from then on.
    initialized: AtomicBool,
}

/// A JSON-RPC error: code, message, data (null for none).
type Fail = (i64, String, Value);

fn fail(code: i64, message: impl Into<String>) -> Fail {
    (code, message.into(), Value::Null)
}

/// One request as the fixture serves it.
struct Req<'a> {
    params: &'a Value,
    /// Sent the 2026-07-28 way (`_meta` carries the protocol version).
    modern: bool,
}

impl Req<'_> {
    fn meta(&self, key: &str) -> Option<&Value> {
        self.params
            .get("_meta")
            .and_then(|m| m.get(format!("io.modelcontextprotocol/{key}")))
    }

    fn input(&self, key: &str) -> Option<&Value> {
        self.params.get("inputResponses").and_then(|r| r.get(key))
    }

    fn declared(&self, capability: &str) -> bool {
        !self.modern
            || self
                .meta("clientCapabilities")
                .and_then(|c| c.get(capability))
                .is_some_and(|c| !c.is_null())
    }
}

impl Fixture {
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

    /// A log line: always in the handshake era (the client's level filters it); in 2026
    /// only for a request that asked for logs, at or above its level.
    async fn log(&self, req: &Req<'_>, level: &str, data: &str) {
        if req.modern {
            match req
                .meta("logLevel")
                .and_then(Value::as_str)
                .and_then(log_level_rank)
            {
                Some(min) if log_level_rank(level).is_some_and(|r| r >= min) => {}
                _ => return,
            }
        }
        self.notify(
            "notifications/message",
            json!({"level": level, "logger": "fixture", "data": data}),
        )
        .await;
    }

    /// Ask the client for something (`key` names it in a 2026 `inputRequests`). Handshake
    /// era: a request of our own, answered mid-call. 2026: the answer if the retry carries
    /// it, or else the `input_required` result to return.
    async fn ask(&self, req: &Req<'_>, key: &str, method: &str, params: Value) -> Asked {
        if req.modern {
            return match req.input(key) {
                Some(answer) => Asked::Answer(answer.clone()),
                None => Asked::Need(json!({"resultType": "input_required",
                    "inputRequests": {key: {"method": method, "params": params}}})),
            };
        }
        let id = format!("fixture-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().await.insert(id.clone(), tx);
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let reply = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(reply)) => reply,
            _ => return Asked::Failed("no reply".into()),
        };
        match reply.get("error") {
            Some(e) => Asked::Failed(e["message"].as_str().unwrap_or("error").to_string()),
            None => Asked::Answer(reply["result"].clone()),
        }
    }

    /// `requestState` as `<hex payload>.<hex HMAC-SHA256>`: readable, but not forgeable.
    fn seal(&self, payload: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload.as_bytes());
        format!(
            "{}.{}",
            hex::encode(payload.as_bytes()),
            hex::encode(&mac.finalize().into_bytes())
        )
    }

    fn unseal(&self, token: Option<&Value>) -> Result<String, Fail> {
        let bad = || fail(-32602, "requestState failed its integrity check");
        let token = token.and_then(Value::as_str).ok_or_else(bad)?;
        let (payload, tag) = token.split_once('.').ok_or_else(bad)?;
        let payload = hex::decode(payload).ok_or_else(bad)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(&payload);
        mac.verify_slice(&hex::decode(tag).ok_or_else(bad)?)
            .map_err(|_| bad())?;
        String::from_utf8(payload).map_err(|_| bad())
    }

    /// A list changed: tell the handshake-era client, or each 2026 listen stream that asked.
    async fn list_changed(&self, req: &Req<'_>, kind: &str) {
        let method = format!("notifications/{kind}/list_changed");
        if !req.modern {
            self.notify(&method, json!({})).await;
            return;
        }
        let filter = format!("{kind}ListChanged");
        let listens = self.listens.lock().await.clone();
        for (id, wants) in listens {
            if wants.get(&filter) == Some(&Value::Bool(true)) {
                self.notify(
                    &method,
                    json!({"_meta": {"io.modelcontextprotocol/subscriptionId": id}}),
                )
                .await;
            }
        }
    }
}

impl Fixture {
    /// `notifications/resources/updated`: to the handshake-era client, or each 2026 listen
    /// stream subscribed to `uri`.
    async fn resource_updated(&self, req: &Req<'_>, uri: &str) {
        let method = "notifications/resources/updated";
        if !req.modern {
            self.notify(method, json!({"uri": uri})).await;
            return;
        }
        let listens = self.listens.lock().await.clone();
        for (id, wants) in listens {
            let subscribed = wants["resourceSubscriptions"]
                .as_array()
                .is_some_and(|u| u.iter().any(|u| u == uri));
            if subscribed {
                self.notify(
                    method,
                    json!({"uri": uri, "_meta": {"io.modelcontextprotocol/subscriptionId": id}}),
                )
                .await;
            }
        }
    }
}

enum Asked {
    Answer(Value),
    Need(Value),
    Failed(String),
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = (std::process::id() as u8)
            .wrapping_mul(31)
            .wrapping_add(i as u8 * 7);
    }
    let fx = Arc::new(Fixture {
        out: Mutex::new(tokio::io::stdout()),
        next: AtomicU64::new(1),
        waiting: Mutex::new(HashMap::new()),
        key,
        extra_tool: AtomicBool::new(false),
        extra_prompt: AtomicBool::new(false),
        listens: Mutex::new(Vec::new()),
        initialized: AtomicBool::new(false),
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
                if let Some(tx) = fx.waiting.lock().await.remove(key) {
                    let _ = tx.send(msg);
                }
            }
            continue;
        };
        let params = msg.get("params").cloned().unwrap_or(json!({}));
        let Some(id) = id else {
            if method == "notifications/cancelled" {
                // A closed 2026 listen stream.
                let gone = params.get("requestId");
                fx.listens.lock().await.retain(|(id, _)| Some(id) != gone);
            }
            continue;
        };
        let modern = params
            .pointer("/_meta/io.modelcontextprotocol~1protocolVersion")
            .is_some();
        if method == "initialize" {
            fx.initialized.store(true, Ordering::Relaxed);
        } else if modern && fx.initialized.load(Ordering::Relaxed) {
            // Strict on purpose: a gateway must take a 2026 client's envelope out before it
            // reaches a handshake-era session (tests rely on this refusal to prove it does).
            let error = json!({"code": -32600, "message": "a handshake-era session got a 2026-07-28 request envelope"});
            fx.send(json!({"jsonrpc": "2.0", "id": id, "error": error}))
                .await;
            continue;
        }
        if method == "subscriptions/listen" && modern {
            let wants = params.get("notifications").cloned().unwrap_or(json!({}));
            let mut accepted = serde_json::Map::new();
            for k in [
                "toolsListChanged",
                "promptsListChanged",
                "resourcesListChanged",
            ] {
                if wants.get(k) == Some(&Value::Bool(true)) {
                    accepted.insert(k.into(), Value::Bool(true));
                }
            }
            if let Some(uris) = wants.get("resourceSubscriptions") {
                accepted.insert("resourceSubscriptions".into(), uris.clone());
            }
            fx.listens.lock().await.push((id.clone(), wants));
            fx.notify(
                "notifications/subscriptions/acknowledged",
                json!({"notifications": accepted, "_meta": {"io.modelcontextprotocol/subscriptionId": id}}),
            )
            .await;
            continue; // open until cancelled
        }
        let fx = fx.clone();
        tokio::spawn(async move {
            let req = Req {
                params: &params,
                modern,
            };
            let reply = match handle(&fx, &method, &req).await {
                Ok(mut result) => {
                    if modern {
                        decorate(&mut result, &method);
                    }
                    json!({"jsonrpc": "2.0", "id": id, "result": result})
                }
                Err((code, message, data)) => {
                    let mut error = json!({"code": code, "message": message});
                    if !data.is_null() {
                        error["data"] = data;
                    }
                    json!({"jsonrpc": "2.0", "id": id, "error": error})
                }
            };
            fx.send(reply).await;
        });
    }
}

/// What a 2026 client expects on every result: `resultType`, and cache hints on lists and
/// reads (this fixture's lists change only through the trigger tools, which say so).
fn decorate(result: &mut Value, method: &str) {
    let Some(obj) = result.as_object_mut() else {
        return;
    };
    obj.entry("resultType").or_insert(json!("complete"));
    if obj["resultType"] != "complete" {
        return;
    }
    let ttl = match method {
        "server/discover"
        | "tools/list"
        | "prompts/list"
        | "resources/list"
        | "resources/templates/list" => 60_000,
        "resources/read" => 1_000,
        _ => return,
    };
    obj.entry("ttlMs").or_insert(json!(ttl));
    obj.entry("cacheScope").or_insert(json!("public"));
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

const CAPABILITIES: &str = r#"{"tools": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true},
    "prompts": {"listChanged": true}, "logging": {}, "completions": {}}"#;

fn capabilities() -> Value {
    serde_json::from_str(CAPABILITIES).unwrap_or_default()
}

async fn handle(fx: &Fixture, method: &str, req: &Req<'_>) -> Result<Value, Fail> {
    let params = req.params;
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let server_info = json!({"name": "switchyard-conformance-fixture", "version": "1.0.0"});
    Ok(match method {
        "initialize" => json!({
            "protocolVersion": params["protocolVersion"].as_str().unwrap_or("2025-11-25"),
            "capabilities": capabilities(),
            "serverInfo": server_info,
        }),
        "server/discover" => json!({
            "supportedVersions": ["2026-07-28"],
            "capabilities": capabilities(),
            "serverInfo": server_info,
            "_meta": {"io.modelcontextprotocol/serverInfo": server_info},
        }),
        "ping" | "resources/subscribe" | "resources/unsubscribe" => json!({}),
        "logging/setLevel" => {
            let level = params["level"].as_str().unwrap_or("info").to_string();
            fx.log(req, "info", &format!("Log level set to: {level}"))
                .await;
            json!({})
        }
        "completion/complete" => {
            json!({"completion": {"values": [], "total": 0, "hasMore": false}})
        }
        "tools/list" => {
            let mut tools = vec![
                tool(
                    "test_simple_text",
                    "Tests simple text content response",
                    no_args(),
                ),
                tool(
                    "test_image_content",
                    "Tests image content response",
                    no_args(),
                ),
                tool(
                    "test_audio_content",
                    "Tests audio content response",
                    no_args(),
                ),
                tool(
                    "test_embedded_resource",
                    "Tests embedded resource content response",
                    no_args(),
                ),
                tool(
                    "test_multiple_content_types",
                    "Tests response with multiple content types",
                    no_args(),
                ),
                tool(
                    "test_tool_with_logging",
                    "Tests tool that emits log messages during execution",
                    no_args(),
                ),
                tool(
                    "test_tool_with_progress",
                    "Tests tool that reports progress notifications",
                    no_args(),
                ),
                tool(
                    "test_error_handling",
                    "Tests error response handling",
                    no_args(),
                ),
                tool(
                    "test_sampling",
                    "Tests server-initiated sampling",
                    string_arg("prompt", "The prompt to send to the LLM"),
                ),
                tool(
                    "test_elicitation",
                    "Tests server-initiated elicitation",
                    string_arg("message", "The message to show the user"),
                ),
                tool(
                    "test_elicitation_sep1034_defaults",
                    "Tests elicitation with default values per SEP-1034",
                    no_args(),
                ),
                tool(
                    "test_elicitation_sep1330_enums",
                    "Tests elicitation with enum schemas per SEP-1330",
                    no_args(),
                ),
                tool(
                    "json_schema_2020_12_tool",
                    "Tool with JSON Schema 2020-12 features (SEP-1613)",
                    json!({
                        "$schema": "https://json-schema.org/draft/2020-12/schema",
                        "type": "object",
                        "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                            "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                        "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                            "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                            "phone": {"type": "string"}, "email": {"type": "string"}},
                        "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                        "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                        "then": {"required": ["phone"]},
                        "else": {"required": ["email"]},
                        "additionalProperties": false
                    }),
                ),
                tool(
                    "test_trigger_tool_change",
                    "Adds or removes test_dynamic_tool, and says the tool list changed",
                    no_args(),
                ),
                tool(
                    "test_trigger_prompt_change",
                    "Adds or removes test_dynamic_prompt, and says the prompt list changed",
                    no_args(),
                ),
                tool(
                    "test_logging_tool",
                    "Logs only when the request asked for a log level",
                    no_args(),
                ),
                tool(
                    "test_missing_capability",
                    "Needs the client's sampling capability",
                    no_args(),
                ),
                tool(
                    "test_streaming_elicitation",
                    "Asks for a name, reporting progress first",
                    no_args(),
                ),
                tool(
                    "test_touch_watched",
                    "Says test://watched-resource was updated",
                    no_args(),
                ),
                tool(
                    "test_ask_forever",
                    "Asks for a name, again and again, never completing (2026-07-28)",
                    no_args(),
                ),
            ];
            for name in MRTR_TOOLS {
                tools.push(tool(
                    name,
                    "Multi round-trip request (input_required) test",
                    no_args(),
                ));
            }
            if fx.extra_tool.load(Ordering::Relaxed) {
                tools.push(tool(
                    "test_dynamic_tool",
                    "Present after test_trigger_tool_change",
                    no_args(),
                ));
            }
            json!({"tools": tools})
        }
        "tools/call" => {
            return call_tool(fx, params["name"].as_str().unwrap_or(""), &args, req).await
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
                    // 2026 (SEP-2164): -32602 with the uri; the handshake era used -32002.
                    None => {
                        let code = if req.modern { -32602 } else { -32002 };
                        return Err((
                            code,
                            format!("Resource not found: {uri}"),
                            json!({"uri": uri}),
                        ));
                    }
                },
            };
            json!({"contents": [content]})
        }
        "prompts/list" => {
            let mut prompts = vec![
                json!({"name": "test_simple_prompt", "description": "A simple prompt without arguments"}),
                json!({"name": "test_prompt_with_arguments", "description": "A prompt with required arguments", "arguments": [
                    {"name": "arg1", "description": "First test argument", "required": true},
                    {"name": "arg2", "description": "Second test argument", "required": true}]}),
                json!({"name": "test_prompt_with_embedded_resource", "description": "A prompt that includes an embedded resource", "arguments": [
                    {"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]}),
                json!({"name": "test_prompt_with_image", "description": "A prompt that includes image content"}),
                json!({"name": "test_input_required_result_prompt", "description": "A prompt that asks the user for context first"}),
            ];
            if fx.extra_prompt.load(Ordering::Relaxed) {
                prompts.push(json!({"name": "test_dynamic_prompt", "description": "Present after test_trigger_prompt_change"}));
            }
            json!({"prompts": prompts})
        }
        "prompts/get" if params["name"] == "test_input_required_result_prompt" => {
            let schema = json!({"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]});
            let context = match elicit(
                fx,
                req,
                "user_context",
                "What context should the prompt use?",
                schema,
            )
            .await?
            {
                Ok(content) => content["context"].as_str().unwrap_or("").to_string(),
                Err(need) => return Ok(need),
            };
            json!({"messages": [{"role": "user", "content": {"type": "text", "text": format!("Context: {context}")}}]})
        }
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
                other => return Err(fail(-32602, format!("Unknown prompt: {other}"))),
            };
            json!({"messages": messages})
        }
        other => return Err(fail(-32601, format!("Method not found: {other}"))),
    })
}

const MRTR_TOOLS: [&str; 8] = [
    "test_input_required_result_elicitation",
    "test_input_required_result_sampling",
    "test_input_required_result_list_roots",
    "test_input_required_result_request_state",
    "test_input_required_result_multiple_inputs",
    "test_input_required_result_multi_round",
    "test_input_required_result_tampered_state",
    "test_input_required_result_capabilities",
];

/// Ask for a form; the accepted content, or the `input_required` result to return. A
/// retry whose answer is not an elicitation result is refused (-32602).
async fn elicit(
    fx: &Fixture,
    req: &Req<'_>,
    key: &str,
    message: &str,
    schema: Value,
) -> Result<Result<Value, Value>, Fail> {
    match fx
        .ask(
            req,
            key,
            "elicitation/create",
            json!({"mode": "form", "message": message, "requestedSchema": schema}),
        )
        .await
    {
        Asked::Need(need) => Ok(Err(need)),
        Asked::Failed(e) => Err(fail(-32603, e)),
        Asked::Answer(a) => match a["action"].as_str() {
            Some("accept") => Ok(Ok(a.get("content").cloned().unwrap_or(json!({})))),
            Some(_) => Ok(Ok(json!({}))),
            None => Err(fail(
                -32602,
                format!("inputResponses[{key}] is not an elicitation result"),
            )),
        },
    }
}

/// Ask for a name (`user_name`); greet it, or the `input_required` result to return.
async fn greet(fx: &Fixture, req: &Req<'_>) -> Result<Value, Fail> {
    let schema = name_schema("name");
    Ok(
        match elicit(fx, req, "user_name", "What is your name?", schema).await? {
            Ok(c) => text(&format!("Hello, {}!", c["name"].as_str().unwrap_or(""))),
            Err(need) => need,
        },
    )
}

/// A retry's `inputResponses` must be an object of objects.
fn check_inputs(req: &Req<'_>) -> Result<(), Fail> {
    match req.params.get("inputResponses") {
        None => Ok(()),
        Some(Value::Object(m)) if m.values().all(Value::is_object) => Ok(()),
        Some(_) => Err(fail(
            -32602,
            "inputResponses must map keys to result objects",
        )),
    }
}

fn sampling(text: &str, max_tokens: u32) -> Value {
    json!({"messages": [{"role": "user", "content": {"type": "text", "text": text}}], "maxTokens": max_tokens})
}

fn sampled_text(answer: &Value) -> String {
    answer
        .pointer("/content/text")
        .and_then(Value::as_str)
        .unwrap_or("No response")
        .to_string()
}

fn name_schema(field: &str) -> Value {
    json!({"type": "object", "properties": {field: {"type": "string"}}, "required": [field]})
}

async fn call_tool(fx: &Fixture, name: &str, args: &Value, req: &Req<'_>) -> Result<Value, Fail> {
    let params = req.params;
    let pause = || tokio::time::sleep(Duration::from_millis(50));
    check_inputs(req)?;
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
        "test_tool_with_logging" | "test_logging_tool" => {
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
                fx.log(req, "info", msg).await;
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
                    fx.notify(
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
        "test_trigger_tool_change" => {
            fx.extra_tool.fetch_xor(true, Ordering::Relaxed);
            fx.list_changed(req, "tools").await;
            text("tool list changed")
        }
        "test_trigger_prompt_change" => {
            fx.extra_prompt.fetch_xor(true, Ordering::Relaxed);
            fx.list_changed(req, "prompts").await;
            text("prompt list changed")
        }
        "test_dynamic_tool" => text("dynamic tool called"),
        "test_touch_watched" => {
            fx.resource_updated(req, "test://watched-resource").await;
            text("touched")
        }
        "test_ask_forever" if req.modern => json!({"resultType": "input_required",
            "inputRequests": {"again": {"method": "elicitation/create", "params": {"mode": "form",
                "message": "What is your name, again?", "requestedSchema": name_schema("name")}}}}),
        "test_missing_capability" => {
            if !req.declared("sampling") {
                return Err((
                    -32021,
                    "this tool needs the sampling capability".into(),
                    json!({"requiredCapabilities": {"sampling": {}}}),
                ));
            }
            text("sampling capability present")
        }
        "test_streaming_elicitation" => {
            if let Some(token) = params.pointer("/_meta/progressToken") {
                fx.notify(
                    "notifications/progress",
                    json!({"progressToken": token, "progress": 1, "total": 2}),
                )
                .await;
            }
            greet(fx, req).await?
        }
        "test_sampling" => {
            let prompt = args["prompt"].as_str().unwrap_or("");
            match fx
                .ask(
                    req,
                    "sample",
                    "sampling/createMessage",
                    sampling(prompt, 100),
                )
                .await
            {
                Asked::Answer(r) => text(&format!("LLM response: {}", sampled_text(&r))),
                Asked::Need(need) => need,
                Asked::Failed(e) => text(&format!("Sampling not supported or error: {e}")),
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
            match fx
                .ask(
                    req,
                    "form",
                    "elicitation/create",
                    json!({"mode": "form", "message": message, "requestedSchema": schema}),
                )
                .await
            {
                Asked::Answer(r) => text(&format!(
                    "User response: action={}, content={}",
                    r["action"].as_str().unwrap_or(""),
                    r.get("content").cloned().unwrap_or(json!({}))
                )),
                Asked::Need(need) => need,
                Asked::Failed(e) => text(&format!("Elicitation not supported or error: {e}")),
            }
        }
        "json_schema_2020_12_tool" => {
            text(&format!("JSON Schema 2020-12 tool called with: {args}"))
        }
        other if MRTR_TOOLS.contains(&other) => return mrtr_tool(fx, other, req).await,
        other => return Err(fail(-32602, format!("Unknown tool: {other}"))),
    })
}

/// The suite's multi round-trip tools (`input-required-result-*` scenarios). They answer in
/// either era: in the handshake era `ask` sends real requests, so no retry is needed.
async fn mrtr_tool(fx: &Fixture, name: &str, req: &Req<'_>) -> Result<Value, Fail> {
    let need_state = |need: Value, state: &str| {
        let mut need = need;
        need["requestState"] = json!(fx.seal(state));
        need
    };
    Ok(match name {
        "test_input_required_result_elicitation" => greet(fx, req).await?,
        "test_input_required_result_sampling" => {
            match fx
                .ask(
                    req,
                    "capital_question",
                    "sampling/createMessage",
                    sampling("What is the capital of France?", 100),
                )
                .await
            {
                Asked::Answer(r) => text(&sampled_text(&r)),
                Asked::Need(need) => need,
                Asked::Failed(e) => return Err(fail(-32603, e)),
            }
        }
        "test_input_required_result_list_roots" => {
            match fx.ask(req, "client_roots", "roots/list", json!({})).await {
                Asked::Answer(r) => {
                    let uris: Vec<&str> = r["roots"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["uri"].as_str())
                        .collect();
                    text(&format!("Roots: {}", uris.join(", ")))
                }
                Asked::Need(need) => need,
                Asked::Failed(e) => return Err(fail(-32603, e)),
            }
        }
        "test_input_required_result_request_state"
        | "test_input_required_result_tampered_state" => {
            let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
            if req.modern
                && req.params.get("inputResponses").is_some()
                && fx.unseal(req.params.get("requestState"))? != name
            {
                return Err(fail(-32602, "requestState belongs to another request"));
            }
            match elicit(fx, req, "confirm", "Please confirm", schema).await? {
                Ok(_) => text("state-ok: requestState verified"),
                Err(need) => need_state(need, name),
            }
        }
        "test_input_required_result_multiple_inputs" => {
            if !req.modern {
                // The handshake era asks one thing at a time.
                for (key, method, params) in [
                    (
                        "user_name",
                        "elicitation/create",
                        json!({"mode": "form", "message": "What is your name?", "requestedSchema": name_schema("name")}),
                    ),
                    (
                        "greeting",
                        "sampling/createMessage",
                        sampling("Generate a greeting", 50),
                    ),
                    ("client_roots", "roots/list", json!({})),
                ] {
                    if let Asked::Failed(e) = fx.ask(req, key, method, params).await {
                        return Err(fail(-32603, e));
                    }
                }
                return Ok(text("All inputs received."));
            }
            let have = ["user_name", "greeting", "client_roots"]
                .iter()
                .all(|k| req.input(k).is_some());
            if have && fx.unseal(req.params.get("requestState"))? == name {
                let who = req
                    .input("user_name")
                    .and_then(|a| a.pointer("/content/name"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                return Ok(text(&format!("Hello, {who}! All inputs received.")));
            }
            need_state(
                json!({"resultType": "input_required", "inputRequests": {
                    "user_name": {"method": "elicitation/create", "params": {"mode": "form", "message": "What is your name?", "requestedSchema": name_schema("name")}},
                    "greeting": {"method": "sampling/createMessage", "params": sampling("Generate a greeting", 50)},
                    "client_roots": {"method": "roots/list", "params": {}},
                }}),
                name,
            )
        }
        "test_input_required_result_multi_round" => {
            if !req.modern {
                for (key, message, field) in [
                    ("step1", "Step 1: What is your name?", "name"),
                    ("step2", "Step 2: What is your favorite color?", "color"),
                ] {
                    let _answered = elicit(fx, req, key, message, name_schema(field)).await?;
                }
                return Ok(text("Done: both steps answered"));
            }
            let round = match req.params.get("requestState") {
                None => 1,
                state => match fx.unseal(state)?.as_str() {
                    "multi-round-1" if req.input("step1").is_some() => 2,
                    "multi-round-2" if req.input("step2").is_some() => 3,
                    "multi-round-1" => 1,
                    "multi-round-2" => 2,
                    _ => return Err(fail(-32602, "requestState belongs to another request")),
                },
            };
            let ask = |key: &str, message: &str, field: &str| {
                json!({"resultType": "input_required", "inputRequests": {
                key: {"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": name_schema(field)}}}})
            };
            match round {
                1 => need_state(
                    ask("step1", "Step 1: What is your name?", "name"),
                    "multi-round-1",
                ),
                2 => need_state(
                    ask("step2", "Step 2: What is your favorite color?", "color"),
                    "multi-round-2",
                ),
                _ => text(&format!(
                    "Done: favorite color {}",
                    req.input("step2")
                        .and_then(|a| a.pointer("/content/color"))
                        .and_then(Value::as_str)
                        .unwrap_or("")
                )),
            }
        }
        "test_input_required_result_capabilities" => {
            if !req.modern {
                return Ok(text("capability-gated inputs need the 2026-07-28 era"));
            }
            let mut wanted = serde_json::Map::new();
            if req.declared("elicitation") {
                wanted.insert("user_name".into(), json!({"method": "elicitation/create", "params": {"mode": "form", "message": "What is your name?", "requestedSchema": name_schema("name")}}));
            }
            if req.declared("sampling") {
                wanted.insert("greeting".into(), json!({"method": "sampling/createMessage", "params": sampling("Generate a greeting", 50)}));
            }
            if req.declared("roots") {
                wanted.insert(
                    "client_roots".into(),
                    json!({"method": "roots/list", "params": {}}),
                );
            }
            if wanted.is_empty() || wanted.keys().all(|k| req.input(k).is_some()) {
                text(&format!(
                    "capabilities honoured: {}",
                    wanted.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            } else {
                json!({"resultType": "input_required", "inputRequests": wanted})
            }
        }
        _ => return Err(fail(-32602, format!("Unknown tool: {name}"))),
    })
}
