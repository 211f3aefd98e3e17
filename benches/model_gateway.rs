//! The model gateway's overhead: model calls made through Kafka topics by flowc's worker
//! (its model-call sub-topology alone), against calling the same model server directly, in
//! one run on a real broker (`FLOWC_BENCH_BROKER`, Apache Kafka by default, started here) and
//! an in-process reference model server.
//!
//!   direct:  GrpcModels::infer("bench-id", request)
//!   topics:  seldon.default.model.bench-id.inputs → [worker: model call] →
//!            seldon.default.model.bench-id.outputs
//!   floor:   2 raw produce→consume round trips (one per topic; benches/common `Hop`, the
//!            broker's fastest raw settings) plus one direct call
//!
//! Both sides send the same FP32 [1,16] request to the same identity model. Measured:
//!   - latency: sequential calls (direct) / round trips (topics: produce one record, wait for
//!     its output), p50 and p99 in ms, interleaved with the floor's round trips;
//!   - throughput: `FLOWC_BENCH_RECORDS` calls with `FLOWC_BENCH_THREADS` threads in flight
//!     (direct) / records produced at once until all their outputs arrived (topics).
//!
//! The topic requests carry the `pipeline: bench` header of the deployed one-step pipeline
//! (benches/one-step.yaml), which uses the model; the worker runs the whole plan, so its
//! pipeline-output sub-topology also reads the model outputs (it is not on the measured path).
//!
//! Round-trip records are acked by polling the producer, not by `BaseProducer::flush`: in
//! rdkafka 0.39 `flush` polls in whole 100 ms slices (`poll` runs to its deadline), so a flush
//! of one record takes ~100 ms however fast the broker acks (FLOWC_BENCH_ROUND_TRIP_FLUSH=1
//! shows it). The worker waits for acknowledgements the same way.
//!
//!   cargo bench --bench model_gateway
//!   (FLOWC_BENCH_RECORDS=5000, FLOWC_BENCH_THREADS=16, FLOWC_BENCH_DIRECT_CALLS=500,
//!    FLOWC_BENCH_ROUND_TRIPS=200, FLOWC_BENCH_TIMEOUT_SECS=300 to change;
//!    FLOWC_BENCH_WORKER_FETCH_WAIT_MS sets the worker's `fetch.wait.max.ms` (default: the
//!    broker flavour's), FLOWC_BENCH_X=key=value,… other properties of flowc's clients;
//!    FLOWC_BENCH_ROUND_TRIP_FLUSH=1 acks round trips with `flush`)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowc_oip::grpc::GrpcModels;
use flowc_runtime::kafka::KafkaConfig;
use flowc_runtime::operator::ModelBackend;
use flowc_runtime::proto::inference::ModelInferRequest;
use prost::Message as _;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};

mod common;

use common::{env_usize, reader, summarize, MODEL};

const PIPELINE: &str = "bench";
const INPUTS: &str = "seldon.default.model.bench-id.inputs";
const OUTPUTS: &str = "seldon.default.model.bench-id.outputs";

fn timeout() -> Duration {
    Duration::from_secs(env_usize("FLOWC_BENCH_TIMEOUT_SECS", 300) as u64)
}

fn request() -> ModelInferRequest {
    common::request()
}

/// Queues one record keyed `key` with the `pipeline` header (retrying while the queue is full).
fn send(p: &BaseProducer, key: &str, value: &[u8]) {
    common::send_one(p, INPUTS, key, value, Some(PIPELINE));
}

/// Writes `n` records keyed `<tag>-<i>` and waits until they are stored.
fn produce(p: &BaseProducer, tag: &str, n: usize, value: &[u8]) {
    for i in 0..n {
        send(p, &format!("{tag}-{i}"), value);
    }
    p.flush(timeout()).expect("flush the bench records");
}

/// Reads until every key `<tag>-<i>` (i < n) arrived; returns when the last did.
fn await_keys(c: &BaseConsumer, tag: &str, n: usize) -> Instant {
    let prefix = format!("{tag}-");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + timeout();
    while seen.len() < n {
        assert!(
            Instant::now() < deadline,
            "{OUTPUTS}: only {} of {n} records of {tag} after {:?}; is the worker running?",
            seen.len(),
            timeout()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            let key = m.key().unwrap_or_default();
            if key.starts_with(prefix.as_bytes()) {
                seen.insert(key.to_vec());
            }
        }
    }
    Instant::now()
}

/// Reads until the record keyed `key` arrived.
fn await_key(c: &BaseConsumer, key: &str) {
    let deadline = Instant::now() + timeout();
    loop {
        assert!(
            Instant::now() < deadline,
            "{OUTPUTS}: no output for {key} after {:?}; is the worker running?",
            timeout()
        );
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            if m.key() == Some(key.as_bytes()) {
                return;
            }
        }
    }
}

