//! The reference server over real gRPC, called the way workers call models: through
//! `GrpcModels` from plain threads.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use flowc_oip::backend::ModelBackend;
use flowc_oip::grpc::GrpcModels;
use flowc_oip::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use flowc_oip::proto::inference::{
    ModelInferRequest, ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest, ServerReadyRequest,
};
use flowc_oip::tensor::{Encoding, InferMessage, Tensor, TensorData};
use flowc_reference::{serve, ReferenceServer};
use tokio::sync::oneshot;

/// A reference server on its own thread and runtime; stops when dropped.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Running {
    fn url(&self) -> String {
        format!("grpc://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
    }
}

fn reference_server() -> ReferenceServer {
    ReferenceServer::new()
        .with_model("tfsimple1", "sum-diff")
        .unwrap()
        .with_model("mul", "mul10")
        .unwrap()
}

/// Starts the server on `addr` (port 0: any free port), after `delay`.
fn start(addr: &str, delay: Duration) -> Running {
    let addr: SocketAddr = addr.parse().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let thread = thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            if delay.is_zero() {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                bound_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, reference_server(), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            } else {
                bound_tx.send(addr).unwrap();
                tokio::time::sleep(delay).await;
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                serve(listener, reference_server(), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            }
        });
    });
    let addr = bound_rx.recv().expect("server bound");
    Running {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    }
}

fn int32(name: &str, v: Vec<i32>) -> Tensor {
    Tensor::new(name, vec![1, v.len() as i64], TensorData::Int32(v)).unwrap()
}

fn request(tensors: Vec<Tensor>, encoding: Encoding) -> ModelInferRequest {
    InferMessage {
        id: "req-7".to_string(),
        parameters: Default::default(),
        tensors,
        encoding,
    }
    .to_request()
    .unwrap()
}

fn sum_diff_request(encoding: Encoding) -> ModelInferRequest {
    request(
        vec![int32("INPUT0", (1..=16).collect()), int32("INPUT1", (1..=16).collect())],
        encoding,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn sum_diff_over_grpc_is_exact() {
    let server = start("127.0.0.1:0", Duration::ZERO);
    let models = GrpcModels::connect(&server.url()).unwrap();
    for encoding in [Encoding::Typed, Encoding::Raw] {
        let response = models.infer("tfsimple1", sum_diff_request(encoding)).unwrap();
        assert_eq!(response.model_name, "tfsimple1");
        assert_eq!(response.id, "req-7");
        let answer = InferMessage::from_response(&response).unwrap();
        assert_eq!(answer.encoding, encoding);
        assert_eq!(
            answer.tensors,
            vec![
                int32("OUTPUT0", (1..=16).map(|v| v * 2).collect()),
                int32("OUTPUT1", vec![0; 16]),
            ]
        );
    }
    // The server's `x-*` metadata comes back for the output record (§6).
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string();
    let (_, headers) = models
        .call(
            "tfsimple1",
            sum_diff_request(Encoding::Typed),
            &[("traceparent".to_string(), tp.clone())],
        )
        .unwrap();
    assert_eq!(
        headers,
        [
            ("x-flowc-reference-model".to_string(), "sum-diff".to_string()),
            ("x-flowc-received-traceparent".to_string(), tp)
        ]
    );
}

#[test]
fn calls_from_many_plain_threads_share_the_client() {
    let server = start("127.0.0.1:0", Duration::ZERO);
    let models = std::sync::Arc::new(GrpcModels::connect(&server.url()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let models = models.clone();
            thread::spawn(move || {
                let x = Tensor::new("INPUT", vec![1], TensorData::Fp32(vec![i as f32])).unwrap();
                let response = models.infer("mul", request(vec![x], Encoding::Typed)).unwrap();
                let answer = InferMessage::from_response(&response).unwrap();
                assert_eq!(answer.tensors[0].data, TensorData::Fp32(vec![i as f32 * 10.0]));
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn unknown_model_and_bad_tensor_give_the_server_text() {
    let server = start("127.0.0.1:0", Duration::ZERO);
    let models = GrpcModels::connect(&server.url()).unwrap();
    let unknown = models.infer("nosuch", sum_diff_request(Encoding::Typed)).unwrap_err();
    assert_eq!(unknown, "model nosuch is not served here (serving: mul, tfsimple1)");

    let float = Tensor::new("INPUT0", vec![1], TensorData::Fp32(vec![1.0])).unwrap();
    let bad = models
        .infer(
            "tfsimple1",
            request(vec![float, int32("INPUT1", vec![1])], Encoding::Typed),
        )
        .unwrap_err();
    assert_eq!(bad, "INPUT0: expected INT32, got FP32");
}

#[test]
fn health_and_metadata_rpcs() {
    let server = start("127.0.0.1:0", Duration::ZERO);
    let url = format!("http://{}", server.addr);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = GrpcInferenceServiceClient::connect(url).await.unwrap();
        assert!(
            client
                .server_live(ServerLiveRequest {})
                .await
                .unwrap()
                .into_inner()
                .live
        );
        assert!(
            client
                .server_ready(ServerReadyRequest {})
                .await
                .unwrap()
                .into_inner()
                .ready
        );
        let ready = |name: &str| ModelReadyRequest {
            name: name.to_string(),
            version: String::new(),
        };
        assert!(client.model_ready(ready("tfsimple1")).await.unwrap().into_inner().ready);
        let missing = client.model_ready(ready("nosuch")).await.unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        let metadata = client
            .model_metadata(ModelMetadataRequest {
                name: "mul".to_string(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (metadata.name.as_str(), metadata.platform.as_str()),
            ("mul", "flowc-reference")
        );
    });
}

#[test]
fn a_server_that_never_answers_times_out() {
    // Accepts connections and never speaks.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(5) {
            held.push(stream);
        }
        thread::sleep(Duration::from_secs(5));
    });
    let models = GrpcModels::connect(&format!("grpc://{addr}"))
        .unwrap()
        .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let e = models
        .infer("tfsimple1", sum_diff_request(Encoding::Typed))
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(took >= Duration::from_millis(400), "took {took:?}");
    assert_eq!(e, format!("no answer from model server http://{addr} within 0.5s"));
    drop(silent);
}

#[test]
fn a_server_that_starts_late_is_reached_by_retries() {
    // Tries at about 0, 0.1, 0.3, 0.7 and 1.5 s: the server is up at about 1 s.
    let port = free_port();
    let server = start(&format!("127.0.0.1:{port}"), Duration::from_millis(1000));
    let models = GrpcModels::connect(&server.url()).unwrap();
    let started = Instant::now();
    let response = models.infer("tfsimple1", sum_diff_request(Encoding::Typed));
    let took = started.elapsed();
    let response = response.unwrap_or_else(|e| panic!("after {took:?}: {e}"));
    assert!(
        took >= Duration::from_millis(900),
        "answered before the server started? {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(response.model_name, "tfsimple1");
}

#[test]
fn an_unreachable_server_fails_after_the_configured_tries() {
    let port = free_port();
    let models = GrpcModels::connect(&format!("127.0.0.1:{port}"))
        .unwrap()
        .with_tries(2)
        .with_backoff(Duration::from_millis(50));
    let e = models
        .infer("tfsimple1", sum_diff_request(Encoding::Typed))
        .unwrap_err();
    assert!(
        e.starts_with(&format!(
            "model server http://127.0.0.1:{port} unavailable after 2 tries"
        )),
        "{e}"
    );
}
