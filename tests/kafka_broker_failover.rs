//! A broker dies under load: a 3-node Apache Kafka KRaft cluster (replication factor 3,
//! `min.insync.replicas=2`) runs `samples/chain.yaml` (two steps) with one `flowc worker` and
//! one `flowc gateway`. While a producer (acks=all, idempotent) writes requests to the
//! pipeline's inputs topic and a few HTTP clients call the pipeline through the gateway, the
//! node that leads the pipeline's partitions is SIGKILLed, left down a while, then restarted.
//!
//! Nothing accepted is lost: every request the producer got an ack for is answered, exactly,
//! by a record on the outputs topic (at least once: duplicates are counted, not failed), and
//! every HTTP call is answered 200 (the right answer) or 504 (the gateway's request timeout).
//! The test prints how long the outputs paused and the counts.
//!
//! Needs Apache Kafka (`scripts/install-kafka.sh`). `FLOWC_TEST_DUMP_LOGS=<file>` writes every
//! process's log (the nodes' tails included) to `<file>`, also when the test passes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowc_oip::json::request_to_json;
use flowc_runtime::devbroker::{BrokerKind, DevBroker};
use prost::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use support::{http_post, int32, json_tensors, request, Env, Received, TestBroker};

const PIPELINE: &str = "tfsimples";
const PARTITIONS: &str = "2";
/// One async request every this often.
const ASYNC_EVERY: Duration = Duration::from_millis(25);
/// HTTP callers, each one request at a time with a short pause between requests.
const SYNC_CLIENTS: usize = 3;
const SYNC_PAUSE: Duration = Duration::from_millis(20);
/// Most requests of one HTTP caller (the loops are bounded by time and by count).
const SYNC_MAX: usize = 5_000;
const GATEWAY_TIMEOUT_MS: &str = "8000";
/// Load before the kill, with the node down, and after its restart.
const WARM_UP: Duration = Duration::from_secs(8);
const DOWN_FOR: Duration = Duration::from_secs(15);
const AFTER_RESTART: Duration = Duration::from_secs(8);
/// How long every accepted request may take to be answered once the load stops.
const DRAIN: Duration = Duration::from_secs(60);
/// No load thread runs longer than this, whatever happens.
const HARD_LIMIT: Duration = Duration::from_secs(150);

fn expected(v: i32) -> String {
    format!("OUTPUT0 INT32 [1] = [{}]\nOUTPUT1 INT32 [1] = [{}]", 2 * v, 2 * v)
}

fn chain_request(v: i32) -> flowc_runtime::proto::inference::ModelInferRequest {
    request(vec![
        int32("INPUT0", vec![1], vec![v]),
        int32("INPUT1", vec![1], vec![v]),
    ])
}

/// The async producer's delivery reports: which requests (by number) the cluster accepted.
#[derive(Default)]
struct Acks {
    acked: Mutex<Vec<(u64, Instant)>>,
    failed: Mutex<Vec<(u64, String)>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, n: Box<u64>) {
        match result {
            Ok(_) => self.acked.lock().expect("acks").push((*n, Instant::now())),
            Err((e, _)) => self.failed.lock().expect("acks").push((*n, e.to_string())),
        }
    }
}

/// One record read from the outputs topic.
struct Output {
    key: String,
    tensors: String,
    arrived: Instant,
    created_ms: i64,
}

/// One HTTP call through the gateway.
struct Call {
    client: usize,
    value: i32,
    status: Result<u16, String>,
    right_answer: bool,
    body: String,
    started: Instant,
    took: Duration,
}

/// Sets the flags when dropped, so a panicking test body still stops the load threads.
struct StopOnDrop<'a>(&'a [&'a AtomicBool]);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        for f in self.0 {
            f.store(true, Ordering::Relaxed);
        }
    }
}

/// Every partition of `topics`: (topic, partition, leader, replicas, in-sync replicas).
type PartitionInfo = (String, i32, i32, Vec<i32>, Vec<i32>);

