//! From YAML nodes to typed resources, checking the schema: unknown fields (with a
//! did-you-mean), missing fields, wrong types and values. Every problem is reported; a
//! resource with schema errors is still lowered as far as possible so later checks can run.

use crate::ast::*;
use crate::diagnostic::{did_you_mean, suggest, Code, Diagnostic, Diagnostics};
use crate::plan::Execution;
use crate::source::Location;
use crate::yaml::{Document, Node, NodeKind, Style};
use std::collections::BTreeMap;

pub const API_VERSION: &str = "mlops.seldon.io/v1alpha1";
const KINDS: &[&str] = &["Pipeline", "Model", "Server"];
const SELDON_KINDS_NOT_RUN: &[&str] = &["Experiment", "SeldonRuntime", "SeldonConfig", "ServerConfig"];

const TOP_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];
const METADATA_FIELDS: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "generation",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "finalizers",
    "managedFields",
];
const PIPELINE_FIELDS: &[&str] = &["steps", "input", "output", "allowCycles", "maxStepRevisits", "dataflow"];
const STEP_FIELDS: &[&str] = &[
    "name",
    "inputs",
    "triggers",
    "inputsJoinType",
    "triggersJoinType",
    "joinWindowMs",
    "tensorMap",
    "batch",
];
const BATCH_FIELDS: &[&str] = &["size", "windowMs", "rolling"];
const INPUT_FIELDS: &[&str] = &[
    "externalInputs",
    "externalTriggers",
    "joinType",
    "triggersJoinType",
    "joinWindowMs",
    "tensorMap",
];
const OUTPUT_FIELDS: &[&str] = &["steps", "stepsJoin", "joinWindowMs", "tensorMap"];
const DATAFLOW_FIELDS: &[&str] = &["cleanTopicsOnDelete"];
const MODEL_FIELDS: &[&str] = &[
    "storageUri",
    "requirements",
    "modelType",
    "server",
    "replicas",
    "minReplicas",
    "maxReplicas",
    "memory",
    "parameters",
    "explainer",
    "llm",
    "dataflow",
    "artifactVersion",
    "schemaUri",
    "secretName",
    "preloaded",
    "dedicated",
    "logger",
];
const EXPLAINER_FIELDS: &[&str] = &["type", "modelRef", "pipelineRef"];
const LLM_FIELDS: &[&str] = &["modelRef", "pipelineRef"];
const PARAMETER_FIELDS: &[&str] = &["name", "value"];
const LOGGER_FIELDS: &[&str] = &["percent"];
const SERVER_FIELDS: &[&str] = &[
    "capabilities",
    "extraCapabilities",
    "endpoints",
    "serverConfig",
    "replicas",
    "minReplicas",
    "maxReplicas",
];

/// Lowers every document of one file, appending to `out`.
pub fn lower_file(docs: &[Document], out: &mut Resources<Raw>, diags: &mut Diagnostics) {
    let mut lower = Lower { diags };
    for doc in docs {
        lower.document(&doc.root, out);
    }
}

/// The fields of one mapping, after the unknown-field check.
struct Fields<'a> {
    location: Location,
    map: BTreeMap<&'a str, (&'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.map.get(key).map(|(_, v)| *v).filter(|v| !v.is_null())
    }

    fn key_location(&self, key: &str) -> Location {
        self.map.get(key).map_or(self.location, |(k, _)| k.location)
    }
}

struct Lower<'d> {
    diags: &'d mut Diagnostics,
}

