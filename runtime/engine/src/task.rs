//! A task: one sub-topology on one partition (as in Kafka Streams), with its operators and
//! state stores. A task is fed records of its source topics and timer ticks, and returns what
//! to write: output records and changelog records. It does no I/O itself, so the same task runs
//! under the in-memory driver and under a Kafka worker.

use std::collections::{BTreeMap, VecDeque};

use flowc_plan::{Op, PipelinePlan, Port, SubTopology, TopicRole};

use crate::envelope::Envelope;
use crate::operator::{BuildError, CallAnswer, Ctx, OpError, Operator, Out, PreparedCall};
use crate::ops::{build_operator, BuildEnv};
use crate::record::{error_record, step_headers, Record};
use crate::state::{ChangelogRecord, StateError, StateStore};

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("opening store {store}: {source}")]
    Store { store: String, source: StateError },
    #[error("edge {from} -> {to} names a node that is not in sub-topology {sub}")]
    Edge { sub: String, from: String, to: String },
}

/// Opens (or creates) the store of a given name for a task.
pub type OpenStore<'a> = dyn FnMut(&str) -> Result<Box<dyn StateStore>, StateError> + 'a;

/// What a task asks to be written after handling input.
#[derive(Debug, Default)]
pub struct TaskOutput {
    /// `(topic, record)` in the order they were produced.
    pub records: Vec<(String, Record)>,
    /// State writes to produce to the stores' changelog topics.
    pub changelog: Vec<ChangelogRecord>,
    /// Set when a model server was unreachable: the input was not handled and must be
    /// retried (nothing of it should be written).
    pub unavailable: Option<String>,
    /// Model calls handed out (a task built with `defer_calls`): the caller makes them and
    /// hands each answer back with [`Task::resume`].
    pub calls: Vec<PendingCall>,
}

/// A model call a task handed out, with what it needs to go on once answered.
pub struct PendingCall {
    node: usize,
    envelope: Envelope,
    pub call: PreparedCall,
}

impl std::fmt::Debug for PendingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCall")
            .field("node", &self.node)
            .field("key", &self.envelope.key)
            .field("model", &self.call.model())
            .finish()
    }
}

impl PendingCall {
    /// The request's key.
    pub fn key(&self) -> &str {
        &self.envelope.key
    }
}

/// What the error record of a failed operator keeps of the envelope it failed on.
struct Origin {
    key: String,
    headers: Vec<(String, Vec<u8>)>,
    partition: i32,
    timestamp_ms: i64,
}

impl Origin {
    fn of(envelope: &Envelope) -> Origin {
        Origin {
            key: envelope.key.clone(),
            headers: envelope.headers.clone(),
            partition: envelope.partition,
            timestamp_ms: envelope.timestamp_ms,
        }
    }
}

struct RtNode {
    name: String,
    op: Box<dyn Operator>,
    store: Option<String>,
}

pub struct Task {
    pipeline: String,
    sub: String,
    partition: i32,
    nodes: Vec<RtNode>,
    /// Per node: `(target, port on the target, which output feeds it)`.
    successors: Vec<Vec<(usize, Port, Out)>>,
    /// Source topic → source nodes reading it.
    sources: BTreeMap<String, Vec<usize>>,
    stores: BTreeMap<String, Box<dyn StateStore>>,
    errors_topic: Option<(String, i32)>,
}

