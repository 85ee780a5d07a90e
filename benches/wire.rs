//! Criterion benches of the per-message work: envelope parse (ours: serde_json with borrowed
//! RawValue parts) against simd-json's tape and a serde_json DOM, on a 200 B tools/call
//! request, a 20 KB tools/list result (50 tools with schemas) and a 1 MB resources/read
//! result; id splicing; SSE encoding; the in-process request path (client frame parse,
//! routing peek, upstream rewrite, upstream response parse, id restore, delivery); and the
//! extra work of a 2026-07-28 request (its `_meta` and header checks, its transient session,
//! its envelope taken out for a handshake-era upstream, `resultType` added to its result).
//!
//! Run: cargo bench --bench wire   (results: BENCHMARKS.md)

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchyard::protocol::{negotiate, ClientCaps};
use switchyard::router::Session;
use switchyard::session::Sink;
use switchyard::upstream::effects::carry_out;
use switchyard::upstream::{
    channel, Call, CallEdits, Cmd, Origin, Pendings, UpstreamEvents, UpstreamHandle, UpstreamShared,
};
use switchyard::wire::envelope::span_of;
use switchyard::wire::params::ParamsPeek;
use switchyard::wire::rewrite::{splice, Edit};
use switchyard::wire::{sse, Envelope};

fn call_200b() -> String {
    let s = r#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"everything__echo","arguments":{"message":"hello from the benchmark"},"_meta":{"progressToken":"tok-17"}}}"#;
    format!("{s:<200}").trim_end().to_string()
}

fn list_20kb() -> String {
    let tools: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"name":"tool_{i}","description":"Tool number {i} does a useful thing with its inputs and returns a result","inputSchema":{{"type":"object","properties":{{"path":{{"type":"string","description":"A file path"}},"count":{{"type":"integer","minimum":0,"maximum":1000}},"mode":{{"type":"string","enum":["fast","slow","careful"]}},"tags":{{"type":"array","items":{{"type":"string"}}}}}},"required":["path"],"additionalProperties":false}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"result":{{"tools":[{}]}},"jsonrpc":"2.0","id":4}}"#,
        tools.join(",")
    )
}

fn read_1mb() -> String {
    let text: String = (0..1_048_576 / 64)
        .map(|i| format!("line {i:08} of a large resource, with \\\"quotes\\\" and text\\n"))
        .collect();
    format!(
        r#"{{"result":{{"contents":[{{"uri":"file:///big.txt","mimeType":"text/plain","text":"{text}"}}]}},"jsonrpc":"2.0","id":9}}"#
    )
}

fn inputs() -> Vec<(&'static str, Bytes)> {
    vec![
        ("200B_tools_call", Bytes::from(call_200b())),
        ("20KB_tools_list", Bytes::from(list_20kb())),
        ("1MB_resource_read", Bytes::from(read_1mb())),
    ]
}

/// The envelope's members as serde_json's borrowed raw values (what `Envelope::parse` used
/// before it had its own scanner), for comparison.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct RawParts<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a serde_json::value::RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<&'de serde_json::value::RawValue>, D::Error> {
    <&serde_json::value::RawValue as serde::Deserialize>::deserialize(d).map(Some)
}

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, frame) in inputs() {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("switchyard_envelope", name),
            &frame,
            |b, f| b.iter(|| black_box(Envelope::parse(f.clone()).unwrap())),
        );
        // The envelope as it was read before the scanner: serde_json into borrowed
        // `RawValue` parts (the same members, `null` kept as present).
        g.bench_with_input(
            BenchmarkId::new("serde_json_raw_value_parts", name),
            &frame,
            |b, f| b.iter(|| black_box(serde_json::from_slice::<RawParts<'_>>(f).unwrap())),
        );
        // simd-json parses in place, so each run pays a copy of the (immutable) frame.
        let mut scratch = frame.to_vec();
        g.bench_with_input(
            BenchmarkId::new("simd_json_tape_with_copy", name),
            &frame,
            |b, f| {
                b.iter(|| {
                    scratch.clear();
                    scratch.extend_from_slice(f);
                    black_box(
                        simd_json::to_tape(&mut scratch)
                            .unwrap()
                            .as_value()
                            .as_object()
                            .map(|o| o.len()),
                    )
                })
            },
        );
        g.bench_with_input(BenchmarkId::new("serde_json_dom", name), &frame, |b, f| {
            b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(f).unwrap()))
        });
    }
    g.finish();
}

