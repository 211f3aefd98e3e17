//! Data-driven tests of the step engine on the in-memory driver: each `tests/cases/<name>.json`
//! compiles sample pipelines, pipes requests, moves the clock, and the records that reached the
//! shown topics are rendered and compared with `tests/cases/<name>.out`. Re-bless with
//!
//! ```sh
//! FLOWC_BLESS=1 cargo test -p flowc-engine --test driver_cases
//! ```
//!
//! Models are chosen by the Model's `flowc://<name>` reference: the reference models of
//! PIPELINES.md §9 as the reference server runs them (`flowc_reference::models`), and two test
//! doubles: a drift model that reports the batch it got, and a model that always fails.

// The test reads its cases and samples and blesses goldens; the engine itself does no I/O
// (clippy.toml).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use flowc_compiler::plan::Execution;
use flowc_compiler::{compile, CompileOptions, SourceMap};
use flowc_engine::driver::{FnModels, StoreKind, TestDriver};
use flowc_engine::record::Record;
use flowc_oip::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_oip::tensor::{Encoding, InferMessage, Tensor, TensorData};
use flowc_reference::models as reference;
use prost::Message;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------- models

/// The library's reference models (`flowc_reference::models`), plus two test doubles: `drift`
/// (answers `batch_rows`, so the batching cases can see batch sizes; the real drift model, a
/// KS test, is tested in reference.rs and on the model server) and `fail`.
fn reference_model(name: &str, request: &ModelInferRequest) -> Result<ModelInferResponse, String> {
    match name {
        "drift" => {
            let m = InferMessage::from_request(request).map_err(|e| e.to_string())?;
            let input = m
                .tensors
                .iter()
                .find(|t| t.name == "INPUT")
                .ok_or_else(|| "missing input tensor INPUT".to_string())?;
            let k = input.shape.get(1).copied().unwrap_or(1);
            let t =
                |name: &str, shape: Vec<i64>, data: TensorData| Tensor::new(name, shape, data).expect("valid tensor");
            let tensors = vec![
                t("is_drift", vec![1], TensorData::Int64(vec![0])),
                t("p_val", vec![k], TensorData::Fp64(vec![1.0; k.max(0) as usize])),
                t("batch_rows", vec![1], TensorData::Int64(vec![input.shape[0]])),
            ];
            InferMessage { tensors, ..m }.to_response().map_err(|e| e.to_string())
        }
        "fail" => Err("model failed on purpose".to_string()),
        other => reference::infer(other, request).map_err(|e| e.to_string()),
    }
}

fn models_for(plan: &flowc_compiler::Plan) -> FnModels {
    let mut models = FnModels::default();
    for m in &plan.models {
        let reference = m.reference_model.clone().unwrap_or_default();
        models = models.with(&m.name, move |r| reference_model(&reference, r));
    }
    models
}

// ---------------------------------------------------------------- cases

fn data(datatype: &str, values: &[Value]) -> TensorData {
    let ints = || values.iter().map(|v| v.as_i64().expect("integer")).collect::<Vec<_>>();
    let floats = || values.iter().map(|v| v.as_f64().expect("number")).collect::<Vec<_>>();
    match datatype {
        "INT32" => TensorData::Int32(ints().into_iter().map(|v| v as i32).collect()),
        "INT64" => TensorData::Int64(ints()),
        "FP32" => TensorData::Fp32(floats().into_iter().map(|v| v as f32).collect()),
        "FP64" => TensorData::Fp64(floats()),
        "BOOL" => TensorData::Bool(values.iter().map(|v| v.as_bool().expect("bool")).collect()),
        "BYTES" => TensorData::Bytes(
            values
                .iter()
                .map(|v| Bytes::from(v.as_str().expect("string").to_string()))
                .collect(),
        ),
        other => panic!("datatype {other} not supported in cases"),
    }
}

