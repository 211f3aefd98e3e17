//! `flowc inspect` (PIPELINES.md §8): the records a pipeline's steps read and wrote, read back
//! from their topics. Either the last N records of each topic, or, with a request id, the
//! lineage of one request: every record it produced, step by step in the order the data flows
//! (pipeline inputs, the steps in topological order, pipeline outputs, errors).
//!
//! **flowc** over Seldon's `inspect`: a request id matches the raw id, the key, or the
//! `x-request-id` header, and the search covers the whole retained topic (or `--since`);
//! `P.inputs.T` narrows too; records without a `pipeline` header are skipped (not fatal); the
//! errors topic is shown.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowc_plan::Side;
use flowc_plan::TopicNames;
use flowc_plan::{Op, PipelinePlan};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::config::KafkaConfig;
use super::control::ControlReader;
use super::KafkaError;
use crate::json::tensor_to_json;
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::record::{header, output_partition, parse_gateway_key};
use crate::tensor::{InferMessage, Tensor};

/// What `inspect` looks at: `P`, `P.S`, `P.S.inputs`, `P.S.outputs[.T]`, `P.S.inputs.T`,
/// `P.inputs[.T]`, `P.outputs[.T]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    pub pipeline: String,
    /// `None`: the pipeline's own topics (with `side`) or everything (without).
    pub step: Option<String>,
    pub side: Option<Side>,
    pub tensor: Option<String>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut parts = text.splitn(2, '.');
        let pipeline = parts.next().unwrap_or_default().trim().to_string();
        if pipeline.is_empty() {
            return Err(format!(
                "`{text}`: say which pipeline to inspect (P, P.S, P.S.outputs.T, P.inputs, …)"
            ));
        }
        let rest = parts.next().unwrap_or_default();
        let side_of = |s: &str| match s {
            "inputs" => Some(Side::Inputs),
            "outputs" => Some(Side::Outputs),
            _ => None,
        };
        let tensor_of = |s: Option<&str>| s.filter(|t| !t.is_empty()).map(str::to_string);
        if rest.is_empty() {
            return Ok(Selector {
                pipeline,
                step: None,
                side: None,
                tensor: None,
            });
        }
        let mut parts = rest.splitn(2, '.');
        let first = parts.next().unwrap_or_default();
        let after = parts.next();
        if let Some(side) = side_of(first) {
            return Ok(Selector {
                pipeline,
                step: None,
                side: Some(side),
                tensor: tensor_of(after),
            });
        }
        let (side, tensor) = match after {
            None => (None, None),
            Some(a) => {
                let mut parts = a.splitn(2, '.');
                let s = parts.next().unwrap_or_default();
                let side = side_of(s)
                    .ok_or_else(|| format!("`{text}`: after the step comes `inputs` or `outputs`, not `{s}`"))?;
                (Some(side), tensor_of(parts.next()))
            }
        };
        Ok(Selector {
            pipeline,
            step: Some(first.to_string()),
            side,
            tensor,
        })
    }
}

#[derive(Clone, Debug)]
pub struct InspectOptions {
    pub prefix: String,
    pub namespace: String,
    /// Records per topic (without a request id).
    pub count: usize,
    /// Only this request: the raw id, the key, or the `x-request-id` header.
    pub request_id: Option<String>,
    /// Search records written from this time (ms since the epoch) instead of the topic's
    /// beginning (or the window a request id's time gives).
    pub since_ms: Option<i64>,
    /// Search records written up to this time (ms since the epoch) only.
    pub until_ms: Option<i64>,
    /// How long after it entered a request's records can still be written: the gateway's
    /// request timeout (30 s unless it was changed); the plan's join, trigger and batch
    /// windows are added to it.
    pub request_window: Duration,
    /// Read every retained record even for a request id that carries its time.
    pub scan: bool,
    /// Only these tensors (any slot).
    pub tensor: Option<String>,
    /// Whole tensors instead of their first values.
    pub full: bool,
    pub headers: bool,
    /// Bound on reading everything.
    pub timeout: Duration,
}

/// One topic of the pipeline, as `inspect` shows it.
#[derive(Clone, Debug)]
struct Slot {
    /// `pipeline inputs`, `step tfsimple1 outputs`, `errors`.
    label: String,
    topic: String,
    request: bool,
}

