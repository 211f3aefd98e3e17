//! The one interface every model call goes through: the model gateway's clients (gRPC, REST,
//! placed by model) in the Kafka node, a function in tests.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proto::inference::{ModelInferRequest, ModelInferResponse};

/// **flowc** (§10): a synchronous request's deadline, epoch milliseconds. The gateway stamps it
/// on the request's records (the record header of the same name); a model call sends it to the
/// server and makes no retry after it.
pub const DEADLINE_HEADER: &str = "x-flowc-deadline-ms";

const DEADLINE_EXCEEDED: &str = "deadline exceeded before step";

/// The text of the error record that replaces a record whose deadline passed before `step`
/// (§10): "deadline exceeded before step S (N ms late)".
pub fn deadline_text(step: &str, late_ms: i64) -> String {
    format!("{DEADLINE_EXCEEDED} {step} ({late_ms} ms late)")
}

/// Whether an error record's text says its request's deadline passed ([`deadline_text`]).
pub fn is_deadline_text(text: &str) -> bool {
    text.contains(DEADLINE_EXCEEDED)
}

/// Milliseconds since the epoch (0 if the clock is before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A timeout as error texts spell it: `2.5s`.
pub fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// Why a model call gave no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelCallError {
    /// The model answered with an error (or too late): the text goes to the errors topic.
    #[error("{0}")]
    Failed(String),
    /// The model server could not be reached at all: nothing is answered, the record is
    /// retried once the server is back (the worker holds its offset).
    #[error("{0}")]
    Unavailable(String),
}

/// A model's answer: the response with the server's `x-*` response headers, which the model
/// gateway copies onto the output record (§6).
pub type CallAnswer = Result<(ModelInferResponse, Vec<(String, String)>), ModelCallError>;

/// Calls a model.
pub trait ModelBackend: Send + Sync {
    /// Calls `model`, sending `headers` (gRPC metadata or HTTP headers: `traceparent`, the
    /// deadline) with the request. Backends that carry no headers ignore them.
    fn call(&self, model: &str, request: ModelInferRequest, headers: &[(String, String)]) -> CallAnswer;

    /// Whether the model's server says the model is ready (OIP `ModelReady`); `Err` when it
    /// cannot be asked (no server configured, unreachable, or a backend that cannot tell).
    fn ready(&self, model: &str) -> Result<bool, String> {
        Err(format!("cannot ask whether model {model} is ready"))
    }

    /// [`ModelBackend::call`] without headers, any failure as its text.
    fn infer(&self, model: &str, request: ModelInferRequest) -> Result<ModelInferResponse, String> {
        self.call(model, request, &[])
            .map(|(response, _)| response)
            .map_err(|e| e.to_string())
    }
}

/// Where a client calls each model: an endpoint of its own, or the default one.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    default: Option<String>,
    /// Model name → endpoint URL.
    models: BTreeMap<String, String>,
}

impl Endpoints {
    /// Where models without an endpoint of their own are called.
    pub fn set_default(&mut self, url: String) {
        self.default = Some(url);
    }

    /// Calls `model` at `url`.
    pub fn set(&mut self, model: &str, url: String) {
        self.models.insert(model.to_string(), url);
    }

    /// The endpoint URL `model` is called at, if any.
    pub fn of(&self, model: &str) -> Option<&str> {
        self.models.get(model).or(self.default.as_ref()).map(String::as_str)
    }
}
