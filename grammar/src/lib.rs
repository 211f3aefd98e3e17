//! References of Seldon Core 2 pipelines (PIPELINES.md §2), parsed with a pest grammar
//! (`src/reference.pest`) into typed values with byte spans.
//!
//! A reference is one YAML scalar made of parts separated by `.`. A part is one or more
//! characters, any except `.`: names are only checked later, by the compiler (rule 2 of §3), so
//! `Model_1`, `ä` or `a b` are all accepted here. There are four forms, one parse function each:
//!
//! | function | where | forms |
//! |---|---|---|
//! | [`parse_step_ref`] | `inputs[]`, `triggers[]`, `output.steps[]` | `s`, `s.inputs`, `s.outputs`, `s.inputs.T`, `s.outputs.T` |
//! | [`parse_external_ref`] | `input.externalInputs[]`, `input.externalTriggers[]` | `Q`, `Q.inputs`, `Q.outputs`, `Q.inputs.T`, `Q.outputs.T`, `Q.step.S`, `Q.step.S.inputs`, `Q.step.S.outputs`, `Q.step.S.inputs.T`, `Q.step.S.outputs.T` |
//! | [`parse_tensor_map_key`] | keys of a step's `tensorMap` | `s.inputs.T`, `s.outputs.T` |
//! | [`parse_external_tensor_map_key`] | keys of `input.tensorMap` | `Q.inputs.T`, `Q.outputs.T`, `Q.step.S.inputs.T`, `Q.step.S.outputs.T` |
//!
//! A side (`inputs` / `outputs`) and the keyword `step` only match a whole part: `outputsX` is a
//! [`RefErrorKind::BadSide`]. Bare forms are returned as written (`side: None`); normalising
//! `s` to `s.outputs`, `P` (the pipeline itself) to `P.inputs` and `Q` to `Q.outputs` is the
//! compiler's job, since only it knows the pipeline's name.
//!
//! Every [`Span`] is a byte range into the parsed scalar, on char boundaries and within the
//! input; for an `Ok` result, `&text[part.span] == part.value` for every part, and joining the
//! parts with `.` gives back the input.
//!
//! Errors report the *first* problem from the left, with a span pointing at it (an empty range
//! where something is missing); see [`RefErrorKind`] for what each kind covers. Parsing never
//! panics, and the work done does not depend on the length of the parts.

use std::fmt;

use pest::error::{ErrorVariant, InputLocation};
use pest::Parser as _;

mod parser {
    //! The pest parser generated from `reference.pest`.

    #[derive(pest_derive::Parser)]
    #[grammar = "reference.pest"]
    pub(crate) struct RefParser;
}

use parser::{RefParser, Rule};

/// A byte range inside the parsed scalar.
pub type Span = std::ops::Range<usize>;

/// Most parts an `inputs[]` / `triggers[]` / `output.steps[]` reference or a step `tensorMap`
/// key may have (`step.side.tensor`).
pub const STEP_REF_MAX_PARTS: usize = 3;

/// Most parts an external reference or an `input.tensorMap` key may have
/// (`pipeline.step.name.side.tensor`).
pub const EXTERNAL_REF_MAX_PARTS: usize = 5;

/// A value together with the bytes of the scalar it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Spanned<T> {
    /// The parsed value.
    pub value: T,
    /// Where it was written, in bytes from the start of the scalar.
    pub span: Span,
}

impl<T> Spanned<T> {
    /// Pairs `value` with `span`.
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

/// Which side of a step (or pipeline) a reference reads (the plan's vocabulary).
pub use flowc_plan::Side;

/// An `inputs[]`, `triggers[]` or `output.steps[]` entry: `name`, `name.side` or
/// `name.side.tensor` (§2.1).
///
/// `side` is `None` for the bare one-part form (the compiler normalises `s` to `s.outputs` and
/// the pipeline's own name `P` to `P.inputs`); `tensor` is `Some` only for the three-part form.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StepRef {
    /// The step, or the pipeline itself.
    pub name: Spanned<String>,
    /// `inputs` / `outputs`, if written.
    pub side: Option<Spanned<Side>>,
    /// The selected tensor, if written.
    pub tensor: Option<Spanned<String>>,
}

