//! The REST (HTTP/JSON) side of the Open Inference Protocol (KServe V2): a server for the
//! [reference models](crate::model_server::ReferenceServer) and a client, [`RestModels`], for the
//! workers' model-call steps (PIPELINES.md §6, §9).
//!
//! Server routes: `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}` (metadata),
//! `GET /v2/models/{m}/ready` and `POST /v2/models/{m}/infer`. Errors are JSON `{"error": text}`:
//! 400 for malformed JSON, bad tensors and requests the model cannot take, 404 for a model that
//! is not served.
//!
//! [`RestModels`] is blocking (workers call it from plain threads): a refused or failed
//! connection is [`ModelCallError::Unavailable`]; an HTTP error status is
//! [`ModelCallError::Failed`] with the response body as the text; so is a timeout. Seldon does not
//! retry REST calls, and neither does this client.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tonic::Code;

pub use crate::json::{parameters_from_json, parameters_to_json};
use crate::json::{request_from_json, tensor_from_json, tensor_to_json, JsonError, BINARY_DATA_SIZE};
use crate::model_client::seconds;
use crate::model_server::{ReferenceServer, PLATFORM, RECEIVED_TRACEPARENT_HEADER, REFERENCE_MODEL_HEADER};
use crate::operator::{ModelBackend, ModelCallError};
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::tensor::{Encoding, InferMessage, TensorError};

/// Seldon's model-gateway timeout for one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// JSON forms
// ---------------------------------------------------------------------------------------------

/// A request as Open Inference Protocol JSON: `{"id", "parameters"?, "inputs", "outputs"?}`
/// (`data` flat; the model name goes in the URL, not the body).
pub fn request_to_json(request: &ModelInferRequest) -> Result<Value, TensorError> {
    let message = InferMessage::from_request(request)?;
    let mut body = Map::new();
    body.insert("id".into(), json!(message.id));
    if let Some(p) = parameters_to_json(&message.parameters) {
        body.insert("parameters".into(), p);
    }
    body.insert(
        "inputs".into(),
        Value::Array(message.tensors.iter().map(tensor_to_json).collect()),
    );
    if !request.outputs.is_empty() {
        let outputs = request.outputs.iter().map(|o| json!({"name": o.name})).collect();
        body.insert("outputs".into(), Value::Array(outputs));
    }
    Ok(Value::Object(body))
}

/// A response as Open Inference Protocol JSON: `{"model_name", "model_version"?, "id",
/// "parameters"?, "outputs"}`.
pub fn response_to_json(response: &ModelInferResponse) -> Result<Value, TensorError> {
    response_to_json_and_binary(response, &OutputForm::default()).map(|(v, _)| v)
}

/// Which outputs a JSON response carries, and which of them travel as binary data (Triton's
/// binary tensor data extension) instead of JSON `data`.
#[derive(Clone, Debug, Default)]
pub struct OutputForm {
    /// The request's `outputs` names; empty: every output.
    pub only: Vec<String>,
    /// Outputs sent as binary (`outputs[].parameters.binary_data`).
    pub binary: Vec<String>,
    /// Every output as binary (`parameters.binary_data_output`).
    pub all_binary: bool,
}

impl OutputForm {
    /// What a JSON request asks for.
    pub fn of_request(v: &Value) -> OutputForm {
        let outputs = v["outputs"].as_array().map(Vec::as_slice).unwrap_or_default();
        let names = |binary_only: bool| {
            outputs
                .iter()
                .filter(|o| !binary_only || o["parameters"]["binary_data"].as_bool() == Some(true))
                .filter_map(|o| o["name"].as_str().map(str::to_string))
                .collect()
        };
        OutputForm {
            only: names(false),
            binary: names(true),
            all_binary: v["parameters"]["binary_data_output"].as_bool() == Some(true),
        }
    }
}

