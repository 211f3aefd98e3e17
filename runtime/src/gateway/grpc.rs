//! The gateway's gRPC front (Seldon's port 9011): `inference.GRPCInferenceService`. The target
//! comes from the `seldon-internal-model` / `seldon-model` metadata, else from the request's
//! model name (`<p>.pipeline`, `<m>` or `<m>.model`). `x-request-id` metadata is the request
//! id; the answer's metadata carries `x-request-id` (the key) and the output record's `x-*`
//! headers.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tonic::metadata::{KeyAndValueRef, MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{Gateway, GatewayError, Target};
use crate::proto::inference::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use crate::proto::inference::{
    ModelInferRequest, ModelInferResponse, ModelMetadataRequest, ModelMetadataResponse, ModelReadyRequest,
    ModelReadyResponse, ServerLiveRequest, ServerLiveResponse, ServerMetadataRequest, ServerMetadataResponse,
    ServerReadyRequest, ServerReadyResponse,
};

/// What model metadata calls a pipeline's or model's platform.
pub const PLATFORM: &str = "flowc-pipeline";

pub struct GatewayService {
    gateway: Arc<Gateway>,
}

fn value<'a>(metadata: &'a MetadataMap, name: &str) -> Option<&'a str> {
    metadata.get(name).and_then(|v| v.to_str().ok())
}

fn target_of(metadata: &MetadataMap, name: &str) -> Result<Target, GatewayError> {
    let path = (!name.trim().is_empty()).then(|| Target::parse(name));
    Target::route(
        value(metadata, "seldon-internal-model"),
        value(metadata, "seldon-model"),
        path,
    )
    .ok_or(GatewayError::NoTarget)
}

fn status(e: &GatewayError) -> Status {
    let mut status = Status::new(e.grpc_code(), e.to_string());
    if let Some(key) = e.key() {
        if let Ok(v) = MetadataValue::try_from(key) {
            status.metadata_mut().insert("x-request-id", v);
        }
    }
    status
}

#[tonic::async_trait]
impl GrpcInferenceService for GatewayService {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> Result<Response<ServerLiveResponse>, Status> {
        Ok(Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> Result<Response<ServerReadyResponse>, Status> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.gateway.is_ready(),
        }))
    }

    async fn model_ready(&self, request: Request<ModelReadyRequest>) -> Result<Response<ModelReadyResponse>, Status> {
        let target = target_of(request.metadata(), &request.get_ref().name).map_err(|e| status(&e))?;
        let ready = self.gateway.ready(&target).await.map_err(|e| status(&e))?;
        Ok(Response::new(ModelReadyResponse { ready: ready.is_ok() }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> Result<Response<ServerMetadataResponse>, Status> {
        Ok(Response::new(ServerMetadataResponse {
            name: "flowc-pipeline-gateway".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> Result<Response<ModelMetadataResponse>, Status> {
        let target = target_of(request.metadata(), &request.get_ref().name).map_err(|e| status(&e))?;
        self.gateway.exists(&target).map_err(|e| status(&e))?;
        Ok(Response::new(ModelMetadataResponse {
            name: target.name().to_string(),
            versions: Vec::new(),
            platform: PLATFORM.to_string(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }))
    }

    async fn model_infer(&self, request: Request<ModelInferRequest>) -> Result<Response<ModelInferResponse>, Status> {
        let target = target_of(request.metadata(), &request.get_ref().model_name).map_err(|e| status(&e))?;
        let request_id = value(request.metadata(), "x-request-id").map(str::to_string);
        let pass: Vec<(String, String)> = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                KeyAndValueRef::Ascii(k, v) if k.as_str().starts_with("x-") || k.as_str() == "traceparent" => {
                    Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                }
                _ => None,
            })
            .collect();
        let answer = self
            .gateway
            .infer(&target, request.into_inner(), request_id.as_deref(), &pass)
            .await
            .map_err(|e| status(&e))?;
        let mut response = Response::new(answer.response);
        for (k, v) in &answer.headers {
            if let (Ok(k), Ok(v)) = (
                MetadataKey::from_bytes(k.as_bytes()),
                MetadataValue::try_from(v.as_str()),
            ) {
                response.metadata_mut().append(k, v);
            }
        }
        Ok(response)
    }
}

/// Serves the gRPC front on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let limit = gateway.options().max_request_bytes;
    let service = GrpcInferenceServiceServer::new(GatewayService { gateway })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX);
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await
}
