//! The edges of a task: sources decode records, sinks encode them (keeping key, partition and
//! the header rules of §4.2/§4.3), and the model call (§6).

use std::sync::Arc;

use bytes::Bytes;
use flowc_plan::{Payload as PlanPayload, Port};
use prost::Message;

use crate::envelope::{Envelope, Payload};
use crate::operator::{CallAnswer, Callee, Ctx, ModelBackend, ModelCallError, OpError, Operator, PreparedCall};
use crate::record::{header, output_partition, step_headers, Record};
use crate::telemetry::Telemetry;
use crate::trace::{Kind, Span};
use flowc_oip::proto::inference::{ModelInferRequest, ModelInferResponse};

/// Reads a topic: keeps records of its pipeline (§4.3; a record without the `pipeline` header
/// belongs to no pipeline and is skipped) and decodes the value once.
pub struct Source {
    payload: PlanPayload,
    pipeline: Option<String>,
}

impl Source {
    pub fn new(payload: PlanPayload, pipeline: Option<String>) -> Self {
        Source { payload, pipeline }
    }
}

impl Operator for Source {
    fn process(&mut self, _port: Port, mut envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        match &self.pipeline {
            Some(p) => {
                if envelope.header(header::PIPELINE) != Some(p.as_str()) {
                    return Ok(());
                }
            }
            // A model call's source (the model gateway) reads every pipeline's requests, but
            // not a fused task's lineage: that task made the call itself (§10).
            None => {
                if envelope.header(header::LINEAGE).is_some() {
                    return Ok(());
                }
            }
        }
        let Payload::Raw(bytes) = std::mem::replace(&mut envelope.payload, Payload::Control) else {
            return Err(OpError::Invalid("source got a decoded record".to_string()));
        };
        envelope.payload = match self.payload {
            PlanPayload::Request => Payload::Request(ModelInferRequest::decode(bytes)?),
            PlanPayload::Response => Payload::Response(ModelInferResponse::decode(bytes)?),
            PlanPayload::ErrorText => Payload::Error(bytes),
            PlanPayload::Control => Payload::Control,
        };
        ctx.emit(envelope);
        Ok(())
    }
}

/// Writes a topic: same key, partition kept (§4.2), `pipeline` header set and alibi headers
/// removed when the sink belongs to a pipeline (§4.3); model-call sinks keep headers as they are.
///
/// A lineage sink (fused pipelines, §10) writes the record marked as lineage and also hands
/// it on, as it was written (unmarked, still decoded), to the nodes after it: what a source
/// of the topic would have read back in a per-hop pipeline.
pub struct Sink {
    topic: String,
    pipeline: Option<String>,
    partitions: i32,
    /// A lineage sink: the step it writes for, and the size check of its records.
    lineage: Option<(String, Option<super::Oversize>)>,
    telemetry: Arc<dyn Telemetry>,
}

impl Sink {
    pub fn new(
        topic: &str,
        _payload: PlanPayload,
        pipeline: Option<String>,
        partitions: i32,
        lineage: Option<(String, Option<super::Oversize>)>,
        telemetry: Arc<dyn Telemetry>,
    ) -> Self {
        Sink {
            topic: topic.to_string(),
            pipeline,
            partitions,
            lineage,
            telemetry,
        }
    }
}

impl Operator for Sink {
    fn process(&mut self, _port: Port, envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let value = envelope.value_bytes();
        let mut headers = match &self.pipeline {
            Some(p) => step_headers(&envelope.headers, p),
            None => envelope.headers,
        };
        // Each hop is a span of the request's trace (§4.3): from when its task began on the
        // record it read to this write.
        if let Some((parent, hop)) = crate::trace::next_hop(&mut headers) {
            if self.telemetry.spans_enabled() {
                self.telemetry.span(Span {
                    name: crate::trace::hop_name(&self.topic),
                    kind: Kind::Producer,
                    ids: hop,
                    parent: Some(parent.span_id),
                    remote_parent: true,
                    start: crate::trace::system_time(ctx.now_ms),
                    end: std::time::SystemTime::now(),
                    attributes: vec![
                        ("messaging.system", "kafka".to_string()),
                        ("messaging.destination.name", self.topic.clone()),
                        ("messaging.kafka.message.key", envelope.key.clone()),
                    ],
                    error: None,
                });
            }
        }
        let partition = output_partition(&envelope.key, envelope.partition, self.partitions);
        if let Some((step, oversize)) = &self.lineage {
            let mut marked = headers.clone();
            marked.push((header::LINEAGE.to_string(), b"fused".to_vec()));
            let record = Record {
                partition,
                key: envelope.key.clone(),
                value,
                headers: marked,
                timestamp_ms: envelope.timestamp_ms,
            };
            // A record its topic would refuse goes no further, as in a per-hop pipeline: the
            // request is answered with the error.
            if let Some(text) = oversize
                .as_ref()
                .and_then(|o| o(&self.topic, step, crate::record::record_size(&record)))
            {
                return Err(OpError::Invalid(text));
            }
            ctx.write(&self.topic, record);
            ctx.emit(Envelope {
                key: envelope.key,
                headers,
                partition,
                timestamp_ms: envelope.timestamp_ms,
                payload: envelope.payload,
            });
            return Ok(());
        }
        let record = Record {
            partition,
            key: envelope.key,
            value,
            headers,
            timestamp_ms: envelope.timestamp_ms,
        };
        ctx.write(&self.topic, record);
        Ok(())
    }
}

