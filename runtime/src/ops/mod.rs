//! The operators, one per kind of plan node (see `operator::build_operator`).
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

use crate::envelope::{Envelope, Payload};
use crate::operator::OpError;
use crate::tensor::InferMessage;

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