fn rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("rewrite_id");
    for (name, frame) in inputs() {
        let env = Envelope::parse(frame.clone()).unwrap();
        let id = env.id.clone().unwrap();
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(splice(
                    &frame,
                    &mut [Edit {
                        range: id.clone(),
                        with: b"\"client-id-1\"",
                    }],
                ))
            })
        });
    }
    g.finish();
}

fn sse_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("sse_encode");
    for (name, frame) in inputs() {
        g.throughput(Throughput::Bytes(frame.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(sse::encode_event(Some("12-345"), &frame)))
        });
    }
    g.finish();
}

struct NoEvents;
impl UpstreamEvents for NoEvents {
    fn unsolicited(&self, _: &UpstreamHandle, _: &Envelope) {}
    fn ready(&self, _: &switchyard::upstream::UpstreamHandle) {}
}

/// Everything the router does to one small call and its response, minus the sockets.
fn request_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let session = Session::new(
        "b".into(),
        negotiate(None),
        ClientCaps::default(),
        Sink::Channel(tx),
        8,
    );
    let handle = channel(UpstreamShared::new(0, "s".into(), None), 8).0;
    let mut pendings = Pendings::new(handle.shared.clone(), Duration::from_secs(60));
    let request = Bytes::from(call_200b());
    let response_tail = r#","jsonrpc":"2.0","result":{"content":[{"type":"text","text":"Echo: hello from the benchmark"}]}}"#;
    c.bench_function("request_path/200B_call_and_response", |b| {
        b.iter(|| {
            let env = Envelope::parse(request.clone()).unwrap();
            let peek = ParamsPeek::parse(env.params_str().unwrap()).unwrap();
            let token = peek
                .meta_progress_token()
                .map(|t| span_of(&env.frame, t.get()));
            let name = peek.name.map(|n| {
                (
                    span_of(&env.frame, n.get()),
                    Bytes::from_static(b"\"echo\""),
                )
            });
            let client_id = env.id_bytes().unwrap();
            let origin = Origin {
                session: session.clone(),
                sink: session.unsolicited.clone(),
                client_id,
            };
            let uid = handle.next_uid();
            session.begin(&origin.client_id, &handle, uid);
            let call = Box::new(Call {
                env,
                uid,
                edits: CallEdits {
                    name,
                    token,
                    cuts: Vec::new(),
                },
                origin,
                cache_uri: None,
            });
            pendings.command(Cmd::Call(call), Instant::now());
            carry_out(&mut pendings, &handle, &NoEvents, &mut |_, w| {
                black_box(w);
            });
            let response = Bytes::from(format!(r#"{{"id":{uid}{response_tail}"#));
            pendings.inbound(Envelope::parse(response).unwrap(), None);
            carry_out(&mut pendings, &handle, &NoEvents, &mut |_, w| {
                black_box(w);
            });
            black_box(rx.try_recv().unwrap())
        })
    });
}

/// `Router::handle` itself: a request answered locally (`ping`), an unknown tool (routing and
/// an error), and a full `tools/call` round trip through a real stdio child (Switchyard's own
/// demo server, so the figure includes that server and the pipe).
fn router_dispatch(c: &mut Criterion) {
    use switchyard::config::Config;
    use switchyard::router::Router;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = format!(
        "[[servers]]\nname = \"demo\"\ncommand = {:?}\nargs = [\"demo-server\"]\n",
        env!("CARGO_BIN_EXE_switchyard")
    );
    let router = rt.block_on(async { Router::new(Config::parse(&config, "bench").unwrap()) });
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let session = Session::new(
        "b".into(),
        negotiate(None),
        ClientCaps::default(),
        Sink::Channel(tx),
        8,
    );
    rt.block_on(router.wait_ready(&session));
    // `handle` spawns work that waits (an unknown name first refreshes the catalogue).
    let _in_runtime = rt.enter();
    let mut one = |frame: &'static str| {
        let env = Envelope::parse(Bytes::from_static(frame.as_bytes())).unwrap();
        router.handle(&session, env, session.unsolicited.clone());
        rt.block_on(rx.recv()).unwrap()
    };
    assert!(std::str::from_utf8(&one(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"x"}}}"#)).unwrap().contains("\"x\""));
    let mut g = c.benchmark_group("router_dispatch");
    g.bench_function("ping_answered_locally", |b| {
        b.iter(|| black_box(one(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)))
    });
    g.bench_function("unknown_tool_error", |b| {
        b.iter(|| {
            black_box(one(
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope__x"}}"#,
            ))
        })
    });
    g.bench_function("tools_call_round_trip_via_stdio_demo_server", |b| {
        b.iter(|| black_box(one(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"demo__echo","arguments":{"text":"x"}}}"#)))
    });
    g.finish();
    rt.block_on(router.shutdown());
}