impl Task {
    /// Builds the operators of `sub` through the registry and opens its stores with
    /// `open_store(store_name)`.
    pub fn new(
        plan: &PipelinePlan,
        sub: &SubTopology,
        partition: i32,
        env: &BuildEnv<'_>,
        open_store: &mut OpenStore<'_>,
    ) -> Result<Task, TaskError> {
        let mut nodes = Vec::with_capacity(sub.nodes.len());
        let mut index = BTreeMap::new();
        let mut sources: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut stores = BTreeMap::new();
        for (i, node) in sub.nodes.iter().enumerate() {
            index.insert(node.name.as_str(), i);
            if let Op::Source { topic, .. } = &node.op {
                sources.entry(topic.clone()).or_default().push(i);
            }
            let store = node.op.store().map(str::to_string);
            if let Some(name) = &store {
                let opened = open_store(name).map_err(|source| TaskError::Store {
                    store: name.clone(),
                    source,
                })?;
                stores.insert(name.clone(), opened);
            }
            nodes.push(RtNode {
                name: node.name.clone(),
                op: build_operator(node, env)?,
                store,
            });
        }
        let mut successors = vec![Vec::new(); nodes.len()];
        for edge in &sub.edges {
            let (Some(&from), Some(&to)) = (index.get(edge.from.as_str()), index.get(edge.to.as_str())) else {
                return Err(TaskError::Edge {
                    sub: sub.name.clone(),
                    from: edge.from.clone(),
                    to: edge.to.clone(),
                });
            };
            let (port, out) = match edge.port {
                Port::Error => (Port::Forward, Out::Error),
                port => (port, Out::Main),
            };
            successors[from].push((to, port, out));
        }
        let errors_topic = plan
            .topics
            .iter()
            .find(|t| t.role == TopicRole::Errors)
            .map(|t| (t.name.clone(), (env.partitions)(&t.name)));
        Ok(Task {
            pipeline: plan.name.clone(),
            sub: sub.name.clone(),
            partition,
            nodes,
            successors,
            sources,
            stores,
            errors_topic,
        })
    }

