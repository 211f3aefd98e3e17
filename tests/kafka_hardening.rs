//! Hardening on a real broker (issue 19): what a backlog built while a model server is down
//! costs when it comes back, with deadlines (synchronous requests: expired records are not sent
//! to the model, so the model is called for the fresh request only) and without (async records:
//! every one is called); and poison records (undecodable values, records without or with
//! another pipeline's `pipeline` header, garbage on a model's shared inputs topic) mixed into
//! good traffic: every good request is answered, every garbled record is accounted for by an
//! error record or a worker metric, and the worker neither stops nor restarts its consumers.
//!
//! The model server's `GET /metrics` (`flowc_model_requests_total{model, outcome}`) says how
//! often a model was really called. Every figure is printed for the session notes; no timing is
//! asserted (waits are generous, for a loaded 2-core machine).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowc_runtime::devbroker::BrokerKind;
use flowc_runtime::proto::inference::ModelInferRequest;
use prost::Message as _;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use support::{int32, request, Env, Proc};

const WAIT: Duration = Duration::from_secs(180);
const ONE_STEP: &str = "tests/e2e/one-step.yaml";
/// Requests of the backlog, and callers sending them at once.
const BACKLOG: usize = 2_000;
const CALLERS: usize = 64;

// ------------------------------------------------------------------ helpers

fn seq(from: i32, step: i32) -> Vec<i32> {
    (0..16).map(|i| from + i * step).collect()
}

/// INPUT0 = INPUT1 = [from, from + 1, …, from + 15].
fn sum_diff(from: i32) -> ModelInferRequest {
    request(vec![
        int32("INPUT0", vec![1, 16], seq(from, 1)),
        int32("INPUT1", vec![1, 16], seq(from, 1)),
    ])
}

/// The one-step pipeline's answer to [`sum_diff`]`(1)`.
fn one_step_answer() -> String {
    format!(
        "OUTPUT0 INT32 [1, 16] = {:?}\nOUTPUT1 INT32 [1, 16] = {:?}",
        seq(2, 2),
        vec![0; 16]
    )
}

/// The join pipeline's answer to [`sum_diff`]`(from)`: tfsimple3 gets 2x and 0, and answers
/// 2x and 2x.
fn join_answer(from: i32) -> String {
    format!(
        "OUTPUT0 INT32 [1, 16] = {0:?}\nOUTPUT1 INT32 [1, 16] = {0:?}",
        seq(2 * from, 2)
    )
}

/// The reference model server for `file` on `port`, once it says it serves.
fn model_server(env: &Env, name: &str, port: u16, file: &str) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let file = support::root().join(file).display().to_string();
    let proc = Proc::spawn(name, env.dir.path(), &["model-server", "--listen", &listen, &file]);
    proc.wait_for_log("serving", 1, Duration::from_secs(30));
    proc
}

fn get_text(url: &str) -> String {
    match support::http_get(url, &[]) {
        Ok((200, _, text)) => text,
        other => panic!("GET {url}: {other:?}"),
    }
}

/// Every series of `name` in Prometheus text: its labels and value.
fn series(text: &str, name: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((l, v)) => (l, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let labels = labels
            .split("\",")
            .filter(|kv| !kv.is_empty())
            .filter_map(|kv| kv.split_once("=\""))
            .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
            .collect();
        out.push((labels, value));
    }
    out
}

/// `flowc_model_requests_total{model, outcome}` of the reference model server on `port`.
fn model_calls(port: u16, model: &str, outcome: &str) -> u64 {
    let text = get_text(&format!("http://127.0.0.1:{port}/metrics"));
    series(&text, "flowc_model_requests_total")
        .into_iter()
        .find(|(l, _)| {
            l.get("model").map(String::as_str) == Some(model) && l.get("outcome").map(String::as_str) == Some(outcome)
        })
        .map(|(_, v)| v as u64)
        .unwrap_or_else(|| panic!("no flowc_model_requests_total{{model={model},outcome={outcome}}} in:\n{text}"))
}

