//! The deployment log: a compacted topic `<prefix>.flowc.deployments` with one record per
//! deployed pipeline or model (key `pipeline/<ns>/<name>` or `model/<ns>/<name>`, value the
//! compiled plan as JSON, a tombstone when deleted). `flowc apply` writes it; every worker
//! follows it from the beginning, so a worker that starts later knows everything deployed.
//! Kafka is the only store of what is deployed: there is no other coordinator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowc_compiler::plan::{ModelPlan, PipelinePlan, ServerPlan};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::config::KafkaConfig;
use super::KafkaError;

/// The deployment log's topic for a topic prefix.
pub fn control_topic(prefix: &str) -> String {
    format!("{prefix}.flowc.deployments")
}

/// One record of the deployment log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Deployment {
    Pipeline(PipelineDeployment),
    Model(ModelPlan),
    Server(ServerPlan),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineDeployment {
    pub prefix: String,
    pub plan: PipelinePlan,
    /// Partition count its topics were created with.
    pub partitions: i32,
    pub applied_at_ms: i64,
}

impl Deployment {
    pub fn key(&self) -> String {
        match self {
            Deployment::Pipeline(p) => pipeline_key(&p.plan.namespace, &p.plan.name),
            Deployment::Model(m) => model_key(&m.namespace, &m.name),
            Deployment::Server(x) => server_key(&x.namespace, &x.name),
        }
    }
}

pub fn server_key(namespace: &str, name: &str) -> String {
    format!("server/{namespace}/{name}")
}

pub fn pipeline_key(namespace: &str, name: &str) -> String {
    format!("pipeline/{namespace}/{name}")
}

pub fn model_key(namespace: &str, name: &str) -> String {
    format!("model/{namespace}/{name}")
}

/// What is deployed, by key.
pub type Deployments = BTreeMap<String, Deployment>;

/// Follows the deployment log: [`ControlReader::poll`] applies every new record.
pub struct ControlReader {
    consumer: BaseConsumer,
    topic: String,
    pub deployments: Deployments,
    /// Next offset to read.
    position: i64,
}

impl ControlReader {
    /// Reads the whole log up to its current end (bounded by the config's timeout).
    pub fn open(config: &KafkaConfig, prefix: &str) -> Result<ControlReader, KafkaError> {
        let topic = control_topic(prefix);
        let consumer: BaseConsumer = config.reader().create()?;
        let (_, high) = consumer
            .fetch_watermarks(&topic, 0, config.timeout)
            .map_err(|e| KafkaError::unreachable(config, &format!("reading the deployment log {topic}"), e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let mut reader = ControlReader {
            consumer,
            topic,
            deployments: BTreeMap::new(),
            position: 0,
        };
        let deadline = Instant::now() + config.timeout.max(Duration::from_secs(30));
        // To the high watermark; on tansu, whose high watermark can lie below the end (see
        // `restore::read_changelog`), on until a poll finds nothing more.
        let exact = config.flavor.exact_watermarks();
        loop {
            if exact
                && (reader.position >= high
                    || super::restore::fetch_position(&reader.consumer, &reader.topic, 0) >= high)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(KafkaError::Timeout(format!(
                    "reading the deployment log {} to offset {high} (at {})",
                    reader.topic, reader.position
                )));
            }
            let before = reader.position;
            reader.poll(Duration::from_millis(if exact { 50 } else { 200 }))?;
            if !exact && reader.position >= high && reader.position == before {
                break;
            }
        }
        Ok(reader)
    }

    /// Applies the records that arrived within `timeout`; returns whether anything changed.
    pub fn poll(&mut self, timeout: Duration) -> Result<bool, KafkaError> {
        let mut changed = false;
        let mut wait = timeout;
        while let Some(message) = self.consumer.poll(wait) {
            let message = message?;
            wait = Duration::ZERO;
            self.position = message.offset() + 1;
            let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                tracing::warn!(
                    offset = message.offset(),
                    "deployment record without a UTF-8 key skipped"
                );
                continue;
            };
            match message.payload() {
                None => {
                    changed |= self.deployments.remove(key).is_some();
                }
                Some(bytes) => match serde_json::from_slice::<Deployment>(bytes) {
                    Ok(d) => {
                        changed |= self.deployments.get(key) != Some(&d);
                        self.deployments.insert(key.to_string(), d);
                    }
                    Err(e) => {
                        tracing::error!(key, error = %e, "unreadable deployment record skipped (written by a newer flowc?)");
                    }
                },
            }
        }
        Ok(changed)
    }

    pub fn pipelines(&self) -> impl Iterator<Item = &PipelineDeployment> {
        self.deployments.values().filter_map(|d| match d {
            Deployment::Pipeline(p) => Some(p),
            _ => None,
        })
    }

    pub fn models(&self) -> impl Iterator<Item = &ModelPlan> {
        models(&self.deployments)
    }

    pub fn servers(&self) -> impl Iterator<Item = &ServerPlan> {
        servers(&self.deployments)
    }
}

pub fn models(deployments: &Deployments) -> impl Iterator<Item = &ModelPlan> {
    deployments.values().filter_map(|d| match d {
        Deployment::Model(m) => Some(m),
        _ => None,
    })
}

pub fn servers(deployments: &Deployments) -> impl Iterator<Item = &ServerPlan> {
    deployments.values().filter_map(|d| match d {
        Deployment::Server(x) => Some(x),
        _ => None,
    })
}
