//! An in-memory test driver, like Kafka Streams' `TopologyTestDriver`: load a compiled plan,
//! pipe records into named topics, advance time, read what each topic received. No broker and
//! no model server: a test supplies model behaviour as a function. The tasks, operators and
//! state stores (RocksDB or in memory) are the real ones.
//!
//! Delivery is like Kafka's: every record written to a topic goes to every sub-topology reading
//! it (each has its own consumer group), to the task of the record's partition, in the order
//! written. Changelog records are kept per changelog topic, so a test can rebuild a task's
//! stores from them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use flowc_plan::{Plan, Role};
use prost::Message;

use crate::operator::{CallAnswer, ModelBackend, ModelCallError};
use crate::ops::BuildEnv;
use crate::record::{header, Headers, Record};
use crate::state::{ChangelogRecord, MemStore, StateError, StateStore};
use crate::task::{OpenStore, Task, TaskError};
use flowc_oip::proto::inference::{ModelInferRequest, ModelInferResponse};

type ModelFn = dyn Fn(&ModelInferRequest) -> Result<ModelInferResponse, String> + Send + Sync;

/// Models as functions, by model name.
#[derive(Default, Clone)]
pub struct FnModels {
    models: BTreeMap<String, Arc<ModelFn>>,
}

impl FnModels {
    pub fn with(
        mut self,
        model: &str,
        f: impl Fn(&ModelInferRequest) -> Result<ModelInferResponse, String> + Send + Sync + 'static,
    ) -> Self {
        self.models.insert(model.to_string(), Arc::new(f));
        self
    }
}

impl ModelBackend for FnModels {
    fn call(&self, model: &str, request: ModelInferRequest, _headers: &[(String, String)]) -> CallAnswer {
        match self.models.get(model) {
            Some(f) => f(&request).map(|r| (r, Vec::new())).map_err(ModelCallError::Failed),
            None => Err(ModelCallError::Failed(format!("model {model} is not available"))),
        }
    }
}

/// Where the driver keeps state.
#[derive(Clone, Debug)]
pub enum StoreKind {
    Memory,
    /// One RocksDB instance per task under this directory.
    #[cfg(feature = "rocksdb")]
    RocksDb(std::path::PathBuf),
}

struct Slot {
    /// Which pipeline plan and sub-topology (to rebuild the task).
    pipeline: usize,
    sub: usize,
    partition: i32,
    task: Task,
}

pub struct TestDriver {
    plan: Plan,
    partitions: i32,
    stores: StoreKind,
    models: Arc<FnModels>,
    slots: Vec<Slot>,
    /// Topic → the slots whose task reads it.
    readers: BTreeMap<String, Vec<usize>>,
    /// Every record written, per topic, in order.
    topics: BTreeMap<String, Vec<Record>>,
    /// Every changelog record, per store name, with the partition of the task that wrote it
    /// (a changelog topic is partitioned like the task's sources).
    changelogs: BTreeMap<String, Vec<(i32, ChangelogRecord)>>,
    now_ms: i64,
    /// Incarnation counter for RocksDB directories of rebuilt tasks.
    generation: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl TestDriver {
    /// Builds one task per sub-topology and partition for every pipeline of `plan`. Model calls
    /// shared by several pipelines run once (one consumer group per model).
    pub fn new(plan: Plan, partitions: i32, stores: StoreKind, models: FnModels) -> Result<Self, DriverError> {
        let mut driver = TestDriver {
            plan,
            partitions: partitions.max(1),
            stores,
            models: Arc::new(models),
            slots: Vec::new(),
            readers: BTreeMap::new(),
            topics: BTreeMap::new(),
            changelogs: BTreeMap::new(),
            now_ms: 1_700_000_000_000,
            generation: 0,
        };
        let mut groups = Vec::new();
        let mut wanted = Vec::new();
        for (pi, p) in driver.plan.pipelines.iter().enumerate() {
            for (si, sub) in p.sub_topologies.iter().enumerate() {
                if matches!(sub.role, Role::ModelCall { .. }) && groups.contains(&sub.consumer_group) {
                    continue;
                }
                groups.push(sub.consumer_group.clone());
                wanted.push((pi, si));
            }
        }
        for (pi, si) in wanted {
            {
                for partition in 0..driver.partitions {
                    let task = driver.build_task(pi, si, partition)?;
                    for topic in task.source_topics() {
                        driver
                            .readers
                            .entry(topic.to_string())
                            .or_default()
                            .push(driver.slots.len());
                    }
                    driver.slots.push(Slot {
                        pipeline: pi,
                        sub: si,
                        partition,
                        task,
                    });
                }
            }
        }
        Ok(driver)
    }

    fn build_task(&mut self, pipeline: usize, sub: usize, partition: i32) -> Result<Task, DriverError> {
        let p = &self.plan.pipelines[pipeline];
        let s = &p.sub_topologies[sub];
        let n = self.partitions;
        let partitions = move |_: &str| n;
        let env = BuildEnv {
            pipeline: &p.name,
            partitions: &partitions,
            models: Some(self.models.clone() as Arc<dyn ModelBackend>),
            defer_calls: false,
            oversize: None,
            telemetry: Arc::new(crate::telemetry::NoTelemetry),
        };
        self.generation += 1;
        let mut open: Box<OpenStore<'_>> = match &self.stores {
            StoreKind::Memory => Box::new(|name: &str| Ok(Box::new(MemStore::new(name)?) as Box<dyn StateStore>)),
            #[cfg(feature = "rocksdb")]
            StoreKind::RocksDb(dir) => {
                let path = dir.join(format!("{}-{}-{}-{}", p.name, s.name, partition, self.generation));
                let state = crate::state::RocksState::open(path)?;
                Box::new(move |name: &str| Ok(Box::new(state.store(name)?) as Box<dyn StateStore>))
            }
        };
        Ok(Task::new(p, s, partition, &env, &mut open)?)
    }

    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// Writes a record to `topic` (partition from the key's leading integer, else 0) and runs
    /// everything it causes to completion.
    pub fn pipe(&mut self, topic: &str, key: &str, headers: Headers, value: Bytes) {
        let partition = crate::record::output_partition(key, 0, self.partitions);
        let record = Record {
            key: key.to_string(),
            value,
            headers,
            partition,
            timestamp_ms: self.now_ms,
        };
        self.deliver(vec![(topic.to_string(), record)]);
    }