/// `POST` a sync request of the pipeline through the gateway: status, body and latency.
fn infer(http: &str, pipeline: &str, request_id: &str, body: &str) -> (u16, String, Duration) {
    let url = format!("{http}/v2/pipelines/{pipeline}/infer");
    let started = Instant::now();
    let answer = support::http_post(&url, &[("x-request-id", request_id)], body);
    let took = started.elapsed();
    match answer {
        Ok((status, _, text)) => (status, text, took),
        Err(e) => (0, e, took),
    }
}

fn json_body(request: &ModelInferRequest) -> String {
    flowc_oip::json::request_to_json(request).expect("encodes").to_string()
}

/// Until the gateway answers a request of `pipeline` with 200 (the first may time out while
/// the worker's consumers join their groups): how many tries it took.
fn warm_up(env: &Env, http: &str, pipeline: &str, body: &str, expected: &str) -> usize {
    let deadline = Instant::now() + WAIT;
    let mut tries = 0;
    loop {
        tries += 1;
        let (status, text, _) = infer(http, pipeline, &format!("warm-{tries}"), body);
        if status == 200 {
            assert_eq!(support::json_tensors(&text), expected, "warm-up answer");
            return tries;
        }
        assert!(
            Instant::now() < deadline,
            "no warm-up answer within {WAIT:?} ({tries} tries, last {status}: {text})\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A record to write: topic, partition (or the partitioner's), key, value, `pipeline` header.
type Outgoing = (String, Option<i32>, String, Vec<u8>, Option<String>);

/// Writes records with one flush at the end, as an async producer would.
fn produce_all(producer: &BaseProducer, records: &[Outgoing]) {
    for (topic, partition, key, value, pipeline) in records {
        let mut headers = OwnedHeaders::new();
        if let Some(p) = pipeline {
            headers = headers.insert(Header {
                key: "pipeline",
                value: Some(p.as_str()),
            });
        }
        let mut record = BaseRecord::to(topic).key(key).payload(value).headers(headers);
        if let Some(p) = partition {
            record = record.partition(*p);
        }
        let mut record = Some(record);
        while let Some(r) = record.take() {
            match producer.send(r) {
                Ok(()) => {}
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) => {
                    producer.poll(Duration::from_millis(10));
                    record = Some(r);
                }
                Err((e, _)) => panic!("send to {topic}: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

/// Reads `topic` from the beginning until `done` says the records seen are enough (or the
/// wait ends, which fails the test with every process's log).
fn read_until(
    env: &Env,
    topic: &str,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[(String, support::Received)]) -> bool,
) -> Vec<(String, support::Received)> {
    let deadline = Instant::now() + timeout;
    let consumer = env.reader(topic, deadline);
    let mut got = Vec::new();
    let mut checked = Instant::now();
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            got.push(support::Received::of(&m.expect("consume")));
            if checked.elapsed() < Duration::from_millis(200) {
                continue;
            }
        }
        checked = Instant::now();
        if done(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {what} not seen within {timeout:?} ({} records read)\n{}",
            got.len(),
            env.logs()
        );
    }
}

/// Every record of `topic` up to its end now (the high watermarks read at the call).
fn read_to_end(env: &Env, topic: &str) -> Vec<(String, support::Received)> {
    let deadline = Instant::now() + WAIT;
    let consumer = env.reader(topic, deadline);
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let partitions = md.topics().first().map_or(0, |t| t.partitions().len()) as i32;
    let mut high = BTreeMap::new();
    for p in 0..partitions {
        let (_, h) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        high.insert(p, h);
    }
    let mut position: BTreeMap<i32, i64> = BTreeMap::new();
    let mut got = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        let reached = high.iter().all(|(p, h)| position.get(p).copied().unwrap_or(0) >= *h);
        // tansu's watermark counts batches, not records: there, read on until quiet.
        let tansu = support::broker_kind() == BrokerKind::Tansu;
        if (reached && !tansu) || (tansu && quiet_since.elapsed() > Duration::from_secs(3)) {
            return got;
        }
        assert!(Instant::now() < deadline, "{topic} not read to its end\n{}", env.logs());
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            position.insert(m.partition(), m.offset() + 1);
            got.push(support::Received::of(&m));
            quiet_since = Instant::now();
        }
    }
}

// ------------------------------------------------------------------ deadlines

#[test]
fn a_backlog_of_expired_sync_requests_is_not_sent_to_the_model_when_it_comes_back() {
    let mut env = Env::start();
    let port = support::free_port();
    let mut server = model_server(&env, "model-server-1", port, ONE_STEP);
    env.model_url = Some(format!("http://127.0.0.1:{port}"));
    env.apply(&[ONE_STEP], 2);
    let metrics_port = support::free_port();
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    env.start_worker_with_args("worker", &["--metrics-listen", &metrics_listen]);
    let gateway = env.start_gateway("gateway", &["--request-timeout-ms", "1000"]);
    env.wait_pipeline_ready(&gateway.http, "one");
    let body = json_body(&sum_diff(1));
    let tries = warm_up(&env, &gateway.http, "one", &body, &one_step_answer());
    println!("deadlines: warm-up answered 200 after {tries} tries");

    // Down: 2,000 sync requests, 64 at a time, each given up by the gateway at its 1 s timeout.
    server.kill();
    let statuses: Arc<Mutex<BTreeMap<u16, usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..CALLERS {
            let (statuses, next, body, http) = (statuses.clone(), next.clone(), &body, &gateway.http);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= BACKLOG {
                    break;
                }
                let (status, _, _) = infer(http, "one", &format!("dl-{i}"), body);
                *statuses.lock().unwrap().entry(status).or_default() += 1;
            });
        }
    });
    let statuses = statuses.lock().unwrap().clone();
    println!(
        "deadlines: {BACKLOG} sync requests with the model server down, {CALLERS} callers, in {:.1} s: statuses {statuses:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        statuses,
        BTreeMap::from([(504, BACKLOG)]),
        "every request is 504 at its 1 s timeout\n{}",
        env.logs()
    );

    // Back on the same port; ready once the gateway sees the model ready.
    let _server = model_server(&env, "model-server-2", port, ONE_STEP);
    env.wait_pipeline_ready(&gateway.http, "one");
    let (status, text, took) = infer(&gateway.http, "one", "fresh", &body);
    println!(
        "deadlines: a fresh request after the restart: {status} in {:.1} ms",
        took.as_secs_f64() * 1000.0
    );
    assert_eq!(status, 200, "the fresh request: {text}\n{}", env.logs());
    assert_eq!(support::json_tensors(&text), one_step_answer());

    // The backlog is worked off: every one of the 2,000 keys (`<partition>.one.dl-<i>`) has a
    // record on the pipeline's outputs, the error record "deadline exceeded before step …"
    // (forwarded from the errors topic) or, had its model been called, an answer nobody waits
    // for any more.
    let wanted: BTreeSet<String> = (0..BACKLOG).map(|i| format!("dl-{i}")).collect();
    let id_of = |key: &str| key.split_once(".one.").map(|(_, id)| id.to_string());
    let outputs = read_until(
        &env,
        &env.topic("default.pipeline.one.outputs"),
        WAIT,
        "a record for every request of the backlog",
        |got| {
            let seen: BTreeSet<String> = got
                .iter()
                .filter_map(|(k, _)| id_of(k))
                .filter(|id| wanted.contains(id))
                .collect();
            seen.len() == wanted.len()
        },
    );
    let mut expired_keys = BTreeSet::new();
    let mut answered_keys = BTreeSet::new();
    for (key, r) in &outputs {
        let Some(id) = id_of(key).filter(|id| wanted.contains(id)) else {
            continue;
        };
        if r.header("seldon-pipeline-errors").is_none() {
            answered_keys.insert(id);
        } else if String::from_utf8_lossy(&r.value).contains("deadline exceeded before step") {
            expired_keys.insert(id);
        }
    }
    // Every error record of the backlog on the errors topic (a batch read again after a
    // rewind writes its expired records' errors again).
    let errors = read_to_end(&env, &env.topic("default.errors.errors"));
    let deadline_errors: Vec<&(String, support::Received)> = errors
        .iter()
        .filter(|(k, _)| id_of(k).is_some_and(|id| wanted.contains(&id)))
        .collect();
    let at_model = deadline_errors
        .iter()
        .filter(|(_, r)| String::from_utf8_lossy(&r.value).contains("before step model sd"))
        .count();
    println!(
        "deadlines: of the {BACKLOG} keys, {} have a deadline error record and {} were answered by the model after \
         their caller got 504; {} deadline error records on the errors topic ({at_model} at the model call, {} at the step)",
        expired_keys.len(),
        answered_keys.len(),
        deadline_errors.len(),
        deadline_errors.len() - at_model
    );
    let worker_metrics = get_text(&format!("http://{metrics_listen}/metrics"));
    let skipped: f64 = series(&worker_metrics, "flowc_records_skipped_total")
        .iter()
        .filter(|(l, _)| l.get("reason").map(String::as_str) == Some("deadline exceeded"))
        .map(|(_, v)| v)
        .sum();
    let (ok, failed) = (model_calls(port, "sd", "ok"), model_calls(port, "sd", "error"));
    println!(
        "deadlines: worker flowc_records_skipped_total{{reason=\"deadline exceeded\"}} = {skipped}; \
         the restarted model server was called {ok} times ok, {failed} times in error"
    );
    assert_eq!(
        (ok, failed),
        (1, 0),
        "the model is called for the fresh request only, never for the {BACKLOG} expired ones (more ok calls: \
         requests whose deadline passed while their call waited out the outage were sent to the model when it \
         came back; {} of them answered)",
        answered_keys.len()
    );
    assert!(
        answered_keys.is_empty(),
        "answered after their deadline: {answered_keys:?}"
    );
    // A record read past its deadline is skipped and counted when it is read; one read in
    // time whose call then waited out the outage is stopped in the call, before its next
    // try (an error record all the same, counted by the model-call failures instead).
    assert!(
        skipped > 0.0 && skipped <= BACKLOG as f64,
        "skipped {skipped}\n{worker_metrics}"
    );
}