/// A response as JSON plus the binary part (empty unless `form` asks for binary outputs): each
/// binary output has `parameters.binary_data_size` and no `data`; its raw contents follow the
/// JSON in output order.
pub fn response_to_json_and_binary(
    response: &ModelInferResponse,
    form: &OutputForm,
) -> Result<(Value, Vec<u8>), TensorError> {
    let message = InferMessage::from_response(response)?;
    let mut body = Map::new();
    body.insert("model_name".into(), json!(response.model_name));
    if !response.model_version.is_empty() {
        body.insert("model_version".into(), json!(response.model_version));
    }
    body.insert("id".into(), json!(message.id));
    if let Some(p) = parameters_to_json(&message.parameters) {
        body.insert("parameters".into(), p);
    }
    let mut binary = Vec::new();
    let mut outputs = Vec::new();
    for t in &message.tensors {
        if !form.only.is_empty() && !form.only.contains(&t.name) {
            continue;
        }
        let mut v = tensor_to_json(t);
        if form.all_binary || form.binary.contains(&t.name) {
            let raw = t.to_raw()?;
            if let Some(o) = v.as_object_mut() {
                o.remove("data");
                // Beside the tensor's own parameters, not instead of them.
                let parameters = o.entry("parameters").or_insert_with(|| json!({}));
                if let Some(p) = parameters.as_object_mut() {
                    p.insert(BINARY_DATA_SIZE.into(), json!(raw.len()));
                }
            }
            binary.extend_from_slice(&raw);
        }
        outputs.push(v);
    }
    body.insert("outputs".into(), Value::Array(outputs));
    Ok((Value::Object(body), binary))
}

/// A JSON inference response → the protobuf response (typed contents).
pub fn response_from_json(v: &Value) -> Result<ModelInferResponse, JsonError> {
    let outputs = v["outputs"]
        .as_array()
        .ok_or_else(|| JsonError::Shape("the response has no \"outputs\" array".into()))?;
    let tensors = outputs.iter().map(tensor_from_json).collect::<Result<Vec<_>, _>>()?;
    let mut response = InferMessage {
        id: v["id"].as_str().unwrap_or_default().to_string(),
        parameters: parameters_from_json(&v["parameters"]),
        tensors,
        encoding: Encoding::Typed,
    }
    .to_response()?;
    response.model_name = v["model_name"].as_str().unwrap_or_default().to_string();
    response.model_version = v["model_version"].as_str().unwrap_or_default().to_string();
    Ok(response)
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

pub(crate) fn error_response(status: StatusCode, text: impl Into<String>) -> Response {
    json_response(status, &json!({"error": text.into()}))
}

fn status_response(status: &tonic::Status) -> Response {
    let code = match status.code() {
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(code, status.message())
}

fn not_served(server: &ReferenceServer, model: &str) -> Option<Response> {
    if server.models().contains_key(model) {
        return None;
    }
    let served: Vec<&str> = server.models().keys().map(String::as_str).collect();
    let served = if served.is_empty() {
        "none".to_string()
    } else {
        served.join(", ")
    };
    Some(error_response(
        StatusCode::NOT_FOUND,
        format!("model {model} is not served here (serving: {served})"),
    ))
}

/// The server's call counters, as on its gRPC port (`ReferenceServer::metrics_text`).
async fn metrics(State(server): State<Arc<ReferenceServer>>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        server.metrics_text(),
    )
        .into_response()
}

async fn live() -> Response {
    json_response(StatusCode::OK, &json!({"live": true}))
}

async fn ready() -> Response {
    json_response(StatusCode::OK, &json!({"ready": true}))
}

async fn model_metadata(State(server): State<Arc<ReferenceServer>>, Path(model): Path<String>) -> Response {
    if let Some(r) = not_served(&server, &model) {
        return r;
    }
    json_response(
        StatusCode::OK,
        &json!({"name": model, "versions": [], "platform": PLATFORM, "inputs": [], "outputs": []}),
    )
}

async fn model_ready(State(server): State<Arc<ReferenceServer>>, Path(model): Path<String>) -> Response {
    if let Some(r) = not_served(&server, &model) {
        return r;
    }
    json_response(StatusCode::OK, &json!({"name": model, "ready": true}))
}

async fn model_infer(
    State(server): State<Arc<ReferenceServer>>,
    Path(model): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, format!("malformed JSON request: {e}")),
    };
    let mut request = match request_from_json(&value) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, e.to_string()),
    };
    request.model_name = model;
    let response = match server.infer(&request) {
        Ok(r) => r,
        Err(status) => return status_response(&status),
    };
    match response_to_json(&response) {
        Ok(v) => {
            let mut r = json_response(StatusCode::OK, &v);
            if let Some(Ok(reference)) = server.models().get(&request.model_name).map(|m| m.parse()) {
                r.headers_mut().insert(REFERENCE_MODEL_HEADER, reference);
            }
            if let Some(tp) = headers.get("traceparent").cloned() {
                r.headers_mut().insert(RECEIVED_TRACEPARENT_HEADER, tp);
            }
            r
        }
        Err(e) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("model {} gave an undecodable response: {e}", request.model_name),
        ),
    }
}

