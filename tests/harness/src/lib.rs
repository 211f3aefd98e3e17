//! The one golden-file harness of flowc's tests (the compiler's plans and diagnostics, the
//! engine's driver cases, `inspect`'s lineage): a test renders what it got and hands it here
//! with the golden file's path. `FLOWC_BLESS=1 cargo test` rewrites every golden file a test
//! reads; otherwise a mismatch is reported with the first differing line. A golden file no test
//! reads is an error of its own (`tests/golden.rs`, `every_golden_file_is_read_by_a_test`).
//!
//! Mismatches are returned rather than panicked on, so one run lists every stale file.

use std::path::Path;

/// Whether this run re-blesses golden files (`FLOWC_BLESS` is set).
pub fn blessing() -> bool {
    std::env::var_os("FLOWC_BLESS").is_some()
}

/// Compares `actual` with the golden file at `golden`, or rewrites it when blessing. `None`
/// when they agree (or it was blessed); otherwise what differs, first line first.
pub fn check(golden: &Path, actual: &str) -> Option<String> {
    if blessing() {
        if let Some(dir) = golden.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(golden, actual).unwrap_or_else(|e| panic!("cannot bless {}: {e}", golden.display()));
        return None;
    }
    let expected = match std::fs::read_to_string(golden) {
        Ok(text) => text,
        Err(e) => {
            return Some(format!(
                "{}: {e} (run the test with FLOWC_BLESS=1 to create it)",
                golden.display()
            ))
        }
    };
    if expected == actual {
        return None;
    }
    let first_diff = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or(expected.lines().count().min(actual.lines().count()));
    Some(format!(
        "{} differs at line {} (run the test with FLOWC_BLESS=1 to accept, then review the diff):\n--- expected\n{}\n+++ actual\n{}",
        golden.display(),
        first_diff + 1,
        expected.lines().nth(first_diff).unwrap_or("<end of file>"),
        actual.lines().nth(first_diff).unwrap_or("<end of file>"),
    ))
}

/// Panics listing every mismatch, if any.
pub fn assert_none(mismatches: &[String]) {
    assert!(
        mismatches.is_empty(),
        "{} golden file(s) differ:\n\n{}",
        mismatches.len(),
        mismatches.join("\n\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_the_file_and_the_first_differing_line() {
        let dir = std::env::temp_dir().join(format!("flowc-golden-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let golden = dir.join("g.txt");
        std::fs::write(&golden, "a\nb\nc\n").unwrap();
        if blessing() {
            return;
        }
        assert_eq!(check(&golden, "a\nb\nc\n"), None);
        let m = check(&golden, "a\nX\nc\n").expect("a mismatch");
        assert!(m.contains("g.txt differs at line 2"), "{m}");
        assert!(m.contains("--- expected\nb\n+++ actual\nX"), "{m}");
        let missing = check(&dir.join("none.txt"), "x").expect("a missing file");
        assert!(missing.contains("none.txt"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
