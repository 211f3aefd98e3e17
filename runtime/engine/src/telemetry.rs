//! What the engine reports about its work, handed in by whoever runs it: the Kafka node
//! records Prometheus metrics and exports OTLP spans (runtime/src/metrics.rs, otlp.rs); tests
//! and benches record nothing. The engine keeps no process-global of its own.

use std::sync::Arc;

use flowc_oip::ModelCallError;

use crate::trace::Span;

/// The sink of the engine's metrics and spans, given to every operator through
/// [`crate::ops::BuildEnv`].
pub trait Telemetry: Send + Sync {
    /// The metrics of one model's calls, resolved once per operator, not per call.
    fn model_calls(&self, model: &str) -> Arc<dyn CallMetrics>;

    /// Whether spans are recorded at all: building one costs allocations, so callers ask first.
    fn spans_enabled(&self) -> bool {
        false
    }

    /// Records one finished span.
    fn span(&self, span: Span) {
        let _ = span;
    }
}

/// One model's call metrics.
pub trait CallMetrics: Send + Sync {
    /// A call took `seconds` and ended `Ok` or with `error`.
    fn observe(&self, seconds: f64, error: Option<&ModelCallError>);
}

/// Records nothing (tests, benches, the in-memory driver).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn model_calls(&self, _model: &str) -> Arc<dyn CallMetrics> {
        Arc::new(NoTelemetry)
    }
}

impl CallMetrics for NoTelemetry {
    fn observe(&self, _seconds: f64, _error: Option<&ModelCallError>) {}
}
