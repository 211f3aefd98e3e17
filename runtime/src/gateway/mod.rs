//! The pipeline gateway (PIPELINES.md §7): synchronous Open Inference Protocol requests over
//! HTTP ([`http`]) and gRPC ([`grpc`]) become records on a pipeline's (or a model's) inputs
//! topic, and the first record with the same key on its outputs topic answers them.
//!
//! Replicas scale by partition, as Seldon's do: every replica joins one consumer group over
//! the outputs topics, and a request's key `<partition>.<pipeline>.<id>` names a partition this
//! replica holds, so the answer comes back to it (every hop keeps the key's partition, §4.2).
//! What is deployed comes from the deployment log, like the workers.
//!
//! The core is [`Gateway::infer`]: routing, key and partition, the write, the wait (bounded by
//! the request timeout, ended early when the caller goes away, since dropping the future drops
//! its [`Pending`] entry) and the answer or a [`GatewayError`] that each protocol maps to its
//! status code.

pub mod grpc;
pub mod http;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use flowc_plan::Side;
use flowc_plan::TopicNames;
use prost::Message as _;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{oneshot, watch};
use tracing::Instrument as _;

use crate::kafka::control::{ControlReader, Deployments};
use crate::kafka::placement::{placements, PlacedModels};
use crate::kafka::{KafkaConfig, KafkaError};
use crate::operator::ModelBackend;
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::record::{gateway_key, header as h};
use crate::trace::TraceParent;

/// How often the gateway reads the pipelines' health (`flowc status`'s problems).
const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// Seldon's pipeline gateway ports.
pub const DEFAULT_HTTP_PORT: u16 = 9010;
pub const DEFAULT_GRPC_PORT: u16 = 9011;

#[derive(Clone)]
pub struct GatewayOptions {
    pub prefix: String,
    /// The namespace whose pipelines and models this gateway serves.
    pub namespace: String,
    /// The consumer group every replica of this gateway joins on the outputs topics.
    pub group: String,
    /// How long a request waits for its answer.
    pub request_timeout: Duration,
    /// Largest request body (HTTP) or message (gRPC) taken, in bytes.
    pub max_request_bytes: usize,
    /// Asks model servers whether models are ready (`/v2/pipelines/<p>/ready`); the placement
    /// part follows the deployment log.
    pub models: Option<Arc<PlacedModels>>,
}

impl GatewayOptions {
    pub fn new(prefix: impl Into<String>, namespace: impl Into<String>) -> GatewayOptions {
        let (prefix, namespace) = (prefix.into(), namespace.into());
        GatewayOptions {
            group: format!("{prefix}.{namespace}.flowc.gateway"),
            prefix,
            namespace,
            request_timeout: Duration::from_secs(30),
            max_request_bytes: 4 * 1024 * 1024,
            models: None,
        }
    }
}

/// What a request is for, from the `Seldon-Model` header (or the path): `<p>.pipeline` is a
/// pipeline, `<m>` or `<m>.model` a single model called through its topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Pipeline(String),
    Model(String),
}

impl Target {
    pub fn parse(value: &str) -> Target {
        let value = value.trim();
        if let Some(p) = value.strip_suffix(".pipeline") {
            Target::Pipeline(p.to_string())
        } else {
            Target::Model(value.strip_suffix(".model").unwrap_or(value).to_string())
        }
    }

    /// Seldon's routing: `seldon-internal-model` wins over `seldon-model`; else the path's name.
    pub fn route(internal: Option<&str>, seldon_model: Option<&str>, path: Option<Target>) -> Option<Target> {
        let header = internal
            .filter(|v| !v.trim().is_empty())
            .or(seldon_model.filter(|v| !v.trim().is_empty()));
        header.map(Target::parse).or(path)
    }

    pub fn name(&self) -> &str {
        match self {
            Target::Pipeline(n) | Target::Model(n) => n,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Pipeline(p) => write!(f, "pipeline {p}"),
            Target::Model(m) => write!(f, "model {m}"),
        }
    }
}

/// A request's answer: the response (its `model_name` set to the target's name) and the
/// headers to return: `x-request-id` (the key) and the output record's other `x-*` headers.
#[derive(Debug)]
pub struct Answer {
    pub response: ModelInferResponse,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no Seldon-Model header: say which pipeline (`Seldon-Model: <p>.pipeline`) or model (`Seldon-Model: <m>`) to call, or use /v2/pipelines/<p>/infer")]
    NoTarget,
    #[error("{what} {name} is not deployed in namespace {namespace}{}", hint.as_ref().map(|h| format!(" (did you mean {h}?)")).unwrap_or_default())]
    NotFound {
        what: &'static str,
        name: String,
        namespace: String,
        hint: Option<String>,
    },
    #[error("pipeline {0} has no `output` section, so it only runs asynchronously: write to its inputs topic and read its outputs topic instead")]
    AsyncOnly(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request of {size} bytes is over the gateway's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The record the request becomes is over what Kafka takes: the topic's
    /// `max.message.bytes`, or the client's `message.max.bytes` when that is smaller.
    #[error("request of {size} bytes (as a Kafka record on {topic}) is over the limit of {limit} bytes {whose}; the gateway's own limit is {gateway_limit} bytes")]
    TooLargeForKafka {
        size: usize,
        limit: usize,
        topic: String,
        whose: &'static str,
        gateway_limit: usize,
    },
    #[error("request id {0} is already waiting for its answer; use a fresh x-request-id")]
    Duplicate(String),
    /// An error record answered the request: `"<model> : <text>"`.
    #[error("{source_name} : {text}")]
    Failed {
        source_name: String,
        text: String,
        key: String,
    },
    #[error("no answer for request {key} within the gateway's request timeout of {}", flowc_oip::backend::seconds(*waited))]
    Timeout { key: String, waited: Duration },
    #[error("{0}")]
    Unavailable(String),
    #[error("{what} {name} was deleted while request {key} waited for its answer")]
    Deleted {
        what: &'static str,
        name: String,
        key: String,
    },
    #[error("{0}")]
    Internal(String),
}

impl GatewayError {
    /// HTTP status code.
    pub fn http_status(&self) -> u16 {
        match self {
            GatewayError::NoTarget
            | GatewayError::AsyncOnly(_)
            | GatewayError::BadRequest(_)
            | GatewayError::Failed { .. } => 400,
            GatewayError::NotFound { .. } | GatewayError::Deleted { .. } => 404,
            GatewayError::Duplicate(_) => 409,
            GatewayError::TooLarge { .. } | GatewayError::TooLargeForKafka { .. } => 413,
            GatewayError::Timeout { .. } => 504,
            GatewayError::Unavailable(_) => 503,
            GatewayError::Internal(_) => 500,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            GatewayError::NoTarget | GatewayError::BadRequest(_) => Code::InvalidArgument,
            GatewayError::AsyncOnly(_) => Code::FailedPrecondition,
            GatewayError::Failed { .. } => Code::Unknown,
            GatewayError::NotFound { .. } | GatewayError::Deleted { .. } => Code::NotFound,
            GatewayError::Duplicate(_) => Code::AlreadyExists,
            // What tonic answers for a message over its decoding limit.
            GatewayError::TooLarge { .. } | GatewayError::TooLargeForKafka { .. } => Code::OutOfRange,
            GatewayError::Timeout { .. } => Code::DeadlineExceeded,
            GatewayError::Unavailable(_) => Code::Unavailable,
            GatewayError::Internal(_) => Code::Internal,
        }
    }

