//! The `flowc` binary as a user runs it: exit codes, where output goes, every format.

use std::process::Command;

fn flowc(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run flowc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_typo_is_reported_with_line_column_and_suggestion_and_exit_1() {
    let (code, stdout, stderr) = flowc(&[
        "compile",
        "compiler/tests/fixtures/invalid/00-step-input-typo.yaml",
        "--color",
        "never",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "no plan on errors: {stdout}");
    assert!(
        stderr.contains("error[E002]: unknown field `input` in a step"),
        "{stderr}"
    );
    assert!(stderr.contains("00-step-input-typo.yaml:22:7"), "{stderr}");
    assert!(stderr.contains("did you mean `inputs`?"), "{stderr}");
}

#[test]
fn json_diagnostics_are_data() {
    let (code, stdout, _) = flowc(&[
        "compile",
        "compiler/tests/fixtures/invalid/99-many-errors.yaml",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let diags = doc["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(doc["errors"].as_u64(), Some(diags.len() as u64));
    assert!(diags.len() >= 10, "{stdout}");
    for d in diags {
        assert!(d["code"].as_str().is_some_and(|c| c.starts_with('E')));
        assert!(d["line"].as_u64().is_some_and(|l| l > 0));
        assert!(d["column"].as_u64().is_some_and(|c| c > 0));
        assert!(d["file"].as_str().is_some_and(|f| f.ends_with("99-many-errors.yaml")));
    }
}

#[test]
fn every_format_prints_a_plan() {
    let (code, text, _) = flowc(&["compile", "samples/join.yaml"]);
    assert_eq!(code, 0);
    assert!(text.starts_with("Pipeline: join"), "{text}");
    assert!(text.contains("Sub-topology: 2 [tfsimple3]"), "{text}");

    let (code, json, _) = flowc(&["compile", "samples/join.yaml", "--format", "json"]);
    assert_eq!(code, 0);
    let plan: serde_json::Value = serde_json::from_str(&json).expect("plan JSON");
    assert_eq!(plan["pipelines"][0]["name"], "join");

    let (code, dot, _) = flowc(&["compile", "samples/join.yaml", "--format", "dot"]);
    assert_eq!(code, 0);
    assert!(dot.starts_with("digraph flowc {") && dot.contains("subgraph cluster_") && dot.contains("shape=cylinder"));

    let (code, mermaid, _) = flowc(&["compile", "samples/join.yaml", "--format", "mermaid"]);
    assert_eq!(code, 0);
    assert!(mermaid.starts_with("flowchart LR") && mermaid.contains("subgraph") && mermaid.contains("[("));
}

#[test]
fn prefix_changes_topic_names() {
    let (code, text, _) = flowc(&["compile", "samples/chain.yaml", "--prefix", "acme"]);
    assert_eq!(code, 0);
    assert!(text.contains("acme.default.model.tfsimple1.inputs"));
    assert!(!text.contains("seldon."));
}

#[test]
fn an_unreadable_file_is_exit_2_naming_the_file() {
    let (code, _, stderr) = flowc(&["compile", "no/such/file.yaml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read no/such/file.yaml"), "{stderr}");
}

#[test]
fn warnings_do_not_fail_compilation() {
    // A pipeline whose models are in another file: warnings on stderr, the plan on stdout.
    let dir = tempdir();
    let path = dir.join("p.yaml");
    std::fs::write(
        &path,
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  steps: [{name: m}]\n",
    )
    .expect("write");
    let (code, stdout, stderr) = flowc(&["compile", path.to_str().expect("utf-8"), "--color", "never"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning[W203]"), "{stderr}");
    assert!(stdout.starts_with("Pipeline: p"));
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flowc-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}
