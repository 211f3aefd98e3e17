//! Model faults on a real broker: the model server killed mid-stream and back 10 s later
//! (every request written meanwhile is answered, none lost, none turned into an error), a
//! model that fails a request (`<model> : <text>` answers it), and a model that never answers
//! (the call's timeout turns into an error record, the consumer goes on).

mod support;

use std::time::Duration;

use support::{fp32, int32, keys, request, Env, Proc};

const WAIT: Duration = Duration::from_secs(120);
const OUTPUTS: &str = "default.pipeline.tfsimples.outputs";

fn sum_diff() -> flowc_runtime::proto::inference::ModelInferRequest {
    request(vec![
        int32("INPUT0", vec![1, 16], (1..=16).collect()),
        int32("INPUT1", vec![1, 16], (1..=16).collect()),
    ])
}

fn model_server(env: &Env, name: &str, port: u16) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let file = support::root().join("samples/chain.yaml").display().to_string();
    let proc = Proc::spawn(name, env.dir.path(), &["model-server", "--listen", &listen, &file]);
    proc.wait_for_log("serving", 1, Duration::from_secs(20));
    proc
}

#[test]
fn a_model_server_down_for_10s_loses_nothing_and_model_errors_answer() {
    let mut env = Env::start();
    let port = support::free_port();
    let mut server = model_server(&env, "model-server-1", port);
    env.model_url = Some(format!("http://127.0.0.1:{port}"));
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker("worker");
    let producer = env.producer();
    let expected = format!(
        "OUTPUT0 INT32 [1, 16] = {0:?}\nOUTPUT1 INT32 [1, 16] = {0:?}",
        (1..=16).map(|i| 2 * i).collect::<Vec<i32>>()
    );

    let before = keys("before", 3);
    for k in &before {
        env.send(&producer, "tfsimples", k, &sum_diff());
    }
    env.collect(&env.topic(OUTPUTS), &before, WAIT);

    // Down: requests keep coming; back after 10 s on the same address.
    server.kill();
    let during = keys("during", 10);
    for k in &during {
        env.send(&producer, "tfsimples", k, &sum_diff());
    }
    std::thread::sleep(Duration::from_secs(10));
    let _server = model_server(&env, "model-server-2", port);
    let got = env.collect(&env.topic(OUTPUTS), &during, WAIT);
    for k in &during {
        assert_eq!(
            got[k].header("seldon-pipeline-errors"),
            None,
            "{k} answered with an error: {}",
            String::from_utf8_lossy(&got[k].value)
        );
        assert_eq!(got[k].tensors(), expected, "{k}");
    }

    // A request the model rejects: its error record answers it.
    let bad = request(vec![
        fp32("INPUT0", vec![1], vec![1.0]),
        fp32("INPUT1", vec![1], vec![1.0]),
    ]);
    env.send(&producer, "tfsimples", "bad", &bad);
    let got = env.collect(&env.topic(OUTPUTS), &["bad".to_string()], WAIT);
    assert_eq!(got["bad"].header("seldon-pipeline-errors"), Some("tfsimple1"));
    let text = String::from_utf8_lossy(&got["bad"].value).into_owned();
    assert!(text.contains("INPUT0: expected INT32, got FP32"), "{text}");
}

#[test]
fn a_model_that_never_answers_becomes_an_error_record() {
    let mut env = Env::start();
    // Accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("tfsimple1=http://{}", silent.local_addr().expect("addr"));
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s);
        }
    });
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker_with_args(
        "worker",
        &["--model-endpoint", &silent_url, "--model-timeout-ms", "1000"],
    );
    let producer = env.producer();
    let ks = keys("slow", 3);
    for k in &ks {
        env.send(&producer, "tfsimples", k, &sum_diff());
    }
    let got = env.collect(&env.topic(OUTPUTS), &ks, WAIT);
    for k in &ks {
        assert_eq!(got[k].header("seldon-pipeline-errors"), Some("tfsimple1"), "{k}");
        let text = String::from_utf8_lossy(&got[k].value).into_owned();
        assert!(
            text.contains("no answer from model server") && text.contains("within 1s"),
            "{k}: {text}"
        );
    }
}

#[test]
fn a_request_past_its_deadline_is_not_sent_to_the_model() {
    // The model server is down when the request comes: the worker waits for it (it retries
    // the record), the gateway answers 504 at its 2 s timeout, and when the server is back the
    // record's deadline has passed, so the model is not called and an error record says why.
    let mut env = Env::start();
    let port = support::free_port();
    env.model_url = Some(format!("http://127.0.0.1:{port}"));
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker("worker");
    let gateway = env.start_gateway("gateway", &["--request-timeout-ms", "2000"]);
    let body = flowc_oip::json::request_to_json(&sum_diff())
        .expect("encodes")
        .to_string();
    let url = format!("{}/v2/pipelines/tfsimples/infer", gateway.http);
    let (status, _, text) = support::http_post(&url, &[("x-request-id", "late-1")], &body).expect("http");
    assert_eq!(status, 504, "{text}");
    let _server = model_server(&env, "model-server", port);

    // The pipeline's error record for it, from the model call that did not happen.
    let deadline = std::time::Instant::now() + WAIT;
    let consumer = env.reader(&env.topic(OUTPUTS), deadline);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no deadline error record\n{}",
            env.logs()
        );
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let (key, got) = support::Received::of(&m);
        if !key.ends_with(".tfsimples.late-1") {
            continue;
        }
        assert_eq!(got.header("seldon-pipeline-errors"), Some("tfsimple1"), "{key}");
        let text = String::from_utf8_lossy(&got.value).into_owned();
        assert!(text.contains("deadline exceeded before step model tfsimple1"), "{text}");
        break;
    }
}

