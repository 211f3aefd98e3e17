//! An asynchronous client of a pipeline (§7): a request written to the pipeline's inputs topic
//! with the `pipeline` header, answers read from its outputs topic. What `flowc send` and
//! `flowc read` do; topic names are `TopicNames`', headers the record rules'.

use std::time::{Duration, Instant};

use flowc_plan::{Side, TopicNames};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use super::config::KafkaConfig;
use crate::proto::inference::{ModelInferRequest, ModelInferResponse};
use crate::record::header;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Kafka(Box<rdkafka::error::KafkaError>),
    #[error("cannot write to {topic} at {bootstrap}: {reason}")]
    Write {
        topic: String,
        bootstrap: String,
        reason: String,
    },
    #[error("cannot reach a Kafka broker at {bootstrap}: {reason}")]
    Unreachable { bootstrap: String, reason: String },
    #[error("topic {topic} does not exist: is pipeline {pipeline} deployed?")]
    NotDeployed { topic: String, pipeline: String },
    #[error("an answer on {topic} is not a response: {reason}")]
    Undecodable { topic: String, reason: String },
}

impl From<rdkafka::error::KafkaError> for ClientError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        ClientError::Kafka(Box::new(e))
    }
}

/// The pipeline `pipeline` of namespace `namespace`, as a client writes to and reads from it.
pub struct PipelineClient<'a> {
    config: &'a KafkaConfig,
    names: TopicNames,
    pipeline: String,
}

impl<'a> PipelineClient<'a> {
    pub fn new(config: &'a KafkaConfig, prefix: &str, namespace: &str, pipeline: &str) -> Self {
        PipelineClient {
            config,
            names: TopicNames::new(prefix, namespace),
            pipeline: pipeline.to_string(),
        }
    }

    /// The pipeline's inputs or outputs topic.
    pub fn topic(&self, side: Side) -> String {
        self.names.pipeline(&self.pipeline, side)
    }

    /// Writes `request` under `key` to the pipeline's inputs topic and waits until the broker
    /// has it.
    pub fn send(&self, key: &str, request: &ModelInferRequest) -> Result<(), ClientError> {
        let topic = self.topic(Side::Inputs);
        let producer: BaseProducer = self.config.producer().create()?;
        let headers = OwnedHeaders::new().insert(Header {
            key: header::PIPELINE,
            value: Some(self.pipeline.as_str()),
        });
        let value = request.encode_to_vec();
        producer
            .send(BaseRecord::to(&topic).key(key).payload(&value).headers(headers))
            .map_err(|(e, _)| e)?;
        producer.flush(self.config.timeout).map_err(|e| ClientError::Write {
            topic,
            bootstrap: self.config.bootstrap.clone(),
            reason: e.to_string(),
        })
    }

    /// Reads the outputs topic from the beginning and hands every answer (of `key` only, if
    /// given) to `on_answer` as a JSON line: `{"key", "partition", "outputs"}` or, for an error
    /// record, `{"key", "partition", "error": "<model> : <text>"}`. Stops when `on_answer`
    /// returns false or at `deadline`; returns how many answers it handed over.
    pub fn read(
        &self,
        key: Option<&str>,
        deadline: Instant,
        mut on_answer: impl FnMut(Value) -> bool,
    ) -> Result<usize, ClientError> {
        let topic = self.topic(Side::Outputs);
        let consumer: BaseConsumer = self.config.reader().create()?;
        let metadata = consumer
            .fetch_metadata(Some(&topic), self.config.timeout)
            .map_err(|e| ClientError::Unreachable {
                bootstrap: self.config.bootstrap.clone(),
                reason: e.to_string(),
            })?;
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
        if partitions == 0 {
            return Err(ClientError::NotDeployed {
                topic,
                pipeline: self.pipeline.clone(),
            });
        }
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let mut handed = 0;
        while Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let m = m?;
            let record_key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            if key.is_some_and(|k| k != record_key) {
                continue;
            }
            let error = super::text_headers(&m)
                .into_iter()
                .find_map(|(k, v)| (k == header::PIPELINE_ERRORS).then_some(v));
            let payload = m.payload().unwrap_or_default();
            let line = match error {
                Some(model) => json!({
                    "key": record_key,
                    "partition": m.partition(),
                    "error": format!("{model} : {}", String::from_utf8_lossy(payload)),
                }),
                None => {
                    let undecodable = |reason: String| ClientError::Undecodable {
                        topic: topic.clone(),
                        reason,
                    };
                    let response = ModelInferResponse::decode(payload).map_err(|e| undecodable(e.to_string()))?;
                    let message = crate::tensor::InferMessage::from_response(&response)
                        .map_err(|e| undecodable(e.to_string()))?;
                    let outputs: Vec<Value> = message.tensors.iter().map(crate::json::tensor_to_json).collect();
                    json!({"key": record_key, "partition": m.partition(), "outputs": outputs})
                }
            };
            handed += 1;
            if !on_answer(line) {
                break;
            }
        }
        Ok(handed)
    }
}
