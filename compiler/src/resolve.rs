//! Resolution and validation: `Resources<Raw>` → `Resources<Resolved>`, running every rule of
//! PIPELINES.md §3 and reporting all problems. Rules are checked in Seldon's order; the
//! diagnostics are sorted by position afterwards.

use crate::ast::*;
use crate::diagnostic::{suggest, Code, Diagnostic, Diagnostics};
use crate::graph::StepGraph;
use crate::source::{Location, SourceMap};
use flowc_grammar::{self as grammar, RefError, RefErrorKind};
use std::collections::{BTreeMap, BTreeSet};

/// `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`, the name rule of pipelines, steps and models.
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && ok(&b[0]) && ok(&b[b.len() - 1]) && b.iter().all(|c| ok(c) || *c == b'-')
}

/// Which list a reference came from: decides the error code and the wording.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RefList {
    Input,
    Trigger,
    Output,
}

impl RefList {
    fn code(self) -> Code {
        match self {
            RefList::Input => Code::BadInputRef,
            RefList::Trigger => Code::BadTriggerRef,
            RefList::Output => Code::BadOutputRef,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            RefList::Input => "input",
            RefList::Trigger => "trigger",
            RefList::Output => "output",
        }
    }
}

pub fn resolve(raw: Resources<Raw>, sources: &SourceMap, diags: &mut Diagnostics) -> Resources<Resolved> {
    check_duplicate_resources(&raw, diags);
    let known_pipelines: BTreeSet<String> = raw.pipelines.iter().map(|p| p.name.value.clone()).collect();
    let pipelines = raw
        .pipelines
        .iter()
        .map(|p| {
            let mut r = Resolver {
                sources,
                diags,
                pipeline: p,
                step_names: p.steps.iter().map(|s| s.name.value.clone()).collect(),
                step_set: p.steps.iter().map(|s| s.name.value.clone()).collect(),
            };
            r.pipeline(&known_pipelines)
        })
        .collect();
    let resolved = Resources {
        pipelines,
        models: raw.models,
        servers: raw.servers,
    };
    check_models(&resolved, diags);
    resolved
}

fn check_duplicate_resources(raw: &Resources<Raw>, diags: &mut Diagnostics) {
    let mut check = |kind: &str, items: Vec<(&Spanned<String>, &str)>| {
        let mut seen: BTreeMap<(&str, &str), Location> = BTreeMap::new();
        for (name, ns) in items {
            if let Some(first) = seen.get(&(name.value.as_str(), ns)) {
                diags.push(
                    Diagnostic::new(
                        Code::DuplicateResource,
                        name.location,
                        format!("{kind} `{}` is defined twice in namespace `{ns}`", name.value),
                    )
                    .label("second definition")
                    .related(*first, "first definition"),
                );
            } else {
                seen.insert((name.value.as_str(), ns), name.location);
            }
        }
    };
    check(
        "Pipeline",
        raw.pipelines.iter().map(|p| (&p.name, p.namespace.as_str())).collect(),
    );
    check(
        "Model",
        raw.models.iter().map(|m| (&m.name, m.namespace.as_str())).collect(),
    );
    check(
        "Server",
        raw.servers.iter().map(|s| (&s.name, s.namespace.as_str())).collect(),
    );
}

fn name_error(name: &Spanned<String>, what: &str) -> Diagnostic {
    let suggestion: String = name
        .value
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .to_string();
    let mut d = Diagnostic::new(
        Code::InvalidName,
        name.location,
        format!("invalid {what} name `{}`", name.value),
    )
    .label("lower-case letters, digits and `-` only, starting and ending with a letter or digit");
    if is_valid_name(&suggestion) {
        d = d.help(format!(
            "names must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (they become Kafka topic names); try `{suggestion}`"
        ));
    } else {
        d = d.help("names must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (they become Kafka topic names)");
    }
    d
}

struct Resolver<'a, 'd> {
    sources: &'a SourceMap,
    diags: &'d mut Diagnostics,
    pipeline: &'a Pipeline<Raw>,
    /// In file order, for suggestions.
    step_names: Vec<String>,
    /// The same, for look-ups.
    step_set: BTreeSet<String>,
}

