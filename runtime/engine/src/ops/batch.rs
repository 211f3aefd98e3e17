//! Batching (§5.5): requests are merged by tensor name along dim 0 until dim 0 of the first
//! tensor reaches `size`, then forwarded once under the last request's key, with its `id`,
//! `parameters` and headers. Earlier keys get no output.
//!
//! **flowc**: the buffer is a state store entry (one per task) with a changelog, so a batch
//! survives a restart or a partition move; `window_ms` flushes a partial batch on the timer.
//! `rolling: true` makes it a sliding window: after a batch is emitted, only the oldest
//! requests are dropped, just enough to fall below `size`, so every later request emits the
//! most recent `size` rows (Seldon accepts the field and ignores it).

use flowc_plan::Port;
use prost::Message;

use super::state::BatchState;
use super::{message_of, payload_like};
use crate::envelope::{Envelope, Payload};
use crate::operator::{Ctx, OpError, Operator};
use flowc_oip::tensor::merge_batch;

/// The one key of a task's batch buffer.
const BUFFER: &[u8] = b"batch";

pub struct Batch {
    size: Option<u64>,
    window_ms: Option<u64>,
    rolling: bool,
}

impl Batch {
    pub fn new(size: Option<u64>, window_ms: Option<u64>, rolling: bool) -> Self {
        Batch {
            size,
            window_ms,
            rolling,
        }
    }
}

/// Dim 0 of the first tensor (1 for a scalar or an empty message).
fn rows(envelope: &Envelope) -> u64 {
    let shape = match &envelope.payload {
        Payload::Request(r) => r.inputs.first().map(|t| t.shape.as_slice()),
        Payload::Response(r) => r.outputs.first().map(|t| t.shape.as_slice()),
        _ => None,
    };
    shape
        .and_then(|s| s.first())
        .map_or(1, |d| u64::try_from(*d).unwrap_or(0))
}

fn flush(members: &[Envelope]) -> Result<Envelope, OpError> {
    let last = members
        .last()
        .ok_or_else(|| OpError::Invalid("empty batch".to_string()))?
        .clone();
    let decoded = members.iter().map(message_of).collect::<Result<Vec<_>, _>>()?;
    let tensors = merge_batch(&decoded.iter().map(|m| m.tensors.clone()).collect::<Vec<_>>())?;
    let mut message = decoded.last().cloned().expect("non-empty");
    message.tensors = tensors;
    message.encoding = decoded[0].encoding;
    let mut out = last;
    out.payload = payload_like(&out.payload, &message)?;
    Ok(out)
}

impl Operator for Batch {
    fn process(&mut self, _port: Port, envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let (mut state, expires) = match ctx.get(BUFFER)? {
            Some(entry) => (BatchState::decode(entry.value.as_slice())?, entry.expires_at_ms),
            None => (BatchState::default(), None),
        };
        state.members.push(envelope.to_stored());
        let mut members = state
            .members
            .iter()
            .cloned()
            .map(|s| s.into_envelope())
            .collect::<Result<Vec<_>, _>>()?;
        let total: u64 = members.iter().map(rows).sum();
        if self.size.is_some_and(|size| total >= size) {
            let out = flush(&members);
            if self.rolling {
                let size = self.size.unwrap_or(1);
                let mut total = total;
                while total >= size && !members.is_empty() {
                    total -= rows(&members.remove(0));
                }
                let kept = BatchState {
                    members: members.iter().map(Envelope::to_stored).collect(),
                };
                ctx.put(BUFFER, &kept.encode_to_vec(), expires)?;
            } else {
                ctx.delete(BUFFER)?;
            }
            // A batch that cannot be merged (mismatched tensors) is an error for its last key;
            // the buffer is cleared either way so one bad request does not block the step.
            ctx.emit(out?);
            return Ok(());
        }
        let expires = match (expires, self.window_ms) {
            (Some(t), _) => Some(t),
            (None, Some(w)) => Some(ctx.now_ms.saturating_add(w as i64)),
            (None, None) => None,
        };
        ctx.put(BUFFER, &state.encode_to_vec(), expires)?;
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        for entry in ctx.expire()? {
            let state = BatchState::decode(entry.value.as_slice())?;
            let members = state
                .members
                .into_iter()
                .map(|s| s.into_envelope())
                .collect::<Result<Vec<_>, _>>()?;
            if !members.is_empty() {
                ctx.emit(flush(&members)?);
            }
        }
        Ok(())
    }
}
