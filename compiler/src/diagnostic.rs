//! Diagnostics: one stable code per check, a span into the YAML, a label and a help line.
//!
//! Every stage of the compiler pushes into a [`Diagnostics`] collector and keeps going, so a
//! user sees every problem of every file at once. Rendering (with source snippets, via
//! codespan-reporting) and the JSON form live here too, so that the CLI and the golden tests
//! print exactly the same thing.

use crate::source::{Location, SourceMap};
use codespan_reporting::diagnostic as cs;
use codespan_reporting::term;
use serde::Serialize;

/// How bad a diagnostic is. Errors stop compilation; warnings are printed with the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal;)*) => {
        /// The stable code of every check. Codes are never reused or renumbered: tools and
        /// golden files key on them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant,)* }

        impl Code {
            /// All codes, in order (for documentation and tests).
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed: `E101`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// Whether this check is an error or a warning.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            /// A short title of the check, for documentation.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }
        }
    };
}

codes! {
    // Documents and schema.
    YamlSyntax = "E001", Error, "YAML syntax error";
    UnknownField = "E002", Error, "unknown field";
    MissingField = "E003", Error, "missing required field";
    WrongType = "E004", Error, "value has the wrong type";
    BadValue = "E005", Error, "value not allowed here";
    UnknownKind = "E006", Error, "unknown apiVersion or kind";
    DuplicateResource = "E007", Error, "two resources with the same kind and name";
    DuplicateKey = "E008", Error, "a mapping key appears twice";
    // Pipelines: the rules of PIPELINES.md §3, in Seldon's order.
    DuplicateStep = "E101", Error, "two steps with the same name (rule 1)";
    InvalidName = "E102", Error, "name does not match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (rule 2)";
    NoSteps = "E103", Error, "pipeline has no steps (rule 2)";
    StepNamedLikePipeline = "E104", Error, "step named like its pipeline (rule 3)";
    BadInputRef = "E105", Error, "malformed input reference (rule 4)";
    BadTriggerRef = "E106", Error, "malformed trigger reference (rule 5)";
    UnknownStep = "E107", Error, "reference to a step that does not exist (rule 6)";
    BadOutputRef = "E108", Error, "malformed output reference (rule 7)";
    Cycle = "E109", Error, "cycle without allowCycles (rule 8)";
    TriggerIsInput = "E110", Error, "the same reference is both data input and trigger (rule 9)";
    BadExternalRef = "E111", Error, "malformed external reference (rule 10)";
    EmptyExternalInputs = "E112", Error, "input section without externalInputs (rule 10)";
    UnknownPipeline = "W113", Warning, "reference to a pipeline not in these files (rule 10)";
    BadTensorMapKey = "E114", Error, "malformed tensorMap key";
    UnusedTensorMapKey = "E115", Error, "tensorMap key matches no reference of its step";
    RevisitsWithoutCycles = "W116", Warning, "maxStepRevisits has no effect without allowCycles";
    PartitionMismatch = "E117", Error, "topics of one join have different partition counts (rule 11)";
    TopicNameTooLong = "E118", Error, "a topic name is longer than Kafka allows";
    NotFused = "W119", Warning, "a pipeline asked to run fused runs per-hop (§10)";
    // Models and servers.
    ExplainerRefs = "E201", Error, "an explainer needs exactly one of modelRef and pipelineRef";
    LlmAndExplainer = "E202", Error, "a model cannot be both an explainer and an llm";
    UnknownModel = "W203", Warning, "a step runs a Model not in these files";
    UnknownServer = "W204", Warning, "a model names a Server not in these files";
    NoServerFits = "W205", Warning, "no Server in these files has the model's requirements";
    UnknownExplained = "W206", Warning, "an explainer refers to a model or pipeline not in these files";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub message: String,
    /// Where the problem is: the exact offending text.
    pub location: Location,
    /// What is wrong with the text at `location`, shown under it.
    pub label: String,
    /// What would have been valid.
    pub help: Option<String>,
    /// Other places that explain the problem (the first definition of a duplicate, …).
    pub related: Vec<(Location, String)>,
}

impl Diagnostic {
    pub fn new(code: Code, location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            location,
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line only if there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn related(mut self, location: Location, message: impl Into<String>) -> Self {
        self.related.push((location, message.into()));
        self
    }

    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }
}

/// The collector every stage writes into.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.items.push(diagnostic);
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(Diagnostic::is_error)
    }

    pub fn error_count(&self) -> usize {
        self.items.iter().filter(|d| d.is_error()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.items.iter()
    }

    /// Sorted by file and position, so output reads top to bottom like the files.
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by_key(|d| {
            (
                d.location.file,
                d.location.start,
                d.location.end,
                d.code,
                d.message.clone(),
            )
        });
        self.items.dedup();
        self.items
    }
}

