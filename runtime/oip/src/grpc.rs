//! Calls models on Open Inference Protocol gRPC servers (`inference.GRPCInferenceService/
//! ModelInfer`) for the workers' model-call steps (PIPELINES.md §6). Feature `grpc`.
//!
//! [`GrpcModels`] is a synchronous [`ModelBackend`]: workers call it from plain threads. It runs
//! the calls on its own small tokio runtime, so it also works (by blocking the caller) from a
//! thread of another runtime. Each endpoint gets one lazily connected HTTP/2 channel, shared by
//! every call to it and reconnected by tonic when it breaks.
//!
//! Seldon's defaults: a 2-minute timeout per try, and up to 5 tries with exponential back-off from
//! 100 ms (100, 200, 400, 800 ms) for transient failures: status UNAVAILABLE, which is also what
//! an unreachable server or a refused connection gives. Other failures (the model's own error
//! statuses, a timeout) are not retried: a model that took 2 minutes would take them again.
//! The back-off is backon's; a retry that would start after the request's deadline (§10) is
//! not made.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use tokio::runtime::Runtime;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use backon::{ExponentialBuilder, Retryable};

use crate::backend::{
    deadline_text, now_ms, seconds, CallAnswer, Endpoints, ModelBackend, ModelCallError, DEADLINE_HEADER,
};
use crate::proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use crate::proto::inference::ModelInferRequest;

/// The largest message the client sends or accepts, and servers should take (as Seldon, which
/// lifts gRPC's 4 MiB default to the largest protobuf message).
pub const MAX_MESSAGE_BYTES: usize = i32::MAX as usize;

/// Seldon's model-gateway timeout for one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Seldon's number of tries for a transient failure.
pub const DEFAULT_TRIES: u32 = 5;
/// The wait before the second try; it doubles before each further try.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(100);

/// Why a [`GrpcModels`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot start the model client's runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("invalid model server endpoint {url:?}: {reason}")]
    InvalidEndpoint { url: String, reason: String },
}

/// Calls models over gRPC: a default endpoint, endpoints per model, one channel per endpoint.
pub struct GrpcModels {
    /// `Some` until dropped (dropping a runtime inside another runtime's thread panics, so drop
    /// shuts it down in the background instead).
    runtime: Option<Runtime>,
    endpoints: Endpoints,
    /// Endpoint URL → its settings; the channel once the first call made it.
    channels: Mutex<HashMap<String, (Endpoint, Option<Channel>)>>,
    timeout: Duration,
    tries: u32,
    backoff: Duration,
}

impl GrpcModels {
    /// A client with no endpoints, Seldon's timeout and retries.
    pub fn new() -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flowc-model-client")
            .enable_all()
            .build()?;
        Ok(GrpcModels {
            runtime: Some(runtime),
            endpoints: Endpoints::default(),
            channels: Mutex::new(HashMap::new()),
            timeout: DEFAULT_TIMEOUT,
            tries: DEFAULT_TRIES,
            backoff: DEFAULT_BACKOFF,
        })
    }

    /// A client that calls every model on the server at `url`.
    pub fn connect(url: &str) -> Result<Self, ClientError> {
        Self::new()?.with_default_endpoint(url)
    }

    /// Where models without an endpoint of their own are called. `url` is `grpc://host:port`,
    /// `http://host:port` or `host:port`.
    pub fn with_default_endpoint(mut self, url: &str) -> Result<Self, ClientError> {
        let url = self.add_endpoint(url)?;
        self.endpoints.set_default(url);
        Ok(self)
    }

    /// Calls `model` on the server at `url`.
    pub fn with_model(mut self, model: &str, url: &str) -> Result<Self, ClientError> {
        let url = self.add_endpoint(url)?;
        self.endpoints.set(model, url);
        Ok(self)
    }

    /// How long one try may take (connecting included).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.refresh_endpoints();
        self
    }

    /// How many times a call is tried in all when the server is unavailable (at least 1).
    pub fn with_tries(mut self, tries: u32) -> Self {
        self.tries = tries.max(1);
        self
    }

    /// The wait before the second try; it doubles before each further one.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The endpoint URL `model` is called at, if any.
    pub fn endpoint_of(&self, model: &str) -> Option<&str> {
        self.endpoints.of(model)
    }

    /// Registers `url` (normalised to `http://…`) and returns the normalised form.
    fn add_endpoint(&mut self, url: &str) -> Result<String, ClientError> {
        let url = normalise(url);
        let endpoint = self.endpoint(&url)?;
        self.channels
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .entry(url.clone())
            .or_insert((endpoint, None));
        Ok(url)
    }

    fn endpoint(&self, url: &str) -> Result<Endpoint, ClientError> {
        let invalid = |reason: String| ClientError::InvalidEndpoint {
            url: url.to_string(),
            reason,
        };
        let endpoint = Endpoint::from_shared(url.to_string()).map_err(|e| invalid(e.to_string()))?;
        if endpoint.uri().host().is_none() {
            return Err(invalid("no host".to_string()));
        }
        Ok(endpoint.connect_timeout(self.timeout).tcp_nodelay(true))
    }

    /// Re-applies the settings to every endpoint (none is connected yet while building).
    fn refresh_endpoints(&mut self) {
        let timeout = self.timeout;
        for (endpoint, _) in self.channels.get_mut().unwrap_or_else(|e| e.into_inner()).values_mut() {
            *endpoint = endpoint.clone().connect_timeout(timeout);
        }
    }

    /// Whether the server at `model`'s endpoint says the model is ready (gRPC `ModelReady`),
    /// within the call timeout. `Err` when the server cannot be asked.
    pub fn ready(&self, model: &str) -> Result<bool, String> {
        let runtime = self.runtime.as_ref().ok_or("the model client is shut down")?;
        let url = self
            .endpoint_of(model)
            .ok_or_else(|| format!("no model server endpoint is configured for model {model}"))?
            .to_string();
        let channel = self.channel(runtime, &url)?;
        let (timeout, name) = (self.timeout, model.to_string());
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let mut client = GrpcInferenceServiceClient::new(channel);
            let request = crate::proto::inference::ModelReadyRequest {
                name,
                ..Default::default()
            };
            let answer = match tokio::time::timeout(timeout, client.model_ready(request)).await {
                Ok(Ok(r)) => Ok(r.into_inner().ready),
                Ok(Err(status)) if status.code() == Code::NotFound => Ok(false),
                Ok(Err(status)) => Err(format!("model server {url}: {}", status.message())),
                Err(_) => Err(format!("no answer from model server {url} within {}", seconds(timeout))),
            };
            let _ = tx.send(answer);
        });
        rx.recv()
            .unwrap_or_else(|_| Err("the model client shut down".to_string()))
    }

    /// The channel to `url`, made on first use (inside the runtime: tonic spawns its worker).
    fn channel(&self, runtime: &Runtime, url: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let (endpoint, channel) = channels
            .get_mut(url)
            .ok_or_else(|| format!("model server endpoint {url} is not configured"))?;
        Ok(channel
            .get_or_insert_with(|| {
                let _entered = runtime.enter();
                endpoint.connect_lazy()
            })
            .clone())
    }
}

