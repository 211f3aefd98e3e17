//! The gateway's HTTP front (Seldon's port 9010): Open Inference Protocol JSON.
//!
//! Routes: `POST /v2/pipelines/{p}/infer`, `POST /v2/models/{x}/infer` (and the `versions/{v}`
//! form), routed by the `seldon-internal-model` / `Seldon-Model` header or else the path
//! (§7); `GET /v2/pipelines/{p}/ready`, `GET /v2/models/{x}/ready`; `GET /v2/pipelines/{p}`
//! and `GET /v2/models/{x}` (metadata); `GET /v2/health/live|ready`; `GET /v2` (server
//! metadata); `GET /metrics` (Prometheus text). Errors are JSON `{"error": text}`.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::{Gateway, GatewayError, Target};
use crate::json::request_from_json_and_binary;
use flowc_oip::http::{error_response, json_response};
use flowc_oip::json::{response_to_json_and_binary, OutputForm};

type Shared = State<Arc<Gateway>>;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn target_of(headers: &HeaderMap, path: Option<Target>) -> Result<Target, GatewayError> {
    Target::route(
        header(headers, "seldon-internal-model"),
        header(headers, "seldon-model"),
        path,
    )
    .ok_or(GatewayError::NoTarget)
}

fn with_headers(mut response: Response, headers: &[(String, String)]) -> Response {
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::try_from(v.as_str())) {
            response.headers_mut().append(k, v);
        }
    }
    response
}

fn gateway_error(e: &GatewayError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let response = error_response(status, e.to_string());
    match e.key() {
        Some(key) => with_headers(response, &[("x-request-id".to_string(), key.to_string())]),
        None => response,
    }
}

async fn infer(
    gateway: Arc<Gateway>,
    headers: HeaderMap,
    path: Option<Target>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let answer = async {
        let target = target_of(&headers, path)?;
        let body = body.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                let size = header(&headers, "content-length")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(gateway.options().max_request_bytes + 1);
                GatewayError::TooLarge {
                    size,
                    limit: gateway.options().max_request_bytes,
                }
            } else {
                GatewayError::BadRequest(format!("cannot read the request body: {rejection}"))
            }
        })?;
        // Triton's binary tensor data extension: the JSON header, then raw tensor bytes.
        let json_len = match header(&headers, "inference-header-content-length") {
            Some(n) => n
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= body.len())
                .ok_or_else(|| {
                    GatewayError::BadRequest(format!(
                        "Inference-Header-Content-Length {n} is not a length within the {}-byte body",
                        body.len()
                    ))
                })?,
            None => body.len(),
        };
        let value: Value = serde_json::from_slice(&body[..json_len])
            .map_err(|e| GatewayError::BadRequest(format!("malformed JSON request: {e}")))?;
        let request = request_from_json_and_binary(&value, &body[json_len..])
            .map_err(|e| GatewayError::BadRequest(format!("bad request: {e}")))?;
        let form = OutputForm::of_request(&value);
        let pass: Vec<(String, String)> = headers
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-") || k.as_str() == "traceparent")
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let answer = gateway
            .infer(&target, request, header(&headers, "x-request-id"), &pass)
            .await?;
        Ok((answer, form))
    }
    .await;
    match answer {
        Ok((answer, form)) => match response_to_json_and_binary(&answer.response, &form) {
            Ok((v, binary)) if binary.is_empty() => with_headers(json_response(StatusCode::OK, &v), &answer.headers),
            Ok((v, binary)) => {
                let mut body = serde_json::to_vec(&v).unwrap_or_default();
                let json_len = body.len();
                body.extend_from_slice(&binary);
                let response = (
                    StatusCode::OK,
                    [
                        (axum::http::header::CONTENT_TYPE, "application/octet-stream".to_string()),
                        (
                            HeaderName::from_static("inference-header-content-length"),
                            json_len.to_string(),
                        ),
                    ],
                    body,
                )
                    .into_response();
                with_headers(response, &answer.headers)
            }
            Err(e) => gateway_error(&GatewayError::Internal(format!("undecodable answer: {e}"))),
        },
        Err(e) => gateway_error(&e),
    }
}

