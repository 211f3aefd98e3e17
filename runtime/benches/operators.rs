//! Throughput of the step runtime against RocksDB state, with in-memory state for comparison.
//!
//! Two cases, each with `StoreKind::RocksDb` (a fresh tempdir) and `StoreKind::Memory`:
//!
//! 1. `join/*`: the join operator in isolation. A plan with steps `a` and `b` reading the
//!    pipeline input and step `c` joining `a.outputs.OUTPUT0` and `b.outputs.OUTPUT1` (tensorMap
//!    renames to `INPUT0`/`INPUT1`) is compiled, and only the task of sub-topology `c` is
//!    driven: records of `seldon.default.model.a.outputs` and `…model.b.outputs` go straight
//!    into `Task::process` (source → select → inner join with its store → sink). Each
//!    iteration sends a batch of keys: first the `a` record of every key (the join buffers
//!    them), then the `b` record of every key (each completes its join and is emitted).
//!    Throughput counts input records (two per completed join).
//! 2. `pipeline/*`: the whole 3-step `samples/join.yaml` (tfsimple1 and tfsimple2 read the
//!    request, tfsimple3 joins them) on the in-memory `TestDriver`, with the models as
//!    functions (sum-diff: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 − INPUT1). Each
//!    iteration pipes a batch of requests through `TestDriver::send` into a fresh driver.
//!    Throughput counts requests; every request touches 7 tasks and 10 topics, and the driver
//!    itself keeps a copy of every record written, so this is an upper bound on the per-request
//!    cost of the runtime, not of Kafka.
//!
//! Records carry INT32 [1,16] tensors in typed contents and the header `pipeline: <name>`;
//! keys are unique (a counter). Inputs are built outside the timed part (`iter_batched`).
//!
//! Run (release build; the first one compiles RocksDB, which takes a while):
//!
//! ```sh
//! CARGO_TARGET_DIR=$HOME/.cache/flowc/target cargo bench -p flowc-runtime --bench operators
//! ```
//!
//! Criterion prints time per batch and `thrpt` in elements/s (records/s for `join`, requests/s
//! for `pipeline`). The anchor (issue): Kafka Streams' inner join with RocksDB state does about
//! 20,000 records/s; the aim is five times that, 100,000 records/s per core.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flowc_compiler::plan::{PipelinePlan, Plan};
use flowc_compiler::{compile_str, CompileOptions};
use flowc_runtime::driver::{FnModels, StoreKind, TestDriver};
use flowc_runtime::ops::BuildEnv;
use flowc_runtime::proto::inference::model_infer_request::InferInputTensor;
use flowc_runtime::proto::inference::model_infer_response::InferOutputTensor;
use flowc_runtime::proto::inference::{InferTensorContents, ModelInferRequest, ModelInferResponse};
use flowc_runtime::record::{header, Record};
use flowc_runtime::state::{MemStore, RocksState, StateError, StateStore};
use flowc_runtime::task::Task;
use prost::Message;

/// Input records per iteration of the join case (half `a`, half `b`).
const JOIN_BATCH: usize = 1_000;
/// Requests per iteration of the whole-pipeline case.
const PIPELINE_BATCH: usize = 1_000;
const NOW_MS: i64 = 1_700_000_000_000;

/// The join in isolation: `c` joins one tensor of `a` and one of `b` (as `samples/join.yaml`).
const JOIN_YAML: &str = r#"
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: a
spec:
  storageUri: "flowc://sum-diff"
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: b
spec:
  storageUri: "flowc://sum-diff"
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: c
spec:
  storageUri: "flowc://sum-diff"
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: bench
spec:
  steps:
    - name: a
    - name: b
    - name: c
      inputs: [a.outputs.OUTPUT0, b.outputs.OUTPUT1]
      tensorMap:
        a.outputs.OUTPUT0: INPUT0
        b.outputs.OUTPUT1: INPUT1
  output:
    steps: [c]
"#;

const SAMPLE_JOIN_YAML: &str = include_str!("../../samples/join.yaml");

/// Unique keys across every iteration and case.
static NEXT_KEY: AtomicU64 = AtomicU64::new(0);

fn next_key() -> String {
    // A gateway-shaped key: leading partition, then the request id.
    format!("0.req-{}", NEXT_KEY.fetch_add(1, Ordering::Relaxed))
}

fn compile(name: &str, yaml: &str) -> Plan {
    let (_, compilation) = compile_str(name, yaml, &CompileOptions::default());
    compilation
        .plan
        .unwrap_or_else(|| panic!("{name} must compile: {:?}", compilation.diagnostics))
}

fn values() -> Vec<i32> {
    (1..=16).collect()
}

fn contents(v: Vec<i32>) -> Option<InferTensorContents> {
    Some(InferTensorContents {
        int_contents: v,
        ..Default::default()
    })
}

fn output(name: &str, v: Vec<i32>) -> InferOutputTensor {
    InferOutputTensor {
        name: name.to_string(),
        datatype: "INT32".to_string(),
        shape: vec![1, 16],
        contents: contents(v),
        ..Default::default()
    }
}

