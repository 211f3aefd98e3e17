//! End to end on a real broker (Apache Kafka, or tansu with FLOWC_TEST_BROKER=tansu, started on 127.0.0.1): `flowc apply`
//! deploys the samples, `flowc model-server` serves their reference models over gRPC and
//! `flowc worker` processes run the plans. Requests go in through the pipelines' input topics
//! as an async Seldon client writes them; answers are read back from the output topics.
//!
//! Needs the broker: `scripts/install-kafka.sh` / `scripts/install-broker.sh` (run by
//! `scripts/test.sh`).

mod support;

use std::time::Duration;

use support::{check_answer, fp32, keys, request, worked_examples, Env, WORKED_EXAMPLE_SAMPLES};

const WAIT: Duration = Duration::from_secs(90);

/// Every worked example of PIPELINES.md §9 that runs on the reference models, deployed side
/// by side (they share model topics and model-call consumer groups) and run by one worker.
#[test]
fn worked_examples_on_a_real_broker() {
    let mut env = Env::start();
    env.start_model_server(&["samples/join.yaml", "samples/conditional.yaml", "samples/cycle.yaml"]);
    for sample in WORKED_EXAMPLE_SAMPLES {
        env.apply(&[sample], 2);
    }
    env.start_worker("worker");
    let producer = env.producer();

    let cases = worked_examples();
    for (pipeline, req, _) in &cases {
        for key in keys(pipeline, 4) {
            env.send(&producer, pipeline, &key, req);
        }
    }
    for (pipeline, _, expected) in &cases {
        let topic = env.topic(&format!("default.pipeline.{pipeline}.outputs"));
        let got = env.collect(&topic, &keys(pipeline, 4), WAIT);
        for (key, record) in &got {
            check_answer(pipeline, key, &record.tensors(), expected);
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
    let got = env.collect(&env.topic("default.pipeline.iris-detectors.outputs"), &ks, WAIT);
    for (k, r) in &got {
        assert_eq!(
            r.tensors(),
            "predict INT64 [1, 1] = [0]\nis_outlier INT64 [1] = [0]\ninstance_score FP64 [1] = [1.4609817913017316]",
            "{k}"
        );
    }
    let drift = env.collect_n(&env.topic("default.model.iris-drift.outputs"), 1, WAIT);
    let tensors = drift[0].1.tensors();
    // 20 identical rows are nothing like the iris data: the KS test reports drift.
    assert!(
        tensors.starts_with("is_drift INT64 [1] = [1]\np_val FP64 [4] = "),
        "{tensors}"
    );
}
