//! Spans to an OpenTelemetry backend over OTLP/HTTP (protobuf), off unless the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set
//! (`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keep it off). The exporter and its
//! batching are the opentelemetry crates' (`opentelemetry-otlp`, the SDK's
//! `BatchSpanProcessor`, which read the other `OTEL_EXPORTER_OTLP_*` and `OTEL_BSP_*`
//! variables); the HTTP client is the ureq agent the model client already uses, called on
//! the processor's own thread.
//!
//! A span here is recorded after the fact with the ids the `traceparent` headers already
//! carry (trace.rs): the record a hop writes names its span, so the backend joins the
//! gateway's span, every hop's and every model call's into one trace without the SDK's own
//! id generator or context. What each process records:
//!
//! - the gateway: `gateway <target>` (server), from the request to its answer;
//! - every hop a worker writes: `hop <topic>` (producer), from the moment its task began on
//!   the record it read to the write, a child of that record's span;
//! - every model call: `call <model>` (client), a child of the span of the record it answers.
//!
//! Recording costs a queue push when export is on, and a load when it is off.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor};
use opentelemetry_sdk::Resource;

static EXPORT: OnceLock<Option<Export>> = OnceLock::new();

struct Export {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
}

/// Flushes what is queued when the process ends (drop it last in `main`).
#[must_use = "spans queued when the guard drops are flushed; drop it at the end of main"]
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(Some(export)) = EXPORT.get() {
            let _ = export.processor.shutdown_with_timeout(Duration::from_secs(5));
        }
    }
}

/// Whether the environment asks for OTLP export.
fn wanted() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    let off = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v.trim().eq_ignore_ascii_case("none"));
    !off && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// Starts export if the environment asks for it; `service` is the `service.name` unless
/// `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) says otherwise. Call once, early in
/// `main`; later calls change nothing.
pub fn init(service: &str) -> Guard {
    EXPORT.get_or_init(|| {
        if !wanted() {
            return None;
        }
        match start(service) {
            Ok(export) => {
                tracing::info!(service, "exporting spans over OTLP");
                Some(export)
            }
            Err(e) => {
                tracing::warn!(error = %e, "OTLP span export not started");
                None
            }
        }
    });
    Guard(())
}

fn start(service: &str) -> Result<Export, String> {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    if std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|p| p.trim() == "grpc") {
        tracing::warn!("OTEL_EXPORTER_OTLP_PROTOCOL=grpc: flowc exports OTLP over HTTP (protobuf); point the endpoint at the receiver's HTTP port (4318)");
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_http_client(UreqClient(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build()
                .new_agent(),
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let mut processor = BatchSpanProcessor::builder(exporter).build();
    let default_name = std::env::var("OTEL_SERVICE_NAME").map_or(true, |v| v.trim().is_empty());
    let resource = if default_name {
        Resource::builder().with_service_name(service.to_string()).build()
    } else {
        Resource::builder().build()
    };
    processor.set_resource(&resource);
    Ok(Export {
        processor,
        scope: InstrumentationScope::builder("flowc")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    })
}

/// Whether spans are exported (callers skip building attributes when not).
pub fn enabled() -> bool {
    matches!(EXPORT.get(), Some(Some(_)))
}

pub use flowc_engine::trace::{Kind, Span};

/// Queues `span` for export (nothing when export is off).
pub fn record(span: Span) {
    let Some(Some(export)) = EXPORT.get() else {
        return;
    };
    let flags = if span.ids.flags & 1 == 1 {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    export.processor.on_end(SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(span.ids.trace_id.to_be_bytes()),
            SpanId::from_bytes(span.ids.span_id.to_be_bytes()),
            flags,
            false,
            TraceState::default(),
        ),
        parent_span_id: span
            .parent
            .map_or(SpanId::INVALID, |p| SpanId::from_bytes(p.to_be_bytes())),
        parent_span_is_remote: span.remote_parent,
        span_kind: match span.kind {
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
            Kind::Producer => SpanKind::Producer,
        },
        name: Cow::Owned(span.name),
        start_time: span.start,
        end_time: span.end.max(span.start),
        attributes: span.attributes.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: match span.error {
            Some(e) => Status::error(e),
            None => Status::Unset,
        },
        instrumentation_scope: export.scope.clone(),
    });
}

/// The OTLP exporter's HTTP client: a blocking ureq call, made on the batch processor's own
/// thread (which runs the exporter's future to completion there).
#[derive(Debug)]
struct UreqClient(ureq::Agent);

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for UreqClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let response = self.0.run(request.map(|body| body.to_vec()))?;
        let (parts, mut body) = response.into_parts();
        let bytes = body.read_to_vec()?;
        Ok(http::Response::from_parts(parts, bytes::Bytes::from(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        // The test process sets no OTEL_* variables: recording is a no-op.
        if wanted() {
            return;
        }
        let _guard = init("test");
        assert!(!enabled());
        record(Span {
            name: "hop x".into(),
            kind: Kind::Producer,
            ids: flowc_engine::trace::TraceParent::new_trace(),
            parent: None,
            remote_parent: false,
            start: SystemTime::now(),
            end: SystemTime::now(),
            attributes: vec![],
            error: None,
        });
    }
}
