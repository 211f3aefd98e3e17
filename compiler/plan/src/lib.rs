//! The topology plan: what the runtime executes. Plain data (serde), no behaviour.
//!
//! A pipeline compiles to sub-topologies in the Kafka Streams sense: connected groups of
//! processors between topics. Each consumes its source topics with one consumer group and runs
//! as one task per partition. Every name in the plan (nodes, stores, changelog topics, consumer
//! groups) is derived from user names, never from counters, so a plan reads like the YAML and
//! stays the same when unrelated steps change.
//!
//! Names of flowc's own parts use a leading `_` (`_input`, `_output`, `_errors`, `_model-m`):
//! `_` is not allowed in step names, so these can never collide with a step.
//!
//! This crate is the contract between the compiler, which writes plans, and everything that
//! runs or shows them (workers, gateways, `inspect`, deploy): it holds the plan's types, the
//! topic names derived from a prefix and namespace ([`TopicNames`]) and the vocabulary both
//! sides share ([`Side`], [`JoinType`]). It has no parser and does no I/O.

/// Which side of a step (or pipeline) a reference reads: its request or its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The request (`inputs`).
    Inputs,
    /// The response (`outputs`).
    Outputs,
}

impl Side {
    /// `"inputs"` or `"outputs"`, as written in references and topic names.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Inputs => "inputs",
            Side::Outputs => "outputs",
        }
    }
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How records from several sources are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinType {
    #[default]
    Inner,
    Outer,
    Any,
}

impl JoinType {
    pub const NAMES: &'static [&'static str] = &["inner", "outer", "any"];

    pub fn parse(s: &str) -> Option<JoinType> {
        match s {
            "inner" => Some(JoinType::Inner),
            "outer" => Some(JoinType::Outer),
            "any" => Some(JoinType::Any),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JoinType::Inner => "inner",
            JoinType::Outer => "outer",
            JoinType::Any => "any",
        }
    }
}

/// How a pipeline's steps run (§10 **flowc**).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Execution {
    /// §5.2 exactly: every step, model call and the output is a sub-topology of its own, three
    /// topic hops per step.
    #[default]
    PerHop,
    /// The steps, their model calls and the output run in one sub-topology's task; every
    /// model request and response is still written to its topic as lineage.
    Fused,
}

impl Execution {
    pub const NAMES: &'static [&'static str] = &["per-hop", "fused"];
    /// The annotation that chooses a pipeline's mode (`metadata.annotations`).
    pub const ANNOTATION: &'static str = "flowc.io/execution";

    pub fn parse(s: &str) -> Option<Execution> {
        match s {
            "per-hop" => Some(Execution::PerHop),
            "fused" => Some(Execution::Fused),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Execution::PerHop => "per-hop",
            Execution::Fused => "fused",
        }
    }

    pub fn is_per_hop(&self) -> bool {
        *self == Execution::PerHop
    }
}

impl std::fmt::Display for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

use serde::{Deserialize, Serialize};

mod diff;
mod names;
pub use diff::{fingerprint, Change, PlanDiff};
pub use names::{did_you_mean, TopicNames};

/// Version of the plan's data format; bumped on incompatible changes.
pub const PLAN_FORMAT: u32 = 1;

/// Everything compiled from a set of files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub prefix: String,
    pub pipelines: Vec<PipelinePlan>,
    pub models: Vec<ModelPlan>,
    pub servers: Vec<ServerPlan>,
}

/// One pipeline, ready to deploy. The unit of `apply` and `delete`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelinePlan {
    pub name: String,
    pub namespace: String,
    /// Stable hash of everything below (SHA-256 of the canonical JSON, 16 hex digits).
    pub fingerprint: String,
    /// Whether the pipeline has an `output` section, so a synchronous call can be answered.
    pub synchronous: bool,
    pub allow_cycles: bool,
    pub max_step_revisits: u32,
    pub clean_topics_on_delete: bool,
    /// How its steps run; absent from the JSON of a per-hop plan, so those stay as they were.
    #[serde(default, skip_serializing_if = "Execution::is_per_hop")]
    pub execution: Execution,
    /// The Models its steps run, in step order.
    pub models: Vec<String>,
    /// Other pipelines it reads through `input.externalInputs`/`externalTriggers`.
    pub external_pipelines: Vec<String>,
    pub sub_topologies: Vec<SubTopology>,
    pub topics: Vec<Topic>,
    pub stores: Vec<Store>,
    /// Sets of topics that must have the same number of partitions (rule 11).
    pub copartition_groups: Vec<Vec<String>>,
}

