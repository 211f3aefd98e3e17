//! Arbitrary bytes as a set of YAML files → the compiler (`flowc_compiler::compile`, as `flowc
//! compile` calls it), then every renderer of diagnostics and of the plan. Nothing may panic;
//! diagnostics are the expected outcome for most inputs.
#![no_main]

use flowc_compiler::{diagnostic, render, CompileOptions, SourceMap};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Files are read with `read_to_string`: only UTF-8 reaches the compiler.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = SourceMap::new();
    for (i, file) in flowc_fuzz::split_files(text).enumerate() {
        sources.add(format!("f{i}.yaml"), file);
    }
    let compilation = flowc_compiler::compile(&sources, &CompileOptions::default());
    let _ = diagnostic::render_text(&compilation.diagnostics, &sources, false);
    let _ = diagnostic::render_json(&compilation.diagnostics, &sources);
    match &compilation.plan {
        Some(plan) => {
            assert!(!compilation.has_errors(), "a plan despite errors");
            let json = render::json(plan);
            let _: serde_json::Value = serde_json::from_str(&json).expect("the JSON plan is JSON");
            let _ = render::text(plan);
            let _ = render::dot(plan);
            let _ = render::mermaid(plan);
        }
        None => assert!(compilation.has_errors(), "no plan and no error"),
    }
});