#[test]
fn without_deadlines_a_backlog_is_called_in_full_when_the_model_comes_back() {
    let mut env = Env::start();
    let port = support::free_port();
    let mut server = model_server(&env, "model-server-1", port, ONE_STEP);
    env.model_url = Some(format!("http://127.0.0.1:{port}"));
    env.apply(&[ONE_STEP], 2);
    let worker = env.start_worker("worker");
    // A long timeout: the fresh request waits behind the backlog, and its latency is the figure.
    let gateway = env.start_gateway("gateway", &["--request-timeout-ms", "170000"]);
    env.wait_pipeline_ready(&gateway.http, "one");
    let body = json_body(&sum_diff(1));
    warm_up(&env, &gateway.http, "one", &body, &one_step_answer());

    // Down: the same backlog written by an async producer, no deadline header.
    server.kill();
    let inputs = env.topic("default.pipeline.one.inputs");
    let value = sum_diff(1).encode_to_vec();
    let backlog: Vec<_> = (0..BACKLOG)
        .map(|i| {
            (
                inputs.clone(),
                None,
                format!("async-{i}"),
                value.clone(),
                Some("one".to_string()),
            )
        })
        .collect();
    produce_all(&env.producer(), &backlog);
    // The worker has found the server gone (it retries the batch, it does not drop it).
    env.procs[worker].wait_for_log("model server unreachable", 1, WAIT);

    let _server = model_server(&env, "model-server-2", port, ONE_STEP);
    let restarted = Instant::now();
    env.wait_pipeline_ready(&gateway.http, "one");
    let (status, text, took) = infer(&gateway.http, "one", "fresh", &body);
    println!(
        "no deadlines: a fresh request after the restart: {status} in {:.1} ms ({:.1} ms after the restart)",
        took.as_secs_f64() * 1000.0,
        restarted.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(status, 200, "the fresh request: {text}\n{}", env.logs());
    assert_eq!(support::json_tensors(&text), one_step_answer());

    let keys: Vec<String> = (0..BACKLOG).map(|i| format!("async-{i}")).collect();
    let got = env.collect(&env.topic("default.pipeline.one.outputs"), &keys, WAIT);
    println!(
        "no deadlines: the {BACKLOG} async records answered {:.1} s after the restart",
        restarted.elapsed().as_secs_f64()
    );
    for k in &keys {
        assert_eq!(
            got[k].header("seldon-pipeline-errors"),
            None,
            "{k}: {}",
            String::from_utf8_lossy(&got[k].value)
        );
        assert_eq!(got[k].tensors(), one_step_answer(), "{k}");
    }
    let (ok, failed) = (model_calls(port, "sd", "ok"), model_calls(port, "sd", "error"));
    let backlog_calls = ok.saturating_sub(1);
    println!("no deadlines: the restarted model server was called {ok} times ok ({backlog_calls} for the backlog, 1 fresh), {failed} in error");
    assert_eq!(failed, 0);
    assert_eq!(
        backlog_calls, BACKLOG as u64,
        "every record of the backlog is called once (more: a batch was redone, at least once)"
    );
}

// ------------------------------------------------------------------ poison records

/// The kinds of garbled record, and where they go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Poison {
    /// Random bytes on the pipeline's inputs, `pipeline` header right.
    RandomBytes,
    /// A good request cut short, `pipeline` header right.
    Truncated,
    /// A good request without a `pipeline` header.
    NoPipelineHeader,
    /// A good request whose `pipeline` header names another pipeline.
    OtherPipeline,
    /// Random bytes on the model's shared inputs topic, `pipeline` header right.
    ModelInputGarbage,
    /// A good request on the model's shared inputs topic from a pipeline that is not deployed.
    ModelInputOtherPipeline,
}

