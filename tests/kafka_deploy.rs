//! `flowc apply | list | status | delete` against a real broker, and deployments that must
//! fail with a clear error: broker unreachable (within a bounded time), join topics with
//! different partition counts, a step whose model is nowhere.

mod support;

use std::time::{Duration, Instant};

use flowc_runtime::kafka::deploy::{Cluster, TopicSpec};
use flowc_runtime::kafka::KafkaConfig;
use support::{int32, keys, request, Env};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_unreachable_broker_is_a_clear_error_within_the_timeout() {
    let port = support::free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = std::process::Command::new(support::flowc())
        .current_dir(support::root())
        .args(["apply", "samples/chain.yaml", "-b", &bootstrap, "--timeout-ms", "2000"])
        .output()
        .expect("run flowc");
    let elapsed = started.elapsed();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("cannot reach a Kafka broker at {bootstrap}")),
        "{}",
        stderr(&out)
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}

#[test]
fn deployments_that_cannot_work_are_refused() {
    let env = Env::start();

    // A step whose model is neither in the files nor deployed.
    let yaml = env.dir.path().join("orphan.yaml");
    std::fs::write(
        &yaml,
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: orphan\nspec:\n  steps:\n    - name: nosuch\n  output:\n    steps: [nosuch]\n",
    )
    .expect("write");
    let out = env.flowc(&["apply", yaml.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pipeline orphan runs model nosuch, which is neither in these files nor deployed"),
        "{}",
        stderr(&out)
    );

    // tfsimple3 joins tfsimple1.outputs and tfsimple2.outputs: they must have equal counts.
    let mut config = KafkaConfig::new(env.bootstrap());
    config.timeout = Duration::from_secs(10);
    let cluster = Cluster::connect(&config).expect("connect");
    let topic = |name: &str, partitions| TopicSpec {
        name: name.to_string(),
        partitions,
        compacted: false,
    };
    cluster
        .create_topics(
            &[
                topic(&env.topic("default.model.tfsimple1.outputs"), 2),
                topic(&env.topic("default.model.tfsimple2.outputs"), 3),
            ],
            1,
        )
        .expect("create");
    let out = env.flowc(&["apply", "samples/join.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("pipeline join joins topics with different partition counts"),
        "{err}"
    );
    assert!(
        err.contains(&env.topic("default.model.tfsimple1.outputs has 2")),
        "{err}"
    );
    assert!(
        err.contains(&env.topic("default.model.tfsimple2.outputs has 3")),
        "{err}"
    );
    // Nothing was deployed.
    let list = env.flowc(&["list"]);
    assert!(!stdout(&list).contains("join"), "{}", stdout(&list));
}

#[test]
fn apply_list_status_update_and_delete() {
    let mut env = Env::start();
    let first = env.apply(&["samples/chain.yaml"], 2);
    assert!(first.contains("pipeline tfsimples: create"), "{first}");
    assert!(first.contains("model tfsimple1: create"), "{first}");
    assert!(
        first.contains(&format!(
            "+ topic {} (2 partitions)",
            env.topic("default.pipeline.tfsimples.inputs")
        )),
        "{first}"
    );

    let again = env.apply(&["samples/chain.yaml"], 2);
    assert!(again.contains("pipeline tfsimples: unchanged"), "{again}");
    assert!(!again.contains("+ topic"), "{again}");

    // An update shows what changes before it is applied.
    let changed = env.dir.path().join("chain-join.yaml");
    let text = std::fs::read_to_string(support::root().join("samples/chain.yaml")).expect("read");
    let text = text.replace("      - tfsimple2\n", "      - tfsimple2\n      - tfsimple1\n");
    std::fs::write(&changed, text).expect("write");
    let out = env.flowc(&["apply", changed.to_str().expect("path"), "--dry-run"]);
    let diff = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(diff.contains("pipeline tfsimples: update"), "{diff}");
    assert!(diff.contains("+ store _output.join"), "{diff}");
    assert!(diff.contains("~ sub-topology _output"), "{diff}");
    assert!(diff.contains("(dry run: nothing applied)"), "{diff}");

    // Explainers are told where to call what they explain (§1.2).
    let out = env.flowc(&[
        "apply",
        "samples/explainer.yaml",
        "--dry-run",
        "--gateway-url",
        "http://gateway.example:9010/",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("model iris-explainer: create\n  its server must call http://gateway.example:9010/v2/models/iris/infer (MLServer: put {\"extra\":{\"explainer_type\":\"anchor_tabular\",\"infer_uri\":\"http://gateway.example:9010/v2/models/iris/infer\"}} in the model's model-settings.json, under `parameters`)"),
        "{text}"
    );
    assert!(
        text.contains("its server must call http://gateway.example:9010/v2/pipelines/iris-pipeline/infer"),
        "{text}"
    );

    // Records written after apply but before any worker runs are processed (§7, flowc).
    let producer = env.producer();
    let ks = keys("early", 3);
    let req = request(vec![
        int32("INPUT0", vec![1, 16], (1..=16).collect()),
        int32("INPUT1", vec![1, 16], (1..=16).collect()),
    ]);
    for k in &ks {
        env.send(&producer, "tfsimples", k, &req);
    }
    env.start_model_server(&["samples/chain.yaml"]);
    env.start_worker("worker");
    env.collect(
        &env.topic("default.pipeline.tfsimples.outputs"),
        &ks,
        Duration::from_secs(90),
    );

    let list = stdout(&env.flowc(&["list"]));
    assert!(list.contains("pipeline  tfsimples"), "{list}");
    assert!(list.contains("model     tfsimple1"), "{list}");

    let status = stdout(&env.flowc(&["status"]));
    assert!(status.contains("pipeline tfsimples"), "{status}");
    assert!(status.contains("_output"), "{status}");

    let out = env.flowc(&["delete", "tfsimples"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&env.flowc(&["list"]));
    assert!(!list.contains("tfsimples"), "{list}");
    let out = env.flowc(&["delete", "tfsimples"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("pipeline tfsimples is not deployed"),
        "{}",
        stderr(&out)
    );
    let worker = env.procs.last().expect("worker");
    worker.wait_for_log("stopping consumer (undeployed or changed)", 1, Duration::from_secs(30));
}

#[test]
fn models_run_on_the_server_they_are_placed_on() {
    let mut env = Env::start();
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let chain = support::root().join("samples/chain.yaml").display().to_string();
    let http = format!("127.0.0.1:{}", support::free_port());
    let server = support::Proc::spawn(
        "model-server",
        env.dir.path(),
        &["model-server", "--listen", &listen, "--http-listen", &http, &chain],
    );
    server.wait_for_log("serving", 1, Duration::from_secs(20));
    env.procs.push(server);

    // A Server with the `flowc` capability the chain's Models require.
    let servers = env.dir.path().join("servers.yaml");
    std::fs::write(
        &servers,
        format!(
            "apiVersion: mlops.seldon.io/v1alpha1\nkind: Server\nmetadata:\n  name: reference\nspec:\n  capabilities: [flowc]\n  endpoints: [\"http://{http}\", \"grpc://{listen}\"]\n"
        ),
    )
    .expect("write");
    let out = env.apply(&["samples/chain.yaml", servers.to_str().expect("path")], 2);
    assert!(
        out.contains(&format!(
            "model tfsimple1: create, on server reference (gRPC http://{listen}, ready)"
        )),
        "{out}"
    );
    // No --model-server: the worker finds the model through its Server.
    assert!(env.model_url.is_none());
    env.start_worker("worker");
    let producer = env.producer();
    let ks = keys("placed", 3);
    let req = request(vec![
        int32("INPUT0", vec![1, 16], (1..=16).collect()),
        int32("INPUT1", vec![1, 16], (1..=16).collect()),
    ]);
    for k in &ks {
        env.send(&producer, "tfsimples", k, &req);
    }
    let got = env.collect(
        &env.topic("default.pipeline.tfsimples.outputs"),
        &ks,
        Duration::from_secs(90),
    );
    for k in &ks {
        assert_eq!(got[k].header("seldon-pipeline-errors"), None, "{k}");
    }

    // A model no deployed Server can run is refused.
    let torch = env.dir.path().join("torch.yaml");
    std::fs::write(
        &torch,
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: resnet\nspec:\n  storageUri: \"s3://models/resnet\"\n  requirements: [pytorch]\n",
    )
    .expect("write");
    let out = env.flowc(&["apply", torch.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("model resnet fits no Server: it requires [pytorch]; servers: reference [flowc]"),
        "{}",
        stderr(&out)
    );
}