/// Calls the model; the response goes on, a failure becomes an error record
/// (`seldon-pipeline-errors: <model>`, the error text as value).
///
/// A call runs in three parts: [`ModelCall`] prepares it on the task (the deadline, the trace
/// context), [`PreparedCall::call`] makes it and needs nothing of the task, and the answer goes
/// on from the task again. Built with `defer` (a fused task in a worker, §10), the operator
/// hands the prepared call out ([`Ctx::defer`]) so that the worker makes many at once, and
/// takes the answer back in [`Operator::resume`]; otherwise it calls in place.
pub struct ModelCall {
    callee: Arc<Callee>,
    defer: bool,
}

impl ModelCall {
    pub fn new(model: &str, backend: Arc<dyn ModelBackend>, defer: bool, telemetry: Arc<dyn Telemetry>) -> Self {
        ModelCall {
            callee: Arc::new(Callee {
                model: model.to_string(),
                backend,
                metrics: telemetry.model_calls(model),
                telemetry,
            }),
            defer,
        }
    }

    /// Marks `envelope` as this model's error record with `text` and sends it on the error edge.
    fn fail(&self, mut envelope: Envelope, text: Bytes, ctx: &mut Ctx<'_>) {
        envelope.headers.retain(|(n, _)| n != header::PIPELINE_ERRORS);
        envelope.headers.push((
            header::PIPELINE_ERRORS.to_string(),
            self.callee.model.as_bytes().to_vec(),
        ));
        envelope.payload = Payload::Error(text);
        ctx.emit_error(envelope);
    }
}

impl Operator for ModelCall {
    fn process(&mut self, _port: Port, mut envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let Payload::Request(mut request) = std::mem::replace(&mut envelope.payload, Payload::Control) else {
            return Err(OpError::Invalid(
                "model call got something other than a request".to_string(),
            ));
        };
        let model = &self.callee.model;
        request.model_name.clone_from(model);
        // The call is a span of the request's trace; the model server gets its traceparent.
        let span = crate::trace::child_of(&envelope.headers);
        let mut traced: Vec<(String, String)> = span
            .map(|(_, call)| vec![(header::TRACEPARENT.to_string(), call.to_string())])
            .unwrap_or_default();
        // A request nobody waits for any more is not sent (§10); the backend stops retrying an
        // unreachable server at the deadline too.
        if let Some(deadline) = envelope
            .header(header::DEADLINE)
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            let now = ctx.now_ms;
            if now > deadline {
                let text = crate::record::deadline_text(&format!("model {model}"), now - deadline);
                self.fail(envelope, Bytes::from(text), ctx);
                return Ok(());
            }
            traced.push((header::DEADLINE.to_string(), deadline.to_string()));
        }
        let prepared = PreparedCall {
            callee: self.callee.clone(),
            request,
            traced,
            span,
        };
        if self.defer {
            ctx.defer(envelope, prepared);
            return Ok(());
        }
        let answer = prepared.call();
        self.resume(envelope, answer, ctx)
    }

    fn resume(&mut self, mut envelope: Envelope, answer: CallAnswer, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        match answer {
            Ok((mut response, server_headers)) => {
                response.model_name.clone_from(&self.callee.model);
                // The server's `x-*` response headers ride on the output record (§6).
                for (name, value) in server_headers {
                    envelope.headers.retain(|(n, _)| *n != name);
                    envelope.headers.push((name, value.into_bytes()));
                }
                envelope.payload = Payload::Response(response);
                ctx.emit(envelope);
            }
            Err(ModelCallError::Unavailable(text)) => return Err(OpError::Unavailable(text)),
            Err(ModelCallError::Failed(text)) => self.fail(envelope, Bytes::from(text), ctx),
        }
        Ok(())
    }
}
