//! The built-in reference server: an Open Inference Protocol (KServe V2) gRPC server that runs
//! flowc's [reference models](crate::models) under the names of the Models that use them
//! (PIPELINES.md §1.3, §9).
//!
//! `ModelInfer` answers a served model with its reference model's output; a request the model
//! cannot take is `INVALID_ARGUMENT` with the model's error text (e.g. "INPUT0: expected INT32,
//! got FP32"), a model that is not served is `NOT_FOUND`.
//!
//! The server counts its inference calls in a Prometheus registry of its own
//! ([`ReferenceServer::metrics_text`]), served as text on `GET /metrics` on the gRPC listener
//! (which also takes HTTP/1.1 for that): `flowc_model_requests_total{model, outcome="ok|error"}`
//! (every `ModelInfer`, gRPC or REST, of a served model: what a test asserts to know how often a
//! model was really called), and whatever the process registers beside them in
//! [`ReferenceServer::registry`] (the flowc binary: `flowc_build_info`). Calls naming a model
//! that is not served are not counted (their name is the caller's, not a series of ours).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use flowc_plan::Plan;
use prometheus::{IntCounterVec, Opts, Registry, TextEncoder};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use flowc_oip::grpc::MAX_MESSAGE_BYTES;
use flowc_oip::proto::inference::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use flowc_oip::proto::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse, ModelReadyRequest,
    ModelReadyResponse, ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest, ServerMetadataResponse,
    ServerReadyRequest, ServerReadyResponse,
};

use crate::models::{self as reference, ModelError};

/// The platform `ModelMetadata` reports.
pub const PLATFORM: &str = "flowc-reference";

/// Which models the server serves: model name → reference model name. Clones share one set of
/// counters (the gRPC and REST fronts of one process count together).
#[derive(Clone, Debug, Default)]
pub struct ReferenceServer {
    models: BTreeMap<String, String>,
    metrics: Arc<ServerMetrics>,
}

impl PartialEq for ReferenceServer {
    /// Two servers are equal when they serve the same models (counters aside).
    fn eq(&self, other: &Self) -> bool {
        self.models == other.models
    }
}

impl Eq for ReferenceServer {}

/// The outcomes `flowc_model_requests_total` counts.
pub const OUTCOMES: [&str; 2] = ["ok", "error"];

/// The reference server's Prometheus registry: inference calls per model and outcome, and the
/// build.
struct ServerMetrics {
    registry: Registry,
    requests: IntCounterVec,
}

impl ServerMetrics {
    fn new() -> ServerMetrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "flowc_model_requests_total",
                "Inference calls of a served model (gRPC and REST), by outcome: ok, or error (a request the model cannot take).",
            ),
            &["model", "outcome"],
        )
        .expect("a valid metric");
        registry.register(Box::new(requests.clone())).expect("registered once");
        ServerMetrics { registry, requests }
    }
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::new()
    }
}

impl fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

/// A Model whose `flowc://` reference names no reference model flowc runs.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownReference {
    pub model: String,
    pub storage_uri: String,
    pub error: Box<ModelError>,
}

/// Every Model of a plan that [`ReferenceServer::from_plan`] cannot serve.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownReferences(pub Vec<UnknownReference>);

impl fmt::Display for UnknownReferences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, u) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "model {} (storageUri {}): {}", u.model, u.storage_uri, u.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownReference {}

impl std::error::Error for UnknownReferences {}

impl fmt::Display for UnknownReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        UnknownReferences(vec![self.clone()]).fmt(f)
    }
}

/// Response header (gRPC metadata, HTTP header) naming the reference model that answered: an
/// `x-*` header, so the model gateway carries it onto the output record (§6).
pub const REFERENCE_MODEL_HEADER: &str = "x-flowc-reference-model";

/// Response header echoing the `traceparent` the call came with, so a test (or a curious
/// user) sees the trace reach the model server.
pub const RECEIVED_TRACEPARENT_HEADER: &str = "x-flowc-received-traceparent";

impl ReferenceServer {
    /// A server with no models.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `reference` under the name `model` (replacing what `model` served before).
    pub fn with_model(mut self, model: &str, reference: &str) -> Result<Self, UnknownReference> {
        self.insert(model, reference, &format!("flowc://{reference}"))?;
        Ok(self)
    }

    fn insert(&mut self, model: &str, reference: &str, storage_uri: &str) -> Result<(), UnknownReference> {
        if !reference::known(reference) {
            return Err(UnknownReference {
                model: model.to_string(),
                storage_uri: storage_uri.to_string(),
                error: Box::new(unknown(reference)),
            });
        }
        self.models.insert(model.to_string(), reference.to_string());
        // Every served model's series exist from the start, at 0.
        for outcome in OUTCOMES {
            self.metrics.requests.with_label_values(&[model, outcome]);
        }
        Ok(())
    }

