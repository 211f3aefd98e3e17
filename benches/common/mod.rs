//! What the broker benches share: the request they send, the in-process reference model
//! server, the 1-step plan deployed with a worker running it in process, and the raw rdkafka
//! pipe with the same hops that serves as their baseline.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowc_compiler::{compile, CompileOptions, SourceMap};
use flowc_runtime::kafka::{deploy, worker, KafkaConfig};
use flowc_runtime::model_server::{serve, ReferenceServer};
use flowc_runtime::operator::ModelBackend;
use flowc_runtime::proto::inference::ModelInferRequest;
use flowc_runtime::tensor::{Encoding, InferMessage, Tensor, TensorData};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

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
        gateway_url: "http://127.0.0.1:9010".into(),
    };
    deploy::apply(config, &plan, &options).expect("apply");
    let mut wopts = worker::WorkerOptions::new("seldon", state);
    wopts.models = Some(models);
    let wc = config.clone();
    std::thread::spawn(move || worker::run(&wc, &wopts, stop).unwrap())
}

/// A broker, the in-process reference model server, the 1-step plan with a worker running it
/// and the raw pipe beside it: what the throughput benches compare.
pub struct Bench {
    pub bootstrap: String,
    pub rt: tokio::runtime::Runtime,
    pub models: Arc<dyn ModelBackend>,
    pub config: KafkaConfig,
    pub stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
    _state: tempfile::TempDir,
    _broker: flowc_runtime::devbroker::DevBroker,
}

impl Bench {
    pub fn start() -> Bench {
        let broker =
            flowc_runtime::devbroker::DevBroker::start().expect("start the broker (scripts/install-broker.sh)");
        let bootstrap = broker.bootstrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = start_model_server(&rt);
        let models: Arc<dyn ModelBackend> = Arc::new(flowc_runtime::model_client::GrpcModels::connect(&url).unwrap());
        let config = KafkaConfig::new(&bootstrap);
        let stop = Arc::new(AtomicBool::new(false));
        let state = tempfile::tempdir().unwrap();
        let mut handles = vec![deploy_and_run(&config, models.clone(), stop.clone(), state.path())];
        handles.extend(start_raw_pipe(&config, models.clone(), stop.clone()));
        Bench {
            bootstrap,
            rt,
            models,
            config,
            stop,
            handles,
            _state: state,
            _broker: broker,
        }
    }

    /// Stops the worker and the relays.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// The raw rdkafka pipe's topics: `raw.in → [relay] → raw.model.inputs → [relay + model call]
/// → raw.model.outputs → [relay] → raw.out`, the same hops as a 1-step flowc plan.
pub const RAW: [&str; 4] = ["raw.in", "raw.model.inputs", "raw.model.outputs", "raw.out"];

/// Creates the [`RAW`] topics and starts the three relays, the middle one calling [`MODEL`]
/// through `models`; they run until `stop`.
pub fn start_raw_pipe(
    config: &KafkaConfig,
    models: Arc<dyn ModelBackend>,
    stop: Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    let cluster = deploy::Cluster::connect(config).unwrap();
    cluster
        .create_topics(
            &RAW.iter()
                .map(|t| deploy::TopicSpec {
                    name: t.to_string(),
                    partitions: PARTITIONS,
                    compacted: false,
                })
                .collect::<Vec<_>>(),
            1,
        )
        .unwrap();
    let call = move |bytes: &[u8]| {
        let request = ModelInferRequest::decode(bytes).unwrap();
        models.infer(MODEL, request).unwrap().encode_to_vec()
    };
    let bootstrap = config.bootstrap.clone();
    vec![
        relay(bootstrap.clone(), RAW[0], RAW[1], stop.clone(), |b| b.to_vec()),
        relay(bootstrap.clone(), RAW[1], RAW[2], stop.clone(), call),
        relay(bootstrap, RAW[2], RAW[3], stop, |b| b.to_vec()),
    ]
}

/// p-th quantile (0..=1) of milliseconds, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// (p50, p99) of milliseconds.
pub fn summarize(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.total_cmp(b));
    (quantile(&ms, 0.50), quantile(&ms, 0.99))
}