impl Resolver<'_, '_> {
    fn pname(&self) -> &str {
        &self.pipeline.name.value
    }

    /// The location of `span` inside a reference's scalar.
    fn sub(&self, raw: &RawRef, span: std::ops::Range<usize>) -> Location {
        raw.node.sub_location(self.sources.file(raw.node.location.file), span)
    }

    fn ref_error(&mut self, code: Code, raw: &RawRef, err: &RefError, what: &str, forms: &str) {
        let location = self.sub(raw, err.span.clone());
        let mut d =
            Diagnostic::new(code, location, format!("malformed {what} `{}`: {}", raw.text, err.kind)).label(match &err
                .kind
            {
                RefErrorKind::Empty => "empty reference".to_string(),
                RefErrorKind::LeadingDot => "starts with `.`".to_string(),
                RefErrorKind::BadSide { .. } => "expected `inputs` or `outputs`".to_string(),
                RefErrorKind::TooManyParts { .. } => "too many parts".to_string(),
                other => other.to_string(),
            });
        let help = match &err.kind {
            RefErrorKind::BadSide { found } => {
                suggest(found, &["inputs", "outputs"], "a side is one of").map(|h| format!("{h}; valid forms: {forms}"))
            }
            _ => Some(format!("valid forms: {forms}")),
        };
        d = d.maybe_help(help);
        self.diags.push(d);
    }

    fn pipeline(&mut self, known_pipelines: &BTreeSet<String>) -> Pipeline<Resolved> {
        let p = self.pipeline;
        // Rule 1: duplicate step names.
        let mut first_seen: BTreeMap<&str, Location> = BTreeMap::new();
        for step in &p.steps {
            match first_seen.get(step.name.value.as_str()) {
                Some(first) => self.diags.push(
                    Diagnostic::new(
                        Code::DuplicateStep,
                        step.name.location,
                        format!("pipeline `{}` has two steps named `{}`", self.pname(), step.name.value),
                    )
                    .label("second step with this name")
                    .related(*first, "first step with this name")
                    .help("each step runs the Model of the same name, so step names must be unique"),
                ),
                None => {
                    first_seen.insert(step.name.value.as_str(), step.name.location);
                }
            }
        }
        // Rule 2: names; at least one step.
        if !is_valid_name(self.pname()) {
            self.diags.push(name_error(&p.name, "pipeline"));
        }
        if p.steps.is_empty() {
            self.diags.push(
                Diagnostic::new(
                    Code::NoSteps,
                    p.steps_location,
                    format!("pipeline `{}` has no steps", self.pname()),
                )
                .label("at least one step is required")
                .help("add `steps: [{name: <model>}]`; each step runs the Model of the same name"),
            );
        }
        for step in &p.steps {
            if !is_valid_name(&step.name.value) {
                self.diags.push(name_error(&step.name, "step"));
            }
            // Rule 3.
            if step.name.value == p.name.value {
                self.diags.push(
                    Diagnostic::new(
                        Code::StepNamedLikePipeline,
                        step.name.location,
                        format!("step `{}` has the same name as its pipeline", step.name.value),
                    )
                    .label("same name as the pipeline")
                    .related(p.name.location, "the pipeline's name")
                    .help("`<pipeline>.inputs` would be ambiguous; rename the step (and its Model) or the pipeline"),
                );
            }
        }
        let steps: Vec<Step<Resolved>> = p.steps.iter().map(|s| self.step(s)).collect();
        let output = p.output.as_ref().map(|o| self.output(o));
        let input = p.input.as_ref().map(|i| self.input(i, known_pipelines));
        if let (Some(rev), false) = (&p.max_step_revisits, p.allow_cycles) {
            self.diags.push(
                Diagnostic::new(
                    Code::RevisitsWithoutCycles,
                    rev.location,
                    "`maxStepRevisits` has no effect without `allowCycles: true`",
                )
                .label("ignored"),
            );
        }
        let resolved = Pipeline {
            name: p.name.clone(),
            namespace: p.namespace.clone(),
            location: p.location,
            steps,
            steps_location: p.steps_location,
            input,
            output,
            allow_cycles: p.allow_cycles,
            max_step_revisits: p.max_step_revisits.clone(),
            clean_topics_on_delete: p.clean_topics_on_delete,
            execution: p.execution.clone(),
        };
        // Rule 8: cycles.
        if !p.allow_cycles {
            let graph = StepGraph::new(&resolved);
            for cycle in graph.cycles() {
                let path = cycle.path.join(" -> ");
                self.diags.push(
                    Diagnostic::new(
                        Code::Cycle,
                        cycle.closing_ref,
                        format!("pipeline `{}` has a cycle: {path}", self.pname()),
                    )
                    .label(format!("this reference closes the cycle {path}"))
                    .help("remove one of these references, or set `allowCycles: true` (with `maxStepRevisits`) if the loop is intended"),
                );
            }
        }
        resolved
    }

