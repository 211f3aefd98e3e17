//! Property tests: whatever the input, the compiler never panics, every diagnostic points
//! inside its file on character boundaries, and compiling twice gives the same plan.
//! (That it does no I/O is enforced statically by `compiler/clippy.toml`.)

use flowc_compiler::{compile, render, CompileOptions, SourceMap};
use proptest::prelude::*;

fn check(text: &str) -> Option<flowc_compiler::Plan> {
    let mut sources = SourceMap::new();
    sources.add("p.yaml", text);
    let c = compile(&sources, &CompileOptions::default());
    for d in &c.diagnostics {
        let loc = d.location;
        assert!(loc.start <= loc.end && loc.end <= text.len(), "{d:?} out of bounds");
        assert!(
            text.is_char_boundary(loc.start) && text.is_char_boundary(loc.end),
            "{d:?} splits a char"
        );
        assert!(!d.message.is_empty());
        for (r, _) in &d.related {
            assert!(r.end <= text.len() && text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
        }
    }
    // Rendering never panics either.
    let _ = flowc_compiler::diagnostic::render_text(&c.diagnostics, &sources, false);
    let _ = flowc_compiler::diagnostic::render_json(&c.diagnostics, &sources);
    assert_eq!(c.plan.is_some(), !c.has_errors());
    if let Some(plan) = &c.plan {
        let again = compile(&sources, &CompileOptions::default())
            .plan
            .expect("compiles again");
        assert_eq!(&again, plan, "compilation is not deterministic");
        let json = render::json(plan);
        let back: flowc_compiler::Plan = serde_json::from_str(&json).expect("plan JSON parses");
        assert_eq!(&back, plan);
        let _ = (render::text(plan), render::dot(plan), render::mermaid(plan));
    }
    c.plan
}

/// YAML double-quoted string.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

const VALID_NAMES: &[&str] = &["a", "b", "c", "d", "e", "f"];
const BAD_NAMES: &[&str] = &["Bad_Name", "", "x.y", "é", "p", "a"];
const GOOD_SIDES: &[&str] = &["", ".outputs", ".inputs", ".outputs.T"];
const BAD_SIDES: &[&str] = &[".output", ".outputs.T.x", ".", ".outputsX"];

fn side() -> impl Strategy<Value = &'static str> {
    prop_oneof![19 => prop::sample::select(GOOD_SIDES), 1 => prop::sample::select(BAD_SIDES)]
}

fn join() -> impl Strategy<Value = &'static str> {
    prop_oneof![19 => prop::sample::select(&["inner", "outer", "any"][..]), 1 => Just("left")]
}

/// A reference as (which step, side); the step index is resolved against the pipeline when
/// the YAML is written: mostly an earlier step or the pipeline itself (acyclic), sometimes any
/// step (cycles, self loops) or an unknown name.
#[derive(Debug, Clone)]
struct GenRef {
    step: usize,
    forward: bool,
    unknown: bool,
    side: &'static str,
}

fn reference() -> impl Strategy<Value = GenRef> {
    (
        any::<usize>(),
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.03),
        side(),
    )
        .prop_map(|(step, forward, unknown, side)| GenRef {
            step,
            forward,
            unknown,
            side,
        })
}

#[derive(Debug, Clone)]
struct GenStep {
    bad_name: Option<&'static str>,
    inputs: Vec<GenRef>,
    triggers: Vec<GenRef>,
    join: &'static str,
    map: bool,
    batch: Option<(u64, u64)>,
    typo: bool,
}

fn step() -> impl Strategy<Value = GenStep> {
    (
        prop::option::weighted(0.03, prop::sample::select(BAD_NAMES)),
        prop::collection::vec(reference(), 0..3),
        prop::collection::vec(reference(), 0..2),
        join(),
        prop::bool::weighted(0.2),
        prop::option::weighted(0.2, (0u64..30, 0u64..1000)),
        prop::bool::weighted(0.02),
    )
        .prop_map(|(bad_name, inputs, triggers, join, map, batch, typo)| GenStep {
            bad_name,
            inputs,
            triggers,
            join,
            map,
            batch,
            typo,
        })
}

/// The text of a reference from step `at` (None: the output) of a pipeline named `p` with `names`.
fn ref_text(r: &GenRef, at: Option<usize>, p: &str, names: &[String]) -> String {
    if r.unknown {
        return format!("zz{}", r.side);
    }
    let limit = at.unwrap_or(names.len());
    let choices = if r.forward || limit == 0 {
        names.len() + 1
    } else {
        limit + 1
    };
    let i = r.step % choices.max(1);
    let name = if i >= names.len() || (at.is_some() && i == limit && !r.forward) {
        if at.is_none() && !names.is_empty() {
            names[names.len() - 1].as_str()
        } else {
            p
        }
    } else {
        names[i].as_str()
    };
    format!("{name}{}", r.side)
}

