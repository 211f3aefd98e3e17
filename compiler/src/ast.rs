//! The resources as typed values, before and after references are resolved.
//!
//! A [`Pipeline<Raw>`] holds references as the strings the user wrote; resolution turns it into
//! a [`Pipeline<Resolved>`] whose references are typed ports. Only the resolved form can be
//! planned, so "did we check the references?" is answered by the type (as Vector does with
//! `TransformOuter<String>` → `TransformOuter<OutputId>`).

use crate::source::Location;
use crate::yaml::Node;
pub use flowc_grammar::Side;
use serde::Serialize;
use std::fmt::Debug;

/// A value with the location of the text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub location: Location,
}

impl<T> Spanned<T> {
    pub fn new(value: T, location: Location) -> Self {
        Spanned { value, location }
    }
}

/// What the references of a pipeline are at a given stage.
pub trait Stage: Clone + Debug {
    /// `steps[].inputs`, `steps[].triggers`, `output.steps`.
    type Ref: Clone + Debug;
    /// `input.externalInputs`, `input.externalTriggers`.
    type ExtRef: Clone + Debug;
    /// Keys of `steps[].tensorMap` and `output.tensorMap`.
    type MapKey: Clone + Debug;
    /// Keys of `input.tensorMap`.
    type ExtMapKey: Clone + Debug;
}

/// References as written.
#[derive(Clone, Debug)]
pub struct Raw;

/// References resolved into ports.
#[derive(Clone, Debug)]
pub struct Resolved;

impl Stage for Raw {
    type Ref = RawRef;
    type ExtRef = RawRef;
    type MapKey = RawRef;
    type ExtMapKey = RawRef;
}

impl Stage for Resolved {
    type Ref = PortRef;
    type ExtRef = ExternalPort;
    type MapKey = MapKey;
    type ExtMapKey = ExternalPort;
}

/// A reference string as written, with its YAML node (to locate text inside the scalar).
#[derive(Clone, Debug)]
pub struct RawRef {
    pub text: String,
    pub node: Node,
}

pub use flowc_plan::JoinType;

/// The engine's join window when a resource says 0 or nothing (Seldon's default).
pub const DEFAULT_JOIN_WINDOW_MS: u64 = 60_000;

#[derive(Clone, Debug)]
pub struct Pipeline<S: Stage> {
    pub name: Spanned<String>,
    pub namespace: String,
    /// The whole document.
    pub location: Location,
    pub steps: Vec<Step<S>>,
    /// The `steps:` key (or the `spec:` key when steps are missing).
    pub steps_location: Location,
    pub input: Option<Input<S>>,
    pub output: Option<Output<S>>,
    pub allow_cycles: bool,
    pub max_step_revisits: Option<Spanned<u32>>,
    pub clean_topics_on_delete: bool,
    /// `metadata.annotations["flowc.io/execution"]` (§10), where given.
    pub execution: Option<Spanned<crate::plan::Execution>>,
}

#[derive(Clone, Debug)]
pub struct Step<S: Stage> {
    pub name: Spanned<String>,
    pub location: Location,
    pub inputs: Vec<S::Ref>,
    pub triggers: Vec<S::Ref>,
    pub inputs_join: JoinType,
    pub triggers_join: JoinType,
    pub join_window_ms: Option<u64>,
    pub tensor_map: Vec<TensorMapEntry<S::MapKey>>,
    pub batch: Option<Batch>,
}

#[derive(Clone, Debug)]
pub struct TensorMapEntry<K> {
    pub key: K,
    pub value: Spanned<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub size: Option<u64>,
    pub window_ms: Option<u64>,
    pub rolling: bool,
}

#[derive(Clone, Debug)]
pub struct Input<S: Stage> {
    pub location: Location,
    pub external_inputs: Vec<S::ExtRef>,
    pub external_triggers: Vec<S::ExtRef>,
    pub join: JoinType,
    pub triggers_join: JoinType,
    pub join_window_ms: Option<u64>,
    pub tensor_map: Vec<TensorMapEntry<S::ExtMapKey>>,
}

#[derive(Clone, Debug)]
pub struct Output<S: Stage> {
    pub location: Location,
    pub steps: Vec<S::Ref>,
    pub join: JoinType,
    pub join_window_ms: Option<u64>,
    pub tensor_map: Vec<TensorMapEntry<S::MapKey>>,
}

/// What a reference inside a pipeline points at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The pipeline itself (`P.inputs…`).
    Pipeline,
    /// A step of the pipeline, i.e. the Model of that name.
    Step(String),
}

/// A resolved reference inside a pipeline: a side of a step or of the pipeline, maybe one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRef {
    pub target: Target,
    pub side: Side,
    pub tensor: Option<String>,
    /// The normalised text (`s` → `s.outputs`), as used for comparisons and messages.
    pub text: String,
    pub location: Location,
}

/// A resolved reference to another pipeline (§2.2), or an `input.tensorMap` key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternalPort {
    pub pipeline: String,
    pub step: Option<String>,
    pub side: Side,
    pub tensor: Option<String>,
    pub text: String,
    pub location: Location,
}

/// A resolved `tensorMap` key of a step or the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapKey {
    pub target: Target,
    pub side: Side,
    pub tensor: String,
    pub location: Location,
}

#[derive(Clone, Debug)]
pub struct Model {
    pub name: Spanned<String>,
    pub namespace: String,
    pub location: Location,
    pub storage_uri: String,
    pub requirements: Vec<String>,
    pub server: Option<Spanned<String>>,
    pub replicas: Option<u64>,
    pub min_replicas: Option<u64>,
    pub max_replicas: Option<u64>,
    pub memory: Option<String>,
    pub parameters: Vec<(String, String)>,
    pub explainer: Option<Explainer>,
    pub llm: Option<ModelRefs>,
    pub clean_topics_on_delete: bool,
}

#[derive(Clone, Debug)]
pub struct Explainer {
    pub kind: Option<String>,
    pub refs: ModelRefs,
}

/// `modelRef` / `pipelineRef` of an explainer or llm section.
#[derive(Clone, Debug)]
pub struct ModelRefs {
    pub location: Location,
    pub model_ref: Option<Spanned<String>>,
    pub pipeline_ref: Option<Spanned<String>>,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub name: Spanned<String>,
    pub namespace: String,
    pub location: Location,
    pub capabilities: Vec<String>,
    pub endpoints: Vec<Spanned<String>>,
}

/// Every resource of a compilation, in file order.
#[derive(Clone, Debug)]
pub struct Resources<S: Stage> {
    pub pipelines: Vec<Pipeline<S>>,
    pub models: Vec<Model>,
    pub servers: Vec<Server>,
}

impl<S: Stage> Default for Resources<S> {
    fn default() -> Self {
        Resources {
            pipelines: Vec::new(),
            models: Vec::new(),
            servers: Vec::new(),
        }
    }
}
