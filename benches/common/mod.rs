//! What the broker benches share: the broker they run on (`FLOWC_BENCH_BROKER`), the request
//! they send, the in-process reference model server, the 1-step plan deployed with a worker
//! running it in process, and the raw baselines on the same broker: the raw rdkafka pipe with
//! the same hops, and the raw produce→consume round trip of one hop ([`Hop`]).
//!
//! Every raw client uses [`RawSettings::of`] the broker: the fastest settings a hand-written
//! client gets on it, so a ratio to a raw baseline is flowc's own cost, not a tuning gap.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowc_compiler::{compile, CompileOptions, SourceMap};
use flowc_reference::{serve, ReferenceServer};
use flowc_runtime::kafka::{deploy, worker, KafkaConfig};
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

/// The client settings of the raw baselines on one broker ([`Hop`], the raw pipe's relays and
/// the readers that time the benches): the fastest measured there.
///
/// * Apache Kafka answers a waiting fetch as soon as a record arrives, so a long
///   `fetch.wait.max.ms` costs nothing and saves idle polling: librdkafka's 500 ms (measured:
///   a hop and the raw pipe as fast as at 1 ms or 100 ms, within the noise).
/// * tansu holds every fetch for the whole wait even when data arrives, so a hop pays about
///   half the wait: 1 ms, the lowest round trip (measured: 1.8 ms a hop, against 1.9 at 2 ms,
///   2.9 at 5 and 5.6 at 10), at the price of a consumer polling the broker a thousand times a
///   second while idle (measured: no cost to flowc's side of the same run).
/// * `linger.ms=0` for [`Hop`] on both: a record leaves at once. The relays linger 2 ms
///   ([`RawSettings::pipe_linger_ms`]): a relay queues its batch record by record, and without
///   a linger librdkafka sends the first records in requests of their own (measured: the raw
///   pipe at a third of its rate with `linger.ms=0`, on both brokers).
/// * `acks=all` like flowc (its commits follow the acknowledgements); no idempotence, which is
///   a cost flowc pays on Kafka and a raw client need not.
///
/// `FLOWC_BENCH_RAW_FETCH_WAIT_MS`, `FLOWC_BENCH_RAW_PIPE_FETCH_WAIT_MS`,
/// `FLOWC_BENCH_RAW_LINGER_MS`, `FLOWC_BENCH_RAW_PIPE_LINGER_MS` and
/// `FLOWC_BENCH_RAW_PIPE_MAX_IN_FLIGHT` (librdkafka's 5) override them (to measure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawSettings {
    /// `fetch.wait.max.ms` of [`Hop`] and the readers.
    pub fetch_wait_ms: u32,
    /// `fetch.wait.max.ms` of the raw pipe's relays.
    pub pipe_fetch_wait_ms: u32,
    /// `linger.ms` of [`Hop`].
    pub linger_ms: u32,
    /// `linger.ms` of the raw pipe's relays.
    pub pipe_linger_ms: u32,
    /// `max.in.flight.requests.per.connection` of the raw pipe's relays.
    pub pipe_max_in_flight: u32,
}

impl RawSettings {
    pub fn of(kind: flowc_runtime::devbroker::BrokerKind) -> RawSettings {
        use flowc_runtime::devbroker::BrokerKind;
        let fetch_wait_ms = match kind {
            BrokerKind::Kafka => 500,
            BrokerKind::Tansu => 1,
        };
        let var = |name, default: u32| env_usize(name, default as usize) as u32;
        let fetch_wait_ms = var("FLOWC_BENCH_RAW_FETCH_WAIT_MS", fetch_wait_ms);
        RawSettings {
            fetch_wait_ms,
            pipe_fetch_wait_ms: var("FLOWC_BENCH_RAW_PIPE_FETCH_WAIT_MS", fetch_wait_ms),
            linger_ms: var("FLOWC_BENCH_RAW_LINGER_MS", 0),
            pipe_linger_ms: var("FLOWC_BENCH_RAW_PIPE_LINGER_MS", 2),
            pipe_max_in_flight: var("FLOWC_BENCH_RAW_PIPE_MAX_IN_FLIGHT", 5),
        }
    }

    /// The settings of the broker of this run ([`broker_kind`]).
    pub fn current() -> RawSettings {
        RawSettings::of(broker_kind())
    }

    /// As the bench output and the report name them.
    pub fn describe(&self) -> String {
        let mut pipe = Vec::new();
        if self.pipe_linger_ms != self.linger_ms {
            pipe.push(format!("linger.ms={}", self.pipe_linger_ms));
        }
        if self.pipe_fetch_wait_ms != self.fetch_wait_ms {
            pipe.push(format!("fetch.wait.max.ms={}", self.pipe_fetch_wait_ms));
        }
        if self.pipe_max_in_flight != 5 {
            pipe.push(format!("max.in.flight={}", self.pipe_max_in_flight));
        }
        let pipe = if pipe.is_empty() {
            String::new()
        } else {
            format!("; relays: {}", pipe.join(", "))
        };
        format!(
            "linger.ms={}, fetch.wait.max.ms={}, acks=all{pipe}",
            self.linger_ms, self.fetch_wait_ms
        )
    }