impl Lower<'_> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn wrong_type(&mut self, node: &Node, expected: &str, what: &str) {
        self.error(
            Diagnostic::new(
                Code::WrongType,
                node.location,
                format!("{what} must be {expected}, found {}", node.type_name()),
            )
            .label(format!("expected {expected}")),
        );
    }

    /// Checks that `node` is a mapping whose keys are all in `known`.
    fn fields<'a>(&mut self, node: &'a Node, what: &str, known: &[&str]) -> Option<Fields<'a>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.wrong_type(node, "a mapping", what);
            return None;
        };
        let mut map: BTreeMap<&str, (&Node, &Node)> = BTreeMap::new();
        for (key, value) in entries {
            let Some(name) = key.as_scalar().map(|s| s.value.as_str()) else {
                self.wrong_type(key, "a string", &format!("a key of {what}"));
                continue;
            };
            if !known.contains(&name) {
                let close = did_you_mean(name, known.iter().copied());
                let mut d = Diagnostic::new(
                    Code::UnknownField,
                    key.location,
                    format!("unknown field `{name}` in {what}"),
                )
                .label(match close {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => "unknown field".to_string(),
                });
                let valid: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                d = d.help(match close {
                    Some(c) => format!("did you mean `{c}`? valid fields of {what}: {}", valid.join(", ")),
                    None => format!("valid fields of {what}: {}", valid.join(", ")),
                });
                self.error(d);
                continue;
            }
            if let Some((first, _)) = map.get(name) {
                let first = first.location;
                self.error(
                    Diagnostic::new(
                        Code::DuplicateKey,
                        key.location,
                        format!("`{name}` appears twice in {what}"),
                    )
                    .label("second occurrence")
                    .related(first, "first occurrence"),
                );
                continue;
            }
            map.insert(name, (key, value));
        }
        Some(Fields {
            location: node.location,
            map,
        })
    }

    fn string(&mut self, fields: &Fields, key: &str, what: &str) -> Option<Spanned<String>> {
        let node = fields.get(key)?;
        self.string_node(node, &format!("`{key}` of {what}"))
    }

    fn string_node(&mut self, node: &Node, what: &str) -> Option<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar(s) => Some(Spanned::new(s.value.clone(), node.location)),
            _ => {
                self.wrong_type(node, "a string", what);
                None
            }
        }
    }

    fn required_string(&mut self, fields: &Fields, key: &str, what: &str) -> Option<Spanned<String>> {
        if fields.get(key).is_none() {
            self.error(
                Diagnostic::new(Code::MissingField, fields.location, format!("{what} has no `{key}`"))
                    .label(format!("`{key}` is required here")),
            );
            return None;
        }
        self.string(fields, key, what)
    }

    fn seq<'a>(&mut self, fields: &Fields<'a>, key: &str, what: &str) -> Vec<&'a Node> {
        let Some(node) = fields.get(key) else {
            return Vec::new();
        };
        match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => {
                self.wrong_type(node, "a list", &format!("`{key}` of {what}"));
                Vec::new()
            }
        }
    }

    fn strings(&mut self, fields: &Fields, key: &str, what: &str) -> Vec<Spanned<String>> {
        let items = self.seq(fields, key, what);
        items
            .into_iter()
            .filter_map(|n| self.string_node(n, &format!("an entry of `{key}` of {what}")))
            .collect()
    }

    fn refs(&mut self, fields: &Fields, key: &str, what: &str) -> Vec<RawRef> {
        let items = self.seq(fields, key, what);
        let mut refs = Vec::new();
        for node in items {
            match &node.kind {
                NodeKind::Scalar(s) if !s.is_null() || s.style != Style::Plain => refs.push(RawRef {
                    text: s.value.clone(),
                    node: node.clone(),
                }),
                // An empty list entry (`- `) is an empty reference: rule 4 reports it.
                NodeKind::Scalar(_) => refs.push(RawRef {
                    text: String::new(),
                    node: node.clone(),
                }),
                _ => self.wrong_type(node, "a reference string", &format!("an entry of `{key}` of {what}")),
            }
        }
        refs
    }

    fn bool(&mut self, fields: &Fields, key: &str, what: &str) -> Option<bool> {
        let node = fields.get(key)?;
        match node
            .as_scalar()
            .filter(|s| s.style == Style::Plain)
            .and_then(|s| s.as_bool())
        {
            Some(b) => Some(b),
            None => {
                self.wrong_type(node, "`true` or `false`", &format!("`{key}` of {what}"));
                None
            }
        }
    }

    fn uint(&mut self, fields: &Fields, key: &str, what: &str) -> Option<Spanned<u64>> {
        let node = fields.get(key)?;
        match node.as_scalar().and_then(|s| s.value.parse::<u64>().ok()) {
            Some(n) => Some(Spanned::new(n, node.location)),
            None => {
                let negative = node.as_scalar().is_some_and(|s| s.value.parse::<i64>().is_ok());
                if negative {
                    self.error(
                        Diagnostic::new(
                            Code::BadValue,
                            node.location,
                            format!("`{key}` of {what} cannot be negative"),
                        )
                        .label("expected 0 or more"),
                    );
                } else {
                    self.wrong_type(node, "a whole number", &format!("`{key}` of {what}"));
                }
                None
            }
        }
    }

    fn join_type(&mut self, fields: &Fields, key: &str, what: &str) -> JoinType {
        let Some(value) = self.string(fields, key, what) else {
            return JoinType::default();
        };
        match JoinType::parse(&value.value) {
            Some(j) => j,
            None => {
                let help = suggest(&value.value, JoinType::NAMES, "valid join types");
                self.error(
                    Diagnostic::new(
                        Code::BadValue,
                        value.location,
                        format!("`{}` is not a join type (`{key}` of {what})", value.value),
                    )
                    .label("not `inner`, `outer` or `any`")
                    .maybe_help(help),
                );
                JoinType::default()
            }
        }
    }

    fn tensor_map(&mut self, fields: &Fields, what: &str) -> Vec<TensorMapEntry<RawRef>> {
        let Some(node) = fields.get("tensorMap") else {
            return Vec::new();
        };
        let NodeKind::Map(entries) = &node.kind else {
            self.wrong_type(
                node,
                "a mapping of `step.side.tensor: newName`",
                &format!("`tensorMap` of {what}"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in entries {
            let (Some(k), Some(v)) = (
                key.as_scalar(),
                self.string_node(value, &format!("a value of `tensorMap` of {what}")),
            ) else {
                continue;
            };
            out.push(TensorMapEntry {
                key: RawRef {
                    text: k.value.clone(),
                    node: key.clone(),
                },
                value: v,
            });
        }
        out
    }

    fn dataflow(&mut self, fields: &Fields, what: &str) -> bool {
        let Some(node) = fields.get("dataflow") else {
            return false;
        };
        let what = format!("`dataflow` of {what}");
        self.fields(node, &what, DATAFLOW_FIELDS)
            .and_then(|f| self.bool(&f, "cleanTopicsOnDelete", &what))
            .unwrap_or(false)
    }

    fn document(&mut self, root: &Node, out: &mut Resources<Raw>) {
        let Some(top) = self.fields(root, "the resource", TOP_FIELDS) else {
            return;
        };
        let api_version = self.required_string(&top, "apiVersion", "the resource");
        let kind = self.required_string(&top, "kind", "the resource");
        if let Some(api) = &api_version {
            if api.value != API_VERSION {
                self.error(
                    Diagnostic::new(
                        Code::UnknownKind,
                        api.location,
                        format!("unsupported apiVersion `{}`", api.value),
                    )
                    .label("not a Seldon Core 2 resource version")
                    .help(format!("flowc reads `apiVersion: {API_VERSION}`")),
                );
            }
        }
        let Some(kind) = kind else { return };
        if !KINDS.contains(&kind.value.as_str()) {
            let message = if SELDON_KINDS_NOT_RUN.contains(&kind.value.as_str()) {
                format!("flowc does not run `kind: {}` resources", kind.value)
            } else {
                format!("unknown kind `{}`", kind.value)
            };
            let help = suggest(&kind.value, KINDS, "flowc reads the kinds");
            self.error(
                Diagnostic::new(Code::UnknownKind, kind.location, message)
                    .label("unsupported kind")
                    .maybe_help(help),
            );
            return;
        }
        let (name, namespace, annotations) = match top.get("metadata") {
            Some(meta) => match self.fields(meta, "metadata", METADATA_FIELDS) {
                Some(meta) => (
                    self.required_string(&meta, "name", "metadata"),
                    self.string(&meta, "namespace", "metadata").map(|s| s.value),
                    meta.get("annotations"),
                ),
                None => (None, None, None),
            },
            None => {
                self.error(
                    Diagnostic::new(Code::MissingField, root.location, "the resource has no `metadata`")
                        .label("`metadata.name` is required"),
                );
                (None, None, None)
            }
        };
        let Some(name) = name else { return };
        let namespace = namespace.unwrap_or_else(|| "default".to_string());
        let what = format!("{} `{}`", kind.value, name.value);
        let spec = match top.get("spec") {
            Some(spec) => spec,
            None => {
                self.error(
                    Diagnostic::new(Code::MissingField, root.location, format!("{what} has no `spec`"))
                        .label("`spec` is required"),
                );
                return;
            }
        };
        match kind.value.as_str() {
            "Pipeline" => {
                let execution = annotations.and_then(|a| self.execution(a));
                if let Some(mut p) = self.pipeline(name, namespace, root.location, spec, top.key_location("spec")) {
                    p.execution = execution;
                    out.pipelines.push(p);
                }
            }
            "Model" => {
                if let Some(m) = self.model(name, namespace, root.location, spec) {
                    out.models.push(m);
                }
            }
            _ => {
                if let Some(s) = self.server(name, namespace, root.location, spec) {
                    out.servers.push(s);
                }
            }
        }
    }

    /// The execution mode a Pipeline's annotations choose (§10): `flowc.io/execution` is
    /// `per-hop` or `fused`; other annotations are Kubernetes' business and not read.
    fn execution(&mut self, annotations: &Node) -> Option<Spanned<Execution>> {
        let NodeKind::Map(entries) = &annotations.kind else {
            self.wrong_type(annotations, "a mapping", "`annotations` of metadata");
            return None;
        };
        let (_, value) = entries
            .iter()
            .find(|(k, _)| k.as_scalar().is_some_and(|s| s.value == Execution::ANNOTATION))?;
        let text = self.string_node(value, &format!("annotation `{}`", Execution::ANNOTATION))?;
        match Execution::parse(&text.value) {
            Some(e) => Some(Spanned::new(e, text.location)),
            None => {
                let close = did_you_mean(&text.value, Execution::NAMES.iter().copied());
                self.error(
                    Diagnostic::new(
                        Code::BadValue,
                        text.location,
                        format!(
                            "annotation `{}` is `{}`; it must be `per-hop` or `fused`",
                            Execution::ANNOTATION,
                            text.value
                        ),
                    )
                    .label(match close {
                        Some(c) => format!("did you mean `{c}`?"),
                        None => "unknown execution mode".to_string(),
                    })
                    .help("`fused` runs the pipeline's steps and model calls in one task (every intermediate record is still written); `per-hop` (the default) runs each as its own hop"),
                );
                None
            }
        }
    }

    fn pipeline(
        &mut self,
        name: Spanned<String>,
        namespace: String,
        location: Location,
        spec: &Node,
        spec_key: Location,
    ) -> Option<Pipeline<Raw>> {
        let what = format!("pipeline `{}`", name.value);
        let what = what.as_str();
        let f = self.fields(spec, what, PIPELINE_FIELDS)?;
        let mut steps = Vec::new();
        for node in self.seq(&f, "steps", what) {
            if let Some(step) = self.step(node) {
                steps.push(step);
            }
        }
        let steps_location = if f.get("steps").is_some() {
            f.key_location("steps")
        } else {
            spec_key
        };
        let input = f.get("input").and_then(|n| self.input(n));
        let output = f.get("output").and_then(|n| self.output(n));
        let allow_cycles = self.bool(&f, "allowCycles", what).unwrap_or(false);
        let max_step_revisits = self.uint(&f, "maxStepRevisits", what).map(|n| {
            let v = u32::try_from(n.value).unwrap_or(u32::MAX);
            Spanned::new(v, n.location)
        });
        let clean_topics_on_delete = self.dataflow(&f, what);
        Some(Pipeline {
            name,
            namespace,
            location,
            steps,
            steps_location,
            input,
            output,
            allow_cycles,
            max_step_revisits,
            clean_topics_on_delete,
            execution: None,
        })
    }

    fn step(&mut self, node: &Node) -> Option<Step<Raw>> {
        let what = "a step";
        let f = self.fields(node, what, STEP_FIELDS)?;
        let name = self.required_string(&f, "name", what)?;
        let what = format!("step `{}`", name.value);
        let batch = match f.get("batch") {
            Some(b) => {
                let bwhat = format!("`batch` of {what}");
                self.fields(b, &bwhat, BATCH_FIELDS).map(|bf| {
                    let size = self.uint(&bf, "size", &bwhat).map(|s| s.value);
                    if let (Some(0), Some(n)) = (size, bf.get("size")) {
                        self.error(
                            Diagnostic::new(Code::BadValue, n.location, "`batch.size` must be at least 1")
                                .label("a batch of 0 requests never fills"),
                        );
                    }
                    Batch {
                        size: size.filter(|s| *s > 0),
                        window_ms: self.uint(&bf, "windowMs", &bwhat).map(|s| s.value).filter(|w| *w > 0),
                        rolling: self.bool(&bf, "rolling", &bwhat).unwrap_or(false),
                    }
                })
            }
            None => None,
        };
        Some(Step {
            location: node.location,
            inputs: self.refs(&f, "inputs", &what),
            triggers: self.refs(&f, "triggers", &what),
            inputs_join: self.join_type(&f, "inputsJoinType", &what),
            triggers_join: self.join_type(&f, "triggersJoinType", &what),
            join_window_ms: self.uint(&f, "joinWindowMs", &what).map(|s| s.value),
            tensor_map: self.tensor_map(&f, &what),
            batch,
            name,
        })
    }

    fn input(&mut self, node: &Node) -> Option<Input<Raw>> {
        let what = "`input` of the pipeline";
        let f = self.fields(node, what, INPUT_FIELDS)?;
        Some(Input {
            location: f.key_location("externalInputs"),
            external_inputs: self.refs(&f, "externalInputs", what),
            external_triggers: self.refs(&f, "externalTriggers", what),
            join: self.join_type(&f, "joinType", what),
            triggers_join: self.join_type(&f, "triggersJoinType", what),
            join_window_ms: self.uint(&f, "joinWindowMs", what).map(|s| s.value),
            tensor_map: self.tensor_map(&f, what),
        })
    }

    fn output(&mut self, node: &Node) -> Option<Output<Raw>> {
        let what = "`output` of the pipeline";
        // `output: {}` and `output:` with nothing both mean "echo the input".
        if node.is_null() {
            return Some(Output {
                location: node.location,
                steps: Vec::new(),
                join: JoinType::Inner,
                join_window_ms: None,
                tensor_map: Vec::new(),
            });
        }
        let f = self.fields(node, what, OUTPUT_FIELDS)?;
        Some(Output {
            location: node.location,
            steps: self.refs(&f, "steps", what),
            join: self.join_type(&f, "stepsJoin", what),
            join_window_ms: self.uint(&f, "joinWindowMs", what).map(|s| s.value),
            tensor_map: self.tensor_map(&f, what),
        })
    }

    fn refs_of(&mut self, f: &Fields, what: &str) -> ModelRefs {
        ModelRefs {
            location: f.location,
            model_ref: self.string(f, "modelRef", what),
            pipeline_ref: self.string(f, "pipelineRef", what),
        }
    }

    fn model(&mut self, name: Spanned<String>, namespace: String, location: Location, spec: &Node) -> Option<Model> {
        let what = format!("Model `{}` spec", name.value);
        let f = self.fields(spec, &what, MODEL_FIELDS)?;
        let storage_uri = self
            .required_string(&f, "storageUri", &what)
            .map(|s| s.value)
            .unwrap_or_default();
        let mut requirements: Vec<String> = self
            .strings(&f, "requirements", &what)
            .into_iter()
            .map(|s| s.value)
            .collect();
        if let Some(t) = self.string(&f, "modelType", &what) {
            requirements.push(t.value);
        }
        let mut parameters = Vec::new();
        for p in self.seq(&f, "parameters", &what) {
            if let Some(pf) = self.fields(p, "a parameter", PARAMETER_FIELDS) {
                let n = self.required_string(&pf, "name", "a parameter");
                let v = self.string(&pf, "value", "a parameter");
                if let Some(n) = n {
                    parameters.push((n.value, v.map(|v| v.value).unwrap_or_default()));
                }
            }
        }
        let explainer = match f.get("explainer") {
            Some(node) => self.fields(node, "explainer", EXPLAINER_FIELDS).map(|ef| Explainer {
                kind: self.string(&ef, "type", "explainer").map(|s| s.value),
                refs: self.refs_of(&ef, "explainer"),
            }),
            None => None,
        };
        let llm = match f.get("llm") {
            Some(node) => self.fields(node, "llm", LLM_FIELDS).map(|lf| self.refs_of(&lf, "llm")),
            None => None,
        };
        if let Some(node) = f.get("logger") {
            if let Some(lf) = self.fields(node, "logger", LOGGER_FIELDS) {
                self.uint(&lf, "percent", "logger");
            }
        }
        self.uint(&f, "artifactVersion", &what);
        for key in ["schemaUri", "secretName"] {
            self.string(&f, key, &what);
        }
        for key in ["preloaded", "dedicated"] {
            self.bool(&f, key, &what);
        }
        Some(Model {
            location,
            storage_uri,
            requirements,
            server: self.string(&f, "server", &what),
            replicas: self.uint(&f, "replicas", &what).map(|s| s.value),
            min_replicas: self.uint(&f, "minReplicas", &what).map(|s| s.value),
            max_replicas: self.uint(&f, "maxReplicas", &what).map(|s| s.value),
            memory: self.string(&f, "memory", &what).map(|s| s.value),
            parameters,
            explainer,
            llm,
            clean_topics_on_delete: self.dataflow(&f, &what),
            name,
            namespace,
        })
    }

    fn server(&mut self, name: Spanned<String>, namespace: String, location: Location, spec: &Node) -> Option<Server> {
        let what = format!("Server `{}` spec", name.value);
        let f = self.fields(spec, &what, SERVER_FIELDS)?;
        let mut capabilities: Vec<String> = self
            .strings(&f, "capabilities", &what)
            .into_iter()
            .map(|s| s.value)
            .collect();
        capabilities.extend(
            self.strings(&f, "extraCapabilities", &what)
                .into_iter()
                .map(|s| s.value),
        );
        let endpoints = self.strings(&f, "endpoints", &what);
        for e in &endpoints {
            let ok = ["grpc://", "http://", "https://"]
                .iter()
                .any(|p| e.value.starts_with(p));
            if !ok {
                self.diags.push(
                    Diagnostic::new(
                        Code::BadValue,
                        e.location,
                        format!("`{}` is not a server endpoint", e.value),
                    )
                    .label("expected `grpc://host:port` or `http://host:port`"),
                );
            }
        }
        for key in ["replicas", "minReplicas", "maxReplicas"] {
            self.uint(&f, key, &what);
        }
        Some(Server {
            name,
            namespace,
            location,
            capabilities,
            endpoints,
        })
    }
}
