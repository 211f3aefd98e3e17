//! Triggers (§5.4) and cycle revisit guards (§5.6).

use flowc_plan::JoinType;
use flowc_plan::{Port, Selection};
use prost::Message;

use super::join::restore;
use super::state::{GateState, GuardState};
use crate::envelope::{Envelope, Payload};
use crate::operator::{Ctx, OpError, Operator};
use crate::record::{header, step_headers};

/// Passes a record on to the gate when it carries one of the named tensors (any tensor for
/// `All`). Several trigger references to one topic fire on any of their tensors.
pub struct TriggerMatch {
    only: Option<Vec<String>>,
}

impl TriggerMatch {
    pub fn new(tensors: &Selection) -> Self {
        TriggerMatch {
            only: match tensors {
                Selection::All => None,
                Selection::Only(names) => Some(names.clone()),
            },
        }
    }
}

impl Operator for TriggerMatch {
    fn process(&mut self, _port: Port, envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let names = envelope.payload.tensor_names();
        let fires = match &self.only {
            None => !names.is_empty(),
            Some(only) => names.iter().any(|n| only.iter().any(|o| o == n)),
        };
        if fires {
            ctx.emit(envelope);
        }
        Ok(())
    }
}

/// Lets the data of a key through once its triggers fired within the window: all of them
/// (`inner`, `outer`), or one (`any`). Only the data is forwarded. The latest data of a key
/// wins; after the data passed, the key starts afresh (so a loop can pass the gate again).
pub struct TriggerGate {
    any: bool,
    window_ms: u64,
    triggers: u32,
}

impl TriggerGate {
    pub fn new(join_type: JoinType, window_ms: u64, triggers: u32) -> Self {
        TriggerGate {
            any: join_type == JoinType::Any,
            window_ms,
            triggers,
        }
    }
}

impl Operator for TriggerGate {
    fn process(&mut self, port: Port, envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let key = envelope.key.clone();
        let (mut state, expires) = match ctx.get(key.as_bytes())? {
            Some(entry) if entry.expires_at_ms.is_none_or(|t| t > ctx.now_ms) => {
                (GateState::decode(entry.value.as_slice())?, entry.expires_at_ms)
            }
            _ => (GateState::default(), None),
        };
        match port {
            Port::Data => state.data = Some(envelope.to_stored()),
            Port::Trigger(i) => {
                if !state.fired.contains(&i) {
                    state.fired.push(i);
                }
            }
            other => return Err(OpError::Invalid(format!("trigger gate got a record on port {other:?}"))),
        }
        let open = if self.any {
            !state.fired.is_empty()
        } else {
            (0..self.triggers).all(|i| state.fired.contains(&i))
        };
        if open && state.data.is_some() {
            ctx.delete(key.as_bytes())?;
            if let Some(data) = restore(state.data)? {
                ctx.emit(data);
            }
        } else {
            let expires = expires.unwrap_or(ctx.now_ms.saturating_add(self.window_ms as i64));
            ctx.put(key.as_bytes(), &state.encode_to_vec(), Some(expires))?;
        }
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        // Data whose triggers never fired (and triggers without data) are dropped.
        ctx.expire()?;
        Ok(())
    }
}

/// How long a revisit counter survives without a visit. A request still looping after this long
/// without reaching the step again is treated as gone (keeps state bounded when a request never
/// reaches the output, e.g. async-only pipelines or errors).
pub const REVISIT_COUNTER_TTL_MS: i64 = 10 * 60 * 1000;

/// Counts the visits of a key to a step inside a cycle; past `max_visits` the visit becomes an
/// error record (`seldon-pipeline-errors: <pipeline>`) instead. A key arriving on the `Clear`
/// port (the pipeline's output reached) resets its counter.
pub struct CycleGuard {
    max_visits: u32,
    pipeline: String,
    step: String,
}

impl CycleGuard {
    pub fn new(max_visits: u32, pipeline: &str, step: &str) -> Self {
        CycleGuard {
            max_visits,
            pipeline: pipeline.to_string(),
            step: step.to_string(),
        }
    }
}

impl Operator for CycleGuard {
    fn process(&mut self, port: Port, mut envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let key = envelope.key.clone();
        if port == Port::Clear {
            return ctx.delete(key.as_bytes());
        }
        let visits = match ctx.get(key.as_bytes())? {
            Some(entry) => GuardState::decode(entry.value.as_slice())?.visits,
            None => 0,
        }
        .saturating_add(1);
        let state = GuardState { visits };
        ctx.put(
            key.as_bytes(),
            &state.encode_to_vec(),
            Some(ctx.now_ms.saturating_add(REVISIT_COUNTER_TTL_MS)),
        )?;
        if visits <= self.max_visits {
            ctx.emit(envelope);
            return Ok(());
        }
        let text = format!(
            "ERROR: Max step revisits ({}) exceeded for step {} of pipeline {}",
            self.max_visits.saturating_sub(1),
            self.step,
            self.pipeline
        );
        envelope.headers = step_headers(&envelope.headers, &self.pipeline);
        envelope.headers.retain(|(n, _)| n != header::PIPELINE_ERRORS);
        envelope
            .headers
            .push((header::PIPELINE_ERRORS.to_string(), self.pipeline.as_bytes().to_vec()));
        envelope.payload = Payload::Error(text.into_bytes().into());
        ctx.emit_error(envelope);
        Ok(())
    }

    fn punctuate(&mut self, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        ctx.expire()?;
        Ok(())
    }
}