#[test]
fn an_output_over_the_record_size_limit_answers_with_an_error_and_the_step_goes_on() {
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    // The worker may write records of at most 200,000 bytes; the request (two tensors of
    // 40,000 five-byte varints) is about 400,000.
    env.start_worker_with_args("worker", &["-X", "message.max.bytes=200000"]);
    let producer = env.producer();
    let n = 40_000;
    let big = request(vec![
        int32("INPUT0", vec![1, n], vec![1 << 28; n as usize]),
        int32("INPUT1", vec![1, n], vec![1 << 28; n as usize]),
    ]);
    env.send(&producer, "tfsimples", "big", &big);
    env.send(&producer, "tfsimples", "small", &sum_diff());
    let got = env.collect(&env.topic(OUTPUTS), &["big".to_string(), "small".to_string()], WAIT);
    assert_eq!(
        got["big"].header("seldon-pipeline-errors"),
        Some("tfsimples"),
        "{} bytes: {:?}",
        got["big"].value.len(),
        got["big"].headers
    );
    let text = String::from_utf8_lossy(&got["big"].value).into_owned();
    assert!(
        text.contains("the output of step tfsimple1") && text.contains("over the limit of 200000 bytes"),
        "{text}"
    );
    // The step was not stopped by it.
    assert_eq!(
        got["small"].header("seldon-pipeline-errors"),
        None,
        "{}",
        got["small"].tensors()
    );
}

/// Sets `max.message.bytes` of `topics` (Apache Kafka's topic-level record limit).
fn set_topic_limit(env: &Env, topics: &[String], bytes: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = env.client_config().create().expect("admin client");
    let value = bytes.to_string();
    let configs: Vec<AlterConfig<'_>> = topics
        .iter()
        .map(|t| AlterConfig::new(ResourceSpecifier::Topic(t)).set("max.message.bytes", &value))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime
        .block_on(admin.alter_configs(configs.iter(), &AdminOptions::new()))
        .expect("alter configs");
    for r in results {
        r.unwrap_or_else(|e| panic!("alter config: {e:?}"));
    }
}

/// Issue 19's size limits, on topics of 1 MiB (`max.message.bytes`): a request whose record
/// would be over the pipeline's inputs topic's limit gets 413 naming that limit and the
/// gateway's own; a model response over its outputs topic's limit becomes an error record, so
/// the caller gets 400 with the sizes, and the pipeline goes on.
#[test]
fn requests_and_responses_over_a_1_mib_topic_limit() {
    const MIB: usize = 1024 * 1024;
    let mut env = Env::start();
    if support::broker_kind() == flowc_runtime::devbroker::BrokerKind::Tansu {
        eprintln!("tansu describes no topic configuration (no max.message.bytes): the limit test runs on Apache Kafka");
        return;
    }
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    set_topic_limit(
        &env,
        &[
            env.topic("default.pipeline.tfsimples.inputs"),
            env.topic("default.model.tfsimple1.outputs"),
        ],
        MIB,
    );
    env.start_worker("worker");
    let gw = env.start_gateway("gateway", &[]);
    env.wait_pipeline_ready(&gw.http, "tfsimples");
    let infer = |r: &flowc_runtime::proto::inference::ModelInferRequest| {
        let body = flowc_oip::json::request_to_json(r).expect("a JSON request").to_string();
        let (status, _, text) =
            support::http_post(&format!("{}/v2/pipelines/tfsimples/infer", gw.http), &[], &body).expect("http");
        (body.len(), status, text)
    };

    // A 3.8 MB JSON request (two INT32 tensors of 250,000 values), under the gateway's 4 MiB.
    let n = 250_000;
    let values: Vec<i32> = (1_000_000..1_000_000 + n).collect();
    let (size, status, text) = infer(&request(vec![
        int32("INPUT0", vec![1, i64::from(n)], values.clone()),
        int32("INPUT1", vec![1, i64::from(n)], values),
    ]));
    eprintln!("request of {size} JSON bytes: {status} {text}");
    assert!(size < 4 * MIB, "{size}");
    assert_eq!(status, 413, "{text}\n{}", env.logs());
    assert!(
        text.contains(&format!("over the limit of {MIB} bytes that the topic takes"))
            && text.contains("the gateway's own limit is 4194304 bytes"),
        "{text}"
    );

    // A request of about 300 KB whose answer from tfsimple1 is about 1.65 MB: OUTPUT1 =
    // 0 - 1 = -1, ten bytes a value as a protobuf varint.
    let n = 150_000;
    let (size, status, text) = infer(&request(vec![
        int32("INPUT0", vec![1, n], vec![0; n as usize]),
        int32("INPUT1", vec![1, n], vec![1; n as usize]),
    ]));
    eprintln!("request of {size} JSON bytes with a large answer: {status} {text}");
    assert_eq!(status, 400, "{text}\n{}", env.logs());
    assert!(
        text.contains("the output of step _model-tfsimple1 is")
            && text.contains(&format!("over the limit of {MIB} bytes of topic")),
        "{text}"
    );
    // The pipeline goes on.
    let (_, status, text) = infer(&sum_diff());
    assert_eq!(status, 200, "{text}");
}
