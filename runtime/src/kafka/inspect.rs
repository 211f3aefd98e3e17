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

use flowc_compiler::ast::Side;
use flowc_compiler::build::TopicNames;
use flowc_compiler::plan::{PipelinePlan, Role};
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
use crate::record::{header, parse_gateway_key};
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
    /// Search from this time (ms since the epoch) instead of the topic's beginning.
    pub since_ms: Option<i64>,
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
    // Steps in the order the data flows: the step sub-topologies are built in topological order.
    let steps: Vec<&str> = plan
        .sub_topologies
        .iter()
        .filter_map(|s| match &s.role {
            Role::Step { step } => Some(step.as_str()),
            _ => None,
        })
        .collect();
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
                let hint = flowc_compiler::diagnostic::did_you_mean(s, steps.iter().copied())
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

/// Reads what `selector` covers; records come in flow order (slot by slot, then by time).
pub fn inspect(config: &KafkaConfig, selector: &Selector, options: &InspectOptions) -> Result<Vec<Shown>, KafkaError> {
    let control = ControlReader::open(config, &options.prefix)?;
    let plan = control
        .pipelines()
        .find(|d| d.plan.name == selector.pipeline && d.plan.namespace == options.namespace)
        .map(|d| d.plan.clone())
        .ok_or_else(|| {
            let names: Vec<&str> = control
                .pipelines()
                .filter(|d| d.plan.namespace == options.namespace)
                .map(|d| d.plan.name.as_str())
                .collect();
            let hint = flowc_compiler::diagnostic::did_you_mean(&selector.pipeline, names.iter().copied())
                .map(|h| format!(" (did you mean {h}?)"))
                .unwrap_or_default();
            KafkaError::Deploy(format!(
                "pipeline {} is not deployed in namespace {}{hint}",
                selector.pipeline, options.namespace
            ))
        })?;
    let names = TopicNames::new(&options.prefix, &options.namespace);
    let slots = slots(&plan, &names, selector).map_err(KafkaError::Deploy)?;
    let deadline = Instant::now() + options.timeout;
    let mut topics: Vec<String> = slots.iter().map(|s| s.topic.clone()).collect();
    topics.dedup();
    let read = read_topics(config, &topics, options, deadline)?;
    let mut shown = Vec::new();
    for slot in &slots {
        let mut records: Vec<&Raw> = read
            .get(&slot.topic)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            // Only this pipeline's records; those without the header are skipped.
            .filter(|r| r.headers.iter().any(|(k, v)| k == header::PIPELINE && *v == plan.name))
            .filter(|r| {
                options
                    .request_id
                    .as_deref()
                    .is_none_or(|id| matches_request(&r.key, &r.headers, id))
            })
            .collect();
        records.sort_by_key(|r| (r.timestamp_ms, r.partition, r.offset));
        if options.request_id.is_none() && records.len() > options.count {
            records.drain(..records.len() - options.count);
        }
        for r in records {
            shown.push(decode(slot, r, selector.tensor.as_deref()));
        }
    }
    Ok(shown)
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

/// Reads the topics' records with one consumer: from `since` or the beginning with a request
/// id, else the last `count` of each partition; on to the end: the high watermarks on Apache
/// Kafka, past them until polls find nothing on tansu (whose watermarks can lie low, see
/// `restore::read_changelog`).
fn read_topics(
    config: &KafkaConfig,
    topics: &[String],
    options: &InspectOptions,
    deadline: Instant,
) -> Result<BTreeMap<String, Vec<Raw>>, KafkaError> {
    let consumer: BaseConsumer = config.reader().create()?;
    let unreachable = |e| KafkaError::unreachable(config, "reading the pipeline's topics", e);
    let metadata = consumer.fetch_metadata(None, config.timeout).map_err(unreachable)?;
    let mut tpl = TopicPartitionList::new();
    // Where each partition's records end (as far as the broker says), and where reading is.
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut position: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in topics {
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len() as i32);
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(topic, p, config.timeout)
                .map_err(unreachable)?;
            ends.insert((topic.clone(), p), high);
            let from = if options.request_id.is_some() {
                low
            } else {
                low.max(high - options.count as i64)
            };
            position.insert((topic.clone(), p), from);
            tpl.add_partition_offset(topic, p, Offset::Offset(from))?;
        }
    }
    if let Some(since) = options.since_ms {
        let mut times = TopicPartitionList::new();
        for (topic, p) in ends.keys() {
            times.add_partition_offset(topic, *p, Offset::Offset(since))?;
        }
        // A broker that cannot answer by time is searched from the beginning.
        if let Ok(found) = consumer.offsets_for_times(times, config.timeout) {
            for e in found.elements() {
                let offset = match e.offset() {
                    Offset::Offset(o) => {
                        position.insert((e.topic().to_string(), e.partition()), o);
                        Offset::Offset(o)
                    }
                    // Nothing written since then: nothing to wait for.
                    _ => {
                        ends.insert((e.topic().to_string(), e.partition()), 0);
                        Offset::End
                    }
                };
                tpl.set_partition_offset(e.topic(), e.partition(), offset)?;
            }
        }
    }
    let mut out: BTreeMap<String, Vec<Raw>> = BTreeMap::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let exact = config.flavor.exact_watermarks();
    let mut quiet_since = Instant::now();
    loop {
        if Instant::now() > deadline {
            let read: usize = out.values().map(Vec::len).sum();
            return Err(KafkaError::Timeout(format!(
                "reading {} ({read} records so far); raise --wait-ms or narrow the search with --since",
                topics.join(", ")
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                position.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                let headers = super::text_headers(&m);
                out.entry(m.topic().to_string()).or_default().push(Raw {
                    partition: m.partition(),
                    offset: m.offset(),
                    timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    headers,
                    value: m.payload().unwrap_or_default().to_vec(),
                });
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                let at_end = ends
                    .iter()
                    .all(|(tp, high)| position.get(tp).copied().unwrap_or(0) >= *high);
                // Apache Kafka: at the high watermarks. tansu: there and quiet. Either: quiet
                // for long (the last offsets hold no record for us: transaction markers, or a
                // watermark past what is readable).
                let quiet = quiet_since.elapsed();
                if (at_end && (exact || quiet >= Duration::from_millis(300))) || quiet >= Duration::from_secs(2) {
                    break;
                }
            }
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

    #[test]
    fn timestamps_render_in_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_795_881_001_123), "2026-11-28T15:50:01.123Z");
    }
}