/// Writes `n` records keyed `<tag>-<i>` and waits until they are stored.
pub fn produce(p: &BaseProducer, topic: &str, tag: &str, n: usize, value: &[u8], pipeline: Option<&str>) {
    for i in 0..n {
        send_one(p, topic, &format!("{tag}-{i}"), value, pipeline);
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Queues one record with the `pipeline` header if given, retrying while the queue is full.
pub fn send_one(p: &BaseProducer, topic: &str, key: &str, value: &[u8], pipeline: Option<&str>) {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    if let Some(name) = pipeline {
        record = record.headers(OwnedHeaders::new().insert(Header {
            key: "pipeline",
            value: Some(name),
        }));
    }
    while let Err((_, r)) = p.send(record) {
        record = r;
        p.poll(Duration::from_millis(5));
    }
}

/// A reader of every partition of `topic` from its beginning, polling with short fetch waits.
pub fn reader(bootstrap: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-reader")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
    c
}

/// An HTTP client for the gateway: long timeout, error statuses are answers.
pub fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(60)))
            .http_status_as_error(false)
            .build(),
    )
}

/// One synchronous call through the gateway; panics on anything but 200.
pub fn call(agent: &ureq::Agent, url: &str, body: &str) {
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .expect("the gateway answers");
    let status = r.status();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    assert_eq!(status, 200, "{text}");
}

/// Waits (up to 2 minutes) until the gateway at `base` says pipeline `bench` is ready.
pub fn wait_ready(agent: &ureq::Agent, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = agent
            .get(&format!("{base}/v2/pipelines/bench/ready"))
            .call()
            .map(|r| r.status());
        if matches!(ready, Ok(s) if s == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "the gateway never became ready: {ready:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads `topic` from the start until every key `<tag>-<i>` arrived; returns when the last did.
pub fn await_keys(bootstrap: &str, topic: &str, tag: &str, n: usize) -> Instant {
    let c = reader(bootstrap, topic);
    let prefix = format!("{tag}-");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "{topic}: only {} of {n} records of {tag}",
            seen.len()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            if key.starts_with(&prefix) {
                seen.insert(key);
            }
        }
    }
    Instant::now()
}

/// One raw relay: consume `from`, transform, produce to `to` on the same partition; batch,
/// transform the batch on up to 16 threads (as flowc's model calls run), flush, commit.
pub fn relay(
    bootstrap: String,
    from: &'static str,
    to: &'static str,
    stop: Arc<AtomicBool>,
    transform: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("raw-{from}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("max.poll.interval.ms", "10000")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        c.subscribe(&[from]).unwrap();
        let p = producer(&bootstrap, 2);
        while !stop.load(Ordering::Relaxed) {
            let mut offsets = TopicPartitionList::new();
            let started = Instant::now();
            let mut wait = Duration::from_millis(50);
            let mut batch = Vec::new();
            while batch.len() < 500 && started.elapsed() < Duration::from_millis(100) {
                let Some(Ok(m)) = c.poll(wait) else { break };
                wait = Duration::ZERO;
                let _ = offsets.add_partition_offset(from, m.partition(), Offset::Offset(m.offset() + 1));
                batch.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                    m.partition(),
                    m.headers().map(|h| h.detach()),
                ));
            }
            if batch.is_empty() {
                continue;
            }
            let k = batch.len().min(16);
            let outs: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let f = &transform;
                let handles: Vec<_> = batch
                    .chunks(batch.len().div_ceil(k))
                    .map(|chunk| scope.spawn(move || chunk.iter().map(|(_, v, _, _)| f(v)).collect::<Vec<_>>()))
                    .collect();
                handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
            });
            for ((key, _, partition, headers), out) in batch.iter().zip(&outs) {
                let mut record = BaseRecord::to(to)
                    .key(key.as_slice())
                    .payload(out.as_slice())
                    .partition(*partition);
                if let Some(h) = headers {
                    record = record.headers(h.clone());
                }
                while let Err((_, r)) = p.send(record) {
                    record = r;
                    p.poll(Duration::from_millis(5));
                }
            }
            settle(&p);
            let _ = c.commit(&offsets, CommitMode::Sync);
        }
    })
}

/// Waits until every record sent is acknowledged, as the worker does (rdkafka's `flush`
/// polls in 100 ms slices, which would cost every batch 100 ms).
pub fn settle(p: &BaseProducer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.in_flight_count() > 0 {
        assert!(Instant::now() < deadline, "records not acknowledged within 30 s");
        p.poll(Duration::from_millis(1));
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
