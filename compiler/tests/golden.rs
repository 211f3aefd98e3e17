//! The compiler's golden files: the compiled plan (text form) of every sample, per-hop and
//! fused, and the rendered diagnostics of every broken fixture, one golden file each, through
//! the one harness (`flowc-golden`). Re-bless after an intended change with
//!
//! ```sh
//! FLOWC_BLESS=1 cargo test -p flowc-compiler --test golden
//! ```
//!
//! (no RocksDB or librdkafka is built for it) and review the diff like code. Which golden file
//! no test reads is checked by the workspace's `tests/golden.rs`.

// The test reads samples and fixtures; the compiler itself does no I/O (clippy.toml).
#![allow(clippy::disallowed_methods)]

use flowc_compiler::diagnostic::{render_json, render_text};
use flowc_compiler::{compile, render, Code, CompileOptions, SourceMap};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The repository: samples are shared with the runtime's tests and the README.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// This crate's own test data.
fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {dir}");
    files
}

/// Sources with paths relative to the repository, so golden files don't contain `/work/...`.
fn load(path: &Path) -> SourceMap {
    let mut sources = SourceMap::new();
    let rel = path.strip_prefix(root()).unwrap_or(path);
    let text = std::fs::read_to_string(path).expect("read fixture");
    sources.add(rel.to_string_lossy(), text);
    sources
}

use flowc_golden::check as check_golden;

#[test]
fn every_sample_compiles_to_its_golden_plan() {
    let mut failures = Vec::new();
    for path in yaml_files("samples") {
        let sources = load(&path);
        let compilation = compile(&sources, &CompileOptions::default());
        let warnings = render_text(&compilation.diagnostics, &sources, false);
        let Some(plan) = compilation.plan else {
            failures.push(format!("{} does not compile:\n{warnings}", path.display()));
            continue;
        };
        // The JSON form is what the runtime reads: it must round-trip exactly.
        let json = render::json(&plan);
        let back: flowc_compiler::Plan = serde_json::from_str(&json).expect("plan JSON parses");
        assert_eq!(back, plan, "{}: JSON round trip changed the plan", path.display());

        let stem = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let mut actual = render::text(&plan);
        if !warnings.is_empty() {
            actual = format!("{actual}\nWarnings:\n{warnings}");
        }
        let golden = here().join("tests/golden/plans").join(format!("{stem}.txt"));
        failures.extend(check_golden(&golden, &actual));
    }
    flowc_golden::assert_none(&failures);
}

/// §10: every sample compiled with `--execution fused`: the fused sub-topology (or, for a
/// cycle, the W119 warning that it runs per-hop), and the join sample's DOT and Mermaid
/// drawings of it.
#[test]
fn every_sample_compiles_fused_to_its_golden_plan() {
    let mut failures = Vec::new();
    let options = CompileOptions {
        execution: flowc_compiler::plan::Execution::Fused,
        ..CompileOptions::default()
    };
    for path in yaml_files("samples") {
        let sources = load(&path);
        let compilation = compile(&sources, &options);
        let warnings = render_text(&compilation.diagnostics, &sources, false);
        let Some(plan) = compilation.plan else {
            failures.push(format!("{} does not compile fused:\n{warnings}", path.display()));
            continue;
        };
        let json = render::json(&plan);
        let back: flowc_compiler::Plan = serde_json::from_str(&json).expect("plan JSON parses");
        assert_eq!(back, plan, "{}: JSON round trip changed the fused plan", path.display());
        let stem = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let mut actual = render::text(&plan);
        if !warnings.is_empty() {
            actual = format!("{actual}\nWarnings:\n{warnings}");
        }
        let dir = here().join("tests/golden/plans-fused");
        failures.extend(check_golden(&dir.join(format!("{stem}.txt")), &actual));
        if stem == "join" {
            failures.extend(check_golden(&dir.join("join.dot"), &render::dot(&plan)));
            failures.extend(check_golden(&dir.join("join.mmd"), &render::mermaid(&plan)));
        }
    }
    flowc_golden::assert_none(&failures);
}

#[test]
fn every_broken_fixture_renders_its_golden_diagnostics() {
    let mut failures = Vec::new();
    let mut codes_seen = BTreeSet::new();
    for path in yaml_files("compiler/tests/fixtures/invalid") {
        let sources = load(&path);
        let compilation = compile(&sources, &CompileOptions::default());
        if !compilation.has_errors() {
            failures.push(format!("{} compiled without errors", path.display()));
            continue;
        }
        assert!(compilation.plan.is_none(), "a plan despite errors");
        codes_seen.extend(compilation.diagnostics.iter().map(|d| d.code));
        let stem = path.file_stem().expect("stem").to_string_lossy().into_owned();
        let text = render_text(&compilation.diagnostics, &sources, false);
        let golden = here().join("tests/golden/diagnostics").join(format!("{stem}.txt"));
        failures.extend(check_golden(&golden, &text));
        if stem.starts_with("99-") {
            let json = render_json(&compilation.diagnostics, &sources);
            let golden = here().join("tests/golden/diagnostics").join(format!("{stem}.json"));
            failures.extend(check_golden(&golden, &json));
        }
    }
    flowc_golden::assert_none(&failures);

    // Every rule of PIPELINES.md §3 that can be checked without a broker has a fixture.
    let rules = [
        Code::DuplicateStep,
        Code::InvalidName,
        Code::NoSteps,
        Code::StepNamedLikePipeline,
        Code::BadInputRef,
        Code::BadTriggerRef,
        Code::UnknownStep,
        Code::BadOutputRef,
        Code::Cycle,
        Code::TriggerIsInput,
        Code::BadExternalRef,
        Code::EmptyExternalInputs,
        Code::UnusedTensorMapKey,
        Code::UnknownField,
        Code::WrongType,
        Code::BadValue,
        Code::YamlSyntax,
    ];
    let missing: Vec<&str> = rules
        .iter()
        .filter(|c| !codes_seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "no broken fixture exercises {missing:?}");
}
