//! Golden files: the compiled plan (text form) of every sample and the rendered diagnostics of
//! every broken fixture, one golden file each. Re-bless after an intended change with
//!
//! ```sh
//! FLOWC_BLESS=1 cargo test --test golden
//! ```
//!
//! and review the diff like code.

use flowc_compiler::diagnostic::{render_json, render_text};
use flowc_compiler::{compile, render, Code, CompileOptions, SourceMap};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
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

/// Compares `actual` with the golden file, or rewrites it when blessing. Returns a mismatch
/// description instead of panicking so one run lists every stale golden file.
fn check_golden(golden: &Path, actual: &str) -> Option<String> {
    if std::env::var_os("FLOWC_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().expect("parent")).expect("mkdir");
        std::fs::write(golden, actual).expect("write golden");
        return None;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_default();
    if expected == actual {
        return None;
    }
    let first_diff = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.lines().count().min(actual.lines().count()));
    Some(format!(
        "{} differs at line {} (run `FLOWC_BLESS=1 cargo test --test golden` to accept):\n--- expected\n{}\n+++ actual\n{}",
        golden.display(),
        first_diff + 1,
        expected.lines().nth(first_diff).unwrap_or("<end of file>"),
        actual.lines().nth(first_diff).unwrap_or("<end of file>"),
    ))
}

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
        let golden = root().join("tests/golden/plans").join(format!("{stem}.txt"));
        failures.extend(check_golden(&golden, &actual));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_broken_fixture_renders_its_golden_diagnostics() {
    let mut failures = Vec::new();
    let mut codes_seen = BTreeSet::new();
    for path in yaml_files("tests/fixtures/invalid") {
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
        let golden = root().join("tests/golden/diagnostics").join(format!("{stem}.txt"));
        failures.extend(check_golden(&golden, &text));
        if stem.starts_with("99-") {
            let json = render_json(&compilation.diagnostics, &sources);
            let golden = root().join("tests/golden/diagnostics").join(format!("{stem}.json"));
            failures.extend(check_golden(&golden, &json));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

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