    /// Every Model of the plan with a `flowc://<reference>` storageUri; Models with other
    /// storage URIs run elsewhere and are left out. Fails naming every Model whose reference
    /// model is unknown or not implemented yet.
    pub fn from_plan(plan: &Plan) -> Result<Self, UnknownReferences> {
        let mut server = Self::new();
        let mut unknown_refs = Vec::new();
        for m in &plan.models {
            let Some(reference) = &m.reference_model else {
                continue;
            };
            if let Err(e) = server.insert(&m.name, reference, &m.storage_uri) {
                unknown_refs.push(e);
            }
        }
        if unknown_refs.is_empty() {
            Ok(server)
        } else {
            Err(UnknownReferences(unknown_refs))
        }
    }

    /// Model name → reference model name.
    pub fn models(&self) -> &BTreeMap<String, String> {
        &self.models
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// `ModelInfer` without the transport: the served model's answer, with the model's name.
    /// Counted in `flowc_model_requests_total` (both fronts call this).
    pub fn infer(&self, request: &ModelInferRequest) -> Result<ModelInferResponse, Status> {
        let reference = self.reference_of(&request.model_name)?;
        let answer = match reference::infer(reference, request) {
            Ok(mut response) => {
                response.model_name.clone_from(&request.model_name);
                response.model_version.clone_from(&request.model_version);
                Ok(response)
            }
            Err(e) if e.is_unknown_model() => Err(Status::not_found(format!("model {}: {e}", request.model_name))),
            Err(e) => Err(Status::invalid_argument(e.to_string())),
        };
        let outcome = if answer.is_ok() { "ok" } else { "error" };
        self.metrics
            .requests
            .with_label_values(&[request.model_name.as_str(), outcome])
            .inc();
        answer
    }

    /// How many inference calls of `model` ended with `outcome` (`ok` or `error`) so far.
    pub fn request_count(&self, model: &str, outcome: &str) -> u64 {
        self.metrics.requests.with_label_values(&[model, outcome]).get()
    }

    /// The Prometheus text exposition of the server's counters (`GET /metrics`).
    /// The registry `GET /metrics` serves: register the process's own series (build info) here.
    pub fn registry(&self) -> &Registry {
        &self.metrics.registry
    }

    pub fn metrics_text(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.metrics.registry.gather())
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }

    fn reference_of(&self, model: &str) -> Result<&str, Status> {
        self.models.get(model).map(String::as_str).ok_or_else(|| {
            let served: Vec<&str> = self.models.keys().map(String::as_str).collect();
            Status::not_found(format!(
                "model {model} is not served here (serving: {})",
                if served.is_empty() {
                    "none".to_string()
                } else {
                    served.join(", ")
                }
            ))
        })
    }
}

