//! The edges of a task: sources decode records, sinks encode them (keeping key, partition and
//! the header rules of §4.2/§4.3), and the model call (§6).

use std::sync::Arc;

use bytes::Bytes;
use flowc_plan::{Payload as PlanPayload, Port};
use prost::Message;

use crate::envelope::{Envelope, Payload};
use crate::operator::{Ctx, ModelBackend, OpError, Operator};
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::record::{header, output_partition, step_headers, Record};

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
        if let Some(p) = &self.pipeline {
            if envelope.header(header::PIPELINE) != Some(p.as_str()) {
                return Ok(());
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
pub struct Sink {
    topic: String,
    pipeline: Option<String>,
    partitions: i32,
}

impl Sink {
    pub fn new(topic: &str, _payload: PlanPayload, pipeline: Option<String>, partitions: i32) -> Self {
        Sink {
            topic: topic.to_string(),
            pipeline,
            partitions,
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
            if crate::otlp::enabled() {
                crate::otlp::record(crate::otlp::Span {
                    name: crate::trace::hop_name(&self.topic),
                    kind: crate::otlp::Kind::Producer,
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
        let record = Record {
            partition: output_partition(&envelope.key, envelope.partition, self.partitions),
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
pub struct ModelCall {
    model: String,
    backend: Arc<dyn ModelBackend>,
    /// This model's call latency and failures (resolved once, not per call).
    seconds: prometheus::Histogram,
    failed: prometheus::IntCounter,
    unavailable: prometheus::IntCounter,
}

impl ModelCall {
    pub fn new(model: &str, backend: Arc<dyn ModelBackend>) -> Self {
        let m = crate::metrics::metrics();
        ModelCall {
            model: model.to_string(),
            backend,
            seconds: m.model_call_seconds.with_label_values(&[model]),
            failed: m.model_call_failures.with_label_values(&[model, "failed"]),
            unavailable: m.model_call_failures.with_label_values(&[model, "unavailable"]),
        }
    }
}

impl Operator for ModelCall {
    fn process(&mut self, _port: Port, mut envelope: Envelope, ctx: &mut Ctx<'_>) -> Result<(), OpError> {
        let Payload::Request(mut request) = std::mem::replace(&mut envelope.payload, Payload::Control) else {
            return Err(OpError::Invalid(
                "model call got something other than a request".to_string(),
            ));
        };
        request.model_name.clone_from(&self.model);
        // The call is a span of the request's trace; the model server gets its traceparent.
        let call_span = crate::trace::child_of(&envelope.headers);
        let mut traced: Vec<(String, String)> = call_span
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
                envelope.headers.retain(|(n, _)| n != header::PIPELINE_ERRORS);
                envelope
                    .headers
                    .push((header::PIPELINE_ERRORS.to_string(), self.model.as_bytes().to_vec()));
                envelope.payload = Payload::Error(Bytes::from(crate::record::deadline_text(
                    &format!("model {}", self.model),
                    now - deadline,
                )));
                ctx.emit_error(envelope);
                return Ok(());
            }
            traced.push((header::DEADLINE.to_string(), deadline.to_string()));
        }
        let started = std::time::Instant::now();
        let began = std::time::SystemTime::now();
        let answer = self.backend.call_with_headers(&self.model, request, &traced);
        self.seconds.observe(started.elapsed().as_secs_f64());
        if let Some((parent, call)) = call_span.filter(|_| crate::otlp::enabled()) {
            crate::otlp::record(crate::otlp::Span {
                name: format!("call {}", self.model),
                kind: crate::otlp::Kind::Client,
                ids: call,
                parent: Some(parent.span_id),
                remote_parent: true,
                start: began,
                end: std::time::SystemTime::now(),
                attributes: vec![("flowc.model", self.model.clone())],
                error: answer.as_ref().err().map(|e| format!("{e:?}")),
            });
        }
        match &answer {
            Err(crate::operator::ModelCallError::Failed(_)) => self.failed.inc(),
            Err(crate::operator::ModelCallError::Unavailable(_)) => self.unavailable.inc(),
            Ok(_) => {}
        }
        match answer {
            Ok((mut response, server_headers)) => {
                response.model_name.clone_from(&self.model);
                // The server's `x-*` response headers ride on the output record (§6).
                for (name, value) in server_headers {
                    envelope.headers.retain(|(n, _)| *n != name);
                    envelope.headers.push((name, value.into_bytes()));
                }
                envelope.payload = Payload::Response(response);
                ctx.emit(envelope);
            }
            Err(crate::operator::ModelCallError::Unavailable(text)) => return Err(OpError::Unavailable(text)),
            Err(crate::operator::ModelCallError::Failed(text)) => {
                envelope.headers.retain(|(n, _)| n != header::PIPELINE_ERRORS);
                envelope
                    .headers
                    .push((header::PIPELINE_ERRORS.to_string(), self.model.as_bytes().to_vec()));
                envelope.payload = Payload::Error(Bytes::from(text));
                ctx.emit_error(envelope);
            }
        }
        Ok(())
    }
}
