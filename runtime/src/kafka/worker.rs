//! `flowc worker`: follows the deployment log and runs every deployed pipeline's
//! sub-topologies. Each sub-topology is one consumer group (named in the plan); this worker
//! joins it with one consumer on its own thread, and Kafka's group protocol decides which
//! partitions it gets: adding a replica moves partitions to it, killing one moves them back.
//! For every partition it holds, a [`Task`] runs the sub-topology's operators over RocksDB
//! stores that are rebuilt from their changelog topics when the partition arrives.
//!
//! Delivery is at least once: a batch's outputs and changelog records are produced and
//! acknowledged by the broker before the batch's input offsets are committed. A crash between
//! the two replays the batch (duplicates are possible, losses are not).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flowc_plan::{PipelinePlan, Role};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::message::{BorrowedMessage, Header, Headers as _, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaConfig;
use super::control::Guarantee;
use super::control::{ControlReader, PipelineDeployment};
use super::restore::read_changelog_from;
use super::{now_ms, KafkaError};
use crate::operator::{CallAnswer, ModelBackend, ModelCallError};
use crate::ops::BuildEnv;
use crate::record::Record;
use crate::state::{ChangelogRecord, RocksState, StateStore};
use crate::task::{PendingCall, Task, TaskOutput};

#[derive(Clone)]
pub struct WorkerOptions {
    pub prefix: String,
    /// Where task state lives (RocksDB, one instance per task). Disposable: everything in it
    /// is rebuilt from changelogs.
    pub state_dir: PathBuf,
    /// How model steps are called (`None`: this worker cannot run model calls).
    pub models: Option<Arc<dyn ModelBackend>>,
    /// Most records handled between two commits.
    pub max_batch: usize,
    /// How often operator timers (join windows, batch flushes) run.
    pub tick: Duration,
    /// Model calls in flight at once per model-call consumer.
    pub model_concurrency: usize,
    /// Placement of models on deployed Servers, kept up to date from the deployment log
    /// (usually also `models`).
    pub placed: Option<Arc<super::placement::PlacedModels>>,
    /// Reports which partitions this worker holds (`flowc status --partitions`); set by `run`.
    pub reporter: Option<Arc<super::members::MemberReporter>>,
    /// The pipelines and models deployed now and their versions, kept by `run` from the
    /// deployment log: steps stamp and sort records by version, and a model call skips
    /// records of a pipeline that is no longer deployed.
    pub deployed: Arc<std::sync::RwLock<BTreeMap<String, LiveVersions>>>,
    /// The processing guarantee of pipelines whose deployment does not choose one.
    pub guarantee: Guarantee,
    /// Names this worker stably across restarts (its transactional producers' ids): by default
    /// the host name and the state directory.
    pub instance: String,
    /// At least once: checkpoint stores and restore only the changelog's tail where a
    /// checkpoint allows (`--restore-from-checkpoints`, on by default). Off, every task
    /// restores in full.
    pub checkpoints: bool,
}

/// A deployed pipeline's versions (a model's: version 0 alone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveVersions {
    /// The version new requests are stamped with.
    pub current: u64,
    /// Every version that still runs: the current one and those draining.
    pub live: BTreeSet<u64>,
}

impl WorkerOptions {
    pub fn new(prefix: impl Into<String>, state_dir: impl Into<PathBuf>) -> WorkerOptions {
        WorkerOptions {
            prefix: prefix.into(),
            state_dir: state_dir.into(),
            models: None,
            max_batch: 500,
            tick: Duration::from_millis(100),
            model_concurrency: 16,
            placed: None,
            reporter: None,
            deployed: Arc::default(),
            guarantee: Guarantee::AtLeastOnce,
            instance: String::new(),
            checkpoints: true,
        }
    }
}