/// A model's answer as a model gateway writes it to `model.<m>.outputs`.
fn model_output(model: &str) -> Bytes {
    let response = ModelInferResponse {
        model_name: model.to_string(),
        outputs: vec![output("OUTPUT0", values()), output("OUTPUT1", values())],
        ..Default::default()
    };
    Bytes::from(response.encode_to_vec())
}

fn request() -> ModelInferRequest {
    let input = |name: &str| InferInputTensor {
        name: name.to_string(),
        datatype: "INT32".to_string(),
        shape: vec![1, 16],
        contents: contents(values()),
        ..Default::default()
    };
    ModelInferRequest {
        inputs: vec![input("INPUT0"), input("INPUT1")],
        ..Default::default()
    }
}

fn ints<'a>(request: &'a ModelInferRequest, name: &str) -> Result<&'a [i32], String> {
    request
        .inputs
        .iter()
        .find(|t| t.name == name)
        .and_then(|t| t.contents.as_ref())
        .map(|c| c.int_contents.as_slice())
        .ok_or_else(|| format!("missing typed INT32 input {name}"))
}

/// sum-diff on typed INT32 contents: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 − INPUT1.
fn sum_diff(request: &ModelInferRequest) -> Result<ModelInferResponse, String> {
    let (x, y) = (ints(request, "INPUT0")?, ints(request, "INPUT1")?);
    let sum = x.iter().zip(y).map(|(p, q)| p.wrapping_add(*q)).collect();
    let diff = x.iter().zip(y).map(|(p, q)| p.wrapping_sub(*q)).collect();
    Ok(ModelInferResponse {
        id: request.id.clone(),
        outputs: vec![output("OUTPUT0", sum), output("OUTPUT1", diff)],
        ..Default::default()
    })
}

fn sum_diff_models() -> FnModels {
    ["tfsimple1", "tfsimple2", "tfsimple3"]
        .into_iter()
        .fold(FnModels::default(), |m, name| m.with(name, sum_diff))
}

/// Where a case keeps state; RocksDB directories live as long as the value.
enum Stores {
    Memory,
    RocksDb(tempfile::TempDir),
}

impl Stores {
    fn new(rocks: bool) -> Stores {
        if rocks {
            Stores::RocksDb(tempfile::tempdir().expect("tempdir"))
        } else {
            Stores::Memory
        }
    }

    fn kind(&self) -> StoreKind {
        match self {
            Stores::Memory => StoreKind::Memory,
            Stores::RocksDb(dir) => StoreKind::RocksDb(dir.path().to_path_buf()),
        }
    }
}

const KINDS: [(&str, bool); 2] = [("rocksdb", true), ("memory", false)];

// ---------------------------------------------------------------- 1. the join in isolation

/// The task of sub-topology `c`, with its join store in `stores`.
fn join_task(plan: &PipelinePlan, stores: &Stores) -> Task {
    let sub = plan
        .sub_topologies
        .iter()
        .find(|s| s.name == "c")
        .expect("sub-topology c");
    let partitions = |_: &str| 1;
    let env = BuildEnv {
        pipeline: &plan.name,
        partitions: &partitions,
        models: None,
        defer_calls: false,
        oversize: None,
        telemetry: std::sync::Arc::new(flowc_runtime::telemetry::NoTelemetry),
    };
    let rocks = match stores {
        Stores::RocksDb(dir) => Some(RocksState::open(dir.path().join("c-0")).expect("open RocksDB")),
        Stores::Memory => None,
    };
    let mut open = |name: &str| -> Result<Box<dyn StateStore>, StateError> {
        Ok(match &rocks {
            Some(state) => Box::new(state.store(name)?),
            None => Box::new(MemStore::new(name)?),
        })
    };
    let task = Task::new(plan, sub, 0, &env, &mut open).expect("task c");
    assert_eq!(task.store_names().count(), 1, "c has one join store");
    task
}

/// One batch: the `a` record of every key, then the `b` record of every key.
fn join_inputs(pipeline: &str, a_value: &Bytes, b_value: &Bytes) -> Vec<(&'static str, Record)> {
    let keys: Vec<String> = (0..JOIN_BATCH / 2).map(|_| next_key()).collect();
    let record = |key: &String, value: &Bytes| Record {
        key: key.clone(),
        value: value.clone(),
        headers: vec![(header::PIPELINE.to_string(), pipeline.as_bytes().to_vec())],
        partition: 0,
        timestamp_ms: NOW_MS,
    };
    let a = keys
        .iter()
        .map(|k| ("seldon.default.model.a.outputs", record(k, a_value)));
    let b = keys
        .iter()
        .map(|k| ("seldon.default.model.b.outputs", record(k, b_value)));
    a.chain(b).collect()
}

