//! The deployment log: a compacted topic `<prefix>.flowc.deployments` with one record per
//! deployed pipeline or model (key `pipeline/<ns>/<name>` or `model/<ns>/<name>`, value the
//! compiled plan as JSON, a tombstone when deleted). `flowc apply` writes it; every worker
//! follows it from the beginning, so a worker that starts later knows everything deployed.
//! Kafka is the only store of what is deployed: there is no other coordinator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowc_plan::{ModelPlan, PipelinePlan, ServerPlan};
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
    /// The plan as compiled (names as the compiler gives them; [`runnable`] renames what a
    /// later version changed).
    pub plan: PipelinePlan,
    /// Partition count its topics were created with.
    pub partitions: i32,
    pub applied_at_ms: i64,
    /// The pipeline version (`x-pipeline-version`, §4.3): 1 when first applied, one more at
    /// every apply that changes the plan.
    #[serde(default = "first_version")]
    pub version: u64,
    /// Per sub-topology, the version since which it has been as it is now (absent: 1). A
    /// sub-topology changed by version n runs as its own consumer group, stores and changelogs
    /// (`….v<n>`), beside the old one while that drains.
    #[serde(default)]
    pub since: BTreeMap<String, u64>,
    /// Earlier versions still draining: they serve the records stamped with their version
    /// until `until_ms`.
    #[serde(default)]
    pub draining: Vec<DrainingVersion>,
    /// The processing guarantee `apply` asked for (`None`: the worker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guarantee: Option<Guarantee>,
}

/// What a worker promises about the records it writes (§10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Guarantee {
    /// Outputs are acknowledged before input offsets are committed: a crash replays the
    /// uncommitted batch, so a reader can see a record twice.
    #[default]
    AtLeastOnce,
    /// A batch's outputs, changelog records and input offsets commit in one Kafka transaction
    /// (EOS v2): a `read_committed` reader sees each record once. Model calls stay at least
    /// once: a retried batch may call a model again; its outputs are written once.
    ExactlyOnce,
}

impl std::str::FromStr for Guarantee {
    type Err = String;
    fn from_str(s: &str) -> Result<Guarantee, String> {
        match s {
            "at-least-once" => Ok(Guarantee::AtLeastOnce),
            "exactly-once" => Ok(Guarantee::ExactlyOnce),
            other => Err(format!(
                "unknown processing guarantee `{other}` (expected `at-least-once` or `exactly-once`)"
            )),
        }
    }
}

/// An earlier version of a pipeline that keeps serving what it accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrainingVersion {
    pub version: u64,
    pub plan: PipelinePlan,
    #[serde(default)]
    pub since: BTreeMap<String, u64>,
    /// When it stops (epoch ms): records stamped with it that reach a step it changed after
    /// this are answered with an error record, never by another version.
    pub until_ms: i64,
}

fn first_version() -> u64 {
    1
}

/// The version since which `sub` has been as it is now.
pub fn since_of(since: &BTreeMap<String, u64>, sub: &str) -> u64 {
    since.get(sub).copied().unwrap_or(1)
}

/// `plan` as it runs: every sub-topology that changed in a version n > 1 gets a consumer group,
/// changelog topics and (through its group) a state directory of its own, named
/// `<group>.v<n>` and `<…>.<sub>.v<n>.<kind>-changelog`, so that it can run beside the
/// sub-topology it replaces while that one drains. Sub-topologies unchanged since version 1
/// keep the compiled names.
pub fn runnable(plan: &PipelinePlan, since: &BTreeMap<String, u64>) -> PipelinePlan {
    let mut out = plan.clone();
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for sub in &mut out.sub_topologies {
        let n = since_of(since, &sub.name);
        if n > 1 {
            sub.consumer_group = format!("{}.v{n}", sub.consumer_group);
        }
    }
    for store in &mut out.stores {
        let n = since_of(since, &store.sub_topology);
        if n > 1 {
            let old = store.changelog_topic.clone();
            let marker = format!(".{}.", store.sub_topology);
            let new = match old.rfind(&marker) {
                Some(at) => format!("{}v{n}.{}", &old[..at + marker.len()], &old[at + marker.len()..]),
                None => format!("{old}.v{n}"),
            };
            store.changelog_topic = new.clone();
            renamed.insert(old, new);
        }
    }
    for topic in &mut out.topics {
        if let Some(new) = renamed.get(&topic.name) {
            topic.name = new.clone();
        }
    }
    for group in &mut out.copartition_groups {
        for t in group.iter_mut() {
            if let Some(new) = renamed.get(t) {
                *t = new.clone();
            }
        }
    }
    out
}

impl PipelineDeployment {
    /// The plan of this version as it runs ([`runnable`]).
    pub fn runnable(&self) -> PipelinePlan {
        runnable(&self.plan, &self.since)
    }

    /// The versions that still run: this one and those draining at `now_ms`.
    pub fn live_versions(&self, now_ms: i64) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .draining
            .iter()
            .filter(|d| d.until_ms > now_ms)
            .map(|d| d.version)
            .collect();
        v.push(self.version);
        v
    }
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