/// An `input.externalInputs[]` / `input.externalTriggers[]` entry (§2.2): `Q`, `Q.inputs`,
/// `Q.outputs`, `Q.inputs.T`, `Q.outputs.T`, `Q.step.S`, `Q.step.S.inputs|outputs`,
/// `Q.step.S.inputs|outputs.T`; also the value of an `input.tensorMap` key, where `side` and
/// `tensor` are always `Some`.
///
/// `side` is `None` for the bare forms `Q` and `Q.step.S` (the compiler normalises them to
/// `outputs`). The keyword `step` itself is not stored: `step.is_some()` says it was written.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ExternalRef {
    /// The other pipeline, `Q`.
    pub pipeline: Spanned<String>,
    /// `S` of `Q.step.S…`.
    pub step: Option<Spanned<String>>,
    /// `inputs` / `outputs`, if written.
    pub side: Option<Spanned<Side>>,
    /// The selected tensor, if written.
    pub tensor: Option<Spanned<String>>,
}

/// A key of a step's `tensorMap` (§2.3): `S.side.T`, `S` a step or the pipeline itself. All
/// three parts are required.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TensorMapKey {
    /// The step, or the pipeline itself.
    pub name: Spanned<String>,
    /// `inputs` / `outputs`.
    pub side: Spanned<Side>,
    /// The tensor to rename.
    pub tensor: Spanned<String>,
}

/// Why a reference did not parse, and where.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefError {
    /// What is wrong.
    pub kind: RefErrorKind,
    /// The offending text inside the scalar; an empty range at the position where something is
    /// missing.
    pub span: Span,
}

/// What is wrong with a reference. The first problem from the left is reported.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RefErrorKind {
    /// The scalar is empty (`""`; whitespace is a valid, if odd, name). Span `0..0`.
    Empty,
    /// The scalar starts with `.` (`.a.outputs`). Span: that `.`.
    LeadingDot,
    /// An empty part between two `.` (`a..outputs`) or after a trailing `.` (`a.outputs.`),
    /// where the part is not required by the form (otherwise `Missing*`). Span: empty, at the
    /// position of the empty part. A trailing `.` after a reference that is already complete
    /// (`a.outputs.T.`) is [`TooManyParts`](RefErrorKind::TooManyParts) instead.
    EmptyPart,
    /// A part that must be `inputs` or `outputs` is something else (`a.output`, `a.outputsX`,
    /// `Q.step.S.x`). Span: that part.
    BadSide {
        /// The part as written.
        found: String,
    },
    /// The second part of an external reference is neither `inputs`, `outputs` nor `step`.
    /// Span: that part.
    BadExternalPart {
        /// The part as written.
        found: String,
    },
    /// `Q.step` or `Q.step.` with no step name. Span: empty, at the end.
    MissingStepName,
    /// A tensorMap key without a side (`s`, `s.`, `Q.step.S`). Span: empty, at the end.
    MissingSide,
    /// A tensorMap key without a tensor (`s.outputs`, `s.outputs.`). Span: empty, at the end.
    MissingTensor,
    /// More parts than the form allows (`a.outputs.T.x`: 4 parts, at most 3). `max` is the
    /// number of parts of the longest valid form that the reference starts with (3 for
    /// `Q.outputs.T.x`, 5 for `Q.step.S.outputs.T.x`). Span: from the first extra part (just
    /// after its `.`) to the end of the scalar.
    TooManyParts {
        /// How many `.`-separated parts the scalar has.
        found: usize,
        /// How many are allowed.
        max: usize,
    },
}

impl fmt::Display for RefErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefErrorKind::Empty => f.write_str("reference is empty"),
            RefErrorKind::LeadingDot => f.write_str("reference starts with `.`"),
            RefErrorKind::EmptyPart => f.write_str("empty part in reference (stray `.`?)"),
            RefErrorKind::BadSide { found } => {
                write!(f, "expected `inputs` or `outputs`, found `{found}`")
            }
            RefErrorKind::BadExternalPart { found } => {
                write!(f, "expected `inputs`, `outputs` or `step`, found `{found}`")
            }
            RefErrorKind::MissingStepName => f.write_str("missing step name after `step`"),
            RefErrorKind::MissingSide => f.write_str("missing side: expected `.inputs` or `.outputs` here"),
            RefErrorKind::MissingTensor => f.write_str("missing tensor name: expected `.tensor` here"),
            RefErrorKind::TooManyParts { found, max } => {
                write!(f, "reference has {found} parts; at most {max} are allowed")?;
                match *max {
                    STEP_REF_MAX_PARTS => f.write_str(" (`step.side.tensor`)"),
                    EXTERNAL_REF_MAX_PARTS => f.write_str(" (`pipeline.step.name.side.tensor`)"),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for RefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for RefError {}

impl fmt::Display for StepRef {
    /// The reference as written (not normalised).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name.value)?;
        if let Some(side) = &self.side {
            write!(f, ".{}", side.value)?;
        }
        if let Some(tensor) = &self.tensor {
            write!(f, ".{}", tensor.value)?;
        }
        Ok(())
    }
}

impl fmt::Display for ExternalRef {
    /// The reference as written (not normalised).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pipeline.value)?;
        if let Some(step) = &self.step {
            write!(f, ".step.{}", step.value)?;
        }
        if let Some(side) = &self.side {
            write!(f, ".{}", side.value)?;
        }
        if let Some(tensor) = &self.tensor {
            write!(f, ".{}", tensor.value)?;
        }
        Ok(())
    }
}