fn partitions_of(consumer: &BaseConsumer, topics: &[String]) -> Vec<PartitionInfo> {
    try_partitions_of(consumer, topics).expect("cluster metadata")
}

fn try_partitions_of(consumer: &BaseConsumer, topics: &[String]) -> rdkafka::error::KafkaResult<Vec<PartitionInfo>> {
    let md = consumer.fetch_metadata(None, Duration::from_secs(5))?;
    let mut out = Vec::new();
    for t in md.topics().iter().filter(|t| topics.iter().any(|n| n == t.name())) {
        for p in t.partitions() {
            out.push((
                t.name().to_string(),
                p.id(),
                p.leader(),
                p.replicas().to_vec(),
                p.isr().to_vec(),
            ));
        }
    }
    out.sort();
    Ok(out)
}

/// `inputs/0: leader 3, in sync [3, 1, 2]; …` (topic names after the pipeline's name).
fn show(partitions: &[PartitionInfo]) -> String {
    partitions
        .iter()
        .map(|(topic, partition, leader, _, isr)| {
            let short = topic.rsplit('.').next().unwrap_or(topic);
            format!("{short}/{partition}: leader {leader}, in sync {isr:?}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The largest gap between consecutive instants of `times` (sorted) that ends after `from`
/// and starts before `to` (`within`: that lies between them), and where it started relative
/// to `origin`, in ms.
fn largest_gap(times: &[Instant], from: Instant, to: Instant, origin: Instant, within: bool) -> (Duration, i128) {
    let mut best = (Duration::ZERO, 0i128);
    for w in times.windows(2) {
        let outside = if within {
            w[0] < from || w[1] > to
        } else {
            w[1] < from || w[0] > to
        };
        if outside {
            continue;
        }
        let gap = w[1].saturating_duration_since(w[0]);
        if gap > best.0 {
            let at = if w[0] >= origin {
                w[0].duration_since(origin).as_millis() as i128
            } else {
                -(origin.duration_since(w[0]).as_millis() as i128)
            };
            best = (gap, at);
        }
    }
    best
}

#[test]
fn killing_the_leading_broker_loses_no_accepted_request() {
    let test_started = Instant::now();
    let cluster = DevBroker::builder(BrokerKind::Kafka)
        .nodes(3)
        .start()
        .unwrap_or_else(|e| panic!("cannot start a 3-node Kafka cluster: {e}"));
    let mut env = Env::on(TestBroker::Own(cluster));
    env.start_model_server(&["samples/chain.yaml"]);
    let out = env.flowc(&[
        "apply",
        "samples/chain.yaml",
        "--partitions",
        PARTITIONS,
        "--replication-factor",
        "3",
    ]);
    assert!(
        out.status.success(),
        "flowc apply failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    env.start_worker("worker");
    let gw = env.start_gateway("gateway", &["--request-timeout-ms", GATEWAY_TIMEOUT_MS]);
    env.wait_pipeline_ready(&gw.http, PIPELINE);
    let inputs = env.topic(&format!("default.pipeline.{PIPELINE}.inputs"));
    let outputs = env.topic(&format!("default.pipeline.{PIPELINE}.outputs"));

    // One request end to end before the load: the worker holds its partitions.
    let (status, _, body) = http_post(
        &format!("{}/v2/pipelines/{PIPELINE}/infer", gw.http),
        &[],
        &request_to_json(&chain_request(7)).expect("json").to_string(),
    )
    .expect("http");
    assert_eq!(status, 200, "{body}\n{}", env.logs());
    assert_eq!(json_tensors(&body), expected(7));

    // Every topic of this test is replicated to all 3 nodes, in sync, with min.insync.replicas=2.
    let meta: BaseConsumer = env.client_config().create().expect("metadata client");
    let ours: Vec<String> = meta
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata")
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .filter(|n| n.starts_with(&format!("{}.", env.prefix)))
        .collect();
    assert!(
        ours.contains(&inputs) && ours.contains(&outputs),
        "{ours:?}\n{}",
        env.logs()
    );
    for (topic, partition, _, replicas, isr) in partitions_of(&meta, &ours) {
        assert_eq!(replicas.len(), 3, "{topic}/{partition}: replicas {replicas:?}");
        assert_eq!(isr.len(), 3, "{topic}/{partition}: in sync {isr:?}");
    }
    let admin: AdminClient<DefaultClientContext> = env.client_config().create().expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let specs: Vec<ResourceSpecifier<'_>> = ours.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let configs = rt
        .block_on(admin.describe_configs(&specs, &options))
        .expect("describe configs");
    for (topic, config) in ours.iter().zip(configs) {
        let config = config.unwrap_or_else(|e| panic!("{topic}: {e:?}"));
        let min_isr = config.get("min.insync.replicas").and_then(|e| e.value.clone());
        assert_eq!(min_isr.as_deref(), Some("2"), "{topic}: min.insync.replicas");
    }
    eprintln!(
        "{} topics with replication factor 3 and min.insync.replicas=2 ({:?} in)",
        ours.len(),
        test_started.elapsed()
    );

    // The node leading most partitions of the pipeline's inputs and outputs topics.
    let pipeline_topics = [inputs.clone(), outputs.clone()];
    let before = partitions_of(&meta, &pipeline_topics);
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for (_, _, leader, _, _) in &before {
        *led.entry(*leader).or_default() += 1;
    }
    let victim = *led
        .iter()
        .max_by_key(|(node, n)| (**n, std::cmp::Reverse(**node)))
        .map(|(node, _)| node)
        .expect("a leader");
    eprintln!("before the kill: {}; killing node {victim}", show(&before));

    // The load: an async producer, HTTP callers and a reader of the outputs topic.
    let acks_producer: ThreadedProducer<Acks> = env
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("max.in.flight.requests.per.connection", "1")
        .set("message.timeout.ms", "90000")
        .create_with_context(Acks::default())
        .expect("producer");
    let reader = env.reader(&outputs, Instant::now() + Duration::from_secs(30));
    let infer_url = format!("{}/v2/pipelines/{PIPELINE}/infer", gw.http);
    let stop_load = AtomicBool::new(false);
    let stop_reader = AtomicBool::new(false);
    let read: Mutex<Vec<Output>> = Mutex::new(Vec::new());
    let sent: Mutex<Vec<(u64, Instant)>> = Mutex::new(Vec::new());
    let send_errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let calls: Mutex<Vec<Call>> = Mutex::new(Vec::new());
    let load_started = Instant::now();
    let hard_deadline = load_started + HARD_LIMIT;

    let mut killed_at = load_started;
    let mut restarted_at = load_started;
    let mut leaders_moved: Option<Duration> = None;
    let mut restart_took = Duration::ZERO;
    let mut load_stopped = load_started;
    let mut drained: Option<Duration> = None;
    let acked_keys = |acks: &Acks| -> BTreeSet<String> {
        acks.acked
            .lock()
            .expect("acks")
            .iter()
            .map(|(n, _)| format!("a-{n}"))
            .collect()
    };
    let producer = Arc::new(acks_producer);

    std::thread::scope(|s| {
        let _stop = StopOnDrop(&[&stop_load, &stop_reader]);
        // The async producer: one request every ASYNC_EVERY until told to stop.
        let async_load = {
            let (producer, inputs, sent, send_errors, stop_load) =
                (producer.clone(), &inputs, &sent, &send_errors, &stop_load);
            s.spawn(move || {
                let mut n: u64 = 0;
                while !stop_load.load(Ordering::Relaxed) && Instant::now() < hard_deadline {
                    let key = format!("a-{n}");
                    let value = chain_request(n as i32).encode_to_vec();
                    let headers = OwnedHeaders::new().insert(Header {
                        key: "pipeline",
                        value: Some(PIPELINE),
                    });
                    let record = BaseRecord::with_opaque_to(inputs, Box::new(n))
                        .key(&key)
                        .payload(&value)
                        .headers(headers);
                    match producer.send(record) {
                        Ok(()) => {
                            sent.lock().expect("sent").push((n, Instant::now()));
                            n += 1;
                        }
                        Err((e, _)) => send_errors.lock().expect("errors").push(format!("{key}: {e}")),
                    }
                    std::thread::sleep(ASYNC_EVERY);
                }
            })
        };
        // HTTP callers.
        for client in 0..SYNC_CLIENTS {
            let (infer_url, calls, stop_load) = (&infer_url, &calls, &stop_load);
            s.spawn(move || {
                for i in 0..SYNC_MAX {
                    if stop_load.load(Ordering::Relaxed) || Instant::now() >= hard_deadline {
                        break;
                    }
                    let value = 1_000_000 + (client * 100_000 + i) as i32;
                    let body = request_to_json(&chain_request(value)).expect("json").to_string();
                    let started = Instant::now();
                    let answer = http_post(infer_url, &[], &body);
                    let took = started.elapsed();
                    let call = match answer {
                        Ok((status, _, body)) => Call {
                            client,
                            value,
                            status: Ok(status),
                            right_answer: status == 200
                                && std::panic::catch_unwind(|| json_tensors(&body)).ok() == Some(expected(value)),
                            body,
                            started,
                            took,
                        },
                        Err(e) => Call {
                            client,
                            value,
                            status: Err(e),
                            right_answer: false,
                            body: String::new(),
                            started,
                            took,
                        },
                    };
                    calls.lock().expect("calls").push(call);
                    std::thread::sleep(SYNC_PAUSE);
                }
            });
        }
        // The reader of the outputs topic.
        {
            let (read, stop_reader) = (&read, &stop_reader);
            s.spawn(move || {
                while !stop_reader.load(Ordering::Relaxed) && Instant::now() < hard_deadline + DRAIN {
                    let Some(m) = reader.poll(Duration::from_millis(100)) else {
                        continue;
                    };
                    let Ok(m) = m else {
                        continue;
                    };
                    let arrived = Instant::now();
                    let created_ms = m.timestamp().to_millis().unwrap_or(0);
                    let (key, record) = Received::of(&m);
                    read.lock().expect("read").push(Output {
                        key,
                        tensors: record.tensors(),
                        arrived,
                        created_ms,
                    });
                }
            });
        }

        std::thread::sleep(WARM_UP);
        let TestBroker::Own(cluster) = &mut env.broker else {
            unreachable!("the test's own cluster")
        };
        killed_at = Instant::now();
        cluster.kill_node(victim);
        eprintln!(
            "node {victim} SIGKILLed at +{:?} (unix {} ms)",
            killed_at - load_started,
            crate_now_ms()
        );
        // How long until the pipeline's partitions have new leaders (bounded by DOWN_FOR).
        while killed_at.elapsed() < DOWN_FOR {
            let now = try_partitions_of(&meta, &pipeline_topics).unwrap_or_default();
            if leaders_moved.is_none()
                && now.len() == before.len()
                && now.iter().all(|(_, _, leader, _, _)| *leader >= 0 && *leader != victim)
            {
                leaders_moved = Some(killed_at.elapsed());
                eprintln!("new leaders after {:?}: {}", killed_at.elapsed(), show(&now));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        restarted_at = Instant::now();
        let restarted = cluster.restart_node(victim);
        restart_took = restarted_at.elapsed();
        if let Err(e) = restarted {
            stop_load.store(true, Ordering::Relaxed);
            stop_reader.store(true, Ordering::Relaxed);
            panic!("node {victim} did not come back: {e}\n{}", env.logs());
        }
        eprintln!("node {victim} back after {restart_took:?}");
        std::thread::sleep(AFTER_RESTART);
        stop_load.store(true, Ordering::Relaxed);
        load_stopped = Instant::now();
        let _ = async_load.join();
        // Everything the producer has is acknowledged or failed by now (bounded by its
        // message timeout); then every accepted request must show up on the outputs topic.
        let _ = producer.flush(Duration::from_secs(95));
        let wanted = acked_keys(producer.context());
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline {
            let all = {
                let read = read.lock().expect("read");
                let keys: BTreeSet<&str> = read.iter().map(|o| o.key.as_str()).collect();
                wanted.iter().all(|k| keys.contains(k.as_str()))
            };
            if all {
                drained = Some(load_stopped.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        // A little longer, for late duplicates and the last HTTP answers.
        std::thread::sleep(Duration::from_secs(1));
        stop_reader.store(true, Ordering::Relaxed);
    });

    // ---------------------------------------------------------------- what happened
    let acks = producer.context();
    let acked: Vec<(u64, Instant)> = acks.acked.lock().expect("acks").clone();
    let failed: Vec<(u64, String)> = acks.failed.lock().expect("acks").clone();
    let sent = sent.into_inner().expect("sent");
    let send_errors = send_errors.into_inner().expect("errors");
    let read = read.into_inner().expect("read");
    let calls = calls.into_inner().expect("calls");
    let sent_at: BTreeMap<u64, Instant> = sent.iter().copied().collect();

    // Async: every acked request answered, exactly; duplicates counted.
    let mut by_key: BTreeMap<&str, Vec<&Output>> = BTreeMap::new();
    for o in &read {
        by_key.entry(o.key.as_str()).or_default().push(o);
    }
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut async_duplicates = 0;
    for (n, _) in &acked {
        let key = format!("a-{n}");
        match by_key.get(key.as_str()) {
            None => missing.push(key),
            Some(records) => {
                async_duplicates += records.len() - 1;
                for r in records {
                    if r.tensors != expected(*n as i32) {
                        wrong.push(format!("{key}: {}", r.tensors));
                    }
                }
            }
        }
    }
    let sent_while_down = acked
        .iter()
        .filter(|(n, _)| sent_at.get(n).is_some_and(|t| *t >= killed_at && *t < restarted_at))
        .count();

    // Sync: 200 (with the right answer) or 504, nothing else.
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad_calls = Vec::new();
    for c in &calls {
        let label = match &c.status {
            Ok(s) => s.to_string(),
            Err(_) => "transport error".to_string(),
        };
        *statuses.entry(label).or_default() += 1;
        let fine = matches!(c.status, Ok(504)) || (matches!(c.status, Ok(200)) && c.right_answer);
        if !fine {
            bad_calls.push(format!(
                "client {} value {} at +{:?} after {:?}: {:?} {}",
                c.client,
                c.value,
                c.started.saturating_duration_since(load_started),
                c.took,
                c.status,
                c.body
            ));
        }
    }
    let slowest = calls.iter().map(|c| c.took).max().unwrap_or_default();
    // When the answer of each timed-out call reached the outputs topic (if it did).
    let timed_out: Vec<String> = calls
        .iter()
        .filter(|c| matches!(c.status, Ok(504)))
        .map(|c| {
            let key = c
                .body
                .split("request ")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap_or("?");
            let answered = by_key
                .get(key)
                .and_then(|r| r.first())
                .map_or("never".to_string(), |o| {
                    format!("+{:?}", o.arrived.saturating_duration_since(c.started))
                });
            format!(
                "{key} sent at +{:?} (kill at +{:?}), answer on the outputs topic {answered}",
                c.started.saturating_duration_since(load_started),
                killed_at - load_started
            )
        })
        .collect();
    let sync_keys: Vec<&&str> = by_key.keys().filter(|k| !k.starts_with("a-")).collect();
    let sync_duplicates: usize = sync_keys.iter().map(|k| by_key[**k].len() - 1).sum();

    // The pause: the largest gap between consecutive output records from just before the kill
    // to the end of the load, by arrival at this reader and by the records' create time.
    let arrivals: Vec<Instant> = read.iter().map(|o| o.arrived).collect();
    let window_from = killed_at - Duration::from_secs(1);
    let (pause, pause_at) = largest_gap(&arrivals, window_from, load_stopped, killed_at, false);
    let (baseline, _) = largest_gap(
        &arrivals,
        load_started + Duration::from_secs(2),
        killed_at,
        killed_at,
        true,
    );
    let kill_ms = crate_now_ms() - killed_at.elapsed().as_millis() as i64;
    let mut created: Vec<i64> = read.iter().map(|o| o.created_ms).filter(|t| *t > 0).collect();
    created.sort_unstable();
    let created_pause = created
        .windows(2)
        .filter(|w| w[1] >= kill_ms - 1000 && w[0] <= kill_ms + (load_stopped - killed_at).as_millis() as i64)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0);
    let ack_times: Vec<Instant> = {
        let mut t: Vec<Instant> = acked.iter().map(|(_, t)| *t).collect();
        t.sort();
        t
    };
    let (ack_pause, _) = largest_gap(&ack_times, window_from, load_stopped, killed_at, false);

    eprintln!(
        "broker fail-over: node {victim} killed at +{:?}, new leaders after {}, restarted after {DOWN_FOR:?} (back in {restart_took:?})",
        killed_at - load_started,
        leaders_moved.map_or("(not within the down time)".to_string(), |d| format!("{d:?}")),
    );
    eprintln!(
        "outputs paused {pause:?} (largest gap between output records arriving, starting {pause_at} ms after the kill; by create time {created_pause} ms; before the kill at most {baseline:?}); producer acks paused {ack_pause:?}"
    );
    eprintln!(
        "async: {} sent, {} acked ({sent_while_down} of them sent while the node was down), {} delivery failures, {} send errors; {} answered, {} missing, {async_duplicates} duplicates, {} wrong; all answered {} after the load stopped",
        sent.len(),
        acked.len(),
        failed.len(),
        send_errors.len(),
        acked.len() - missing.len(),
        missing.len(),
        wrong.len(),
        drained.map_or("never".to_string(), |d| format!("{d:?}")),
    );
    eprintln!(
        "sync: {} calls by {SYNC_CLIENTS} clients, statuses {statuses:?}, slowest {slowest:?}; {} answer keys on the outputs topic, {sync_duplicates} duplicates",
        calls.len(),
        sync_keys.len()
    );
    for t in &timed_out {
        eprintln!("  504: {t}");
    }
    eprintln!(
        "outputs topic: {} records in all; test took {:?}",
        read.len(),
        test_started.elapsed()
    );

    if let Ok(path) = std::env::var("FLOWC_TEST_DUMP_LOGS") {
        std::fs::write(path, env.logs()).expect("dump");
    }
    let logs = || env.logs();
    assert!(
        missing.is_empty(),
        "{} acked requests never answered (first {:?})\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        logs()
    );
    assert!(
        wrong.is_empty(),
        "wrong answers: {:?}\n{}",
        &wrong[..wrong.len().min(20)],
        logs()
    );
    assert!(
        bad_calls.is_empty(),
        "{} HTTP calls answered other than 200 (right answer) or 504: {:?}\n{}",
        bad_calls.len(),
        &bad_calls[..bad_calls.len().min(20)],
        logs()
    );
    assert!(
        sent_while_down > 0,
        "no request sent while node {victim} was down was accepted (acks=all with 2 of 3 in sync should be)\n{}",
        logs()
    );
    assert!(
        statuses.get("200").copied().unwrap_or(0) > 0,
        "no HTTP call answered 200\n{}",
        logs()
    );

    // The restarted node catches up: every partition of the pipeline is in sync on 3 again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = partitions_of(&meta, &pipeline_topics);
        if now.iter().all(|(_, _, _, _, isr)| isr.len() == 3) {
            eprintln!(
                "node {victim} back in sync {:?} after its restart: {}",
                restarted_at.elapsed(),
                show(&now)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node {victim} never rejoined the in-sync replicas: {}\n{}",
            show(&now),
            logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn crate_now_ms() -> i64 {
    flowc_runtime::kafka::now_ms()
}
