//! What the broker benches share: the request they send, the in-process reference model
//! server, and the 1-step plan deployed with a worker running it in process.
#![allow(dead_code)]

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use flowc_compiler::{compile, CompileOptions, SourceMap};
use flowc_runtime::kafka::{deploy, worker, KafkaConfig};
use flowc_runtime::model_server::{serve, ReferenceServer};
use flowc_runtime::operator::ModelBackend;
use flowc_runtime::proto::inference::ModelInferRequest;
use flowc_runtime::tensor::{Encoding, InferMessage, Tensor, TensorData};

pub const PARTITIONS: i32 = 2;
/// The model of `benches/one-step.yaml` (an identity model).
pub const MODEL: &str = "bench-id";

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// FP32 [1,16]: the request every bench sends.
pub fn request() -> ModelInferRequest {
    let tensor = Tensor::new(
        "INPUT",
        vec![1, 16],
        TensorData::Fp32((0..16).map(|i| i as f32).collect()),
    )
    .unwrap();
    InferMessage {
        id: String::new(),
        parameters: Default::default(),
        tensors: vec![tensor],
        encoding: Encoding::Typed,
    }
    .to_request()
    .unwrap()
}

/// A producer that waits for all in-sync replicas, lingering `linger_ms` to batch.
pub fn producer(bootstrap: &str, linger_ms: u32) -> rdkafka::producer::BaseProducer {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", linger_ms.to_string())
        .set("acks", "all")
        .create()
        .unwrap()
}

/// Serves [`MODEL`] as the identity reference model over gRPC on `rt`; returns its URL.
pub fn start_model_server(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = ReferenceServer::new().with_model(MODEL, "identity").unwrap();
    rt.spawn(serve(listener, server, std::future::pending()));
    url
}

/// Applies `benches/one-step.yaml` and runs a worker for it in process until `stop`.
pub fn deploy_and_run(
    config: &KafkaConfig,
    models: Arc<dyn ModelBackend>,
    stop: Arc<AtomicBool>,
    state: &std::path::Path,
) -> JoinHandle<()> {
    let mut sources = SourceMap::new();
    sources.add("benches/one-step.yaml", include_str!("../one-step.yaml").to_string());
    let plan = compile(&sources, &CompileOptions::default())
        .plan
        .expect("bench plan compiles");
    let options = deploy::ApplyOptions {
        prefix: "seldon".into(),
        partitions: PARTITIONS,
        replication: 1,
        dry_run: false,
    };
    deploy::apply(config, &plan, &options).expect("apply");
    let mut wopts = worker::WorkerOptions::new("seldon", state);
    wopts.models = Some(models);
    let wc = config.clone();
    std::thread::spawn(move || worker::run(&wc, &wopts, stop).unwrap())
}