/// A connected group of processors between topics, consumed by one consumer group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubTopology {
    pub id: u32,
    /// `<step>`, `_input`, `_output`, `_errors` or `_model-<m>`: the prefix of its node names.
    pub name: String,
    pub role: Role,
    pub consumer_group: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Role {
    /// Feeds a step's model: its sources → `model.<step>.inputs`.
    Step { step: String },
    /// Chaining: external inputs → `pipeline.<p>.inputs`.
    Input,
    /// The pipeline's answer: output references → `pipeline.<p>.outputs`.
    Output,
    /// This pipeline's error records → `pipeline.<p>.outputs`.
    Errors,
    /// The model gateway's call of a model: `model.<m>.inputs` → call → `model.<m>.outputs`.
    /// Shared by every pipeline that uses the model; the runtime runs it once.
    ModelCall { model: String },
    /// A fused pipeline (§10): its steps, their model calls and the output in one task,
    /// `pipeline.<p>.inputs` → … → `pipeline.<p>.outputs`, with every model request and
    /// response written to its topic as lineage.
    Fused { steps: Vec<String> },
}

impl Role {
    pub fn describe(&self) -> String {
        match self {
            Role::Step { step } => format!("step {step}"),
            Role::Input => "pipeline input".to_string(),
            Role::Output => "pipeline output".to_string(),
            Role::Errors => "error edge".to_string(),
            Role::ModelCall { model } => format!("model {model} (model gateway)"),
            Role::Fused { steps } => format!("fused: steps {} with their model calls", steps.join(", ")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    #[serde(flatten)]
    pub op: Op,
}

/// What a record carries, by topic suffix (§4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// `inference.ModelInferRequest` (`*.inputs` topics).
    Request,
    /// `inference.ModelInferResponse` (`*.outputs` topics).
    Response,
    /// UTF-8 error text (the errors topic), passed through untouched.
    ErrorText,
    /// flowc's own control records (key only).
    Control,
}

impl Payload {
    pub fn of_side(side: Side) -> Payload {
        match side {
            Side::Inputs => Payload::Request,
            Side::Outputs => Payload::Response,
        }
    }
}

/// Which tensors pass a selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "tensors", rename_all = "snake_case")]
pub enum Selection {
    All,
    /// Only these, in the order the upstream message has them.
    Only(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rename {
    pub from: String,
    pub to: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Reads a topic. `pipeline`: only records whose `pipeline` header has this value
    /// (`None`: any, for model calls shared by pipelines).
    Source {
        topic: String,
        payload: Payload,
        pipeline: Option<String>,
    },
    /// Keeps the selected tensors, renames them (tensorMap), converts the payload (§5.1).
    /// A message left with no tensors is dropped (conditional routing).
    Select {
        tensors: Selection,
        renames: Vec<Rename>,
        from: Payload,
        to: Payload,
    },
    /// Matches records by key across `inputs` ports (§5.3); `store` unless `any`.
    Join {
        join_type: JoinType,
        window_ms: u64,
        inputs: u32,
        store: Option<String>,
    },
    /// Passes a record on to the gate when it contains one of `tensors` (any tensor for `All`).
    TriggerMatch { tensors: Selection },
    /// Lets data through once its triggers fired for the same key within the window (§5.4).
    TriggerGate {
        join_type: JoinType,
        window_ms: u64,
        triggers: u32,
        store: String,
    },
    /// Counts visits of a key; past `max_visits` it writes an error record instead (§5.6).
    /// Counters are cleared by keys arriving on the `clear` port.
    CycleGuard { max_visits: u32, store: String },
    /// Merges requests along dim 0 until `size` or `window_ms` (§5.5).
    Batch {
        size: Option<u64>,
        window_ms: Option<u64>,
        rolling: bool,
        store: String,
    },
    /// Calls the model (model gateway, §6).
    ModelCall { model: String },
    /// Writes to a topic. `pipeline`: the `pipeline` header to set (`None`: keep).
    /// `lineage` (fused pipelines, §10): the record is written marked as lineage (header
    /// `flowc-lineage`) and also goes on along the sink's edges inside the task, to the nodes
    /// that would have read it back from the topic.
    Sink {
        topic: String,
        payload: Payload,
        pipeline: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        lineage: bool,
    },
}

impl Op {
    pub fn store(&self) -> Option<&str> {
        match self {
            Op::Join { store, .. } => store.as_deref(),
            Op::TriggerGate { store, .. } | Op::CycleGuard { store, .. } | Op::Batch { store, .. } => Some(store),
            _ => None,
        }
    }

    /// The name of the operation, as shown in pictures.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Source { .. } => "source",
            Op::Select { .. } => "select",
            Op::Join { .. } => "join",
            Op::TriggerMatch { .. } => "trigger",
            Op::TriggerGate { .. } => "gate",
            Op::CycleGuard { .. } => "revisits",
            Op::Batch { .. } => "batch",
            Op::ModelCall { .. } => "model call",
            Op::Sink { lineage: false, .. } => "sink",
            Op::Sink { lineage: true, .. } => "lineage sink",
        }
    }
}

/// A typed edge between two nodes of one sub-topology.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub port: Port,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "port", content = "index", rename_all = "snake_case")]
pub enum Port {
    /// The only input of the target.
    Forward,
    /// Input `n` of a join (sources in order of first reference).
    Join(u32),
    /// The data input of a trigger gate.
    Data,
    /// Trigger `n` of a trigger gate.
    Trigger(u32),
    /// Error records leaving a node (cycle guard, model call).
    Error,
    /// Keys whose revisit counters are cleared.
    Clear,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub name: String,
    pub role: TopicRole,
    /// Log compaction (changelogs, control topics) instead of deletion by age.
    pub compacted: bool,
    /// Deleted with the pipeline when `cleanTopicsOnDelete` (**flowc**: its internal topics
    /// too; never model topics or the errors topic).
    pub owned: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicRole {
    PipelineInputs,
    PipelineOutputs,
    ModelInputs,
    ModelOutputs,
    Errors,
    Changelog,
    Control,
}

impl TopicRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicRole::PipelineInputs => "pipeline-inputs",
            TopicRole::PipelineOutputs => "pipeline-outputs",
            TopicRole::ModelInputs => "model-inputs",
            TopicRole::ModelOutputs => "model-outputs",
            TopicRole::Errors => "errors",
            TopicRole::Changelog => "changelog",
            TopicRole::Control => "control",
        }
    }
}

