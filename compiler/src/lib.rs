//! The flowc compiler: Seldon Core 2 Pipeline/Model YAML in, a validated topology plan out.
//!
//! ```text
//! text ──yaml──▶ Node tree ──lower──▶ Resources<Raw> ──resolve──▶ Resources<Resolved>
//!      ──build──▶ Plan ──render──▶ text | json | dot | mermaid
//! ```
//!
//! Every stage collects diagnostics and carries on, so one run reports every problem of every
//! file. The compiler does no I/O (callers hand it text) and never panics on user input.

pub mod ast;
pub mod build;
pub mod diagnostic;
pub mod fuse;
pub mod graph;
pub mod lower;
pub use flowc_plan as plan;
pub mod render;
pub mod resolve;
pub mod source;
pub mod yaml;

pub use build::{CompileOptions, TopicNames};
pub use diagnostic::{Code, Diagnostic, Severity};
pub use plan::Plan;
pub use source::{FileId, Location, SourceMap};

/// The result of compiling a set of files: the plan if there were no errors, and every
/// diagnostic (errors and warnings) sorted by file and position.
#[derive(Clone, Debug)]
pub struct Compilation {
    pub plan: Option<Plan>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Compiles every file of `sources` together (pipelines may reference each other's models).
pub fn compile(sources: &SourceMap, options: &CompileOptions) -> Compilation {
    let mut diags = diagnostic::Diagnostics::default();
    let mut raw = ast::Resources::default();
    for (id, file) in sources.files() {
        let docs = yaml::parse_documents(id, file, &mut diags);
        lower::lower_file(&docs, &mut raw, &mut diags);
    }
    let resolved = resolve::resolve(raw, sources, &mut diags);
    let plan = if diags.has_errors() {
        None
    } else {
        let plan = build::build_plan(&resolved, options, &mut diags);
        (!diags.has_errors()).then_some(plan)
    };
    Compilation {
        plan,
        diagnostics: diags.into_sorted(),
    }
}

/// Compiles one text (tests, tools).
pub fn compile_str(name: &str, text: &str, options: &CompileOptions) -> (SourceMap, Compilation) {
    let mut sources = SourceMap::new();
    sources.add(name, text);
    let compilation = compile(&sources, options);
    (sources, compilation)
}
