//! Fused against per-hop execution (§10) on the synchronous path, against their floors, in one
//! run on one broker (`FLOWC_BENCH_BROKER`, Apache Kafka by default, started here):
//!
//!   pipelines:  the 1-step and the 2-step sum-diff chain (`benches/chains.yaml`), each applied
//!               per-hop (`hop1`, `hop2`) and fused (`fused1`, `fused2`), run by one worker in
//!               process, called through the pipeline gateway in process over HTTP (OIP JSON,
//!               a blocking client thread per caller) and gRPC (async calls on one connection)
//!   floors:     per sample, the raw produce→consume round trips (benches/common `Hop`) of the
//!               topics a request crosses plus the direct gRPC model calls it makes: fused
//!               2 hops + n calls; per-hop 2 + 2n hops + n calls (4 and 6 hops)
//!   Ray Serve:  with `FLOWC_BENCH_RAY=<venv bin dir>` (scripts/setup-ray.sh), the same chains
//!               served by Ray Serve (benches/ray/chain.py) in its configurations, over HTTP
//!               with the same clients, after flowc's rows
//!
//! For each: p50, p99 and requests/s at 1 client (sequential, interleaved with the floors so
//! both see the same machine), 16 and 64 clients (closed loops for `FLOWC_BENCH_SECONDS`, 5 by
//! default). Everything runs on this machine: the callers' own CPU counts against what they
//! call, flowc and Ray alike.
//!
//!   cargo bench --bench fused
//!   (FLOWC_BENCH_LATENCY_SAMPLES=300, FLOWC_BENCH_SECONDS=5, FLOWC_BENCH_CLIENTS=1,16,64,
//!    FLOWC_BENCH_RAY=…/ray-venv/bin, FLOWC_BENCH_X=key=value,… for flowc's clients)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowc_compiler::{compile, CompileOptions, SourceMap};
use flowc_oip::json::request_to_json;
use flowc_reference::{serve, ReferenceServer};
use flowc_runtime::kafka::{deploy, worker, KafkaConfig};
use flowc_runtime::operator::ModelBackend;
use flowc_runtime::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use flowc_runtime::proto::inference::ModelInferRequest;
use flowc_runtime::tensor::{Encoding, InferMessage, Tensor, TensorData};

mod common;

use common::{agent, env_usize, quantile};

const MODELS: [&str; 6] = ["hop-a", "hop-b", "hop-c", "fused-a", "fused-b", "fused-c"];

/// A pipeline of the bench: its name, mode, steps, and the raw hops of its floor.
struct Case {
    pipeline: &'static str,
    mode: &'static str,
    steps: usize,
    hops: usize,
}

const CASES: [Case; 4] = [
    Case {
        pipeline: "fused1",
        mode: "fused",
        steps: 1,
        hops: 2,
    },
    Case {
        pipeline: "hop1",
        mode: "per-hop",
        steps: 1,
        hops: 4,
    },
    Case {
        pipeline: "fused2",
        mode: "fused",
        steps: 2,
        hops: 2,
    },
    Case {
        pipeline: "hop2",
        mode: "per-hop",
        steps: 2,
        hops: 6,
    },
];

/// INT32 INPUT0 = INPUT1 = [1..16], shape [1,16]: §9's chain request.
fn request() -> ModelInferRequest {
    let tensor = |name: &str| Tensor::new(name, vec![1, 16], TensorData::Int32((1..=16).collect())).unwrap();
    InferMessage {
        id: String::new(),
        parameters: Default::default(),
        tensors: vec![tensor("INPUT0"), tensor("INPUT1")],
        encoding: Encoding::Typed,
    }
    .to_request()
    .unwrap()
}

/// One measured point: latencies in ms and the time they took.
struct Point {
    ms: Vec<f64>,
    elapsed: Duration,
}

impl Point {
    fn row(mut self) -> (f64, f64, f64) {
        self.ms.sort_by(|a, b| a.total_cmp(b));
        let rate = self.ms.len() as f64 / self.elapsed.as_secs_f64();
        (quantile(&self.ms, 0.5), quantile(&self.ms, 0.99), rate)
    }
}

/// One HTTP call; panics on anything but a 200 whose body has `expect` in it.
fn http_call(agent: &ureq::Agent, url: &str, body: &str, expect: &str) {
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert!(status == 200 && text.contains(expect), "{url}: {status} {text}");
}

