//! Joins by key (§5.3).
//!
//! - `inner`: emit once every port has a record for the key within the window; an incomplete
//!   entry is dropped when its window closes (so state stays bounded).
//! - `outer`: emit as soon as every port matched; otherwise emit what arrived when the window
//!   closes, on the timer (**flowc**: no later record needed).
//! - `any`: every record is emitted on its own at once; no state.
//!
//! The merged message has the tensors of every port in port order (duplicates kept), the `id`
//! and `parameters` of the lowest port, and that port's headers. A later record of a port
//! replaces the earlier one of the same key.

use flowc_plan::JoinType;
use flowc_plan::Port;
use prost::Message;

use super::state::{JoinPart, JoinState};
use super::{message_of, payload_like};
use crate::envelope::{Envelope, StoredEnvelope};
use crate::operator::{Ctx, OpError, Operator};

pub struct Join {
    join_type: JoinType,
    window_ms: u64,
    inputs: u32,
}

impl Join {
    pub fn new(join_type: JoinType, window_ms: u64, inputs: u32) -> Self {
        Join {
            join_type,
            window_ms,
            inputs,
        }
    }
}

/// Merges the parts (sorted by port) into one envelope; `last` supplies partition and time.
pub(crate) fn merge(mut parts: Vec<(u32, Envelope)>, last: Option<&Envelope>) -> Result<Envelope, OpError> {
    parts.sort_by_key(|(port, _)| *port);
    let mut iter = parts.into_iter();
    let Some((_, mut first)) = iter.next() else {
        return Err(OpError::Invalid("join with no parts".to_string()));
    };
    let rest: Vec<Envelope> = iter.map(|(_, e)| e).collect();
    if !rest.is_empty() {
        let mut merged = message_of(&first)?;
        for part in &rest {
            merged.tensors.extend(message_of(part)?.tensors);
        }
        first.payload = payload_like(&first.payload, &merged)?;
    }
    if let Some(last) = last {
        first.partition = last.partition;
        first.timestamp_ms = last.timestamp_ms;
    }
    Ok(first)
}

fn decode_parts(state: JoinState) -> Result<Vec<(u32, Envelope)>, OpError> {
    state
        .parts
        .into_iter()
        .filter_map(|p| p.envelope.map(|e| (p.port, e)))
        .map(|(port, e)| Ok((port, e.into_envelope()?)))
        .collect()
}

impl Operator for Join {
    fn process(&mut self, port: Port, envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        if self.join_type == JoinType::Any {
            ctx.emit(envelope);
            return Ok(());
        }
        let Port::Join(index) = port else {
            return Err(OpError::Invalid(format!("join got a record on port {port:?}")));
        };
        let key = envelope.key.clone();
        let (mut state, expires) = match ctx.get(key.as_bytes())? {
            Some(entry) if entry.expires_at_ms.is_some_and(|t| t <= ctx.now_ms) => {
                // The window closed but the timer has not run yet: close it now (an outer join
                // emits what it had), then this record starts a new window.
                if self.join_type == JoinType::Outer {
                    let parts = decode_parts(JoinState::decode(entry.value.as_slice())?)?;
                    if !parts.is_empty() {
                        ctx.emit(merge(parts, None)?);
                    }
                }
                (JoinState::default(), None)
            }
            Some(entry) => (JoinState::decode(entry.value.as_slice())?, entry.expires_at_ms),
            None => (JoinState::default(), None),
        };
        let expires = expires.unwrap_or(ctx.now_ms.saturating_add(self.window_ms as i64));
        state.parts.retain(|p| p.port != index);
        state.parts.push(JoinPart {
            port: index,
            envelope: Some(envelope.to_stored()),
        });
        let complete = (0..self.inputs).all(|i| state.parts.iter().any(|p| p.port == i));
        if complete {
            ctx.delete(key.as_bytes())?;
            let parts = decode_parts(state)?;
            ctx.emit(merge(parts, Some(&envelope))?);
        } else {
            ctx.put(key.as_bytes(), &state.encode_to_vec(), Some(expires))?;
        }
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        if self.join_type == JoinType::Any {
            return Ok(());
        }
        for entry in ctx.expire()? {
            if self.join_type == JoinType::Outer {
                let parts = decode_parts(JoinState::decode(entry.value.as_slice())?)?;
                if !parts.is_empty() {
                    ctx.emit(merge(parts, None)?);
                }
            }
        }
        Ok(())
    }
}

/// Used by the batch and the gate too: a stored envelope back to a live one.
pub(crate) fn restore(stored: Option<StoredEnvelope>) -> Result<Option<Envelope>, OpError> {
    stored.map(|s| s.into_envelope().map_err(OpError::from)).transpose()
}