impl Poison {
    /// 50 records: 10 + 10 + 8 + 8 + 7 + 7.
    fn of(n: usize) -> Poison {
        match n {
            0..10 => Poison::RandomBytes,
            10..20 => Poison::Truncated,
            20..28 => Poison::NoPipelineHeader,
            28..36 => Poison::OtherPipeline,
            36..43 => Poison::ModelInputGarbage,
            _ => Poison::ModelInputOtherPipeline,
        }
    }

    fn on_model_inputs(self) -> bool {
        matches!(self, Poison::ModelInputGarbage | Poison::ModelInputOtherPipeline)
    }
}

/// Deterministic bytes that do not decode as a `ModelInferRequest`.
fn garbage(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    loop {
        let len = 8 + (x % 120) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        if ModelInferRequest::decode(bytes.as_slice()).is_err() {
            return bytes;
        }
    }
}

/// A good request's encoding cut inside a field, so it does not decode.
fn truncated(n: usize) -> Vec<u8> {
    let full = sum_diff(n as i32).encode_to_vec();
    let mut cut = full.len() / 2 + n;
    while ModelInferRequest::decode(&full[..cut]).is_ok() {
        cut -= 1;
    }
    full[..cut].to_vec()
}

#[test]
fn poison_records_are_accounted_for_and_the_worker_goes_on() {
    let mut env = Env::start();
    env.start_model_server(&["samples/join.yaml"]);
    env.apply(&["samples/join.yaml"], 2);
    let metrics_listen = format!("127.0.0.1:{}", support::free_port());
    let worker = env.start_worker_with_args("worker", &["--metrics-listen", &metrics_listen]);
    let inputs = env.topic("default.pipeline.join.inputs");
    let model_inputs = env.topic("default.model.tfsimple1.inputs");

    // 1,000 good requests and, after every 20th, one of the 50 garbled records, their kinds
    // spread over the stream.
    let mut records = Vec::new();
    let mut poison: BTreeMap<String, Poison> = BTreeMap::new();
    for i in 0..1000 {
        let key = format!("good-{i}");
        records.push((
            inputs.clone(),
            None,
            key,
            sum_diff(i as i32).encode_to_vec(),
            Some("join".to_string()),
        ));
        if i % 20 == 19 {
            let n = (i / 20 * 7) % 50;
            let kind = Poison::of(n);
            let key = format!("poison-{n}");
            let good = sum_diff(1000 + n as i32).encode_to_vec();
            let join = Some("join".to_string());
            let other = Some("not-deployed".to_string());
            let (topic, value, pipeline) = match kind {
                Poison::RandomBytes => (&inputs, garbage(n as u64), join),
                Poison::Truncated => (&inputs, truncated(n), join),
                Poison::NoPipelineHeader => (&inputs, good, None),
                Poison::OtherPipeline => (&inputs, good, other),
                Poison::ModelInputGarbage => (&model_inputs, garbage(n as u64), join),
                Poison::ModelInputOtherPipeline => (&model_inputs, good, other),
            };
            records.push((topic.clone(), None, key.clone(), value, pipeline));
            poison.insert(key, kind);
        }
    }
    assert_eq!(poison.len(), 50);
    // Then a good request on every partition: once each is answered, every partition's poison
    // has been read by every step.
    let partitions = 2;
    let after: Vec<String> = (0..partitions).map(|p| format!("after-{p}")).collect();
    for (p, key) in after.iter().enumerate() {
        records.push((
            inputs.clone(),
            Some(p as i32),
            key.clone(),
            sum_diff(1).encode_to_vec(),
            Some("join".to_string()),
        ));
    }
    let producer = env.producer();
    produce_all(&producer, &records);

    let good: Vec<String> = (0..1000).map(|i| format!("good-{i}")).collect();
    let mut wanted = good.clone();
    wanted.extend(after.iter().cloned());
    let outputs = env.topic("default.pipeline.join.outputs");
    let got = env.collect(&outputs, &wanted, WAIT);
    let mut wrong = Vec::new();
    for (i, k) in good.iter().enumerate() {
        if got[k].header("seldon-pipeline-errors").is_some() || got[k].tensors() != join_answer(i as i32) {
            wrong.push(format!("{k}: {}", got[k].tensors()));
        }
    }
    for k in &after {
        if got[k].tensors() != join_answer(1) {
            wrong.push(format!("{k}: {}", got[k].tensors()));
        }
    }
    println!(
        "poison: {} good requests answered, {} wrong",
        good.len() + after.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "wrong answers: {wrong:?}");

    // The accounting. Every step reading a topic with poison accounts for each garbled record
    // there: an error record of its own (`ERROR: <step>/…`) or a count in
    // `flowc_records_skipped_total{step}`.
    let errors = read_to_end(&env, &env.topic("default.errors.errors"));
    let mut error_texts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, r) in &errors {
        if poison.contains_key(key) {
            error_texts
                .entry(key.clone())
                .or_default()
                .push(String::from_utf8_lossy(&r.value).into_owned());
        }
    }
    let mut samples: BTreeMap<Poison, &String> = BTreeMap::new();
    for (key, texts) in &error_texts {
        if let Some(t) = texts.first() {
            samples.entry(poison[key]).or_insert(t);
        }
    }
    for (kind, text) in &samples {
        println!("poison: an error record for {kind:?}: {text}");
    }
    let metrics = get_text(&format!("http://{metrics_listen}/metrics"));
    let skipped = series(&metrics, "flowc_records_skipped_total");
    let readers: [(&str, bool); 3] = [("tfsimple1", false), ("tfsimple2", false), ("_model-tfsimple1", true)];
    let mut problems = Vec::new();
    for (step, on_model_inputs) in readers {
        let mine: Vec<(&String, Poison)> = poison
            .iter()
            .filter(|(_, k)| k.on_model_inputs() == on_model_inputs)
            .map(|(key, k)| (key, *k))
            .collect();
        let prefix = format!("ERROR: {step}/");
        let mut by_kind: BTreeMap<Poison, (usize, usize)> = BTreeMap::new();
        let mut error_records = 0;
        for (key, kind) in &mine {
            let entry = by_kind.entry(*kind).or_default();
            entry.0 += 1;
            let texts: Vec<&String> = error_texts
                .get(*key)
                .map(|t| t.iter().filter(|t| t.starts_with(&prefix)).collect())
                .unwrap_or_default();
            if !texts.is_empty() {
                entry.1 += 1;
                error_records += 1;
                if !texts.iter().all(|t| t.contains("malformed record")) {
                    problems.push(format!(
                        "{step}: {key} ({kind:?}): error text does not name the problem: {texts:?}"
                    ));
                }
            }
        }
        let skips: Vec<String> = skipped
            .iter()
            .filter(|(l, v)| l.get("step").map(String::as_str) == Some(step) && *v > 0.0)
            .map(|(l, v)| {
                format!(
                    "{}/{}={v}",
                    l.get("pipeline").cloned().unwrap_or_default(),
                    l.get("reason").cloned().unwrap_or_default()
                )
            })
            .collect();
        let skip_count = skipped
            .iter()
            .filter(|(l, _)| l.get("step").map(String::as_str) == Some(step))
            .map(|(_, v)| *v as u64)
            .sum::<u64>() as usize;
        println!(
            "poison: step {step} read {} garbled records: {error_records} error records + {skip_count} skipped ({skips:?}); \
             per kind (records, error records): {by_kind:?}",
            mine.len()
        );
        if error_records + skip_count != mine.len() {
            let unaccounted: Vec<Poison> = by_kind.iter().filter(|(_, (n, e))| e < n).map(|(k, _)| *k).collect();
            problems.push(format!(
                "{step}: {} garbled records, {error_records} error records + {skip_count} skipped; kinds without error records: {unaccounted:?}",
                mine.len()
            ));
        }
    }

    // The worker is alive, did not restart its consumers, and answers a fresh request.
    let alive = env.procs[worker].try_wait().is_none();
    let log = env.procs[worker].log();
    let restarts = log.matches("consumer failed; restarting").count();
    let panics = log.matches("panicked").count();
    env.send(&producer, "join", "fresh", &sum_diff(7));
    let fresh = env.collect(&outputs, &["fresh".to_string()], WAIT);
    println!(
        "poison: worker alive {alive}, consumer restarts {restarts}, panics {panics}, fresh request: {}",
        fresh["fresh"].tensors().replace('\n', "; ")
    );
    assert!(alive, "the worker stopped\n{}", env.logs());
    assert_eq!(
        (restarts, panics),
        (0, 0),
        "the worker restarted consumers or panicked:\n{log}"
    );
    assert_eq!(fresh["fresh"].tensors(), join_answer(7));
    assert!(
        problems.is_empty(),
        "garbled records not accounted for (a record a step reads and leaves alone must be counted, e.g. \
         flowc_records_skipped_total{{reason=\"no pipeline header\"|\"other pipeline\"}}, or answered with an \
         error record):\n{}",
        problems.join("\n")
    );
}