    /// Parses, normalises and checks one reference of `inputs`, `triggers` or `output.steps`.
    fn port(&mut self, raw: &RawRef, list: RefList, owner: &str) -> Option<PortRef> {
        let forms =
            "`step`, `step.inputs`, `step.outputs`, `step.outputs.TENSOR` (or the pipeline's own name for its request)";
        let parsed = match grammar::parse_step_ref(&raw.text) {
            Ok(r) => r,
            Err(err) => {
                self.ref_error(list.code(), raw, &err, &format!("{} reference", list.noun()), forms);
                return None;
            }
        };
        let name = parsed.name.value.as_str();
        let is_pipeline = name == self.pname();
        let target = if is_pipeline && list != RefList::Output {
            Target::Pipeline
        } else if self.step_set.contains(name) {
            Target::Step(name.to_string())
        } else {
            // Rule 6 (for triggers too: **flowc**).
            let mut candidates: Vec<&str> = self.step_names.iter().map(String::as_str).collect();
            if list != RefList::Output {
                candidates.push(self.pname());
            }
            let location = self.sub(raw, parsed.name.span.clone());
            let (message, label) = if is_pipeline {
                (
                    format!("output of pipeline `{}` names the pipeline itself", self.pname()),
                    "output references must name a step".to_string(),
                )
            } else {
                let message = match list {
                    RefList::Output => format!(
                        "the output names `{name}`, which is not a step of pipeline `{}`",
                        self.pname()
                    ),
                    _ => format!(
                        "{} of {owner} names `{name}`, which is not a step of pipeline `{}`",
                        list.noun(),
                        self.pname()
                    ),
                };
                (message, "no step with this name".to_string())
            };
            let help = suggest(
                name,
                &candidates,
                "valid names (the steps, and the pipeline for its request)",
            );
            self.diags.push(
                Diagnostic::new(Code::UnknownStep, location, message)
                    .label(label)
                    .maybe_help(help),
            );
            return None;
        };
        let side = parsed
            .side
            .as_ref()
            .map(|s| s.value)
            .unwrap_or(if is_pipeline && list != RefList::Output {
                Side::Inputs
            } else {
                Side::Outputs
            });
        let tensor = parsed.tensor.as_ref().map(|t| t.value.clone());
        let mut text = format!("{name}.{side}");
        if let Some(t) = &tensor {
            text.push('.');
            text.push_str(t);
        }
        Some(PortRef {
            target,
            side,
            tensor,
            text,
            location: raw.node.location,
        })
    }

    fn ports(&mut self, raws: &[RawRef], list: RefList, owner: &str) -> Vec<PortRef> {
        raws.iter().filter_map(|r| self.port(r, list, owner)).collect()
    }

