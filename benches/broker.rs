//! Records per second through a 1-step plan on a real broker (tansu, started here), against
//! a raw rdkafka pipe with the same hops on the same broker in the same run:
//!
//!   flowc:    pipeline.bench.inputs → [step] → model.bench-id.inputs → [model call] →
//!             model.bench-id.outputs → [output] → pipeline.bench.outputs
//!   baseline: raw.in → [relay] → raw.model.inputs → [relay + the same gRPC model call] →
//!             raw.model.outputs → [relay] → raw.out
//!
//! Both commit like flowc does (batch, wait for acknowledgements, then commit; the same
//! `fetch.wait.max.ms`) and call the same in-process reference model server with up to 16
//! calls in flight. Each side runs `ROUNDS` times over `RECORDS` records after a warm-up; the
//! medians and their ratio are printed (goal: flowc/baseline >= 0.7).
//!
//!   cargo bench --bench broker            (FLOWC_BENCH_RECORDS, FLOWC_BENCH_ROUNDS to change)

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use flowc_runtime::devbroker::DevBroker;
use flowc_runtime::kafka::{deploy, KafkaConfig};
use flowc_runtime::model_client::GrpcModels;
use flowc_runtime::operator::ModelBackend;
use flowc_runtime::proto::inference::ModelInferRequest;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod common;

use common::{env_usize, MODEL, PARTITIONS};

fn payload() -> Vec<u8> {
    common::request().encode_to_vec()
}

/// Writes `n` records keyed `<tag>-<i>` and waits until they are stored.
fn produce(p: &BaseProducer, topic: &str, tag: &str, n: usize, value: &[u8], pipeline: Option<&str>) {
    for i in 0..n {
        let key = format!("{tag}-{i}");
        let mut record = BaseRecord::to(topic).key(&key).payload(value);
        if let Some(name) = pipeline {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: "pipeline",
                value: Some(name),
            }));
        }
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    p.poll(Duration::from_millis(5));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Reads `topic` from the start until every key `<tag>-<i>` arrived; returns when the last did.
fn await_keys(bootstrap: &str, topic: &str, tag: &str, n: usize) -> Instant {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "bench-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    c.assign(&tpl).unwrap();
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
fn relay(
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
        let p = common::producer(&bootstrap, 2);
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
fn settle(p: &BaseProducer) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while p.in_flight_count() > 0 {
        assert!(Instant::now() < deadline, "records not acknowledged within 30 s");
        p.poll(Duration::from_millis(1));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // Enough records that the fixed ~0.6 s of producing and reading a round does not dominate.
    let records = env_usize("FLOWC_BENCH_RECORDS", 30_000);
    let rounds = env_usize("FLOWC_BENCH_ROUNDS", 3);
    let broker = DevBroker::start().expect("start the broker (scripts/install-broker.sh)");
    let bootstrap = broker.bootstrap();

    // The reference model server, in process.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = common::start_model_server(&rt);
    let models: Arc<dyn ModelBackend> = Arc::new(GrpcModels::connect(&url).unwrap());
    let config = KafkaConfig::new(&bootstrap);
    // flowc: the plan deployed, one worker in process.
    let stop = Arc::new(AtomicBool::new(false));
    let state = tempfile::tempdir().unwrap();
    let w = common::deploy_and_run(&config, models.clone(), stop.clone(), state.path());
    let cluster = deploy::Cluster::connect(&config).unwrap();
    let raw = ["raw.in", "raw.model.inputs", "raw.model.outputs", "raw.out"];
    cluster
        .create_topics(
            &raw.iter()
                .map(|t| deploy::TopicSpec {
                    name: t.to_string(),
                    partitions: PARTITIONS,
                    compacted: false,
                })
                .collect::<Vec<_>>(),
            1,
        )
        .unwrap();

    // Baseline: three relays, the middle one calling the same model.
    let m = models.clone();
    let call = move |bytes: &[u8]| {
        let request = ModelInferRequest::decode(bytes).unwrap();
        m.infer(MODEL, request).unwrap().encode_to_vec()
    };
    let relays = vec![
        relay(bootstrap.clone(), raw[0], raw[1], stop.clone(), |b| b.to_vec()),
        relay(bootstrap.clone(), raw[1], raw[2], stop.clone(), call),
        relay(bootstrap.clone(), raw[2], raw[3], stop.clone(), |b| b.to_vec()),
    ];

    let value = payload();
    let p = common::producer(&bootstrap, 2);
    let flowc_in = "seldon.default.pipeline.bench.inputs";
    let flowc_out = "seldon.default.pipeline.bench.outputs";
    // Warm up: groups joined, connections open.
    produce(&p, flowc_in, "warm", 50, &value, Some("bench"));
    produce(&p, raw[0], "warm", 50, &value, Some("bench"));
    await_keys(&bootstrap, flowc_out, "warm", 50);
    await_keys(&bootstrap, raw[3], "warm", 50);

    let (mut flowc_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (name, input, output, rates) in [
            ("flowc", flowc_in, flowc_out, &mut flowc_rates),
            ("raw", raw[0], raw[3], &mut raw_rates),
        ] {
            let tag = format!("r{round}");
            let started = Instant::now();
            produce(&p, input, &tag, records, &value, Some("bench"));
            let done = await_keys(&bootstrap, output, &tag, records);
            let secs = (done - started).as_secs_f64();
            let rate = records as f64 / secs;
            println!("round {round} {name:>5}: {records} records in {secs:.2} s = {rate:.0} records/s");
            rates.push(rate);
        }
    }
    let (f, r) = (median(flowc_rates), median(raw_rates));
    println!(
        "median flowc {f:.0} records/s, raw rdkafka pipe {r:.0} records/s, ratio {:.2} (goal >= 0.7)",
        f / r
    );
    stop.store(true, Ordering::Relaxed);
    for h in relays {
        let _ = h.join();
    }
    let _ = w.join();
}
