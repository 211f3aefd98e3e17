//! W3C trace context (`traceparent: 00-<trace-id>-<parent-id>-<flags>`) carried in record
//! headers (§4.3), so one request is one trace across the gateway, every worker hop and the
//! model calls. The gateway starts or continues the caller's trace; each hop writes its own
//! span id under the same trace id; a model call passes it to the model server as a request
//! header. Records without a `traceparent` (an async producer that sets none) stay without one.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::record::header;

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: u128,
    pub span_id: u64,
    pub flags: u8,
}

impl TraceParent {
    /// Version 00 only; all-zero ids are invalid (W3C Trace Context §3.2).
    pub fn parse(text: &str) -> Option<TraceParent> {
        let mut parts = text.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if parts.next().is_some() || version != "00" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
            return None;
        }
        let tp = TraceParent {
            trace_id: u128::from_str_radix(trace, 16).ok()?,
            span_id: u64::from_str_radix(span, 16).ok()?,
            flags: u8::from_str_radix(flags, 16).ok()?,
        };
        (tp.trace_id != 0 && tp.span_id != 0).then_some(tp)
    }

    /// A new trace (sampled).
    pub fn new_trace() -> TraceParent {
        TraceParent {
            trace_id: (u128::from(random_u64()) << 64) | u128::from(random_u64()),
            span_id: random_u64(),
            flags: 1,
        }
    }

    /// A child span of this one: same trace, a new span id.
    pub fn child(&self) -> TraceParent {
        TraceParent {
            span_id: random_u64(),
            ..*self
        }
    }

    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

/// A non-zero random 64-bit id (std's randomly keyed SipHash over a counter and the time; ids
/// need to be unique, not secret).
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish().max(1)
}

/// A hop's headers: the incoming `traceparent`, if any, replaced by a child span of it.
/// Returns the parent and the child (the hop's span), for the span's export.
pub fn next_hop(headers: &mut Vec<(String, Vec<u8>)>) -> Option<(TraceParent, TraceParent)> {
    let i = headers.iter().position(|(k, _)| k == header::TRACEPARENT)?;
    let parent = std::str::from_utf8(&headers[i].1).ok().and_then(TraceParent::parse);
    match parent {
        Some(p) => {
            let child = p.child();
            headers[i].1 = child.to_string().into_bytes();
            Some((p, child))
        }
        // Not a valid traceparent: dropped rather than passed on (W3C: restart or drop).
        None => {
            headers.remove(i);
            None
        }
    }
}

/// The span name of a hop that writes `topic`: the topic past its prefix and namespace
/// (`model.tfsimple1.inputs`, `pipeline.chain.outputs`, `errors.errors`).
pub fn hop_name(topic: &str) -> String {
    let short = [".model.", ".pipeline.", ".errors."]
        .iter()
        .filter_map(|marker| topic.rfind(marker).map(|at| &topic[at + 1..]))
        .min_by_key(|rest| rest.len())
        .unwrap_or(topic);
    format!("hop {short}")
}

/// ms since the epoch as a `SystemTime`.
pub fn system_time(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// A record's `traceparent` and a child span of it, for a model call's request header (the
/// parent for the call's span).
pub fn child_of(headers: &[(String, Vec<u8>)]) -> Option<(TraceParent, TraceParent)> {
    headers
        .iter()
        .find(|(k, _)| k == header::TRACEPARENT)
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
        .and_then(TraceParent::parse)
        .map(|p| (p, p.child()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_print_and_children() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let tp = TraceParent::parse(text).expect("valid");
        assert_eq!(tp.to_string(), text);
        assert_eq!(tp.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        let child = tp.child();
        assert_eq!(child.trace_id, tp.trace_id);
        assert_ne!(child.span_id, tp.span_id);
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        let fresh = TraceParent::new_trace();
        assert_eq!(TraceParent::parse(&fresh.to_string()), Some(fresh));
    }

    #[test]
    fn hops_continue_the_trace_and_leave_untraced_records_alone() {
        let text = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let mut headers = vec![("traceparent".to_string(), text.as_bytes().to_vec())];
        next_hop(&mut headers);
        let after = TraceParent::parse(std::str::from_utf8(&headers[0].1).unwrap()).unwrap();
        assert_eq!(after.trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert_ne!(after.span_id, 0xb7ad6b7169203331);
        let mut none: Vec<(String, Vec<u8>)> = vec![("pipeline".into(), b"p".to_vec())];
        next_hop(&mut none);
        assert_eq!(none, vec![("pipeline".to_string(), b"p".to_vec())]);
        let mut bad = vec![("traceparent".to_string(), b"garbage".to_vec())];
        next_hop(&mut bad);
        assert!(bad.is_empty());
    }

    #[test]
    fn hops_are_named_after_the_topic_they_write() {
        assert_eq!(
            hop_name("seldon.default.model.tfsimple1.inputs"),
            "hop model.tfsimple1.inputs"
        );
        assert_eq!(
            hop_name("t0-x.default.pipeline.chain.outputs"),
            "hop pipeline.chain.outputs"
        );
        assert_eq!(hop_name("seldon.default.errors.errors"), "hop errors.errors");
        // A namespace or prefix that looks like a marker does not confuse it.
        assert_eq!(hop_name("a.model.default.model.m.outputs"), "hop model.m.outputs");
        assert_eq!(hop_name("plain"), "hop plain");
    }
}

/// What a span is to the process that records it (OTLP span kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Server,
    Client,
    Producer,
}

/// One finished span: `ids` are its trace and span id (the `traceparent` it wrote or sent),
/// `parent` the span id it continues, if any (`remote`: from another process).
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub kind: Kind,
    pub ids: TraceParent,
    pub parent: Option<u64>,
    pub remote_parent: bool,
    pub start: std::time::SystemTime,
    pub end: std::time::SystemTime,
    pub attributes: Vec<(&'static str, String)>,
    /// The error it ended with, if it failed.
    pub error: Option<String>,
}
