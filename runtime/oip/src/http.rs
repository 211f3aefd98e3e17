//! The JSON answers of an Open Inference Protocol REST server (the reference server's and the
//! pipeline gateway's): a JSON body, and errors as `{"error": text}`. Feature `rest-server`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// `body` as JSON with `status`.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(body).unwrap_or_default(),
    )
        .into_response()
}

/// An OIP error answer: `{"error": text}` with `status`.
pub fn error_response(status: StatusCode, text: impl Into<String>) -> Response {
    json_response(status, &json!({"error": text.into()}))
}
