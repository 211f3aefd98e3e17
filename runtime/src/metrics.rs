//! Prometheus metrics of a flowc process (workers, gateways), in one registry, exposed as text
//! on `GET /metrics` ([`serve`], or the gateway's HTTP port).
//!
//! | metric | labels |
//! |---|---|
//! | `flowc_records_in_total`, `flowc_records_out_total`, `flowc_error_records_total` | pipeline, step |
//! | `flowc_record_processing_seconds` (histogram) | pipeline, step |
//! | `flowc_restore_seconds` (histogram: how long a partition that arrived waited for its stores) | pipeline, step |
//! | `flowc_store_entries` (gauge) | pipeline, step, store, partition |
//! | `flowc_consumer_lag` (gauge) | group, topic, partition |
//! | `flowc_model_call_seconds` (histogram), `flowc_model_call_failures_total` | model (and kind) |
//! | `flowc_gateway_request_seconds` (histogram) | target, status |
//! | `flowc_gateway_requests_total`, `flowc_gateway_outcomes_total`, `flowc_gateway_in_flight` | (outcome) |
//! | `flowc_broker_connected` (gauge: 1 while a broker answers) | |
//! | `flowc_pipeline_ready` (gauge, the gateway's readiness of each pipeline) | pipeline |
//!
//! `step` is the sub-topology (`tfsimple1`, `_output`, `_model-tfsimple1`, …); a model call
//! shared by pipelines counts under the pipeline whose plan runs it.

use std::future::Future;
use std::sync::OnceLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub struct Metrics {
    registry: Registry,
    pub records_in: IntCounterVec,
    pub records_out: IntCounterVec,
    pub error_records: IntCounterVec,
    /// Records a step read and left alone, by reason: `pipeline not deployed` (a record of a
    /// pipeline deleted or never deployed, in a model's shared inputs topic), `no pipeline
    /// header` and `another pipeline's record` (on a topic whose source reads one pipeline's
    /// records), `deadline exceeded`, `version retired`.
    pub records_skipped: IntCounterVec,
    pub processing_seconds: HistogramVec,
    /// How long a partition that came to this worker was paused while its stores restored.
    pub restore_seconds: HistogramVec,
    pub store_entries: IntGaugeVec,
    pub consumer_lag: IntGaugeVec,
    pub model_call_seconds: HistogramVec,
    pub model_call_failures: IntCounterVec,
    pub gateway_request_seconds: HistogramVec,
    /// The gateway's requests by how they ended (`answered`, `error_record`, `timeout`,
    /// `abandoned`: the caller went away, `deleted`: the pipeline was deleted meanwhile) and all taken (`flowc_gateway_requests_total`).
    pub gateway_requests: IntCounter,
    pub gateway_outcomes: IntCounterVec,
    pub gateway_in_flight: IntGauge,
    /// 1 while the process reaches a Kafka broker, 0 while none answers.
    pub broker_connected: IntGauge,
    /// Per pipeline, as the gateway's readiness judges it: 1 ready, 0 not (§10).
    pub pipeline_ready: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()), labels).expect("a valid metric");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics::register();
        // Every outcome is exposed from the start, at 0.
        for how in ["answered", "error_record", "timeout", "abandoned", "deleted"] {
            m.gateway_outcomes.with_label_values(&[how]);
        }
        m
    }

    fn register() -> Metrics {
        let r = Registry::new();
        let step = &["pipeline", "step"];
        Metrics {
            records_in: counter(&r, "flowc_records_in_total", "Records read by a step.", step),
            records_out: counter(
                &r,
                "flowc_records_out_total",
                "Records written by a step (not errors).",
                step,
            ),
            error_records: counter(
                &r,
                "flowc_error_records_total",
                "Error records written by a step.",
                step,
            ),
            records_skipped: counter(
                &r,
                "flowc_records_skipped_total",
                "Records a step read and left alone, by reason.",
                &["pipeline", "step", "reason"],
            ),
            processing_seconds: histogram(
                &r,
                "flowc_record_processing_seconds",
                "Time to process one record (model calls included).",
                step,
            ),
            restore_seconds: histogram(
                &r,
                "flowc_restore_seconds",
                "How long a partition that came to this worker was paused while its stores restored.",
                step,
            ),
            store_entries: gauge(
                &r,
                "flowc_store_entries",
                "Entries in a join, trigger or batch store.",
                &["pipeline", "step", "store", "partition"],
            ),
            consumer_lag: gauge(
                &r,
                "flowc_consumer_lag",
                "Records not yet read, per partition (high watermark minus position).",
                &["group", "topic", "partition"],
            ),
            model_call_seconds: histogram(&r, "flowc_model_call_seconds", "Model call latency.", &["model"]),
            model_call_failures: counter(
                &r,
                "flowc_model_call_failures_total",
                "Model calls that failed (kind: failed = an error record, unavailable = retried later).",
                &["model", "kind"],
            ),
            gateway_request_seconds: histogram(
                &r,
                "flowc_gateway_request_seconds",
                "Synchronous requests through the gateway, by target and status.",
                &["target", "status"],
            ),
            gateway_requests: {
                let c = IntCounter::new("flowc_gateway_requests_total", "Inference requests the gateway took.")
                    .expect("a valid metric");
                r.register(Box::new(c.clone())).expect("registered once");
                c
            },
            gateway_outcomes: counter(
                &r,
                "flowc_gateway_outcomes_total",
                "How the gateway's requests ended: answered, error_record, timeout, abandoned.",
                &["outcome"],
            ),
            gateway_in_flight: {
                let g = IntGauge::new("flowc_gateway_in_flight", "Requests waiting for their answer.")
                    .expect("a valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g
            },
            broker_connected: {
                let g = IntGauge::new(
                    "flowc_broker_connected",
                    "1 while this process reaches a Kafka broker, 0 while none answers.",
                )
                .expect("a valid metric");
                r.register(Box::new(g.clone())).expect("registered once");
                g.set(1);
                g
            },
            pipeline_ready: gauge(
                &r,
                "flowc_pipeline_ready",
                "1 when the gateway finds a pipeline ready (members, runners, models, lag), 0 when not.",
                &["pipeline"],
            ),
            registry: r,
        }
    }

    /// The per-record series of one step, resolved once (a label lookup per record would
    /// hash on the hot path).
    pub fn step(&self, pipeline: &str, step: &str) -> StepMetrics {
        let l = [pipeline, step];
        StepMetrics {
            records_in: self.records_in.with_label_values(&l),
            records_out: self.records_out.with_label_values(&l),
            error_records: self.error_records.with_label_values(&l),
            processing_seconds: self.processing_seconds.with_label_values(&l),
            restore_seconds: self.restore_seconds.with_label_values(&l),
        }
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}

/// A step's records in, out and errors, and its processing time.
#[derive(Clone)]
pub struct StepMetrics {
    pub records_in: IntCounter,
    pub records_out: IntCounter,
    pub error_records: IntCounter,
    pub processing_seconds: Histogram,
    pub restore_seconds: Histogram,
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                metrics().render(),
            )
        }),
    );
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