pub use flowc_plan::did_you_mean;

/// A help line: "did you mean `x`?" when one is close, and the full list of what is valid.
pub fn suggest(name: &str, candidates: &[&str], what: &str) -> Option<String> {
    let close = did_you_mean(name, candidates.iter().copied());
    let list = || {
        let shown: Vec<String> = candidates.iter().take(12).map(|c| format!("`{c}`")).collect();
        let more = candidates.len().saturating_sub(12);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    match (close, candidates.is_empty()) {
        (Some(c), _) => Some(format!("did you mean `{c}`? {what}: {}", list())),
        (None, false) => Some(format!("{what}: {}", list())),
        (None, true) => None,
    }
}

/// Renders diagnostics the way `flowc compile` prints them, with source snippets.
pub fn render_text(diagnostics: &[Diagnostic], sources: &SourceMap, color: bool) -> String {
    let config = term::Config::default();
    let mut out = String::new();
    for d in diagnostics {
        let cs_diag = to_codespan(d);
        let text = if color {
            let mut buffer = term::termcolor::Buffer::ansi();
            let _ = term::emit(&mut buffer, &config, sources, &cs_diag);
            String::from_utf8_lossy(buffer.as_slice()).into_owned()
        } else {
            let mut buffer = term::termcolor::NoColor::new(Vec::new());
            let _ = term::emit(&mut buffer, &config, sources, &cs_diag);
            String::from_utf8_lossy(&buffer.into_inner()).into_owned()
        };
        out.push_str(&text);
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if !diagnostics.is_empty() {
        out.push_str(&format!(
            "{errors} error{}, {warnings} warning{}\n",
            if errors == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        ));
    }
    out
}

fn to_codespan(d: &Diagnostic) -> cs::Diagnostic<usize> {
    let base = match d.severity() {
        Severity::Error => cs::Diagnostic::error(),
        Severity::Warning => cs::Diagnostic::warning(),
    };
    let mut labels = vec![cs::Label::primary(d.location.file, d.location.start..d.location.end).with_message(&d.label)];
    for (loc, msg) in &d.related {
        labels.push(cs::Label::secondary(loc.file, loc.start..loc.end).with_message(msg));
    }
    let mut diag = base
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_labels(labels);
    if let Some(help) = &d.help {
        diag = diag.with_notes(vec![format!("help: {help}")]);
    }
    diag
}

/// A diagnostic as data, for `--format json` and editors.
#[derive(Clone, Debug, Serialize)]
pub struct DiagnosticData {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RelatedData>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RelatedData {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl DiagnosticData {
    pub fn new(d: &Diagnostic, sources: &SourceMap) -> Self {
        let (line, column) = sources.line_col(d.location.file, d.location.start);
        let (end_line, end_column) = sources.line_col(d.location.file, d.location.end);
        DiagnosticData {
            code: d.code,
            severity: d.severity(),
            message: d.message.clone(),
            file: sources.name(d.location.file).to_string(),
            line,
            column,
            end_line,
            end_column,
            label: d.label.clone(),
            help: d.help.clone(),
            related: d
                .related
                .iter()
                .map(|(loc, message)| {
                    let (line, column) = sources.line_col(loc.file, loc.start);
                    RelatedData {
                        file: sources.name(loc.file).to_string(),
                        line,
                        column,
                        message: message.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// All diagnostics as one JSON document: `{"errors": n, "warnings": n, "diagnostics": [...]}`.
pub fn render_json(diagnostics: &[Diagnostic], sources: &SourceMap) -> String {
    let data: Vec<DiagnosticData> = diagnostics.iter().map(|d| DiagnosticData::new(d, sources)).collect();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let doc = serde_json::json!({
        "errors": errors,
        "warnings": diagnostics.len() - errors,
        "diagnostics": data,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            let prefix = if code.severity() == Severity::Error { 'E' } else { 'W' };
            assert!(s.starts_with(prefix), "{s} has the wrong letter for its severity");
            assert_eq!(s.len(), 4);
        }
    }

    #[test]
    fn did_you_mean_finds_typos_only() {
        assert_eq!(did_you_mean("input", ["inputs", "triggers", "name"]), Some("inputs"));
        assert_eq!(did_you_mean("tfsimpel1", ["tfsimple1", "tfsimple2"]), Some("tfsimple1"));
        assert_eq!(did_you_mean("zzz", ["inputs", "triggers"]), None);
    }
}