/// A running sub-topology consumer.
struct Runner {
    /// What it runs (restarted when this changes).
    spec: String,
    /// The pipeline versions it serves, lowest and highest (`u64::MAX`: the current version's
    /// and every later one that keeps this sub-topology as it is).
    versions: Arc<std::sync::RwLock<(u64, u64)>>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// One consumer group a worker should run.
struct Wanted {
    spec: String,
    deployment: Arc<PipelineDeployment>,
    sub: usize,
    versions: (u64, u64),
    exactly_once: bool,
}

/// Runs until `stop` is set; then stops every consumer (committing what was done) and returns.
pub fn run(config: &KafkaConfig, options: &WorkerOptions, stop: Arc<AtomicBool>) -> Result<(), KafkaError> {
    let mut control = ControlReader::open(config, &options.prefix)?;
    let mut options = options.clone();
    if options.reporter.is_none() {
        options.reporter = Some(Arc::new(super::members::MemberReporter::new(config, &options.prefix)?));
    }
    let options = &options;
    let mut runners: BTreeMap<String, Runner> = BTreeMap::new();
    tracing::info!(prefix = %options.prefix, "worker started");
    let mut dirty = true;
    let mut last_loop_ms = 0;
    while !stop.load(Ordering::Relaxed) {
        if dirty {
            if let Some(placed) = &options.placed {
                let models: Vec<_> = control.models().cloned().collect();
                let servers: Vec<_> = control.servers().cloned().collect();
                placed.update(super::placement::placements(&models, &servers));
            }
            reconcile(config, options, &control, &mut runners);
        }
        // A draining version stops at its time: reconcile then.
        let now = now_ms();
        let next_expiry = control
            .pipelines()
            .flat_map(|d| d.draining.iter().map(|o| o.until_ms))
            .filter(|&t| t > last_loop_ms)
            .min();
        last_loop_ms = now;
        // A runner that died (a bug, or a broker error it could not recover from) restarts.
        let dead: Vec<String> = runners
            .iter()
            .filter(|(_, r)| r.handle.is_finished())
            .map(|(g, _)| g.clone())
            .collect();
        for g in &dead {
            if let Some(r) = runners.remove(g) {
                let _ = r.handle.join();
            }
        }
        dirty = !dead.is_empty() || next_expiry.is_some_and(|t| t <= now);
        match control.poll(Duration::from_millis(300)) {
            Ok(changed) => dirty |= changed,
            Err(e) => {
                tracing::warn!(error = %e, "reading the deployment log failed; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
    for r in runners.values() {
        r.stop.store(true, Ordering::Relaxed);
    }
    for (_, r) in runners {
        let _ = r.handle.join();
    }
    if let Some(reporter) = &options.reporter {
        reporter.flush();
    }
    tracing::info!("worker stopped");
    Ok(())
}

/// Starts consumers for deployed sub-topologies, stops those no longer deployed, restarts
/// those whose plan changed.
fn reconcile(
    config: &KafkaConfig,
    options: &WorkerOptions,
    control: &ControlReader,
    runners: &mut BTreeMap<String, Runner>,
) {
    let now = now_ms();
    if let Ok(mut deployed) = options.deployed.write() {
        *deployed = control
            .pipelines()
            .map(|d| {
                let live = d.live_versions(now).into_iter().collect();
                (
                    d.plan.name.clone(),
                    LiveVersions {
                        current: d.version,
                        live,
                    },
                )
            })
            .chain(control.models().map(|m| (m.name.clone(), LiveVersions::default())))
            .collect();
    }
    let mut wanted: BTreeMap<String, Wanted> = BTreeMap::new();
    let mut want = |deployment: &Arc<PipelineDeployment>, versions: &dyn Fn(&str) -> (u64, u64)| {
        for (i, sub) in deployment.plan.sub_topologies.iter().enumerate() {
            let (lo, hi) = versions(&sub.name);
            match wanted.get_mut(&sub.consumer_group) {
                // A model call shared by several pipelines runs once (one group per model); a
                // sub-topology that two versions share serves both.
                Some(w) => {
                    if w.deployment.plan.name == deployment.plan.name {
                        w.versions = (w.versions.0.min(lo), w.versions.1.max(hi));
                    }
                }
                None => {
                    // A model call is shared: it runs exactly once if the worker or any
                    // pipeline calling the model asks for it (else the model's outputs could
                    // hold a retried batch twice, and so could every pipeline after it).
                    let exactly_once = match &sub.role {
                        Role::ModelCall { model } => {
                            options.guarantee == Guarantee::ExactlyOnce
                                || control.pipelines().any(|p| {
                                    p.guarantee == Some(Guarantee::ExactlyOnce) && p.plan.models.contains(model)
                                })
                        }
                        _ => deployment.guarantee.unwrap_or(options.guarantee) == Guarantee::ExactlyOnce,
                    };
                    wanted.insert(
                        sub.consumer_group.clone(),
                        Wanted {
                            spec: runner_spec(sub, exactly_once),
                            deployment: deployment.clone(),
                            sub: i,
                            versions: (lo, hi),
                            exactly_once,
                        },
                    );
                }
            }
        }
    };
    for d in control.pipelines() {
        // The current version as it runs, then the versions still draining.
        let current = Arc::new(PipelineDeployment {
            plan: d.runnable(),
            draining: Vec::new(),
            ..d.clone()
        });
        want(&current, &|sub| (super::control::since_of(&d.since, sub), u64::MAX));
        for old in d.draining.iter().filter(|o| o.until_ms > now) {
            let draining = Arc::new(PipelineDeployment {
                prefix: d.prefix.clone(),
                plan: super::control::runnable(&old.plan, &old.since),
                partitions: d.partitions,
                applied_at_ms: d.applied_at_ms,
                version: old.version,
                since: old.since.clone(),
                draining: Vec::new(),
                guarantee: d.guarantee,
            });
            want(&draining, &|sub| {
                (super::control::since_of(&old.since, sub), old.version)
            });
        }
    }
    // A deployed Model no pipeline uses still answers calls through its topics (§7).
    for m in control.models() {
        let Some(plan) = m.call.as_deref().cloned() else {
            tracing::warn!(model = %m.name, "this model was deployed by an older flowc without its call plan: apply it again to call it through its topics");
            continue;
        };
        let Some(sub) = plan.sub_topologies.first() else {
            continue;
        };
        if wanted.contains_key(&sub.consumer_group) {
            continue;
        }
        let group = sub.consumer_group.clone();
        let exactly_once = options.guarantee == Guarantee::ExactlyOnce;
        let spec = runner_spec(sub, exactly_once);
        let deployment = Arc::new(PipelineDeployment {
            prefix: options.prefix.clone(),
            plan,
            partitions: 1,
            applied_at_ms: 0,
            version: 0,
            since: BTreeMap::new(),
            draining: Vec::new(),
            guarantee: None,
        });
        wanted.insert(
            group,
            Wanted {
                spec,
                deployment,
                sub: 0,
                versions: (0, u64::MAX),
                exactly_once,
            },
        );
    }
    let stale: Vec<String> = runners
        .iter()
        .filter(|(g, r)| wanted.get(*g).is_none_or(|w| w.spec != r.spec))
        .map(|(g, _)| g.clone())
        .collect();
    for g in stale {
        if let Some(r) = runners.remove(&g) {
            tracing::info!(group = %g, "stopping consumer (undeployed or changed)");
            r.stop.store(true, Ordering::Relaxed);
            let _ = r.handle.join();
        }
    }
    for (group, w) in wanted {
        let Wanted {
            spec,
            deployment,
            sub,
            versions,
            exactly_once,
        } = w;
        if let Some(r) = runners.get(&group) {
            if let Ok(mut v) = r.versions.write() {
                *v = versions;
            }
            continue;
        }
        let versions = Arc::new(std::sync::RwLock::new(versions));
        let stop = Arc::new(AtomicBool::new(false));
        let (config, options, stop2, versions2) = (config.clone(), options.clone(), stop.clone(), versions.clone());
        let name = format!("flowc-{}", deployment.plan.sub_topologies[sub].name);
        let handle = std::thread::Builder::new().name(name).spawn(move || {
            let mut backoff = Duration::from_millis(200);
            while !stop2.load(Ordering::Relaxed) {
                match SubRunner::new(&config, &options, deployment.clone(), sub, versions2.clone(), exactly_once)
                    .and_then(|r| r.run(&stop2))
                {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(pipeline = %deployment.plan.name, sub = %deployment.plan.sub_topologies[sub].name, error = %e, "consumer failed; restarting");
                        if let Some(reporter) = &options.reporter {
                            let problem = format!(
                                "restarting in {} after an error: {e}",
                                flowc_oip::backend::seconds(backoff)
                            );
                            reporter.report(
                                &deployment.plan.sub_topologies[sub].consumer_group,
                                Some(BTreeMap::new()),
                                Some(&problem),
                            );
                        }
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        match handle {
            Ok(handle) => {
                runners.insert(
                    group,
                    Runner {
                        spec,
                        versions,
                        stop,
                        handle,
                    },
                );
            }
            Err(e) => tracing::error!(group = %group, error = %e, "cannot start a consumer thread"),
        }
    }
}

/// What a runner runs, to compare across deployment-log changes: the sub-topology's
/// fingerprint (`SubTopology::fingerprint`: deleting the last pipeline that uses a model does
/// not restart its call) and its processing guarantee.
fn runner_spec(sub: &flowc_plan::SubTopology, exactly_once: bool) -> String {
    let spec = sub.fingerprint();
    if exactly_once {
        format!("{spec} exactly-once")
    } else {
        spec
    }
}

// ------------------------------------------------------------------ client contexts

enum GroupEvent {
    Assigned(TopicPartitionList),
    Revoked(TopicPartitionList),
}

/// Records rebalances; the runner acts on them between polls, on its own thread.
///
/// The assignment changes only when the runner says so ([`SubRunner::handle_group_events`]):
/// a revoke first commits what the revoked tasks did, then unassigns, so the offsets are
/// committed while this member still owns the partitions (with the consumer protocol, giving
/// them up is what lets the broker hand them on); an assign pauses the partitions whose
/// stores must be restored before any record of them is fetched. librdkafka waits for that
/// call (the rebalance stays open until the application assigns or unassigns).
#[derive(Default)]
struct GroupContext {
    events: Mutex<Vec<GroupEvent>>,
    /// Set once the runner stops polling (it stopped, or failed): a rebalance then (the
    /// revoke of `unsubscribe` or of closing the consumer) is carried out at once, as
    /// librdkafka's own handler would, since nobody is left to act on an event and librdkafka
    /// would wait for that forever.
    closing: AtomicBool,
}

fn partitions_of(tpl: &TopicPartitionList) -> BTreeSet<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

impl GroupContext {
    /// Takes (`assign`) or gives up the partitions of a rebalance event, incrementally where the
    /// group's protocol is (the consumer protocol), else the whole assignment.
    fn carry_out(
        consumer: &BaseConsumer<Self>,
        assign: bool,
        tpl: &TopicPartitionList,
    ) -> rdkafka::error::KafkaResult<()> {
        let incremental = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        match (assign, incremental) {
            (true, true) => consumer.incremental_assign(tpl),
            (true, false) => consumer.assign(tpl),
            (false, true) => consumer.incremental_unassign(tpl),
            (false, false) => consumer.unassign(),
        }
    }

    /// [`GroupContext::carry_out`] while closing, where nobody is left to hear of a failure.
    fn apply_default(consumer: &BaseConsumer<Self>, assign: bool, tpl: &TopicPartitionList) {
        if let Err(e) = Self::carry_out(consumer, assign, tpl) {
            tracing::debug!(error = %e, "rebalance while closing");
        }
    }

    /// Stops deferring rebalances (see `closing`) and carries out those still recorded, so
    /// librdkafka waits for nothing when the consumer leaves its group.
    fn close(&self, consumer: &BaseConsumer<Self>) {
        self.closing.store(true, Ordering::Release);
        let events: Vec<GroupEvent> = self
            .events
            .lock()
            .map(|mut e| e.drain(..).collect())
            .unwrap_or_default();
        for event in events {
            match event {
                GroupEvent::Assigned(tpl) => Self::apply_default(consumer, true, &tpl),
                GroupEvent::Revoked(tpl) => Self::apply_default(consumer, false, &tpl),
            }
        }
    }
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        if self.closing.load(Ordering::Acquire) {
            let assign = err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
            Self::apply_default(consumer, assign, tpl);
            return;
        }
        let event = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => GroupEvent::Assigned(tpl.clone()),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => GroupEvent::Revoked(tpl.clone()),
            other => {
                // librdkafka's rule for a failed rebalance: give up the assignment.
                tracing::warn!(error = ?other, "rebalance error; giving up the partitions");
                GroupEvent::Revoked(tpl.clone())
            }
        };
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }
}

/// Counts failed deliveries, so a batch whose outputs were not stored is never committed.
#[derive(Default)]
struct DeliveryContext {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(format!("{}/{}: {e}", m.topic(), m.partition()));
            }
        }
    }
}

// ------------------------------------------------------------------ one sub-topology

/// How long the poll loop waits for its outputs to be acknowledged before it polls again
/// without committing. Well under `max.poll.interval.ms`: while a broker fails over, `acks=all`
/// writes wait until the dead node leaves the in-sync replicas (about 10 s on Kafka), and a
/// loop blocked that long gets its consumer thrown out of the group (one more rebalance, and
/// every uncommitted record replayed).
const ACK_WAIT_IN_LOOP: Duration = Duration::from_secs(2);

/// How long an exactly-once transaction stays open across batches before it commits: what a
/// record waits at most, beyond its batch, before readers (`read_committed`) see it.
const EOS_COMMIT_INTERVAL: Duration = Duration::from_millis(100);

/// How often an at-least-once runner checkpoints its stores (a flush and a watermark read per
/// store); a restart on the same state directory replays at most this much changelog.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

/// How long a "paused" problem is reported after the last rewind that raised it.
const PAUSE_OUTLIVES_RETRY: Duration = Duration::from_secs(3);

/// How many lag samples must each rise for "lag growing" (4: over 15 s).
const LAG_SAMPLES: usize = 4;

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;

struct SubRunner {
    config: KafkaConfig,
    options: WorkerOptions,
    deployment: Arc<PipelineDeployment>,
    sub: usize,
    consumer: Arc<BaseConsumer<GroupContext>>,
    producer: ThreadedProducer<DeliveryContext>,
    /// Partition count of every topic the plan touches (sinks keep partitions, §4.2).
    partitions: BTreeMap<String, i32>,
    /// Store name → changelog topic.
    changelogs: BTreeMap<String, String>,
    tasks: BTreeMap<i32, Task>,
    /// For a model-call sub-topology: stateless tasks that make calls concurrently.
    pool: Vec<Task>,
    /// A fused pipeline's sub-topology (§10): records go through in waves (`run_fused`).
    fused: bool,
    /// Next offset to commit, per source topic and partition.
    pending: BTreeMap<(String, i32), i64>,
    /// First offset read since the last commit: where to rewind when a model server is down.
    uncommitted_from: BTreeMap<(String, i32), i64>,
    metrics: crate::metrics::StepMetrics,
    /// The pipeline versions this runner serves (kept up to date by `reconcile`).
    versions: Arc<std::sync::RwLock<(u64, u64)>>,
    /// Error records written in place of records this runner read and did not work on (a
    /// deadline passed, a version retired), per input partition; sent by the poll loop.
    error_outputs: Vec<(i32, TaskOutput)>,
    /// Records (topic, partition, offset) already answered with an error record in place of
    /// being worked on, since the last commit: read again after a rewind, they are not
    /// answered twice. Cleared by a commit, and by an aborted transaction (which took the
    /// error records with it).
    answered_in_place: std::collections::HashSet<(String, i32, i64)>,
    /// The `max.message.bytes` of the topics this runner writes, where the broker says it.
    topic_limits: BTreeMap<String, usize>,
    /// What keeps this runner from processing (records paused on an unreachable model), for
    /// its member reports.
    problem: Option<(String, Instant)>,
    /// The total lag at the last few gauge updates.
    lag_history: std::collections::VecDeque<i64>,
    /// When the stores were last checkpointed.
    last_checkpoint: Instant,
    /// A fused task's lineage records (§10) of the wave under way: written once the wave is
    /// through, after its answers, so that no lineage write holds up an answer behind it in
    /// the producer (one request in flight per connection). The same commit covers them.
    held_lineage: std::cell::RefCell<Vec<(String, Record)>>,
    /// When the open transaction began (exactly once).
    transaction_began: std::cell::Cell<Instant>,
    /// Topic → the pipeline whose records its source reads (sources that read any record,
    /// model calls', are not here).
    source_filters: BTreeMap<String, Vec<String>>,
    /// Exactly once: outputs, changelog records and input offsets in one transaction per batch.
    exactly_once: bool,
    /// The largest record the producer may send (`message.max.bytes`).
    max_message_bytes: usize,
    /// A transaction is open (something was produced since the last commit).
    in_transaction: std::cell::Cell<bool>,
    /// At least once: the changelog records of what was processed since the last commit, by
    /// partition, written only once the outputs they go with are acknowledged
    /// ([`SubRunner::commit_within`]). Written with them, a crash could leave a changelog
    /// record whose output never reached its topic: a join's tombstone for a matched entry
    /// without the joined record, and the replayed partner then finds nothing to join.
    held_changelog: std::cell::RefCell<Vec<(i32, ChangelogRecord)>>,
    /// Tasks whose stores are being restored on threads of their own, by partition; their
    /// partitions are paused until they are ready.
    restoring: BTreeMap<i32, Restoring>,
    /// Restores given up (their partition was revoked), until their threads end.
    abandoned: Vec<(i32, JoinHandle<()>)>,
    /// Where restore threads hand their tasks back.
    restored_tx: std::sync::mpsc::Sender<Restored>,
    restored_rx: std::sync::mpsc::Receiver<Restored>,
    /// Numbers restores, so a task that comes back from an abandoned one is not taken.
    restores_started: u64,
}

impl Drop for SubRunner {
    /// A runner that ends (stopped, or restarting after an error) first ends its restores:
    /// their threads hold the tasks' RocksDB directories, which the next runner opens.
    fn drop(&mut self) {
        self.consumer.context().close(&self.consumer);
        self.stop_restores();
    }
}

/// A task being restored apart from the poll loop (`SubRunner::start_restore`).
struct Restoring {
    id: u64,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    /// The partition's topics, paused while it restores.
    topics: TopicPartitionList,
    /// The first offset per topic of records of this partition that were fetched before the
    /// pause took and so not worked on: where it resumes if the group committed none.
    skipped: BTreeMap<String, i64>,
    started: Instant,
}

/// What a restore thread hands back.
struct Restored {
    partition: i32,
    id: u64,
    task: Result<Task, KafkaError>,
}

/// What a restore thread needs of its runner.
#[derive(Clone)]
struct RestoreEnv {
    config: KafkaConfig,
    changelogs: BTreeMap<String, String>,
    exactly_once: bool,
    checkpoints: bool,
    pipeline: String,
    sub: String,
}

impl SubRunner {
    fn new(
        config: &KafkaConfig,
        options: &WorkerOptions,
        deployment: Arc<PipelineDeployment>,
        sub: usize,
        versions: Arc<std::sync::RwLock<(u64, u64)>>,
        exactly_once: bool,
    ) -> Result<SubRunner, KafkaError> {
        let plan = &deployment.plan;
        let s = &plan.sub_topologies[sub];
        let fused = matches!(s.role, Role::Fused { .. });
        let consumer: BaseConsumer<GroupContext> = config
            .consumer(&s.consumer_group)
            .create_with_context(GroupContext::default())?;
        // Each once: a fused task has a sink per model on the errors topic, and a
        // DescribeConfigs that names a resource twice is refused.
        let written: Vec<&str> = deployment.plan.sub_topologies[sub]
            .nodes
            .iter()
            .filter_map(|n| match &n.op {
                flowc_plan::Op::Sink { topic, .. } => Some(topic.as_str()),
                _ => None,
            })
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .collect();
        let topic_limits = super::broker::topic_record_limits(config, &written).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "topic record limits unknown; the client's message.max.bytes is the limit");
            BTreeMap::new()
        });
        // The topics' own limits decide (checked before writing, `too_large`).
        let (mut producer_config, max_message_bytes) = config.producer_for_records_of(
            topic_limits
                .values()
                .copied()
                .max()
                .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        );
        if exactly_once {
            // EOS v2: one transactional producer per consumer, fenced through the consumer
            // group's generation. The id is stable across restarts of this worker, so a
            // restart aborts what its dead predecessor left open at once; a short transaction
            // timeout bounds how long readers wait on one that nobody takes over.
            producer_config
                .set("transactional.id", format!("{}.{}", s.consumer_group, options.instance))
                .set("enable.idempotence", "true")
                .set("transaction.timeout.ms", "10000")
                // librdkafka wants a record's delivery timeout within the transaction's.
                .set("message.timeout.ms", "10000");
        }
        let producer: ThreadedProducer<DeliveryContext> =
            producer_config.create_with_context(DeliveryContext::default())?;
        if exactly_once {
            producer.init_transactions(config.timeout)?;
        }
        let metadata = consumer
            .fetch_metadata(None, config.timeout)
            .map_err(|e| KafkaError::unreachable(config, "fetching topic metadata", e))?;
        let partitions = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        let changelogs = plan
            .stores
            .iter()
            .filter(|st| st.sub_topology == s.name)
            .map(|st| (st.name.clone(), st.changelog_topic.clone()))
            .collect();
        let topics = s.source_topics();
        consumer.subscribe(&topics)?;
        tracing::info!(pipeline = %plan.name, sub = %s.name, group = %s.consumer_group, topics = ?topics, "consumer joined its group");
        let metrics = crate::metrics::metrics().step(&plan.name, &s.name);
        // A source that reads only its pipeline's records drops the others (§4.3); they are
        // counted here, so a garbled or foreign record is never dropped unseen.
        // A topic may have several sources (the errors topic, one per pipeline forwarded):
        // a record is skipped only if none of them reads it, and a topic with a source that
        // reads any record is not filtered at all.
        let mut source_filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unfiltered: BTreeSet<String> = BTreeSet::new();
        for n in &deployment.plan.sub_topologies[sub].nodes {
            if let flowc_plan::Op::Source { topic, pipeline, .. } = &n.op {
                match pipeline {
                    Some(p) => source_filters.entry(topic.clone()).or_default().push(p.clone()),
                    None => {
                        unfiltered.insert(topic.clone());
                    }
                }
            }
        }
        source_filters.retain(|t, _| !unfiltered.contains(t));
        let (restored_tx, restored_rx) = std::sync::mpsc::channel();
        let mut runner = SubRunner {
            problem: None,
            lag_history: std::collections::VecDeque::new(),
            last_checkpoint: Instant::now(),
            held_lineage: std::cell::RefCell::new(Vec::new()),
            transaction_began: std::cell::Cell::new(Instant::now()),
            topic_limits,
            source_filters,
            config: config.clone(),
            options: options.clone(),
            deployment,
            sub,
            consumer: Arc::new(consumer),
            producer,
            partitions,
            changelogs,
            tasks: BTreeMap::new(),
            pool: Vec::new(),
            fused,
            pending: BTreeMap::new(),
            uncommitted_from: BTreeMap::new(),
            metrics,
            versions,
            error_outputs: Vec::new(),
            answered_in_place: std::collections::HashSet::new(),
            exactly_once,
            in_transaction: std::cell::Cell::new(false),
            held_changelog: std::cell::RefCell::new(Vec::new()),
            max_message_bytes,
            restoring: BTreeMap::new(),
            abandoned: Vec::new(),
            restored_tx,
            restored_rx,
            restores_started: 0,
        };
        if matches!(runner.plan().sub_topologies[sub].role, Role::ModelCall { .. }) {
            for _ in 0..runner.options.model_concurrency.max(1) {
                let task = runner.new_task(0)?;
                runner.pool.push(task);
            }
        }
        Ok(runner)
    }

    fn plan(&self) -> &PipelinePlan {
        &self.deployment.plan
    }

    fn run(mut self, stop: &AtomicBool) -> Result<(), KafkaError> {
        let mut last_tick = Instant::now();
        // Messages borrow the consumer; a second handle leaves `self` free to change.
        let consumer = self.consumer.clone();
        let processing = self.metrics.processing_seconds.clone();
        let mut last_gauges = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            self.take_restored()?;
            let started = Instant::now();
            let mut handled = 0;
            let mut wait = Duration::from_millis(50);
            // Model calls of a batch run concurrently (see `call_models`); other sub-topologies
            // handle records one by one, in order.
            let mut deferred: Vec<(String, Record)> = Vec::new();
            while handled < self.options.max_batch && started.elapsed() < Duration::from_millis(100) {
                let polled = consumer.poll(wait);
                wait = Duration::ZERO;
                if self.has_group_events() {
                    // What was read before a revoke is done before its offsets are committed.
                    self.run_deferred(std::mem::take(&mut deferred))?;
                    self.handle_group_events()?;
                    self.report_members();
                }
                match polled {
                    None => break,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "consumer error");
                        break;
                    }
                    Some(Ok(message)) => {
                        handled += 1;
                        let Some((topic, record)) = self.take(&message) else {
                            for (partition, out) in std::mem::take(&mut self.error_outputs) {
                                self.send(partition, out)?;
                            }
                            continue;
                        };
                        if self.pool.is_empty() && !self.fused {
                            let partition = record.partition;
                            let span = tracing::debug_span!(
                                "record",
                                pipeline = %self.deployment.plan.name,
                                step = %self.deployment.plan.sub_topologies[self.sub].name,
                                request = %record.key,
                            );
                            let Some(task) = self.tasks.get_mut(&partition) else {
                                continue;
                            };
                            let started = Instant::now();
                            let out = span.in_scope(|| task.process(&topic, record, now_ms()));
                            processing.observe(started.elapsed().as_secs_f64());
                            if let Some(reason) = &out.unavailable {
                                self.rewind(reason);
                                break;
                            }
                            self.resumed();
                            self.send(partition, out)?;
                        } else {
                            deferred.push((topic, record));
                        }
                    }
                }
            }
            self.run_deferred(deferred)?;
            if last_gauges.elapsed() >= super::members::REPORT_EVERY {
                last_gauges = Instant::now();
                self.update_gauges();
                self.report_members();
            }
            if last_tick.elapsed() >= self.options.tick {
                last_tick = Instant::now();
                let now = now_ms();
                let partitions: Vec<i32> = self.tasks.keys().copied().collect();
                let mut calls = Vec::new();
                for p in partitions {
                    if let Some(task) = self.tasks.get_mut(&p) {
                        let mut out = task.punctuate(now);
                        calls.extend(out.calls.drain(..).map(|c| (p, c)));
                        self.send(p, out)?;
                    }
                }
                // A fused task's timer may close a window or batch whose record goes on to
                // a model call.
                self.finish_calls(calls)?;
            }
            // Exactly once: a transaction spans batches for up to EOS_COMMIT_INTERVAL, so its
            // fixed cost (offsets, markers, the end of the transaction) is paid once per
            // interval, not once per batch (Kafka Streams' commit.interval.ms under EOS).
            // At least once, after every batch: waiting for the batch's acknowledgements here
            // also keeps the loop from reading faster than the broker stores (committing every
            // 100 ms instead let a loop fill its producer's queue while a broker was down, block
            // in produce past max.poll.interval.ms and lose its partitions: the broker
            // fail-over test lost answers).
            let keep_open = self.exactly_once
                && self.in_transaction.get()
                && self.transaction_began.get().elapsed() < EOS_COMMIT_INTERVAL;
            let committed = !keep_open && self.commit_within(ACK_WAIT_IN_LOOP)?;
            if committed && !self.exactly_once && self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                self.checkpoint_all();
            }
        }
        self.stop_restores();
        self.commit()?;
        self.checkpoint_all();
        // Leaving the group revokes everything; nothing is left to commit.
        self.consumer.context().close(&self.consumer);
        self.consumer.unsubscribe();
        if let Some(reporter) = &self.options.reporter {
            reporter.report(
                &self.deployment.plan.sub_topologies[self.sub].consumer_group,
                None,
                None,
            );
        }
        Ok(())
    }

    /// Reports the partitions this runner's consumer holds (`members.rs`).
    fn report_members(&self) {
        let Some(reporter) = &self.options.reporter else {
            return;
        };
        let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        if let Ok(tpl) = self.consumer.assignment() {
            for e in tpl.elements() {
                partitions.entry(e.topic().to_string()).or_default().push(e.partition());
            }
        }
        for ps in partitions.values_mut() {
            ps.sort_unstable();
        }
        // A pause retries every half second while the server stays away: one not renewed for
        // a few seconds is over (the records that met it may all have expired since).
        let paused = self
            .problem
            .as_ref()
            .filter(|(_, at)| at.elapsed() < PAUSE_OUTLIVES_RETRY)
            .map(|(p, _)| p.clone());
        let problem = paused.or_else(|| self.lag_problem());
        reporter.report(
            &self.deployment.plan.sub_topologies[self.sub].consumer_group,
            Some(partitions),
            problem.as_deref(),
        );
    }

    /// "lag growing" when the lag rose at every one of the last samples (taken every
    /// [`super::members::REPORT_EVERY`]): the runner falls behind its inputs.
    fn lag_problem(&self) -> Option<String> {
        let samples: Vec<i64> = self.lag_history.iter().copied().collect();
        if samples.len() < LAG_SAMPLES || !samples.windows(2).all(|w| w[1] > w[0]) {
            return None;
        }
        let (first, last) = (samples[0], samples[samples.len() - 1]);
        Some(format!(
            "lag growing: {last} records behind, up {} in {} s",
            last - first,
            (samples.len() as u64 - 1) * super::members::REPORT_EVERY.as_secs()
        ))
    }

    /// Store sizes and consumer lag (a watermark query per partition, bounded by 500 ms; on
    /// tansu, whose watermark counts batches, the lag reads low).
    fn update_gauges(&mut self) {
        let lag = self.measure();
        if let Some(lag) = lag {
            self.lag_history.push_back(lag);
            while self.lag_history.len() > LAG_SAMPLES {
                self.lag_history.pop_front();
            }
        }
    }

    /// Sets the store and lag gauges; returns the total lag over the partitions held.
    fn measure(&self) -> Option<i64> {
        let m = crate::metrics::metrics();
        let plan = &self.deployment.plan;
        let (pipeline, step) = (plan.name.as_str(), plan.sub_topologies[self.sub].name.as_str());
        for (partition, task) in &self.tasks {
            let p = partition.to_string();
            for store in task.store_names() {
                if let Some(Ok(n)) = task.store(store).map(|s| s.entry_count()) {
                    m.store_entries
                        .with_label_values(&[pipeline, step, store, p.as_str()])
                        .set(n as i64);
                }
            }
        }
        let group = &self.deployment.plan.sub_topologies[self.sub].consumer_group;
        let positions: Vec<((String, i32), i64)> = match self.consumer.position() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                    _ => None,
                })
                .collect(),
            Err(_) => return None,
        };
        let wanted: Vec<(String, i32)> = positions.iter().map(|(tp, _)| tp.clone()).collect();
        let ends = self.end_offsets(&wanted, Duration::from_millis(500)).ok()?;
        let mut total = None;
        for ((topic, partition), position) in positions {
            let Some(end) = ends.get(&(topic.clone(), partition)) else {
                continue;
            };
            let lag = (end - position).max(0);
            m.consumer_lag
                .with_label_values(&[group.as_str(), &topic, &partition.to_string()])
                .set(lag);
            *total.get_or_insert(0) += lag;
        }
        total
    }

    /// Acts on the rebalance events the consumer recorded: a revoke commits what the revoked
    /// tasks did, checkpoints and drops them, then gives the partitions up; an assign takes
    /// the partitions, builds the tasks of stateless sub-topologies at once and starts a
    /// restore for the others, their partitions paused until it is done
    /// ([`SubRunner::start_restore`]). With the consumer protocol (incremental) an event
    /// names only the partitions that move: every other task goes on as it was.
    fn handle_group_events(&mut self) -> Result<(), KafkaError> {
        let events: Vec<GroupEvent> = {
            let mut guard = self.consumer.context().events.lock().map_err(poisoned)?;
            guard.drain(..).collect()
        };
        let mut rebalanced = false;
        for event in events {
            rebalanced = true;
            match event {
                GroupEvent::Revoked(tpl) => {
                    let started = Instant::now();
                    let partitions = partitions_of(&tpl);
                    if self.consumer.assignment_lost() {
                        tracing::warn!(?partitions, "partitions lost (this member was out of its group); their new owners replay what was not committed");
                    } else {
                        match self.commit_within(ACK_WAIT_IN_LOOP) {
                            // The partition may come back: its store, checkpointed, then needs
                            // only the changelog's tail.
                            Ok(true) => {
                                let revoked: Vec<i32> = partitions.iter().copied().collect();
                                self.checkpoint(&revoked);
                            }
                            Ok(false) => tracing::warn!(
                                "outputs not acknowledged on revoke, not committed; the new owner replays those records"
                            ),
                            Err(e) => {
                                tracing::warn!(error = %e, "commit on revoke failed; the new owner replays those records")
                            }
                        }
                    }
                    // What was not committed is the new owner's to redo: its changelog records
                    // must not reach a changelog partition that is no longer this worker's.
                    self.held_changelog
                        .borrow_mut()
                        .retain(|(p, _)| !partitions.contains(p));
                    for p in &partitions {
                        self.tasks.remove(p);
                        self.pending.retain(|(_, q), _| q != p);
                        self.uncommitted_from.retain(|(_, q), _| q != p);
                        self.answered_in_place.retain(|(_, q, _)| q != p);
                        self.abandon_restore(*p);
                    }
                    GroupContext::carry_out(&self.consumer, false, &tpl)?;
                    tracing::info!(pipeline = %self.plan().name, sub = %self.plan().sub_topologies[self.sub].name, ?partitions, kept = ?self.tasks.keys().collect::<Vec<_>>(), elapsed = ?started.elapsed(), "partitions revoked");
                }
                GroupEvent::Assigned(tpl) => {
                    GroupContext::carry_out(&self.consumer, true, &tpl)?;
                    let mut by_partition: BTreeMap<i32, TopicPartitionList> = BTreeMap::new();
                    for e in tpl.elements() {
                        by_partition
                            .entry(e.partition())
                            .or_default()
                            .add_partition(e.topic(), e.partition());
                    }
                    for (p, topics) in by_partition {
                        if self.tasks.contains_key(&p) || self.restoring.contains_key(&p) {
                            continue;
                        }
                        if self.task_dir(p).is_some() {
                            self.start_restore(p, topics)?;
                        } else {
                            let task = self.new_task(p)?;
                            self.tasks.insert(p, task);
                        }
                    }
                }
            }
        }
        if rebalanced && matches!(self.consumer.rebalance_protocol(), RebalanceProtocol::Cooperative) {
            self.wake_kept();
        }
        Ok(())
    }

    /// librdkafka pauses the whole assignment while a rebalance event waits for the
    /// application, and drops what it had fetched; its resume is served on librdkafka's main
    /// thread, and the fetcher (the leader's broker thread), idle with every partition paused,
    /// sees it only at its next wakeup, up to a second later: every partition kept would stop
    /// for that second. A request to each leader (the end offsets of the partitions kept, one
    /// ListOffsets per leader) wakes the fetchers at once.
    fn wake_kept(&self) {
        if let Ok(assigned) = self.consumer.assignment() {
            self.wake_fetchers(&assigned, |p| !self.restoring.contains_key(&p));
        }
    }

    /// Asks the leaders of `partitions` (those `take` picks by number) for their end offsets,
    /// which wakes the fetchers serving them (see [`SubRunner::wake_kept`]).
    fn wake_fetchers(&self, partitions: &TopicPartitionList, take: impl Fn(i32) -> bool) {
        let wanted: Vec<(String, i32)> = partitions
            .elements()
            .iter()
            .filter(|e| take(e.partition()))
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        if let Err(e) = self.end_offsets(&wanted, Duration::from_millis(500)) {
            tracing::debug!(error = %e, "waking the fetchers");
        }
    }

    /// Restores `partition`'s stores on a thread of its own while the poll loop goes on with
    /// the other tasks (Kafka Streams' state updater): a long restore neither stops them nor
    /// counts against `max.poll.interval.ms`. The partition's topics are paused until the
    /// task is ready ([`SubRunner::take_restored`]), so no record of it is worked on against
    /// half-restored state.
    fn start_restore(&mut self, partition: i32, topics: TopicPartitionList) -> Result<(), KafkaError> {
        self.consumer.pause(&topics)?;
        // A restore given up on this partition may still hold its RocksDB directory.
        let done: Vec<(i32, JoinHandle<()>)> = self.abandoned.extract_if(.., |(p, _)| *p == partition).collect();
        for (_, thread) in done {
            let _ = thread.join();
        }
        // A given-up restore that finished has sent its task, which holds the directory too:
        // taking what came back drops it.
        self.take_restored()?;
        let task = self.new_task(partition)?;
        self.restores_started += 1;
        let id = self.restores_started;
        let cancel = Arc::new(AtomicBool::new(false));
        let env = self.restore_env();
        let dir = self.task_dir(partition);
        let tx = self.restored_tx.clone();
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name(format!("restore-{partition}"))
            .spawn(move || {
                let task = restore_task(&env, task, partition, dir.as_deref(), &flag);
                let _ = tx.send(Restored { partition, id, task });
            })
            .map_err(|e| KafkaError::Deploy(format!("starting a restore thread: {e}")))?;
        self.restoring.insert(
            partition,
            Restoring {
                id,
                cancel,
                thread,
                topics,
                skipped: BTreeMap::new(),
                started: Instant::now(),
            },
        );
        Ok(())
    }

    /// Takes the tasks whose restores are done and resumes their partitions from their
    /// committed offsets.
    fn take_restored(&mut self) -> Result<(), KafkaError> {
        while let Ok(done) = self.restored_rx.try_recv() {
            if self.restoring.get(&done.partition).map(|r| r.id) != Some(done.id) {
                continue; // given up: the partition was revoked meanwhile
            }
            let Some(r) = self.restoring.remove(&done.partition) else {
                continue;
            };
            let _ = r.thread.join();
            let task = done.task?;
            self.tasks.insert(done.partition, task);
            // Nothing of the partition was worked on since it came: it goes on from the group's
            // committed offset (without one, from the first record fetched before the pause
            // took). Sought explicitly: librdkafka resumes a partition paused before anything
            // of it was consumed from its own bookkeeping (an assign and a pause in quick
            // succession can lose the assign's offset, librdkafka#2190), and chaos runs with
            // fast (checkpointed) restores that resumed that way lost a few records.
            let committed = self
                .consumer
                .committed_offsets(r.topics.clone(), self.config.timeout)
                .map_err(|e| {
                    KafkaError::unreachable(&self.config, "reading the committed offsets of a restored task", e)
                })?;
            self.consumer.resume(&r.topics)?;
            for e in committed.elements() {
                let from = match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => r.skipped.get(e.topic()).copied(),
                };
                if let Some(from) = from {
                    self.consumer
                        .seek(e.topic(), done.partition, Offset::Offset(from), self.config.timeout)?;
                }
            }
            // As after a rebalance (`wake_kept`): the fetcher may sleep through the resume.
            self.wake_fetchers(&r.topics, |_| true);
            self.metrics.restore_seconds.observe(r.started.elapsed().as_secs_f64());
            tracing::info!(pipeline = %self.plan().name, sub = %self.plan().sub_topologies[self.sub].name, partition = done.partition, paused = ?r.started.elapsed(), "task ready; partition resumed");
        }
        Ok(())
    }

    /// Cancels `partition`'s restore, if one runs; its thread is joined before the partition's
    /// directory is opened again.
    fn abandon_restore(&mut self, partition: i32) {
        if let Some(r) = self.restoring.remove(&partition) {
            r.cancel.store(true, Ordering::Relaxed);
            self.abandoned.push((partition, r.thread));
        }
    }

    /// Ends every restore (on stop).
    fn stop_restores(&mut self) {
        let restoring: Vec<i32> = self.restoring.keys().copied().collect();
        for p in restoring {
            self.abandon_restore(p);
        }
        for (_, thread) in self.abandoned.drain(..) {
            let _ = thread.join();
        }
    }

    fn restore_env(&self) -> RestoreEnv {
        let plan = self.plan();
        RestoreEnv {
            config: self.config.clone(),
            changelogs: self.changelogs.clone(),
            exactly_once: self.exactly_once,
            checkpoints: self.options.checkpoints,
            pipeline: plan.name.clone(),
            sub: plan.sub_topologies[self.sub].name.clone(),
        }
    }

    /// The state directory of `partition`'s task, if the sub-topology has stores.
    fn task_dir(&self, partition: i32) -> Option<PathBuf> {
        let plan = self.plan();
        let sub = &plan.sub_topologies[self.sub];
        sub.nodes.iter().any(|n| n.op.store().is_some()).then(|| {
            self.options
                .state_dir
                .join(format!("{}.{}", plan.namespace, plan.name))
                // A sub-topology that a later version changed runs beside the old one with
                // stores of its own (as its group and changelogs, `control::runnable`).
                .join(match super::control::since_of(&self.deployment.since, &sub.name) {
                    1 => sub.name.clone(),
                    n => format!("{}.v{n}", sub.name),
                })
                .join(partition.to_string())
        })
    }

    /// Records that the stores of `partitions`' tasks are on disk up to their changelogs'
    /// current ends: flushes them, then writes each changelog partition's end offset (read in
    /// one request for all of them) to the task's `.checkpoint`. Called after a commit (every
    /// [`CHECKPOINT_EVERY`], on revoke, on stop), when all these tasks wrote is acknowledged;
    /// an end offset read after the flush is never past what the store holds.
    fn checkpoint(&self, partitions: &[i32]) {
        if !self.config.flavor.exact_watermarks() || self.exactly_once || !self.options.checkpoints {
            return;
        }
        let tasks: Vec<(i32, &Task, PathBuf)> = partitions
            .iter()
            .filter_map(|p| Some((*p, self.tasks.get(p)?, self.task_dir(*p)?)))
            .collect();
        let mut flushed = Vec::new();
        for (p, task, dir) in tasks {
            match task.flush_stores() {
                Ok(()) => flushed.push((p, task, dir)),
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "checkpoint not written; the next start restores in full");
                    super::restore::remove_checkpoint(&dir);
                }
            }
        }
        let wanted: Vec<(String, i32)> = flushed
            .iter()
            .flat_map(|(p, task, _)| {
                task.store_names()
                    .filter_map(|store| self.changelogs.get(store))
                    .map(|topic| (topic.clone(), *p))
                    .collect::<Vec<_>>()
            })
            .collect();
        let ends = self.end_offsets(&wanted, self.config.timeout);
        for (p, task, dir) in flushed {
            let written = (|| -> Result<(), KafkaError> {
                let ends = ends.as_ref().map_err(|e| KafkaError::Deploy(e.to_string()))?;
                let mut offsets = BTreeMap::new();
                for store in task.store_names() {
                    let Some(topic) = self.changelogs.get(store) else {
                        continue;
                    };
                    let end = ends
                        .get(&(topic.clone(), p))
                        .copied()
                        .ok_or_else(|| KafkaError::Deploy(format!("no end offset of {topic}/{p}")))?;
                    offsets.insert(topic.clone(), end);
                }
                super::restore::write_checkpoint(&dir, &offsets)
                    .map_err(|e| KafkaError::Deploy(format!("writing {}: {e}", dir.display())))
            })();
            if let Err(e) = written {
                tracing::warn!(partition = p, error = %e, "checkpoint not written; the next start restores in full");
                super::restore::remove_checkpoint(&dir);
            }
        }
    }

    fn checkpoint_all(&mut self) {
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        self.checkpoint(&partitions);
        self.last_checkpoint = Instant::now();
    }

    /// The end offsets (high watermarks; last stable offsets under read_committed) of
    /// `partitions`, in one ListOffsets request per leader rather than one per partition:
    /// this runs on the processing thread, where a round trip per partition stopped every
    /// task for a few hundred milliseconds.
    fn end_offsets(
        &self,
        partitions: &[(String, i32)],
        wait: Duration,
    ) -> Result<BTreeMap<(String, i32), i64>, KafkaError> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in partitions {
            // A timestamp of -1 asks for the latest offset.
            tpl.add_partition_offset(topic, *p, Offset::End)?;
        }
        let found = self.consumer.offsets_for_times(tpl, wait)?;
        Ok(found
            .elements()
            .iter()
            .filter(|e| e.error().is_ok())
            .filter_map(|e| Some(((e.topic().to_string(), e.partition()), e.offset().to_raw()?)))
            .collect())
    }

    /// The task's operators and (empty) stores.
    fn new_task(&self, partition: i32) -> Result<Task, KafkaError> {
        let plan = self.plan();
        let sub = &plan.sub_topologies[self.sub];
        let counts = self.partitions.clone();
        let fallback = self.deployment.partitions;
        let partitions = move |t: &str| counts.get(t).copied().unwrap_or(fallback);
        let env = BuildEnv {
            pipeline: &plan.name,
            partitions: &partitions,
            models: self.options.models.clone(),
            // A fused task's calls are made many at once by the runner (`run_fused`).
            defer_calls: matches!(sub.role, Role::Fused { .. }),
            telemetry: Arc::new(crate::metrics::NodeTelemetry),
            oversize: Some(Arc::new({
                let (limits, max) = (self.topic_limits.clone(), self.max_message_bytes);
                move |topic: &str, step: &str, size: usize| {
                    oversize_text(step, topic, size, limits.get(topic).copied(), max)
                }
            })),
        };
        let task = if let Some(dir) = self.task_dir(partition) {
            let state = RocksState::open(&dir)?;
            let mut open = move |name: &str| Ok(Box::new(state.store(name)?) as Box<dyn StateStore>);
            Task::new(plan, sub, partition, &env, &mut open)?
        } else {
            let mut open = |name: &str| {
                Err(crate::state::StateError::MissingColumnFamily(format!(
                    "{name} (a sub-topology without stores)"
                )))
            };
            Task::new(plan, sub, partition, &env, &mut open)?
        };
        Ok(task)
    }

    /// Notes the message's offset for the next commit and decodes it, if a task of this
    /// runner owns its partition.
    fn take(&mut self, message: &BorrowedMessage<'_>) -> Option<(String, Record)> {
        let partition = message.partition();
        let topic = message.topic().to_string();
        if !self.tasks.contains_key(&partition) {
            // Fetched before its pause took: read again once the task is ready.
            if let Some(r) = self.restoring.get_mut(&partition) {
                r.skipped.entry(topic).or_insert(message.offset());
            }
            // Else not ours (any more): its owner handles it, and its offset is not committed
            // here.
            return None;
        }
        self.pending.insert((topic.clone(), partition), message.offset() + 1);
        self.uncommitted_from
            .entry((topic.clone(), partition))
            .or_insert(message.offset());
        let at = (topic.clone(), partition, message.offset());
        if self.answered_in_place.contains(&at) {
            return None;
        }
        let errors_before = self.error_outputs.len();
        let taken = self.decode_and_check(message, topic, partition);
        if self.error_outputs.len() > errors_before {
            self.answered_in_place.insert(at);
        }
        taken
    }

    /// [`SubRunner::take`] past the offset bookkeeping: the record, unless it is skipped or
    /// answered with an error record in place.
    fn decode_and_check(
        &mut self,
        message: &BorrowedMessage<'_>,
        topic: String,
        partition: i32,
    ) -> Option<(String, Record)> {
        let key = match message.key().map(std::str::from_utf8) {
            Some(Ok(k)) => k.to_string(),
            Some(Err(_)) => {
                tracing::warn!(
                    topic,
                    partition,
                    offset = message.offset(),
                    "record key is not UTF-8; skipped"
                );
                return None;
            }
            None => String::new(),
        };
        let mut headers = Vec::new();
        if let Some(h) = message.headers() {
            for header in h.iter() {
                headers.push((header.key.to_string(), header.value.unwrap_or_default().to_vec()));
            }
        }
        let mut record = Record {
            key,
            value: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            headers,
            partition,
            timestamp_ms: message.timestamp().to_millis().unwrap_or_else(now_ms),
        };
        // A fused pipeline's task made this call itself and wrote it as lineage (§10).
        if !self.pool.is_empty() && record.header(crate::record::header::LINEAGE).is_some() {
            return None;
        }
        // A model's inputs topic is shared: what a deleted pipeline left there is nobody's.
        if !self.pool.is_empty() {
            if let Some(pipeline) = record.pipeline() {
                let deployed = self
                    .options
                    .deployed
                    .read()
                    .map(|d| d.contains_key(pipeline))
                    .unwrap_or(true);
                if !deployed {
                    crate::metrics::metrics()
                        .records_skipped
                        .with_label_values(&[
                            pipeline,
                            &self.deployment.plan.sub_topologies[self.sub].name,
                            "pipeline not deployed",
                        ])
                        .inc();
                    tracing::debug!(
                        pipeline,
                        topic,
                        partition,
                        "record of a pipeline no longer deployed skipped"
                    );
                    return None;
                }
            }
        }
        if let Some(wanted) = self.source_filters.get(&topic) {
            if !wanted.iter().any(|w| record.pipeline() == Some(w.as_str())) {
                let wanted = &wanted[0];
                let reason = match record.pipeline() {
                    None => "no pipeline header",
                    Some(_) => "another pipeline's record",
                };
                crate::metrics::metrics()
                    .records_skipped
                    .with_label_values(&[wanted, &self.deployment.plan.sub_topologies[self.sub].name, reason])
                    .inc();
                return None;
            }
        }
        if self.pool.is_empty() && !self.serves(&mut record) {
            return None;
        }
        if self.expired(&record) {
            return None;
        }
        self.metrics.records_in.inc();
        Some((topic, record))
    }

    /// The error record that replaces `record` when it is larger than a produce request may
    /// be (librdkafka's `message.max.bytes`, 1,000,000 unless set; brokers default to about
    /// 1 MiB too): "the output of step S is N bytes, over the limit of M bytes".
    fn too_large(&self, topic: &str, record: &Record) -> Option<(String, Record)> {
        if record.is_error() {
            return None;
        }
        let plan = &self.deployment.plan;
        let sub = &plan.sub_topologies[self.sub];
        let size = crate::record::record_size(record);
        let text = oversize_text(
            &sub.name,
            topic,
            size,
            self.topic_limits.get(topic).copied(),
            self.max_message_bytes,
        )?;
        let source = match &sub.role {
            Role::ModelCall { model } => model.clone(),
            _ => record.pipeline().unwrap_or(&plan.name).to_string(),
        };
        tracing::warn!(key = %record.key, step = %sub.name, size, "output over the record size limit; answered with an error");
        let mut value = record.clone();
        value.value = bytes::Bytes::new();
        Some(self.error_for(&value, &source, &text))
    }

    /// Whether `record`'s deadline (`x-flowc-deadline-ms`, §10) has passed; if so, queues the
    /// error record "deadline exceeded before step S" in its place (the gateway has answered
    /// 504 already; `inspect` shows it), and the model is not called.
    fn expired(&mut self, record: &Record) -> bool {
        use crate::record::header;
        // Only where a model would be called: a step feeding one, or the model call. Error
        // records and answers on their way out always pass.
        let role = &self.deployment.plan.sub_topologies[self.sub].role;
        // A fused task's model calls check the deadline themselves, as the model gateway does.
        if !matches!(role, Role::Step { .. } | Role::ModelCall { .. }) || record.is_error() {
            return false;
        }
        let Some(deadline) = record
            .header_str(header::DEADLINE)
            .and_then(|v| v.trim().parse::<i64>().ok())
        else {
            return false;
        };
        let now = now_ms();
        if now <= deadline {
            return false;
        }
        let plan = &self.deployment.plan;
        let sub = &plan.sub_topologies[self.sub];
        let (step, source) = match &sub.role {
            Role::ModelCall { model } => (format!("model {model}"), model.clone()),
            _ => (sub.name.clone(), record.pipeline().unwrap_or(&plan.name).to_string()),
        };
        let text = crate::record::deadline_text(&step, now - deadline);
        crate::metrics::metrics()
            .records_skipped
            .with_label_values(&[record.pipeline().unwrap_or(&plan.name), &sub.name, "deadline exceeded"])
            .inc();
        tracing::debug!(key = %record.key, step = %step, "deadline exceeded; not processed");
        let error = self.error_for(record, &source, &text);
        self.answer_with_error(record.partition, error);
        true
    }

    /// Queues `error` to be written in place of a record of `partition` that was not worked on.
    fn answer_with_error(&mut self, partition: i32, error: (String, Record)) {
        self.error_outputs.push((
            partition,
            TaskOutput {
                records: vec![error],
                ..TaskOutput::default()
            },
        ));
    }

    /// The error record for `record` on this namespace's errors topic (§4.3, §6).
    fn error_for(&self, record: &Record, source: &str, text: &str) -> (String, Record) {
        let plan = &self.deployment.plan;
        let errors = flowc_plan::TopicNames::new(&self.deployment.prefix, &plan.namespace).errors();
        let count = self.partitions.get(&errors).copied().unwrap_or(1);
        let error = crate::record::error_record(record, source, text, count);
        (errors, error)
    }

    /// Whether this runner processes `record` as far as versions go (§4.3 `x-pipeline-version`):
    /// a record of this pipeline without a version is stamped with the current one (an async
    /// producer's request enters under the version deployed now); a record is processed by the
    /// runner whose versions include its own. A record of a version that no longer runs, at a
    /// step that changed since, is answered with an error record by the current version's
    /// runner: never by another version. Records of other pipelines are left to the sources'
    /// `pipeline` filter, except at `_input`, where another pipeline's outputs enter this one.
    fn serves(&mut self, record: &mut Record) -> bool {
        use crate::record::header;
        let plan = &self.deployment.plan;
        let sub = &plan.sub_topologies[self.sub];
        let entering = matches!(sub.role, Role::Input);
        if !record.belongs_to(&plan.name) && !entering {
            return true;
        }
        let Some(versions) = self
            .options
            .deployed
            .read()
            .ok()
            .and_then(|d| d.get(&plan.name).cloned())
        else {
            // Deleted: this runner stops at the next reconcile.
            return false;
        };
        let stamped = if entering {
            None
        } else {
            record
                .header_str(header::PIPELINE_VERSION)
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let version = match stamped {
            Some(v) => v,
            None => {
                record.set_header(header::PIPELINE_VERSION, versions.current.to_string());
                versions.current
            }
        };
        let (lo, hi) = self.versions.read().map(|v| *v).unwrap_or((0, u64::MAX));
        if entering && hi != u64::MAX {
            // Another pipeline's record enters under the current version, except where a
            // draining version holds join state for its key: that key completes under the
            // version it started with.
            let key = record.key.as_bytes();
            let holds = self.tasks.get(&record.partition).is_some_and(|task| {
                task.store_names()
                    .any(|n| task.store(n).and_then(|st| st.get(key).ok().flatten()).is_some())
            });
            if holds {
                record.set_header(header::PIPELINE_VERSION, hi.to_string());
            }
            return holds;
        }
        if lo <= version && version <= hi {
            return true;
        }
        if hi == u64::MAX && version < lo && !versions.live.contains(&version) {
            let text = format!(
                "version {version} of pipeline {} stopped draining before this request reached {}; retry it (version {} runs now)",
                plan.name, sub.name, versions.current
            );
            crate::metrics::metrics()
                .records_skipped
                .with_label_values(&[&plan.name, &sub.name, "version retired"])
                .inc();
            tracing::warn!(pipeline = %plan.name, sub = %sub.name, version, key = %record.key, "record of a retired version answered with an error");
            let (errors, mut error) = self.error_for(record, &plan.name, &text);
            error.set_header(header::PIPELINE, plan.name.clone());
            self.answer_with_error(record.partition, (errors, error));
        }
        false
    }

    fn has_group_events(&self) -> bool {
        self.consumer
            .context()
            .events
            .lock()
            .map(|e| !e.is_empty())
            .unwrap_or(true)
    }

    /// Records kept for the end of the poll batch: a model call's or a fused task's.
    fn run_deferred(&mut self, records: Vec<(String, Record)>) -> Result<(), KafkaError> {
        if self.fused {
            self.run_fused(records)
        } else {
            self.call_models(records)
        }
    }

    /// A fused task's records (§10), as a wave: each goes through its partition's task, in
    /// order, up to its first model calls; then the calls of the whole wave are made at once
    /// (up to `model_concurrency` in flight) and their answers go back to the tasks in the
    /// order the calls were handed out, which hands out the next calls; and so on until every
    /// record is through. The tasks' stores are touched only here, one record at a time, so
    /// operators keep their order per key as in a per-hop step; only the calls overlap.
    ///
    /// A wave ends with nothing in flight, so a commit (at least once: outputs, then changelog,
    /// then offsets; exactly once: one transaction) covers whole records only.
    fn run_fused(&mut self, records: Vec<(String, Record)>) -> Result<(), KafkaError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut calls = Vec::new();
        for (topic, record) in records {
            let partition = record.partition;
            let Some(task) = self.tasks.get_mut(&partition) else {
                continue;
            };
            let started = Instant::now();
            let out = task.process(&topic, record, now);
            self.metrics.processing_seconds.observe(started.elapsed().as_secs_f64());
            if !self.hand_on(partition, out, &mut calls)? {
                return Ok(());
            }
        }
        self.finish_calls(calls)
    }

    /// Hands a fused task's output on: its calls into `calls`, its records and changelog to
    /// `send`. `false` when a model server was unavailable: the batch is rewound and nothing
    /// more of it is written.
    fn hand_on(
        &mut self,
        partition: i32,
        mut out: TaskOutput,
        calls: &mut Vec<(i32, PendingCall)>,
    ) -> Result<bool, KafkaError> {
        calls.extend(out.calls.drain(..).map(|c| (partition, c)));
        if let Some(reason) = out.unavailable.take() {
            self.rewind(&reason);
            return Ok(false);
        }
        self.send(partition, out)?;
        Ok(true)
    }

    /// Makes a fused task's calls, wave after wave, until none is left (see `run_fused`).
    fn finish_calls(&mut self, mut calls: Vec<(i32, PendingCall)>) -> Result<(), KafkaError> {
        while !calls.is_empty() {
            let answers = self.make_calls(&calls)?;
            if let Some(reason) = answers.iter().find_map(|a| match a {
                Err(ModelCallError::Unavailable(text)) => Some(text.clone()),
                _ => None,
            }) {
                // Nothing more of this batch is written; it is read again from the last commit
                // onto stores restored to it, once the server is back.
                self.rewind(&reason);
                return Ok(());
            }
            self.resumed();
            let now = now_ms();
            let mut next = Vec::new();
            for ((partition, call), answer) in calls.into_iter().zip(answers) {
                // A task revoked meanwhile: its records are its new owner's.
                let Some(task) = self.tasks.get_mut(&partition) else {
                    continue;
                };
                let out = task.resume(call, answer, now);
                if !self.hand_on(partition, out, &mut next)? {
                    return Ok(());
                }
            }
            calls = next;
        }
        self.write_lineage()
    }

    /// Writes the lineage records held back during a wave (`held_lineage`).
    fn write_lineage(&self) -> Result<(), KafkaError> {
        let held = std::mem::take(&mut *self.held_lineage.borrow_mut());
        if held.is_empty() {
            return Ok(());
        }
        self.produce_records(&held)
    }

    /// Makes `calls` at once, up to `model_concurrency` in flight (one in place), and returns
    /// their answers in the same order.
    fn make_calls(&self, calls: &[(i32, PendingCall)]) -> Result<Vec<CallAnswer>, KafkaError> {
        if let [(_, only)] = calls {
            return Ok(vec![only.call.call()]);
        }
        let k = self.options.model_concurrency.max(1).min(calls.len());
        let answers: Vec<Vec<(usize, CallAnswer)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..k)
                .map(|t| {
                    scope.spawn(move || {
                        calls
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(k)
                            .map(|(i, (_, c))| (i, c.call.call()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            join_call_threads(handles)
        })?;
        // Thread t made calls t, t + k, …: back into the order they were handed out.
        let mut answers: Vec<(usize, CallAnswer)> = answers.into_iter().flatten().collect();
        answers.sort_unstable_by_key(|(i, _)| *i);
        Ok(answers.into_iter().map(|(_, a)| a).collect())
    }

    /// A model-call sub-topology's records: up to `model_concurrency` calls in flight, one
    /// thread per pool task (order across keys need not be kept, §6). A model-call
    /// sub-topology has no state, so any pool task can take any partition's record.
    fn call_models(&mut self, records: Vec<(String, Record)>) -> Result<(), KafkaError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let k = self.pool.len().min(records.len()).max(1);
        let mut chunks: Vec<Vec<(String, Record)>> = (0..k).map(|_| Vec::new()).collect();
        for (i, r) in records.into_iter().enumerate() {
            chunks[i % k].push(r);
        }
        let (pipeline, step) = (
            self.deployment.plan.name.as_str(),
            self.deployment.plan.sub_topologies[self.sub].name.as_str(),
        );
        let processing = &self.metrics.processing_seconds;
        let outputs: Result<Vec<Vec<TaskOutput>>, KafkaError> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .pool
                .iter_mut()
                .zip(chunks)
                .map(|(task, chunk)| {
                    scope.spawn(move || {
                        chunk
                            .into_iter()
                            .map(|(topic, record)| {
                                let span = tracing::debug_span!("model call", pipeline = %pipeline, step = %step, request = %record.key);
                                let started = Instant::now();
                                let out = span.in_scope(|| task.process(&topic, record, now));
                                processing.observe(started.elapsed().as_secs_f64());
                                out
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            join_call_threads(handles)
        });
        let outputs: Vec<TaskOutput> = outputs?.into_iter().flatten().collect();
        if let Some(reason) = outputs.iter().find_map(|o| o.unavailable.clone()) {
            // Nothing of this batch is written; it is all read again once the server is back.
            self.rewind(&reason);
            return Ok(());
        }
        self.resumed();
        for out in outputs {
            // No stores here, so no changelog records: the partition argument is unused.
            self.send(0, out)?;
        }
        Ok(())
    }

    /// Records are processed again after a pause: the member report says so at once.
    fn resumed(&mut self) {
        if self.problem.take().is_some() {
            self.report_members();
        }
    }

    /// A model server is unreachable: go back to the first uncommitted record of every
    /// partition and wait a little, so those records are retried, not lost or answered with
    /// an error (records already written are written again: at least once).
    fn rewind(&mut self, reason: &str) {
        tracing::warn!(pipeline = %self.plan().name, reason, "model server unreachable; retrying uncommitted records");
        let first = self.problem.is_none();
        self.problem = Some((format!("paused, retrying: {reason}"), Instant::now()));
        if first {
            self.report_members();
        }
        // The wave's lineage is written again when its records are.
        self.held_lineage.borrow_mut().clear();
        if self.exactly_once && (self.in_transaction.get() || self.fused) {
            // What the batch wrote so far must not commit with its retry.
            if let Err(e) = self.abort_and_rebuild() {
                tracing::warn!(error = %e, "aborting the transaction failed");
            }
        } else if self.fused {
            // A fused task's stores took the effects of records now read again (a join's
            // first half, say, before the call after it failed): they go back to what the
            // changelogs hold, which is what was committed (the held records go).
            self.held_changelog.borrow_mut().clear();
            if let Err(e) = self.rebuild_tasks() {
                tracing::warn!(error = %e, "rebuilding the tasks failed");
            }
        }
        self.seek_to_uncommitted();
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Produces a task's outputs and changelog records.
    fn send(&self, partition: i32, out: TaskOutput) -> Result<(), KafkaError> {
        let errors = out
            .records
            .iter()
            .filter(|(_, r)| {
                r.headers
                    .iter()
                    .any(|(k, _)| k == crate::record::header::PIPELINE_ERRORS)
            })
            .count() as u64;
        self.metrics.error_records.inc_by(errors);
        self.metrics.records_out.inc_by(out.records.len() as u64 - errors);
        let (lineage, records): (Vec<_>, Vec<_>) = if self.fused {
            out.records
                .into_iter()
                .partition(|(_, r)| r.header(crate::record::header::LINEAGE).is_some())
        } else {
            (Vec::new(), out.records)
        };
        self.held_lineage.borrow_mut().extend(lineage);
        self.produce_records(&records)?;
        if self.exactly_once {
            // One transaction holds outputs and changelog records alike.
            for c in &out.changelog {
                self.produce_changelog(partition, c)?;
            }
        } else {
            self.held_changelog
                .borrow_mut()
                .extend(out.changelog.into_iter().map(|c| (partition, c)));
        }
        Ok(())
    }

    /// Produces records (a record over the size limit as its error record instead).
    fn produce_records(&self, records: &[(String, Record)]) -> Result<(), KafkaError> {
        for (topic, record) in records {
            // A record the broker would refuse would fail its batch again at every retry and
            // stop the step: its request is answered with an error record instead.
            let oversized;
            let (topic, record) = match self.too_large(topic, record) {
                Some(error) => {
                    oversized = error;
                    (&oversized.0, &oversized.1)
                }
                None => (topic, record),
            };
            let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
            for (k, v) in &record.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let r = BaseRecord::to(topic)
                .key(record.key.as_bytes())
                .payload(record.value.as_ref())
                .partition(record.partition)
                .headers(headers);
            self.produce(r)?;
        }
        Ok(())
    }

    fn produce_changelog(&self, partition: i32, c: &ChangelogRecord) -> Result<(), KafkaError> {
        let Some(topic) = self.changelogs.get(&c.store) else {
            tracing::error!(store = %c.store, "no changelog topic for store");
            return Ok(());
        };
        let mut r = BaseRecord::to(topic).key(c.key.as_slice()).partition(partition);
        if let Some(v) = &c.value {
            r = r.payload(v.as_slice());
        }
        self.produce(r)
    }

    fn produce<K, P>(&self, mut record: BaseRecord<'_, K, P>) -> Result<(), KafkaError>
    where
        K: rdkafka::message::ToBytes + ?Sized,
        P: rdkafka::message::ToBytes + ?Sized,
    {
        if self.exactly_once && !self.in_transaction.get() {
            self.producer.begin_transaction()?;
            self.in_transaction.set(true);
            self.transaction_began.set(Instant::now());
        }
        let deadline = Instant::now() + self.config.timeout;
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((
                    rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    r,
                )) if Instant::now() < deadline => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }

    /// Waits until everything produced is acknowledged, then commits the inputs it came from.
    fn commit(&mut self) -> Result<(), KafkaError> {
        if self.commit_within(self.config.timeout.max(Duration::from_secs(30)))? {
            return Ok(());
        }
        Err(KafkaError::Timeout(format!(
            "writing outputs: {} records not acknowledged by {}",
            self.producer.in_flight_count(),
            self.config.bootstrap
        )))
    }

    /// Commits the inputs of everything produced once the broker has acknowledged all of it,
    /// waiting at most `wait` for that. `Ok(false)`: not all acknowledged yet; nothing is
    /// committed and the offsets wait for the next call (they are absolute, so a later commit
    /// covers them), while the caller goes on polling.
    ///
    /// At least once, in three steps: the outputs acknowledged, then the changelog records
    /// held back until now written and acknowledged, then the input offsets committed. A crash
    /// between any two replays the inputs onto a store restored without (or with) the
    /// batch's changelog records; either way every output is written at least once.
    fn commit_within(&mut self, wait: Duration) -> Result<bool, KafkaError> {
        if self.exactly_once {
            return self.commit_transaction();
        }
        if self.pending.is_empty() && self.held_changelog.borrow().is_empty() {
            return Ok(true);
        }
        let deadline = Instant::now() + wait;
        if !self.acknowledged_by(deadline)? {
            return Ok(false);
        }
        let held = std::mem::take(&mut *self.held_changelog.borrow_mut());
        if !held.is_empty() {
            for (partition, c) in &held {
                self.produce_changelog(*partition, c)?;
            }
            if !self.acknowledged_by(deadline)? {
                return Ok(false);
            }
        }
        if self.pending.is_empty() {
            return Ok(true);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &self.pending {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.pending.clear();
                self.uncommitted_from.clear();
                self.answered_in_place.clear();
            }
            // Kept for the next commit (offsets are absolute); a revoke drops what is no
            // longer ours, and its new owner replays from the last commit.
            Err(e) => tracing::warn!(error = %e, "commit failed; retrying with the next batch"),
        }
        Ok(true)
    }
}

impl SubRunner {
    /// Waits until everything produced is acknowledged (`Ok(true)`), or `deadline` passes
    /// (`Ok(false)`); an error when a record was not stored (the batch is then redone from
    /// the last commit). Not `flush`: rdkafka's flush polls in 100 ms slices, so every batch
    /// would cost at least 100 ms; the producer's own thread serves delivery reports.
    fn acknowledged_by(&self, deadline: Instant) -> Result<bool, KafkaError> {
        while self.producer.in_flight_count() > 0 && self.producer.context().failed.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let last = self.producer.context().last_error.lock().map_err(poisoned)?.take();
            // Not committing: the consumer restarts from the last commit and redoes the batch.
            return Err(KafkaError::Deploy(format!(
                "{failed} output records were not stored (last: {}); the batch will be redone",
                last.unwrap_or_default()
            )));
        }
        Ok(true)
    }

    /// Exactly once: commits the batch's transaction with the input offsets it consumed
    /// (`send_offsets_to_transaction` with the consumer's group metadata, EOS v2). A failure
    /// that the transaction can recover from aborts it and redoes the batch from rebuilt
    /// state; a fenced producer (another instance took over) is an error, and the runner
    /// restarts.
    fn commit_transaction(&mut self) -> Result<bool, KafkaError> {
        if self.pending.is_empty() && !self.in_transaction.get() {
            return Ok(true);
        }
        if !self.in_transaction.get() {
            self.producer.begin_transaction()?;
            self.in_transaction.set(true);
        }
        let result = (|| -> Result<(), rdkafka::error::KafkaError> {
            if !self.pending.is_empty() {
                let mut tpl = TopicPartitionList::new();
                for ((topic, partition), offset) in &self.pending {
                    tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
                }
                let metadata = self
                    .consumer
                    .group_metadata()
                    // None only for a consumer that never joined its group.
                    .ok_or(rdkafka::error::KafkaError::ConsumerCommit(
                        rdkafka::types::RDKafkaErrorCode::State,
                    ))?;
                self.producer
                    .send_offsets_to_transaction(&tpl, &metadata, self.config.timeout)?;
            }
            self.producer.commit_transaction(self.config.timeout)
        })();
        let failed = self.producer.context().failed.swap(0, Ordering::Relaxed);
        match result {
            Ok(()) if failed == 0 => {
                self.in_transaction.set(false);
                self.pending.clear();
                self.uncommitted_from.clear();
                self.answered_in_place.clear();
                Ok(true)
            }
            Ok(()) => {
                // Delivery failures are reported before commit_transaction returns, which then
                // fails; this is a guard.
                tracing::warn!(failed, "records failed in a committed transaction");
                self.in_transaction.set(false);
                self.pending.clear();
                self.uncommitted_from.clear();
                self.answered_in_place.clear();
                Ok(true)
            }
            Err(rdkafka::error::KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                tracing::warn!(error = %e, "transaction aborted; redoing the batch from the last commit");
                self.abort_and_rebuild()?;
                Ok(true)
            }
            Err(e) => {
                self.in_transaction.set(false);
                Err(e.into())
            }
        }
    }

    /// Seeks every partition back to its first record not committed yet; what was pending is
    /// read again.
    fn seek_to_uncommitted(&mut self) {
        for ((topic, partition), offset) in std::mem::take(&mut self.uncommitted_from) {
            if let Err(e) = self
                .consumer
                .seek(&topic, partition, Offset::Offset(offset), self.config.timeout)
            {
                tracing::warn!(topic, partition, error = %e, "seek failed");
            }
        }
        self.pending.clear();
    }

    /// Rebuilds every task with stores from its changelogs in full, dropping what its stores
    /// took since: an aborted transaction's writes, or a fused task's effects of records read
    /// again after a rewind at least once (the checkpoint goes, as the directory is
    /// rewritten). Tasks without stores hold nothing to rebuild.
    fn rebuild_tasks(&mut self) -> Result<(), KafkaError> {
        let partitions: Vec<i32> = self.tasks.keys().copied().collect();
        for p in partitions {
            let Some(dir) = self.task_dir(p) else {
                continue;
            };
            // Closes its RocksDB before the new task opens it.
            self.tasks.remove(&p);
            super::restore::remove_checkpoint(&dir);
            let task = self.new_task(p)?;
            let task = restore_task(&self.restore_env(), task, p, None, &AtomicBool::new(false))?;
            self.tasks.insert(p, task);
        }
        Ok(())
    }

    /// Aborts the open transaction, rebuilds every task from its changelogs (the stores took
    /// the aborted batch's writes) and seeks back to the first uncommitted records.
    fn abort_and_rebuild(&mut self) -> Result<(), KafkaError> {
        if self.in_transaction.get() {
            self.producer.abort_transaction(self.config.timeout)?;
            self.in_transaction.set(false);
        }
        self.producer.context().failed.store(0, Ordering::Relaxed);
        self.answered_in_place.clear();
        self.rebuild_tasks()?;
        self.seek_to_uncommitted();
        Ok(())
    }
}

/// Restores `task`'s stores from their changelogs: only the tail after the checkpoint in
/// `dir` where there is one (only on brokers with exact watermarks, and only at least once:
/// under exactly once a store may hold writes of an aborted transaction, so a task always
/// restores in full, and any checkpoint left from an at-least-once run is removed). Stops
/// early with an error when `cancel` is set.
fn restore_task(
    env: &RestoreEnv,
    mut task: Task,
    partition: i32,
    dir: Option<&std::path::Path>,
    cancel: &AtomicBool,
) -> Result<Task, KafkaError> {
    let started = Instant::now();
    let mut restored = 0;
    let mut tail = 0;
    let checkpoint = match dir {
        Some(dir) if env.config.flavor.exact_watermarks() && !env.exactly_once && env.checkpoints => {
            super::restore::read_checkpoint(dir)
        }
        Some(dir) => {
            super::restore::remove_checkpoint(dir);
            BTreeMap::new()
        }
        None => BTreeMap::new(),
    };
    let names: Vec<String> = task.store_names().map(str::to_string).collect();
    for store in names {
        let Some(topic) = env.changelogs.get(&store) else {
            continue;
        };
        let read = read_changelog_from(
            &env.config,
            topic,
            partition,
            &store,
            checkpoint.get(topic).copied(),
            cancel,
        )?;
        if read.tail_from.is_some() {
            tail += task.replay(&store, read.records)?;
        } else {
            restored += task.restore(&store, read.records)?;
        }
    }
    tracing::info!(pipeline = %env.pipeline, sub = %env.sub, partition, restored, tail, from_checkpoint = !checkpoint.is_empty(), elapsed = ?started.elapsed(), "task started");
    Ok(task)
}

/// "the output of step S is N bytes, over the limit of M bytes …" when a record of `size`
/// bytes for `topic` is over the topic's `max.message.bytes` or the producer's
/// `message.max.bytes`, whichever is lower; `None` when it fits.
fn oversize_text(
    step: &str,
    topic: &str,
    size: usize,
    topic_limit: Option<usize>,
    max_message_bytes: usize,
) -> Option<String> {
    let limit = topic_limit.map_or(max_message_bytes, |t| t.min(max_message_bytes));
    if size <= limit {
        return None;
    }
    Some(match topic_limit {
        Some(t) if t <= max_message_bytes => format!(
            "the output of step {step} is {size} bytes, over the limit of {t} bytes of topic {topic} (its max.message.bytes)"
        ),
        _ => format!(
            "the output of step {step} for {topic} is {size} bytes, over the limit of {max_message_bytes} bytes a Kafka record may have here (message.max.bytes)"
        ),
    })
}

/// The results of scoped threads that make model calls, in order; an error if one panicked.
fn join_call_threads<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, T>>) -> Result<Vec<T>, KafkaError> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| KafkaError::Deploy("a model call thread panicked".into()))
        })
        .collect()
}

fn poisoned<T>(_: std::sync::PoisonError<T>) -> KafkaError {
    KafkaError::Deploy("a worker lock was poisoned by a panic".to_string())
}