fn modern_request_work(c: &mut Criterion) {
    use switchyard::protocol::modern::{
        complete_result, completion, legacy_request, validate, RequestMeta,
    };
    use switchyard::wire::Method;
    let frame = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":17,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello from the benchmark"},"_meta":{"progressToken":"tok-17","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{},"sampling":{}},"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"}}}}"#,
    );
    let header = |name: &str| -> Option<&'static str> {
        match name {
            "mcp-protocol-version" => Some("2026-07-28"),
            "mcp-method" => Some("tools/call"),
            "mcp-name" => Some("echo"),
            _ => None,
        }
    };
    let result = Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":17,"result":{"content":[{"type":"text","text":"hello from the benchmark"}]}}"#,
    );
    let mut g = c.benchmark_group("modern_request");
    g.bench_function("meta_and_header_checks", |b| {
        b.iter(|| {
            let env = Envelope::parse(black_box(frame.clone())).unwrap();
            let meta = RequestMeta::of(&env);
            validate(&env, &meta, &header).unwrap();
            black_box(meta)
        })
    });
    g.bench_function("transient_session", |b| {
        let env = Envelope::parse(frame.clone()).unwrap();
        b.iter_batched(
            || RequestMeta::of(&env),
            |meta| {
                black_box(Session::for_request(
                    Method::ToolsCall,
                    meta,
                    &env.frame,
                    256,
                ))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The envelope taken out by re-parsing the frame (the actor's fallback, for a server
    // whose era is not known yet); on the routed path the cuts come out of the ingress's one
    // read of `params` (in `meta_and_header_checks`).
    g.bench_function("envelope_out_for_legacy_upstream", |b| {
        b.iter(|| black_box(legacy_request(black_box(&frame))))
    });
    // `resultType` added by parsing a finished frame (router-built results), and in the
    // upstream response's own splice, from the range its parse found (the routed path).
    g.bench_function("result_type_added", |b| {
        b.iter(|| black_box(complete_result(black_box(&result), &Method::ToolsCall)))
    });
    let payload = Envelope::parse(result.clone())
        .unwrap()
        .payload_str()
        .unwrap()
        .to_owned();
    g.bench_function("result_type_in_the_response_splice", |b| {
        b.iter(|| black_box(completion(black_box(&payload), &Method::ToolsCall)))
    });
    let big = Bytes::from(read_1mb());
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("result_type_and_hints_added_1MB_read", |b| {
        b.iter(|| black_box(complete_result(black_box(&big), &Method::ResourcesRead)))
    });
    g.finish();
}

criterion_group!(
    benches,
    parse,
    rewrite,
    sse_encode,
    request_path,
    router_dispatch,
    modern_request_work
);
criterion_main!(benches);