    /// A tensorMap key `S.side.T` must match a data reference: same step and side, and the
    /// reference is whole or names `T` (**flowc**: Seldon silently ignores a key that doesn't).
    fn map_keys(
        &mut self,
        entries: &[TensorMapEntry<RawRef>],
        refs: &[PortRef],
        owner: &str,
    ) -> Vec<TensorMapEntry<MapKey>> {
        let mut out = Vec::new();
        for entry in entries {
            let raw = &entry.key;
            let key = match grammar::parse_tensor_map_key(&raw.text) {
                Ok(k) => k,
                Err(err) => {
                    self.ref_error(
                        Code::BadTensorMapKey,
                        raw,
                        &err,
                        "tensorMap key",
                        "`step.outputs.TENSOR`, `step.inputs.TENSOR`, `<pipeline>.inputs.TENSOR`",
                    );
                    continue;
                }
            };
            let target = if key.name.value == self.pname() {
                Target::Pipeline
            } else {
                Target::Step(key.name.value.clone())
            };
            let side = key.side.value;
            let tensor = key.tensor.value.clone();
            let matches = refs
                .iter()
                .any(|r| r.target == target && r.side == side && r.tensor.as_ref().is_none_or(|t| *t == tensor));
            if !matches {
                let candidates: Vec<String> = refs
                    .iter()
                    .map(|r| match &r.tensor {
                        Some(_) => r.text.clone(),
                        None => format!("{}.<tensor>", r.text),
                    })
                    .collect();
                let cands: Vec<&str> = candidates.iter().map(String::as_str).collect();
                let help = suggest(&raw.text, &cands, &format!("the references of {owner} are"));
                self.diags.push(
                    Diagnostic::new(
                        Code::UnusedTensorMapKey,
                        raw.node.location,
                        format!("tensorMap key `{}` matches no reference of {owner}", raw.text),
                    )
                    .label("this rename would never apply")
                    .maybe_help(help),
                );
                continue;
            }
            out.push(TensorMapEntry {
                key: MapKey {
                    target,
                    side,
                    tensor,
                    location: raw.node.location,
                },
                value: entry.value.clone(),
            });
        }
        out
    }

    /// The implicit input of a step with no inputs: the whole pipeline request.
    fn pipeline_request(&self, location: Location) -> PortRef {
        PortRef {
            target: Target::Pipeline,
            side: Side::Inputs,
            tensor: None,
            text: format!("{}.inputs", self.pname()),
            location,
        }
    }

    fn step(&mut self, step: &Step<Raw>) -> Step<Resolved> {
        let owner = format!("step `{}`", step.name.value);
        let inputs = self.ports(&step.inputs, RefList::Input, &owner);
        let triggers = self.ports(&step.triggers, RefList::Trigger, &owner);
        // Rule 9 (**flowc**: compared in normalised form, so it fires).
        for t in &triggers {
            if let Some(i) = inputs.iter().find(|i| i.text == t.text) {
                self.diags.push(
                    Diagnostic::new(
                        Code::TriggerIsInput,
                        t.location,
                        format!("{owner} uses `{}` both as data input and as trigger", t.text),
                    )
                    .label("also a data input")
                    .related(i.location, "the data input")
                    .help("a trigger only gates the data; reference a different tensor, or drop one of the two"),
                );
            }
        }
        let map_refs = if step.inputs.is_empty() {
            vec![self.pipeline_request(step.location)]
        } else {
            inputs.clone()
        };
        let tensor_map = self.map_keys(&step.tensor_map, &map_refs, &owner);
        Step {
            name: step.name.clone(),
            location: step.location,
            inputs,
            triggers,
            inputs_join: step.inputs_join,
            triggers_join: step.triggers_join,
            join_window_ms: step.join_window_ms,
            tensor_map,
            batch: step.batch.clone(),
        }
    }

    fn output(&mut self, output: &Output<Raw>) -> Output<Resolved> {
        let steps = self.ports(&output.steps, RefList::Output, "the output");
        let map_refs = if output.steps.is_empty() {
            vec![self.pipeline_request(output.location)]
        } else {
            steps.clone()
        };
        let tensor_map = self.map_keys(&output.tensor_map, &map_refs, "the output");
        Output {
            location: output.location,
            steps,
            join: output.join,
            join_window_ms: output.join_window_ms,
            tensor_map,
        }
    }

