//! Writes the seed corpora under `fuzz/corpus/<target>/` (files named `seed-*`; regression
//! inputs of fixed crashes are kept beside them as `regression-*` and never touched):
//!
//! - `compile_yaml`: every YAML file of `samples/`, `tests/e2e/` and `compiler/tests/fixtures/`, and a
//!   two-file input (models in one file, the pipeline in another).
//! - `oip_json`: the requests of `samples/requests/`, the requests written in the samples'
//!   comments, every datatype, and binary tensor data extension bodies (as tritonclient sends).
//! - `record_tensor`: protobuf requests and responses encoded from those requests, typed and
//!   raw, every datatype (FP16 raw, BYTES raw), with parameters; in pairs for batching.
//! - `reference_grammar`: every reference of the samples (steps' `inputs`, `triggers`,
//!   `output.steps`, `externalInputs`, `externalTriggers`, and `tensorMap` keys and values).
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/Cargo.toml --example make_corpus`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use flowc_compiler::diagnostic::Diagnostics;
use flowc_compiler::yaml::{parse_documents, Node, NodeKind};
use flowc_compiler::SourceMap;
use flowc_fuzz::{join_oip, join_record};
use flowc_runtime::json::request_from_json;
use flowc_runtime::proto::inference::infer_parameter::ParameterChoice;
use flowc_runtime::proto::inference::InferParameter;
use flowc_runtime::tensor::{request_to_response, Encoding, InferMessage, Tensor, TensorData};
use prost::Message;
use serde_json::{json, Value};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ has a parent")
        .to_path_buf()
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

struct Corpus {
    dir: PathBuf,
    total: usize,
}

impl Corpus {
    fn new(target: &str) -> Corpus {
        let dir = repo().join("fuzz/corpus").join(target);
        fs::create_dir_all(&dir).expect("create corpus dir");
        for old in fs::read_dir(&dir).expect("read corpus dir") {
            let old = old.expect("dir entry").path();
            if old
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                fs::remove_file(old).expect("remove old seed");
            }
        }
        Corpus { dir, total: 0 }
    }

    fn add(&mut self, name: &str, bytes: &[u8]) {
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        fs::write(self.dir.join(format!("seed-{name}")), bytes).expect("write seed");
        self.total += bytes.len();
    }

    fn done(self) {
        let n = fs::read_dir(&self.dir).expect("read corpus dir").count();
        println!("{}: {n} files, {} bytes of seeds", self.dir.display(), self.total);
        assert!(self.total < 100_000, "seeds of {} exceed 100 KB", self.dir.display());
    }
}

fn stem(p: &Path) -> String {
    p.file_stem().expect("file name").to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------

fn yaml_files() -> Vec<PathBuf> {
    let root = repo();
    let mut all = files(&root.join("samples"), "yaml");
    all.extend(files(&root.join("tests/e2e"), "yaml"));
    all.extend(files(&root.join("compiler/tests/fixtures/invalid"), "yaml"));
    all
}

fn compile_yaml() {
    let mut c = Corpus::new("compile_yaml");
    let root = repo();
    for p in yaml_files() {
        let dir = p
            .parent()
            .and_then(Path::file_name)
            .expect("dir")
            .to_string_lossy()
            .into_owned();
        c.add(&format!("{dir}-{}.yaml", stem(&p)), &fs::read(&p).expect("read yaml"));
    }
    // Two files compiled together: the models of join.yaml, then its pipeline.
    let join = fs::read_to_string(root.join("samples/join.yaml")).expect("read join.yaml");
    let docs: Vec<&str> = join.split("\n---\n").collect();
    let (models, pipeline) = docs.split_at(docs.len() - 1);
    c.add(
        "two-files.yaml",
        format!("{}\0{}", models.join("\n---\n"), pipeline[0]).as_bytes(),
    );
    c.done();
}

// ---------------------------------------------------------------------------------------------

/// The JSON requests of the samples: `samples/requests/*.json` and those in the YAML comments
/// (`#   {"inputs": …}` blocks).
fn sample_requests() -> Vec<(String, Value)> {
    let root = repo();
    let mut out = Vec::new();
    for p in files(&root.join("samples/requests"), "json") {
        let v: Value = serde_json::from_slice(&fs::read(&p).expect("read")).expect("sample request is JSON");
        out.push((stem(&p), v));
    }
    for p in yaml_files() {
        let text = fs::read_to_string(&p).expect("read yaml");
        let mut block = String::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix('#') else { continue };
            let rest = rest.trim();
            if block.is_empty() && !rest.starts_with("{\"inputs\"") {
                continue;
            }
            block.push_str(rest);
            if let Ok(v) = serde_json::from_str::<Value>(&block) {
                out.push((format!("comment-{}", stem(&p)), v));
                block.clear();
            } else if block.len() > 4000 {
                block.clear();
            }
        }
    }
    out
}

fn t(name: &str, shape: Vec<i64>, data: TensorData) -> Tensor {
    Tensor::new(name, shape, data).expect("seed tensor")
}

fn param(choice: ParameterChoice) -> InferParameter {
    InferParameter {
        parameter_choice: Some(choice),
    }
}

/// One tensor of every datatype.
fn every_datatype() -> Vec<Tensor> {
    let mut bytes = t(
        "s",
        vec![2],
        TensorData::Bytes(vec![Bytes::from_static(b"hello"), Bytes::from_static(b"")]),
    );
    bytes
        .parameters
        .insert("content_type".into(), param(ParameterChoice::StringParam("str".into())));
    vec![
        t("b", vec![3], TensorData::Bool(vec![true, false, true])),
        t("u8", vec![1, 3], TensorData::Uint8(vec![0, 7, 255])),
        t("u16", vec![2], TensorData::Uint16(vec![0, u16::MAX])),
        t("u32", vec![2], TensorData::Uint32(vec![1, u32::MAX])),
        t("u64", vec![2], TensorData::Uint64(vec![1, u64::MAX])),
        t("i8", vec![2], TensorData::Int8(vec![i8::MIN, i8::MAX])),
        t("i16", vec![2], TensorData::Int16(vec![i16::MIN, i16::MAX])),
        t("i32", vec![2, 1], TensorData::Int32(vec![-1, 7])),
        t("i64", vec![1], TensorData::Int64(vec![i64::MIN])),
        t("f32", vec![2], TensorData::Fp32(vec![0.25, -4.0])),
        t("f64", vec![1, 1], TensorData::Fp64(vec![1e-300])),
        bytes,
    ]
}

fn fp16() -> Tensor {
    t("h", vec![3], TensorData::Fp16(vec![0x3c00, 0xc000, 0x7bff]))
}

fn message(id: &str, tensors: Vec<Tensor>, encoding: Encoding) -> InferMessage {
    let mut parameters = flowc_runtime::tensor::Parameters::new();
    parameters.insert("p".into(), param(ParameterChoice::Int64Param(1)));
    InferMessage {
        id: id.to_string(),
        parameters,
        tensors,
        encoding,
    }
}

fn oip_json() {
    let mut c = Corpus::new("oip_json");
    for (name, v) in sample_requests() {
        c.add(
            &format!("{name}.json"),
            &join_oip(&serde_json::to_vec(&v).expect("json"), None),
        );
    }
    let typed = message("all", every_datatype(), Encoding::Typed);
    let request = typed.to_request().expect("encodes");
    let json = flowc_runtime::json::request_to_json(&request).expect("to json");
    c.add("every-datatype.json", &join_oip(json.to_string().as_bytes(), None));
    let with_fp16 = json!({"id": "h", "inputs": [
        {"name": "h", "datatype": "FP16", "shape": [2, 1], "data": [[1.5], [-2.0]]},
        {"name": "n", "datatype": "INT32", "shape": [], "data": 3}],
        "outputs": [{"name": "h", "parameters": {"binary_data": true}}]});
    c.add("fp16-nested.json", &join_oip(with_fp16.to_string().as_bytes(), None));

    // Binary tensor data extension, as tritonclient sends it: raw contents after the JSON.
    let mut binary = Vec::new();
    let mut inputs = Vec::new();
    for t in typed.tensors.iter().chain([&fp16()]) {
        let raw = t.to_raw().expect("raw");
        inputs.push(
            json!({"name": t.name, "datatype": t.datatype().as_str(), "shape": t.shape,
            "parameters": {"binary_data_size": raw.len()}}),
        );
        binary.extend_from_slice(&raw);
    }
    let header = json!({"id": "bin", "inputs": inputs, "parameters": {"binary_data_output": true}});
    c.add(
        "binary-every-datatype",
        &join_oip(header.to_string().as_bytes(), Some(&binary)),
    );
    let header = json!({"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 2], "parameters": {"binary_data_size": 8}},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 2], "data": [[3, 4]]}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}, {"name": "OUTPUT1"}]});
    let raw: Vec<u8> = [1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
    c.add("binary-mixed", &join_oip(header.to_string().as_bytes(), Some(&raw)));
    c.done();
}

// ---------------------------------------------------------------------------------------------

fn record_tensor() {
    let mut c = Corpus::new("record_tensor");
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for (name, v) in sample_requests().into_iter().take(6) {
        let Ok(request) = request_from_json(&v) else { continue };
        let typed = InferMessage::from_request(&request).expect("decodes");
        let raw = InferMessage {
            encoding: Encoding::Raw,
            ..typed.clone()
        };
        records.push((format!("{name}-request-typed"), request.encode_to_vec()));
        let raw_request = raw.to_request().expect("raw");
        records.push((format!("{name}-request-raw"), raw_request.encode_to_vec()));
        records.push((
            format!("{name}-response-raw"),
            request_to_response(raw_request).encode_to_vec(),
        ));
    }
    for encoding in [Encoding::Typed, Encoding::Raw] {
        let m = message("all", every_datatype(), encoding);
        let tag = format!("{encoding:?}").to_lowercase();
        records.push((
            format!("every-datatype-request-{tag}"),
            m.to_request().expect("request").encode_to_vec(),
        ));
        let mut response = m.to_response().expect("response");
        response.model_name = "m".into();
        response.model_version = "1".into();
        records.push((format!("every-datatype-response-{tag}"), response.encode_to_vec()));
    }
    let h = message(
        "h",
        vec![fp16(), t("x", vec![3, 0], TensorData::Int32(vec![]))],
        Encoding::Raw,
    );
    records.push(("fp16-request".into(), h.to_request().expect("request").encode_to_vec()));
    for (name, r) in &records {
        c.add(name, &join_record(r, &[]));
    }
    // Pairs for batching: a message and a second one with the same tensors, or different ones.
    let pairs = [
        (0, 1),
        (1, 2),
        (records.len() - 3, records.len() - 1),
        (0, records.len() - 1),
    ];
    for (i, j) in pairs {
        let (a, b) = (&records[i], &records[j]);
        c.add(&format!("pair-{}-{}", a.0, b.0), &join_record(&a.1, &b.1));
    }
    c.done();
}

// ---------------------------------------------------------------------------------------------

fn references(node: &Node, key: Option<&str>, out: &mut BTreeSet<String>) {
    const REFS: [&str; 5] = ["inputs", "triggers", "steps", "externalInputs", "externalTriggers"];
    match &node.kind {
        NodeKind::Scalar(s) if key.is_some_and(|k| REFS.contains(&k)) => {
            out.insert(s.value.clone());
        }
        NodeKind::Scalar(_) => {}
        NodeKind::Seq(items) => items.iter().for_each(|i| references(i, key, out)),
        NodeKind::Map(entries) => {
            for (k, v) in entries {
                let Some(k) = k.as_scalar() else { continue };
                if k.value == "tensorMap" {
                    if let NodeKind::Map(m) = &v.kind {
                        for (k, v) in m {
                            out.extend(k.as_scalar().map(|s| s.value.clone()));
                            out.extend(v.as_scalar().map(|s| s.value.clone()));
                        }
                    }
                } else {
                    references(v, Some(&k.value), out);
                }
            }
        }
    }
}

fn reference_grammar() {
    let mut c = Corpus::new("reference_grammar");
    let mut refs = BTreeSet::new();
    let mut sources = SourceMap::new();
    for p in yaml_files()
        .into_iter()
        .filter(|p| !p.starts_with(repo().join("compiler/tests/fixtures")))
    {
        sources.add(p.display().to_string(), fs::read_to_string(&p).expect("read"));
    }
    for (id, file) in sources.files() {
        let mut diags = Diagnostics::default();
        for doc in parse_documents(id, file, &mut diags) {
            references(&doc.root, None, &mut refs);
        }
    }
    // The forms of §2 that the samples may not have.
    for extra in [
        "a.step.b.outputs.t",
        "q.step.s",
        "p.inputs.x",
        ".a",
        "a..b",
        "a.outputsX",
        "ä.inputs.é",
    ] {
        refs.insert(extra.to_string());
    }
    for (i, r) in refs.iter().enumerate() {
        c.add(&format!("{i:03}"), r.as_bytes());
    }
    c.done();
}

fn main() {
    compile_yaml();
    oip_json();
    record_tensor();
    reference_grammar();
}
