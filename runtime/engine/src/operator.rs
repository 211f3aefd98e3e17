//! The operator interface: the [`Operator`] trait, its context [`Ctx`] (store, outputs,
//! changelog) and the model backend operators call. The one registry that rebuilds every
//! operator from the plan (as Arroyo's workers do) is `ops::build_operator`: operators depend
//! on this module, never the other way round.

use std::sync::Arc;

use flowc_plan::Port;

use crate::envelope::Envelope;
use crate::record::Record;
use crate::state::{ChangelogRecord, Entry, StateError, StateStore};
use crate::telemetry::{CallMetrics, Telemetry};
use crate::trace::{Kind, Span};

pub use flowc_oip::{CallAnswer, ModelBackend, ModelCallError};

/// What making a call of one model needs: the backend, the model's metrics (resolved once,
/// not per call) and where spans go.
pub struct Callee {
    pub(crate) model: String,
    pub(crate) backend: Arc<dyn ModelBackend>,
    pub(crate) metrics: Arc<dyn CallMetrics>,
    pub(crate) telemetry: Arc<dyn Telemetry>,
}

/// A call ready to be made, away from its task.
pub struct PreparedCall {
    pub(crate) callee: Arc<Callee>,
    pub(crate) request: flowc_oip::proto::inference::ModelInferRequest,
    /// `traceparent` (and the deadline) for the model server.
    pub(crate) traced: Vec<(String, String)>,
    pub(crate) span: Option<(crate::trace::TraceParent, crate::trace::TraceParent)>,
}

impl PreparedCall {
    /// Makes the call (blocking); may be made again with the same result for a retry.
    pub fn call(&self) -> CallAnswer {
        let c = &self.callee;
        let started = std::time::Instant::now();
        let began = std::time::SystemTime::now();
        let answer = c.backend.call(&c.model, self.request.clone(), &self.traced);
        c.metrics
            .observe(started.elapsed().as_secs_f64(), answer.as_ref().err());
        if let Some((parent, call)) = self.span.filter(|_| c.telemetry.spans_enabled()) {
            c.telemetry.span(Span {
                name: format!("call {}", c.model),
                kind: Kind::Client,
                ids: call,
                parent: Some(parent.span_id),
                remote_parent: true,
                start: began,
                end: std::time::SystemTime::now(),
                attributes: vec![("flowc.model", c.model.clone())],
                error: answer.as_ref().err().map(|e| format!("{e:?}")),
            });
        }
        answer
    }

    pub fn model(&self) -> &str {
        &self.callee.model
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("malformed record: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{0}")]
    Tensor(#[from] flowc_oip::tensor::TensorError),
    #[error("{0}")]
    Invalid(String),
    /// A model server is unreachable: the task stops, and the record is retried later.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("node {node}: {reason}")]
    Node { node: String, reason: String },
}

/// Where an operator's output goes: along its ordinary edges, or its `Error` edges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Main,
    Error,
}

/// What an operator may touch while it handles one record or timer tick.
pub struct Ctx<'a> {
    pub now_ms: i64,
    store: Option<&'a mut Box<dyn StateStore>>,
    changelog: &'a mut Vec<ChangelogRecord>,
    emitted: &'a mut Vec<(Out, Envelope)>,
    written: &'a mut Vec<(String, Record)>,
    deferred: &'a mut Vec<(Envelope, PreparedCall)>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        now_ms: i64,
        store: Option<&'a mut Box<dyn StateStore>>,
        changelog: &'a mut Vec<ChangelogRecord>,
        emitted: &'a mut Vec<(Out, Envelope)>,
        written: &'a mut Vec<(String, Record)>,
        deferred: &'a mut Vec<(Envelope, PreparedCall)>,
    ) -> Self {
        Ctx {
            now_ms,
            store,
            changelog,
            emitted,
            written,
            deferred,
        }
    }

    /// Hands a model call out to be made by the task's caller; its answer comes back through
    /// [`Operator::resume`] with `envelope`.
    pub fn defer(&mut self, envelope: Envelope, call: PreparedCall) {
        self.deferred.push((envelope, call));
    }

    pub fn emit(&mut self, envelope: Envelope) {
        self.emitted.push((Out::Main, envelope));
    }

    pub fn emit_error(&mut self, envelope: Envelope) {
        self.emitted.push((Out::Error, envelope));
    }

    /// A sink's write to a topic.
    pub fn write(&mut self, topic: &str, record: Record) {
        self.written.push((topic.to_string(), record));
    }

    fn store(&mut self) -> Result<&mut Box<dyn StateStore>, OpError> {
        self.store
            .as_deref_mut()
            .ok_or_else(|| OpError::Invalid("operator has no state store".to_string()))
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Entry>, OpError> {
        Ok(self.store()?.get(key)?)
    }

    /// Writes state and records the changelog record to produce.
    pub fn put(&mut self, key: &[u8], value: &[u8], expires_at_ms: Option<i64>) -> Result<(), OpError> {
        let record = self.store()?.put(key, value, expires_at_ms)?;
        self.changelog.push(record);
        Ok(())
    }

    pub fn delete(&mut self, key: &[u8]) -> Result<(), OpError> {
        let record = self.store()?.delete(key)?;
        self.changelog.push(record);
        Ok(())
    }

    /// Removes the entries due by now, logging their tombstones.
    pub fn expire(&mut self) -> Result<Vec<Entry>, OpError> {
        let now = self.now_ms;
        let expired = self.store()?.expire(now)?;
        Ok(expired
            .into_iter()
            .map(|e| {
                self.changelog.push(e.changelog);
                e.entry
            })
            .collect())
    }
}

/// One node of a sub-topology at run time.
pub trait Operator: Send {
    /// Handles one envelope arriving on `port`.
    fn process(&mut self, port: Port, envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError>;

    /// Timer tick: close windows, flush batches. Most operators have nothing to do.
    fn punctuate(&mut self, _ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        Ok(())
    }

    /// The answer to a call this operator deferred ([`Ctx::defer`]), with the envelope it
    /// deferred it with. Only the model call defers.
    fn resume(&mut self, _envelope: Envelope, _answer: CallAnswer, _ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        Err(OpError::Invalid(
            "an answer for an operator that makes no calls".to_string(),
        ))
    }
}