/// One record as shown.
#[derive(Clone, Debug)]
pub struct Shown {
    pub slot: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: String,
    pub headers: Vec<(String, String)>,
    /// The tensors, or the error text of an error record.
    pub content: Result<Vec<Tensor>, String>,
}

/// The slots of `selector` in flow order; `Err` names an unknown pipeline or step.
fn slots(plan: &PipelinePlan, names: &TopicNames, selector: &Selector) -> Result<Vec<Slot>, String> {
    let p = &plan.name;
    // Steps in the order the data flows (a fused pipeline's too: its task writes every step's
    // request and response to the same topics, as lineage).
    let steps: Vec<&str> = plan.steps();
    let pipeline_slot = |side: Side| Slot {
        label: format!("pipeline {p} {side}"),
        topic: names.pipeline(p, side),
        request: side == Side::Inputs,
    };
    let step_slot = |s: &str, side: Side| Slot {
        label: format!("step {s} {side}"),
        topic: names.model(s, side),
        request: side == Side::Inputs,
    };
    let both = [Side::Inputs, Side::Outputs];
    Ok(match (&selector.step, selector.side) {
        (None, None) => {
            let mut all = vec![pipeline_slot(Side::Inputs)];
            for s in &steps {
                all.extend(both.iter().map(|side| step_slot(s, *side)));
            }
            all.push(pipeline_slot(Side::Outputs));
            all.push(Slot {
                label: "errors".to_string(),
                topic: names.errors(),
                request: false,
            });
            all
        }
        (None, Some(side)) => vec![pipeline_slot(side)],
        (Some(s), side) => {
            if !steps.contains(&s.as_str()) {
                let hint = flowc_plan::did_you_mean(s, steps.iter().copied())
                    .map(|h| format!(" (did you mean {h}?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "pipeline {p} has no step {s}{hint}; its steps: {}",
                    steps.join(", ")
                ));
            }
            match side {
                None => both.iter().map(|side| step_slot(s, *side)).collect(),
                Some(side) => vec![step_slot(s, side)],
            }
        }
    })
}

/// Whether a record belongs to request `id`: its key is the id, or a gateway key with that
/// raw id, or its `x-request-id` header says so.
fn matches_request(key: &str, headers: &[(String, String)], id: &str) -> bool {
    key == id
        || parse_gateway_key(key).is_some_and(|(_, _, raw)| raw == id)
        || headers.iter().any(|(k, v)| k == header::REQUEST_ID && v == id)
}

/// The deployed plan of the selector's pipeline; an error names it and suggests a deployed
/// one.
fn deployed_plan(
    config: &KafkaConfig,
    selector: &Selector,
    options: &InspectOptions,
) -> Result<PipelinePlan, KafkaError> {
    let control = ControlReader::open(config, &options.prefix)?;
    let found = control
        .pipelines()
        .find(|d| d.plan.name == selector.pipeline && d.plan.namespace == options.namespace)
        .map(|d| d.plan.clone());
    found.ok_or_else(|| {
        let names: Vec<&str> = control
            .pipelines()
            .filter(|d| d.plan.namespace == options.namespace)
            .map(|d| d.plan.name.as_str())
            .collect();
        let hint = flowc_plan::did_you_mean(&selector.pipeline, names.iter().copied())
            .map(|h| format!(" (did you mean {h}?)"))
            .unwrap_or_default();
        KafkaError::Deploy(format!(
            "pipeline {} is not deployed in namespace {}{hint}",
            selector.pipeline, options.namespace
        ))
    })
}

