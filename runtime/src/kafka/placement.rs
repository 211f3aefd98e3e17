//! Where a model runs (PIPELINES.md §1.3): on the Server named by `spec.server`, or on the
//! first Server (by name) whose capabilities include all of the model's requirements. A
//! `kind: Server` carries the endpoints of a running Open Inference Protocol server
//! (`grpc://host:port`, `http://host:port`); workers call a placed model at its Server's gRPC
//! endpoint, or its REST endpoint if it lists no gRPC one. Without any Server, or for a `flowc://` reference model that no Server fits,
//! there is no placement and the worker's own `--model-server` is used.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use flowc_plan::{ModelPlan, ServerPlan};

use crate::operator::{ModelBackend, ModelCallError};
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_oip::grpc::GrpcModels;
use flowc_oip::rest::RestModels;

/// The Server `model` runs on, if any; an error when it names a missing Server or fits none.
pub fn place<'a>(model: &ModelPlan, servers: &'a [ServerPlan]) -> Result<Option<&'a ServerPlan>, String> {
    if let Some(name) = &model.server {
        return servers.iter().find(|s| &s.name == name).map(Some).ok_or_else(|| {
            format!(
                "model {} names server {name}, which is neither in these files nor deployed",
                model.name
            )
        });
    }
    let mut sorted: Vec<&ServerPlan> = servers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let fit = sorted
        .iter()
        .find(|s| model.requirements.iter().all(|r| s.capabilities.contains(r)));
    match fit {
        Some(s) => Ok(Some(*s)),
        None if servers.is_empty() || model.reference_model.is_some() => Ok(None),
        None => Err(format!(
            "model {} fits no Server: it requires [{}]; servers: {}",
            model.name,
            model.requirements.join(", "),
            sorted
                .iter()
                .map(|s| format!("{} [{}]", s.name, s.capabilities.join(", ")))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// How a placed model is called.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Endpoint {
    /// gRPC `ModelInfer`, at an `http://host:port` URL (tonic's form of `grpc://`).
    Grpc(String),
    /// REST `POST /v2/models/<m>/infer`.
    Rest(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Grpc(u) => write!(f, "gRPC {u}"),
            Endpoint::Rest(u) => write!(f, "REST {u}"),
        }
    }
}

/// A Server's endpoint for model calls: gRPC (§6's default) if it lists one, else REST.
pub fn endpoint(server: &ServerPlan) -> Result<Endpoint, String> {
    let grpc = server.endpoints.iter().find_map(|e| {
        e.strip_prefix("grpc://")
            .map(|rest| Endpoint::Grpc(format!("http://{rest}")))
    });
    grpc.or_else(|| rest_endpoint(server).map(Endpoint::Rest))
        .ok_or_else(|| {
            format!(
                "server {} has no grpc:// or http:// endpoint (it lists: {})",
                server.name,
                if server.endpoints.is_empty() {
                    "none".to_string()
                } else {
                    server.endpoints.join(", ")
                }
            )
        })
}

/// A Server's REST endpoint, if it lists one (for its repository API).
pub fn rest_endpoint(server: &ServerPlan) -> Option<String> {
    server
        .endpoints
        .iter()
        .find(|e| e.starts_with("http://") || e.starts_with("https://"))
        .map(|e| e.trim_end_matches('/').to_string())
}

/// Model → endpoint for every placed model; models that fit nowhere are left out.
pub fn placements(models: &[ModelPlan], servers: &[ServerPlan]) -> BTreeMap<String, Endpoint> {
    let mut out = BTreeMap::new();
    for m in models {
        if let Ok(Some(server)) = place(m, servers) {
            if let Ok(e) = endpoint(server) {
                out.insert(m.name.clone(), e);
            }
        }
    }
    out
}

/// The worker's model backend: a placed model is called at its Server's endpoint, any other
/// through `fallback` (the worker's `--model-endpoint`/`--model-server`). Placements follow
/// the deployment log ([`PlacedModels::update`]).
pub struct PlacedModels {
    fallback: Option<Arc<dyn ModelBackend>>,
    timeout: std::time::Duration,
    placement: RwLock<BTreeMap<String, Endpoint>>,
    clients: RwLock<BTreeMap<Endpoint, Arc<dyn ModelBackend>>>,
}

impl PlacedModels {
    pub fn new(fallback: Option<Arc<dyn ModelBackend>>, timeout: std::time::Duration) -> PlacedModels {
        PlacedModels {
            fallback,
            timeout,
            placement: RwLock::new(BTreeMap::new()),
            clients: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn update(&self, placement: BTreeMap<String, Endpoint>) {
        if let Ok(mut p) = self.placement.write() {
            if *p != placement {
                tracing::info!(?placement, "model placement");
                *p = placement;
            }
        }
    }

    fn client(&self, endpoint: &Endpoint) -> Result<Arc<dyn ModelBackend>, ModelCallError> {
        if let Some(c) = self.clients.read().ok().and_then(|c| c.get(endpoint).cloned()) {
            return Ok(c);
        }
        let client: Arc<dyn ModelBackend> = match endpoint {
            Endpoint::Grpc(url) => GrpcModels::connect(url)
                .map(|c| Arc::new(c.with_timeout(self.timeout)) as Arc<dyn ModelBackend>)
                .map_err(|e| ModelCallError::Failed(format!("model server {url}: {e}")))?,
            Endpoint::Rest(url) => Arc::new(RestModels::connect(url).with_timeout(self.timeout)),
        };
        if let Ok(mut clients) = self.clients.write() {
            clients.insert(endpoint.clone(), client.clone());
        }
        Ok(client)
    }
}

impl ModelBackend for PlacedModels {
    fn ready(&self, model: &str) -> Result<bool, String> {
        let url = self.placement.read().ok().and_then(|p| p.get(model).cloned());
        match (url, &self.fallback) {
            (Some(endpoint), _) => self.client(&endpoint).map_err(|e| e.to_string())?.ready(model),
            (None, Some(fallback)) => fallback.ready(model),
            (None, None) => Err(format!("model {model} is on no Server and no --model-server is given")),
        }
    }

    fn call(
        &self,
        model: &str,
        request: ModelInferRequest,
        request_headers: &[(String, String)],
    ) -> Result<(ModelInferResponse, Vec<(String, String)>), ModelCallError> {
        let url = self.placement.read().ok().and_then(|p| p.get(model).cloned());
        match (url, &self.fallback) {
            (Some(endpoint), _) => self.client(&endpoint)?.call(model, request, request_headers),
            (None, Some(fallback)) => fallback.call(model, request, request_headers),
            (None, None) => Err(ModelCallError::Failed(format!(
                "model {model} is on no Server and this worker has no --model-server"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, caps: &[&str], endpoints: &[&str]) -> ServerPlan {
        ServerPlan {
            name: name.into(),
            namespace: "default".into(),
            capabilities: caps.iter().map(|s| s.to_string()).collect(),
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn model(name: &str, reqs: &[&str], server: Option<&str>, reference: Option<&str>) -> ModelPlan {
        ModelPlan {
            name: name.into(),
            namespace: "default".into(),
            storage_uri: "s3://m".into(),
            reference_model: reference.map(str::to_string),
            requirements: reqs.iter().map(|s| s.to_string()).collect(),
            server: server.map(str::to_string),
            replicas: None,
            min_replicas: None,
            max_replicas: None,
            memory: None,
            parameters: Vec::new(),
            explainer: None,
            llm_infer_path: None,
            clean_topics_on_delete: false,
            input_topic: String::new(),
            output_topic: String::new(),
            call: None,
        }
    }

    #[test]
    fn placement_follows_server_name_then_capabilities() {
        let servers = [
            server("triton", &["tensorflow", "onnx"], &["grpc://t:1"]),
            server("mlserver", &["sklearn", "xgboost"], &["http://m:8080", "grpc://m:8081"]),
        ];
        let on = |m: &ModelPlan| place(m, &servers).map(|s| s.map(|s| s.name.as_str()));
        assert_eq!(on(&model("a", &["sklearn"], None, None)), Ok(Some("mlserver")));
        assert_eq!(on(&model("b", &[], Some("triton"), None)), Ok(Some("triton")));
        assert_eq!(on(&model("r", &["flowc"], None, Some("identity"))), Ok(None));
        assert_eq!(
            on(&model("c", &["pytorch"], None, None)),
            Err("model c fits no Server: it requires [pytorch]; servers: mlserver [sklearn, xgboost], triton [tensorflow, onnx]".to_string())
        );
        assert_eq!(
            on(&model("d", &[], Some("nope"), None)),
            Err("model d names server nope, which is neither in these files nor deployed".to_string())
        );
        assert_eq!(endpoint(&servers[1]), Ok(Endpoint::Grpc("http://m:8081".to_string())));
        assert_eq!(
            endpoint(&server("h", &[], &["http://x:1/"])),
            Ok(Endpoint::Rest("http://x:1".to_string()))
        );
        assert!(endpoint(&server("n", &[], &[]))
            .unwrap_err()
            .contains("no grpc:// or http:// endpoint"));
        assert_eq!(rest_endpoint(&servers[1]), Some("http://m:8080".to_string()));
        assert_eq!(place(&model("e", &["x"], None, None), &[]), Ok(None));
    }
}
