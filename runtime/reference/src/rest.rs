//! The REST (HTTP/JSON) front of the reference server (Open Inference Protocol, KServe V2;
//! PIPELINES.md §6, §9).
//!
//! Routes: `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2/models/{m}` (metadata),
//! `GET /v2/models/{m}/ready`, `POST /v2/models/{m}/infer` and `GET /metrics`. Errors are JSON
//! `{"error": text}`: 400 for malformed JSON, bad tensors and requests the model cannot take,
//! 404 for a model that is not served.

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use flowc_oip::http::{error_response, json_response};
use flowc_oip::json::{request_from_json, response_to_json};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tonic::Code;

use crate::server::{ReferenceServer, PLATFORM, RECEIVED_TRACEPARENT_HEADER, REFERENCE_MODEL_HEADER};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
