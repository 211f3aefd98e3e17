//! End to end against a model server flowc did not write: a real MLServer (Seldon's Python
//! Open Inference Protocol server) serving a scikit-learn iris classifier
//! (`mlserver_sklearn.SKLearnModel`), called over gRPC by a `flowc worker` that runs
//! `tests/mlserver/iris.yaml` on a real broker (Apache Kafka, or tansu).
//!
//! The test trains the model (`tests/mlserver/train_iris.py`, on the iris data that
//! scikit-learn ships), starts `mlserver start` on free 127.0.0.1 ports, sends requests through
//! the pipeline's input topic and checks that every pipeline answer carries exactly the tensors
//! MLServer gives for the same request called directly, and that those are the right species.
//!
//! Needs the broker (`scripts/install-kafka.sh`) and MLServer's venv: `FLOWC_MLSERVER_BIN` is
//! its bin dir, printed by `scripts/setup-python.sh` (both run by `scripts/test.sh`).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use flowc_oip::grpc::GrpcModels;
use flowc_runtime::operator::ModelBackend;
use flowc_runtime::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_runtime::tensor::{Encoding, InferMessage, Tensor, TensorData};
use prost::Message as _;
use support::{fp32, free_port, keys, mlserver_bin, render, root, Env, Proc};

const WAIT: Duration = Duration::from_secs(90);
/// How long MLServer may take to start and load the model (about 3 s here).
const READY_WITHIN: Duration = Duration::from_secs(120);
const PIPELINE: &str = "iris-pipeline";

/// Rows of the iris data set (rows 0, 1, 50, 51, 100 and 101 of scikit-learn's iris.csv) and their
/// species: 0 setosa, 1 versicolor, 2 virginica. The trained model classifies all six correctly.
const SAMPLES: [([f32; 4], i64); 6] = [
    ([5.1, 3.5, 1.4, 0.2], 0),
    ([4.9, 3.0, 1.4, 0.2], 0),
    ([7.0, 3.2, 4.7, 1.4], 1),
    ([6.4, 3.2, 4.5, 1.5], 1),
    ([6.3, 3.3, 6.0, 2.5], 2),
    ([5.8, 2.7, 5.1, 1.9], 2),
];

/// Two distinct free ports.
fn two_ports() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// `GET path` on 127.0.0.1:port over plain HTTP/1.1: the status code, or `None` when nothing
/// answers (yet).
fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    // "HTTP/1.1 200 OK\r\n..."
    let status_line = String::from_utf8_lossy(&response).lines().next()?.to_string();
    status_line.split(' ').nth(1)?.parse().ok()
}