/// Feeds a batch; returns (records written, changelog records).
fn run_join(task: &mut Task, inputs: Vec<(&'static str, Record)>) -> (usize, usize) {
    let (mut written, mut logged) = (0, 0);
    for (topic, record) in inputs {
        let out = task.process(topic, record, NOW_MS);
        written += out.records.len();
        logged += out.changelog.len();
        black_box(out);
    }
    (written, logged)
}

fn bench_join(c: &mut Criterion) {
    let plan = compile("join-bench.yaml", JOIN_YAML);
    let plan = &plan.pipelines[0];
    let (a_value, b_value) = (model_output("a"), model_output("b"));

    let mut group = c.benchmark_group("join");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(JOIN_BATCH as u64));
    for (label, rocks) in KINDS {
        let stores = Stores::new(rocks);
        let mut task = join_task(plan, &stores);

        // Once, outside the timed loop: every key joins, nothing is left in the store, and the
        // joined request has both renamed tensors.
        let (written, logged) = run_join(&mut task, join_inputs(&plan.name, &a_value, &b_value));
        assert_eq!(written, JOIN_BATCH / 2, "one joined record per key");
        assert_eq!(
            logged, JOIN_BATCH,
            "a put per first part, a tombstone per completed join"
        );
        let store = task.store_names().next().expect("store").to_string();
        let left = task.store(&store).expect("store").scan_prefix(b"").expect("scan");
        assert!(left.is_empty(), "every join completed");
        let probe = next_key();
        let headers = vec![(header::PIPELINE.to_string(), plan.name.as_bytes().to_vec())];
        let rec = |value: &Bytes| Record {
            key: probe.clone(),
            value: value.clone(),
            headers: headers.clone(),
            partition: 0,
            timestamp_ms: NOW_MS,
        };
        task.process("seldon.default.model.a.outputs", rec(&a_value), NOW_MS);
        let out = task.process("seldon.default.model.b.outputs", rec(&b_value), NOW_MS);
        let (topic, joined) = &out.records[0];
        assert_eq!(topic, "seldon.default.model.c.inputs");
        let joined = ModelInferRequest::decode(joined.value.clone()).expect("a request");
        let names: Vec<&str> = joined.inputs.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["INPUT0", "INPUT1"]);

        group.bench_function(label, |bench| {
            bench.iter_batched(
                || join_inputs(&plan.name, &a_value, &b_value),
                |inputs| run_join(&mut task, inputs),
                BatchSize::PerIteration,
            )
        });
        drop(task);
        drop(stores);
    }
    group.finish();
}

// ---------------------------------------------------------------- 2. the whole pipeline

fn requests() -> (Vec<String>, Vec<ModelInferRequest>) {
    let keys = (0..PIPELINE_BATCH).map(|_| next_key()).collect();
    let requests = (0..PIPELINE_BATCH).map(|_| request()).collect();
    (keys, requests)
}

fn driver(plan: &Plan, rocks: bool) -> (Stores, TestDriver) {
    let stores = Stores::new(rocks);
    let driver = TestDriver::new(plan.clone(), 1, stores.kind(), sum_diff_models()).expect("driver");
    (stores, driver)
}

/// Sends every request; the driver (and its RocksDB directories) is returned so that it is
/// dropped outside the timed part.
fn run_pipeline(
    (stores, mut driver): (Stores, TestDriver),
    (keys, requests): &(Vec<String>, Vec<ModelInferRequest>),
) -> (Stores, TestDriver) {
    for (key, request) in keys.iter().zip(requests) {
        driver.send("join", key, request);
    }
    (stores, driver)
}

fn bench_pipeline(c: &mut Criterion) {
    let plan = compile("samples/join.yaml", SAMPLE_JOIN_YAML);

    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(PIPELINE_BATCH as u64));
    for (label, rocks) in KINDS {
        // Once, outside the timed loop: N requests in, N answers out, with the right values
        // (tfsimple3 gets INPUT0 = 2x, INPUT1 = 0, so both outputs are 2x).
        let batch = requests();
        let (_stores, checked) = run_pipeline(driver(&plan, rocks), &batch);
        let responses = checked.responses("join");
        assert_eq!(responses.len(), PIPELINE_BATCH, "one response per request");
        let doubled: Vec<i32> = values().iter().map(|v| 2 * v).collect();
        for (_, response) in &responses {
            let outs: Vec<(&str, &[i32])> = response
                .outputs
                .iter()
                .map(|t| {
                    let c = t.contents.as_ref().expect("typed contents");
                    (t.name.as_str(), c.int_contents.as_slice())
                })
                .collect();
            assert_eq!(outs, [("OUTPUT0", &doubled[..]), ("OUTPUT1", &doubled[..])]);
        }
        assert_eq!(
            checked.store_len("tfsimple3.join").expect("store"),
            0,
            "every join completed"
        );
        drop(checked);

        group.bench_function(label, |bench| {
            bench.iter_batched(
                || (driver(&plan, rocks), requests()),
                |(driver, batch)| (run_pipeline(driver, &batch), batch),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench_join, bench_pipeline);
criterion_main!(benches);
