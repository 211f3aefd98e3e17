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
    for (series, value) in [
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
    ] {
        assert_eq!(support::metric(&text, series), value, "{series}\n{text}");
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
    if std::env::var_os("FLOWC_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().expect("dir")).expect("mkdir");
        std::fs::write(&golden, &got).expect("bless");
    } else {
        let want = std::fs::read_to_string(&golden).expect("golden file (FLOWC_BLESS=1 to create)");
        assert_eq!(got, want, "inspect JSON changed; FLOWC_BLESS=1 re-blesses it");
    }

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
