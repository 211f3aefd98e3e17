//! The pipeline gateway's synchronous latency and throughput for a 1-step pipeline
//! (benches/one-step.yaml: pipeline inputs → step → model call → output: three relays over four
//! topics), against the floor measured in the same run on the same broker (`FLOWC_BENCH_BROKER`,
//! Apache Kafka by default, started here) and the same in-process reference model server:
//!
//!   gateway:  HTTP POST /v2/pipelines/bench/infer → flowc gateway → pipeline inputs →
//!             [step] → model inputs → [model call] → model outputs → [output] →
//!             pipeline outputs → gateway → answer
//!   floor:    per request, 4 raw produce→consume round trips (one per topic the request
//!             crosses; benches/common `Hop`, the broker's fastest raw settings) plus one
//!             direct gRPC call of the model
//!   raw pipe: records through three raw rdkafka relays, the middle one calling the model
//!             (benches/common: the baseline of the broker bench)
//!
//! Latency: sequential requests, p50 and p99 (goal: gateway p50 within 1.2× of the floor p50);
//! the single round trips are printed too (`raw hop`). Throughput: `FLOWC_BENCH_REQUESTS`
//! requests from `FLOWC_BENCH_CLIENTS` concurrent callers, over HTTP (a blocking client thread
//! each) and over gRPC (async calls on one connection), against the same number of records
//! through the raw pipe (goal: at least 0.7×).
//!
//! Callers are closed loops (the next request once the answer is in) and run on the same
//! machine as everything else, while the raw pipe gets all its records at once: on a 2-core
//! machine the callers' own CPU (HTTP client threads, the gRPC client) counts against the
//! gateway, so more callers in flight and gRPC come closer to the pipe's rate.
//!
//!   cargo bench --bench pipeline_gateway
//!   (FLOWC_BENCH_LATENCY_SAMPLES=200, FLOWC_BENCH_REQUESTS=10000, FLOWC_BENCH_CLIENTS=256;
//!    FLOWC_BENCH_HTTP=0 skips the HTTP throughput run; FLOWC_BENCH_X=key=value,… adds
//!    librdkafka properties to flowc's clients, the worker's and the gateway's)

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use flowc_oip::json::request_to_json;
use flowc_runtime::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use prost::Message as _;

mod common;

use common::{agent, call, env_usize, summarize, MODEL};

/// Topics a request crosses, each one produce→consume round trip.
const TOPICS_CROSSED: usize = 4;

fn main() {
    let samples = env_usize("FLOWC_BENCH_LATENCY_SAMPLES", 200).max(1);
    let requests = env_usize("FLOWC_BENCH_REQUESTS", 10_000).max(1);
    let clients = env_usize("FLOWC_BENCH_CLIENTS", 256).max(1);

    let bench = common::Bench::start();
    let (bootstrap, rt, models, config) = (bench.bootstrap.as_str(), &bench.rt, bench.models.clone(), &bench.config);
    let fronts = common::InProcessGateway::start(rt, config);
    let (base, grpc_url) = (fronts.http.clone(), fronts.grpc.clone());
    let infer = format!("{base}/v2/pipelines/bench/infer");
    let body = request_to_json(&common::request()).unwrap().to_string();
    let value = common::request().encode_to_vec();

    // Warm up: the gateway holds its partitions, the worker's groups joined, relays running.
    let a = agent();
    common::wait_ready(&a, &base);
    for _ in 0..50 {
        call(&a, &infer, &body);
    }
    let p = common::producer(bootstrap, 0);
    common::produce(&p, common::RAW[0], "warm", 50, &value, Some("bench"));
    common::await_keys(bootstrap, common::RAW[3], "warm", 50);
    let mut hop = common::Hop::new(config);

    // Latency, interleaved so both sides see the same machine.
    let (mut gw, mut floor) = (Vec::with_capacity(samples), Vec::with_capacity(samples));
    let mut hops = Vec::with_capacity(samples * TOPICS_CROSSED);
    let mut model_calls = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        call(&a, &infer, &body);
        gw.push(t.elapsed().as_secs_f64() * 1e3);
        let mut f = 0.0;
        for _ in 0..TOPICS_CROSSED {
            let ms = hop.round_trip();
            hops.push(ms);
            f += ms;
        }
        let t = Instant::now();
        models.infer(MODEL, common::request()).unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        model_calls.push(ms);
        floor.push(f + ms);
    }
    let ((g50, g99), (f50, f99)) = (summarize(gw), summarize(floor));
    println!("latency ({samples} sequential requests):");
    println!("  gateway  p50 {g50:7.2} ms  p99 {g99:7.2} ms");
    println!("  floor    p50 {f50:7.2} ms  p99 {f99:7.2} ms  ({TOPICS_CROSSED} raw round trips + 1 direct model call)");
    println!(
        "  ratio    p50 {:.2}  p99 {:.2}  (goal: p50 <= 1.2)",
        g50 / f50,
        g99 / f99
    );
    let (m50, m99) = summarize(model_calls);
    println!("  model    p50 {m50:7.3} ms  p99 {m99:7.3} ms  (the direct model calls of the floor)");
    hop.print(&hops);

    // Throughput: concurrent callers through the gateway (HTTP: one blocking client thread
    // each; gRPC: async calls on one HTTP/2 connection), then the same count through the raw pipe.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let http_requests = if std::env::var("FLOWC_BENCH_HTTP").as_deref() == Ok("0") {
        0
    } else {
        requests
    };
    std::thread::scope(|s| {
        for _ in 0..clients {
            let (next, infer, body) = (next.clone(), &infer, &body);
            s.spawn(move || {
                let a = agent();
                while next.fetch_add(1, Ordering::Relaxed) < http_requests {
                    call(&a, infer, body);
                }
            });
        }
    });
    let http_rate = http_requests as f64 / started.elapsed().as_secs_f64();
    let grpc_rate = rt.block_on(async {
        let client = GrpcInferenceServiceClient::connect(grpc_url.clone()).await.unwrap();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let (mut client, next) = (client.clone(), next.clone());
            calls.spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let mut r = tonic::Request::new(common::request());
                    r.metadata_mut()
                        .insert("seldon-model", "bench.pipeline".parse().unwrap());
                    client.model_infer(r).await.expect("the gateway answers over gRPC");
                }
            });
        }
        while let Some(done) = calls.join_next().await {
            done.unwrap();
        }
        requests as f64 / started.elapsed().as_secs_f64()
    });
    let started = Instant::now();
    common::produce(&p, common::RAW[0], "tp", requests, &value, Some("bench"));
    let done = common::await_keys(bootstrap, common::RAW[3], "tp", requests);
    let raw_rate = requests as f64 / (done - started).as_secs_f64();
    println!("throughput ({requests} requests, {clients} concurrent callers):");
    println!(
        "  gateway HTTP  {http_rate:8.0} requests/s  ratio {:.2}",
        http_rate / raw_rate
    );
    println!(
        "  gateway gRPC  {grpc_rate:8.0} requests/s  ratio {:.2}",
        grpc_rate / raw_rate
    );
    println!("  raw pipe      {raw_rate:8.0} records/s   (goal: ratio >= 0.7)");

    fronts.stop();
    // Every client goes before the broker: one closing after it waits out its timeouts.
    drop((hop, p));
    bench.finish();
}
