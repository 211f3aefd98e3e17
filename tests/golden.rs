//! Every golden file has what produces it: a golden that no test reads would pass forever while
//! the thing it once pinned changes. The golden files of every kind go through one harness
//! (`tests/harness`, crate `flowc-golden`), and `FLOWC_BLESS=1 cargo test` re-blesses them all:
//!
//! - the compiler's plans, fused plans and diagnostics (`compiler/tests/golden/`), from
//!   `samples/<stem>.yaml` (the join's DOT and Mermaid too) and
//!   `compiler/tests/fixtures/invalid/<stem>.yaml`;
//! - the engine's driver outputs, `runtime/engine/tests/cases/<stem>.out` beside `<stem>.json`;
//! - the inspect lineage, `tests/golden/inspect/`, read by `tests/kafka_inspect.rs`.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .collect();
    v.sort();
    v
}

#[test]
fn every_golden_file_is_read_by_a_test() {
    let stem_of = |p: &Path| p.file_stem().expect("stem").to_string_lossy().into_owned();
    let mut orphans = Vec::new();
    let mut seen = 0;
    for (golden, source) in [
        ("compiler/tests/golden/plans", "samples"),
        ("compiler/tests/golden/plans-fused", "samples"),
        ("compiler/tests/golden/diagnostics", "compiler/tests/fixtures/invalid"),
    ] {
        for path in files(golden) {
            seen += 1;
            let source = root().join(source).join(format!("{}.yaml", stem_of(&path)));
            if !source.exists() {
                orphans.push(format!("{} (no {})", path.display(), source.display()));
            }
        }
    }
    for path in files("runtime/engine/tests/cases") {
        if path.extension().is_some_and(|e| e == "out") {
            seen += 1;
            if !path.with_extension("json").exists() {
                orphans.push(format!(
                    "{} (no case {})",
                    path.display(),
                    path.with_extension("json").display()
                ));
            }
        }
    }
    let reader = std::fs::read_to_string(root().join("tests/kafka_inspect.rs")).expect("kafka_inspect.rs");
    for path in files("tests/golden/inspect") {
        seen += 1;
        let name = path.file_name().expect("name").to_string_lossy().into_owned();
        if !reader.contains(&format!("tests/golden/inspect/{name}")) {
            orphans.push(format!("{} (not read by tests/kafka_inspect.rs)", path.display()));
        }
    }
    assert!(seen > 50, "expected every golden file, found {seen}");
    assert!(
        orphans.is_empty(),
        "golden files that no test reads:\n{}",
        orphans.join("\n")
    );
}