/// `inspect --follow`: the records `selector` covers as they are written, from now on, one
/// call of `each` per record (in the order they are read; across topics that is the order
/// the data flows, give or take a fetch), until `stop` is set. Only the pipeline's records;
/// with a request id, only that request's.
pub fn follow(
    config: &KafkaConfig,
    selector: &Selector,
    options: &InspectOptions,
    stop: &std::sync::atomic::AtomicBool,
    mut each: impl FnMut(Shown),
) -> Result<(), KafkaError> {
    let plan = deployed_plan(config, selector, options)?;
    let names = TopicNames::new(&options.prefix, &options.namespace);
    let slots = slots(&plan, &names, selector).map_err(KafkaError::Deploy)?;
    let consumer: BaseConsumer = config.reader().create()?;
    let counts = partition_counts(config, &consumer)?;
    let mut tpl = TopicPartitionList::new();
    for slot in &slots {
        if tpl.elements_for_topic(&slot.topic).is_empty() {
            for p in 0..counts.get(&slot.topic).copied().unwrap_or(0) {
                tpl.add_partition_offset(&slot.topic, p, Offset::End)?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let tensor = selector.tensor.as_deref().or(options.tensor.as_deref());
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m?;
        let raw = Raw::of(&m);
        if !raw.is_of(&plan.name, options.request_id.as_deref()) {
            continue;
        }
        for slot in slots.iter().filter(|s| s.topic == m.topic()) {
            each(decode(slot, &raw, tensor));
        }
    }
    Ok(())
}

/// What `inspect` found, and what it read to find it.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// Records in flow order (slot by slot, then by time).
    pub shown: Vec<Shown>,
    pub searched: Searched,
}

/// What a search covered: for the user to judge what a lookup cost, and what it could miss.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Searched {
    /// Records (offsets) in the ranges read, over this many partitions.
    pub records: i64,
    pub partitions: usize,
    /// The write-time window read (ms since the epoch), when there was one.
    pub window: Option<Window>,
    /// The time the request id carries (it entered the gateway then).
    pub request_time_ms: Option<i64>,
}

impl Searched {
    /// One line for stderr: how much was read, and when from.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "searched {} record{} in {} partition{}",
            self.records,
            if self.records == 1 { "" } else { "s" },
            self.partitions,
            if self.partitions == 1 { "" } else { "s" }
        );
        if let Some(t) = self.request_time_ms {
            out.push_str(&format!("; the request entered at {} (from its id)", rfc3339_ms(t)));
        }
        match self.window {
            Some((since, until)) => out.push_str(&format!(
                "; written {} to {}",
                since.map_or("from the start".to_string(), rfc3339_ms),
                until.map_or("now".to_string(), rfc3339_ms)
            )),
            None => out.push_str("; every retained record"),
        }
        out
    }
}

/// A write-time window, ms since the epoch: from (`None`: the beginning) to (`None`: now).
pub type Window = (Option<i64>, Option<i64>);

/// Margin around a request's window for clocks that disagree between hosts.
const CLOCK_SKEW_MS: i64 = 10_000;

/// The write-time window to search (`None`: everything retained) and the request's time if
/// its id carries one: `--since`/`--until` when given; else, for a gateway request id, from
/// a little before it entered to its window after.
fn search_window(plan: &PipelinePlan, options: &InspectOptions, now: i64) -> (Option<Window>, Option<i64>) {
    let request_time = options
        .request_id
        .as_deref()
        .map(|id| parse_gateway_key(id).map_or(id, |(_, _, raw)| raw))
        .and_then(|raw| crate::request_id::time_of(raw, now));
    if options.since_ms.is_some() || options.until_ms.is_some() {
        return (Some((options.since_ms, options.until_ms)), request_time);
    }
    match request_time {
        Some(t) if !options.scan => {
            let after = options.request_window.as_millis() as i64 + windows_ms(plan);
            (
                Some((Some(t - CLOCK_SKEW_MS), Some(t + after + CLOCK_SKEW_MS))),
                request_time,
            )
        }
        _ => (None, request_time),
    }
}

/// The plan's join, trigger and batch windows, added up: how long a request's records can
/// wait in stores before the next are written.
fn windows_ms(plan: &PipelinePlan) -> i64 {
    plan.sub_topologies
        .iter()
        .flat_map(|s| &s.nodes)
        .map(|n| match &n.op {
            Op::Join { window_ms, .. } | Op::TriggerGate { window_ms, .. } => *window_ms as i64,
            Op::Batch { window_ms, .. } => window_ms.unwrap_or(0) as i64,
            _ => 0,
        })
        .sum()
}