    /// The request's key, when it got as far as having one.
    pub fn key(&self) -> Option<&str> {
        match self {
            GatewayError::Failed { key, .. }
            | GatewayError::Timeout { key, .. }
            | GatewayError::Deleted { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What arrived for a waiting request.
enum Reply {
    Response(ModelInferResponse, Vec<(String, String)>),
    Error {
        source_name: String,
        text: String,
    },
    /// The pipeline or model was deleted (or moved out of this namespace) while the request
    /// waited: no answer will come.
    Gone,
}

struct Waiter {
    /// Topics whose record with the key answers (the outputs topic; for a model, the errors
    /// topic too).
    topics: [String; 2],
    /// The partition of those topics the answer comes on (the key's).
    partition: i32,
    tx: oneshot::Sender<Reply>,
}

/// A deployed pipeline or model as the gateway needs it.
#[derive(Clone, Debug)]
struct Route {
    inputs: String,
    outputs: String,
    synchronous: bool,
    /// Models whose readiness makes the route ready.
    models: Vec<String>,
    /// The pipeline version a request enters under (`x-pipeline-version`; 0 for a model).
    version: u64,
}

#[derive(Default)]
struct Known {
    pipelines: BTreeMap<String, Route>,
    models: BTreeMap<String, Route>,
    /// Partition count per topic (from the broker's metadata).
    partitions: BTreeMap<String, i32>,
    /// The largest record each inputs topic takes (`max.message.bytes`, where described).
    record_limits: BTreeMap<String, usize>,
}

/// State shared by the HTTP and gRPC fronts and the outputs consumer's thread.
pub struct Gateway {
    options: GatewayOptions,
    config: KafkaConfig,
    producer: FutureProducer,
    /// The producer's `message.max.bytes`.
    max_message_bytes: usize,
    pending: Mutex<HashMap<String, Waiter>>,
    known: RwLock<Known>,
    /// Partitions this replica holds, per outputs topic.
    held: RwLock<BTreeMap<String, Vec<i32>>>,
    /// Bumped on every assignment change, so a request can wait for its topic's partitions.
    held_version: watch::Sender<u64>,
    /// Outputs topics this replica has held partitions of: losing them is a rebalance (a
    /// broker failing over, a replica joining) and they come back.
    ever_held: RwLock<BTreeSet<String>>,
    /// The consumer holds its assignment for the current subscription.
    assigned: AtomicBool,
    /// Partitions taken away in a rebalance while requests of this replica waited on them, and
    /// the offset the outputs consumer had reached: the drain reader follows them until those
    /// requests are answered or time out ([`Gateway::run_drain`]).
    handover: Mutex<Vec<(String, i32, i64)>>,
    /// Whether the outputs consumer reaches a broker; while none answers, requests are refused
    /// at once (503) instead of waiting out the producer's timeout.
    health: crate::kafka::broker::BrokerHealth,
    /// When the last check that the broker is really gone ran.
    last_probe: Mutex<Option<Instant>>,
    /// Stopping gracefully: in-flight requests are answered, readiness says no.
    draining: AtomicBool,
    /// What `flowc status` would say is wrong with each pipeline's data plane (no live member,
    /// a runner restarting or paused, lag growing), refreshed every [`HEALTH_EVERY`].
    problems: RwLock<BTreeMap<String, Vec<String>>>,
    /// Round robin over the partitions held.
    next_partition: AtomicU64,
    /// Sequence part of generated request ids.
    next_id: AtomicU64,
    stop: AtomicBool,
}

fn outcome(how: &str) {
    crate::metrics::metrics()
        .gateway_outcomes
        .with_label_values(&[how])
        .inc();
}

/// Removes a request's pending entry however its wait ends (answered, timed out, or the caller
/// went away and the future was dropped).
struct Pending<'a> {
    gateway: &'a Gateway,
    key: String,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Ok(mut p) = self.gateway.pending.lock() {
            p.remove(&self.key);
        }
        if !self.done {
            outcome("abandoned");
            tracing::debug!(key = %self.key, "caller went away before the answer");
        }
    }
}

impl Gateway {
    /// Connects to the broker (producer only); [`Gateway::run_consumer`] does the rest.
    pub fn new(config: &KafkaConfig, options: GatewayOptions) -> Result<Arc<Gateway>, KafkaError> {
        // The inputs topics' own limits decide (checked before writing), up to twice the
        // gateway's request limit (a record's protobuf may be larger than its JSON).
        let (mut producer_config, max_message_bytes) =
            config.producer_for_records_of(options.max_request_bytes.saturating_mul(2));
        // An answer is awaited by a caller: hand records over at once.
        producer_config.set("linger.ms", "0");
        let producer: FutureProducer = producer_config.create()?;
        let (held_version, _) = watch::channel(0);
        Ok(Arc::new(Gateway {
            options,
            config: config.clone(),
            producer,
            max_message_bytes,
            pending: Mutex::new(HashMap::new()),
            known: RwLock::new(Known::default()),
            held: RwLock::new(BTreeMap::new()),
            held_version,
            ever_held: RwLock::new(BTreeSet::new()),
            assigned: AtomicBool::new(false),
            handover: Mutex::new(Vec::new()),
            health: crate::kafka::broker::BrokerHealth::default(),
            last_probe: Mutex::new(None),
            draining: AtomicBool::new(false),
            problems: RwLock::new(BTreeMap::new()),
            next_partition: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        }))
    }

    pub fn options(&self) -> &GatewayOptions {
        &self.options
    }

    /// Ready once the outputs consumer holds its partitions (and the deployment log was read),
    /// while a broker answers and the gateway is not stopping.
    pub fn is_ready(&self) -> bool {
        self.not_ready().is_none()
    }

    /// Why the gateway is not ready, if it is not.
    pub fn not_ready(&self) -> Option<String> {
        if self.draining.load(Ordering::Acquire) {
            return Some("the gateway is stopping: it answers the requests it holds and takes no new ones".into());
        }
        if let Some(down) = self.health.down() {
            return Some(self.broker_down_text(&down));
        }
        if !self.assigned.load(Ordering::Acquire) {
            return Some("the gateway's consumer of the outputs topics does not hold its partitions yet".into());
        }
        None
    }

    fn broker_down_text(&self, down: &crate::kafka::broker::BrokerDown) -> String {
        format!(
            "no Kafka broker answers at {} (for {:.1} s: {})",
            self.config.bootstrap,
            down.since.elapsed().as_secs_f64(),
            down.reason
        )
    }

    /// Refuses at once while no broker answers (librdkafka says all brokers are down, and a
    /// metadata request, at most one a second, confirms it): a request written now would wait
    /// out the producer's timeout and then fail anyway.
    async fn check_broker(&self) -> Result<(), GatewayError> {
        let Some(down) = self.health.down() else {
            return Ok(());
        };
        let probe = {
            let mut last = self.last_probe.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if probe {
            let producer = self.producer.clone();
            let reached = tokio::task::spawn_blocking(move || {
                producer
                    .client()
                    .fetch_metadata(None, Duration::from_millis(500))
                    .is_ok()
            })
            .await
            .unwrap_or(false);
            if reached {
                self.health.set_up(true, "");
                return Ok(());
            }
        }
        outcome("broker_down");
        Err(GatewayError::Unavailable(format!(
            "{}; the request was not written, retry it",
            self.broker_down_text(&down)
        )))
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Starts a graceful stop: readiness says no, requests already taken are answered.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn in_flight(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn not_found(&self, target: &Target) -> GatewayError {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let (what, names): (&str, Vec<&str>) = match target {
            Target::Pipeline(_) => ("pipeline", known.pipelines.keys().map(String::as_str).collect()),
            Target::Model(_) => ("model", known.models.keys().map(String::as_str).collect()),
        };
        GatewayError::NotFound {
            what,
            name: target.name().to_string(),
            namespace: self.options.namespace.clone(),
            hint: flowc_plan::did_you_mean(target.name(), names).map(str::to_string),
        }
    }

    fn route(&self, target: &Target) -> Result<Route, GatewayError> {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        let route = match target {
            Target::Pipeline(p) => known.pipelines.get(p),
            Target::Model(m) => known.models.get(m),
        };
        match route {
            Some(r) => Ok(r.clone()),
            None => {
                drop(known);
                Err(self.not_found(target))
            }
        }
    }

    /// Whether `target` is deployed and every model it runs is ready: `Ok(false)` names the
    /// first model that is not.
    pub async fn ready(self: &Arc<Self>, target: &Target) -> Result<Result<(), String>, GatewayError> {
        let route = self.route(target)?;
        if let Some(down) = self.health.down() {
            return Ok(Err(self.broker_down_text(&down)));
        }
        if let Target::Pipeline(p) = target {
            let problems = self
                .problems
                .read()
                .ok()
                .and_then(|all| all.get(p).cloned())
                .unwrap_or_default();
            if !problems.is_empty() {
                return Ok(Err(problems.join("; ")));
            }
        }
        let held = self.partitions_held(&route.outputs);
        if held.is_empty() {
            return Ok(Err(format!(
                "this gateway holds no partition of {} (yet)",
                route.outputs
            )));
        }
        let Some(models) = self.options.models.clone() else {
            return Ok(Ok(()));
        };
        let names = route.models.clone();
        let answer = tokio::task::spawn_blocking(move || {
            for m in &names {
                match models.ready(m) {
                    Ok(true) => {}
                    Ok(false) => return Err(format!("model {m} is not ready")),
                    Err(e) => return Err(format!("model {m}: {e}")),
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
        Ok(answer)
    }

    fn partitions_held(&self, topic: &str) -> Vec<i32> {
        self.held
            .read()
            .ok()
            .and_then(|h| h.get(topic).cloned())
            .unwrap_or_default()
    }

    /// A partition of `topic` this replica holds, waiting (bounded) while it joins the group.
    async fn partition_for(&self, topic: &str, deadline: Instant) -> Result<i32, GatewayError> {
        let mut changes = self.held_version.subscribe();
        loop {
            let held = self.partitions_held(topic);
            if !held.is_empty() {
                let i = self.next_partition.fetch_add(1, Ordering::Relaxed) as usize % held.len();
                return Ok(held[i]);
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() || tokio::time::timeout(wait, changes.changed()).await.is_err() {
                return Err(GatewayError::Unavailable(format!(
                    "this gateway replica holds no partition of {topic}: it is still joining its consumer group, or there are more gateway replicas than partitions"
                )));
            }
        }
    }

    /// A fresh request id: 20 characters that carry the time the request entered, unique per
    /// gateway process and time (`request_id`).
    fn new_request_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        crate::request_id::new(crate::kafka::now_ms(), std::process::id(), n)
    }

    /// One synchronous call: writes `request` for `target` and waits for the answer.
    /// `request_id` is the caller's `x-request-id` (a fresh id otherwise); `pass_headers` are
    /// the caller's `x-*` headers, carried on the record, and its `traceparent`, whose trace
    /// the request joins (else it starts one); the answer's `traceparent` is the gateway's span.
    pub async fn infer(
        &self,
        target: &Target,
        request: ModelInferRequest,
        request_id: Option<&str>,
        pass_headers: &[(String, String)],
    ) -> Result<Answer, GatewayError> {
        let started = Instant::now();
        let began = std::time::SystemTime::now();
        // One trace per request: the caller's, continued, or a new one (§4.3). The gateway's
        // span is the parent of the first hop's.
        let caller = pass_headers
            .iter()
            .find(|(k, _)| k == crate::record::header::TRACEPARENT)
            .and_then(|(_, v)| TraceParent::parse(v));
        let trace = caller.map_or_else(TraceParent::new_trace, |caller| caller.child());
        let answer = self
            .infer_untimed(target, request, request_id, pass_headers, trace)
            .await;
        let status = match &answer {
            Ok(_) => 200,
            Err(e) => e.http_status(),
        };
        let label = match target {
            Target::Pipeline(p) => format!("{p}.pipeline"),
            Target::Model(m) => format!("{m}.model"),
        };
        if crate::otlp::enabled() {
            let mut attributes = vec![
                ("flowc.target", label.clone()),
                ("http.response.status_code", status.to_string()),
            ];
            if let Ok(a) = &answer {
                if let Some((_, key)) = a.headers.iter().find(|(k, _)| k == crate::record::header::REQUEST_ID) {
                    attributes.push(("flowc.request_key", key.clone()));
                }
            }
            crate::otlp::record(crate::otlp::Span {
                name: format!("gateway {label}"),
                kind: crate::otlp::Kind::Server,
                ids: trace,
                parent: caller.map(|c| c.span_id),
                remote_parent: true,
                start: began,
                end: std::time::SystemTime::now(),
                attributes,
                error: answer.as_ref().err().map(ToString::to_string),
            });
        }
        crate::metrics::metrics()
            .gateway_request_seconds
            .with_label_values(&[label.as_str(), &status.to_string()])
            .observe(started.elapsed().as_secs_f64());
        answer
    }

    async fn infer_untimed(
        &self,
        target: &Target,
        mut request: ModelInferRequest,
        request_id: Option<&str>,
        pass_headers: &[(String, String)],
        trace: TraceParent,
    ) -> Result<Answer, GatewayError> {
        crate::metrics::metrics().gateway_requests.inc();
        let started = Instant::now();
        let deadline = started + self.options.request_timeout;
        let route = self.route(target)?;
        if let Target::Pipeline(p) = target {
            if !route.synchronous {
                return Err(GatewayError::AsyncOnly(p.clone()));
            }
        }
        self.check_broker().await?;
        let id = match request_id.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => id.to_string(),
            None => self.new_request_id(),
        };
        // A replica that held partitions of the outputs topic and lost them in a rebalance gets
        // them back: the request waits for that within its timeout, and one that runs out
        // gets 504 like any request not answered in time. A replica that never held any (still
        // joining, or more replicas than partitions) says so sooner, with 503.
        let rejoining = self
            .ever_held
            .read()
            .map(|t| t.contains(&route.outputs))
            .unwrap_or(false);
        let wait_until = if rejoining {
            deadline
        } else {
            deadline.min(started + Duration::from_secs(10))
        };
        let partition = match self.partition_for(&route.outputs, wait_until).await {
            Ok(partition) => partition,
            Err(_) if rejoining => {
                outcome("timeout");
                return Err(GatewayError::Timeout {
                    key: id,
                    waited: self.options.request_timeout,
                });
            }
            Err(e) => return Err(e),
        };
        let key = gateway_key(partition, target.name(), &id);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().map_err(|e| GatewayError::Internal(e.to_string()))?;
            if pending.contains_key(&key) {
                return Err(GatewayError::Duplicate(id));
            }
            let errors = match target {
                Target::Model(_) => TopicNames::new(&self.options.prefix, &self.options.namespace).errors(),
                Target::Pipeline(_) => route.outputs.clone(),
            };
            pending.insert(
                key.clone(),
                Waiter {
                    topics: [route.outputs.clone(), errors],
                    partition,
                    tx,
                },
            );
        }
        let mut guard = Pending {
            gateway: self,
            key: key.clone(),
            done: false,
        };
        if request.id.is_empty() {
            request.id = id.clone();
        }
        let inputs_partitions = self
            .known
            .read()
            .ok()
            .and_then(|k| k.partitions.get(&route.inputs).copied())
            .unwrap_or(partition + 1);
        let mut headers = OwnedHeaders::new();
        let version = route.version.to_string();
        if let Target::Pipeline(p) = target {
            headers = headers.insert(Header {
                key: h::PIPELINE,
                value: Some(p.as_str()),
            });
            // The request is processed end to end by the version deployed now (§4.3).
            headers = headers.insert(Header {
                key: h::PIPELINE_VERSION,
                value: Some(version.as_str()),
            });
        }
        headers = headers.insert(Header {
            key: h::REQUEST_ID,
            value: Some(id.as_str()),
        });
        // Nobody waits for the answer after this: steps and model calls skip the work (§10).
        let deadline_ms = (crate::kafka::now_ms()
            + deadline.saturating_duration_since(Instant::now()).as_millis() as i64)
            .to_string();
        headers = headers.insert(Header {
            key: h::DEADLINE,
            value: Some(deadline_ms.as_str()),
        });
        let traceparent = trace.to_string();
        headers = headers.insert(Header {
            key: h::TRACEPARENT,
            value: Some(traceparent.as_str()),
        });
        for (k, v) in pass_headers {
            if k.starts_with("x-") && k != h::REQUEST_ID {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                });
            }
        }
        let value = request.encode_to_vec();
        let topic_limit = self
            .known
            .read()
            .ok()
            .and_then(|k| k.record_limits.get(&route.inputs).copied());
        let (limit, whose) = match topic_limit {
            Some(t) if t <= self.max_message_bytes => (t, "that the topic takes (its max.message.bytes)"),
            _ => (
                self.max_message_bytes,
                "of the gateway's Kafka producer (message.max.bytes)",
            ),
        };
        let size = key.len()
            + value.len()
            + (0..headers.count())
                .map(|i| {
                    let h = headers.get(i);
                    h.key.len() + h.value.map_or(0, <[u8]>::len)
                })
                .sum::<usize>()
            + crate::record::RECORD_OVERHEAD_BYTES;
        if size > limit {
            guard.done = true;
            return Err(GatewayError::TooLargeForKafka {
                size,
                limit,
                topic: route.inputs.clone(),
                whose,
                gateway_limit: self.options.max_request_bytes,
            });
        }
        let record = FutureRecord::to(&route.inputs)
            .key(&key)
            .payload(&value)
            .partition(partition.min(inputs_partitions - 1).max(0))
            .headers(headers);
        let wait = deadline.saturating_duration_since(Instant::now());
        if let Err((e, _)) = self.producer.send(record, Timeout::After(wait)).await {
            guard.done = true;
            return Err(match e.rdkafka_error_code() {
                // A limit below the one checked above (the broker's own message.max.bytes).
                Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge) => GatewayError::TooLargeForKafka {
                    size,
                    limit,
                    topic: route.inputs.clone(),
                    whose: "or a smaller one of the broker (it refused the record as too large)",
                    gateway_limit: self.options.max_request_bytes,
                },
                _ => GatewayError::Unavailable(format!("cannot write the request to {}: {e}", route.inputs)),
            });
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let span =
            tracing::debug_span!("gateway request", target = %target, request = %key, traceparent = %traceparent);
        let reply = tokio::time::timeout(wait, rx).instrument(span).await;
        guard.done = true;
        match reply {
            Ok(Ok(Reply::Response(mut response, record_headers))) => {
                outcome("answered");
                response.model_name = target.name().to_string();
                let mut headers = vec![
                    (h::REQUEST_ID.to_string(), key.clone()),
                    (h::TRACEPARENT.to_string(), traceparent),
                ];
                headers.extend(
                    record_headers
                        .into_iter()
                        .filter(|(k, _)| k.starts_with("x-") && k != h::REQUEST_ID),
                );
                Ok(Answer { response, headers })
            }
            // The deadline passed on the way: what the caller gets at its timeout (a record
            // can arrive just before the gateway's own timer fires).
            Ok(Ok(Reply::Error { text, .. })) if crate::record::is_deadline_text(&text) => {
                outcome("timeout");
                Err(GatewayError::Timeout {
                    key,
                    waited: self.options.request_timeout,
                })
            }
            Ok(Ok(Reply::Error { source_name, text })) => {
                outcome("error_record");
                Err(GatewayError::Failed { source_name, text, key })
            }
            Ok(Ok(Reply::Gone)) => {
                outcome("deleted");
                Err(GatewayError::Deleted {
                    what: match target {
                        Target::Pipeline(_) => "pipeline",
                        Target::Model(_) => "model",
                    },
                    name: target.name().to_string(),
                    key,
                })
            }
            Ok(Err(_)) => Err(GatewayError::Internal("the gateway is shutting down".into())),
            Err(_) => {
                outcome("timeout");
                Err(GatewayError::Timeout {
                    key,
                    waited: self.options.request_timeout,
                })
            }
        }
    }

    /// Names of the deployed pipelines and models (for metadata and errors).
    pub fn deployed(&self) -> (Vec<String>, Vec<String>) {
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        (
            known.pipelines.keys().cloned().collect(),
            known.models.keys().cloned().collect(),
        )
    }

    /// Whether `target` is deployed (for metadata requests).
    pub fn exists(&self, target: &Target) -> Result<(), GatewayError> {
        self.route(target).map(|_| ())
    }

    // -------------------------------------------------------------- the outputs consumer

    /// Follows the deployment log and consumes the outputs topics, answering waiting requests,
    /// until [`Gateway::stop`]. Runs on its own thread.
    pub fn run_consumer(self: &Arc<Self>) -> Result<(), KafkaError> {
        let mut control = ControlReader::open(&self.config, &self.options.prefix)?;
        let context = OutputsContext {
            gateway: Arc::downgrade(self),
            timeout: self.config.timeout,
            assigned_at: Mutex::new(BTreeMap::new()),
        };
        // The classic protocol: `OutputsContext::rebalance` takes and gives up the whole
        // assignment at once (an eager rebalance, which the drain reader covers), while the
        // consumer protocol wants incremental calls.
        let consumer: BaseConsumer<OutputsContext> = self
            .config
            .classic_consumer(&self.options.group)
            // Offsets only say where to resume after a rebalance; answers are idempotent.
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "true")
            .set("auto.commit.interval.ms", "1000")
            .set("auto.offset.reset", "latest")
            .set(
                "statistics.interval.ms",
                crate::kafka::broker::BrokerHealth::STATS_INTERVAL_MS.to_string(),
            )
            .create_with_context(context)?;
        let drain: BaseConsumer = self.config.reader().create()?;
        std::thread::scope(|scope| {
            let drain = std::thread::Builder::new()
                .name("flowc-gateway-drain".into())
                .spawn_scoped(scope, || self.run_drain(&drain));
            if let Err(e) = &drain {
                tracing::error!(error = %e, "cannot start the gateway's drain reader");
            }
            let health = std::thread::Builder::new()
                .name("flowc-gateway-health".into())
                .spawn_scoped(scope, || self.run_health());
            if let Err(e) = &health {
                tracing::error!(error = %e, "cannot start the gateway's health checks");
            }
            self.run_outputs(&mut control, &consumer)
        })
    }

    fn run_outputs(
        &self,
        control: &mut ControlReader,
        consumer: &BaseConsumer<OutputsContext>,
    ) -> Result<(), KafkaError> {
        let mut subscribed: BTreeSet<String> = BTreeSet::new();
        let mut dirty = true;
        let mut last_control = Instant::now();
        tracing::info!(group = %self.options.group, "gateway consumer started");
        while !self.stop.load(Ordering::Relaxed) {
            if dirty {
                let topics = self.refresh(&control.deployments, consumer);
                if topics != subscribed {
                    let list: Vec<&str> = topics.iter().map(String::as_str).collect();
                    self.assigned.store(false, Ordering::Release);
                    if list.is_empty() {
                        consumer.unsubscribe();
                        self.set_held(BTreeMap::new());
                        self.assigned.store(true, Ordering::Release);
                    } else {
                        consumer.subscribe(&list)?;
                    }
                    tracing::info!(topics = ?list, "gateway consumes");
                    subscribed = topics;
                }
                dirty = false;
            }
            if let Some(m) = consumer.poll(Duration::from_millis(50)) {
                match m {
                    Ok(m) => {
                        if self.health.down().is_some() {
                            self.health.set_up(true, "");
                        }
                        self.deliver(&m)
                    }
                    Err(e) => tracing::warn!(error = %e, "gateway consumer"),
                }
            }
            if last_control.elapsed() > Duration::from_millis(250) {
                last_control = Instant::now();
                match control.poll(Duration::ZERO) {
                    Ok(changed) => dirty |= changed,
                    Err(e) => tracing::warn!(error = %e, "reading the deployment log failed; retrying"),
                }
            }
        }
        // Wake every waiting request: the gateway is going away.
        if let Ok(mut p) = self.pending.lock() {
            p.clear();
        }
        consumer.unsubscribe();
        Ok(())
    }

    /// Every [`HEALTH_EVERY`]: what is wrong with each pipeline of this namespace (as
    /// `flowc status` says it), for readiness (424 with the cause) and the
    /// `flowc_pipeline_ready` gauge.
    fn run_health(&self) {
        let mut last = None::<Instant>;
        while !self.stop.load(Ordering::Relaxed) {
            if last.is_some_and(|t| t.elapsed() < HEALTH_EVERY) {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            last = Some(Instant::now());
            if self.health.down().is_some() {
                continue;
            }
            let pipelines: Vec<String> = self
                .known
                .read()
                .map(|k| k.pipelines.keys().cloned().collect())
                .unwrap_or_default();
            if pipelines.is_empty() {
                continue;
            }
            let statuses = match crate::kafka::deploy::status(&self.config, &self.options.prefix) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "pipeline health not read");
                    continue;
                }
            };
            let mut problems = BTreeMap::new();
            for p in statuses.into_iter().filter(|p| pipelines.contains(&p.name)) {
                problems.insert(p.name.clone(), p.problems());
            }
            let gauge = &crate::metrics::metrics().pipeline_ready;
            for p in &pipelines {
                let ready = problems.get(p).is_some_and(Vec::is_empty) && self.models_ready(p);
                gauge.with_label_values(&[p.as_str()]).set(i64::from(ready));
            }
            if let Ok(mut all) = self.problems.write() {
                *all = problems;
            }
        }
    }

    /// Whether every model `pipeline` runs says it is ready (true when no model server is
    /// known to ask).
    fn models_ready(&self, pipeline: &str) -> bool {
        let Some(models) = &self.options.models else {
            return true;
        };
        let names = self
            .known
            .read()
            .ok()
            .and_then(|k| k.pipelines.get(pipeline).map(|r| r.models.clone()))
            .unwrap_or_default();
        names.iter().all(|m| models.ready(m).unwrap_or(false))
    }

    /// Whether a request of this replica waits for an answer on `topic`'s `partition`.
    fn waits_on(&self, topic: &str, partition: i32) -> bool {
        self.pending.lock().is_ok_and(|p| {
            p.values().any(|w| {
                // The errors topic may have another partition count: any of its partitions.
                w.topics.iter().any(|t| t == topic) && (w.partition == partition || w.topics[0] != topic)
            })
        })
    }

    /// The drain reader: a rebalance takes partitions of the outputs topics away from this
    /// replica while its callers wait for answers that will be written there, and another
    /// replica (which has no waiter for them) now consumes them. This reader follows such
    /// partitions outside the group, from where the outputs consumer stopped, and answers its
    /// callers until none waits on the partition any more (answered or timed out) or the
    /// outputs consumer holds it again. Nothing is re-published and no answer is lost.
    fn run_drain(&self, reader: &BaseConsumer) {
        let mut following: BTreeMap<(String, i32), i64> = BTreeMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            let mut changed = false;
            let added: Vec<(String, i32, i64)> = self
                .handover
                .lock()
                .map(|mut h| std::mem::take(&mut *h))
                .unwrap_or_default();
            if !following.is_empty() || !added.is_empty() {
                // Where the reader is now, so a reassignment resumes there.
                if let Ok(at) = reader.position() {
                    for e in at.elements() {
                        if let (Offset::Offset(o), Some(from)) =
                            (e.offset(), following.get_mut(&(e.topic().to_string(), e.partition())))
                        {
                            *from = o;
                        }
                    }
                }
            }
            for (topic, partition, from) in added {
                tracing::info!(
                    topic,
                    partition,
                    from,
                    "gateway: following a partition it lost until its requests are answered"
                );
                following.insert((topic, partition), from);
                changed = true;
            }
            let held = self.held.read().map(|h| h.clone()).unwrap_or_default();
            following.retain(|(topic, partition), _| {
                let keep =
                    self.waits_on(topic, *partition) && !held.get(topic).is_some_and(|ps| ps.contains(partition));
                changed |= !keep;
                keep
            });
            if changed {
                let mut tpl = TopicPartitionList::new();
                for ((topic, partition), from) in &following {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*from));
                }
                if let Err(e) = reader.assign(&tpl) {
                    tracing::warn!(error = %e, "gateway drain reader: cannot assign");
                }
            }
            if following.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match reader.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => self.deliver(&m),
                Some(Err(e)) => tracing::debug!(error = %e, "gateway drain reader"),
                None => {}
            }
        }
    }

    /// Rebuilds the routes from the deployment log; returns the topics to consume.
    fn refresh(&self, deployments: &Deployments, consumer: &BaseConsumer<OutputsContext>) -> BTreeSet<String> {
        let ns = &self.options.namespace;
        let names = TopicNames::new(&self.options.prefix, ns);
        let mut known = Known::default();
        let mut topics = BTreeSet::new();
        for d in deployments.values() {
            match d {
                crate::kafka::control::Deployment::Pipeline(p) if p.plan.namespace == *ns => {
                    let route = Route {
                        inputs: names.pipeline(&p.plan.name, Side::Inputs),
                        outputs: names.pipeline(&p.plan.name, Side::Outputs),
                        synchronous: p.plan.synchronous,
                        models: p.plan.models.clone(),
                        version: p.version,
                    };
                    if route.synchronous {
                        topics.insert(route.outputs.clone());
                    }
                    known.pipelines.insert(p.plan.name.clone(), route);
                }
                crate::kafka::control::Deployment::Model(m) if m.namespace == *ns => {
                    topics.insert(m.output_topic.clone());
                    topics.insert(names.errors());
                    known.models.insert(
                        m.name.clone(),
                        Route {
                            inputs: m.input_topic.clone(),
                            outputs: m.output_topic.clone(),
                            synchronous: true,
                            models: vec![m.name.clone()],
                            version: 0,
                        },
                    );
                }
                _ => {}
            }
        }
        match consumer.fetch_metadata(None, self.config.timeout) {
            Ok(md) => {
                for t in md.topics() {
                    if t.error().is_none() && !t.partitions().is_empty() {
                        known
                            .partitions
                            .insert(t.name().to_string(), t.partitions().len() as i32);
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read topic metadata"),
        }
        // Only topics that exist can be consumed (apply creates them before it deploys).
        topics.retain(|t| known.partitions.contains_key(t));
        let inputs: Vec<&str> = known
            .pipelines
            .values()
            .chain(known.models.values())
            .map(|r| r.inputs.as_str())
            .filter(|t| known.partitions.contains_key(*t))
            .collect();
        match crate::kafka::broker::topic_record_limits(&self.config, &inputs) {
            Ok(limits) => known.record_limits = limits,
            Err(e) => tracing::warn!(error = %e, "cannot read the inputs topics' record limits"),
        }
        if let Some(models) = &self.options.models {
            let ms: Vec<_> = crate::kafka::control::models(deployments).cloned().collect();
            let ss: Vec<_> = crate::kafka::control::servers(deployments).cloned().collect();
            models.update(placements(&ms, &ss));
        }
        // Requests waiting on a pipeline or model that is no longer deployed get no answer:
        // tell them now rather than at their timeout.
        let answered: BTreeSet<&String> = known
            .pipelines
            .values()
            .chain(known.models.values())
            .map(|r| &r.outputs)
            .collect();
        if let Ok(mut pending) = self.pending.lock() {
            let gone: Vec<String> = pending
                .iter()
                .filter(|(_, w)| !answered.contains(&w.topics[0]))
                .map(|(k, _)| k.clone())
                .collect();
            for key in gone {
                if let Some(w) = pending.remove(&key) {
                    let _ = w.tx.send(Reply::Gone);
                }
            }
        }
        if let Ok(mut k) = self.known.write() {
            *k = known;
        }
        topics
    }

    fn set_held(&self, held: BTreeMap<String, Vec<i32>>) {
        if let Ok(mut ever) = self.ever_held.write() {
            ever.extend(held.iter().filter(|(_, ps)| !ps.is_empty()).map(|(t, _)| t.clone()));
        }
        if let Ok(mut h) = self.held.write() {
            *h = held;
        }
        self.held_version.send_modify(|v| *v += 1);
    }

    /// Answers the request waiting for this record's key, if any (others' answers, duplicates
    /// and records read again after a rebalance find none and are skipped).
    fn deliver(&self, m: &BorrowedMessage<'_>) {
        let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let waiter = {
            let Ok(mut pending) = self.pending.lock() else {
                return;
            };
            match pending.get(key) {
                Some(w) if w.topics.iter().any(|t| t == m.topic()) => pending.remove(key),
                _ => None,
            }
        };
        let Some(waiter) = waiter else {
            return;
        };
        let (errors, headers): (Vec<_>, Vec<_>) = crate::kafka::text_headers(m)
            .into_iter()
            .partition(|(k, _)| k == h::PIPELINE_ERRORS);
        let error_source = errors.into_iter().next_back().map(|(_, v)| v);
        let payload = m.payload().unwrap_or_default();
        let reply = match error_source {
            Some(source_name) => Reply::Error {
                source_name,
                text: String::from_utf8_lossy(payload).into_owned(),
            },
            None => match ModelInferResponse::decode(payload) {
                Ok(r) => Reply::Response(r, headers),
                Err(e) => Reply::Error {
                    source_name: "gateway".to_string(),
                    text: format!("the answer on {} is not an inference response: {e}", m.topic()),
                },
            },
        };
        let _ = waiter.tx.send(reply);
    }
}

/// Rebalances of the gateway's consumer: a partition with no committed offset starts at the
/// end as it is now (resolved here, before the gateway says it is ready, so no answer written
/// after that is missed); the partitions held are published for [`Gateway::partition_for`].
struct OutputsContext {
    gateway: std::sync::Weak<Gateway>,
    timeout: Duration,
    /// Where each held partition was taken up: its position until a record is read there.
    assigned_at: Mutex<BTreeMap<(String, i32), i64>>,
}

impl ClientContext for OutputsContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if let Some(gateway) = self.gateway.upgrade() {
            gateway.health.on_error(&error, reason);
        }
        tracing::warn!(error = %error, reason, "gateway's Kafka client");
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(gateway) = self.gateway.upgrade() {
            gateway.health.on_stats(&statistics);
        }
    }
}

