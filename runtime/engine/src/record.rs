//! Kafka records as the runtime sees them, and the rules every hop applies to their keys,
//! partitions and headers (§4.2, §4.3).
//!
//! The rules are plain functions over [`Record`] so that the in-memory test driver and the Kafka
//! worker apply exactly the same ones:
//! - partition keeping: [`output_partition`] (a gateway key's leading partition, clamped; any
//!   other key keeps the partition it was read from, where Seldon would send it to partition 0),
//! - header rules: [`step_headers`] (set `pipeline`, strip the alibi headers, pass the rest),
//! - error records: [`error_record`] (`seldon-pipeline-errors: <source>`, UTF-8 text value).
//!
//! Header names are compared exactly: Kafka header names are case-sensitive and Seldon writes
//! them in lower case. Where a header occurs more than once, the last one counts (as Kafka's
//! `lastHeader`), and setting a header replaces every earlier value.

use bytes::Bytes;

/// Header names of §4.3.
pub mod header {
    /// The pipeline a record belongs to; every record a step writes carries its pipeline's name.
    pub const PIPELINE: &str = "pipeline";
    /// The pipeline version.
    pub const PIPELINE_VERSION: &str = "x-pipeline-version";
    /// The raw request id (the id part of a gateway key).
    pub const REQUEST_ID: &str = "x-request-id";
    /// Marks an error record; the value names the model (or pipeline) that failed.
    pub const PIPELINE_ERRORS: &str = "seldon-pipeline-errors";
    /// Removed by every step.
    pub const ALIBI_TYPE: &str = "x-seldon-alibi-type";
    /// Removed by every step.
    pub const ALIBI_METHOD: &str = "x-seldon-alibi-method";
    /// W3C trace context, rewritten at each hop by the tracing propagator.
    pub const TRACEPARENT: &str = "traceparent";
    /// **flowc** (§10): a synchronous request's deadline, epoch milliseconds, stamped by the
    /// gateway and carried by every hop; a step or model call that finds it passed writes an
    /// error record instead of working on it. Records without it never expire.
    pub const DEADLINE: &str = flowc_oip::backend::DEADLINE_HEADER;
    /// **flowc** (§10): a model request or response a fused pipeline's task wrote as lineage
    /// (value `fused`); it made the call itself, so the model gateway does not call again.
    pub const LINEAGE: &str = "x-flowc-lineage";
}

/// Record headers in order; names may repeat.
pub type Headers = Vec<(String, Vec<u8>)>;

/// One Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The request's correlation id (§4.2); never changed along the pipeline.
    pub key: String,
    /// Protobuf `ModelInferRequest`/`ModelInferResponse`, or UTF-8 error text.
    pub value: Bytes,
    pub headers: Headers,
    pub partition: i32,
    pub timestamp_ms: i64,
}

impl Record {
    /// The last value of header `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header_value(&self.headers, name)
    }

    /// The last value of header `name`, if it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Replaces every value of header `name` with `value`.
    pub fn set_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        set_header(&mut self.headers, name, value.into());
    }

    /// Removes every value of header `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(n, _)| n != name);
    }

    /// The `pipeline` header.
    pub fn pipeline(&self) -> Option<&str> {
        self.header_str(header::PIPELINE)
    }

    /// Whether a step of `pipeline` should read this record (§4.3): its `pipeline` header names
    /// that pipeline. A record without the header belongs to no pipeline.
    pub fn belongs_to(&self, pipeline: &str) -> bool {
        self.pipeline() == Some(pipeline)
    }

    /// The model or pipeline named by `seldon-pipeline-errors`, if this is an error record.
    pub fn error_source(&self) -> Option<&str> {
        self.header_str(header::PIPELINE_ERRORS)
    }

    pub fn is_error(&self) -> bool {
        self.header(header::PIPELINE_ERRORS).is_some()
    }
}

fn header_value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

fn set_header(headers: &mut Headers, name: &str, value: Vec<u8>) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.to_string(), value));
}

/// The headers a pipeline step writes for a record it read (§4.3): the `pipeline` header set to
/// `pipeline` (older values replaced), `x-seldon-alibi-type` and `x-seldon-alibi-method` removed,
/// everything else passed through in order.
pub fn step_headers(incoming: &[(String, Vec<u8>)], pipeline: &str) -> Headers {
    let mut headers: Headers = incoming
        .iter()
        // The lineage mark is the fused task's own: what a step reads of a lineage record and
        // writes on is ordinary data (another pipeline chaining from it, say).
        .filter(|(n, _)| {
            n != header::ALIBI_TYPE && n != header::ALIBI_METHOD && n != header::PIPELINE && n != header::LINEAGE
        })
        .cloned()
        .collect();
    headers.push((header::PIPELINE.to_string(), pipeline.as_bytes().to_vec()));
    headers
}

