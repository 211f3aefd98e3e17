//! Security settings pass through to every flowc client: on Apache Kafka's SASL_PLAINTEXT
//! listener (mechanism PLAIN), `flowc apply`, `worker`, `gateway`, `inspect` and
//! `up --brokers` work with `-X` properties alone; a wrong password is a clear
//! "authentication failed" error within seconds, not a hang or a bare timeout.
//!
//! Needs Apache Kafka: `scripts/install-kafka.sh` (run by `scripts/test.sh`).

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use flowc_runtime::devbroker::{BrokerKind, DevBroker};
use support::{free_port, http_post, json_tensors, Env, Proc, TestBroker};

const USER: &str = "alice";
const PASSWORD: &str = "alice-secret";

fn sasl_properties(password: &str) -> Vec<(String, String)> {
    [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", USER),
        ("sasl.password", password),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `flowc <args>` against the SASL listener with `properties` instead of the test's own.
fn flowc_with(env: &Env, properties: Vec<(String, String)>, args: &[&str]) -> (Output, Duration) {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend([
        "-b".to_string(),
        env.bootstrap(),
        "--prefix".to_string(),
        env.prefix.clone(),
    ]);
    for (k, v) in properties {
        args.extend(["-X".to_string(), format!("{k}={v}")]);
    }
    let started = Instant::now();
    let out = Command::new(support::flowc())
        .args(&args)
        .current_dir(support::root())
        .env("FLOWC_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run flowc");
    (out, started.elapsed())
}

fn doubled() -> String {
    let doubled: Vec<i32> = (1..=16).map(|v| 2 * v).collect();
    format!("OUTPUT0 INT32 [1, 16] = {doubled:?}\nOUTPUT1 INT32 [1, 16] = {doubled:?}")
}

#[test]
fn every_client_works_on_a_sasl_listener_and_a_wrong_password_fails_fast() {
    let broker = DevBroker::builder(BrokerKind::Kafka)
        .sasl_plain_user(USER, PASSWORD)
        .start()
        .unwrap_or_else(|e| panic!("cannot start Apache Kafka with a SASL listener: {e}"));
    let sasl = broker.sasl_bootstrap().expect("a SASL listener");
    let mut env = Env::on(TestBroker::Own(broker));
    env.bootstrap_override = Some(sasl.clone());
    env.client_properties = sasl_properties(PASSWORD);

    wrong_credentials_fail_fast(&env, &sasl);
    every_client_passes_the_credentials(&mut env, &sasl);
}

/// A wrong password: `apply`, `inspect` and `worker` exit non-zero within seconds, saying that
/// authentication failed and as whom; no SASL settings at all on the SASL listener is an
/// unreachable broker with librdkafka's hint.
fn wrong_credentials_fail_fast(env: &Env, sasl: &str) {
    let wrong = sasl_properties("not-the-password");
    let state = env.dir.path().join("wrong-state").display().to_string();
    for args in [
        &["apply", "samples/join.yaml", "--timeout-ms", "5000"][..],
        &["inspect", "join", "--timeout-ms", "5000"],
        &["worker", "--state-dir", &state, "--timeout-ms", "5000"],
    ] {
        let (out, took) = flowc_with(env, wrong.clone(), args);
        let err = stderr(&out);
        eprintln!(
            "flowc {} with a wrong password: {:?} in {took:?}\n{err}",
            args[0], out.status
        );
        assert!(
            !out.status.success(),
            "flowc {args:?} succeeded with a wrong password:\n{err}"
        );
        let lower = err.to_lowercase();
        assert!(lower.contains("authentication failed"), "flowc {args:?}:\n{err}");
        assert!(
            err.contains(&format!(
                "authentication failed at {sasl} (SASL_PLAINTEXT, SASL PLAIN as {USER})"
            )),
            "flowc {args:?}:\n{err}"
        );
        assert!(!err.contains("not-the-password"), "the password is printed:\n{err}");
        assert!(took < Duration::from_secs(15), "flowc {args:?} took {took:?}");
    }

    let (out, took) = flowc_with(env, Vec::new(), &["apply", "samples/join.yaml", "--timeout-ms", "2000"]);
    let err = stderr(&out);
    eprintln!("flowc apply without SASL settings: {:?} in {took:?}\n{err}", out.status);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("cannot reach a Kafka broker at {sasl}")), "{err}");
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// The right password: the whole flow through the SASL listener only.
fn every_client_passes_the_credentials(env: &mut Env, sasl: &str) {
    // apply, worker and gateway; an HTTP call answered through the topics.
    env.start_model_server(&["samples/join.yaml"]);
    let stdout = env.apply(&["samples/join.yaml"], 2);
    eprintln!("flowc apply over SASL:\n{stdout}");
    env.start_worker("worker");
    let gw = env.start_gateway("gateway", &[]);
    env.wait_pipeline_ready(&gw.http, "join");
    let request = std::fs::read_to_string(support::root().join("samples/requests/join.json")).expect("request");
    let (status, headers, body) =
        http_post(&format!("{}/v2/pipelines/join/infer", gw.http), &[], &request).expect("http");
    assert_eq!(status, 200, "{body}\n{}", env.logs());
    assert_eq!(json_tensors(&body), doubled(), "{body}");
    let request_id = headers
        .iter()
        .find(|(k, _)| k == "x-request-id")
        .map(|(_, v)| v.clone())
        .expect("x-request-id");

    // inspect: the request's lineage, read over SASL.
    let out = env.flowc(&["inspect", "join", "--request-id", &request_id, "--format", "json"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), env.logs());
    let lineage: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let slots: Vec<&str> = lineage
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["slot"].as_str())
        .collect();
    assert_eq!(slots.first(), Some(&"pipeline join inputs"), "{lineage}");
    assert_eq!(slots.last(), Some(&"pipeline join outputs"), "{lineage}");
    assert_eq!(slots.len(), 8, "{lineage}");

    // list/status, for good measure.
    let out = env.flowc(&["status"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // up --brokers: its own worker, gateway and model server, on the same SASL listener.
    let (http, grpc, models) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let prefix = format!("{}-up", env.prefix);
    let sample = support::root().join("samples/join.yaml").display().to_string();
    let mut args = vec![
        "up",
        &sample,
        "--brokers",
        sasl,
        "--prefix",
        &prefix,
        "--http-listen",
        &http,
        "--grpc-listen",
        &grpc,
        "--model-listen",
        &models,
    ];
    let properties: Vec<String> = env.client_properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for p in &properties {
        args.extend(["-X", p]);
    }
    let mut up = Proc::spawn("up", env.dir.path(), &args);
    up.wait_for_log("flowc up: ready", 1, Duration::from_secs(120));
    assert!(
        up.log().contains(&format!("flowc up: using the Kafka at {sasl}")),
        "{}",
        up.log()
    );
    let (status, _, body) = http_post(&format!("http://{http}/v2/pipelines/join/infer"), &[], &request).expect("http");
    assert_eq!(status, 200, "{body}\n{}", up.log());
    assert_eq!(json_tensors(&body), doubled(), "{body}");
    let status = up.terminate().expect("an exit status");
    assert!(status.success(), "{status:?}\n{}", up.log());
}