    fn external(
        &mut self,
        raw: &RawRef,
        code: Code,
        what: &str,
        known: &BTreeSet<String>,
        key: bool,
    ) -> Option<ExternalPort> {
        let parsed = if key {
            grammar::parse_external_tensor_map_key(&raw.text)
        } else {
            grammar::parse_external_ref(&raw.text)
        };
        let forms = if key {
            "`Q.outputs.TENSOR`, `Q.inputs.TENSOR`, `Q.step.S.outputs.TENSOR`"
        } else {
            "`Q`, `Q.outputs`, `Q.inputs`, `Q.outputs.TENSOR`, `Q.step.S`, `Q.step.S.outputs`, `Q.step.S.outputs.TENSOR`"
        };
        let parsed = match parsed {
            Ok(p) => p,
            Err(err) => {
                self.ref_error(code, raw, &err, what, forms);
                return None;
            }
        };
        let pipeline = parsed.pipeline.value.clone();
        if !known.contains(&pipeline) && !key {
            let cands: Vec<&str> = known
                .iter()
                .map(String::as_str)
                .filter(|p| *p != self.pname())
                .collect();
            let help = suggest(&pipeline, &cands, "pipelines in these files")
                .unwrap_or_else(|| "it must be deployed before this pipeline is applied".to_string());
            self.diags.push(
                Diagnostic::new(
                    Code::UnknownPipeline,
                    self.sub(raw, parsed.pipeline.span.clone()),
                    format!("pipeline `{pipeline}` is not defined in these files"),
                )
                .label("unknown here; must exist when this pipeline is deployed")
                .help(help),
            );
        }
        let side = parsed.side.as_ref().map_or(Side::Outputs, |s| s.value);
        let step = parsed.step.as_ref().map(|s| s.value.clone());
        let tensor = parsed.tensor.as_ref().map(|t| t.value.clone());
        let mut text = pipeline.clone();
        if let Some(s) = &step {
            text = format!("{text}.step.{s}");
        }
        text = format!("{text}.{side}");
        if let Some(t) = &tensor {
            text = format!("{text}.{t}");
        }
        Some(ExternalPort {
            pipeline,
            step,
            side,
            tensor,
            text,
            location: raw.node.location,
        })
    }

    fn input(&mut self, input: &Input<Raw>, known: &BTreeSet<String>) -> Input<Resolved> {
        if input.external_inputs.is_empty() {
            self.diags.push(
                Diagnostic::new(
                    Code::EmptyExternalInputs,
                    input.location,
                    format!("`input` of pipeline `{}` has no `externalInputs`", self.pname()),
                )
                .label("at least one external input is required")
                .help("list the pipelines (or their steps) this pipeline reads, e.g. `externalInputs: [other-pipeline.outputs]`, or remove `input`"),
            );
        }
        let external_inputs: Vec<ExternalPort> = input
            .external_inputs
            .iter()
            .filter_map(|r| self.external(r, Code::BadExternalRef, "external input", known, false))
            .collect();
        let external_triggers: Vec<ExternalPort> = input
            .external_triggers
            .iter()
            .filter_map(|r| self.external(r, Code::BadExternalRef, "external trigger", known, false))
            .collect();
        let mut tensor_map = Vec::new();
        for entry in &input.tensor_map {
            let Some(key) = self.external(&entry.key, Code::BadTensorMapKey, "input tensorMap key", known, true) else {
                continue;
            };
            let matches = external_inputs.iter().any(|r| {
                r.pipeline == key.pipeline
                    && r.step == key.step
                    && r.side == key.side
                    && (r.tensor.is_none() || r.tensor == key.tensor)
            });
            if !matches {
                let cands: Vec<&str> = external_inputs.iter().map(|r| r.text.as_str()).collect();
                let help = suggest(&entry.key.text, &cands, "the external inputs are");
                self.diags.push(
                    Diagnostic::new(
                        Code::UnusedTensorMapKey,
                        entry.key.node.location,
                        format!("tensorMap key `{}` matches no external input", entry.key.text),
                    )
                    .label("this rename would never apply")
                    .maybe_help(help),
                );
                continue;
            }
            tensor_map.push(TensorMapEntry {
                key,
                value: entry.value.clone(),
            });
        }
        Input {
            location: input.location,
            external_inputs,
            external_triggers,
            join: input.join,
            triggers_join: input.triggers_join,
            join_window_ms: input.join_window_ms,
            tensor_map,
        }
    }
}

