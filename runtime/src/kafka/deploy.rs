//! `flowc apply`, `delete`, `list` and `status`: topics are created through the Kafka admin
//! API, deployments are records of the compacted deployment log (see [`super::control`]), and
//! status is read from consumer groups and committed offsets. Every call is bounded by the
//! config's timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use flowc_plan::{ModelPlan, PipelinePlan, Plan, ServerPlan, SubTopology};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaConfig;
use super::control::{control_topic, pipeline_key, ControlReader, Deployment, Deployments, PipelineDeployment};
use super::{now_ms, KafkaError};

/// A topic flowc needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub compacted: bool,
}

/// Admin access to one cluster.
pub struct Cluster {
    config: KafkaConfig,
    admin: AdminClient<DefaultClientContext>,
    runtime: tokio::runtime::Runtime,
}

impl Cluster {
    /// Connects and checks the broker answers (a clear error within the timeout otherwise).
    pub fn connect(config: &KafkaConfig) -> Result<Cluster, KafkaError> {
        let admin: AdminClient<DefaultClientContext> = config.admin().create()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| KafkaError::Deploy(format!("cannot start the admin runtime: {e}")))?;
        let cluster = Cluster {
            config: config.clone(),
            admin,
            runtime,
        };
        cluster.topics()?;
        Ok(cluster)
    }

    /// Every topic with its partition count.
    pub fn topics(&self) -> Result<BTreeMap<String, i32>, KafkaError> {
        let metadata = self
            .admin
            .inner()
            .fetch_metadata(None, self.config.timeout)
            .map_err(|e| KafkaError::unreachable(&self.config, "fetching cluster metadata", e))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.config.timeout))
            .operation_timeout(Some(self.config.timeout))
    }

    /// Creates topics and waits until the cluster's metadata lists them all; returns the
    /// names of those that already existed (created meanwhile by someone else: their partition
    /// counts are whatever that creator chose).
    pub fn create_topics(&self, topics: &[TopicSpec], replication: i32) -> Result<Vec<String>, KafkaError> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                let topic = NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(replication));
                if t.compacted {
                    topic.set("cleanup.policy", "compact")
                } else {
                    topic
                }
            })
            .collect();
        let results = self.runtime.block_on(self.admin.create_topics(&new, &self.options()))?;
        let mut failed = Vec::new();
        let mut existed = Vec::new();
        for result in results {
            match result {
                Ok(_) => {}
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existed.push(topic),
                Err((topic, code)) => failed.push(format!("{topic}: {code}")),
            }
        }
        if !failed.is_empty() {
            return Err(KafkaError::Deploy(format!(
                "cannot create topics: {}",
                failed.join("; ")
            )));
        }
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        self.wait_for_topics(&names)?;
        Ok(existed)
    }

    /// The partition counts of `names` once the metadata lists every one of them (a created
    /// topic reaches every broker's metadata a moment after CreateTopics returns on Apache
    /// Kafka), bounded by the config's timeout.
    pub fn wait_for_topics(&self, names: &[String]) -> Result<BTreeMap<String, i32>, KafkaError> {
        let deadline = std::time::Instant::now() + self.config.timeout;
        loop {
            let topics = self.topics()?;
            let missing: Vec<&String> = names
                .iter()
                .filter(|n| topics.get(*n).copied().unwrap_or(0) < 1)
                .collect();
            if missing.is_empty() {
                return Ok(topics);
            }
            if std::time::Instant::now() > deadline {
                return Err(KafkaError::Timeout(format!(
                    "waiting for created topics to appear in the metadata of {}: {}",
                    self.config.bootstrap,
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Deletes topics; one that does not exist is fine.
    pub fn delete_topics(&self, names: &[String]) -> Result<(), KafkaError> {
        if names.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = self
            .runtime
            .block_on(self.admin.delete_topics(&names, &self.options()))?;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => None,
                Err((topic, code)) => Some(format!("{topic}: {code}")),
            })
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(KafkaError::Deploy(format!(
                "cannot delete topics: {}",
                failed.join("; ")
            )))
        }
    }

    /// The deployment log as it is now (empty when it does not exist yet).
    pub fn deployments(&self, prefix: &str) -> Result<Deployments, KafkaError> {
        if !self.topics()?.contains_key(&control_topic(prefix)) {
            return Ok(Deployments::new());
        }
        Ok(ControlReader::open(&self.config, prefix)?.deployments)
    }

    /// The deployment log and the members topic (`members.rs`), both compacted, one partition.
    fn ensure_control_topic(&self, prefix: &str, replication: i32) -> Result<(), KafkaError> {
        self.create_topics(
            &[
                TopicSpec {
                    name: control_topic(prefix),
                    partitions: 1,
                    compacted: true,
                },
                TopicSpec {
                    name: super::members::members_topic(prefix),
                    partitions: 1,
                    compacted: true,
                },
            ],
            replication,
        )?;
        Ok(())
    }

    /// Writes deployment records (a tombstone for `None`) and waits until they are stored.
    fn publish(&self, prefix: &str, records: &[(String, Option<Vec<u8>>)]) -> Result<(), KafkaError> {
        let producer: BaseProducer = self.config.producer().create()?;
        let topic = control_topic(prefix);
        for (key, value) in records {
            let mut record = BaseRecord::to(&topic).key(key.as_bytes()).partition(0);
            if let Some(v) = value {
                record = record.payload(v.as_slice());
            }
            producer.send(record).map_err(|(e, _)| e)?;
        }
        producer
            .flush(self.config.timeout.max(Duration::from_secs(10)))
            .map_err(|e| KafkaError::unreachable(&self.config, &format!("writing to {topic}"), e))
    }

    /// Makes a consumer group that does not exist yet start where its topics end now, so the
    /// pipeline processes what is written after it was applied, even if its workers start
    /// later: commits the current end offsets for it. A group exists when the broker describes
    /// members in it or it has committed any offset; such a group is left alone (a commit
    /// from outside an active group is refused by Apache Kafka with UNKNOWN_MEMBER_ID, and its
    /// offsets are its members' business). Returns whether offsets were committed.
    fn start_group_at_end(
        &self,
        group: &str,
        topics: &[&str],
        existing: &BTreeMap<String, i32>,
    ) -> Result<bool, KafkaError> {
        let consumer: BaseConsumer = self.config.consumer(group).create()?;
        let mut wanted = TopicPartitionList::new();
        for topic in topics {
            let Some(&n) = existing.get(*topic) else { continue };
            for p in 0..n {
                wanted.add_partition(topic, p);
            }
        }
        if wanted.count() == 0 {
            return Ok(false);
        }
        let members = super::groups::describe(&self.config, &[group])
            .ok()
            .and_then(|described| described.first().map(|g| g.members.len()))
            .unwrap_or(0);
        if members > 0 {
            return Ok(false);
        }
        let committed = coordinator_retry(&self.config, || {
            consumer.committed_offsets(wanted.clone(), self.config.timeout)
        })?;
        if committed
            .elements()
            .iter()
            .any(|e| matches!(e.offset(), Offset::Offset(_)))
        {
            return Ok(false);
        }
        let mut commit = TopicPartitionList::new();
        for e in committed.elements() {
            let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), self.config.timeout)?;
            commit.add_partition_offset(e.topic(), e.partition(), Offset::Offset(high))?;
        }
        match coordinator_retry(&self.config, || consumer.commit(&commit, CommitMode::Sync)) {
            Ok(()) => Ok(true),
            // A worker joined between the look and the commit: the group exists now.
            Err(KafkaError::Client(e))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::UnknownMemberId
                            | RDKafkaErrorCode::IllegalGeneration
                            | RDKafkaErrorCode::RebalanceInProgress
                            | RDKafkaErrorCode::StaleMemberEpoch
                            | RDKafkaErrorCode::FencedMemberEpoch
                    )
                ) =>
            {
                tracing::debug!(group, error = %e, "group gained a member while apply looked; left alone");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// Runs a group-coordinator call (OffsetFetch, OffsetCommit) again while the broker says its
/// coordinator is moving or still loading, as Kafka's own clients do: a new group's
/// coordinator on Apache Kafka can answer NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS for
/// a moment after `__consumer_offsets` is created or a leader changes. Bounded by the
/// config's timeout; any other error returns at once.
pub(crate) fn coordinator_retry<T>(
    config: &KafkaConfig,
    mut call: impl FnMut() -> Result<T, rdkafka::error::KafkaError>,
) -> Result<T, KafkaError> {
    use rdkafka::error::KafkaError as E;
    use rdkafka::types::RDKafkaErrorCode as C;
    let deadline = std::time::Instant::now() + config.timeout;
    let mut backoff = std::time::Duration::from_millis(50);
    loop {
        match call() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let transient = matches!(
                    e.rdkafka_error_code(),
                    Some(C::NotCoordinator | C::CoordinatorLoadInProgress | C::CoordinatorNotAvailable)
                ) || matches!(e, E::MetadataFetch(C::NotCoordinator | C::CoordinatorLoadInProgress));
                if !transient || std::time::Instant::now() + backoff > deadline {
                    return Err(e.into());
                }
                tracing::debug!(error = %e, "group coordinator not ready; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(std::time::Duration::from_millis(500));
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    pub prefix: String,
    /// Partitions of topics that are created (a co-partition group with an existing topic
    /// takes that topic's count instead).
    pub partitions: i32,
    pub replication: i32,
    /// Only report what would change.
    pub dry_run: bool,
    /// The pipeline gateway's base URL, from which explainers (and LLM models) get their
    /// `infer_uri` (§1.2).
    pub gateway_url: String,
    /// How long the previous version of an updated pipeline keeps serving the requests it
    /// accepted ([`DEFAULT_DRAIN`]).
    pub drain: std::time::Duration,
    /// The processing guarantee of the pipelines applied (`None`: each worker's own).
    pub guarantee: Option<super::control::Guarantee>,
}

/// How long an updated pipeline's previous version drains by default: twice the gateway's
/// default request timeout, so every synchronous request it accepted is answered by it.
pub const DEFAULT_DRAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The version, per-sub-topology versions and draining versions of `new` deployed over `old`
/// at `now_ms`: an unchanged plan keeps all of it; a changed one is one version more, its
/// changed sub-topologies are new as of that version, and the old version drains.
fn next_version(
    old: Option<&PipelineDeployment>,
    new: &PipelinePlan,
    now_ms: i64,
    drain: std::time::Duration,
) -> (u64, BTreeMap<String, u64>, Vec<super::control::DrainingVersion>) {
    let Some(old) = old else {
        return (1, BTreeMap::new(), Vec::new());
    };
    if old.plan.fingerprint == new.fingerprint {
        return (old.version, old.since.clone(), old.draining.clone());
    }
    let version = old.version + 1;
    let old_prints: BTreeMap<&str, String> = old
        .plan
        .sub_topologies
        .iter()
        .map(|s| (s.name.as_str(), s.fingerprint()))
        .collect();
    let mut since = BTreeMap::new();
    for sub in &new.sub_topologies {
        let same = old_prints.get(sub.name.as_str()) == Some(&sub.fingerprint());
        let n = if same {
            super::control::since_of(&old.since, &sub.name)
        } else {
            version
        };
        if n > 1 {
            since.insert(sub.name.clone(), n);
        }
    }
    let mut draining: Vec<super::control::DrainingVersion> =
        old.draining.iter().filter(|d| d.until_ms > now_ms).cloned().collect();
    draining.push(super::control::DrainingVersion {
        version: old.version,
        plan: old.plan.clone(),
        since: old.since.clone(),
        until_ms: now_ms + drain.as_millis() as i64,
    });
    (version, since, draining)
}

/// What `apply` did or would do, one line each.
#[derive(Debug, Default)]
pub struct ApplyReport {
    pub lines: Vec<String>,
    pub created_topics: Vec<String>,
}

/// Why `apply` refuses a plan; each says what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A step runs a model that is neither in the files nor deployed.
    ModelMissing { pipeline: String, model: String },
    /// A model cannot be placed on a server (requirements, endpoints).
    Placement(String),
    /// Joined topics have different partition counts (rule 11).
    Copartition(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ModelMissing { pipeline, model } => write!(
                f,
                "pipeline {pipeline} runs model {model}, which is neither in these files nor deployed (deploy its Model first, or apply it with the pipeline)"
            ),
            Refusal::Placement(text) | Refusal::Copartition(text) => f.write_str(text),
        }
    }
}

/// What `apply` will do, decided by [`plan_apply`] from the plan, what is deployed and which
/// topics exist, without I/O; [`apply`] carries it out.
#[derive(Clone, Debug)]
pub struct ApplyPlan {
    /// Each model to load and check on its server: the model, the server and its endpoint.
    pub placements: Vec<(ModelPlan, ServerPlan, super::placement::Endpoint)>,
    /// Per model: "create", "update" or "unchanged".
    pub model_verbs: Vec<(ModelPlan, &'static str)>,
    /// The report's lines on pipelines and topics.
    pub lines: Vec<String>,
    /// The pipelines as they will run (changed sub-topologies renamed apart).
    pub runnable: Vec<PipelinePlan>,
    pub to_create: Vec<TopicSpec>,
    /// Consumer groups to start at the end of their source topics (new or changed pipelines).
    pub groups: Vec<(String, Vec<String>)>,
    /// Deployment records to publish: what changed, nothing else.
    pub records: Vec<Deployment>,
}

/// Decides what applying `plan` does (see [`ApplyPlan`]), or every reason to refuse it.
pub fn plan_apply(
    plan: &Plan,
    options: &ApplyOptions,
    deployed: &Deployments,
    existing: &BTreeMap<String, i32>,
    now: i64,
) -> Result<ApplyPlan, Vec<Refusal>> {
    // A step must run a model that is deployed or deployed now.
    let mut refusals = Vec::new();
    for p in &plan.pipelines {
        for m in &p.models {
            let here = plan.models.iter().any(|x| &x.name == m && x.namespace == p.namespace);
            let there = deployed.contains_key(&super::control::model_key(&p.namespace, m));
            if !here && !there {
                refusals.push(Refusal::ModelMissing {
                    pipeline: p.name.clone(),
                    model: m.clone(),
                });
            }
        }
    }

    // Where each model runs: Servers of these files and deployed ones (these files win).
    let mut servers: BTreeMap<(String, String), ServerPlan> = super::control::servers(deployed)
        .map(|x| ((x.namespace.clone(), x.name.clone()), x.clone()))
        .collect();
    for x in &plan.servers {
        servers.insert((x.namespace.clone(), x.name.clone()), x.clone());
    }
    let mut placements = Vec::new();
    for m in &plan.models {
        let here: Vec<ServerPlan> = servers
            .values()
            .filter(|x| x.namespace == m.namespace)
            .cloned()
            .collect();
        match super::placement::place(m, &here) {
            Ok(Some(server)) => match super::placement::endpoint(server) {
                Ok(endpoint) => placements.push((m.clone(), server.clone(), endpoint)),
                Err(e) => refusals.push(Refusal::Placement(format!("model {}: {e}", m.name))),
            },
            Ok(None) => {}
            Err(e) => refusals.push(Refusal::Placement(e)),
        }
    }

    // Versions: a changed pipeline runs its changed sub-topologies anew beside the old ones,
    // which drain; the plans as they run name those apart (`control::runnable`).
    let mut versions = BTreeMap::new();
    let mut runnable = Vec::new();
    for p in &plan.pipelines {
        let old = match deployed.get(&pipeline_key(&p.namespace, &p.name)) {
            Some(Deployment::Pipeline(old)) => Some(old),
            _ => None,
        };
        let (version, since, draining) = next_version(old, p, now, options.drain);
        runnable.push(super::control::runnable(p, &since));
        versions.insert(pipeline_key(&p.namespace, &p.name), (version, since, draining));
    }

    // Topics: what exists, what must be created and with how many partitions.
    let mut wanted: BTreeMap<String, bool> = BTreeMap::new();
    for p in &runnable {
        for t in &p.topics {
            wanted.insert(t.name.clone(), t.compacted);
        }
        for s in &p.stores {
            wanted.insert(s.changelog_topic.clone(), true);
        }
    }
    for m in &plan.models {
        // A model is callable through its topics on its own (§7), so its call plan's topics.
        for t in m.call.iter().flat_map(|c| &c.topics) {
            wanted.insert(t.name.clone(), t.compacted);
        }
    }
    let mut partitions_of: BTreeMap<String, i32> = BTreeMap::new();
    for p in &runnable {
        for e in p.check_copartitioning(|t| existing.get(t).copied()) {
            refusals.push(Refusal::Copartition(copartition_problem(&e)));
        }
        for group in &p.copartition_groups {
            let count = group
                .iter()
                .find_map(|t| existing.get(t).copied())
                .unwrap_or(options.partitions);
            for t in group {
                partitions_of.entry(t.clone()).or_insert(count);
            }
        }
    }
    if !refusals.is_empty() {
        return Err(refusals);
    }
    let to_create: Vec<TopicSpec> = wanted
        .iter()
        .filter(|(name, _)| !existing.contains_key(*name))
        .map(|(name, compacted)| TopicSpec {
            name: name.clone(),
            partitions: partitions_of.get(name).copied().unwrap_or(options.partitions),
            compacted: *compacted,
        })
        .collect();

    let model_verbs = plan
        .models
        .iter()
        .map(|m| {
            let verb = match deployed.get(&super::control::model_key(&m.namespace, &m.name)) {
                None => "create",
                Some(Deployment::Model(old)) if old == m => "unchanged",
                Some(_) => "update",
            };
            (m.clone(), verb)
        })
        .collect();
    let mut lines = Vec::new();
    for p in &plan.pipelines {
        match deployed.get(&pipeline_key(&p.namespace, &p.name)) {
            Some(Deployment::Pipeline(old)) if old.plan.fingerprint == p.fingerprint => {
                lines.push(format!("pipeline {}: unchanged ({})", p.name, p.fingerprint));
            }
            Some(Deployment::Pipeline(old)) => {
                lines.push(format!(
                    "pipeline {}: update {} -> {} (version {} -> {})",
                    p.name,
                    old.plan.fingerprint,
                    p.fingerprint,
                    old.version,
                    old.version + 1
                ));
                lines.extend(diff(&old.plan, p));
                lines.push(format!(
                    "  version {} keeps serving the requests it accepted for {} (changed sub-topologies run side by side until then)",
                    old.version,
                    flowc_oip::backend::seconds(options.drain)
                ));
            }
            _ => lines.push(format!("pipeline {}: create ({})", p.name, p.fingerprint)),
        }
    }
    for t in &to_create {
        lines.push(format!(
            "  + topic {} ({} partition{}{})",
            t.name,
            t.partitions,
            if t.partitions == 1 { "" } else { "s" },
            if t.compacted { ", compacted" } else { "" }
        ));
    }

    // What did not change is not touched: no group, no offset, no deployment record (so no
    // worker or gateway sees a change).
    let unchanged_pipeline = |p: &PipelinePlan| {
        matches!(deployed.get(&pipeline_key(&p.namespace, &p.name)),
            Some(Deployment::Pipeline(old)) if old.plan.fingerprint == p.fingerprint && old.guarantee == options.guarantee)
    };
    let mut groups = Vec::new();
    for (p, run) in plan.pipelines.iter().zip(&runnable) {
        if !unchanged_pipeline(p) {
            groups.extend(run.sub_topologies.iter().map(|sub| {
                (
                    sub.consumer_group.clone(),
                    sub.source_topics().into_iter().map(str::to_string).collect(),
                )
            }));
        }
    }
    let mut records = Vec::new();
    let mut changed = |d: Deployment| {
        if deployed.get(&d.key()) != Some(&d) {
            records.push(d);
        }
    };
    for x in &plan.servers {
        changed(Deployment::Server(x.clone()));
    }
    for m in &plan.models {
        changed(Deployment::Model(m.clone()));
    }
    for p in plan.pipelines.iter().filter(|p| !unchanged_pipeline(p)) {
        let partitions = p
            .topics
            .iter()
            .find_map(|t| {
                existing
                    .get(&t.name)
                    .copied()
                    .or_else(|| partitions_of.get(&t.name).copied())
            })
            .unwrap_or(options.partitions);
        let (version, since, draining) = versions
            .remove(&pipeline_key(&p.namespace, &p.name))
            .unwrap_or_default();
        records.push(Deployment::Pipeline(PipelineDeployment {
            prefix: options.prefix.clone(),
            plan: p.clone(),
            partitions,
            applied_at_ms: now,
            version,
            since,
            draining,
            guarantee: options.guarantee,
        }));
    }
    Ok(ApplyPlan {
        placements,
        model_verbs,
        lines,
        runnable,
        to_create,
        groups,
        records,
    })
}

/// Compiled plan → topics and deployment records: [`plan_apply`] on what the cluster holds,
/// then (unless a dry run) the models loaded on their servers, the topics created, the
/// changed pipelines' groups started at the end of their topics and the changes published.
pub fn apply(config: &KafkaConfig, plan: &Plan, options: &ApplyOptions) -> Result<ApplyReport, KafkaError> {
    let cluster = Cluster::connect(config)?;
    let deployed = cluster.deployments(&options.prefix)?;
    let existing = cluster.topics()?;
    let planned = plan_apply(plan, options, &deployed, &existing, now_ms()).map_err(|refusals| {
        KafkaError::Deploy(refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    })?;
    let mut report = ApplyReport::default();
    for (m, verb) in &planned.model_verbs {
        match planned.placements.iter().find(|(p, _, _)| p.name == m.name) {
            Some((_, server, endpoint)) => {
                let state = if options.dry_run {
                    "not loaded: dry run".to_string()
                } else {
                    load_and_check(m, server, endpoint)
                };
                report.lines.push(format!(
                    "model {}: {verb}, on server {} ({endpoint}, {state})",
                    m.name, server.name
                ));
            }
            None => report.lines.push(format!("model {}: {verb}", m.name)),
        }
        if let Some(settings) = infer_uri_settings(m, &options.gateway_url) {
            report.lines.push(format!(
                "  its server must call {} (MLServer: put {settings} in the model's model-settings.json, under `parameters`)",
                settings["extra"]["infer_uri"].as_str().unwrap_or_default()
            ));
        }
    }
    report.lines.extend(planned.lines.iter().cloned());
    if options.dry_run {
        return Ok(report);
    }

    cluster.ensure_control_topic(&options.prefix, options.replication)?;
    let existed = cluster.create_topics(&planned.to_create, options.replication)?;
    if !existed.is_empty() {
        // Created meanwhile by someone else, with counts of their choosing: check the joins
        // again against what the cluster has now.
        let current = cluster.topics()?;
        let mismatched: Vec<String> = planned
            .runnable
            .iter()
            .flat_map(|p| p.check_copartitioning(|t| current.get(t).copied()))
            .map(|e| copartition_problem(&e))
            .collect();
        if !mismatched.is_empty() {
            return Err(KafkaError::Deploy(mismatched.join("\n")));
        }
    }
    report.created_topics = planned.to_create.iter().map(|t| t.name.clone()).collect();
    for (group, topics) in &planned.groups {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        cluster.start_group_at_end(group, &topics, &existing)?;
    }
    let records = planned.records.iter().map(json_record).collect::<Result<Vec<_>, _>>()?;
    if !records.is_empty() {
        cluster.publish(&options.prefix, &records)?;
    }
    Ok(report)
}

/// What `apply` says of joined topics whose partition counts differ (rule 11).
fn copartition_problem(e: &flowc_plan::CopartitionError) -> String {
    let counts: Vec<String> = e.topics.iter().map(|(t, n)| format!("{t} has {n}")).collect();
    format!(
        "pipeline {} joins topics with different partition counts, so its joins could never match keys: {} (recreate them with one count, or change the pipeline)",
        e.pipeline,
        counts.join(", ")
    )
}

fn json_record(d: &Deployment) -> Result<(String, Option<Vec<u8>>), KafkaError> {
    let value = serde_json::to_vec(d).map_err(|e| KafkaError::Deploy(format!("cannot encode {}: {e}", d.key())))?;
    Ok((d.key(), Some(value)))
}

/// What an update changes: topics, stores and sub-topologies added or removed.
pub fn diff(old: &PipelinePlan, new: &PipelinePlan) -> Vec<String> {
    flowc_plan::PlanDiff::between(old, new).lines()
}

/// Unloads a pipeline: a tombstone in the deployment log (workers stop its tasks), and with
/// `cleanTopicsOnDelete` its own topics deleted (never model topics, the errors topic, or a
/// topic another deployed pipeline still uses).
pub fn delete(config: &KafkaConfig, prefix: &str, namespace: &str, name: &str) -> Result<Vec<String>, KafkaError> {
    let cluster = Cluster::connect(config)?;
    let deployed = cluster.deployments(prefix)?;
    let key = pipeline_key(namespace, name);
    let Some(Deployment::Pipeline(d)) = deployed.get(&key) else {
        let names: Vec<&str> = deployed
            .values()
            .filter_map(|d| match d {
                Deployment::Pipeline(p) => Some(p.plan.name.as_str()),
                _ => None,
            })
            .collect();
        return Err(KafkaError::Deploy(format!(
            "pipeline {name} is not deployed in namespace {namespace} (deployed: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let mut lines = vec![format!("pipeline {name}: deleted")];
    cluster.publish(prefix, &[(key.clone(), None)])?;
    if d.plan.clean_topics_on_delete {
        let still_used: BTreeSet<&str> = deployed
            .iter()
            .filter(|(k, _)| **k != key)
            .filter_map(|(_, d)| match d {
                Deployment::Pipeline(p) => Some(p.plan.topics.iter().map(|t| t.name.as_str())),
                _ => None,
            })
            .flatten()
            .collect();
        let mut doomed: Vec<String> = d
            .plan
            .topics
            .iter()
            .filter(|t| t.owned && !still_used.contains(t.name.as_str()))
            .map(|t| t.name.clone())
            .collect();
        doomed.extend(d.plan.stores.iter().map(|s| s.changelog_topic.clone()));
        cluster.delete_topics(&doomed)?;
        lines.extend(doomed.iter().map(|t| format!("  - topic {t}")));
    }
    Ok(lines)
}

/// Everything deployed.
pub fn list(config: &KafkaConfig, prefix: &str) -> Result<Deployments, KafkaError> {
    Cluster::connect(config)?.deployments(prefix)
}

/// One consumer group of a deployed pipeline.
#[derive(Clone, Debug)]
pub struct GroupStatus {
    pub sub_topology: String,
    pub group: String,
    /// Members now in the group (`None`: the broker does not describe groups).
    pub members: Option<usize>,
    /// Who holds what: from DescribeGroups, or as the members report it (`members.rs`).
    pub assignments: Vec<super::members::MemberReport>,
    /// Records written to its source topics and not yet committed by the group.
    pub lag: i64,
    /// `Some(v)`: a group only draining version `v` runs.
    pub draining: Option<u64>,
    /// What is wrong with it, naming the part: no live member, or what a member reports
    /// (restarting after an error, paused on an unreachable model, lag growing).
    pub problems: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct PipelineStatus {
    pub name: String,
    pub fingerprint: String,
    /// The version new requests enter under.
    pub version: u64,
    /// Earlier versions still draining, and until when (epoch ms).
    pub draining: Vec<(u64, i64)>,
    pub groups: Vec<GroupStatus>,
}

impl PipelineStatus {
    /// Everything wrong with the pipeline's data plane, one line each, naming the part.
    pub fn problems(&self) -> Vec<String> {
        self.groups.iter().flat_map(|g| g.problems.iter().cloned()).collect()
    }

    /// Running: every consumer group has a member (unknown counts as running if nothing lags).
    pub fn running(&self) -> bool {
        self.groups
            .iter()
            .filter(|g| g.draining.is_none())
            .all(|g| match g.members {
                Some(n) => n > 0,
                None => g.lag == 0,
            })
    }
}

pub fn status(config: &KafkaConfig, prefix: &str) -> Result<Vec<PipelineStatus>, KafkaError> {
    let cluster = Cluster::connect(config)?;
    let topics = cluster.topics()?;
    let reports = if topics.contains_key(&super::members::members_topic(prefix)) {
        super::members::read(config, prefix, super::now_ms())?
    } else {
        BTreeMap::new()
    };
    let mut out = Vec::new();
    for d in cluster.deployments(prefix)?.values() {
        let Deployment::Pipeline(p) = d else { continue };
        let mut groups = Vec::new();
        let now = super::now_ms();
        let draining: Vec<&super::control::DrainingVersion> = p.draining.iter().filter(|o| o.until_ms > now).collect();
        // The groups of the current version as it runs, then those only a draining version runs.
        let mut subs: Vec<(SubTopology, Option<u64>)> =
            p.runnable().sub_topologies.into_iter().map(|s| (s, None)).collect();
        for old in &draining {
            for sub in super::control::runnable(&old.plan, &old.since).sub_topologies {
                if !subs.iter().any(|(s, _)| s.consumer_group == sub.consumer_group) {
                    subs.push((sub, Some(old.version)));
                }
            }
        }
        for (sub, only) in &subs {
            let consumer: BaseConsumer = config.consumer(&sub.consumer_group).create()?;
            let described = super::groups::describe(config, &[&sub.consumer_group])
                .map_err(|e| tracing::debug!(group = %sub.consumer_group, error = %e, "group not described"))
                .ok()
                .and_then(|mut d| d.pop());
            let members = described.as_ref().map(|g| g.members.len());
            // The broker's own description (Apache Kafka, either group protocol); the members'
            // reports where it has no assignments (tansu describes members without them).
            let assignments = match described {
                Some(g) if g.members.iter().any(|m| !m.partitions.is_empty()) => g
                    .members
                    .into_iter()
                    .map(|m| super::members::MemberReport {
                        group: sub.consumer_group.clone(),
                        member: format!("{} ({})", m.client_id, m.host.trim_start_matches('/')),
                        partitions: m.partitions,
                        at_ms: super::now_ms(),
                        problem: None,
                    })
                    .collect(),
                _ => reports.get(&sub.consumer_group).cloned().unwrap_or_default(),
            };
            let mut tpl = TopicPartitionList::new();
            for t in sub.source_topics() {
                for partition in 0..topics.get(t).copied().unwrap_or(0) {
                    tpl.add_partition(t, partition);
                }
            }
            let mut lag = 0;
            if tpl.count() > 0 {
                let committed = coordinator_retry(config, || consumer.committed_offsets(tpl.clone(), config.timeout))?;
                for e in committed.elements() {
                    let (low, high) = consumer.fetch_watermarks(e.topic(), e.partition(), config.timeout)?;
                    let at = match e.offset() {
                        Offset::Offset(o) => o,
                        _ => low,
                    };
                    lag += (high - at).max(0);
                }
            }
            let mut problems = Vec::new();
            let reported = reports.get(&sub.consumer_group).cloned().unwrap_or_default();
            let live = members.unwrap_or_else(|| reported.iter().filter(|r| r.problem.is_none()).count());
            if live == 0 && only.is_none() {
                problems.push(format!(
                    "sub-topology {} has no live member (consumer group {}); {lag} records wait",
                    sub.name, sub.consumer_group
                ));
            }
            for r in &reported {
                if let Some(problem) = &r.problem {
                    problems.push(format!("sub-topology {} on {}: {problem}", sub.name, r.member));
                }
            }
            groups.push(GroupStatus {
                sub_topology: sub.name.clone(),
                group: sub.consumer_group.clone(),
                members,
                assignments,
                lag,
                draining: *only,
                problems,
            });
        }
        out.push(PipelineStatus {
            name: p.plan.name.clone(),
            fingerprint: p.plan.fingerprint.clone(),
            version: p.version,
            draining: draining.iter().map(|o| (o.version, o.until_ms)).collect(),
            groups,
        });
    }
    Ok(out)
}

/// `flowc list` as a table.
pub fn render_list(deployments: &Deployments) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<24} {:<12} {:<18} {:>10} {:>6}",
        "KIND", "NAME", "NAMESPACE", "FINGERPRINT", "PARTITIONS", "STEPS"
    );
    for d in deployments.values() {
        match d {
            Deployment::Pipeline(p) => {
                let steps = p.plan.steps().len();
                let _ = writeln!(
                    out,
                    "{:<9} {:<24} {:<12} {:<18} {:>10} {:>6}",
                    "pipeline", p.plan.name, p.plan.namespace, p.plan.fingerprint, p.partitions, steps
                );
            }
            Deployment::Model(m) => {
                let _ = writeln!(
                    out,
                    "{:<9} {:<24} {:<12} {:<18} {:>10} {:>6}",
                    "model",
                    m.name,
                    m.namespace,
                    model_source(m),
                    "",
                    ""
                );
            }
            Deployment::Server(x) => {
                let _ = writeln!(
                    out,
                    "{:<9} {:<24} {:<12} {}",
                    "server",
                    x.name,
                    x.namespace,
                    x.endpoints.join(" ")
                );
            }
        }
    }
    out
}

fn model_source(m: &ModelPlan) -> String {
    m.reference_model
        .clone()
        .map_or_else(|| m.storage_uri.clone(), |r| format!("flowc://{r}"))
}

/// The `extra` settings an explainer (or LLM) model's runtime needs (§1.2): `infer_uri`, the
/// gateway URL of what it explains, and for an explainer its `explainer_type`, as MLServer's
/// alibi-explain runtime reads them from `parameters.extra`. `None` for other models.
pub fn infer_uri_settings(model: &ModelPlan, gateway_url: &str) -> Option<serde_json::Value> {
    let base = gateway_url.trim_end_matches('/');
    if let Some(e) = &model.explainer {
        let mut extra = serde_json::json!({"infer_uri": format!("{base}{}", e.infer_path)});
        if let Some(t) = &e.explainer_type {
            extra["explainer_type"] = serde_json::json!(t);
        }
        return Some(serde_json::json!({"extra": extra}));
    }
    model
        .llm_infer_path
        .as_ref()
        .map(|path| serde_json::json!({"extra": {"infer_uri": format!("{base}{path}")}}))
}

/// Loads a placed model through its server's repository API where it has one (MLServer:
/// `POST /v2/repository/models/<m>/load`; a server without it answers 404, which is fine) and
/// reports whether the model is ready. Neither is required: a server may load it later.
fn load_and_check(model: &ModelPlan, server: &ServerPlan, endpoint: &super::placement::Endpoint) -> String {
    let mut notes = Vec::new();
    if let Some(rest) = super::placement::rest_endpoint(server) {
        match flowc_oip::rest::agent(Duration::from_secs(30))
            .post(&format!("{rest}/v2/repository/models/{}/load", model.name))
            .send_empty()
        {
            Ok(r) if r.status().is_success() => notes.push("loaded".to_string()),
            Ok(r) if r.status().as_u16() == 404 => {}
            Ok(r) => notes.push(format!("load answered HTTP {}", r.status().as_u16())),
            Err(e) => notes.push(format!("load failed: {e}")),
        }
    }
    let ready = match endpoint {
        super::placement::Endpoint::Grpc(url) => flowc_oip::grpc::GrpcModels::connect(url)
            .map_err(|e| e.to_string())
            .and_then(|c| c.with_timeout(Duration::from_secs(3)).ready(&model.name)),
        super::placement::Endpoint::Rest(url) => flowc_oip::rest::agent(Duration::from_secs(3))
            .get(&format!("{url}/v2/models/{}/ready", model.name))
            .call()
            .map(|r| r.status().is_success())
            .map_err(|e| e.to_string()),
    };
    notes.push(match ready {
        Ok(true) => "ready".to_string(),
        Ok(false) => "NOT READY".to_string(),
        Err(e) => format!("readiness unknown: {e}"),
    });
    notes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{compiled, join_with_window, JOIN as FILES};

    fn options() -> ApplyOptions {
        ApplyOptions {
            prefix: "seldon".into(),
            partitions: 3,
            replication: 1,
            dry_run: false,
            gateway_url: "http://127.0.0.1:9010".into(),
            drain: DEFAULT_DRAIN,
            guarantee: None,
        }
    }

    /// What a cluster holds after `planned` was carried out.
    fn after(planned: &ApplyPlan, mut existing: BTreeMap<String, i32>) -> (Deployments, BTreeMap<String, i32>) {
        let deployed = planned.records.iter().map(|d| (d.key(), d.clone())).collect();
        for t in &planned.to_create {
            existing.insert(t.name.clone(), t.partitions);
        }
        (deployed, existing)
    }

    #[test]
    fn a_first_apply_creates_everything_and_a_second_changes_nothing() {
        let plan = compiled(FILES);
        let first = plan_apply(&plan, &options(), &Deployments::new(), &BTreeMap::new(), 1_000).expect("accepted");
        assert_eq!(first.records.len(), 4, "three models and the pipeline");
        assert!(first.to_create.iter().all(|t| t.partitions == 3));
        assert!(first
            .to_create
            .iter()
            .any(|t| t.name == "seldon.default.pipeline.p.inputs" && !t.compacted));
        assert!(first
            .to_create
            .iter()
            .any(|t| t.name.ends_with("join-changelog") && t.compacted));
        assert_eq!(first.groups.len(), plan.pipelines[0].sub_topologies.len());
        assert!(first.lines[0].starts_with("pipeline p: create ("), "{:?}", first.lines);
        assert!(first.model_verbs.iter().all(|(_, verb)| *verb == "create"));

        let (deployed, existing) = after(&first, BTreeMap::new());
        let second = plan_apply(&plan, &options(), &deployed, &existing, 2_000).expect("accepted");
        assert!(second.records.is_empty() && second.to_create.is_empty() && second.groups.is_empty());
        assert_eq!(
            second.lines,
            [format!("pipeline p: unchanged ({})", plan.pipelines[0].fingerprint)]
        );
        assert!(second.model_verbs.iter().all(|(_, verb)| *verb == "unchanged"));
    }

    #[test]
    fn a_changed_pipeline_is_a_new_version_with_its_diff() {
        let plan = compiled(FILES);
        let first = plan_apply(&plan, &options(), &Deployments::new(), &BTreeMap::new(), 1_000).expect("accepted");
        let (deployed, existing) = after(&first, BTreeMap::new());
        let changed = compiled(&join_with_window(5000));
        let second = plan_apply(&changed, &options(), &deployed, &existing, 2_000).expect("accepted");
        assert!(second.lines[0].contains("(version 1 -> 2)"), "{:?}", second.lines);
        assert!(
            second
                .lines
                .iter()
                .any(|l| l.starts_with("  ~ sub-topology j (changed")),
            "{:?}",
            second.lines
        );
        let Some(Deployment::Pipeline(d)) = second.records.iter().find(|d| matches!(d, Deployment::Pipeline(_))) else {
            panic!("no pipeline record: {:?}", second.records);
        };
        assert_eq!(d.version, 2);
        assert_eq!(d.since.get("j"), Some(&2), "the changed join runs anew: {:?}", d.since);
        // The changed sub-topology gets a group and changelog of its own.
        assert!(
            second.groups.iter().any(|(g, _)| g.ends_with(".j.v2")),
            "{:?}",
            second.groups
        );
        assert!(
            second.to_create.iter().any(|t| t.name.contains(".j.v2.")),
            "{:?}",
            second.to_create
        );
    }

    #[test]
    fn refusals_name_every_problem() {
        let plan = compiled(&FILES.replace(
            "metadata: {name: b}\nspec: {storageUri: \"flowc://mul10\"}",
            "metadata: {name: c}\nspec: {storageUri: \"flowc://mul10\"}",
        ));
        // Joined topics that exist with different counts, and a model nobody deploys.
        let existing: BTreeMap<String, i32> = [
            ("seldon.default.model.a.outputs".to_string(), 2),
            ("seldon.default.model.b.outputs".to_string(), 4),
        ]
        .into();
        let refusals = plan_apply(&plan, &options(), &Deployments::new(), &existing, 1_000).expect_err("refused");
        assert!(refusals.contains(&Refusal::ModelMissing {
            pipeline: "p".into(),
            model: "b".into()
        }));
        assert!(
            refusals.iter().any(|r| matches!(r, Refusal::Copartition(t) if t.contains("model.a.outputs has 2") && t.contains("model.b.outputs has 4"))),
            "{refusals:?}"
        );
        assert!(refusals[0].to_string().contains("neither in these files nor deployed"));
    }
}