impl Drop for GrpcModels {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl ModelBackend for GrpcModels {
    fn ready(&self, model: &str) -> Result<bool, String> {
        GrpcModels::ready(self, model)
    }

    fn call(&self, model: &str, mut request: ModelInferRequest, request_headers: &[(String, String)]) -> CallAnswer {
        let failed = ModelCallError::Failed;
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| failed("the model client is shut down".to_string()))?;
        let url = self
            .endpoint_of(model)
            .ok_or_else(|| failed(format!("no model server endpoint is configured for model {model}")))?
            .to_string();
        let channel = self.channel(runtime, &url).map_err(failed)?;
        request.model_name = model.to_string();
        let call = Call {
            url,
            timeout: self.timeout,
            tries: self.tries,
            backoff: self.backoff,
            metadata: request_headers.to_vec(),
        };
        // Spawned rather than `block_on`: works from any thread, even one of another runtime.
        let (tx, rx) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(call.run(channel, request).await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(failed("the model client shut down during the call".to_string())))
    }
}

/// A response's `x-*` metadata (ASCII values), in order.
fn x_headers(metadata: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    metadata
        .iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("x-") => {
                Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// One model call's settings.
struct Call {
    url: String,
    timeout: Duration,
    tries: u32,
    backoff: Duration,
    /// Request metadata sent with every try (`traceparent`, the deadline `x-flowc-deadline-ms`).
    metadata: Vec<(String, String)>,
}

/// Why one try of a call gave no response.
enum TryError {
    /// UNAVAILABLE: retried (`attempt` is the try's number).
    Unavailable(tonic::Status, u32),
    /// Anything else: not retried.
    Final(ModelCallError),
}

impl Call {
    async fn run(self, channel: Channel, request: ModelInferRequest) -> CallAnswer {
        let client = GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let deadline = self
            .metadata
            .iter()
            .find(|(k, _)| k == DEADLINE_HEADER)
            .and_then(|(_, v)| v.trim().parse::<i64>().ok());
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let one_try = || async {
            let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            // A retry after the request's deadline (§10) would call the model for nobody: the
            // check comes after the back-off sleep, right before the try.
            if let (Some(deadline), true) = (deadline, attempt > 1) {
                let late = now_ms() - deadline;
                if late > 0 {
                    return Err(TryError::Final(ModelCallError::Failed(format!(
                        "{} while model server {} was unavailable",
                        deadline_text(&format!("model {}", request.model_name), late),
                        self.url
                    ))));
                }
            }
            self.try_once(client.clone(), request.clone(), attempt).await
        };
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.backoff)
            .with_factor(2.0)
            .without_max_delay()
            .with_max_times(self.tries.saturating_sub(1) as usize);
        let answer = one_try
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, TryError::Unavailable(..)))
            .notify(|e, _| {
                if let TryError::Unavailable(status, attempt) = e {
                    tracing::debug!(url = %self.url, attempt, code = ?status.code(), "model server unavailable, retrying");
                }
            })
            .await;
        answer.map_err(|e| match e {
            TryError::Unavailable(status, attempt) => ModelCallError::Unavailable(self.describe(&status, attempt)),
            TryError::Final(e) => e,
        })
    }

    /// One try: the response, or why not.
    async fn try_once(
        &self,
        mut client: GrpcInferenceServiceClient<Channel>,
        request: ModelInferRequest,
        attempt: u32,
    ) -> Result<(crate::proto::inference::ModelInferResponse, Vec<(String, String)>), TryError> {
        let mut grpc_request = tonic::Request::new(request);
        grpc_request.set_timeout(self.timeout);
        for (k, v) in &self.metadata {
            if let (Ok(k), Ok(v)) = (
                tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
                tonic::metadata::MetadataValue::try_from(v.as_str()),
            ) {
                grpc_request.metadata_mut().insert(k, v);
            }
        }
        match tokio::time::timeout(self.timeout, client.model_infer(grpc_request)).await {
            Ok(Ok(response)) => {
                let headers = x_headers(response.metadata());
                Ok((response.into_inner(), headers))
            }
            Ok(Err(status)) if status.code() == Code::Unavailable => Err(TryError::Unavailable(status, attempt)),
            // The channel's connect timeout (the same length) may fire first: tonic reports
            // it as CANCELLED "Timeout expired".
            Ok(Err(status)) if !is_timeout(&status) => {
                Err(TryError::Final(ModelCallError::Failed(self.describe(&status, attempt))))
            }
            Ok(Err(_)) | Err(_) => Err(TryError::Final(ModelCallError::Failed(format!(
                "no answer from model server {} within {}",
                self.url,
                seconds(self.timeout)
            )))),
        }
    }

    /// The error text: the server's own message, or for an unreachable server what happened.
    fn describe(&self, status: &tonic::Status, attempt: u32) -> String {
        if status.code() == Code::Unavailable {
            let mut text = format!(
                "model server {} unavailable after {attempt} {}: {}",
                self.url,
                if attempt == 1 { "try" } else { "tries" },
                status.message()
            );
            let mut source = status.source();
            while let Some(e) = source {
                let s = e.to_string();
                if !text.ends_with(&s) {
                    text.push_str(": ");
                    text.push_str(&s);
                }
                source = e.source();
            }
            return text;
        }
        if status.message().is_empty() {
            return format!("model server {} failed with status {:?}", self.url, status.code());
        }
        status.message().to_string()
    }
}