fn request_of(spec: &Value) -> ModelInferRequest {
    let tensors = spec["tensors"]
        .as_array()
        .expect("tensors")
        .iter()
        .map(|t| {
            let shape = t["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_i64().expect("dim"))
                .collect();
            let values = t["data"].as_array().expect("data");
            Tensor::new(
                t["name"].as_str().expect("name"),
                shape,
                data(t["datatype"].as_str().expect("datatype"), values),
            )
            .expect("valid tensor")
        })
        .collect();
    let encoding = if spec["raw"].as_bool().unwrap_or(false) {
        Encoding::Raw
    } else {
        Encoding::Typed
    };
    InferMessage {
        id: spec["id"].as_str().unwrap_or("").to_string(),
        parameters: Default::default(),
        tensors,
        encoding,
    }
    .to_request()
    .expect("encodes")
}

fn render_values(data: &TensorData) -> String {
    match data {
        TensorData::Int32(v) => format!("{v:?}"),
        TensorData::Int64(v) => format!("{v:?}"),
        TensorData::Fp32(v) => format!("{v:?}"),
        TensorData::Fp64(v) => format!("{v:?}"),
        TensorData::Bool(v) => format!("{v:?}"),
        TensorData::Bytes(v) => format!(
            "{:?}",
            v.iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect::<Vec<_>>()
        ),
        other => format!("{other:?}"),
    }
}

/// One record as text: key, partition, headers, then its tensors (or error text).
fn render_record(topic: &str, r: &Record) -> String {
    let mut out = format!("  key={} partition={}", r.key, r.partition);
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(n, v)| format!("{n}={}", String::from_utf8_lossy(v)))
        .collect();
    out.push_str(&format!(" headers[{}]\n", headers.join(", ")));
    if r.is_error() {
        out.push_str(&format!("    error: {}\n", String::from_utf8_lossy(&r.value)));
        return out;
    }
    let message = if topic.ends_with(".inputs") {
        ModelInferRequest::decode(r.value.clone())
            .ok()
            .and_then(|m| InferMessage::from_request(&m).ok())
    } else {
        ModelInferResponse::decode(r.value.clone())
            .ok()
            .and_then(|m| InferMessage::from_response(&m).ok())
    };
    match message {
        Some(m) => {
            for t in &m.tensors {
                out.push_str(&format!(
                    "    {} {} {:?} = {}\n",
                    t.name,
                    t.datatype(),
                    t.shape,
                    render_values(&t.data)
                ));
            }
        }
        None => out.push_str(&format!("    <{} bytes, not a message>\n", r.value.len())),
    }
    out
}

fn load_case(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read case")).expect("case JSON")
}

fn run_case(path: &Path) -> String {
    run(path, &load_case(path))
}

fn run(path: &Path, case: &Value) -> String {
    run_as(path, case, Execution::PerHop).0
}

/// The case's output, and how many of its pipelines ran fused.
fn run_as(path: &Path, case: &Value, execution: Execution) -> (String, usize) {
    let mut sources = SourceMap::new();
    for file in case["plan"].as_array().expect("plan files") {
        let file = file.as_str().expect("path");
        sources.add(file, std::fs::read_to_string(root().join(file)).expect("read sample"));
    }
    let options = CompileOptions {
        execution,
        ..CompileOptions::default()
    };
    let compiled = compile(&sources, &options);
    let plan = compiled
        .plan
        .unwrap_or_else(|| panic!("{}: plan does not compile: {:?}", path.display(), compiled.diagnostics));
    let fused = plan
        .pipelines
        .iter()
        .filter(|p| p.execution == Execution::Fused)
        .count();
    let models = models_for(&plan);
    let partitions = case["partitions"].as_i64().unwrap_or(1) as i32;
    #[cfg_attr(not(feature = "rocksdb"), allow(unused_variables))]
    let dir = tempfile::tempdir().expect("tempdir");
    // RocksDB where the case asks for it (the default) and the engine has it; the records a
    // case shows are the same on either store.
    let stores = match case["stores"].as_str().unwrap_or("rocksdb") {
        #[cfg(feature = "rocksdb")]
        "rocksdb" => StoreKind::RocksDb(dir.path().to_path_buf()),
        _ => StoreKind::Memory,
    };
    let mut driver = TestDriver::new(plan, partitions, stores, models).expect("driver");
    let mut log = String::new();
    for action in case["actions"].as_array().expect("actions") {
        if let Some(send) = action.get("send") {
            let repeat = send["repeat"].as_u64().unwrap_or(1);
            for i in 0..repeat {
                let key = send["key"].as_str().expect("key").replace("{i}", &i.to_string());
                let request = request_of(send);
                let pipeline = send["pipeline"].as_str().expect("pipeline");
                if send["no_pipeline_header"].as_bool().unwrap_or(false) {
                    let topic = driver.pipeline_topic(pipeline, "inputs");
                    driver.pipe(&topic, &key, Vec::new(), Bytes::from(request.encode_to_vec()));
                } else {
                    driver.send(pipeline, &key, &request);
                }
            }
        } else if let Some(ms) = action.get("advance_ms") {
            driver.advance(ms.as_i64().expect("ms"));
            log.push_str(&format!("-- advanced {} ms\n", ms));
        } else if action.get("restart").is_some() {
            let applied = driver.restart_stateful_tasks().expect("restart");
            log.push_str(&format!(
                "-- restarted stateful tasks from their changelogs ({applied} records applied)\n"
            ));
        } else if let Some(store) = action.get("store_len") {
            let store = store.as_str().expect("store");
            log.push_str(&format!(
                "-- store {store}: {} entries\n",
                driver.store_len(store).expect("store")
            ));
        } else {
            panic!("unknown action {action}");
        }
    }
    let mut out = log;
    for topic in case["show"].as_array().expect("show") {
        let topic = topic.as_str().expect("topic");
        let records = driver.records(topic);
        out.push_str(&format!("{topic}: {} records\n", records.len()));
        for r in records {
            out.push_str(&render_record(topic, r));
        }
    }
    (out, fused)
}

