//! `flowc inspect` (PIPELINES.md §8) on a real broker (Apache Kafka, or tansu): the lineage of one request
//! through the join example, step by step, errors included; last records per topic; narrowing
//! to a step's tensor; clear errors for unknown names. The JSON lineage is a golden file
//! (`tests/golden/inspect/join-lineage.json`, volatile fields removed; re-bless with
//! `FLOWC_BLESS=1 cargo test --test kafka_inspect`).
//!
//! Needs the broker: `scripts/install-kafka.sh` / `scripts/install-broker.sh` (run by
//! `scripts/test.sh`).

mod support;

use std::time::{Duration, Instant};

use support::{fp32, int32, request, root, Env};

const WAIT: Duration = Duration::from_secs(90);

fn run(env: &Env, args: &[&str]) -> (bool, String, String) {
    let out = env.flowc(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lineage without what changes from run to run (offsets, times).
fn stable(mut v: serde_json::Value) -> serde_json::Value {
    for record in v.as_array_mut().expect("an array") {
        let o = record.as_object_mut().expect("an object");
        o.remove("offset");
        o.remove("timestamp_ms");
    }
    v
}

#[test]
fn lineage_of_one_request_and_its_errors() {
    let mut env = Env::start();
    env.start_model_server(&["samples/join.yaml"]);
    env.apply(&["samples/join.yaml"], 2);
    let metrics_addr = format!("127.0.0.1:{}", support::free_port());
    env.start_worker_with_args("worker", &["--metrics-listen", &metrics_addr]);
    let producer = env.producer();
    let good = |v: i32| {
        request(vec![
            int32("INPUT0", vec![1, 16], (v..v + 16).collect()),
            int32("INPUT1", vec![1, 16], (v..v + 16).collect()),
        ])
    };
    env.send(&producer, "join", "req-a", &good(1));
    env.send(&producer, "join", "req-b", &good(100));
    // A gateway-style key: the raw id finds it too.
    env.send(&producer, "join", "1.join.req-c", &good(7));
    let bad = request(vec![
        fp32("INPUT0", vec![1], vec![1.0]),
        fp32("INPUT1", vec![1], vec![1.0]),
    ]);
    env.send(&producer, "join", "bad-1", &bad);
    let keys: Vec<String> = ["req-a", "req-b", "1.join.req-c", "bad-1"].map(String::from).to_vec();
    env.collect(&env.topic("default.pipeline.join.outputs"), &keys, WAIT);

    // The worker's metrics count exactly that traffic: 4 requests, one the model rejects.
    let (status, _, text) = support::http_get(&format!("http://{metrics_addr}/metrics"), &[]).expect("scrape");
    assert_eq!(status, 200);
    let per_hop = [
        ("flowc_records_in_total{pipeline=\"join\",step=\"tfsimple1\"}", 4.0),
        ("flowc_records_out_total{pipeline=\"join\",step=\"tfsimple1\"}", 4.0),
        (
            "flowc_records_in_total{pipeline=\"join\",step=\"_model-tfsimple1\"}",
            4.0,
        ),
        (
            "flowc_records_out_total{pipeline=\"join\",step=\"_model-tfsimple1\"}",
            3.0,
        ),
        (
            "flowc_error_records_total{pipeline=\"join\",step=\"_model-tfsimple1\"}",
            1.0,
        ),
        ("flowc_model_call_seconds_count{model=\"tfsimple1\"}", 4.0),
        (
            "flowc_model_call_failures_total{kind=\"failed\",model=\"tfsimple1\"}",
            1.0,
        ),
        ("flowc_records_out_total{pipeline=\"join\",step=\"_output\"}", 3.0),
        (
            "flowc_record_processing_seconds_count{pipeline=\"join\",step=\"tfsimple3\"}",
            6.0,
        ),
    ];
    // Fused (§10): one task reads the 4 requests and makes every call; the model's own
    // figures are the same: 4 calls of tfsimple1, not 8, although the Model's own call step
    // (deployed with it) reads the fused task's lineage on its inputs topic: it skips it.
    let fused = [
        ("flowc_records_in_total{pipeline=\"join\",step=\"_fused\"}", 4.0),
        ("flowc_model_call_seconds_count{model=\"tfsimple1\"}", 4.0),
        (
            "flowc_model_call_failures_total{kind=\"failed\",model=\"tfsimple1\"}",
            1.0,
        ),
        ("flowc_model_call_seconds_count{model=\"tfsimple3\"}", 3.0),
    ];
    let expected: &[(&str, f64)] = if support::execution() == "fused" {
        &fused
    } else {
        &per_hop
    };
    for (series, value) in expected {
        assert_eq!(support::metric(&text, series), *value, "{series}\n{text}");
    }

    // The lineage of req-a, as JSON: every step's inputs and outputs, nothing of req-b.
    let (ok, out, err) = run(&env, &["inspect", "join", "--request-id", "req-a", "--format", "json"]);
    assert!(ok, "{err}\n{}", env.logs());
    let lineage: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let slots: Vec<&str> = lineage
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["slot"].as_str().expect("slot"))
        .collect();
    assert_eq!(
        slots,
        [
            "pipeline join inputs",
            "step tfsimple1 inputs",
            "step tfsimple1 outputs",
            "step tfsimple2 inputs",
            "step tfsimple2 outputs",
            "step tfsimple3 inputs",
            "step tfsimple3 outputs",
            "pipeline join outputs",
        ],
        "{out}"
    );
    assert!(
        lineage.as_array().expect("array").iter().all(|r| r["key"] == "req-a"),
        "{out}"
    );
    let golden = root().join("tests/golden/inspect/join-lineage.json");
    let got = env.unprefixed(&serde_json::to_string_pretty(&stable(lineage)).expect("json")) + "\n";
    flowc_golden::assert_none(&Vec::from_iter(flowc_golden::check(&golden, &got)));

    // The same, searching only the last 10 minutes.
    let t = Instant::now();
    let (ok, out, err) = run(
        &env,
        &["inspect", "join", "-r", "req-a", "--since", "10m", "--format", "json"],
    );
    eprintln!("SINCE took {:?}", t.elapsed());
    assert!(ok, "{err}");
    let recent: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(recent.as_array().map(Vec::len), Some(8), "{out}");

    // The raw id of a gateway key finds its lineage.
    let (ok, out, err) = run(&env, &["inspect", "join.tfsimple3.outputs", "--request-id", "req-c"]);
    assert!(ok, "{err}");
    assert!(out.contains("key 1.join.req-c"), "{out}");
    assert!(
        out.contains("OUTPUT0 INT32 [1, 16] = [14, 16, 18, 20, 22, 24, 26, 28, … (16 values)]"),
        "{out}"
    );

    // A failing model: the error record is part of the lineage.
    let (ok, out, err) = run(&env, &["inspect", "join", "-r", "bad-1"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("== errors ({})", env.topic("default.errors.errors"))),
        "{out}"
    );
    assert!(
        out.contains("error: tfsimple1 : INPUT0: expected INT32, got FP32"),
        "{out}"
    );
    assert!(!out.contains("req-a"), "{out}");

    // Last records of one step's tensor, whole, with headers.
    let (ok, out, err) = run(
        &env,
        &[
            "inspect",
            "join.tfsimple1.outputs.OUTPUT1",
            "--count",
            "1",
            "--full",
            "--headers",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.matches("  key ").count(), 1, "{out}");
    assert!(out.contains("    pipeline: join"), "{out}");
    assert!(
        out.contains("OUTPUT1 INT32 [1, 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"),
        "{out}"
    );
    assert!(!out.contains("OUTPUT0"), "{out}");

    // Unknown names are errors that say what exists.
    let (ok, _, err) = run(&env, &["inspect", "jion"]);
    assert!(!ok);
    assert!(
        err.contains("pipeline jion is not deployed in namespace default (did you mean join?)"),
        "{err}"
    );
    let (ok, _, err) = run(&env, &["inspect", "join.tfsimple9"]);
    assert!(!ok);
    assert!(
        err.contains(
            "pipeline join has no step tfsimple9 (did you mean tfsimple1?); its steps: tfsimple1, tfsimple2, tfsimple3"
        ),
        "{err}"
    );
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let started = Instant::now();
    let out = std::process::Command::new(support::flowc())
        .args(["inspect", "join", "-b", "127.0.0.1:1", "--timeout-ms", "1500"])
        .output()
        .expect("run flowc");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot reach a Kafka broker at 127.0.0.1:1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
}

/// Requests through the gateway carry their time in their ids: `inspect --request-id` reads
/// only the records written around it, and finds the same lineage as the full scan
/// (`--scan`), by raw id and by key. `inspect --follow` streams the records of every step as
/// they are written.
#[test]
fn gateway_requests_are_found_by_their_time_and_follow_streams_them() {
    let mut env = Env::start();
    env.start_model_server(&["samples/join.yaml"]);
    env.apply(&["samples/join.yaml"], 2);
    env.start_worker("worker");
    let gateway = env.start_gateway("gw", &[]);
    env.wait_pipeline_ready(&gateway.http, "join");
    let mut follow_args = vec!["inspect".to_string(), "join".into(), "--follow".into()];
    follow_args.extend(env.broker_args());
    let follow_args: Vec<&str> = follow_args.iter().map(String::as_str).collect();
    env.procs
        .push(support::Proc::spawn("follow", env.dir.path(), &follow_args));
    let follow = env.procs.len() - 1;
    // The follower reads from the end: give it a moment to be assigned its partitions.
    std::thread::sleep(Duration::from_secs(3));

    let mut keys = Vec::new();
    for v in 0..12 {
        let body = flowc_oip::json::request_to_json(&request(vec![
            int32("INPUT0", vec![1, 16], (v..v + 16).collect()),
            int32("INPUT1", vec![1, 16], (v..v + 16).collect()),
        ]))
        .expect("a valid request");
        let (status, headers, answer) = support::http_post(
            &format!("{}/v2/pipelines/join/infer", gateway.http),
            &[("content-type", "application/json")],
            &body.to_string(),
        )
        .expect("infer");
        assert_eq!(status, 200, "{answer}\n{}", env.logs());
        let key = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, v)| v.clone())
            .expect("x-request-id");
        keys.push(key);
    }

    // A request in the middle, by raw id and by key: the lineage the scan finds.
    let key = keys[6].clone();
    let raw = key.splitn(3, '.').nth(2).expect("a gateway key").to_string();
    let lineage = |args: &[&str]| -> (serde_json::Value, String) {
        let mut all = vec!["inspect", "join", "--format", "json"];
        all.extend(args);
        let (ok, out, err) = run(&env, &all);
        assert!(ok, "{err}\n{}", env.logs());
        // The last line says what was searched (a warning may come before it).
        let said = err.lines().last().unwrap_or_default().to_string();
        (stable(serde_json::from_str(&out).expect("JSON")), said)
    };
    let (scanned, scan_said) = lineage(&["-r", &raw, "--scan"]);
    assert_eq!(scanned.as_array().map(Vec::len), Some(8), "{scanned:#}");
    assert!(scan_said.contains("every retained record"), "{scan_said}");
    for id in [raw.as_str(), key.as_str()] {
        let (found, said) = lineage(&["-r", id]);
        assert_eq!(found, scanned, "by {id}");
        assert!(said.contains("the request entered at"), "{said}");
        // tansu's ListOffsets by time is not to be trusted: there inspect reads everything.
        if support::broker_kind() == flowc_runtime::devbroker::BrokerKind::Kafka {
            assert!(said.contains("; written "), "{said}");
        } else {
            assert!(said.contains("every retained record"), "{said}");
        }
        let read = |s: &str| -> i64 {
            s.split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{s}"))
        };
        assert!(read(&said) <= read(&scan_said), "{said} vs {scan_said}");
        eprintln!("by {id}: {said} (the scan: {scan_said})");
    }
    // An id that carries no time is searched in full.
    let (ok, _, err) = run(&env, &["inspect", "join", "-r", "no-such-request"]);
    assert!(ok, "{err}");
    assert!(err.contains("every retained record"), "{err}");

    // --follow printed every step of every request, the last one included.
    let last = keys.last().expect("keys").clone();
    let deadline = Instant::now() + WAIT;
    let log = loop {
        let log = env.procs[follow].log();
        if log.matches(&format!("| key {last} ")).count() >= 8 {
            break log;
        }
        assert!(
            Instant::now() < deadline,
            "--follow never showed {last} at every step:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for slot in [
        "pipeline join inputs",
        "step tfsimple1 outputs",
        "step tfsimple3 inputs",
        "pipeline join outputs",
    ] {
        assert!(log.contains(&format!("{slot} | key {last} ")), "{slot}:\n{log}");
    }
    assert!(log.contains("    OUTPUT0 INT32 [1, 16] = ["), "{log}");
    // The last request's records as --follow printed them, each with its tensor lines.
    let mut shown = Vec::new();
    let mut in_last = false;
    for line in log.lines() {
        if !line.starts_with(' ') {
            in_last = line.contains(&format!("| key {last} "));
        }
        if in_last {
            shown.push(line);
        }
    }
    eprintln!("--follow on {last}:\n{}", shown.join("\n"));
}