    /// Sends a request to a pipeline as an async producer does: to `…pipeline.<p>.inputs` with
    /// the `pipeline` header.
    pub fn send(&mut self, pipeline: &str, key: &str, request: &ModelInferRequest) {
        let topic = self.pipeline_topic(pipeline, "inputs");
        let headers = vec![(header::PIPELINE.to_string(), pipeline.as_bytes().to_vec())];
        self.pipe(&topic, key, headers, Bytes::from(request.encode_to_vec()));
    }

    /// Moves the clock and runs every task's timer.
    pub fn advance(&mut self, ms: i64) {
        self.now_ms = self.now_ms.saturating_add(ms);
        let now = self.now_ms;
        let mut written = Vec::new();
        for slot in &mut self.slots {
            let out = slot.task.punctuate(now);
            for c in out.changelog {
                self.changelogs
                    .entry(c.store.clone())
                    .or_default()
                    .push((slot.partition, c));
            }
            written.extend(out.records);
        }
        self.deliver(written);
    }

    fn deliver(&mut self, initial: Vec<(String, Record)>) {
        let mut queue: VecDeque<(String, Record)> = initial.into();
        while let Some((topic, record)) = queue.pop_front() {
            self.topics.entry(topic.clone()).or_default().push(record.clone());
            let now = self.now_ms;
            let readers = self.readers.get(&topic).map_or(&[][..], Vec::as_slice);
            for &i in readers {
                let slot = &mut self.slots[i];
                if slot.partition != record.partition {
                    continue;
                }
                let out = slot.task.process(&topic, record.clone(), now);
                for c in out.changelog {
                    self.changelogs
                        .entry(c.store.clone())
                        .or_default()
                        .push((slot.partition, c));
                }
                queue.extend(out.records);
            }
        }
    }

    /// `<prefix>.<ns>.pipeline.<p>.<side>` for a pipeline of the plan.
    pub fn pipeline_topic(&self, pipeline: &str, side: &str) -> String {
        let ns = self
            .plan
            .pipelines
            .iter()
            .find(|p| p.name == pipeline)
            .map_or("default", |p| p.namespace.as_str());
        format!("{}.{ns}.pipeline.{pipeline}.{side}", self.plan.prefix)
    }

    /// Every record written to `topic` so far.
    pub fn records(&self, topic: &str) -> &[Record] {
        self.topics.get(topic).map_or(&[], Vec::as_slice)
    }

    pub fn topics(&self) -> impl Iterator<Item = (&str, &[Record])> {
        self.topics.iter().map(|(t, r)| (t.as_str(), r.as_slice()))
    }

    /// The pipeline's answers: responses on `…pipeline.<p>.outputs` (error records excluded).
    pub fn responses(&self, pipeline: &str) -> Vec<(String, ModelInferResponse)> {
        self.records(&self.pipeline_topic(pipeline, "outputs"))
            .iter()
            .filter(|r| !r.is_error())
            .filter_map(|r| {
                ModelInferResponse::decode(r.value.clone())
                    .ok()
                    .map(|m| (r.key.clone(), m))
            })
            .collect()
    }

    /// Changelog records of a store so far, with the partition each was written to.
    pub fn changelog(&self, store: &str) -> &[(i32, ChangelogRecord)] {
        self.changelogs.get(store).map_or(&[], Vec::as_slice)
    }

    /// The live entries of a store across all partitions (for checking that state is bounded).
    pub fn store_len(&self, store: &str) -> Result<usize, StateError> {
        let mut n = 0;
        for slot in &self.slots {
            if let Some(s) = slot.task.store(store) {
                n += s.scan_prefix(b"")?.len();
            }
        }
        Ok(n)
    }

    /// Replaces every task that has a store with a fresh one (new, empty stores: a new worker
    /// taking over the partitions) and rebuilds its stores from the changelogs, as a worker
    /// does when a partition moves to it. Returns the number of changelog records applied.
    pub fn restart_stateful_tasks(&mut self) -> Result<usize, DriverError> {
        let mut applied = 0;
        for i in 0..self.slots.len() {
            let names: Vec<String> = self.slots[i].task.store_names().map(str::to_string).collect();
            if names.is_empty() {
                continue;
            }
            let (pipeline, sub, partition) = (self.slots[i].pipeline, self.slots[i].sub, self.slots[i].partition);
            let mut task = self.build_task(pipeline, sub, partition)?;
            for name in &names {
                let records: Vec<ChangelogRecord> = self
                    .changelog(name)
                    .iter()
                    .filter(|(p, _)| *p == partition)
                    .map(|(_, r)| r.clone())
                    .collect();
                applied += task.restore(name, records)?;
            }
            self.slots[i].task = task;
        }
        Ok(applied)
    }
}