/// The REST routes over `server`.
pub fn router(server: ReferenceServer) -> Router {
    Router::new()
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route("/v2/models/{model}/infer", post(model_infer))
        .route("/metrics", get(metrics))
        // Requests may be as large as gRPC ones (axum's default limit is 2 MB).
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(server))
}

/// Serves `server` over REST on `listener` until `shutdown` completes, then waits for open
/// requests to end.
pub async fn serve_http(
    listener: TcpListener,
    server: ReferenceServer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(server))
        .with_graceful_shutdown(shutdown)
        .await
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Calls models over REST (`POST {url}/v2/models/{model}/infer`): a default endpoint and
/// endpoints per model, pooled keep-alive connections.
pub struct RestModels {
    agent: ureq::Agent,
    default_endpoint: Option<String>,
    /// Model name → endpoint URL.
    endpoints: BTreeMap<String, String>,
    timeout: Duration,
}

impl Default for RestModels {
    fn default() -> Self {
        Self::new()
    }
}

impl RestModels {
    /// A client with no endpoints and Seldon's 2-minute timeout.
    pub fn new() -> Self {
        RestModels {
            agent: agent(DEFAULT_TIMEOUT),
            default_endpoint: None,
            endpoints: BTreeMap::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client that calls every model on the server at `url` (`http://host:port` or
    /// `host:port`).
    pub fn connect(url: &str) -> Self {
        Self::new().with_default_endpoint(url)
    }

    /// Where models without an endpoint of their own are called.
    pub fn with_default_endpoint(mut self, url: &str) -> Self {
        self.default_endpoint = Some(normalise(url));
        self
    }

    /// Calls `model` on the server at `url`.
    pub fn with_model(mut self, model: &str, url: &str) -> Self {
        self.endpoints.insert(model.to_string(), normalise(url));
        self
    }

    /// How long one call may take in all (connecting, sending and reading the answer).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.agent = agent(timeout);
        self
    }

    /// The endpoint URL `model` is called at, if any.
    pub fn endpoint_of(&self, model: &str) -> Option<&str> {
        self.endpoints
            .get(model)
            .or(self.default_endpoint.as_ref())
            .map(String::as_str)
    }
}

/// A ureq agent with a bound on each call, for which error statuses are answers.
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // Error statuses are answers: their bodies are the error texts.
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// `h:p` → `http://h:p`; no trailing `/`.
fn normalise(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

impl ModelBackend for RestModels {
    fn ready(&self, model: &str) -> Result<bool, String> {
        let base = self
            .endpoint_of(model)
            .ok_or_else(|| format!("no model server endpoint is configured for model {model}"))?;
        match self.agent.get(&format!("{base}/v2/models/{model}/ready")).call() {
            Ok(r) => Ok(r.status().is_success()),
            Err(e) => Err(format!("model server {base}: {e}")),
        }
    }

    fn infer(&self, model: &str, request: ModelInferRequest) -> Result<ModelInferResponse, String> {
        self.call(model, request).map_err(|e| e.to_string())
    }

    fn call(&self, model: &str, request: ModelInferRequest) -> Result<ModelInferResponse, ModelCallError> {
        self.call_with_headers(model, request, &[]).map(|(r, _)| r)
    }

    fn call_with_headers(
        &self,
        model: &str,
        request: ModelInferRequest,
        request_headers: &[(String, String)],
    ) -> Result<(ModelInferResponse, Vec<(String, String)>), ModelCallError> {
        let failed = ModelCallError::Failed;
        let base = self
            .endpoint_of(model)
            .ok_or_else(|| failed(format!("no model server endpoint is configured for model {model}")))?;
        let body = request_to_json(&request).map_err(|e| failed(format!("model {model}: {e}")))?;
        let body = serde_json::to_vec(&body).map_err(|e| failed(format!("model {model}: {e}")))?;
        let url = format!("{base}/v2/models/{model}/infer");
        let mut post = self.agent.post(&url).header("content-type", "application/json");
        for (k, v) in request_headers {
            post = post.header(k.as_str(), v.as_str());
        }
        let answer = post.send(&body[..]).and_then(|mut r| {
            let status = r.status();
            let headers: Vec<(String, String)> = r
                .headers()
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("x-"))
                .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect();
            let text = r.body_mut().with_config().limit(u64::MAX).read_to_string()?;
            Ok((status, headers, text))
        });
        let (status, headers, text) = match answer {
            Ok(a) => a,
            Err(e) => return Err(self.transport_error(base, e)),
        };
        if !status.is_success() {
            return Err(failed(if text.trim().is_empty() {
                format!("model server {base} answered HTTP {status}")
            } else {
                text
            }));
        }
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| failed(format!("model server {base}: malformed JSON response: {e}")))?;
        let mut response =
            response_from_json(&value).map_err(|e| failed(format!("model server {base}: bad response: {e}")))?;
        if response.model_name.is_empty() {
            response.model_name = model.to_string();
        }
        Ok((response, headers))
    }
}

impl RestModels {
    fn transport_error(&self, base: &str, e: ureq::Error) -> ModelCallError {
        use std::io::ErrorKind;
        match e {
            ureq::Error::Timeout(_) => ModelCallError::Failed(format!(
                "no answer from model server {base} within {}",
                seconds(self.timeout)
            )),
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::NotConnected
                        | ErrorKind::AddrNotAvailable
                ) =>
            {
                ModelCallError::Unavailable(format!("model server {base} unavailable: {io}"))
            }
            ureq::Error::Io(io) if io.kind() == ErrorKind::TimedOut => ModelCallError::Failed(format!(
                "no answer from model server {base} within {}",
                seconds(self.timeout)
            )),
            e @ (ureq::Error::HostNotFound | ureq::Error::ConnectionFailed) => {
                ModelCallError::Unavailable(format!("model server {base} unavailable: {e}"))
            }
            e => ModelCallError::Failed(format!("model server {base}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::infer_parameter::ParameterChoice;
    use crate::proto::inference::InferParameter;
    use crate::tensor::{Parameters, Tensor, TensorData};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rest_front_counts_its_calls_on_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ReferenceServer::new().with_model("tfsimple1", "sum-diff").unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_http(listener, server, async {
            let _ = stopped.await;
        }));
        let text = tokio::task::spawn_blocking(move || {
            let body = json!({"inputs": [
                {"name": "INPUT0", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]},
                {"name": "INPUT1", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]}]});
            let r = ureq::post(&format!("http://{addr}/v2/models/tfsimple1/infer"))
                .header("content-type", "application/json")
                .send(body.to_string().as_bytes())
                .unwrap();
            assert_eq!(r.status(), 200);
            ureq::get(&format!("http://{addr}/metrics"))
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap()
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

    #[test]
    fn outputs_as_binary_data_and_only_those_requested() {
        let response = InferMessage {
            id: "r".into(),
            parameters: Default::default(),
            tensors: vec![Tensor::new("a", vec![2], TensorData::Int32(vec![1, 2])).unwrap(), {
                let mut b = Tensor::new("b", vec![1], TensorData::Fp64(vec![0.5])).unwrap();
                b.parameters = parameters_from_json(&json!({"content_type": "np"}));
                b
            }],
            encoding: Encoding::Typed,
        }
        .to_response()
        .unwrap();
        let form = OutputForm::of_request(&json!({"inputs": [], "outputs": [
            {"name": "a", "parameters": {"binary_data": true}}]}));
        let (v, binary) = response_to_json_and_binary(&response, &form).unwrap();
        assert_eq!(
            v["outputs"],
            json!([{"name": "a", "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": 8}}])
        );
        assert_eq!(binary, [1, 0, 0, 0, 2, 0, 0, 0]);
        let all = OutputForm::of_request(&json!({"parameters": {"binary_data_output": true}}));
        let (v, binary) = response_to_json_and_binary(&response, &all).unwrap();
        // A binary output keeps its own parameters beside its size.
        assert_eq!(
            v["outputs"][1]["parameters"],
            json!({"binary_data_size": 8, "content_type": "np"})
        );
        assert_eq!(binary.len(), 16);
        let (v, binary) = response_to_json_and_binary(&response, &OutputForm::default()).unwrap();
        assert_eq!(v["outputs"][1]["data"], json!([0.5]));
        assert!(binary.is_empty());
    }

    #[test]
    fn urls_are_normalised() {
        assert_eq!(normalise("localhost:9000"), "http://localhost:9000");
        assert_eq!(normalise("http://h:1/"), "http://h:1");
        let models = RestModels::connect("b:2").with_model("a", "http://a:1");
        assert_eq!(models.endpoint_of("a"), Some("http://a:1"));
        assert_eq!(models.endpoint_of("z"), Some("http://b:2"));
        assert_eq!(
            RestModels::new().infer("m", ModelInferRequest::default()).unwrap_err(),
            "no model server endpoint is configured for model m"
        );
    }

    #[test]
    fn requests_and_responses_round_trip_through_json() {
        let mut parameters = Parameters::default();
        parameters.insert(
            "content_type".into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::StringParam("np".into())),
            },
        );
        parameters.insert(
            "n".into(),
            InferParameter {
                parameter_choice: Some(ParameterChoice::Int64Param(-3)),
            },
        );
        let message = InferMessage {
            id: "r1".into(),
            parameters,
            tensors: vec![Tensor::new("x", vec![1, 2], TensorData::Fp64(vec![0.5, 2.0])).unwrap()],
            encoding: Encoding::Raw,
        };
        let request = message.to_request().unwrap();
        let v = request_to_json(&request).unwrap();
        assert_eq!(v["id"], "r1");
        assert_eq!(v["parameters"], json!({"content_type": "np", "n": -3}));
        assert_eq!(v["inputs"][0]["data"], json!([0.5, 2.0]));
        let back = request_from_json(&v).unwrap();
        assert_eq!(InferMessage::from_request(&back).unwrap().tensors, message.tensors);
        assert_eq!(parameters_from_json(&v["parameters"]), message.parameters);

        let mut response = message.to_response().unwrap();
        response.model_name = "m".into();
        let v = response_to_json(&response).unwrap();
        assert_eq!(v["model_name"], "m");
        let back = response_from_json(&v).unwrap();
        assert_eq!(back.model_name, "m");
        assert_eq!(back.id, "r1");
        assert_eq!(back.parameters, message.parameters);
        assert_eq!(InferMessage::from_response(&back).unwrap().tensors, message.tensors);
    }
}
