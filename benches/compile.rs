//! Compile time against pipeline size: generated pipelines of 10 … 10,000 steps, each step
//! joining the two previous steps' outputs with renames (so references, joins, stores and
//! co-partition groups all grow with the size), plus one Model per step.
//!
//! `cargo bench --bench compile`; criterion prints the time per size. Divide by the step
//! count to see how close to linear the growth is.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowc_compiler::{compile, CompileOptions, SourceMap};
use std::fmt::Write;

pub fn generated_pipeline(steps: usize) -> String {
    let mut y = String::new();
    for i in 0..steps {
        let _ = write!(
            y,
            "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: s{i}\nspec:\n  storageUri: \"flowc://sum-diff\"\n---\n"
        );
    }
    y.push_str("apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: big\nspec:\n  steps:\n");
    for i in 0..steps {
        let _ = writeln!(y, "    - name: s{i}");
        match i {
            0 => {}
            1 => y.push_str("      inputs: [s0]\n"),
            _ => {
                let (a, b) = (i - 1, i - 2);
                let _ = write!(
                    y,
                    "      inputs: [s{a}.outputs.OUTPUT0, s{b}.outputs.OUTPUT1]\n      tensorMap:\n        s{a}.outputs.OUTPUT0: INPUT0\n        s{b}.outputs.OUTPUT1: INPUT1\n"
                );
                if i % 10 == 0 {
                    let _ = writeln!(y, "      triggers: [big.inputs.go]");
                }
            }
        }
    }
    let _ = writeln!(y, "  output:\n    steps: [s{}]", steps - 1);
    y
}

fn bench_compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for steps in [10usize, 100, 1_000, 10_000] {
        let yaml = generated_pipeline(steps);
        let mut sources = SourceMap::new();
        sources.add("big.yaml", yaml);
        let options = CompileOptions::default();
        let check = compile(&sources, &options);
        assert!(
            check.plan.is_some(),
            "generated pipeline must compile: {:?}",
            check.diagnostics.first()
        );
        group.throughput(Throughput::Elements(steps as u64));
        group.bench_with_input(BenchmarkId::from_parameter(steps), &sources, |b, sources| {
            b.iter(|| compile(sources, &options))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