    /// A raw producer: `acks=all`, `linger.ms` of these settings.
    pub fn producer(&self, bootstrap: &str) -> BaseProducer {
        producer(bootstrap, self.linger_ms)
    }
}

/// Prints which broker and raw settings this bench runs with (the report reads it).
pub fn announce() {
    println!(
        "broker: {} (raw clients: {})",
        broker_kind(),
        RawSettings::current().describe()
    );
}

/// Serves [`MODEL`] as the identity reference model over gRPC on `rt`; returns its URL.
pub fn start_model_server(rt: &tokio::runtime::Runtime) -> String {
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = ReferenceServer::new().with_model(MODEL, "identity").unwrap();
    rt.spawn(serve(listener, server, std::future::pending()));
    url
}

/// The broker a bench runs on: `FLOWC_BENCH_BROKER` (`kafka`, the default, or `tansu`).
pub fn broker_kind() -> flowc_runtime::devbroker::BrokerKind {
    use flowc_runtime::devbroker::BrokerKind;
    BrokerKind::from_env("FLOWC_BENCH_BROKER", BrokerKind::Kafka).unwrap_or_else(|e| panic!("{e}"))
}

/// A fresh broker of [`broker_kind`].
pub fn start_broker() -> flowc_runtime::devbroker::DevBroker {
    let kind = broker_kind();
    flowc_runtime::devbroker::DevBroker::start(kind).unwrap_or_else(|e| {
        panic!("start the {kind} broker (scripts/install-kafka.sh, scripts/install-broker.sh): {e}")
    })
}

/// `config` with the librdkafka properties of `FLOWC_BENCH_X` (`key=value,key=value`) added:
/// flowc's clients (worker, gateway) take them, as from `-X`; the raw clients do not.
pub fn flowc_properties(mut config: KafkaConfig) -> KafkaConfig {
    for property in std::env::var("FLOWC_BENCH_X").unwrap_or_default().split(',') {
        if let Some((k, v)) = property.split_once('=') {
            config = config.with(k.trim(), v.trim());
        }
    }
    config
}

/// Applies `benches/one-step.yaml` (prefix `seldon`, [`PARTITIONS`] partitions).
pub fn apply_one_step(config: &KafkaConfig) {
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
        drain: deploy::DEFAULT_DRAIN,
        guarantee: None,
    };
    deploy::apply(config, &plan, &options).expect("apply");
}

/// Applies `benches/one-step.yaml` and runs a worker for it in process until `stop`.
pub fn deploy_and_run(
    config: &KafkaConfig,
    models: Arc<dyn ModelBackend>,
    stop: Arc<AtomicBool>,
    state: &std::path::Path,
) -> JoinHandle<()> {
    apply_one_step(config);
    let mut wopts = worker::WorkerOptions::new("seldon", state);
    wopts.models = Some(models);
    let wc = config.clone();
    std::thread::spawn(move || worker::run(&wc, &wopts, stop).unwrap())
}

/// A broker, the in-process reference model server, the 1-step plan with a worker running it
/// and the raw pipe beside it: what the throughput benches compare.
pub struct Bench {
    pub bootstrap: String,
    pub raw: RawSettings,
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
        announce();
        let broker = start_broker();
        let bootstrap = broker.bootstrap();
        let raw = RawSettings::current();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let url = start_model_server(&rt);
        let models: Arc<dyn ModelBackend> = Arc::new(flowc_oip::grpc::GrpcModels::connect(&url).unwrap());
        let config = flowc_properties(
            KafkaConfig::new(&bootstrap)
                .detect_broker()
                .expect("the broker answers"),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let state = tempfile::tempdir().unwrap();
        let mut handles = vec![deploy_and_run(&config, models.clone(), stop.clone(), state.path())];
        handles.extend(start_raw_pipe(&config, raw, models.clone(), stop.clone()));
        Bench {
            bootstrap,
            raw,
            rt,
            models,
            config,
            stop,
            handles,
            _state: state,
            _broker: broker,
        }
    }