/// Reads what `selector` covers; records come in flow order (slot by slot, then by time).
///
/// With a request id that carries its time (the gateway's, `request_id`), only the records
/// written around that time are read: each partition from the first offset at or after the
/// time minus a margin (`offsets_for_times`) to the first at or after the end of the
/// request's window. Records are stamped with the time they are written (workers set no
/// timestamp), and a record stamped after the window was written after every record of the
/// request, so the range holds all of them. Other ids read every retained record, unless
/// `--since`/`--until` bound it.
pub fn inspect(config: &KafkaConfig, selector: &Selector, options: &InspectOptions) -> Result<Inspection, KafkaError> {
    // The clients that look offsets up and read connect while the deployment log is read:
    // connecting is most of a lookup's fixed cost.
    let warming = {
        let config = config.clone();
        std::thread::spawn(move || warm_consumers(&config, READERS + 1))
    };
    let plan = deployed_plan(config, selector, options)?;
    let mut consumers = warming
        .join()
        .map_err(|_| KafkaError::Deploy("connecting inspect's readers panicked".into()))??;
    let names = TopicNames::new(&options.prefix, &options.namespace);
    let slots = slots(&plan, &names, selector).map_err(KafkaError::Deploy)?;
    let deadline = Instant::now() + options.timeout;
    let mut topics: Vec<String> = slots.iter().map(|s| s.topic.clone()).collect();
    topics.dedup();
    let (window, request_time_ms) = search_window(&plan, options, super::now_ms());
    // tansu 0.6 answers ListOffsets by time with offsets past the records it should find
    // (a windowed lookup found nothing the scan found): there every partition is read whole,
    // and only --since/--until are applied, to the records' timestamps.
    let exact = config.flavor.exact_watermarks();
    let by_timestamp = (!exact && (options.since_ms.is_some() || options.until_ms.is_some()))
        .then_some((options.since_ms, options.until_ms));
    let window = window.filter(|_| exact);
    // A gateway key names its partition; every hop keeps it (§4.2).
    let gateway_key = options
        .request_id
        .as_deref()
        .filter(|id| parse_gateway_key(id).is_some());
    let lookup = consumers.pop().expect("READERS + 1 consumers");
    let ranges = plan_ranges(config, &lookup, &topics, options, window, gateway_key)?;
    let searched = Searched {
        records: ranges.iter().map(|r| (r.to - r.from).max(0)).sum(),
        partitions: ranges.len(),
        window,
        request_time_ms,
    };
    if window.is_none() && options.request_id.is_some() && request_time_ms.is_none() {
        tracing::warn!(
            records = searched.records,
            "the request id carries no time: reading every retained record of the pipeline's topics ({} records); --since/--until narrow the search",
            searched.records
        );
    }
    let read = read_ranges(config, consumers, ranges, deadline)?;
    let mut shown = Vec::new();
    for slot in &slots {
        let mut records: Vec<&Raw> = read
            .get(&slot.topic)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|r| r.is_of(&plan.name, options.request_id.as_deref()))
            .filter(|r| {
                by_timestamp.is_none_or(|(since, until)| {
                    since.is_none_or(|s| r.timestamp_ms >= s) && until.is_none_or(|u| r.timestamp_ms < u)
                })
            })
            .collect();
        records.sort_by_key(|r| (r.timestamp_ms, r.partition, r.offset));
        if options.request_id.is_none() && records.len() > options.count {
            records.drain(..records.len() - options.count);
        }
        let tensor = selector.tensor.as_deref().or(options.tensor.as_deref());
        for r in records {
            shown.push(decode(slot, r, tensor));
        }
    }
    Ok(Inspection { shown, searched })
}

/// A record as read.
struct Raw {
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
    key: String,
    headers: Vec<(String, String)>,
    value: Vec<u8>,
}

impl Raw {
    /// Whether the record is `pipeline`'s (its `pipeline` header; records without one are
    /// skipped) and, with a request id, that request's.
    fn is_of(&self, pipeline: &str, request_id: Option<&str>) -> bool {
        self.headers.iter().any(|(k, v)| k == header::PIPELINE && v == pipeline)
            && request_id.is_none_or(|id| matches_request(&self.key, &self.headers, id))
    }

    fn of<M: rdkafka::message::Message>(m: &M) -> Raw {
        Raw {
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
            key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            headers: super::text_headers(m),
            value: m.payload().unwrap_or_default().to_vec(),
        }
    }
}

fn decode(slot: &Slot, r: &Raw, tensor: Option<&str>) -> Shown {
    let error = r
        .headers
        .iter()
        .find(|(k, _)| k == header::PIPELINE_ERRORS)
        .map(|(_, v)| v.clone());
    let content = if let Some(source) = error {
        Err(format!("{source} : {}", String::from_utf8_lossy(&r.value)))
    } else if slot.label == "errors" {
        Err(String::from_utf8_lossy(&r.value).into_owned())
    } else {
        let message = if slot.request {
            ModelInferRequest::decode(r.value.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|m| InferMessage::from_request(&m).map_err(|e| e.to_string()))
        } else {
            ModelInferResponse::decode(r.value.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|m| InferMessage::from_response(&m).map_err(|e| e.to_string()))
        };
        match message {
            Ok(m) => Ok(m
                .tensors
                .into_iter()
                .filter(|t| tensor.is_none_or(|name| t.name == name))
                .collect()),
            Err(e) => Err(format!("undecodable record: {e}")),
        }
    };
    Shown {
        slot: slot.label.clone(),
        topic: slot.topic.clone(),
        partition: r.partition,
        offset: r.offset,
        timestamp_ms: r.timestamp_ms,
        key: r.key.clone(),
        headers: r.headers.clone(),
        content,
    }
}