impl ConsumerContext for OutputsContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let Some(gateway) = self.gateway.upgrade() else {
            return;
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let committed = consumer.committed_offsets(tpl.clone(), self.timeout).ok();
                let mut assign = TopicPartitionList::new();
                let mut held: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for e in tpl.elements() {
                    let (topic, partition) = (e.topic(), e.partition());
                    let from = committed
                        .as_ref()
                        .and_then(|c| c.find_partition(topic, partition))
                        .map(|c| c.offset())
                        .filter(|o| matches!(o, Offset::Offset(_)));
                    let offset = match from {
                        Some(o) => o,
                        None => match consumer.fetch_watermarks(topic, partition, self.timeout) {
                            Ok((_, high)) => Offset::Offset(high),
                            Err(_) => Offset::End,
                        },
                    };
                    if let (Offset::Offset(o), Ok(mut at)) = (offset, self.assigned_at.lock()) {
                        at.insert((topic.to_string(), partition), o);
                    }
                    let _ = assign.add_partition_offset(topic, partition, offset);
                    held.entry(topic.to_string()).or_default().push(partition);
                }
                if let Err(e) = consumer.assign(&assign) {
                    tracing::error!(error = %e, "gateway: cannot take its partitions");
                    return;
                }
                tracing::info!(?held, "gateway holds partitions");
                gateway.set_held(held);
                gateway.assigned.store(true, Ordering::Release);
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                gateway.set_held(BTreeMap::new());
                // Answers for requests still waiting here may land on these partitions under
                // their next owner: the drain reader follows them from here.
                let position = consumer.position().ok();
                let assigned_at = self.assigned_at.lock().map(|a| a.clone()).unwrap_or_default();
                {
                    let mut handover = Vec::new();
                    for e in tpl.elements() {
                        let read_to = position
                            .as_ref()
                            .and_then(|at| at.find_partition(e.topic(), e.partition()))
                            .and_then(|p| match p.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            });
                        let from =
                            read_to.or_else(|| assigned_at.get(&(e.topic().to_string(), e.partition())).copied());
                        if let Some(from) = from {
                            if gateway.waits_on(e.topic(), e.partition()) {
                                handover.push((e.topic().to_string(), e.partition(), from));
                            }
                        }
                    }
                    if let Ok(mut h) = gateway.handover.lock() {
                        h.extend(handover);
                    }
                }
                let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
                let _ = consumer.unassign();
            }
            other => tracing::warn!(error = ?other, "gateway rebalance error"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_follows_seldon_headers_then_the_path() {
        let p = |s: &str| Target::Pipeline(s.to_string());
        let m = |s: &str| Target::Model(s.to_string());
        assert_eq!(Target::parse("iris.pipeline"), p("iris"));
        assert_eq!(Target::parse("iris.model"), m("iris"));
        assert_eq!(Target::parse(" iris "), m("iris"));
        assert_eq!(
            Target::route(Some("a.pipeline"), Some("b.pipeline"), None),
            Some(p("a"))
        );
        assert_eq!(Target::route(None, Some("b"), Some(p("c"))), Some(m("b")));
        assert_eq!(Target::route(Some(" "), None, Some(p("c"))), Some(p("c")));
        assert_eq!(Target::route(None, None, None), None);
    }

    #[test]
    fn errors_map_to_http_and_grpc_codes() {
        let cases = [
            (GatewayError::NoTarget, 400, tonic::Code::InvalidArgument),
            (
                GatewayError::AsyncOnly("p".into()),
                400,
                tonic::Code::FailedPrecondition,
            ),
            (
                GatewayError::Failed {
                    source_name: "m".into(),
                    text: "boom".into(),
                    key: "0.p.x".into(),
                },
                400,
                tonic::Code::Unknown,
            ),
            (
                GatewayError::NotFound {
                    what: "pipeline",
                    name: "p".into(),
                    namespace: "default".into(),
                    hint: None,
                },
                404,
                tonic::Code::NotFound,
            ),
            (
                GatewayError::TooLarge { size: 2, limit: 1 },
                413,
                tonic::Code::OutOfRange,
            ),
            (
                GatewayError::Timeout {
                    key: "0.p.x".into(),
                    waited: Duration::from_secs(1),
                },
                504,
                tonic::Code::DeadlineExceeded,
            ),
        ];
        for (e, http, grpc) in cases {
            assert_eq!((e.http_status(), e.grpc_code()), (http, grpc), "{e}");
        }
        let failed = GatewayError::Failed {
            source_name: "tfsimple1".into(),
            text: "INPUT0: expected INT32, got FP32".into(),
            key: "1.p.x".into(),
        };
        assert_eq!(failed.to_string(), "tfsimple1 : INPUT0: expected INT32, got FP32");
        assert_eq!(failed.key(), Some("1.p.x"));
    }
}