    /// Stops the worker and the relays, then the broker. Drop the bench's own clients first: one
    /// that closes after the broker is gone waits out its timeouts.
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
    raw: RawSettings,
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
        relay(bootstrap.clone(), raw, RAW[0], RAW[1], stop.clone(), |b| b.to_vec()),
        relay(bootstrap.clone(), raw, RAW[1], RAW[2], stop.clone(), call),
        relay(bootstrap, raw, RAW[2], RAW[3], stop, |b| b.to_vec()),
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

/// A reader of every partition of `topic` from its beginning, with the raw settings' fetch wait.
pub fn reader(bootstrap: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-reader")
        .set("fetch.wait.max.ms", RawSettings::current().fetch_wait_ms.to_string())
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
    raw: RawSettings,
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
            .set("fetch.wait.max.ms", raw.pipe_fetch_wait_ms.to_string())
            .create()
            .unwrap();
        c.subscribe(&[from]).unwrap();
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("linger.ms", raw.pipe_linger_ms.to_string())
            .set(
                "max.in.flight.requests.per.connection",
                raw.pipe_max_in_flight.to_string(),
            )
            .set("acks", "all")
            .create()
            .unwrap();
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

/// The topic of [`Hop`]'s round trips (one partition).
pub const ECHO: &str = "raw.echo";

/// The raw floor of one hop: produce one record to [`ECHO`] and read it back with a consumer
/// already waiting on the topic, with the broker's [`RawSettings`]. A flowc hop does the same
/// plus its own work.
pub struct Hop {
    p: BaseProducer,
    c: BaseConsumer,
    pub raw: RawSettings,
    next: usize,
}

impl Hop {
    /// Creates [`ECHO`] and warms the clients up with 20 round trips.
    pub fn new(config: &KafkaConfig) -> Hop {
        deploy::Cluster::connect(config)
            .unwrap()
            .create_topics(
                &[deploy::TopicSpec {
                    name: ECHO.to_string(),
                    partitions: 1,
                    compacted: false,
                }],
                1,
            )
            .unwrap();
        let raw = RawSettings::current();
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap)
            .set("group.id", "bench-echo")
            .set("fetch.wait.max.ms", raw.fetch_wait_ms.to_string())
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(ECHO, 0, Offset::Beginning).unwrap();
        c.assign(&tpl).unwrap();
        let mut hop = Hop {
            p: raw.producer(&config.bootstrap),
            c,
            raw,
            next: 0,
        };
        for _ in 0..20 {
            hop.round_trip();
        }
        hop
    }

    /// One produce→consume round trip, in ms: from the send until the consumer has the record.
    /// The acknowledgement is awaited after that, untimed: like a flowc hop, where the next
    /// consumer reads the record while the producer's acknowledgement is still on its way.
    pub fn round_trip(&mut self) -> f64 {
        let key = format!("hop-{}", self.next);
        self.next += 1;
        let value = request().encode_to_vec();
        let t = Instant::now();
        send_one(&self.p, ECHO, &key, &value, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        let ms = loop {
            assert!(Instant::now() < deadline, "{ECHO}: {key} never came back");
            if let Some(Ok(m)) = self.c.poll(Duration::from_millis(100)) {
                if m.key() == Some(key.as_bytes()) {
                    break t.elapsed().as_secs_f64() * 1e3;
                }
            }
        };
        settle(&self.p);
        ms
    }

    /// Prints the line the report reads: p50 and p99 of `ms` (single round trips).
    pub fn print(&self, ms: &[f64]) {
        let (p50, p99) = summarize(ms.to_vec());
        println!(
            "raw hop  p50 {p50:.3} ms  p99 {p99:.3} ms  ({} produce→consume round trips on {}; {})",
            ms.len(),
            broker_kind(),
            self.raw.describe()
        );
    }
}

/// The pipeline gateway in process: its HTTP and gRPC fronts on free ports of 127.0.0.1 on
/// `rt`, its outputs consumer on a thread.
pub struct InProcessGateway {
    pub gateway: Arc<flowc_runtime::gateway::Gateway>,
    pub consumer: JoinHandle<()>,
    /// `http://127.0.0.1:<port>`
    pub http: String,
    /// `http://127.0.0.1:<port>`
    pub grpc: String,
}

impl InProcessGateway {
    pub fn start(rt: &tokio::runtime::Runtime, config: &KafkaConfig) -> InProcessGateway {
        use flowc_runtime::gateway::{Gateway, GatewayOptions};
        let gateway = rt
            .block_on(async { Gateway::new(config, GatewayOptions::new("seldon", "default")) })
            .unwrap();
        let consumer = {
            let g = gateway.clone();
            std::thread::spawn(move || g.run_consumer().unwrap())
        };
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let http = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(flowc_runtime::gateway::http::serve(
            listener,
            gateway.clone(),
            std::future::pending(),
        ));
        let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let grpc = format!("http://{}", listener.local_addr().unwrap());
        rt.spawn(flowc_runtime::gateway::grpc::serve(
            listener,
            gateway.clone(),
            std::future::pending(),
        ));
        InProcessGateway {
            gateway,
            consumer,
            http,
            grpc,
        }
    }

    /// Stops the gateway and waits for its consumer.
    pub fn stop(self) {
        self.gateway.stop();
        let _ = self.consumer.join();
    }
}