async fn pipeline_infer(
    State(gateway): Shared,
    Path(p): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer(gateway, headers, Some(Target::Pipeline(p)), body).await
}

async fn model_infer(
    State(gateway): Shared,
    Path(x): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer(gateway, headers, Some(Target::parse(&x)), body).await
}

async fn model_version_infer(
    State(gateway): Shared,
    Path((x, _version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer(gateway, headers, Some(Target::parse(&x)), body).await
}

/// 200 when deployed and every model it runs is ready, 424 if not, 404 if unknown.
async fn ready(gateway: Arc<Gateway>, headers: HeaderMap, path: Target) -> Response {
    let target = match target_of(&headers, Some(path)) {
        Ok(t) => t,
        Err(e) => return gateway_error(&e),
    };
    match gateway.ready(&target).await {
        Ok(Ok(())) => json_response(StatusCode::OK, &json!({"name": target.name(), "ready": true})),
        Ok(Err(why)) => json_response(
            StatusCode::FAILED_DEPENDENCY,
            &json!({"name": target.name(), "ready": false, "error": why}),
        ),
        Err(e) => gateway_error(&e),
    }
}

async fn pipeline_ready(State(gateway): Shared, Path(p): Path<String>, headers: HeaderMap) -> Response {
    ready(gateway, headers, Target::Pipeline(p)).await
}

async fn model_ready(State(gateway): Shared, Path(x): Path<String>, headers: HeaderMap) -> Response {
    ready(gateway, headers, Target::parse(&x)).await
}

async fn metadata(gateway: Arc<Gateway>, headers: HeaderMap, path: Target) -> Response {
    let target = match target_of(&headers, Some(path)) {
        Ok(t) => t,
        Err(e) => return gateway_error(&e),
    };
    match gateway.exists(&target) {
        Ok(()) => json_response(
            StatusCode::OK,
            &json!({"name": target.name(), "versions": [], "platform": super::grpc::PLATFORM, "inputs": [], "outputs": []}),
        ),
        Err(e) => gateway_error(&e),
    }
}

async fn pipeline_metadata(State(gateway): Shared, Path(p): Path<String>, headers: HeaderMap) -> Response {
    metadata(gateway, headers, Target::Pipeline(p)).await
}

async fn model_metadata(State(gateway): Shared, Path(x): Path<String>, headers: HeaderMap) -> Response {
    metadata(gateway, headers, Target::parse(&x)).await
}

async fn live() -> Response {
    json_response(StatusCode::OK, &json!({"live": true}))
}

async fn server_ready(State(gateway): Shared) -> Response {
    match gateway.not_ready() {
        None => json_response(StatusCode::OK, &json!({"ready": true})),
        Some(why) => json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"ready": false, "error": why})),
    }
}

async fn server_metadata() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"name": "flowc-pipeline-gateway", "version": env!("CARGO_PKG_VERSION"), "extensions": []}),
    )
}

/// Prometheus text exposition of the process's metrics (the gateway's and any other).
async fn metrics(State(gateway): Shared) -> Response {
    let m = crate::metrics::metrics();
    m.gateway_in_flight.set(gateway.in_flight() as i64);
    let text = m.render();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "no such route on the pipeline gateway (see /v2/pipelines/<p>/infer)",
    )
}

pub fn router(gateway: Arc<Gateway>) -> Router {
    let limit = gateway.options().max_request_bytes;
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(server_ready))
        .route("/v2/pipelines/{p}", get(pipeline_metadata))
        .route("/v2/pipelines/{p}/ready", get(pipeline_ready))
        .route("/v2/pipelines/{p}/infer", post(pipeline_infer))
        .route("/v2/models/{x}", get(model_metadata))
        .route("/v2/models/{x}/ready", get(model_ready))
        .route("/v2/models/{x}/infer", post(model_infer))
        .route("/v2/models/{x}/versions/{v}/infer", post(model_version_infer))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

/// Serves the HTTP front on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(gateway))
        .with_graceful_shutdown(shutdown)
        .await
}
