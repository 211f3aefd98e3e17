//! Rule 11 (co-partitioning), checked on a compiled plan against partition counts a broker
//! would report.

use flowc_compiler::{compile_str, CompileOptions};

const JOIN: &str = r#"
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: p}
spec:
  steps:
    - name: a
    - name: b
    - name: c
      inputs: [a, b]
  output: {steps: [c]}
"#;

#[test]
fn copartitioning_is_checked_against_existing_topics() {
    let (_, c) = compile_str("p.yaml", JOIN, &CompileOptions::default());
    let plan = c.plan.expect("compiles");
    let p = &plan.pipelines[0];
    assert_eq!(p.copartition_groups.len(), 1);
    let group = &p.copartition_groups[0];
    assert!(group.contains(&"seldon.default.model.a.outputs".to_string()));
    assert!(group.contains(&"seldon.default.model.b.outputs".to_string()));
    assert!(group.contains(&"seldon.default.pipeline.p.c.join-changelog".to_string()));

    // Same counts, or topics still to be created: fine.
    assert!(p.check_copartitioning(|_| Some(4)).is_empty());
    assert!(p
        .check_copartitioning(|t| t.ends_with("a.outputs").then_some(4))
        .is_empty());
    // Different counts: one error naming both topics and their counts.
    let errs = p.check_copartitioning(|t| match t {
        "seldon.default.model.a.outputs" => Some(4),
        "seldon.default.model.b.outputs" => Some(3),
        _ => None,
    });
    assert_eq!(errs.len(), 1);
    let msg = errs[0].to_string();
    assert!(msg.starts_with("error[E117]"), "{msg}");
    assert_eq!(flowc_compiler::Code::PartitionMismatch.to_string(), "E117");
    assert!(
        msg.contains("seldon.default.model.a.outputs (4)") && msg.contains("seldon.default.model.b.outputs (3)"),
        "{msg}"
    );
}