/// Produces one record keyed `key` and waits for its key on `c`; (round trip, produce acked) in ms.
fn round_trip(p: &BaseProducer, c: &BaseConsumer, key: &str, value: &[u8]) -> (f64, f64) {
    let t = Instant::now();
    send(p, key, value);
    // Not `flush` unless asked: it costs 100 ms (see the top of the file).
    if std::env::var_os("FLOWC_BENCH_ROUND_TRIP_FLUSH").is_some() {
        p.flush(timeout()).expect("flush a round-trip record");
    } else {
        let deadline = Instant::now() + timeout();
        while p.in_flight_count() > 0 {
            assert!(
                Instant::now() < deadline,
                "round-trip record {key} not acked after {:?}",
                timeout()
            );
            p.poll(Duration::from_millis(1));
        }
    }
    let acked = t.elapsed().as_secs_f64() * 1e3;
    await_key(c, key);
    (t.elapsed().as_secs_f64() * 1e3, acked)
}

fn main() {
    let records = env_usize("FLOWC_BENCH_RECORDS", 5_000);
    let threads = env_usize("FLOWC_BENCH_THREADS", 16).max(1);
    let direct_calls = env_usize("FLOWC_BENCH_DIRECT_CALLS", 500).max(1);
    let round_trip_count = env_usize("FLOWC_BENCH_ROUND_TRIPS", 200).max(1);

    common::announce();
    let broker = common::start_broker();
    let bootstrap = broker.bootstrap();

    // The reference model server, in process.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = common::start_model_server(&rt);
    let grpc = Arc::new(GrpcModels::connect(&url).unwrap());
    let models: Arc<dyn ModelBackend> = grpc.clone();

    // ---- Direct ----
    let req = request();
    for _ in 0..50 {
        grpc.infer(MODEL, req.clone()).expect("direct warm-up call");
    }
    let mut lat = Vec::with_capacity(direct_calls);
    for _ in 0..direct_calls {
        let r = req.clone();
        let t = Instant::now();
        grpc.infer(MODEL, r).expect("direct call");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (d50, d99) = summarize(lat);
    println!("direct  latency:    {direct_calls} sequential calls: p50 {d50:.3} ms, p99 {d99:.3} ms");

    // `n` calls with `threads` in flight; the first run warms the concurrent path up.
    let parallel = |n: usize| {
        let next = AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while next.fetch_add(1, Ordering::Relaxed) < n {
                        grpc.infer(MODEL, req.clone()).expect("direct call");
                    }
                });
            }
        });
        started.elapsed().as_secs_f64()
    };
    parallel(500);
    let secs = parallel(records);
    let direct_rate = records as f64 / secs;
    println!("direct  throughput: {records} calls, {threads} in flight, in {secs:.2} s = {direct_rate:.0} calls/s");

    // ---- Through topics ----
    let mut config = common::flowc_properties(
        KafkaConfig::new(&bootstrap)
            .detect_broker()
            .expect("the broker answers"),
    );
    if let Some(ms) = std::env::var("FLOWC_BENCH_WORKER_FETCH_WAIT_MS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        // The worker's clients take extra properties from here.
        config = config.with("fetch.wait.max.ms", &ms);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let state = tempfile::tempdir().unwrap();
    let w = common::deploy_and_run(&config, models.clone(), stop.clone(), state.path());

    let value = req.encode_to_vec();
    let bulk = common::producer(&bootstrap, 2);
    let single = common::RawSettings::current().producer(&bootstrap);
    let out = reader(&bootstrap, OUTPUTS);
    // Warm up: the worker's group joined, connections open.
    produce(&bulk, "warm", 50, &value);
    await_keys(&out, "warm", 50);
    let mut hop = common::Hop::new(&config);

    // Latency: a round trip through the topics, then the floor (2 raw hops + a direct call).
    let (mut lat, mut acks, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let mut hops = Vec::new();
    for i in 0..round_trip_count {
        let (l, a) = round_trip(&single, &out, &format!("lat-{i}"), &value);
        lat.push(l);
        acks.push(a);
        let (h1, h2) = (hop.round_trip(), hop.round_trip());
        hops.extend([h1, h2]);
        let t = Instant::now();
        grpc.infer(MODEL, req.clone()).expect("direct call");
        floor.push(h1 + h2 + t.elapsed().as_secs_f64() * 1e3);
    }
    let ((t50, t99), ack, (f50, f99)) = (summarize(lat), summarize(acks).0, summarize(floor));
    println!(
        "topics  latency:    {round_trip_count} sequential round trips: p50 {t50:.3} ms, p99 {t99:.3} ms (produce acked: p50 {ack:.3} ms)"
    );
    println!("floor   latency:    2 raw round trips + 1 direct call: p50 {f50:.3} ms, p99 {f99:.3} ms");
    hop.print(&hops);

    let started = Instant::now();
    produce(&bulk, "tput", records, &value);
    let produced = started.elapsed().as_secs_f64();
    let done = await_keys(&out, "tput", records);
    let secs = (done - started).as_secs_f64();
    let topics_rate = records as f64 / secs;
    println!(
        "topics  throughput: {records} records produced at once (stored after {produced:.2} s), all outputs in {secs:.2} s = {topics_rate:.0} records/s"
    );

    println!(
        "ratios: throughput topics/direct {:.3}, latency p50 topics/floor {:.2} (p99 {:.2}), p50 topics/direct {:.1}x",
        topics_rate / direct_rate,
        t50 / f50,
        t99 / f99,
        t50 / d50
    );

    stop.store(true, Ordering::Relaxed);
    let _ = w.join();
}
