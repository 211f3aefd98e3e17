//! Changing what runs, while it runs: `flowc apply` of a changed pipeline under synchronous
//! load (every answer is wholly version 1's or version 2's, never mixed, never an error), a
//! changed join while keys are half-joined (they complete under the version they started
//! with), an unchanged apply that touches nothing, and a delete under load that answers the
//! requests in flight at once, then a re-apply that answers again. On the test broker (Apache
//! Kafka, or tansu with `FLOWC_TEST_BROKER=tansu`).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use support::{fp32, http_post, int32, keys, request, Env};

const WAIT: Duration = Duration::from_secs(90);

fn sum_diff() -> flowc_runtime::proto::inference::ModelInferRequest {
    request(vec![
        int32("INPUT0", vec![1, 16], (1..=16).collect()),
        int32("INPUT1", vec![1, 16], (1..=16).collect()),
    ])
}

/// Waits until `flowc status` says the pipeline runs: every consumer group has a member.
fn wait_running(env: &Env, pipeline: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = env.flowc(&["status"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains(&format!("pipeline {pipeline} (")) && text.contains(": running") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{pipeline} never ran:\n{text}\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The end offset of the deployment log (`<prefix>.flowc.deployments`).
fn deployment_log_end(env: &Env) -> i64 {
    let consumer: BaseConsumer = env
        .client_config()
        .set("group.id", "flowc-test-watermarks")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(&env.topic("flowc.deployments"), 0, Duration::from_secs(10))
        .expect("watermarks");
    high
}

#[test]
fn apply_while_workers_run_and_an_unchanged_apply_touches_nothing() {
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker("worker");
    // Every group has a live member and several have never committed (nothing reached them):
    // apply used to commit start offsets for those and Apache Kafka refused it
    // (UNKNOWN_MEMBER_ID), failing the update with exit 2.
    wait_running(&env, "tfsimples");

    let before = deployment_log_end(&env);
    let again = env.apply(&["samples/chain.yaml"], 2);
    assert!(again.contains("pipeline tfsimples: unchanged"), "{again}");
    assert_eq!(
        deployment_log_end(&env),
        before,
        "an unchanged apply wrote to the deployment log"
    );

    let changed = env.dir.path().join("chain-join.yaml");
    let text = std::fs::read_to_string(support::root().join("samples/chain.yaml")).expect("read");
    let text = text.replace("      - tfsimple2\n", "      - tfsimple2\n      - tfsimple1\n");
    std::fs::write(&changed, text).expect("write");
    let out = env.apply(&[changed.to_str().expect("path")], 2);
    assert!(out.contains("pipeline tfsimples: update"), "{out}");
    assert!(out.contains("~ sub-topology _output (changed: runs anew"), "{out}");
    assert!(out.contains("(version 1 -> 2)"), "{out}");

    // The updated pipeline answers: its output now joins both steps' outputs.
    let producer = env.producer();
    let ks = keys("after-update", 3);
    for k in &ks {
        env.send(&producer, "tfsimples", k, &sum_diff());
    }
    let got = env.collect(&env.topic("default.pipeline.tfsimples.outputs"), &ks, WAIT);
    for k in &ks {
        assert_eq!(
            got[k].header("seldon-pipeline-errors"),
            None,
            "{k}: {}",
            got[k].tensors()
        );
        assert!(got[k].tensors().contains("OUTPUT0"), "{k}: {}", got[k].tensors());
    }
}

/// One synchronous call: when it started and ended, its status and body.
struct Call {
    started: Instant,
    ended: Instant,
    status: u16,
    body: String,
}

#[test]
fn a_delete_under_load_answers_at_once_and_a_reapply_answers_again() {
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker("worker");
    let gateway = env.start_gateway("gateway", &["--request-timeout-ms", "20000"]);
    env.wait_pipeline_ready(&gateway.http, "tfsimples");

    let body = flowc_oip::json::request_to_json(&sum_diff())
        .expect("encodes")
        .to_string();
    let url = format!("{}/v2/pipelines/tfsimples/infer", gateway.http);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Vec::<Call>::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, calls, url, body) = (stop.clone(), calls.clone(), url.clone(), body.clone());
            std::thread::spawn(move || {
                // Bounded: at most 5,000 calls per client, and the test stops them.
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let started = Instant::now();
                    let (status, body) = match http_post(&url, &[], &body) {
                        Ok((status, _, body)) => (status, body),
                        Err(e) => (0, e),
                    };
                    calls.lock().expect("calls").push(Call {
                        started,
                        ended: Instant::now(),
                        status,
                        body,
                    });
                    if status != 200 {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(3));
    let deleted_at = Instant::now();
    let out = env.flowc(&["delete", "tfsimples"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::thread::sleep(Duration::from_secs(4));

    let reapplied_at = Instant::now();
    env.apply(&["samples/chain.yaml"], 2);
    let deadline = Instant::now() + WAIT;
    let answered_again = loop {
        let again = calls
            .lock()
            .expect("calls")
            .iter()
            .find(|c| c.started > reapplied_at && c.status == 200)
            .map(|c| c.ended);
        if let Some(at) = again {
            break at;
        }
        assert!(
            Instant::now() < deadline,
            "no answer after the re-apply\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }

    let calls = calls.lock().expect("calls");
    let expected = format!(
        "OUTPUT0 INT32 [1, 16] = {0:?}\nOUTPUT1 INT32 [1, 16] = {0:?}",
        (1..=16).map(|i| 2 * i).collect::<Vec<i32>>()
    );
    let (mut ok, mut gone, mut in_flight) = (0, 0, 0);
    for c in calls.iter() {
        match c.status {
            200 => {
                assert_eq!(support::json_tensors(&c.body), expected);
                ok += 1;
            }
            // Deleted, or not deployed (yet, again).
            404 => gone += 1,
            other => panic!("a call answered {other}: {}\n{}", c.body, env.logs()),
        }
        // A call in flight when the pipeline was deleted is answered within seconds, not at
        // the 20 s timeout.
        if c.started < deleted_at && c.ended > deleted_at {
            in_flight += 1;
            let waited = c.ended.duration_since(deleted_at);
            assert!(
                waited < Duration::from_secs(5),
                "a call in flight at the delete waited {waited:?}: {} {}",
                c.status,
                c.body
            );
        }
    }
    eprintln!(
        "{} calls: {ok} answered, {gone} not deployed; {in_flight} in flight at the delete; answered again {:?} after the re-apply",
        calls.len(),
        answered_again.duration_since(reapplied_at)
    );
    assert!(ok > 0 && gone > 0, "{ok} answered, {gone} not deployed");
}

/// The value of header `name` (lower case) of an HTTP answer.
fn answer_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn an_update_under_load_answers_every_request_wholly_by_one_version() {
    let mut env = Env::start();
    env.start_model_server(&["tests/e2e/chain3.yaml"]);
    env.apply(&["tests/e2e/chain3.yaml"], 2);
    env.start_worker("worker");
    let gateway = env.start_gateway("gateway", &[]);
    env.wait_pipeline_ready(&gateway.http, "chain3");

    let body = flowc_oip::json::request_to_json(&request(vec![fp32("INPUT", vec![4], vec![1.0, 2.0, 3.0, 4.0])]))
        .expect("encodes")
        .to_string();
    let v1 = "OUTPUT FP32 [4] = [120.0, 130.0, 140.0, 150.0]";
    let v2 = "OUTPUT FP32 [4] = [210.0, 220.0, 230.0, 240.0]";
    let url = format!("{}/v2/pipelines/chain3/infer", gateway.http);
    let started = Instant::now();
    let run_for = Duration::from_secs(45);
    // (sent at, answered at, status, answer tensors or body, x-pipeline-version)
    type Answer = (Duration, Duration, u16, String, Option<String>);
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (answers, url, body) = (answers.clone(), url.clone(), body.clone());
            std::thread::spawn(move || {
                // Bounded in time and in count.
                for _ in 0..20_000 {
                    if started.elapsed() >= run_for {
                        break;
                    }
                    let sent = started.elapsed();
                    let (status, text, version) = match http_post(&url, &[], &body) {
                        Ok((200, headers, body)) => (
                            200,
                            support::json_tensors(&body),
                            answer_header(&headers, "x-pipeline-version").map(str::to_string),
                        ),
                        Ok((status, _, body)) => (status, body, None),
                        Err(e) => (0, e, None),
                    };
                    answers
                        .lock()
                        .expect("answers")
                        .push((sent, started.elapsed(), status, text, version));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(10));
    let applied_at = started.elapsed();
    let out = env.apply(&["tests/e2e/chain3-v2.yaml"], 2);
    let apply_took = started.elapsed() - applied_at;
    assert!(out.contains("pipeline chain3: update"), "{out}");
    for sub in ["add-c", "mul-b", "_output"] {
        assert!(out.contains(&format!("~ sub-topology {sub} (changed")), "{sub}: {out}");
    }
    assert!(!out.contains("~ sub-topology add-a"), "{out}");
    let status = String::from_utf8_lossy(&env.flowc(&["status"]).stdout).into_owned();
    assert!(
        status.contains("pipeline chain3 (") && status.contains("version 2"),
        "{status}"
    );
    assert!(status.contains("version 1: draining"), "{status}");
    for c in clients {
        c.join().expect("client");
    }

    let answers = answers.lock().expect("answers");
    let (mut ones, mut twos, mut first_two, mut last_one) = (0, 0, None, None);
    for (sent, answered, status, text, version) in answers.iter() {
        assert_eq!(
            *status,
            200,
            "a request sent at {sent:?} got {status}: {text}\n{}",
            env.logs()
        );
        match (text.as_str(), version.as_deref()) {
            (t, Some("1")) if t == v1 => {
                ones += 1;
                last_one = Some(last_one.map_or(*sent, |l: Duration| l.max(*sent)));
            }
            (t, Some("2")) if t == v2 => {
                twos += 1;
                first_two = Some(first_two.map_or(*answered, |f: Duration| f.min(*answered)));
            }
            other => panic!("a mixed or unknown answer (sent at {sent:?}): {other:?}"),
        }
    }
    let first_two = first_two.unwrap_or_else(|| panic!("no answer of version 2\n{}", env.logs()));
    let switch = first_two.saturating_sub(applied_at);
    eprintln!(
        "{} answers: {ones} of version 1, {twos} of version 2; apply took {apply_took:?}; first version-2 answer {switch:?} after apply began; last version-1 request sent {:?} after it",
        answers.len(),
        last_one.map(|l| l.saturating_sub(applied_at))
    );
    assert!(ones > 0, "no answer of version 1");
    // From a few seconds after apply, every request is version 2's.
    let late_ones = answers
        .iter()
        .filter(|(sent, _, _, _, v)| {
            *sent > applied_at + apply_took + Duration::from_secs(10) && v.as_deref() == Some("1")
        })
        .count();
    assert_eq!(
        late_ones, 0,
        "requests sent 10 s after apply were still answered by version 1"
    );
}

#[test]
fn half_joined_keys_complete_under_the_version_they_started_with() {
    let mut env = Env::start();
    env.start_model_server(&["tests/e2e/halves.yaml"]);
    env.apply(&["tests/e2e/halves.yaml"], 2);
    env.start_worker("worker");
    let producer = env.producer();
    let half = keys("half", 6);
    for k in &half {
        env.send(&producer, "left", k, &request(vec![fp32("L", vec![1], vec![1.0])]));
    }
    // Their left halves are in the join's store (its changelog says so).
    let changelog = env.topic("default.pipeline.halves._input.join-changelog");
    let stored = env.collect_n(&changelog, half.len(), WAIT);
    assert_eq!(stored.len(), half.len());

    let out = env.apply(&["tests/e2e/halves-v2.yaml"], 2);
    assert!(out.contains("pipeline halves: update"), "{out}");
    assert!(out.contains("~ sub-topology _input (changed"), "{out}");

    // The right halves arrive after the update; new keys come in whole.
    let fresh = keys("fresh", 4);
    for k in half.iter().chain(&fresh) {
        env.send(&producer, "right", k, &request(vec![fp32("R", vec![1], vec![2.0])]));
    }
    for k in &fresh {
        env.send(&producer, "left", k, &request(vec![fp32("L", vec![1], vec![1.0])]));
    }
    let all: Vec<String> = half.iter().chain(&fresh).cloned().collect();
    let got = env.collect(&env.topic("default.pipeline.halves.outputs"), &all, WAIT);
    for k in &all {
        assert_eq!(
            got[k].tensors(),
            "L FP32 [1] = [1.0]\nR FP32 [1] = [2.0]",
            "{k}\n{}",
            env.logs()
        );
    }
    for k in &half {
        assert_eq!(
            got[k].header("x-pipeline-version"),
            Some("1"),
            "{k} started under version 1"
        );
    }
    for k in &fresh {
        assert_eq!(
            got[k].header("x-pipeline-version"),
            Some("2"),
            "{k} came in after the update"
        );
    }
}

#[test]
fn records_a_deleted_pipeline_left_in_a_model_topic_are_skipped_and_counted() {
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    let metrics = format!("127.0.0.1:{}", support::free_port());
    env.start_worker_with_args("worker", &["--metrics-listen", &metrics]);
    wait_running(&env, "tfsimples");
    let out = env.flowc(&["delete", "tfsimples"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    // tfsimple1 stays deployed as a Model, so its model call keeps running; these records of the
    // deleted pipeline wait in its inputs topic (as a step's last outputs would).
    let producer = env.producer();
    let left = keys("left-over", 3);
    let topic = env.topic("default.model.tfsimple1.inputs");
    for k in &left {
        let value = prost::Message::encode_to_vec(&sum_diff());
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "pipeline",
            value: Some("tfsimples"),
        });
        producer
            .send(
                rdkafka::producer::BaseRecord::to(&topic)
                    .key(k)
                    .payload(&value)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).expect("flush");
    // A record of a deployed model's own caller (no pipeline header) is still answered.
    let direct = "direct-call".to_string();
    let value = prost::Message::encode_to_vec(&sum_diff());
    producer
        .send(rdkafka::producer::BaseRecord::to(&topic).key(&direct).payload(&value))
        .map_err(|(e, _)| e)
        .expect("send");
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).expect("flush");
    let got = env.collect(
        &env.topic("default.model.tfsimple1.outputs"),
        std::slice::from_ref(&direct),
        WAIT,
    );
    assert!(got[&direct].tensors().contains("OUTPUT0"), "{}", got[&direct].tensors());

    let series =
        "flowc_records_skipped_total{pipeline=\"tfsimples\",reason=\"pipeline not deployed\",step=\"_model-tfsimple1\"}";
    let deadline = Instant::now() + WAIT;
    loop {
        let text = support::http_get(&format!("http://{metrics}/metrics"), &[])
            .map(|(_, _, body)| body)
            .unwrap_or_default();
        if text.lines().any(|l| l.starts_with(series)) && support::metric(&text, series) >= left.len() as f64 {
            assert_eq!(support::metric(&text, series), left.len() as f64, "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {series} of {}:\n{text}\n{}",
            left.len(),
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