/// `clients` closed-loop HTTP callers for `secs`.
fn http_load(url: &str, body: &str, expect: &str, clients: usize, secs: Duration) -> Point {
    let started = Instant::now();
    let deadline = started + secs;
    let ms = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                s.spawn(move || {
                    let a = agent();
                    let mut ms = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        http_call(&a, url, body, expect);
                        ms.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    ms
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    Point {
        ms,
        elapsed: started.elapsed(),
    }
}

/// `clients` closed-loop gRPC callers on one connection for `secs`.
fn grpc_load(rt: &tokio::runtime::Runtime, url: &str, pipeline: &str, clients: usize, secs: Duration) -> Point {
    rt.block_on(async {
        let client = GrpcInferenceServiceClient::connect(url.to_string()).await.unwrap();
        let started = Instant::now();
        let deadline = started + secs;
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..clients {
            let mut client = client.clone();
            let target = format!("{pipeline}.pipeline");
            calls.spawn(async move {
                let mut ms = Vec::new();
                while Instant::now() < deadline {
                    let mut r = tonic::Request::new(request());
                    r.metadata_mut().insert("seldon-model", target.parse().unwrap());
                    let t = Instant::now();
                    client.model_infer(r).await.expect("the gateway answers over gRPC");
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                }
                ms
            });
        }
        let mut ms = Vec::new();
        while let Some(done) = calls.join_next().await {
            ms.extend(done.unwrap());
        }
        Point {
            ms,
            elapsed: started.elapsed(),
        }
    })
}

fn print_row(what: &str, protocol: &str, clients: usize, (p50, p99, rate): (f64, f64, f64)) {
    println!("| {what} | {protocol} | {clients} | {p50:.2} ms | {p99:.2} ms | {rate:.0} /s |");
}

fn main() {
    let samples = env_usize("FLOWC_BENCH_LATENCY_SAMPLES", 300).max(1);
    let secs = Duration::from_secs(env_usize("FLOWC_BENCH_SECONDS", 5).max(1) as u64);
    let client_counts: Vec<usize> = std::env::var("FLOWC_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,16,64".into())
        .split(',')
        .filter_map(|c| c.trim().parse().ok())
        .collect();

    common::announce();
    let broker = common::start_broker();
    let bootstrap = broker.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let config = common::flowc_properties(
        KafkaConfig::new(&bootstrap)
            .detect_broker()
            .expect("the broker answers"),
    );

    // The six sum-diff models, served in process over gRPC.
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let model_url = format!("http://{}", listener.local_addr().unwrap());
    let mut server = ReferenceServer::new();
    for m in MODELS {
        server = server.with_model(m, "sum-diff").unwrap();
    }
    rt.spawn(serve(listener, server, std::future::pending()));
    let models: Arc<dyn ModelBackend> = Arc::new(flowc_oip::grpc::GrpcModels::connect(&model_url).unwrap());

    // The plan, applied, and a worker running it.
    let mut sources = SourceMap::new();
    sources.add("benches/chains.yaml", include_str!("chains.yaml").to_string());
    let plan = compile(&sources, &CompileOptions::default())
        .plan
        .expect("the bench's pipelines compile");
    let options = deploy::ApplyOptions {
        prefix: "seldon".into(),
        partitions: common::PARTITIONS,
        replication: 1,
        dry_run: false,
        gateway_url: "http://127.0.0.1:9010".into(),
        drain: deploy::DEFAULT_DRAIN,
        guarantee: None,
    };
    deploy::apply(&config, &plan, &options).expect("apply");
    let stop = Arc::new(AtomicBool::new(false));
    let state = tempfile::tempdir().unwrap();
    let worker = {
        let mut wopts = worker::WorkerOptions::new("seldon", state.path());
        wopts.models = Some(models.clone());
        let (wc, stop) = (config.clone(), stop.clone());
        std::thread::spawn(move || worker::run(&wc, &wopts, stop).unwrap())
    };

    let gw = common::InProcessGateway::start(&rt, &config);
    let (base, grpc_url) = (gw.http.clone(), gw.grpc.clone());

    let body = request_to_json(&request()).unwrap().to_string();
    // Step 1 gives sum [2..32] and difference 0; step 2 then sum and difference [2..32].
    let expect = |steps: usize| if steps == 1 { "\"OUTPUT1\"" } else { "[2,4,6,8" };
    let a = agent();
    for case in &CASES {
        let deadline = Instant::now() + Duration::from_secs(120);
        let url = format!("{base}/v2/pipelines/{}/ready", case.pipeline);
        while !matches!(a.get(&url).call().map(|r| r.status()), Ok(s) if s == 200) {
            assert!(Instant::now() < deadline, "{} never became ready", case.pipeline);
            std::thread::sleep(Duration::from_millis(100));
        }
        let infer = format!("{base}/v2/pipelines/{}/infer", case.pipeline);
        for _ in 0..50 {
            http_call(&a, &infer, &body, expect(case.steps));
        }
    }
    let mut hop = common::Hop::new(&config);

    // 1 client: every pipeline and the floors' parts, interleaved, `samples` times.
    let mut http: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    let mut grpc: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    let mut floors: Vec<Vec<f64>> = vec![Vec::new(); CASES.len()];
    let (mut hops, mut calls) = (Vec::new(), Vec::new());
    let grpc_client = rt
        .block_on(GrpcInferenceServiceClient::connect(grpc_url.clone()))
        .unwrap();
    for _ in 0..samples {
        for (i, case) in CASES.iter().enumerate() {
            let infer = format!("{base}/v2/pipelines/{}/infer", case.pipeline);
            let t = Instant::now();
            http_call(&a, &infer, &body, expect(case.steps));
            http[i].push(t.elapsed().as_secs_f64() * 1e3);
            let mut client = grpc_client.clone();
            let mut r = tonic::Request::new(request());
            r.metadata_mut()
                .insert("seldon-model", format!("{}.pipeline", case.pipeline).parse().unwrap());
            let t = Instant::now();
            rt.block_on(client.model_infer(r)).expect("gRPC answer");
            grpc[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
        let h: Vec<f64> = (0..6).map(|_| hop.round_trip()).collect();
        let c: Vec<f64> = (0..2)
            .map(|_| {
                let t = Instant::now();
                models.infer("fused-a", request()).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        for (i, case) in CASES.iter().enumerate() {
            floors[i].push(h[..case.hops].iter().sum::<f64>() + c[..case.steps].iter().sum::<f64>());
        }
        hops.extend(h);
        calls.extend(c);
    }

    println!("| pipeline | protocol | clients | p50 | p99 | requests/s |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut p50 = std::collections::BTreeMap::new();
    let mut rate = std::collections::BTreeMap::new();
    for (i, case) in CASES.iter().enumerate() {
        let name = format!(
            "{} ({}, {} step{})",
            case.pipeline,
            case.mode,
            case.steps,
            if case.steps > 1 { "s" } else { "" }
        );
        let total: f64 = http[i].iter().sum::<f64>() / 1e3;
        let row = Point {
            ms: http[i].clone(),
            elapsed: Duration::from_secs_f64(total),
        }
        .row();
        p50.insert((case.pipeline, "HTTP", 1), row.0);
        print_row(&name, "HTTP", 1, row);
        let total: f64 = grpc[i].iter().sum::<f64>() / 1e3;
        let row = Point {
            ms: grpc[i].clone(),
            elapsed: Duration::from_secs_f64(total),
        }
        .row();
        p50.insert((case.pipeline, "gRPC", 1), row.0);
        print_row(&name, "gRPC", 1, row);
        let total: f64 = floors[i].iter().sum::<f64>() / 1e3;
        let row = Point {
            ms: floors[i].clone(),
            elapsed: Duration::from_secs_f64(total),
        }
        .row();
        p50.insert((case.pipeline, "floor", 1), row.0);
        print_row(
            &format!(
                "floor of {}: {} raw hops + {} direct call{}",
                case.pipeline,
                case.hops,
                case.steps,
                if case.steps > 1 { "s" } else { "" }
            ),
            "-",
            1,
            row,
        );
        for &clients in client_counts.iter().filter(|&&c| c > 1) {
            let infer = format!("{base}/v2/pipelines/{}/infer", case.pipeline);
            let row = http_load(&infer, &body, expect(case.steps), clients, secs).row();
            rate.insert((case.pipeline, "HTTP", clients), row.2);
            print_row(&name, "HTTP", clients, row);
            let row = grpc_load(&rt, &grpc_url, case.pipeline, clients, secs).row();
            rate.insert((case.pipeline, "gRPC", clients), row.2);
            print_row(&name, "gRPC", clients, row);
        }
    }
    let (h50, h99) = common::summarize(hops.clone());
    let (c50, c99) = common::summarize(calls.clone());
    println!();
    println!(
        "raw hop p50 {h50:.3} ms p99 {h99:.3} ms ({} round trips); direct model call p50 {c50:.3} ms p99 {c99:.3} ms ({} calls)",
        hops.len(),
        calls.len()
    );
    for (pipeline, goal) in [
        ("fused1", None),
        ("fused2", Some(1.3)),
        ("hop1", None),
        ("hop2", Some(1.3)),
    ] {
        let floor = p50[&(pipeline, "floor", 1)];
        for protocol in ["HTTP", "gRPC"] {
            let ratio = p50[&(pipeline, protocol, 1)] / floor;
            println!(
                "{pipeline} {protocol} p50 / floor p50 = {ratio:.2}{}",
                goal.map(|g| format!(" (goal <= {g})")).unwrap_or_default()
            );
        }
    }
    for &clients in client_counts.iter().filter(|&&c| c > 1) {
        for protocol in ["HTTP", "gRPC"] {
            if let (Some(f), Some(h)) = (
                rate.get(&("fused2", protocol, clients)),
                rate.get(&("hop2", protocol, clients)),
            ) {
                println!(
                    "2 steps, {clients} clients, {protocol}: fused {f:.0} /s against per-hop {h:.0} /s ({:.2}x)",
                    f / h
                );
            }
        }
    }

    // Ray Serve, after flowc (flowc's processes stay up, idle).
    if let Ok(bin) = std::env::var("FLOWC_BENCH_RAY") {
        ray(&bin, &body, &client_counts, secs, samples, &rate, &p50);
    }

    gw.stop();
    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
    drop((hop, grpc_client));
    drop(broker);
}

/// Ray Serve's rows: each configuration of benches/ray/chain.py in turn, the 2-step chain (and
/// the 1-step one where the app serves it) over HTTP with the same clients.
#[allow(clippy::type_complexity)]
fn ray(
    bin: &str,
    body: &str,
    client_counts: &[usize],
    secs: Duration,
    samples: usize,
    flowc_rate: &std::collections::BTreeMap<(&str, &str, usize), f64>,
    flowc_p50: &std::collections::BTreeMap<(&str, &str, usize), f64>,
) {
    use std::io::BufRead;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ray/chain.py");
    println!();
    println!("| Ray Serve | protocol | clients | p50 | p99 | requests/s |");
    println!("|---|---|---:|---:|---:|---:|");
    for (i, config) in ["best", "proxy", "defaults"].into_iter().enumerate() {
        // A port of its own each: the one before may linger while Ray shuts down.
        let port = 18000 + (std::process::id() % 1000) as u16 * 10 + i as u16 * 3;
        let mut child = std::process::Command::new(format!("{bin}/python"))
            .args([script, "--port", &port.to_string(), "--config", config])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start benches/ray/chain.py");
        let stdout = child.stdout.take().unwrap();
        let mut url = None;
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap_or_default();
            if let Some(u) = line.strip_prefix("READY ") {
                url = Some(u.trim().to_string());
                break;
            }
        }
        let Some(url) = url else {
            println!("| {config}: did not start | | | | | |");
            let _ = child.kill();
            continue;
        };
        let a = agent();
        for _ in 0..50 {
            http_call(&a, &url, body, "[2,4,6,8");
        }
        let mut ms = Vec::new();
        for _ in 0..samples {
            let t = Instant::now();
            http_call(&a, &url, body, "[2,4,6,8");
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let total = ms.iter().sum::<f64>() / 1e3;
        let row = Point {
            ms,
            elapsed: Duration::from_secs_f64(total),
        }
        .row();
        let name = format!("{config} (2 steps)");
        print_row(&name, "HTTP", 1, row);
        if let Some(f) = flowc_p50.get(&("fused2", "HTTP", 1)) {
            println!("|  fused2 p50 / Ray {config} p50 = {:.2} | | | | | |", f / row.0);
        }
        for &clients in client_counts.iter().filter(|&&c| c > 1) {
            let row = http_load(&url, body, "[2,4,6,8", clients, secs).row();
            print_row(&name, "HTTP", clients, row);
            if let Some(f) = flowc_rate.get(&("fused2", "HTTP", clients)) {
                println!("|  fused2 HTTP / Ray {config} = {:.2}x | | | | | |", f / row.2);
            }
        }
        // SIGTERM: the app shuts Ray down itself.
        let _ = std::process::Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
    }
}
