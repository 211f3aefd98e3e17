//! Calls models over the REST (HTTP/JSON) side of the Open Inference Protocol (KServe V2) for
//! the workers' model-call steps (PIPELINES.md §6). Feature `rest`.
//!
//! [`RestModels`] is blocking (workers call it from plain threads): a refused or failed
//! connection is [`ModelCallError::Unavailable`]; an HTTP error status is
//! [`ModelCallError::Failed`] with the response body as the text; so is a timeout. Seldon does not
//! retry REST calls, and neither does this client.

use std::time::Duration;

use serde_json::Value;

use crate::backend::{seconds, CallAnswer, Endpoints, ModelBackend, ModelCallError};
use crate::json::{request_to_json, response_from_json};
use crate::proto::inference::ModelInferRequest;

/// Seldon's model-gateway timeout for one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Calls models over REST (`POST {url}/v2/models/{model}/infer`): a default endpoint and
/// endpoints per model, pooled keep-alive connections.
pub struct RestModels {
    agent: ureq::Agent,
    endpoints: Endpoints,
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
            endpoints: Endpoints::default(),
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
        self.endpoints.set_default(normalise(url));
        self
    }

    /// Calls `model` on the server at `url`.
    pub fn with_model(mut self, model: &str, url: &str) -> Self {
        self.endpoints.set(model, normalise(url));
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
        self.endpoints.of(model)
    }
}

/// A ureq agent with a bound on each call, for which error statuses are answers.
pub fn agent(timeout: Duration) -> ureq::Agent {
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

    fn call(&self, model: &str, request: ModelInferRequest, request_headers: &[(String, String)]) -> CallAnswer {
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
}
