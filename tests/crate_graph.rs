//! The crate graph holds the invariants ARCHITECTURE.md states: the plan is a contract crate
//! with no parser; the runtime reads plans and never links the compiler or a YAML/grammar
//! parser (tests may: they compile YAML into the plans they run). Checked on the resolved
//! graph (`cargo metadata`), normal dependencies only, transitively.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The host's target triple (`rustc -vV`): the graph of the platform the tests run on.
fn host() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .expect("rustc runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_string()
}

/// Package name → the names of its normal (not dev, not build) dependencies, as resolved.
fn normal_graph() -> BTreeMap<String, BTreeSet<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--filter-platform",
            &host(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut graph = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
        let name = names[node["id"].as_str().unwrap()].to_string();
        let deps: BTreeSet<String> = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|k| k["kind"].is_null()))
            })
            .map(|d| names[d["pkg"].as_str().unwrap()].to_string())
            .collect();
        graph.entry(name).or_insert_with(BTreeSet::new).extend(deps);
    }
    graph
}

/// Everything `package` links, itself excluded.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_string()];
    while let Some(p) = todo.pop() {
        for d in graph.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

const PARSERS: &[&str] = &[
    "flowc-compiler",
    "flowc-grammar",
    "pest",
    "saphyr-parser",
    "codespan-reporting",
    "petgraph",
];

#[test]
fn the_plan_is_plain_data_and_the_runtime_never_links_a_parser() {
    let graph = normal_graph();
    let plan = closure(&graph, "flowc-plan");
    for forbidden in PARSERS.iter().chain(&["rdkafka", "tokio", "tonic", "rocksdb"]) {
        assert!(!plan.contains(*forbidden), "flowc-plan links {forbidden}: {plan:?}");
    }
    let runtime = closure(&graph, "flowc-runtime");
    assert!(runtime.contains("flowc-plan"), "{runtime:?}");
    for forbidden in PARSERS {
        assert!(!runtime.contains(*forbidden), "flowc-runtime links {forbidden}");
    }
    // The compiler writes plans; it runs nothing.
    let compiler = closure(&graph, "flowc-compiler");
    for forbidden in ["flowc-runtime", "rdkafka", "tokio", "rocksdb"] {
        assert!(!compiler.contains(forbidden), "flowc-compiler links {forbidden}");
    }
}
