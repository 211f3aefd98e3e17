//! Traces in a real backend: a gateway, a worker and the reference model server export their
//! spans over OTLP to Jaeger (v2, in-memory storage, built from the Go module proxy by
//! `scripts/install-jaeger.sh`; `FLOWC_JAEGER` is its path, set by scripts/test.sh). One
//! request through the 3-step chain `chain3` must come back from Jaeger's query API as one
//! trace, under the trace id of the `traceparent` the gateway answered with: the gateway's
//! span, a hop span for every topic written, a call span for every model, each the child of
//! the one before.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{fp32, http_get, http_post, request, Env, Proc};

/// The Jaeger binary; the test fails (it does not skip) without it.
fn jaeger_bin() -> PathBuf {
    match std::env::var_os("FLOWC_JAEGER") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "FLOWC_JAEGER is not set: build Jaeger with \
             `export FLOWC_JAEGER=\"$(./scripts/install-jaeger.sh | tail -n 1)\"` \
             (scripts/test.sh does this) and run the test again"
        ),
    }
}

/// Jaeger on free ports; returns the process and its OTLP/HTTP and query addresses. The five
/// ports are picked while all are held, so they differ; another process may still take one
/// between the pick and Jaeger's bind, so a start that fails on "address already in use" is
/// tried again on fresh ports.
fn start_jaeger(env: &Env) -> (Proc, String, String) {
    for attempt in 1.. {
        let [otlp_grpc, otlp_http, query_http, query_grpc, health] =
            support::free_ports::<5>().map(|p| format!("127.0.0.1:{p}"));
        let mut command = Command::new(jaeger_bin());
        command
            .arg("--config")
            .arg(support::root().join("scripts/jaeger.yaml"))
            .env("JAEGER_OTLP_GRPC", &otlp_grpc)
            .env("JAEGER_OTLP_HTTP", &otlp_http)
            .env("JAEGER_QUERY_HTTP", &query_http)
            .env("JAEGER_QUERY_GRPC", &query_grpc)
            .env("JAEGER_HEALTH", &health);
        let mut jaeger = Proc::spawn_command("jaeger", env.dir.path(), command);
        let deadline = Instant::now() + Duration::from_secs(60);
        let healthy = loop {
            if let Ok((200, _, _)) = http_get(&format!("http://{health}/status"), &[]) {
                break true;
            }
            if jaeger.try_wait().is_some() {
                let log = jaeger.log();
                assert!(
                    attempt < 3 && log.contains("address already in use"),
                    "jaeger exited:\n{log}"
                );
                break false;
            }
            assert!(
                Instant::now() < deadline,
                "jaeger never became healthy:\n{}",
                jaeger.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        if healthy {
            return (jaeger, format!("http://{otlp_http}"), format!("http://{query_http}"));
        }
    }
    unreachable!("the loop returns or panics")
}

/// One span as Jaeger's v1 query API returns it.
#[derive(Debug)]
struct Span {
    id: String,
    parent: Option<String>,
    name: String,
    service: String,
}

/// The trace's spans once `want` of them arrived (exporters batch), or what came by the
/// deadline.
fn fetch_trace(query: &str, trace_id: &str, want: usize) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut spans = Vec::new();
        if let Ok((200, _, body)) = http_get(&format!("{query}/api/traces/{trace_id}"), &[]) {
            let v: Value = serde_json::from_str(&body).expect("Jaeger answers JSON");
            let trace = &v["data"][0];
            for s in trace["spans"].as_array().into_iter().flatten() {
                let process = s["processID"].as_str().unwrap_or_default();
                spans.push(Span {
                    id: s["spanID"].as_str().unwrap_or_default().to_string(),
                    parent: s["references"]
                        .as_array()
                        .and_then(|r| r.iter().find(|r| r["refType"] == "CHILD_OF"))
                        .and_then(|r| r["spanID"].as_str())
                        .map(str::to_string),
                    name: s["operationName"].as_str().unwrap_or_default().to_string(),
                    service: trace["processes"][process]["serviceName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                });
            }
        }
        if spans.len() >= want || Instant::now() > deadline {
            return spans;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn one_request_is_one_trace_in_jaeger() {
    let mut env = Env::start();
    let (_jaeger, otlp, query) = start_jaeger(&env);
    // Every flowc process this test starts exports to it (they inherit the environment);
    // the batch processor sends every 100 ms instead of every 5 s.
    std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp);
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    env.start_model_server(&["tests/e2e/chain3.yaml"]);
    env.apply(&["tests/e2e/chain3.yaml"], 2);
    env.start_worker("w");
    let gateway = env.start_gateway("gw", &[]);
    env.wait_pipeline_ready(&gateway.http, "chain3");

    let body = flowc_oip::json::request_to_json(&request(vec![fp32("INPUT", vec![4], vec![1.0, 2.0, 3.0, 4.0])]))
        .expect("a valid request");
    let (status, headers, answer) = http_post(
        &format!("{}/v2/pipelines/chain3/infer", gateway.http),
        &[("content-type", "application/json")],
        &body.to_string(),
    )
    .expect("infer");
    assert_eq!(status, 200, "{answer}\n{}", env.logs());
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
    };
    let traceparent = header("traceparent");
    let trace_id = traceparent.split('-').nth(1).expect("a W3C traceparent").to_string();
    let key = header("x-request-id");

    // gateway → hop into each step's model inputs → call → hop into its outputs → … →
    // hop into the pipeline's outputs: 1 + 3 × 3 + 1 spans.
    let spans = fetch_trace(&query, &trace_id, 11);
    let shown: Vec<String> = spans
        .iter()
        .map(|s| format!("{} ({}) {} <- {:?}", s.name, s.service, s.id, s.parent))
        .collect();
    let by_name: BTreeMap<&str, &Span> = spans.iter().map(|s| (s.name.as_str(), s)).collect();
    let span = |name: &str| -> &Span {
        by_name
            .get(name)
            .copied()
            .unwrap_or_else(|| panic!("no span {name} in trace {trace_id}: {shown:#?}\n{}", env.logs()))
    };
    let parent_of = |child: &str, parent: &str| {
        assert_eq!(
            span(child).parent.as_deref(),
            Some(span(parent).id.as_str()),
            "{child} is not a child of {parent}: {shown:#?}"
        );
    };
    let gateway_span = span("gateway chain3.pipeline");
    assert_eq!(gateway_span.service, "flowc-gateway");
    // The gateway's span id is the one it answered with.
    assert_eq!(Some(gateway_span.id.as_str()), traceparent.split('-').nth(2));
    let chain = [
        "gateway chain3.pipeline",
        "hop model.add-a.inputs",
        "hop model.add-a.outputs",
        "hop model.mul-b.inputs",
        "hop model.mul-b.outputs",
        "hop model.add-c.inputs",
        "hop model.add-c.outputs",
        "hop pipeline.chain3.outputs",
    ];
    for pair in chain.windows(2) {
        parent_of(pair[1], pair[0]);
    }
    for model in ["add-a", "mul-b", "add-c"] {
        let call = format!("call {model}");
        parent_of(&call, &format!("hop model.{model}.inputs"));
        assert_eq!(span(&call).service, "flowc-worker");
    }
    assert_eq!(span("hop pipeline.chain3.outputs").service, "flowc-worker");
    assert_eq!(spans.len(), 11, "one span per hop and call, no more: {shown:#?}");
    eprintln!("request {key}: trace {trace_id} in Jaeger:\n{}", shown.join("\n"));
}