impl fmt::Display for TensorMapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.name.value, self.side.value, self.tensor.value)
    }
}

/// Parses an `inputs[]`, `triggers[]` or `output.steps[]` entry (§2.1).
pub fn parse_step_ref(text: &str) -> Result<StepRef, RefError> {
    let parts = parse(Form::StepRef, text)?;
    Ok(StepRef {
        name: parts.first,
        side: parts.side,
        tensor: parts.tensor,
    })
}

/// Parses an `input.externalInputs[]` / `input.externalTriggers[]` entry (§2.2).
pub fn parse_external_ref(text: &str) -> Result<ExternalRef, RefError> {
    let parts = parse(Form::ExternalRef, text)?;
    Ok(ExternalRef {
        pipeline: parts.first,
        step: parts.step,
        side: parts.side,
        tensor: parts.tensor,
    })
}

/// Parses a key of a step's `tensorMap` (§2.3).
pub fn parse_tensor_map_key(text: &str) -> Result<TensorMapKey, RefError> {
    let parts = parse(Form::TensorMapKey, text)?;
    match (parts.side, parts.tensor) {
        (Some(side), Some(tensor)) => Ok(TensorMapKey {
            name: parts.first,
            side,
            tensor,
        }),
        // The grammar requires both; kept total rather than unwrapping.
        (None, _) => Err(missing_at_end(RefErrorKind::MissingSide, text)),
        (Some(_), None) => Err(missing_at_end(RefErrorKind::MissingTensor, text)),
    }
}

/// Parses a key of `input.tensorMap` (§2.3): `Q.side.T` or `Q.step.S.side.T`. The result's
/// `side` and `tensor` are always `Some`.
pub fn parse_external_tensor_map_key(text: &str) -> Result<ExternalRef, RefError> {
    let parts = parse(Form::ExternalTensorMapKey, text)?;
    Ok(ExternalRef {
        pipeline: parts.first,
        step: parts.step,
        side: parts.side,
        tensor: parts.tensor,
    })
}

// ---------------------------------------------------------------------------------------------
// Implementation

/// The four entry rules of the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    StepRef,
    ExternalRef,
    TensorMapKey,
    ExternalTensorMapKey,
}

impl Form {
    fn rule(self) -> Rule {
        match self {
            Form::StepRef => Rule::step_ref,
            Form::ExternalRef => Rule::external_ref,
            Form::TensorMapKey => Rule::tensor_map_key,
            Form::ExternalTensorMapKey => Rule::external_tensor_map_key,
        }
    }

    /// tensorMap keys require side and tensor; a part missing at the end is `Missing*` there
    /// rather than `EmptyPart`.
    fn requires_side_and_tensor(self) -> bool {
        matches!(self, Form::TensorMapKey | Form::ExternalTensorMapKey)
    }
}

/// The parts of any form, as found in the parse tree.
struct Parts {
    first: Spanned<String>,
    step: Option<Spanned<String>>,
    side: Option<Spanned<Side>>,
    tensor: Option<Spanned<String>>,
}

fn parse(form: Form, text: &str) -> Result<Parts, RefError> {
    match RefParser::parse(form.rule(), text) {
        Ok(pairs) => {
            let mut first = None;
            let mut step = None;
            let mut side = None;
            let mut tensor = None;
            for pair in pairs.flatten() {
                let span = pair.as_span();
                let span = span.start()..span.end();
                let string = || Spanned::new(pair.as_str().to_owned(), span.clone());
                match pair.as_rule() {
                    Rule::name | Rule::pipeline => first = Some(string()),
                    Rule::step_name => step = Some(string()),
                    Rule::tensor => tensor = Some(string()),
                    Rule::side => {
                        // The grammar's `side` matches exactly these two words.
                        let value = if pair.as_str() == "inputs" {
                            Side::Inputs
                        } else {
                            Side::Outputs
                        };
                        side = Some(Spanned::new(value, span));
                    }
                    _ => {}
                }
            }
            match first {
                Some(first) => Ok(Parts {
                    first,
                    step,
                    side,
                    tensor,
                }),
                // Every form starts with a non-empty name; kept total rather than unwrapping.
                None => Err(RefError {
                    kind: RefErrorKind::Empty,
                    span: 0..0,
                }),
            }
        }
        Err(error) => Err(classify(form, text, &error)),
    }
}