/// tonic's status for a timeout of its own (connecting, or a server's `Server::timeout`).
fn is_timeout(status: &tonic::Status) -> bool {
    status.code() == Code::Cancelled && status.message() == tonic::TimeoutExpired(()).to_string()
}

/// `grpc://h:p` and `h:p` → `http://h:p` (tonic speaks HTTP/2 over `http`/`https` URLs).
fn normalise(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("grpc://") {
        format!("http://{rest}")
    } else if let Some(rest) = url.strip_prefix("grpcs://") {
        format!("https://{rest}")
    } else if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalised() {
        assert_eq!(normalise("grpc://localhost:9500"), "http://localhost:9500");
        assert_eq!(normalise("localhost:9500"), "http://localhost:9500");
        assert_eq!(normalise("http://h:1/"), "http://h:1");
        assert_eq!(normalise("grpcs://h:1"), "https://h:1");
    }

    #[test]
    fn endpoints_per_model_and_default() {
        let models = GrpcModels::new()
            .unwrap()
            .with_model("a", "grpc://a:1")
            .unwrap()
            .with_default_endpoint("b:2")
            .unwrap();
        assert_eq!(models.endpoint_of("a"), Some("http://a:1"));
        assert_eq!(models.endpoint_of("z"), Some("http://b:2"));
        assert!(GrpcModels::new().unwrap().with_model("a", "grpc://no host:1").is_err());
        let none = GrpcModels::new().unwrap();
        assert_eq!(
            none.infer("m", ModelInferRequest::default()).unwrap_err(),
            "no model server endpoint is configured for model m"
        );
    }

    #[test]
    fn unreachable_server_is_retried_then_reported() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let models = GrpcModels::connect(&format!("127.0.0.1:{port}"))
            .unwrap()
            .with_tries(3)
            .with_backoff(Duration::from_millis(10));
        let started = std::time::Instant::now();
        let e = models.infer("m", ModelInferRequest::default()).unwrap_err();
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "{:?}",
            started.elapsed()
        );
        assert!(
            e.starts_with(&format!(
                "model server http://127.0.0.1:{port} unavailable after 3 tries: "
            )),
            "{e}"
        );
    }
}