fn unknown(reference: &str) -> ModelError {
    ModelError::Unknown {
        name: reference.to_string(),
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for ReferenceServer {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse { ready: true }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        self.reference_of(&request.get_ref().name)?;
        Ok(Response::new(ModelReadyResponse { ready: true }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "flowc".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let name = &request.get_ref().name;
        self.reference_of(name)?;
        Ok(Response::new(ModelMetadataResponse {
            name: name.clone(),
            versions: Vec::new(),
            platform: PLATFORM.to_string(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let response = self.infer(request.get_ref())?;
        let mut response = Response::new(response);
        if let Some(reference) = self.models.get(&request.get_ref().model_name) {
            if let Ok(v) = reference.parse() {
                response.metadata_mut().insert(REFERENCE_MODEL_HEADER, v);
            }
        }
        if let Some(tp) = request.metadata().get("traceparent") {
            response.metadata_mut().insert(RECEIVED_TRACEPARENT_HEADER, tp.clone());
        }
        Ok(response)
    }
}

/// Serves `server` on `listener` until `shutdown` completes, then waits for open calls to end:
/// the OIP over gRPC, and `GET /metrics` (Prometheus text) over HTTP/1.1 or HTTP/2 on the same
/// port.
pub async fn serve(
    listener: TcpListener,
    server: ReferenceServer,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let metrics = server.clone();
    let service = GrpcInferenceServiceServer::new(server)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::service::Routes::new(service).into_axum_router().route(
        "/metrics",
        axum::routing::get(move || {
            let text = metrics.metrics_text();
            async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
        }),
    );
    tonic::transport::Server::builder()
        .accept_http1(true)
        .add_routes(router.into())
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowc_compiler::{compile, CompileOptions, SourceMap};
    use flowc_oip::tensor::{Encoding, InferMessage, Tensor, TensorData};
    use tonic::Code;

    fn plan(yaml: &str) -> Plan {
        let mut sources = SourceMap::new();
        sources.add("test.yaml", yaml.to_string());
        let compiled = compile(&sources, &CompileOptions::default());
        compiled.plan.unwrap_or_else(|| panic!("{:?}", compiled.diagnostics))
    }

    fn model(name: &str, uri: &str) -> String {
        format!("apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: {name}\nspec:\n  storageUri: \"{uri}\"\n  requirements: [tensorflow]\n---\n")
    }

    fn sum_diff_request(model: &str) -> ModelInferRequest {
        let t = |n: &str| Tensor::new(n, vec![1, 2], TensorData::Int32(vec![5, 7])).unwrap();
        let mut r = InferMessage {
            id: "x".into(),
            parameters: Default::default(),
            tensors: vec![t("INPUT0"), t("INPUT1")],
            encoding: Encoding::Typed,
        }
        .to_request()
        .unwrap();
        r.model_name = model.into();
        r
    }

    #[test]
    fn from_plan_serves_flowc_models_only() {
        let p = plan(&(model("a", "flowc://sum-diff") + &model("b", "flowc://mul10") + &model("c", "gs://x/y")));
        let server = ReferenceServer::from_plan(&p).unwrap();
        let served: Vec<(&str, &str)> = server.models().iter().map(|(m, r)| (m.as_str(), r.as_str())).collect();
        assert_eq!(served, [("a", "sum-diff"), ("b", "mul10")]);
    }

    #[test]
    fn from_plan_names_every_unknown_reference() {
        let p =
            plan(&(model("a", "flowc://sum-diff") + &model("b", "flowc://nope") + &model("c", "flowc://also-nope")));
        let e = ReferenceServer::from_plan(&p).unwrap_err();
        assert_eq!(e.0.len(), 2);
        let text = e.to_string();
        assert!(
            text.starts_with("model b (storageUri flowc://nope): unknown reference model nope"),
            "{text}"
        );
        assert!(
            text.contains("; model c (storageUri flowc://also-nope): unknown reference model also-nope"),
            "{text}"
        );
    }

    #[test]
    fn infer_statuses() {
        let server = ReferenceServer::new().with_model("tfsimple1", "sum-diff").unwrap();
        let response = server.infer(&sum_diff_request("tfsimple1")).unwrap();
        assert_eq!(response.model_name, "tfsimple1");
        assert_eq!(response.id, "x");
        let out = InferMessage::from_response(&response).unwrap();
        assert_eq!(out.tensors[0].data, TensorData::Int32(vec![10, 14]));
        assert_eq!(out.tensors[1].data, TensorData::Int32(vec![0, 0]));

        let missing = server.infer(&sum_diff_request("other")).unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.message(), "model other is not served here (serving: tfsimple1)");

        let mut bad = sum_diff_request("tfsimple1");
        bad.inputs.pop();
        let bad = server.infer(&bad).unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert_eq!(bad.message(), "missing input tensor INPUT1");

        assert!(ReferenceServer::new().with_model("m", "drift").is_ok());
    }

    #[test]
    fn calls_are_counted_per_model_and_outcome_across_clones() {
        let server = ReferenceServer::new()
            .with_model("tfsimple1", "sum-diff")
            .unwrap()
            .with_model("tfsimple2", "sum-diff")
            .unwrap();
        // Every served model's series exist from the start, at 0.
        let text = server.metrics_text();
        for line in [
            "flowc_model_requests_total{model=\"tfsimple1\",outcome=\"ok\"} 0",
            "flowc_model_requests_total{model=\"tfsimple2\",outcome=\"error\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
        }
        // A clone (the REST front's copy) counts in the same series.
        let rest = server.clone();
        server.infer(&sum_diff_request("tfsimple1")).unwrap();
        rest.infer(&sum_diff_request("tfsimple1")).unwrap();
        let mut bad = sum_diff_request("tfsimple1");
        bad.inputs.pop();
        server.infer(&bad).unwrap_err();
        // Not served: not counted.
        server.infer(&sum_diff_request("other")).unwrap_err();
        assert_eq!(server.request_count("tfsimple1", "ok"), 2);
        assert_eq!(server.request_count("tfsimple1", "error"), 1);
        assert_eq!(server.request_count("tfsimple2", "ok"), 0);
        let text = rest.metrics_text();
        assert!(
            text.contains("flowc_model_requests_total{model=\"tfsimple1\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(!text.contains("model=\"other\""), "{text}");
        // A new server starts at 0.
        let fresh = ReferenceServer::new().with_model("tfsimple1", "sum-diff").unwrap();
        assert_eq!(fresh.request_count("tfsimple1", "ok"), 0);
        assert_eq!(
            fresh,
            ReferenceServer::new().with_model("tfsimple1", "sum-diff").unwrap()
        );
    }

    #[tokio::test]
    async fn metrics_are_served_over_http1_beside_grpc() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ReferenceServer::new().with_model("tfsimple1", "sum-diff").unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, server, async {
            let _ = stopped.await;
        }));
        // A gRPC call, then /metrics over plain HTTP/1.1 on the same port.
        let mut client =
            flowc_oip::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient::connect(format!(
                "http://{addr}"
            ))
            .await
            .unwrap();
        client.model_infer(sum_diff_request("tfsimple1")).await.unwrap();
        let url = format!("http://{addr}/metrics");
        let text = tokio::task::spawn_blocking(move || {
            let mut r = ureq::get(&url).call().unwrap();
            assert_eq!(r.status(), 200);
            r.body_mut().read_to_string().unwrap()
        })
        .await
        .unwrap();
        assert!(
            text.contains("flowc_model_requests_total{model=\"tfsimple1\",outcome=\"ok\"} 1"),
            "{text}"
        );
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }
}