/// Every topic's partition count, from one metadata request.
fn partition_counts(config: &KafkaConfig, consumer: &BaseConsumer) -> Result<BTreeMap<String, i32>, KafkaError> {
    let metadata = consumer
        .fetch_metadata(None, config.timeout)
        .map_err(|e| KafkaError::unreachable(config, "reading the pipeline's topics", e))?;
    Ok(metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect())
}

/// One partition's offsets to read: `from` up to (not including) `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Range {
    topic: String,
    partition: i32,
    from: i64,
    to: i64,
}

/// The offsets to read per partition of `topics`: the last `count` records each without a
/// request id; with one, the offsets written within `window` (by `offsets_for_times`, one
/// request for all partitions per bound), or everything retained. A gateway key narrows each
/// topic to the partition its hops write it to.
fn plan_ranges(
    config: &KafkaConfig,
    consumer: &BaseConsumer,
    topics: &[String],
    options: &InspectOptions,
    window: Option<Window>,
    gateway_key: Option<&str>,
) -> Result<Vec<Range>, KafkaError> {
    let unreachable = |e| KafkaError::unreachable(config, "reading the pipeline's topics", e);
    let counts = partition_counts(config, consumer)?;
    let mut wanted: Vec<(String, i32)> = Vec::new();
    for topic in topics {
        let count = counts.get(topic).copied().unwrap_or(0);
        // The partition every hop writes a gateway key's records to (§4.2).
        let only = gateway_key.map(|key| output_partition(key, 0, count));
        wanted.extend(
            (0..count)
                .filter(|p| only.is_none_or(|o| o == *p))
                .map(|p| (topic.clone(), p)),
        );
    }
    // Every partition's earliest and latest offsets, and those at the window's ends, each in
    // one ListOffsets request per leader, the four at once (each is a round trip).
    let (since, until) = window.unwrap_or((None, None));
    let (lows, highs, from_time, to_time) = std::thread::scope(|scope| {
        let ask = |at: Option<Offset>| {
            let wanted = &wanted;
            scope.spawn(move || at.and_then(|at| list_offsets(consumer, wanted, at, config.timeout)))
        };
        let handles = [
            ask(Some(Offset::Beginning)),
            ask(Some(Offset::End)),
            ask(since.map(Offset::Offset)),
            ask(until.map(Offset::Offset)),
        ];
        let [a, b, c, d] = handles.map(|h| h.join().ok().flatten());
        (a, b, c, d)
    });
    let mut ranges = Vec::new();
    for (topic, p) in &wanted {
        let tp = (topic.clone(), *p);
        let known = lows
            .as_ref()
            .and_then(|l| *l.get(&tp)?)
            .zip(highs.as_ref().and_then(|h| *h.get(&tp)?));
        // Per partition where the broker did not answer in bulk.
        let (low, high) = match known {
            Some(w) => w,
            None => consumer
                .fetch_watermarks(topic, *p, config.timeout)
                .map_err(unreachable)?,
        };
        let mut from = if options.request_id.is_some() || window.is_some() {
            low
        } else {
            low.max(high - options.count as i64)
        };
        let mut to = high;
        // A broker that cannot answer by time is searched in full. Nothing written at or
        // after `since`: nothing to read; nothing at or after `until`: read to the end.
        if let Some(found) = &from_time {
            if let Some(at) = found.get(&tp) {
                from = at.unwrap_or(to).clamp(from, to);
            }
        }
        if let Some(Some(at)) = to_time.as_ref().and_then(|found| found.get(&tp)) {
            to = (*at).clamp(from, to);
        }
        ranges.push(Range {
            topic: topic.clone(),
            partition: *p,
            from,
            to,
        });
    }
    ranges.retain(|r| r.to > r.from);
    Ok(ranges)
}

