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
        let dir = root().join("tests/golden/plans-fused");
        failures.extend(check_golden(&dir.join(format!("{stem}.txt")), &actual));
        if stem == "join" {
            failures.extend(check_golden(&dir.join("join.dot"), &render::dot(&plan)));
            failures.extend(check_golden(&dir.join("join.mmd"), &render::mermaid(&plan)));
        }
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

/// Every golden file has what produces it: a golden that no test reads would pass forever
/// while the thing it once pinned changes. Plans and fused plans come from `samples/<stem>.yaml`
/// (the join's DOT and Mermaid too), diagnostics from `tests/fixtures/invalid/<stem>.yaml`,
/// driver outputs from `runtime/tests/cases/<stem>.json`, and the inspect lineage is read by
/// tests/kafka_inspect.rs.
#[test]
fn every_golden_file_is_read_by_a_test() {
    let stem_of = |p: &Path| p.file_stem().expect("stem").to_string_lossy().into_owned();
    let files = |dir: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.expect("dir entry").path())
            .collect();
        v.sort();
        v
    };
    let mut orphans = Vec::new();
    for (golden, source) in [
        ("tests/golden/plans", "samples"),
        ("tests/golden/plans-fused", "samples"),
        ("tests/golden/diagnostics", "tests/fixtures/invalid"),
    ] {
        for path in files(golden) {
            let source = root().join(source).join(format!("{}.yaml", stem_of(&path)));
            if !source.exists() {
                orphans.push(format!("{} (no {})", path.display(), source.display()));
            }
        }
    }
    for path in files("runtime/tests/cases") {
        if path.extension().is_some_and(|e| e == "out") && !path.with_extension("json").exists() {
            orphans.push(format!(
                "{} (no case {})",
                path.display(),
                path.with_extension("json").display()
            ));
        }
    }
    for path in files("tests/golden/inspect") {
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        let reader = std::fs::read_to_string(root().join("tests/kafka_inspect.rs")).expect("kafka_inspect.rs");
        if !reader.contains(&format!("tests/golden/inspect/{name}")) {
            orphans.push(format!("{} (not read by tests/kafka_inspect.rs)", path.display()));
        }
    }
    assert!(
        orphans.is_empty(),
        "golden files that no test reads:\n{}",
        orphans.join("\n")
    );
}