/// The record a step of `pipeline` writes for `input` (§4.2, §4.3): same key and timestamp, the
/// step's headers, and the partition kept by [`output_partition`] for a sink topic of
/// `partition_count` partitions.
pub fn forward(input: &Record, pipeline: &str, value: Bytes, partition_count: i32) -> Record {
    Record {
        key: input.key.clone(),
        value,
        headers: step_headers(&input.headers, pipeline),
        partition: output_partition(&input.key, input.partition, partition_count),
        timestamp_ms: input.timestamp_ms,
    }
}

/// An error record for `input` (§4.3, §6): same key and timestamp, the UTF-8 error text as value,
/// `input`'s headers with `seldon-pipeline-errors: <source>` (replacing any earlier marker).
/// `source` is the failing model, or the pipeline's name for an error the dataflow itself raises;
/// a step raising one also applies [`step_headers`] first so that the record names its pipeline.
/// `partition_count` is the errors topic's.
pub fn error_record(input: &Record, source: &str, text: &str, partition_count: i32) -> Record {
    let mut headers = input.headers.clone();
    set_header(&mut headers, header::PIPELINE_ERRORS, source.as_bytes().to_vec());
    Record {
        key: input.key.clone(),
        value: Bytes::copy_from_slice(text.as_bytes()),
        headers,
        partition: output_partition(&input.key, input.partition, partition_count),
        timestamp_ms: input.timestamp_ms,
    }
}

/// The key the synchronous gateway writes: `"<partition>.<pipeline>.<request-id>"` (§4.2).
/// What a record costs in a produce request beyond its key, value and headers (batch and
/// record framing), rounded up: a record of more than `max.message.bytes` minus this may be
/// refused.
pub const RECORD_OVERHEAD_BYTES: usize = 128;

/// The bytes `record` takes in a produce request, as the size limits count them (key, value,
/// headers and [`RECORD_OVERHEAD_BYTES`]).
pub fn record_size(record: &Record) -> usize {
    record.key.len()
        + record.value.len()
        + record.headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>()
        + RECORD_OVERHEAD_BYTES
}

pub use flowc_oip::backend::{deadline_text, is_deadline_text};

pub fn gateway_key(partition: i32, pipeline: &str, request_id: &str) -> String {
    format!("{partition}.{pipeline}.{request_id}")
}

/// A gateway key's parts: partition, pipeline and request id. `None` for any other key. Pipeline
/// names contain no `.`, so the id is everything after the second dot and may contain dots.
pub fn parse_gateway_key(key: &str) -> Option<(i64, &str, &str)> {
    let partition = key_partition(key)?;
    let rest = key.split_once('.')?.1;
    let (pipeline, id) = rest.split_once('.')?;
    if pipeline.is_empty() {
        return None;
    }
    Some((partition, pipeline, id))
}

/// The leading integer of a key: ASCII digits followed by a `.`, as in a gateway key. Too many
/// digits saturate (they are clamped to the topic anyway). A key that is only digits, such as an
/// async producer's numeric id, has no leading integer: only the gateway's form carries a
/// partition.
pub fn key_partition(key: &str) -> Option<i64> {
    let (lead, _) = key.split_once('.')?;
    if lead.is_empty() || !lead.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(lead.bytes().fold(0i64, |acc, b| {
        acc.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    }))
}