fn pipeline_yaml() -> impl Strategy<Value = String> {
    (
        prop::option::weighted(0.03, prop::sample::select(BAD_NAMES)),
        prop::collection::vec(step(), 0..7),
        prop::option::weighted(0.9, (prop::collection::vec(reference(), 0..3), join())),
        prop::option::weighted(0.1, prop::collection::vec(reference(), 0..3)),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.1, 0u32..5),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(bad_pname, steps, output, input, cycles, revisits, with_models)| {
            let p = bad_pname.unwrap_or("p");
            let names: Vec<String> = steps
                .iter()
                .enumerate()
                .map(|(i, s)| s.bad_name.map_or_else(|| format!("{}{i}", VALID_NAMES[i % VALID_NAMES.len()]), str::to_string))
                .collect();
            let mut y = String::new();
            if with_models {
                for n in &names {
                    y.push_str(&format!(
                        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: {}\nspec:\n  storageUri: \"flowc://identity\"\n---\n",
                        q(n)
                    ));
                }
            }
            y.push_str(&format!("apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {}\nspec:\n", q(p)));
            y.push_str(&format!("  allowCycles: {cycles}\n"));
            if let Some(r) = revisits {
                y.push_str(&format!("  maxStepRevisits: {r}\n"));
            }
            y.push_str("  steps:\n");
            if steps.is_empty() {
                y.push_str("    []\n");
            }
            for (i, s) in steps.iter().enumerate() {
                y.push_str(&format!("    - name: {}\n", q(&names[i])));
                let key = if s.typo { "input" } else { "inputs" };
                let inputs: Vec<String> = s.inputs.iter().map(|r| ref_text(r, Some(i), p, &names)).collect();
                if !inputs.is_empty() {
                    let list: Vec<String> = inputs.iter().map(|r| q(r)).collect();
                    y.push_str(&format!("      {key}: [{}]\n", list.join(", ")));
                }
                if !s.triggers.is_empty() {
                    let list: Vec<String> = s.triggers.iter().map(|r| q(&ref_text(r, Some(i), p, &names))).collect();
                    y.push_str(&format!("      triggers: [{}]\n", list.join(", ")));
                }
                y.push_str(&format!("      inputsJoinType: {}\n", s.join));
                if s.map {
                    // A rename of the first input's tensor `T` (or of the pipeline request).
                    let key = inputs
                        .first()
                        .map(|r| r.split('.').take(2).collect::<Vec<_>>().join("."))
                        .map(|r| if r.contains('.') { r } else if r == p { format!("{r}.inputs") } else { format!("{r}.outputs") })
                        .unwrap_or_else(|| format!("{p}.inputs"));
                    y.push_str(&format!("      tensorMap:\n        {}: \"RENAMED\"\n", q(&format!("{key}.T"))));
                }
                if let Some((size, window)) = s.batch {
                    y.push_str(&format!("      batch: {{size: {size}, windowMs: {window}}}\n"));
                }
            }
            if let Some((refs, join)) = output {
                let list: Vec<String> = refs.iter().map(|r| q(&ref_text(r, None, p, &names))).collect();
                y.push_str(&format!("  output:\n    steps: [{}]\n    stepsJoin: {join}\n", list.join(", ")));
            }
            if let Some(ext) = input {
                let list: Vec<String> = ext.iter().map(|r| q(&format!("other{}", r.side))).collect();
                y.push_str(&format!("  input:\n    externalInputs: [{}]\n", list.join(", ")));
            }
            y
        })
}

/// Samples to mutate, compiled in (the compiler's crates do no I/O, tests included).
const SAMPLES: &[&str] = &[
    include_str!("../../samples/join.yaml"),
    include_str!("../../samples/cycle.yaml"),
    include_str!("../../samples/triggers.yaml"),
    include_str!("../../samples/chaining.yaml"),
    include_str!("../../samples/detectors.yaml"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_yamlish_text_never_panics(text in "[a-z:\\-\\[\\]{}., \n\"'#&*!|>%@`]{0,300}") {
        check(&text);
    }

    #[test]
    fn generated_pipelines_never_panic(yaml in pipeline_yaml()) {
        check(&yaml);
    }

    #[test]
    fn mutated_samples_never_panic(
        sample in prop::sample::select(SAMPLES),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6),
    ) {
        let mut text: Vec<char> = sample.chars().collect();
        for (at, kind, c) in edits {
            if text.is_empty() { break; }
            let i = at.index(text.len());
            match kind {
                0 => { text.remove(i); }
                1 => text.insert(i, c),
                _ => text[i] = c,
            }
        }
        check(&text.into_iter().collect::<String>());
    }
}

#[test]
fn a_valid_generated_pipeline_compiles() {
    // Guards the generator: it must be able to produce valid pipelines, or the property
    // above only ever exercises the error paths.
    let yaml = "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata: {name: a}\nspec: {storageUri: \"flowc://identity\"}\n---\n\
apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: \"p\"\nspec:\n  allowCycles: false\n  steps:\n    - name: \"a\"\n      inputsJoinType: inner\n  output:\n    steps: [\"a\"]\n    stepsJoin: any\n";
    assert!(check(yaml).is_some());
}

#[test]
fn the_generator_covers_valid_and_invalid_pipelines() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = pipeline_yaml();
    let (mut valid, total) = (0, 2000);
    for _ in 0..total {
        let yaml = strategy.new_tree(&mut runner).expect("generate").current();
        if check(&yaml).is_some() {
            valid += 1;
        }
    }
    eprintln!("{valid} of {total} generated pipelines compile");
    assert!(
        valid >= total / 50,
        "only {valid} of {total} generated pipelines are valid"
    );
    assert!(
        valid <= total * 9 / 10,
        "{valid} of {total} valid: the error paths are barely exercised"
    );
}