/// Trains the iris model into `<dir>/iris` with the venv's Python, starts `mlserver start` on
/// it and waits until MLServer reports the model ready (`GET /v2/models/iris/ready` is 200).
/// Returns the running server (killed on drop) and its gRPC and HTTP ports.
fn start_mlserver(bin: &Path, dir: &Path) -> (Proc, u16, u16) {
    // The folder is named like the model: MLServer warns when they differ.
    let model_dir = dir.join("iris");
    let (http_port, grpc_port) = two_ports();
    let trained = Command::new(bin.join("python"))
        .arg(root().join("tests/mlserver/train_iris.py"))
        .arg(&model_dir)
        .arg(http_port.to_string())
        .arg(grpc_port.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.join("python").display()));
    assert!(
        trained.status.success(),
        "train_iris.py failed:\n{}\n{}",
        String::from_utf8_lossy(&trained.stdout),
        String::from_utf8_lossy(&trained.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&trained.stdout).trim());

    let mut command = Command::new(bin.join("mlserver"));
    command.arg("start").arg(&model_dir).current_dir(&model_dir);
    let mut server = Proc::spawn_command("mlserver", dir, command);
    let started = Instant::now();
    loop {
        if http_status(http_port, "/v2/models/iris/ready") == Some(200) {
            break;
        }
        if let Some(status) = server.try_wait() {
            panic!(
                "mlserver exited ({status}) before the model was ready:\n{}",
                server.log()
            );
        }
        assert!(
            started.elapsed() < READY_WITHIN,
            "mlserver did not report model iris ready within {READY_WITHIN:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("mlserver ready in {:.1?}", started.elapsed());
    (server, grpc_port, http_port)
}

/// Request `i`: `[n, 4]` FP32 of 1 to 3 rows, every species in turn; even requests typed
/// (`contents.fp32_contents`), odd ones raw (`raw_input_contents`), as Seldon's gateway sends them.
/// Returns it with the species expected for its rows.
fn iris_request(i: usize) -> (ModelInferRequest, Vec<i64>) {
    let rows: Vec<&([f32; 4], i64)> = [i, i + 2, i + 4]
        .iter()
        .map(|j| &SAMPLES[j % SAMPLES.len()])
        .take(i % 3 + 1)
        .collect();
    let values: Vec<f32> = rows.iter().flat_map(|(x, _)| x.iter().copied()).collect();
    let classes = rows.iter().map(|(_, c)| *c).collect();
    let message = InferMessage {
        id: format!("iris-request-{i}"),
        parameters: Default::default(),
        tensors: vec![fp32("predict", vec![rows.len() as i64, 4], values)],
        encoding: if i.is_multiple_of(2) {
            Encoding::Typed
        } else {
            Encoding::Raw
        },
    };
    (message.to_request().expect("encodes"), classes)
}

fn decode(response: &ModelInferResponse, what: &str) -> InferMessage {
    InferMessage::from_response(response).unwrap_or_else(|e| panic!("{what}: undecodable response: {e}"))
}

/// Names, datatypes, shapes and values, one line per tensor.
fn rendered(tensors: &[Tensor]) -> Vec<String> {
    tensors.iter().map(render).collect()
}

#[test]
fn iris_pipeline_calls_a_real_mlserver() {
    let bin = mlserver_bin();
    let began = Instant::now();
    let mut env = Env::start();
    let (server, grpc_port, http_port) = start_mlserver(&bin, env.dir.path());
    let grpc_url = format!("http://127.0.0.1:{grpc_port}");
    // With the flowc processes: killed with them, and its log shown with theirs on failure.
    env.procs.push(server);

    // MLServer as a `kind: Server`: apply places `iris` on it by its `sklearn` requirement,
    // loads it through MLServer's repository API and checks it is ready; the worker finds it
    // through the placement (no --model-server).
    let server_yaml = env.dir.path().join("mlserver-server.yaml");
    std::fs::write(
        &server_yaml,
        format!(
            "apiVersion: mlops.seldon.io/v1alpha1\nkind: Server\nmetadata:\n  name: mlserver\nspec:\n  capabilities: [sklearn, mlserver]\n  endpoints: [\"http://127.0.0.1:{http_port}\", \"grpc://127.0.0.1:{grpc_port}\"]\n"
        ),
    )
    .expect("write the Server");
    let applied = env.apply(&["tests/mlserver/iris.yaml", server_yaml.to_str().expect("path")], 2);
    assert!(
        applied.contains(&format!(
            "model iris: create, on server mlserver (gRPC {grpc_url}, loaded, ready)"
        )),
        "{applied}"
    );
    env.start_worker("worker");

    let producer = env.producer();
    let keys = keys("iris", 6);
    let requests: Vec<(ModelInferRequest, Vec<i64>)> = (0..keys.len()).map(iris_request).collect();
    for (key, (request, _)) in keys.iter().zip(&requests) {
        env.send(&producer, PIPELINE, key, request);
    }
    let got = env.collect(&env.topic(&format!("default.pipeline.{PIPELINE}.outputs")), &keys, WAIT);
    eprintln!(
        "pipeline answered {} requests {:.1?} after the start",
        got.len(),
        began.elapsed()
    );

    // The same requests straight to MLServer, as the worker calls it.
    let direct = GrpcModels::connect(&grpc_url).expect("model client");
    for (key, (request, classes)) in keys.iter().zip(&requests) {
        let record = &got[key];
        assert_eq!(record.header("pipeline"), Some(PIPELINE), "{key}: {:?}", record.headers);
        assert!(
            record.header("seldon-pipeline-errors").is_none(),
            "{key}: the model call failed: {}\n{}",
            String::from_utf8_lossy(&record.value),
            env.logs()
        );
        let response = ModelInferResponse::decode(record.value.clone())
            .unwrap_or_else(|e| panic!("{key}: the pipeline output is not a response: {e}"));
        let via_pipeline = decode(&response, key);
        let answer = direct
            .infer("iris", request.clone())
            .unwrap_or_else(|e| panic!("{key}: calling MLServer directly failed: {e}\n{}", env.logs()));
        let from_mlserver = decode(&answer, "MLServer");
        eprintln!(
            "{key} ({:?} request): MLServer {:?} id={:?} {:?}; pipeline {:?} id={:?}",
            if request.raw_input_contents.is_empty() {
                Encoding::Typed
            } else {
                Encoding::Raw
            },
            from_mlserver.encoding,
            answer.id,
            rendered(&from_mlserver.tensors),
            via_pipeline.encoding,
            response.id,
        );

        assert_eq!(
            rendered(&via_pipeline.tensors),
            rendered(&from_mlserver.tensors),
            "{key}: the pipeline's answer differs from MLServer's"
        );
        // Beyond the data: the tensors' parameters (MLServer marks each output
        // `content_type: np`) and the response's own parameters come through unchanged too.
        assert_eq!(
            via_pipeline.tensors, from_mlserver.tensors,
            "{key}: tensor parameters differ"
        );
        assert_eq!(
            via_pipeline.parameters, from_mlserver.parameters,
            "{key}: response parameters differ"
        );
        eprintln!(
            "  parameters: {:?} / {:?}",
            from_mlserver.tensors[0].parameters, from_mlserver.parameters
        );
        let n = classes.len() as i64;
        match from_mlserver.tensors.as_slice() {
            [t] => {
                assert_eq!((t.name.as_str(), t.shape.as_slice()), ("predict", &[n, 1][..]), "{key}");
                assert_eq!(t.data, TensorData::Int64(classes.clone()), "{key}: wrong species");
            }
            other => panic!("{key}: expected one tensor `predict`, got {:?}", rendered(other)),
        }
    }
    eprintln!("done in {:.1?}", began.elapsed());
}
