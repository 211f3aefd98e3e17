//! The REST reference server and the REST model client, over real sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use flowc_oip::backend::{ModelBackend, ModelCallError};
use flowc_oip::proto::inference::ModelInferRequest;
use flowc_oip::rest::RestModels;
use flowc_oip::tensor::{Encoding, InferMessage, Tensor, TensorData};
use flowc_reference::rest::serve_http;
use flowc_reference::ReferenceServer;

/// The REST server on 127.0.0.1:0, on a runtime of its own thread; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        let server = ReferenceServer::new()
            .with_model("tfsimple1", "sum-diff")
            .unwrap()
            .with_model("mul", "mul10")
            .unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                serve_http(listener, server, async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        Server {
            addr: addr_rx.recv().unwrap(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// One raw HTTP/1.1 exchange: (status, body).
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn request(tensors: Vec<Tensor>) -> ModelInferRequest {
    InferMessage {
        id: "req-1".into(),
        parameters: Default::default(),
        tensors,
        encoding: Encoding::Raw,
    }
    .to_request()
    .unwrap()
}

fn int32(name: &str, v: Vec<i32>) -> Tensor {
    Tensor::new(name, vec![1, v.len() as i64], TensorData::Int32(v)).unwrap()
}

#[test]
fn sum_diff_answers_exactly() {
    let server = Server::start();
    let models = RestModels::connect(&server.url()).with_timeout(Duration::from_secs(10));
    let response = models
        .call(
            "tfsimple1",
            request(vec![int32("INPUT0", (1..=16).collect()), int32("INPUT1", vec![1; 16])]),
            &[],
        )
        .unwrap()
        .0;
    assert_eq!(response.model_name, "tfsimple1");
    assert_eq!(response.id, "req-1");
    let out = InferMessage::from_response(&response).unwrap();
    let names: Vec<&str> = out.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["OUTPUT0", "OUTPUT1"]);
    assert_eq!(out.tensors[0].shape, [1, 16]);
    assert_eq!(out.tensors[0].data, TensorData::Int32((2..=17).collect()));
    assert_eq!(out.tensors[1].data, TensorData::Int32((0..16).collect()));

    // The same connection pool serves a second call (and another model); the server's `x-*`
    // response headers come back for the output record (§6).
    let x = Tensor::new("INPUT", vec![4], TensorData::Fp32(vec![1.0, 2.0, 3.0, 4.0])).unwrap();
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string();
    let (response, headers) = models
        .call("mul", request(vec![x]), &[("traceparent".to_string(), tp.clone())])
        .unwrap();
    let out = InferMessage::from_response(&response).unwrap();
    assert_eq!(out.tensors[0].data, TensorData::Fp32(vec![10.0, 20.0, 30.0, 40.0]));
    assert_eq!(
        headers,
        [
            ("x-flowc-reference-model".to_string(), "mul10".to_string()),
            ("x-flowc-received-traceparent".to_string(), tp)
        ]
    );
}

#[test]
fn unknown_model_fails_naming_it() {
    let server = Server::start();
    let models = RestModels::connect(&server.url());
    let e = models
        .call("nope", request(vec![int32("INPUT0", vec![1])]), &[])
        .unwrap_err();
    let ModelCallError::Failed(text) = e else {
        panic!("{e:?}")
    };
    assert!(text.contains("model nope is not served here"), "{text}");
}

#[test]
fn bad_tensor_fails_with_the_models_text() {
    let server = Server::start();
    let models = RestModels::connect(&server.url());
    let fp32 = Tensor::new("INPUT0", vec![1, 1], TensorData::Fp32(vec![1.0])).unwrap();
    let e = models
        .call("tfsimple1", request(vec![fp32, int32("INPUT1", vec![1])]), &[])
        .unwrap_err();
    let ModelCallError::Failed(text) = e else {
        panic!("{e:?}")
    };
    // The response body is the error text (PIPELINES.md §6).
    assert!(text.starts_with("{\"error\":"), "{text}");
    assert!(text.contains("INPUT0"), "{text}");
}

#[test]
fn nothing_listening_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let models = RestModels::connect(&format!("127.0.0.1:{port}")).with_timeout(Duration::from_secs(5));
    let e = models
        .call("tfsimple1", request(vec![int32("INPUT0", vec![1])]), &[])
        .unwrap_err();
    let ModelCallError::Unavailable(text) = e else {
        panic!("{e:?}")
    };
    assert!(
        text.starts_with(&format!("model server http://127.0.0.1:{port} unavailable")),
        "{text}"
    );
}

#[test]
fn a_silent_server_times_out() {
    // Accepts connections but never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let models = RestModels::connect(&url).with_timeout(Duration::from_millis(300));
    let e = models
        .call("tfsimple1", request(vec![int32("INPUT0", vec![1])]), &[])
        .unwrap_err();
    assert_eq!(
        e,
        ModelCallError::Failed(format!("no answer from model server {url} within 0.3s"))
    );
    drop(listener);
}

#[test]
fn health_ready_and_metadata() {
    let server = Server::start();
    assert_eq!(server.http("GET", "/v2/health/live", "").0, 200);
    assert_eq!(server.http("GET", "/v2/health/ready", "").0, 200);
    assert_eq!(server.http("GET", "/v2/models/tfsimple1/ready", "").0, 200);
    let (status, body) = server.http("GET", "/v2/models/other/ready", "");
    assert_eq!(status, 404);
    assert!(body.contains("model other is not served here"), "{body}");

    let (status, body) = server.http("GET", "/v2/models/tfsimple1", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "tfsimple1");
    assert_eq!(v["platform"], "flowc-reference");
    assert_eq!(server.http("GET", "/v2/models/other", "").0, 404);
}

#[test]
fn raw_json_infer_and_its_errors() {
    let server = Server::start();
    let ok = r#"{"id": "a", "inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 2], "data": [[1, 2]]},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 2], "data": [1, 1]}]}"#;
    let (status, body) = server.http("POST", "/v2/models/tfsimple1/infer", ok);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["model_name"], "tfsimple1");
    assert_eq!(v["id"], "a");
    assert_eq!(v["outputs"][0]["name"], "OUTPUT0");
    assert_eq!(v["outputs"][0]["data"], serde_json::json!([2, 3]));
    assert_eq!(v["outputs"][1]["data"], serde_json::json!([0, 1]));

    let (status, body) = server.http("POST", "/v2/models/tfsimple1/infer", "{not json");
    assert_eq!(status, 400);
    assert!(body.contains("malformed JSON"), "{body}");

    let bad = r#"{"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [2], "data": [1, "x"]}]}"#;
    let (status, body) = server.http("POST", "/v2/models/tfsimple1/infer", bad);
    assert_eq!(status, 400);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "tensor INPUT0: element 1 is \"x\", expected i32");

    let (status, _) = server.http("POST", "/v2/models/other/infer", ok);
    assert_eq!(status, 404);
}