/// A RocksDB state store of one sub-topology (one instance per task), restored from its
/// changelog topic when a partition moves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Store {
    pub name: String,
    pub sub_topology: String,
    pub kind: StoreKind,
    pub changelog_topic: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Join,
    Triggers,
    Revisits,
    Batch,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Join => "join",
            StoreKind::Triggers => "triggers",
            StoreKind::Revisits => "revisits",
            StoreKind::Batch => "batch",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPlan {
    pub name: String,
    pub namespace: String,
    pub storage_uri: String,
    /// `flowc://<name>`: run reference model `<name>` of the built-in server.
    pub reference_model: Option<String>,
    pub requirements: Vec<String>,
    pub server: Option<String>,
    pub replicas: Option<u64>,
    pub min_replicas: Option<u64>,
    pub max_replicas: Option<u64>,
    pub memory: Option<String>,
    pub parameters: Vec<(String, String)>,
    pub explainer: Option<ExplainerPlan>,
    /// `llm.modelRef` / `llm.pipelineRef`, as an inference path like the explainer's.
    pub llm_infer_path: Option<String>,
    pub clean_topics_on_delete: bool,
    pub input_topic: String,
    pub output_topic: String,
    /// The sub-topology that runs this model's calls through its topics on its own (§7), in
    /// the consumer group the pipelines' calls of this model share: compiled with the rest,
    /// so nothing after the compiler builds plans. `None` only in a model deployed by a flowc
    /// from before this field (apply it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<Box<PipelinePlan>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainerPlan {
    /// Reaches MLServer as `extra.explainer_type`.
    pub explainer_type: Option<String>,
    /// Path on the pipeline gateway given to the explainer as `infer_uri`:
    /// `/v2/models/<m>/infer` or `/v2/pipelines/<p>/infer` (§1.2).
    pub infer_path: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerPlan {
    pub name: String,
    pub namespace: String,
    pub capabilities: Vec<String>,
    pub endpoints: Vec<String>,
}

impl PipelinePlan {
    /// The pipeline's steps in the order the data flows (topological), per-hop or fused.
    pub fn steps(&self) -> Vec<&str> {
        self.sub_topologies
            .iter()
            .flat_map(|s| match &s.role {
                Role::Step { step } => vec![step.as_str()],
                Role::Fused { steps } => steps.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    pub fn sub_topology(&self, name: &str) -> Option<&SubTopology> {
        self.sub_topologies.iter().find(|s| s.name == name)
    }

    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }
}

impl SubTopology {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Names of the nodes `name` sends to, in edge order.
    pub fn successors<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.from == name)
    }

    pub fn predecessors<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| e.to == name)
    }

    /// Topics this sub-topology consumes, each once, in order of first appearance (several
    /// sources may read one topic: a fused pipeline's steps all read its inputs).
    /// What a stateful sub-topology reads and its stores' changelogs, which must be
    /// co-partitioned (§3 rule 11); `None` when it keeps no state.
    pub fn copartition_group(&self, stores: &[Store]) -> Option<Vec<String>> {
        if !self.nodes.iter().any(|n| n.op.store().is_some()) {
            return None;
        }
        let mut group: Vec<String> = self.source_topics().into_iter().map(str::to_string).collect();
        group.extend(
            stores
                .iter()
                .filter(|st| st.sub_topology == self.name)
                .map(|st| st.changelog_topic.clone()),
        );
        Some(group)
    }

    pub fn source_topics(&self) -> Vec<&str> {
        let mut topics: Vec<&str> = Vec::new();
        for n in &self.nodes {
            if let Op::Source { topic, .. } = &n.op {
                if !topics.contains(&topic.as_str()) {
                    topics.push(topic);
                }
            }
        }
        topics
    }
}

