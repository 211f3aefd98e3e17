//! `flowc inspect --request-id` as retention grows: the lookup bounded by the time a gateway
//! request id carries, against the full scan (`--scan`, what inspect did before), in the same
//! run on the same broker.
//!
//! The 1-step bench pipeline (`benches/one-step.yaml`) is applied and its topics are filled
//! with the lineage its hops would write for `FLOWC_BENCH_LOOKUP_REQUESTS` requests (default
//! 1,000,000): for each, the pipeline's input, the model's input and output and the
//! pipeline's output, with the gateway's key, headers and timestamp, the requests
//! `FLOWC_BENCH_LOOKUP_RATE` per second apart in time (default 200/s, so a million span
//! 83 minutes), written straight to the topics (a worker would take hours here). After each
//! quarter, the newest request and one in the middle are looked up, by raw id (every
//! partition of the window) and by key (the key names the partition); after the last, the
//! full scan of the same requests. Prints medians of `FLOWC_BENCH_LOOKUP_RUNS` (3) lookups.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use flowc_runtime::kafka::inspect::{self, InspectOptions, Selector};
use flowc_runtime::kafka::KafkaConfig;
use flowc_runtime::record::gateway_key;
use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const PIPELINE: &str = "bench";

fn main() {
    common::announce();
    let total = common::env_usize("FLOWC_BENCH_LOOKUP_REQUESTS", 1_000_000);
    let rate = common::env_usize("FLOWC_BENCH_LOOKUP_RATE", 200).max(1);
    let runs = common::env_usize("FLOWC_BENCH_LOOKUP_RUNS", 3).max(1);
    let broker = common::start_broker();
    let config = KafkaConfig::new(broker.bootstrap())
        .detect_broker()
        .expect("the broker answers");
    common::apply_one_step(&config);

    let producer: BaseProducer = config
        .producer()
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    let value = common::request().encode_to_vec();
    let response = flowc_runtime::proto::inference::ModelInferResponse {
        model_name: common::MODEL.into(),
        outputs: common::request()
            .inputs
            .into_iter()
            .map(
                |t| flowc_runtime::proto::inference::model_infer_response::InferOutputTensor {
                    name: "OUTPUT".into(),
                    datatype: t.datatype,
                    shape: t.shape,
                    parameters: t.parameters,
                    contents: t.contents,
                },
            )
            .collect(),
        raw_output_contents: common::request().raw_input_contents,
        ..Default::default()
    }
    .encode_to_vec();
    // The requests' times: `rate` per second, the newest a minute ago.
    let span_ms = (total as i64 * 1000) / rate as i64;
    let first_ms = flowc_runtime::kafka::now_ms() - span_ms - 60_000;
    let time_of = |i: usize| first_ms + (i as i64 * 1000) / rate as i64;
    let id_of = |i: usize| flowc_runtime::request_id::new(time_of(i), 4242, i as u64);
    let key_of = |i: usize| gateway_key((i % common::PARTITIONS as usize) as i32, PIPELINE, &id_of(i));

    println!(
        "lookup: {total} requests, {rate}/s apart ({:.0} min of traffic), 4 records each, {} partitions per topic",
        span_ms as f64 / 60_000.0,
        common::PARTITIONS
    );
    let mut filled = 0;
    let mut short_of = None;
    for quarter in 1..=4 {
        let upto = total * quarter / 4;
        let started = Instant::now();
        for i in filled..upto {
            if let Err(e) = write_lineage(&producer, i, &key_of(i), &id_of(i), time_of(i), &value, &response) {
                short_of = Some(format!("stopped at request {i} of {total}: {e}"));
                break;
            }
        }
        producer.flush(Duration::from_secs(120)).expect("flush");
        let reached = if short_of.is_some() { filled } else { upto };
        println!(
            "filled {reached} requests ({} records) in {:.1} s",
            reached * 4,
            started.elapsed().as_secs_f64()
        );
        filled = reached;
        if filled == 0 {
            break;
        }
        let newest = filled - 1;
        let middle = filled / 2;
        for (what, i) in [("newest", newest), ("middle", middle)] {
            for (by, id) in [("raw id", id_of(i)), ("key", key_of(i))] {
                let (ms, records, read) = lookup(&config, &id, false, runs);
                println!(
                    "  {filled:>8} retained | {what:<6} by {by:<6} | lookup {ms:>8.1} ms | found {records} records | read {read} records"
                );
            }
        }
        if short_of.is_some() {
            break;
        }
    }
    // The full scan, as inspect read before: every retained record, on the same requests.
    for (what, i) in [("newest", filled.saturating_sub(1)), ("middle", filled / 2)] {
        let (ms, records, read) = lookup(&config, &id_of(i), true, 1);
        println!(
            "  {filled:>8} retained | {what:<6} by raw id | full scan {ms:>8.1} ms | found {records} records | read {read} records"
        );
    }
    if let Some(why) = short_of {
        println!("fell short of {total} requests: {why}");
    }
}

/// The four records a request leaves in the 1-step pipeline's topics, as its hops write them.
fn write_lineage(
    producer: &BaseProducer,
    i: usize,
    key: &str,
    id: &str,
    at_ms: i64,
    request: &[u8],
    response: &[u8],
) -> Result<(), String> {
    let partition = (i % common::PARTITIONS as usize) as i32;
    let topics = [
        ("seldon.default.pipeline.bench.inputs".to_string(), request),
        (format!("seldon.default.model.{}.inputs", common::MODEL), request),
        (format!("seldon.default.model.{}.outputs", common::MODEL), response),
        ("seldon.default.pipeline.bench.outputs".to_string(), response),
    ];
    for (topic, value) in &topics {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "pipeline",
                value: Some(PIPELINE),
            })
            .insert(Header {
                key: "x-request-id",
                value: Some(id),
            });
        let mut record = BaseRecord::to(topic)
            .key(key)
            .payload(*value)
            .partition(partition)
            .timestamp(at_ms)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    }
    producer.poll(Duration::ZERO);
    Ok(())
}

/// Median ms of `runs` lookups of `id`, the records found and the offsets read.
fn lookup(config: &KafkaConfig, id: &str, scan: bool, runs: usize) -> (f64, usize, i64) {
    let selector = Selector::parse(PIPELINE).expect("selector");
    let options = InspectOptions {
        prefix: "seldon".into(),
        namespace: "default".into(),
        count: 10,
        request_id: Some(id.to_string()),
        since_ms: None,
        until_ms: None,
        request_window: Duration::from_secs(30),
        scan,
        tensor: None,
        full: false,
        headers: false,
        timeout: Duration::from_secs(600),
    };
    let mut ms = Vec::new();
    let mut found = (0, 0);
    for _ in 0..runs {
        let started = Instant::now();
        let got = inspect::inspect(config, &selector, &options).expect("inspect");
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        found = (got.shown.len(), got.searched.records);
    }
    (common::median(ms), found.0, found.1)
}