    pub fn sub_topology(&self) -> &str {
        &self.sub
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn source_topics(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    pub fn store(&self, name: &str) -> Option<&dyn StateStore> {
        self.stores.get(name).map(|s| s.as_ref())
    }

    pub fn store_names(&self) -> impl Iterator<Item = &str> {
        self.stores.keys().map(String::as_str)
    }

    /// Rebuilds a store from its changelog (after clearing it), as when a partition moves here.
    pub fn restore(&mut self, store: &str, records: Vec<ChangelogRecord>) -> Result<usize, StateError> {
        let Some(s) = self.stores.get_mut(store) else {
            return Ok(0);
        };
        s.clear()?;
        self.replay(store, records)
    }

    /// Writes every store's in-memory part to disk (before a checkpoint).
    pub fn flush_stores(&self) -> Result<(), StateError> {
        for s in self.stores.values() {
            s.flush()?;
        }
        Ok(())
    }

    /// Applies the tail of a changelog onto a store that was on disk up to where it starts
    /// (a checkpoint); returns how many records were applied.
    pub fn replay(&mut self, store: &str, records: Vec<ChangelogRecord>) -> Result<usize, StateError> {
        let Some(s) = self.stores.get_mut(store) else {
            return Ok(0);
        };
        let mut applied = 0;
        for r in &records {
            s.apply(r)?;
            applied += 1;
        }
        Ok(applied)
    }

    /// Handles one record read from `topic`.
    pub fn process(&mut self, topic: &str, record: Record, now_ms: i64) -> TaskOutput {
        let mut out = TaskOutput::default();
        let Some(targets) = self.sources.get(topic) else {
            return out;
        };
        let mut queue: VecDeque<(usize, Port, Envelope)> = VecDeque::new();
        let envelope = Envelope::from_record(record);
        match targets.as_slice() {
            [single] => queue.push_back((*single, Port::Forward, envelope)),
            many => {
                for &n in many {
                    queue.push_back((n, Port::Forward, envelope.clone()));
                }
            }
        }
        self.run(queue, now_ms, &mut out);
        out
    }

    /// Timer tick: every operator closes what is due, and what it emits flows on.
    pub fn punctuate(&mut self, now_ms: i64) -> TaskOutput {
        let mut out = TaskOutput::default();
        for i in 0..self.nodes.len() {
            let (result, emitted) = self.on_node(i, now_ms, &mut out, |op, ctx| op.punctuate(ctx));
            if let Err(e) = result {
                tracing::warn!(pipeline = %self.pipeline, node = %self.nodes[i].name, error = %e, "timer failed");
            }
            let mut queue = VecDeque::new();
            self.route(i, emitted, &mut queue);
            self.run(queue, now_ms, &mut out);
        }
        out
    }

    /// Goes on with a call this task handed out, now answered: the model call's node takes
    /// the answer, and what it emits flows on as if the call had been made in place.
    pub fn resume(&mut self, call: PendingCall, answer: CallAnswer, now_ms: i64) -> TaskOutput {
        let mut out = TaskOutput::default();
        let PendingCall { node: i, envelope, .. } = call;
        let origin = Origin::of(&envelope);
        let (result, emitted) = self.on_node(i, now_ms, &mut out, |op, ctx| op.resume(envelope, answer, ctx));
        match result {
            Ok(()) => {
                let mut queue = VecDeque::new();
                self.route(i, emitted, &mut queue);
                self.run(queue, now_ms, &mut out);
            }
            Err(OpError::Unavailable(text)) => out.unavailable = Some(text),
            Err(e) => self.fail(i, e, origin, &mut out),
        }
        out
    }

    /// Runs `f` on node `i`'s operator with its context (its store, the task's outputs);
    /// returns what it returned and emitted. Calls it hands out go into `out`.
    fn on_node(
        &mut self,
        i: usize,
        now_ms: i64,
        out: &mut TaskOutput,
        f: impl FnOnce(&mut dyn Operator, &mut Ctx<'_>) -> Result<(), OpError>,
    ) -> (Result<(), OpError>, Vec<(Out, Envelope)>) {
        let mut emitted = Vec::new();
        let mut deferred = Vec::new();
        let result = {
            let node = &mut self.nodes[i];
            let store = node.store.as_ref().and_then(|s| self.stores.get_mut(s));
            let mut ctx = Ctx::new(
                now_ms,
                store,
                &mut out.changelog,
                &mut emitted,
                &mut out.records,
                &mut deferred,
            );
            f(node.op.as_mut(), &mut ctx)
        };
        Self::hand_out(i, deferred, out);
        (result, emitted)
    }

    fn hand_out(node: usize, deferred: Vec<(Envelope, PreparedCall)>, out: &mut TaskOutput) {
        out.calls.extend(
            deferred
                .into_iter()
                .map(|(envelope, call)| PendingCall { node, envelope, call }),
        );
    }

    fn route(&self, from: usize, emitted: Vec<(Out, Envelope)>, queue: &mut VecDeque<(usize, Port, Envelope)>) {
        for (out, envelope) in emitted {
            let targets: Vec<&(usize, Port, Out)> =
                self.successors[from].iter().filter(|(_, _, o)| *o == out).collect();
            match targets.as_slice() {
                [] => {}
                [(to, port, _)] => queue.push_back((*to, *port, envelope)),
                many => {
                    for (to, port, _) in many {
                        queue.push_back((*to, *port, envelope.clone()));
                    }
                }
            }
        }
    }

    fn run(&mut self, mut queue: VecDeque<(usize, Port, Envelope)>, now_ms: i64, out: &mut TaskOutput) {
        while let Some((i, port, envelope)) = queue.pop_front() {
            // Kept for the error record, should the operator fail.
            let origin = Origin::of(&envelope);
            let (result, emitted) = self.on_node(i, now_ms, out, |op, ctx| op.process(port, envelope, ctx));
            match result {
                Ok(()) => self.route(i, emitted, &mut queue),
                Err(OpError::Unavailable(text)) => {
                    out.unavailable = Some(text);
                    return;
                }
                Err(e) => self.fail(i, e, origin, out),
            }
        }
    }

    /// An operator failed on a record: the dataflow itself raises an error record for the
    /// key (`seldon-pipeline-errors: <pipeline>`), so a caller waiting on it gets an answer.
    fn fail(&self, node: usize, error: OpError, origin: Origin, out: &mut TaskOutput) {
        let Origin {
            key,
            headers,
            partition,
            timestamp_ms,
        } = origin;
        let name = &self.nodes[node].name;
        tracing::warn!(pipeline = %self.pipeline, node = %name, key = %key, error = %error, "record failed");
        let Some((topic, partitions)) = &self.errors_topic else {
            return;
        };
        let input = Record {
            key,
            value: bytes::Bytes::new(),
            headers: step_headers(&headers, &self.pipeline),
            partition,
            timestamp_ms,
        };
        let text = format!("ERROR: {name}: {error}");
        out.records
            .push((topic.clone(), error_record(&input, &self.pipeline, &text, *partitions)));
    }
}