/// The partition a hop writes to (§4.2): the key's leading integer clamped to
/// `0..partition_count`; without one (**flowc**) the partition the record was read from, also
/// clamped, so that a join's sources stay co-partitioned.
pub fn output_partition(key: &str, read_partition: i32, partition_count: i32) -> i32 {
    let last = i64::from(partition_count.max(1) - 1);
    let wanted = key_partition(key).unwrap_or(i64::from(read_partition));
    // Clamped into 0..=last, which fits in i32.
    wanted.clamp(0, last) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> (String, Vec<u8>) {
        (name.to_string(), value.as_bytes().to_vec())
    }

    fn record(key: &str, partition: i32, headers: Headers) -> Record {
        Record {
            key: key.to_string(),
            value: Bytes::from_static(b"v"),
            headers,
            partition,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn gateway_keys_keep_their_partition_clamped_to_the_topic() {
        assert_eq!(output_partition("2.p.abc", 0, 4), 2);
        assert_eq!(output_partition("7.p.abc", 0, 4), 3);
        assert_eq!(output_partition("0.p.abc", 3, 4), 0);
        // Saturates instead of overflowing.
        assert_eq!(output_partition("99999999999999999999999.p.x", 0, 4), 3);
        // Read partition is irrelevant when the key carries one.
        assert_eq!(output_partition("1.p.x", 3, 4), 1);
    }

    #[test]
    fn keys_without_a_leading_integer_keep_the_read_partition() {
        for key in ["order-17", "", ".p.x", "12345", "12ab.p.x", "-1.p.x", "a.1.x"] {
            assert_eq!(output_partition(key, 2, 4), 2, "{key:?}");
        }
        // The read partition is clamped too when the sink has fewer partitions.
        assert_eq!(output_partition("order-17", 5, 4), 3);
        // A topic that reports no partitions still yields a valid one.
        assert_eq!(output_partition("3.p.x", 2, 0), 0);
    }

    #[test]
    fn gateway_keys_parse_back() {
        let key = gateway_key(3, "iris", "req.1");
        assert_eq!(key, "3.iris.req.1");
        assert_eq!(parse_gateway_key(&key), Some((3, "iris", "req.1")));
        assert_eq!(parse_gateway_key("3..x"), None);
        assert_eq!(parse_gateway_key("3.p"), None);
        assert_eq!(parse_gateway_key("order-17"), None);
        assert_eq!(key_partition("12.p.x"), Some(12));
        assert_eq!(key_partition("12"), None);
    }

    #[test]
    fn step_headers_replace_pipeline_strip_alibi_and_pass_the_rest() {
        let incoming = vec![
            h("pipeline", "other"),
            h("x-request-id", "abc"),
            h("x-seldon-alibi-type", "explainer"),
            h("custom", "1"),
            h("x-seldon-alibi-method", "anchors"),
            h("pipeline", "older"),
            h("custom", "2"),
        ];
        assert_eq!(
            step_headers(&incoming, "p"),
            vec![
                h("x-request-id", "abc"),
                h("custom", "1"),
                h("custom", "2"),
                h("pipeline", "p"),
            ]
        );
        // A record without headers gains the pipeline header.
        assert_eq!(step_headers(&[], "p"), vec![h("pipeline", "p")]);
        // Names are exact: other spellings pass through.
        let upper = vec![h("X-Seldon-Alibi-Type", "t")];
        assert_eq!(
            step_headers(&upper, "p"),
            vec![h("X-Seldon-Alibi-Type", "t"), h("pipeline", "p")]
        );
    }

    #[test]
    fn records_belong_to_the_pipeline_their_header_names() {
        let r = record("k", 0, vec![h("pipeline", "a"), h("pipeline", "b")]);
        assert_eq!(r.pipeline(), Some("b"));
        assert!(r.belongs_to("b"));
        assert!(!r.belongs_to("a"));
        assert!(!record("k", 0, vec![]).belongs_to("b"));
        let not_utf8 = record("k", 0, vec![("pipeline".into(), vec![0xff])]);
        assert!(!not_utf8.belongs_to("b"));
    }

    #[test]
    fn set_and_remove_header_replace_every_value() {
        let mut r = record("k", 0, vec![h("a", "1"), h("b", "2"), h("a", "3")]);
        r.set_header("a", "4");
        assert_eq!(r.headers, vec![h("b", "2"), h("a", "4")]);
        r.remove_header("b");
        assert_eq!(r.headers, vec![h("a", "4")]);
        assert_eq!(r.header_str("a"), Some("4"));
        assert_eq!(r.header("b"), None);
    }

    #[test]
    fn forward_keeps_key_timestamp_partition_and_applies_step_headers() {
        let input = record("1.p.req", 3, vec![h("pipeline", "p"), h("x-seldon-alibi-method", "m")]);
        let out = forward(&input, "p", Bytes::from_static(b"out"), 2);
        assert_eq!(out.key, "1.p.req");
        assert_eq!(out.partition, 1);
        assert_eq!(out.timestamp_ms, input.timestamp_ms);
        assert_eq!(out.value, Bytes::from_static(b"out"));
        assert_eq!(out.headers, vec![h("pipeline", "p")]);
    }

    #[test]
    fn error_records_carry_the_source_and_the_text() {
        let input = record(
            "async-key",
            1,
            vec![
                h("pipeline", "p"),
                h("seldon-pipeline-errors", "stale"),
                h("x-request-id", "r"),
            ],
        );
        let err = error_record(&input, "iris", "ERROR: model unreachable", 4);
        assert!(err.is_error());
        assert_eq!(err.error_source(), Some("iris"));
        assert_eq!(err.value, Bytes::from_static(b"ERROR: model unreachable"));
        assert_eq!(err.key, "async-key");
        assert_eq!(err.partition, 1);
        assert_eq!(
            err.headers,
            vec![
                h("pipeline", "p"),
                h("x-request-id", "r"),
                h("seldon-pipeline-errors", "iris"),
            ]
        );
        assert!(!record("k", 0, vec![h("pipeline", "p")]).is_error());
    }
}
