//! The pipeline gateway (PIPELINES.md §7) end to end on a real broker (Apache Kafka, or tansu with FLOWC_TEST_BROKER=tansu)
//! with the reference model server: `flowc gateway` processes answer synchronous HTTP and gRPC
//! calls through the topics that `flowc worker` processes run.
//!
//! Needs the broker: `scripts/install-kafka.sh` / `scripts/install-broker.sh` (run by
//! `scripts/test.sh`).

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use flowc_oip::json::request_to_json;
use flowc_runtime::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use flowc_runtime::proto::inference::{ModelInferRequest, ModelInferResponse, ModelReadyRequest};
use support::{
    check_answer, fp32, http_get, http_post, int32, json_tensors, metric, request, response_tensors, worked_examples,
    Env, GatewayAddr, WORKED_EXAMPLE_SAMPLES,
};
use tonic::Code;

fn json_body(request: &ModelInferRequest) -> String {
    request_to_json(request).expect("encodes").to_string()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

fn error_text(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"))
        .to_string()
}

/// A gRPC call of the gateway with `metadata`.
fn grpc_infer(
    runtime: &tokio::runtime::Runtime,
    gateway: &GatewayAddr,
    metadata: &[(&'static str, &str)],
    request: ModelInferRequest,
) -> Result<tonic::Response<ModelInferResponse>, tonic::Status> {
    runtime.block_on(async {
        let mut client = GrpcInferenceServiceClient::connect(gateway.grpc.clone())
            .await
            .expect("connect to the gateway's gRPC port");
        let mut r = tonic::Request::new(request);
        for (k, v) in metadata {
            r.metadata_mut().insert(*k, v.parse().expect("metadata value"));
        }
        client.model_infer(r).await
    })
}

fn grpc_ready(runtime: &tokio::runtime::Runtime, gateway: &GatewayAddr, name: &str) -> Result<bool, tonic::Status> {
    runtime.block_on(async {
        let mut client = GrpcInferenceServiceClient::connect(gateway.grpc.clone())
            .await
            .expect("connect");
        let r = ModelReadyRequest {
            name: name.to_string(),
            version: String::new(),
        };
        client.model_ready(r).await.map(|r| r.into_inner().ready)
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every worked example of §9 over HTTP (path form and `Seldon-Model` header form) and gRPC
/// (`seldon-model` metadata), with exact answers.
#[test]
fn worked_examples_over_http_and_grpc() {
    let mut env = Env::start();
    env.start_model_server(&[
        "samples/join.yaml",
        "samples/conditional.yaml",
        "samples/cycle.yaml",
        "samples/detectors.yaml",
    ]);
    for sample in WORKED_EXAMPLE_SAMPLES.iter().chain(&["samples/detectors.yaml"]) {
        env.apply(&[sample], 2);
    }
    env.start_worker("worker");
    let gw = env.start_gateway("gateway", &[]);
    let rt = runtime();
    let mut cases = worked_examples();
    cases.push((
        "iris-detectors",
        request(vec![fp32("predict", vec![1, 4], vec![5.1, 3.5, 1.4, 0.2])]),
        "predict INT64 [1, 1] = [0]\nis_outlier INT64 [1] = [0]\ninstance_score FP64 [1] = [1.4609817913017316]"
            .to_string(),
    ));
    for (pipeline, req, expected) in &cases {
        env.wait_pipeline_ready(&gw.http, pipeline);
        // Path form: no proxy needed (flowc).
        let (status, headers, body) = http_post(
            &format!("{}/v2/pipelines/{pipeline}/infer", gw.http),
            &[],
            &json_body(req),
        )
        .expect("http");
        assert_eq!(status, 200, "{pipeline}: {body}\n{}", env.logs());
        check_answer(pipeline, "http path", &json_tensors(&body), expected);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["model_name"], *pipeline, "{body}");
        let ids = header(&headers, "x-request-id");
        assert_eq!(ids.len(), 1, "{headers:?}");
        let (partition, rest) = ids[0].split_once('.').expect("a gateway key");
        assert!(partition.parse::<u32>().expect("partition") < 2, "{ids:?}");
        assert!(rest.starts_with(&format!("{pipeline}.")), "{ids:?}");

        // Header form, as Seldon clients call it, with the caller's request id.
        let id = format!("req-{pipeline}");
        let seldon_model = format!("{pipeline}.pipeline");
        let (status, headers, body) = http_post(
            &format!("{}/v2/models/anything/infer", gw.http),
            &[("Seldon-Model", &seldon_model), ("x-request-id", &id)],
            &json_body(req),
        )
        .expect("http");
        assert_eq!(status, 200, "{pipeline}: {body}");
        check_answer(pipeline, "http header", &json_tensors(&body), expected);
        let ids = header(&headers, "x-request-id");
        assert_eq!(ids.len(), 1, "{headers:?}");
        assert!(ids[0].ends_with(&format!(".{pipeline}.{id}")), "{ids:?}");
        // The model server's `x-*` response header, carried by the records (§6) to the answer.
        assert!(
            !header(&headers, "x-flowc-reference-model").is_empty(),
            "{pipeline}: {headers:?}"
        );

        // gRPC with `seldon-model` metadata.
        let answer = grpc_infer(&rt, &gw, &[("seldon-model", &seldon_model)], req.clone())
            .unwrap_or_else(|s| panic!("{pipeline} over gRPC: {s:?}\n{}", env.logs()));
        let key = answer
            .metadata()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(key.contains(&format!(".{pipeline}.")), "{key}");
        let response = answer.into_inner();
        assert_eq!(response.model_name, *pipeline);
        check_answer(pipeline, "grpc", &response_tensors(&response), expected);
    }
}

/// Every error answer of §7 with its HTTP status and gRPC code, readiness, a single model
/// through its topics, and a caller that goes away.
#[test]
fn errors_readiness_and_single_models() {
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml", "tests/e2e/gateway-errors.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    env.apply(&["tests/e2e/gateway-errors.yaml"], 2);
    env.start_worker("worker");
    let gw = env.start_gateway(
        "gateway",
        &["--request-timeout-ms", "3000", "--max-request-bytes", "2000"],
    );
    let rt = runtime();
    env.wait_pipeline_ready(&gw.http, "tfsimples");
    let url = |p: &str| format!("{}{p}", gw.http);
    let good = request(vec![
        int32("INPUT0", vec![1, 2], vec![1, 2]),
        int32("INPUT1", vec![1, 2], vec![1, 2]),
    ]);
    let bad = request(vec![
        fp32("INPUT0", vec![1], vec![1.0]),
        fp32("INPUT1", vec![1], vec![1.0]),
    ]);

    // One trace per request: the caller's traceparent is continued to the model server (which
    // echoes what it received in x-flowc-received-traceparent, carried back by the records).
    let trace_id = |v: &str| v.split('-').nth(1).unwrap_or_default().to_string();
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (status, headers, body) = http_post(
        &url("/v2/pipelines/tfsimples/infer"),
        &[("traceparent", caller)],
        &json_body(&good),
    )
    .expect("http");
    assert_eq!(status, 200, "{body}");
    let received = header(&headers, "x-flowc-received-traceparent");
    assert_eq!(received.len(), 1, "{headers:?}");
    assert_eq!(trace_id(received[0]), "0af7651916cd43dd8448eb211c80319c", "{headers:?}");
    assert_ne!(received[0], caller, "each hop is its own span");
    // Without one, the gateway starts the trace; the model server sees the same trace id.
    let (status, headers, body) =
        http_post(&url("/v2/pipelines/tfsimples/infer"), &[], &json_body(&good)).expect("http");
    assert_eq!(status, 200, "{body}");
    let started = header(&headers, "traceparent");
    assert_eq!(started.len(), 1, "{headers:?}");
    assert_eq!(
        trace_id(header(&headers, "x-flowc-received-traceparent")[0]),
        trace_id(started[0]),
        "{headers:?}"
    );

    // Unknown pipeline: 404 with a suggestion.
    let (status, _, body) = http_post(&url("/v2/pipelines/tfsimple/infer"), &[], &json_body(&good)).expect("http");
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        error_text(&body),
        "pipeline tfsimple is not deployed in namespace default (did you mean tfsimples?)"
    );
    // Async-only pipeline: 400 saying so.
    let (status, _, body) =
        http_post(&url("/v2/pipelines/fire-and-forget/infer"), &[], &json_body(&good)).expect("http");
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).contains("has no `output` section"), "{body}");
    // Malformed JSON and a request that is not a tensor request: 400.
    let (status, _, body) = http_post(&url("/v2/pipelines/tfsimples/infer"), &[], "{\"inputs\": [").expect("http");
    assert_eq!(status, 400, "{body}");
    assert!(error_text(&body).starts_with("malformed JSON request"), "{body}");
    let (status, _, body) = http_post(
        &url("/v2/pipelines/tfsimples/infer"),
        &[],
        "{\"inputs\": [{\"name\": \"x\"}]}",
    )
    .expect("http");
    assert_eq!(status, 400, "{body}");
    // Over the size limit: 413.
    let big = request(vec![fp32("INPUT0", vec![1000], vec![1.5; 1000])]);
    let (status, _, body) = http_post(&url("/v2/pipelines/tfsimples/infer"), &[], &json_body(&big)).expect("http");
    assert_eq!(status, 413, "{body}");
    assert!(
        error_text(&body).contains("over the gateway's limit of 2000 bytes"),
        "{body}"
    );
    // The model rejects the request: its error record answers 400 "<model> : <text>".
    let (status, headers, body) =
        http_post(&url("/v2/pipelines/tfsimples/infer"), &[], &json_body(&bad)).expect("http");
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_text(&body), "tfsimple1 : INPUT0: expected INT32, got FP32");
    assert_eq!(header(&headers, "x-request-id").len(), 1, "{headers:?}");
    // No answer within the request timeout: 504.
    let started = Instant::now();
    let (status, headers, body) =
        http_post(&url("/v2/pipelines/stuck-pipeline/infer"), &[], &json_body(&good)).expect("http");
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(error_text(&body).contains("request timeout of 3s"), "{body}");
    assert_eq!(header(&headers, "x-request-id").len(), 1, "{headers:?}");

    // A single model through its topics (`<m>` and `<m>.model`), answer and error record.
    let (status, _, body) = http_post(
        &url("/v2/models/x/infer"),
        &[("Seldon-Model", "tfsimple1")],
        &json_body(&good),
    )
    .expect("http");
    assert_eq!(status, 200, "{body}\n{}", env.logs());
    assert_eq!(
        json_tensors(&body),
        "OUTPUT0 INT32 [1, 2] = [2, 4]\nOUTPUT1 INT32 [1, 2] = [0, 0]"
    );
    let (status, _, body) = http_post(&url("/v2/models/tfsimple1.model/infer"), &[], &json_body(&bad)).expect("http");
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_text(&body), "tfsimple1 : INPUT0: expected INT32, got FP32");
    let (status, _, body) = http_post(
        &url("/v2/models/x/infer"),
        &[("Seldon-Model", "nope")],
        &json_body(&good),
    )
    .expect("http");
    assert_eq!(status, 404, "{body}");
    // `seldon-internal-model` wins over `Seldon-Model`.
    let (status, _, body) = http_post(
        &url("/v2/models/x/infer"),
        &[
            ("Seldon-Model", "nope.pipeline"),
            ("seldon-internal-model", "tfsimples.pipeline"),
        ],
        &json_body(&good),
    )
    .expect("http");
    assert_eq!(status, 200, "{body}");

    // Readiness.
    let get = |p: &str, h: &[(&str, &str)]| http_get(&url(p), h).expect("http").0;
    assert_eq!(get("/v2/pipelines/tfsimples/ready", &[]), 200);
    assert_eq!(
        get("/v2/models/x/ready", &[("Seldon-Model", "tfsimples.pipeline")]),
        200
    );
    assert_eq!(get("/v2/pipelines/stuck-pipeline/ready", &[]), 424);
    assert_eq!(get("/v2/pipelines/nope/ready", &[]), 404);
    assert_eq!(get("/v2/health/live", &[]), 200);
    assert_eq!(get("/v2/health/ready", &[]), 200);
    assert!(grpc_ready(&rt, &gw, "tfsimples.pipeline").expect("ready"));
    assert!(!grpc_ready(&rt, &gw, "stuck-pipeline.pipeline").expect("ready"));
    assert_eq!(
        grpc_ready(&rt, &gw, "nope.pipeline").unwrap_err().code(),
        Code::NotFound
    );

    // gRPC error codes.
    let code = |metadata: &[(&'static str, &str)], r: &ModelInferRequest| {
        grpc_infer(&rt, &gw, metadata, r.clone()).expect_err("an error").code()
    };
    assert_eq!(code(&[], &good), Code::InvalidArgument);
    assert_eq!(code(&[("seldon-model", "nope.pipeline")], &good), Code::NotFound);
    assert_eq!(
        code(&[("seldon-model", "fire-and-forget.pipeline")], &good),
        Code::FailedPrecondition
    );
    let failed = grpc_infer(&rt, &gw, &[("seldon-model", "tfsimples.pipeline")], bad.clone()).expect_err("error");
    assert_eq!(failed.code(), Code::Unknown);
    assert_eq!(failed.message(), "tfsimple1 : INPUT0: expected INT32, got FP32");
    assert_eq!(
        code(&[("seldon-model", "stuck-pipeline.pipeline")], &good),
        Code::DeadlineExceeded
    );
    assert_eq!(code(&[("seldon-model", "tfsimples.pipeline")], &big), Code::OutOfRange);

    // A caller that goes away: its wait ends at once (not at the timeout).
    let metrics = || http_get(&url("/metrics"), &[]).expect("metrics").2;
    let abandoned_before = metric(&metrics(), "flowc_gateway_outcomes_total{outcome=\"abandoned\"}");
    let body = json_body(&good);
    let mut socket = std::net::TcpStream::connect(gw.http.trim_start_matches("http://")).expect("connect");
    write!(
        socket,
        "POST /v2/pipelines/stuck-pipeline/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric(&metrics(), "flowc_gateway_in_flight") < 1.0 {
        assert!(Instant::now() < deadline, "the request never waited: {}", metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(socket);
    let gone = Instant::now();
    while metric(&metrics(), "flowc_gateway_in_flight") > 0.0 {
        assert!(
            gone.elapsed() < Duration::from_millis(1500),
            "the wait did not end when the caller went away: {}",
            metrics()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        metric(&metrics(), "flowc_gateway_outcomes_total{outcome=\"abandoned\"}"),
        abandoned_before + 1.0
    );
    // Request latency by target and status (HTTP status; gRPC calls count under theirs).
    let text = metrics();
    let series = |status: &str, target: &str| {
        format!("flowc_gateway_request_seconds_count{{status=\"{status}\",target=\"{target}\"}}")
    };
    assert_eq!(metric(&text, &series("404", "tfsimple.pipeline")), 1.0, "{text}");
    assert_eq!(metric(&text, &series("504", "stuck-pipeline.pipeline")), 2.0, "{text}");
}

/// Two gateway replicas share the outputs topics by partition; many concurrent callers each
/// get their own answer: none crosses over, none is lost.
#[test]
fn two_gateways_many_concurrent_callers() {
    const CALLERS: usize = 8;
    const EACH: usize = 25;
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 4);
    env.start_worker("worker");
    let a = env.start_gateway("gateway-a", &[]);
    let b = env.start_gateway("gateway-b", &[]);
    env.wait_pipeline_ready(&a.http, "tfsimples");
    env.wait_pipeline_ready(&b.http, "tfsimples");
    let started = Instant::now();
    let answers: Vec<(usize, i32, u16, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CALLERS)
            .map(|c| {
                let gw = if c % 2 == 0 { &a.http } else { &b.http };
                s.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let v = (c * 1000 + i) as i32;
                            let r = request(vec![
                                int32("INPUT0", vec![1], vec![v]),
                                int32("INPUT1", vec![1], vec![v]),
                            ]);
                            let (status, headers, body) =
                                http_post(&format!("{gw}/v2/pipelines/tfsimples/infer"), &[], &json_body(&r))
                                    .expect("http");
                            let key = header(&headers, "x-request-id")
                                .first()
                                .map(|k| k.to_string())
                                .unwrap_or_default();
                            (c, v, status, body, key)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("caller")).collect()
    });
    let elapsed = started.elapsed();
    assert_eq!(answers.len(), CALLERS * EACH);
    let mut keys = BTreeSet::new();
    let mut partitions = [BTreeSet::new(), BTreeSet::new()];
    for (c, v, status, body, key) in &answers {
        assert_eq!(*status, 200, "caller {c} value {v}: {body}\n{}", env.logs());
        assert_eq!(
            json_tensors(body),
            format!("OUTPUT0 INT32 [1] = [{}]\nOUTPUT1 INT32 [1] = [{}]", 2 * v, 2 * v),
            "caller {c} got someone else's answer"
        );
        assert!(keys.insert(key.clone()), "key {key} used twice");
        let partition: i32 = key
            .split('.')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a gateway key");
        partitions[c % 2].insert(partition);
    }
    // Each replica wrote only to partitions it holds: the two sets do not overlap.
    assert!(partitions[0].is_disjoint(&partitions[1]), "{partitions:?}");
    eprintln!(
        "{} requests through 2 gateways in {elapsed:?}; partitions {partitions:?}",
        answers.len()
    );
}
