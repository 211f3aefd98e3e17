//! End to end on a real Kafka-protocol broker (tansu, started here on 127.0.0.1): `flowc apply`
//! deploys the samples, `flowc model-server` serves their reference models over gRPC and
//! `flowc worker` processes run the plans. Requests go in through the pipelines' input topics
//! as an async Seldon client writes them; answers are read back from the output topics.
//!
//! Needs the broker binary: `scripts/install-broker.sh` (run by `scripts/test.sh`).

mod support;

use std::time::Duration;

use support::{fp32, int32, keys, request, Env};

const WAIT: Duration = Duration::from_secs(90);

fn seq(from: i32, step: i32) -> Vec<i32> {
    (0..16).map(|i| from + i * step).collect()
}

/// Every worked example of PIPELINES.md §9 that runs on the reference models, deployed side
/// by side (they share model topics and model-call consumer groups) and run by one worker.
#[test]
fn worked_examples_on_a_real_broker() {
    let mut env = Env::start();
    env.start_model_server(&["samples/join.yaml", "samples/conditional.yaml", "samples/cycle.yaml"]);
    for sample in [
        "samples/chain.yaml",
        "samples/join.yaml",
        "samples/conditional.yaml",
        "samples/pipeline-inputs.yaml",
        "samples/triggers.yaml",
        "samples/cycle.yaml",
    ] {
        env.apply(&[sample], 2);
    }
    env.start_worker("worker");
    let producer = env.producer();

    let sum_diff_in = || {
        request(vec![
            int32("INPUT0", vec![1, 16], seq(1, 1)),
            int32("INPUT1", vec![1, 16], seq(1, 1)),
        ])
    };
    let cases: Vec<(&str, _, String)> = vec![
        (
            "tfsimples",
            sum_diff_in(),
            format!(
                "OUTPUT0 INT32 [1, 16] = {:?}\nOUTPUT1 INT32 [1, 16] = {:?}",
                seq(2, 2),
                seq(2, 2)
            ),
        ),
        (
            "join",
            sum_diff_in(),
            format!(
                "OUTPUT0 INT32 [1, 16] = {:?}\nOUTPUT1 INT32 [1, 16] = {:?}",
                seq(2, 2),
                seq(2, 2)
            ),
        ),
        (
            "conditional-pipeline",
            request(vec![
                int32("CHOICE", vec![1], vec![0]),
                fp32("INPUT0", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
                fp32("INPUT1", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
            ]),
            "OUTPUT FP32 [4] = [10.0, 20.0, 30.0, 40.0]".to_string(),
        ),
        (
            "pipeline-inputs",
            request(vec![
                fp32("INPUT0", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
                fp32("INPUT1", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
            ]),
            "OUTPUT FP32 [4] = [10.0, 20.0, 30.0, 40.0]\nOUTPUT FP32 [4] = [11.0, 12.0, 13.0, 14.0]".to_string(),
        ),
        (
            "triggers",
            request(vec![
                int32("ok1", vec![1], vec![1]),
                fp32("INPUT", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
            ]),
            "OUTPUT FP32 [4] = [10.0, 20.0, 30.0, 40.0]".to_string(),
        ),
        (
            "cycle",
            request(vec![int32("INPUT", vec![1], vec![0])]),
            "output INT32 [1] = [10]\nstop".to_string(),
        ),
    ];
    for (pipeline, req, _) in &cases {
        for key in keys(pipeline, 4) {
            env.send(&producer, pipeline, &key, req);
        }
    }
    for (pipeline, _, expected) in &cases {
        let topic = format!("seldon.default.pipeline.{pipeline}.outputs");
        let got = env.collect(&topic, &keys(pipeline, 4), WAIT);
        for (key, record) in &got {
            let tensors = record.tensors();
            if *pipeline == "cycle" {
                // The counter's `stop` tensor's datatype is the model's business; its name is not.
                let names: Vec<&str> = tensors.lines().map(|l| l.split(' ').next().unwrap_or("")).collect();
                assert_eq!(names, ["output", "stop"], "{pipeline} {key}: {tensors}");
                assert!(
                    tensors.starts_with("output INT32 [1] = [10]"),
                    "{pipeline} {key}: {tensors}"
                );
            } else {
                assert_eq!(&tensors, expected, "{pipeline} {key}");
            }
            assert_eq!(
                record.header("pipeline"),
                Some(*pipeline),
                "{pipeline} {key}: {:?}",
                record.headers
            );
        }
    }
}

/// Detectors (§9): classifier and outlier detector on the synchronous path, drift batched by
/// 20 off it, all real models of the reference server. One partition, so one task holds the
/// batch: 20 requests make exactly one drift record.
#[test]
fn detectors_with_drift_batched_by_20() {
    let mut env = Env::start();
    env.start_model_server(&["samples/detectors.yaml"]);
    env.apply(&["samples/detectors.yaml"], 1);
    env.start_worker("worker");
    let producer = env.producer();
    let ks = keys("iris", 20);
    let req = request(vec![fp32("predict", vec![1, 4], vec![5.1, 3.5, 1.4, 0.2])]);
    for k in &ks {
        env.send(&producer, "iris-detectors", k, &req);
    }
    let got = env.collect("seldon.default.pipeline.iris-detectors.outputs", &ks, WAIT);
    for (k, r) in &got {
        assert_eq!(
            r.tensors(),
            "predict INT64 [1, 1] = [0]\nis_outlier INT64 [1] = [0]\ninstance_score FP64 [1] = [1.4609817913017316]",
            "{k}"
        );
    }
    let drift = env.collect_n("seldon.default.model.iris-drift.outputs", 1, WAIT);
    let tensors = drift[0].1.tensors();
    // 20 identical rows are nothing like the iris data: the KS test reports drift.
    assert!(
        tensors.starts_with("is_drift INT64 [1] = [1]\np_val FP64 [4] = "),
        "{tensors}"
    );
}