fn check_models(res: &Resources<Resolved>, diags: &mut Diagnostics) {
    let models: BTreeSet<&str> = res.models.iter().map(|m| m.name.value.as_str()).collect();
    let pipelines: BTreeSet<&str> = res.pipelines.iter().map(|p| p.name.value.as_str()).collect();
    for m in &res.models {
        if !is_valid_name(&m.name.value) {
            diags.push(name_error(&m.name, "model"));
        }
        let mut refs_checked = Vec::new();
        if let Some(e) = &m.explainer {
            let n = usize::from(e.refs.model_ref.is_some()) + usize::from(e.refs.pipeline_ref.is_some());
            if n != 1 {
                diags.push(
                    Diagnostic::new(
                        Code::ExplainerRefs,
                        e.refs.location,
                        format!(
                            "explainer of model `{}` has {} of `modelRef` and `pipelineRef`",
                            m.name.value,
                            if n == 0 { "neither" } else { "both" }
                        ),
                    )
                    .label("exactly one is required")
                    .help("`modelRef: <model>` explains a model; `pipelineRef: <pipeline>` explains a pipeline"),
                );
            }
            refs_checked.push(&e.refs);
            if let Some(llm) = &m.llm {
                diags.push(
                    Diagnostic::new(
                        Code::LlmAndExplainer,
                        llm.location,
                        format!("model `{}` has both `explainer` and `llm`", m.name.value),
                    )
                    .label("`llm` here")
                    .related(e.refs.location, "`explainer` here")
                    .help("keep one of them"),
                );
            }
        }
        if let Some(llm) = &m.llm {
            refs_checked.push(llm);
        }
        for refs in refs_checked {
            for (r, known, kind) in [
                (&refs.model_ref, &models, "model"),
                (&refs.pipeline_ref, &pipelines, "pipeline"),
            ] {
                if let Some(r) = r {
                    if !known.contains(r.value.as_str()) {
                        diags.push(
                            Diagnostic::new(
                                Code::UnknownExplained,
                                r.location,
                                format!("{kind} `{}` is not defined in these files", r.value),
                            )
                            .label(format!("unknown {kind}; must exist when this model is deployed")),
                        );
                    }
                }
            }
        }
        if let Some(server) = &m.server {
            if !res.servers.iter().any(|s| s.name.value == server.value) {
                let names: Vec<&str> = res.servers.iter().map(|s| s.name.value.as_str()).collect();
                diags.push(
                    Diagnostic::new(
                        Code::UnknownServer,
                        server.location,
                        format!(
                            "model `{}` names server `{}`, which is not in these files",
                            m.name.value, server.value
                        ),
                    )
                    .label("unknown server; must exist when this model is deployed")
                    .maybe_help(suggest(&server.value, &names, "servers in these files")),
                );
            }
        } else if !res.servers.is_empty() && !m.storage_uri.starts_with("flowc://") {
            let fits = res
                .servers
                .iter()
                .any(|s| m.requirements.iter().all(|r| s.capabilities.contains(r)));
            if !fits {
                diags.push(
                    Diagnostic::new(
                        Code::NoServerFits,
                        m.name.location,
                        format!(
                            "no Server in these files has all the requirements of model `{}`: {}",
                            m.name.value,
                            m.requirements.join(", ")
                        ),
                    )
                    .label("cannot be placed on the servers defined here"),
                );
            }
        }
    }
    for p in &res.pipelines {
        for step in &p.steps {
            if !models.contains(step.name.value.as_str()) {
                diags.push(
                    Diagnostic::new(
                        Code::UnknownModel,
                        step.name.location,
                        format!(
                            "step `{}` runs Model `{}`, which is not in these files",
                            step.name.value, step.name.value
                        ),
                    )
                    .label("must be deployed before the pipeline runs")
                    .maybe_help(suggest(
                        &step.name.value,
                        &models.iter().copied().collect::<Vec<_>>(),
                        "models in these files",
                    )),
                );
            }
        }
    }
}
