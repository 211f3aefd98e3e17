//! The operators, one per kind of plan node, and their registry ([`build_operator`]).
//! Operators depend on `operator` (the trait, `Ctx`); `operator` depends on none of them.
//!
//! Stateful operators keep their state in the task's store for their node, keyed by the
//! request key (the batch keeps one entry per task), as protobuf messages (`state.rs` below).
//! Windows run on processing time: an entry expires `window_ms` after the first record of its
//! key arrived, and `punctuate` (a timer) closes what is due, so outer joins and partial
//! batches are emitted without waiting for a later record (**flowc**, §5.3, §5.5).

mod batch;
mod io;
mod join;
mod select;
mod state;
mod trigger;

pub use batch::Batch;
pub use io::{ModelCall, Sink, Source};
pub use join::Join;
pub use select::Select;
pub use trigger::{CycleGuard, TriggerGate, TriggerMatch};

use std::sync::Arc;

use flowc_plan::{Node, Op};

use crate::envelope::{Envelope, Payload};
use crate::operator::{BuildError, ModelBackend, OpError, Operator};
use crate::telemetry::Telemetry;
use flowc_oip::tensor::InferMessage;

/// Decodes a request or response for merging.
pub(crate) fn message_of(envelope: &Envelope) -> Result<InferMessage, OpError> {
    match &envelope.payload {
        Payload::Request(r) => Ok(InferMessage::from_request(r)?),
        Payload::Response(r) => Ok(InferMessage::from_response(r)?),
        other => Err(OpError::Invalid(format!("cannot merge a {other:?} record"))),
    }
}

/// Rebuilds a payload of the same kind as `like` from a merged message.
pub(crate) fn payload_like(like: &Payload, message: &InferMessage) -> Result<Payload, OpError> {
    match like {
        Payload::Response(_) => Ok(Payload::Response(message.to_response()?)),
        _ => Ok(Payload::Request(message.to_request()?)),
    }
}

/// What building an operator may need beyond its node.
pub struct BuildEnv<'a> {
    /// The pipeline the sub-topology belongs to (error records name it).
    pub pipeline: &'a str,
    /// Partition count of a topic (sinks keep partitions, §4.2).
    pub partitions: &'a dyn Fn(&str) -> i32,
    /// How model calls are made; `None` where this process does not run models.
    pub models: Option<Arc<dyn ModelBackend>>,
    /// Model calls are handed out to be made by the caller ([`crate::task::Task::resume`]),
    /// not made in place: a fused task in a worker, which makes many at once.
    pub defer_calls: bool,
    /// Why a record of `size` bytes for `topic` written by step `step` is over the size the
    /// broker takes (`None`: it fits; no check at all where this is `None`). A lineage sink
    /// asks before it hands its record on: a record its topic would refuse stops the request
    /// with an error there, as it would in a per-hop pipeline.
    pub oversize: Option<Oversize>,
    /// Where metrics and spans go ([`crate::telemetry::NoTelemetry`]: nowhere).
    pub telemetry: Arc<dyn Telemetry>,
}

/// See [`BuildEnv::oversize`]: `(topic, step, size) -> error text`.
pub type Oversize = Arc<dyn Fn(&str, &str, usize) -> Option<String> + Send + Sync>;

/// The registry: an operator for every kind of plan node.
pub fn build_operator(node: &Node, env: &BuildEnv<'_>) -> Result<Box<dyn Operator>, BuildError> {
    let fail = |reason: &str| BuildError::Node {
        node: node.name.clone(),
        reason: reason.to_string(),
    };
    Ok(match &node.op {
        Op::Source { payload, pipeline, .. } => Box::new(Source::new(*payload, pipeline.clone())),
        Op::Select {
            tensors,
            renames,
            from,
            to,
        } => Box::new(Select::new(tensors, renames, *from, *to)),
        Op::Join {
            join_type,
            window_ms,
            inputs,
            ..
        } => Box::new(Join::new(*join_type, *window_ms, *inputs)),
        Op::TriggerMatch { tensors } => Box::new(TriggerMatch::new(tensors)),
        Op::TriggerGate {
            join_type,
            window_ms,
            triggers,
            ..
        } => Box::new(TriggerGate::new(*join_type, *window_ms, *triggers)),
        Op::CycleGuard { max_visits, .. } => {
            let step = node.name.split('/').next().unwrap_or(&node.name);
            Box::new(CycleGuard::new(*max_visits, env.pipeline, step))
        }
        Op::Batch {
            size,
            window_ms,
            rolling,
            ..
        } => Box::new(Batch::new(*size, *window_ms, *rolling)),
        Op::ModelCall { model } => {
            let backend = env
                .models
                .clone()
                .ok_or_else(|| fail("no model backend to call models with"))?;
            Box::new(ModelCall::new(model, backend, env.defer_calls, env.telemetry.clone()))
        }
        Op::Sink {
            topic,
            payload,
            pipeline,
            lineage,
        } => Box::new(Sink::new(
            topic,
            *payload,
            pipeline.clone(),
            (env.partitions)(topic),
            lineage.then(|| {
                let step = node.name.split('/').next().unwrap_or(&node.name).to_string();
                (step, env.oversize.clone())
            }),
            env.telemetry.clone(),
        )),
    })
}