#[test]
fn cases() {
    let dir = root().join("runtime/engine/tests/cases");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "expected the §9 cases, found {}", paths.len());
    let mut failures = Vec::new();
    for path in paths {
        let actual = run_case(&path);
        failures.extend(flowc_golden::check(&path.with_extension("out"), &actual));
    }
    flowc_golden::assert_none(&failures);
}

/// A case's output with the lineage mark taken out and each topic's records in key order:
/// what a per-hop and a fused run must agree on. (The order across keys may differ: a fused
/// task takes one request through every step before the next, the driver's per-hop tasks take
/// every request through one step first.)
fn normalized(output: &str) -> String {
    let mut out = String::new();
    let mut records: Vec<String> = Vec::new();
    let flush = |records: &mut Vec<String>, out: &mut String| {
        records.sort();
        for r in records.drain(..) {
            out.push_str(&r);
        }
    };
    for line in output.lines() {
        let line = line
            .replace(", x-flowc-lineage=fused", "")
            .replace("x-flowc-lineage=fused", "");
        if line.starts_with("  key=") {
            records.push(format!("{line}\n"));
        } else if line.starts_with("    ") {
            match records.last_mut() {
                Some(r) => r.push_str(&format!("{line}\n")),
                None => out.push_str(&format!("{line}\n")),
            }
        } else {
            flush(&mut records, &mut out);
            out.push_str(&format!("{line}\n"));
        }
    }
    flush(&mut records, &mut out);
    out
}

/// §10: every case gives the same records in fused execution as per-hop, on every topic it
/// shows (the model topics included, where a fused task writes its calls as lineage), and
/// the fused run really was fused (its model topics carry the lineage mark).
#[test]
fn fused_execution_gives_the_same_records() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("cases dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut failures = Vec::new();
    let mut fused_runs = 0;
    for path in paths {
        let case = load_case(&path);
        let (per_hop, _) = run_as(&path, &case, Execution::PerHop);
        let (fused, pipelines_fused) = run_as(&path, &case, Execution::Fused);
        if pipelines_fused > 0 {
            fused_runs += 1;
        }
        if normalized(&per_hop) != normalized(&fused) {
            failures.push(format!(
                "{}: fused differs from per-hop:\n--- per-hop\n{}\n+++ fused\n{}",
                path.display(),
                normalized(&per_hop),
                normalized(&fused)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every case but the two of cycles (which stay per-hop, W119) ran fused.
    assert!(fused_runs >= 15, "only {fused_runs} cases ran fused");
}

fn cases_dir() -> PathBuf {
    root().join("runtime/engine/tests/cases")
}

/// The rendered records of one topic (the part of a case's output after its heading).
fn section(output: &str, topic: &str) -> String {
    let start = output
        .find(&format!("{topic}:"))
        .unwrap_or_else(|| panic!("{topic} not shown:\n{output}"));
    let rest = &output[start..];
    let end = rest[1..].find("\nseldon.").map_or(rest.len(), |i| i + 2);
    rest[..end].to_string()
}

#[test]
fn raw_and_typed_contents_give_the_same_answer() {
    let typed = run_case(&cases_dir().join("join.json"));
    let raw = run_case(&cases_dir().join("join-raw.json"));
    let topic = "seldon.default.pipeline.join.outputs";
    assert!(
        section(&typed, topic).contains("OUTPUT0 INT32 [1, 16] = [2, 4, 6"),
        "{typed}"
    );
    assert_eq!(section(&typed, topic), section(&raw, topic));
}

#[test]
fn a_store_restored_from_its_changelog_gives_the_same_output() {
    for name in ["triggers-restore.json", "batch-restore.json"] {
        let path = cases_dir().join(name);
        let with_restart = load_case(&path);
        let mut without = with_restart.clone();
        let actions = without["actions"].as_array_mut().expect("actions");
        let before = actions.len();
        actions.retain(|a| a.get("restart").is_none());
        assert_eq!(actions.len(), before - 1, "{name} must restart once");
        let restarted = run(&path, &with_restart);
        let uninterrupted = run(&path, &without);
        assert!(restarted.contains("records applied"), "{restarted}");
        for topic in with_restart["show"].as_array().expect("show") {
            let topic = topic.as_str().expect("topic");
            let got = section(&restarted, topic);
            assert!(
                !got.contains(": 0 records"),
                "{name}: nothing reached {topic}, the test proves nothing"
            );
            assert_eq!(got, section(&uninterrupted, topic), "{name}: {topic}");
        }
    }
}

#[test]
fn window_expiry_keeps_join_state_bounded() {
    let out = run_case(&cases_dir().join("join-expiry-bounded.json"));
    assert!(out.contains("-- store joined-inner.join: 200 entries"), "{out}");
    assert!(out.contains("-- store joined-inner.join: 0 entries"), "{out}");
}