fn missing_at_end(kind: RefErrorKind, text: &str) -> RefError {
    RefError {
        kind,
        span: text.len()..text.len(),
    }
}

/// Number of `.`-separated parts of `s` (`""` has one, empty, part).
fn count_parts(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'.').count() + 1
}

/// Maps a pest error to a [`RefError`].
///
/// pest reports the furthest position where a (non-atomic) rule failed and the rules that failed
/// there (`positives`). With this grammar that position is always the start of a part, or of the
/// `.` before a part, and the rules say which part:
///
/// | positives | at | kind |
/// |---|---|---|
/// | `EOI` | a `.` | `TooManyParts` |
/// | `name` / `pipeline` | start | `Empty` / `LeadingDot` |
/// | `dot_step_name`, or `step_name` at the end | end | `MissingStepName` |
/// | `dot_side` / `dot_tensor` | end | `MissingSide` / `MissingTensor` |
/// | `side` / `tensor` at the end of a tensorMap key | end | `MissingSide` / `MissingTensor` |
/// | any part rule, at the end or at a `.` | | `EmptyPart` |
/// | `side` + `step_kw` | a part | `BadExternalPart` |
/// | `side` | a part | `BadSide` |
fn classify(form: Form, text: &str, error: &pest::error::Error<Rule>) -> RefError {
    let len = text.len();
    let mut pos = match error.location {
        InputLocation::Pos(pos) => pos,
        InputLocation::Span((start, _)) => start,
    }
    .min(len);
    while !text.is_char_boundary(pos) {
        pos -= 1; // defensive: pest positions are always char boundaries
    }
    let positives: &[Rule] = match &error.variant {
        ErrorVariant::ParsingError { positives, .. } => positives,
        // Only pest's resource limits (a process-wide `pest::set_call_limit`, or less than
        // 64 KiB of native stack left) produce a custom error; this grammar makes a constant
        // number of calls whatever the input length. Reported as an empty part over the whole
        // input, below.
        ErrorVariant::CustomError { .. } => &[],
    };
    let has = |rule: Rule| positives.contains(&rule);
    let rest = &text[pos..];
    let at_end = rest.is_empty();
    let at_dot = rest.starts_with('.');
    let part_end = pos + rest.find('.').unwrap_or(rest.len());
    let strict = form.requires_side_and_tensor();

    let (kind, span) = if has(Rule::EOI) {
        let kind = RefErrorKind::TooManyParts {
            found: count_parts(text),
            max: count_parts(&text[..pos]),
        };
        // `pos` is at the `.` that starts the first extra part.
        let start = if at_dot { pos + 1 } else { pos };
        (kind, start..len)
    } else if has(Rule::name) || has(Rule::pipeline) {
        if text.is_empty() {
            (RefErrorKind::Empty, 0..0)
        } else {
            (RefErrorKind::LeadingDot, pos..pos + usize::from(at_dot))
        }
    } else if has(Rule::dot_step_name) || (has(Rule::step_name) && at_end) {
        (RefErrorKind::MissingStepName, pos..pos)
    } else if has(Rule::dot_side) || (has(Rule::side) && at_end && strict) {
        (RefErrorKind::MissingSide, pos..pos)
    } else if has(Rule::dot_tensor) || (has(Rule::tensor) && at_end && strict) {
        (RefErrorKind::MissingTensor, pos..pos)
    } else if positives.is_empty() {
        (RefErrorKind::EmptyPart, 0..len)
    } else if at_end || at_dot {
        (RefErrorKind::EmptyPart, pos..pos)
    } else {
        let found = text[pos..part_end].to_owned();
        let kind = if has(Rule::step_kw) {
            RefErrorKind::BadExternalPart { found }
        } else {
            RefErrorKind::BadSide { found }
        };
        (kind, pos..part_end)
    };
    RefError { kind, span }
}

#[cfg(test)]
mod tests;
