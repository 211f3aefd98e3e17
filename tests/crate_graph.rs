//! The crate graph holds the invariants ARCHITECTURE.md states, one per crate:
//!
//! - `flowc-plan` is a contract crate: plain data, no parser, no runtime;
//! - `flowc-oip` (without features) and `flowc-engine` do no network and no Kafka: no rdkafka,
//!   tonic, hyper, axum or ureq; the engine has no RocksDB unless asked (`rocksdb`);
//! - `flowc-reference` serves models and knows no Kafka;
//! - the Kafka node (`flowc-runtime`) reads plans and never links the compiler or a YAML or
//!   grammar parser; only the compiler and the binary do (tests may: they compile YAML into
//!   the plans they run);
//! - the compiler runs nothing.
//!
//! Checked with `cargo tree -p <crate> -e normal`: normal dependencies only, transitively, with
//! the features that crate is built with on its own (a workspace build unifies features, so
//! `cargo metadata`'s graph would show the Kafka node's features on the engine's dependencies).

use std::collections::BTreeSet;

/// Every package `package` links (normal dependencies, transitively), itself included.
fn links(package: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-p", package, "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Which packages depend on `package` (normal dependencies, transitively), itself included.
fn dependents(package: &str) -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "-e", "normal", "--prefix", "none", "-i", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

const PARSERS: &[&str] = &[
    "flowc-compiler",
    "flowc-grammar",
    "pest",
    "saphyr-parser",
    "codespan-reporting",
    "petgraph",
];

const NETWORK: &[&str] = &["rdkafka", "tonic", "hyper", "axum", "ureq"];

fn assert_links_none(package: &str, forbidden: &[&str]) {
    let linked = links(package);
    assert!(
        linked.contains(package),
        "cargo tree lists {package} itself: {linked:?}"
    );
    for f in forbidden {
        assert!(!linked.contains(*f), "{package} links {f}: {linked:?}");
    }
}

#[test]
fn the_plan_is_plain_data() {
    assert_links_none(
        "flowc-plan",
        &[PARSERS, NETWORK, &["tokio", "rocksdb", "prost"]].concat(),
    );
}

#[test]
fn the_engine_and_the_protocol_do_no_network_and_no_kafka() {
    assert_links_none("flowc-engine", &[PARSERS, NETWORK, &["tokio", "rocksdb"]].concat());
    assert_links_none("flowc-oip", &[PARSERS, NETWORK, &["tokio", "rocksdb"]].concat());
    let engine = links("flowc-engine");
    for needed in ["flowc-plan", "flowc-oip", "prost"] {
        assert!(engine.contains(needed), "flowc-engine links no {needed}: {engine:?}");
    }
}

#[test]
fn the_reference_server_knows_no_kafka() {
    assert_links_none(
        "flowc-reference",
        &[PARSERS, &["rdkafka", "rocksdb", "flowc-engine"]].concat(),
    );
}

#[test]
fn the_kafka_node_reads_plans_and_never_links_a_parser() {
    let runtime = links("flowc-runtime");
    for needed in ["flowc-plan", "flowc-engine", "flowc-oip"] {
        assert!(runtime.contains(needed), "flowc-runtime links no {needed}");
    }
    for forbidden in PARSERS {
        assert!(!runtime.contains(*forbidden), "flowc-runtime links {forbidden}");
    }
    // Only the compiler and the binary read YAML.
    let readers: BTreeSet<String> = dependents("saphyr-parser");
    let expected: BTreeSet<String> = ["saphyr-parser", "flowc-compiler", "flowc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(readers, expected);
}

#[test]
fn the_compiler_runs_nothing() {
    assert_links_none(
        "flowc-compiler",
        &[NETWORK, &["flowc-runtime", "flowc-engine", "tokio", "rocksdb"]].concat(),
    );
}
