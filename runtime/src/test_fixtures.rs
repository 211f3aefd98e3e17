//! What the library's unit tests share: a small joining pipeline and its compiled plan (the
//! compiler is a dev-dependency only: the library itself never reads YAML).

use flowc_plan::Plan;

/// Pipeline `p`: steps `a` and `b`, and `j` joining their outputs; their three Models.
pub const JOIN: &str = r#"
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata: {name: a}
spec: {storageUri: "flowc://add10"}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata: {name: b}
spec: {storageUri: "flowc://mul10"}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: p}
spec:
  steps:
    - name: a
    - name: b
    - name: j
      inputs: [a, b]
  output: {steps: [j]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata: {name: j}
spec: {storageUri: "flowc://add10"}
"#;

/// [`JOIN`] with `j`'s join window set.
pub fn join_with_window(ms: u64) -> String {
    JOIN.replace("inputs: [a, b]", &format!("inputs: [a, b]\n      joinWindowMs: {ms}"))
}

/// `yaml` compiled with the default options; panics on a diagnostic error.
pub fn compiled(yaml: &str) -> Plan {
    let mut sources = flowc_compiler::SourceMap::new();
    sources.add("test.yaml", yaml.to_string());
    flowc_compiler::compile(&sources, &flowc_compiler::CompileOptions::default())
        .plan
        .expect("the test YAML compiles")
}