/// Rule 11 (**flowc**): the topics of one co-partition group have different partition counts,
/// so a join over them could never match keys. Found when topics are created or checked
/// against a broker (the YAML says nothing about partitions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopartitionError {
    pub pipeline: String,
    /// Every existing topic of the group with its partition count.
    pub topics: Vec<(String, i32)>,
}

impl std::fmt::Display for CopartitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list: Vec<String> = self.topics.iter().map(|(t, n)| format!("{t} ({n})")).collect();
        write!(
            f,
            // E117: the compiler's `Code::PartitionMismatch` (compiler/tests/copartition.rs checks).
            "error[E117]: pipeline `{}` joins topics with different partition counts: {}; \
             records with the same key would land on different partitions and never meet. \
             Give them the same number of partitions (or delete the internal ones so they are recreated)",
            self.pipeline,
            list.join(", ")
        )
    }
}

impl std::error::Error for CopartitionError {}

impl PipelinePlan {
    /// Checks rule 11 given the partition counts of the topics that exist (`None`: the topic
    /// does not exist yet and will be created with the group's count).
    pub fn check_copartitioning(&self, partitions: impl Fn(&str) -> Option<i32>) -> Vec<CopartitionError> {
        let mut errors = Vec::new();
        for group in &self.copartition_groups {
            let existing: Vec<(String, i32)> = group
                .iter()
                .filter_map(|t| partitions(t).map(|n| (t.clone(), n)))
                .collect();
            let first = existing.first().map(|(_, n)| *n);
            if existing.iter().any(|(_, n)| Some(*n) != first) {
                errors.push(CopartitionError {
                    pipeline: self.name.clone(),
                    topics: existing,
                });
            }
        }
        errors
    }
}

/// Merges overlapping topic sets (union-find over topic names), each result sorted, the
/// groups sorted; singletons are dropped.
pub fn merge_copartition_groups(groups: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut index: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for group in &groups {
        let mut first: Option<usize> = None;
        for topic in group {
            let id = *index.entry(topic.clone()).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            });
            match first {
                None => first = Some(id),
                Some(f) => {
                    let (a, b) = (find(&mut parent, f), find(&mut parent, id));
                    if a != b {
                        parent[b] = a;
                    }
                }
            }
        }
    }
    let mut merged: std::collections::BTreeMap<usize, Vec<String>> = std::collections::BTreeMap::new();
    for (topic, id) in &index {
        let root = find(&mut parent, *id);
        merged.entry(root).or_default().push(topic.clone());
    }
    let mut out: Vec<Vec<String>> = merged.into_values().filter(|g| g.len() > 1).collect();
    out.sort();
    out
}

#[cfg(test)]
mod copartition_tests {
    use super::*;

    #[test]
    fn overlapping_groups_merge() {
        let g = merge_copartition_groups(vec![
            vec!["a".into(), "b".into()],
            vec!["c".into(), "d".into()],
            vec!["b".into(), "c".into()],
            vec!["x".into()],
        ]);
        assert_eq!(g, vec![vec!["a", "b", "c", "d"]]);
    }
}