/// The offsets ListOffsets gives for `at` (a time, or the earliest/latest) of each partition
/// in one request per leader; `None` for a partition where it found none (nothing written at
/// or after that time). `None` when the broker does not answer.
fn list_offsets(
    consumer: &BaseConsumer,
    wanted: &[(String, i32)],
    at: Offset,
    timeout: Duration,
) -> Option<BTreeMap<(String, i32), Option<i64>>> {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in wanted {
        tpl.add_partition_offset(t, *p, at).ok()?;
    }
    let found = consumer.offsets_for_times(tpl, timeout).ok()?;
    Some(
        found
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                };
                ((e.topic().to_string(), e.partition()), offset)
            })
            .collect(),
    )
}

/// `n` reader clients, each connected (a metadata request answered), made at once on threads.
fn warm_consumers(config: &KafkaConfig, n: usize) -> Result<Vec<BaseConsumer>, KafkaError> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                scope.spawn(|| -> Result<BaseConsumer, KafkaError> {
                    let consumer: BaseConsumer = config.reader().create()?;
                    consumer
                        .fetch_metadata(None, config.timeout)
                        .map_err(|e| KafkaError::unreachable(config, "reading the pipeline's topics", e))?;
                    Ok(consumer)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(KafkaError::Deploy("connecting an inspect reader panicked".into())))
            })
            .collect()
    })
}

/// Consumers reading in parallel at most: the reads are I/O and decoding bound, and each
/// consumer is a connection and a few threads of librdkafka's.
const READERS: usize = 4;

/// Reads `ranges`, spread over up to [`READERS`] consumers on threads of their own, each to
/// its ranges' ends: exactly there on Apache Kafka; on tansu (whose watermarks can lie low,
/// see `restore::read_changelog_from`) on until polls find nothing.
fn read_ranges(
    config: &KafkaConfig,
    consumers: Vec<BaseConsumer>,
    ranges: Vec<Range>,
    deadline: Instant,
) -> Result<BTreeMap<String, Vec<Raw>>, KafkaError> {
    let readers = ranges.len().min(consumers.len());
    if readers == 0 {
        return Ok(BTreeMap::new());
    }
    // Spread the work by size: the largest ranges first, each to the least loaded reader.
    let mut ranges = ranges;
    ranges.sort_by_key(|r| std::cmp::Reverse(r.to - r.from));
    let mut shares: Vec<(i64, Vec<Range>)> = (0..readers).map(|_| (0, Vec::new())).collect();
    for r in ranges {
        let least = shares
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one reader");
        least.0 += r.to - r.from;
        least.1.push(r);
    }
    let results: Vec<Result<Vec<(String, Raw)>, KafkaError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = shares
            .into_iter()
            .zip(consumers)
            .map(|((_, share), consumer)| scope.spawn(move || read_share(config, consumer, &share, deadline)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(KafkaError::Deploy("an inspect reader panicked".into())))
            })
            .collect()
    });
    let mut out: BTreeMap<String, Vec<Raw>> = BTreeMap::new();
    for result in results {
        for (topic, raw) in result? {
            out.entry(topic).or_default().push(raw);
        }
    }
    Ok(out)
}

