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
//! | `flowc_build_info` (gauge, 1) | version, librdkafka, process (`worker`, `gateway`, `up`, …) |
//!
//! The reference model server has a registry of its own (`flowc_model_requests_total` and
//! `flowc_build_info` with `process="model-server"`); it talks to no broker.
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
    /// 1, labelled with the version, librdkafka's version and which process this is.
    build_info: IntGaugeVec,
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
            build_info: build_info(&r),
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

    /// Names this process in `flowc_build_info` (`worker`, `gateway`, `up`); call once from
    /// `main`.
    pub fn set_process(&self, process: &str) {
        set_build_info(&self.build_info, process);
    }

    /// The names of every metric this registry declares (series with no sample yet included).
    pub fn names() -> &'static [&'static str] {
        &[
            "flowc_records_in_total",
            "flowc_records_out_total",
            "flowc_error_records_total",
            "flowc_records_skipped_total",
            "flowc_record_processing_seconds",
            "flowc_restore_seconds",
            "flowc_store_entries",
            "flowc_consumer_lag",
            "flowc_model_call_seconds",
            "flowc_model_call_failures_total",
            "flowc_gateway_request_seconds",
            "flowc_gateway_requests_total",
            "flowc_gateway_outcomes_total",
            "flowc_gateway_in_flight",
            "flowc_broker_connected",
            "flowc_pipeline_ready",
            "flowc_build_info",
        ]
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# metrics could not be encoded: {e}\n"))
    }
}

/// `flowc_build_info`, registered in `r` with no series yet ([`set_build_info`] adds it).
pub fn build_info(r: &Registry) -> IntGaugeVec {
    gauge(
        r,
        "flowc_build_info",
        "1; the labels say which flowc (version), librdkafka and process this is.",
        &["version", "librdkafka", "process"],
    )
}

/// Registers `flowc_build_info` in `r` (a registry of another part of the process: the
/// reference server's) and sets it for `process`.
pub fn register_build_info(r: &Registry, process: &str) {
    set_build_info(&build_info(r), process);
}

/// Sets `flowc_build_info` for `process` to 1.
pub fn set_build_info(info: &IntGaugeVec, process: &str) {
    let librdkafka = rdkafka::util::get_rdkafka_version().1;
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), librdkafka.as_str(), process])
        .set(1);
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

/// The engine's telemetry in a Kafka node process: model calls into this process's
/// Prometheus metrics, spans to its OTLP export (off unless configured, otlp.rs).
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeTelemetry;

struct ModelCallMetrics {
    seconds: prometheus::Histogram,
    failed: IntCounter,
    unavailable: IntCounter,
}

impl flowc_engine::telemetry::CallMetrics for ModelCallMetrics {
    fn observe(&self, seconds: f64, error: Option<&flowc_oip::ModelCallError>) {
        self.seconds.observe(seconds);
        match error {
            Some(flowc_oip::ModelCallError::Failed(_)) => self.failed.inc(),
            Some(flowc_oip::ModelCallError::Unavailable(_)) => self.unavailable.inc(),
            None => {}
        }
    }
}

impl flowc_engine::telemetry::Telemetry for NodeTelemetry {
    fn model_calls(&self, model: &str) -> std::sync::Arc<dyn flowc_engine::telemetry::CallMetrics> {
        let m = metrics();
        std::sync::Arc::new(ModelCallMetrics {
            seconds: m.model_call_seconds.with_label_values(&[model]),
            failed: m.model_call_failures.with_label_values(&[model, "failed"]),
            unavailable: m.model_call_failures.with_label_values(&[model, "unavailable"]),
        })
    }

    fn spans_enabled(&self) -> bool {
        crate::otlp::enabled()
    }

    fn span(&self, span: flowc_engine::trace::Span) {
        crate::otlp::record(span);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the registry declares, each given one series, gathered by name.
    fn registered() -> std::collections::BTreeSet<String> {
        let m = Metrics::register();
        let step = ["p", "s"];
        m.records_in.with_label_values(&step).inc();
        m.records_out.with_label_values(&step).inc();
        m.error_records.with_label_values(&step).inc();
        m.records_skipped.with_label_values(&["p", "s", "r"]).inc();
        m.processing_seconds.with_label_values(&step).observe(0.1);
        m.restore_seconds.with_label_values(&step).observe(0.1);
        m.store_entries.with_label_values(&["p", "s", "st", "0"]).set(1);
        m.consumer_lag.with_label_values(&["g", "t", "0"]).set(1);
        m.model_call_seconds.with_label_values(&["m"]).observe(0.1);
        m.model_call_failures.with_label_values(&["m", "failed"]).inc();
        m.gateway_request_seconds.with_label_values(&["t", "200"]).observe(0.1);
        m.gateway_outcomes.with_label_values(&["answered"]).inc();
        m.pipeline_ready.with_label_values(&["p"]).set(1);
        m.set_process("test");
        m.registry.gather().iter().map(|f| f.name().to_string()).collect()
    }

    #[test]
    fn the_list_of_names_is_every_registered_metric() {
        let names: std::collections::BTreeSet<String> = Metrics::names().iter().map(|n| n.to_string()).collect();
        assert_eq!(registered(), names);
    }

    #[test]
    fn build_info_names_the_process() {
        let m = Metrics::register();
        m.set_process("worker");
        let text = TextEncoder::new().encode_to_string(&m.registry.gather()).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("flowc_build_info{"))
            .expect("build info");
        assert!(line.contains("process=\"worker\""), "{line}");
        assert!(
            line.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))),
            "{line}"
        );
        assert!(line.ends_with(" 1"), "{line}");
    }

    #[test]
    fn build_info_goes_into_another_registry_of_the_process() {
        // The reference server's registry, as `flowc model-server` and `flowc up` fill it.
        let registry = Registry::new();
        register_build_info(&registry, "model-server");
        let text = TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
        let line = format!(
            "flowc_build_info{{librdkafka=\"{}\",process=\"model-server\",version=\"{}\"}} 1",
            rdkafka::util::get_rdkafka_version().1,
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }

    /// deploy/grafana/flowc.json charts only metrics that exist (the model server's own one
    /// included), and every metric flowc exports has a panel.
    #[test]
    fn the_grafana_dashboard_charts_the_metrics_that_exist() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/flowc.json");
        let text = std::fs::read_to_string(path).expect("the dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let mut exprs = Vec::new();
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                exprs.push(target["expr"].as_str().expect("a PromQL expression").to_string());
            }
        }
        let mut used = std::collections::BTreeSet::new();
        for expr in &exprs {
            let mut rest = expr.as_str();
            while let Some(at) = rest.find("flowc_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(&name)
                    .to_string();
                used.insert(base);
            }
        }
        let mut exported: std::collections::BTreeSet<String> = Metrics::names().iter().map(|n| n.to_string()).collect();
        exported.insert("flowc_model_requests_total".into());
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard charts metrics that do not exist: {unknown:?}"
        );
        let unused: Vec<&String> = exported.difference(&used).collect();
        assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
    }
}