/// One reader's ranges, with a consumer of its own.
fn read_share(
    config: &KafkaConfig,
    consumer: BaseConsumer,
    share: &[Range],
    deadline: Instant,
) -> Result<Vec<(String, Raw)>, KafkaError> {
    let mut tpl = TopicPartitionList::new();
    let mut position: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for r in share {
        tpl.add_partition_offset(&r.topic, r.partition, Offset::Offset(r.from))?;
        position.insert((r.topic.clone(), r.partition), r.from);
        ends.insert((r.topic.clone(), r.partition), r.to);
    }
    consumer.assign(&tpl)?;
    let exact = config.flavor.exact_watermarks();
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    loop {
        if Instant::now() > deadline {
            let topics: std::collections::BTreeSet<&str> = share.iter().map(|r| r.topic.as_str()).collect();
            return Err(KafkaError::Timeout(format!(
                "reading {} ({} records so far); raise --wait-ms or narrow the search with --since/--until",
                topics.into_iter().collect::<Vec<_>>().join(", "),
                out.len()
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let tp = (m.topic().to_string(), m.partition());
                position.insert(tp.clone(), m.offset() + 1);
                // Past its range's end (exact on Apache Kafka): not part of the search.
                if exact && ends.get(&tp).is_some_and(|end| m.offset() >= *end) {
                    let mut done = TopicPartitionList::new();
                    done.add_partition(&tp.0, tp.1);
                    let _ = consumer.pause(&done);
                    continue;
                }
                out.push((tp.0, Raw::of(&m)));
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        let at_end = ends
            .iter()
            .all(|(tp, end)| position.get(tp).copied().unwrap_or(0) >= *end);
        // Apache Kafka: at the ends. tansu: there and quiet. Either: quiet for long (the last
        // offsets hold no record for us: transaction markers, or a watermark past what is
        // readable).
        let quiet = quiet_since.elapsed();
        if (at_end && (exact || quiet >= Duration::from_millis(300))) || quiet >= Duration::from_secs(2) {
            break;
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ rendering

fn tensor_json(t: &Tensor, full: bool) -> Value {
    let mut v = tensor_to_json(t);
    if !full {
        if let Some(data) = v["data"].as_array_mut() {
            if data.len() > MAX_VALUES {
                data.truncate(MAX_VALUES);
                v["truncated"] = json!(true);
            }
        }
    }
    v
}

/// Values shown per tensor unless `--full`.
pub const MAX_VALUES: usize = 8;

/// One JSON object per record.
pub fn render_json(shown: &[Shown], options: &InspectOptions) -> Value {
    Value::Array(
        shown
            .iter()
            .map(|s| {
                let mut v = json!({
                    "slot": s.slot,
                    "topic": s.topic,
                    "partition": s.partition,
                    "offset": s.offset,
                    "timestamp_ms": s.timestamp_ms,
                    "key": s.key,
                });
                match &s.content {
                    Ok(tensors) => v["tensors"] = tensors.iter().map(|t| tensor_json(t, options.full)).collect(),
                    Err(e) => v["error"] = json!(e),
                }
                if options.headers {
                    v["headers"] = s.headers.iter().map(|(k, x)| json!([k, x])).collect();
                }
                v
            })
            .collect(),
    )
}

/// Text: a heading per slot, a line per record, a line per tensor.
pub fn render_text(shown: &[Shown], options: &InspectOptions) -> String {
    let mut out = String::new();
    let mut last_slot = "";
    for s in shown {
        if s.slot != last_slot {
            out.push_str(&format!("== {} ({})\n", s.slot, s.topic));
            last_slot = &s.slot;
        }
        out.push_str(&format!(
            "  key {}  partition {}  offset {}  at {}\n",
            s.key,
            s.partition,
            s.offset,
            rfc3339_ms(s.timestamp_ms)
        ));
        if options.headers {
            for (k, v) in &s.headers {
                out.push_str(&format!("    {k}: {v}\n"));
            }
        }
        match &s.content {
            Ok(tensors) => {
                for t in tensors {
                    let v = tensor_to_json(t);
                    let data = v["data"].as_array().cloned().unwrap_or_default();
                    let shown: Vec<String> = data
                        .iter()
                        .take(if options.full { usize::MAX } else { MAX_VALUES })
                        .map(Value::to_string)
                        .collect();
                    let more = if shown.len() < data.len() {
                        format!(", … ({} values)", data.len())
                    } else {
                        String::new()
                    };
                    out.push_str(&format!(
                        "    {} {} {:?} = [{}{more}]\n",
                        t.name,
                        t.datatype().as_str(),
                        t.shape,
                        shown.join(", ")
                    ));
                }
            }
            Err(e) => out.push_str(&format!("    error: {e}\n")),
        }
    }
    if shown.is_empty() {
        out.push_str("no records\n");
    }
    out
}

/// `--follow`'s form of a record: one line naming its slot and key, then its tensors.
pub fn render_follow(shown: &Shown, options: &InspectOptions) -> String {
    let text = render_text(std::slice::from_ref(shown), options);
    let mut lines = text.lines();
    let _heading = lines.next();
    let first = lines.next().unwrap_or_default().trim_start();
    let mut out = format!("{} | {first}\n", shown.slot);
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `2026-11-28T15:50:01.123Z` (UTC) from ms since the epoch.
fn rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(p: &str, s: Option<&str>, side: Option<Side>, t: Option<&str>) -> Selector {
        Selector {
            pipeline: p.into(),
            step: s.map(str::to_string),
            side,
            tensor: t.map(str::to_string),
        }
    }

    #[test]
    fn selectors_parse() {
        use Side::*;
        assert_eq!(Selector::parse("join"), Ok(sel("join", None, None, None)));
        assert_eq!(
            Selector::parse("join.tfsimple1"),
            Ok(sel("join", Some("tfsimple1"), None, None))
        );
        assert_eq!(
            Selector::parse("join.tfsimple1.inputs"),
            Ok(sel("join", Some("tfsimple1"), Some(Inputs), None))
        );
        assert_eq!(
            Selector::parse("join.tfsimple1.outputs.OUTPUT0"),
            Ok(sel("join", Some("tfsimple1"), Some(Outputs), Some("OUTPUT0")))
        );
        assert_eq!(
            Selector::parse("join.inputs"),
            Ok(sel("join", None, Some(Inputs), None))
        );
        assert_eq!(
            Selector::parse("join.outputs.OUTPUT1"),
            Ok(sel("join", None, Some(Outputs), Some("OUTPUT1")))
        );
        assert_eq!(
            Selector::parse("join.tfsimple1.output"),
            Err("`join.tfsimple1.output`: after the step comes `inputs` or `outputs`, not `output`".into())
        );
        assert!(Selector::parse("").is_err());
    }

    #[test]
    fn requests_match_by_raw_id_key_or_header() {
        assert!(matches_request("req-1", &[], "req-1"));
        assert!(matches_request("3.join.req-1", &[], "req-1"));
        assert!(matches_request("3.join.req-1", &[], "3.join.req-1"));
        assert!(matches_request(
            "k",
            &[("x-request-id".into(), "req-1".into())],
            "req-1"
        ));
        assert!(!matches_request("3.join.req-10", &[], "req-1"));
        assert!(!matches_request("req-2", &[], "req-1"));
    }

    fn options(request_id: Option<&str>) -> InspectOptions {
        InspectOptions {
            prefix: "seldon".into(),
            namespace: "default".into(),
            count: 10,
            request_id: request_id.map(str::to_string),
            since_ms: None,
            until_ms: None,
            request_window: Duration::from_secs(30),
            scan: false,
            tensor: None,
            full: false,
            headers: false,
            timeout: Duration::from_secs(1),
        }
    }

    /// A pipeline joining two steps' outputs in a 5 s window.
    fn joining_plan() -> PipelinePlan {
        crate::test_fixtures::compiled(&crate::test_fixtures::join_with_window(5000))
            .pipelines
            .remove(0)
    }

    #[test]
    fn a_gateway_request_is_searched_around_its_time() {
        let plan = joining_plan();
        let now = 1_796_000_000_000;
        let at = now - 3_600_000;
        let id = crate::request_id::new(at, 7, 1);
        let joins = windows_ms(&plan);
        assert!(joins >= 5_000, "the join window counts: {joins}");
        let expected = Some((Some(at - CLOCK_SKEW_MS), Some(at + 30_000 + joins + CLOCK_SKEW_MS)));
        // By raw id, by key, and by key of another partition: the same window.
        for given in [id.clone(), format!("3.p.{id}")] {
            assert_eq!(
                search_window(&plan, &options(Some(&given)), now),
                (expected, Some(at)),
                "{given}"
            );
        }
        // --since/--until win; --scan reads everything; an id without time too.
        let mut bounded = options(Some(&id));
        bounded.since_ms = Some(now - 60_000);
        assert_eq!(
            search_window(&plan, &bounded, now),
            (Some((Some(now - 60_000), None)), Some(at))
        );
        let mut scan = options(Some(&id));
        scan.scan = true;
        assert_eq!(search_window(&plan, &scan, now), (None, Some(at)));
        assert_eq!(search_window(&plan, &options(Some("order-17")), now), (None, None));
        assert_eq!(search_window(&plan, &options(None), now), (None, None));
    }

    #[test]
    fn searches_describe_what_they_read() {
        let searched = Searched {
            records: 1,
            partitions: 4,
            window: Some((Some(0), None)),
            request_time_ms: Some(1_000),
        };
        assert_eq!(
            searched.describe(),
            "searched 1 record in 4 partitions; the request entered at 1970-01-01T00:00:01.000Z (from its id); written 1970-01-01T00:00:00.000Z to now"
        );
        assert_eq!(
            Searched::default().describe(),
            "searched 0 records in 0 partitions; every retained record"
        );
    }

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_881_001_123), "2026-11-28T15:50:01.123Z");
    }
}
