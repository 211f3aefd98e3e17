//! Builds the [`Plan`] from resolved resources. Runs only when resolution found no errors.

use crate::ast::*;
use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::graph::StepGraph;
use crate::plan::*;
use std::collections::BTreeSet;

/// Naming settings of a deployment (§4.1).
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Topic prefix, `seldon` by default.
    pub prefix: String,
    /// How pipelines without a `flowc.io/execution` annotation run (§10): per-hop unless a
    /// deployment asks otherwise (`--execution fused`).
    pub execution: Execution,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            prefix: "seldon".to_string(),
            execution: Execution::PerHop,
        }
    }
}

/// Kafka refuses topic names longer than this.
pub const MAX_TOPIC_NAME: usize = 249;

pub fn build_plan(res: &Resources<Resolved>, options: &CompileOptions, diags: &mut Diagnostics) -> Plan {
    let pipelines = res
        .pipelines
        .iter()
        .map(|p| {
            let mut plan = PipelineBuilder::new(p, &options.prefix).build();
            let execution = p.execution.as_ref().map_or(options.execution, |e| e.value);
            if execution == Execution::Fused {
                match crate::fuse::fuse(&plan, &TopicNames::new(&options.prefix, &p.namespace)) {
                    Ok(fused) => plan = fused,
                    Err(why) => diags.push(
                        Diagnostic::new(
                            Code::NotFused,
                            p.execution.as_ref().map_or(p.name.location, |e| e.location),
                            format!("pipeline `{}` runs per-hop, not fused: {why}", p.name.value),
                        )
                        .label("fused execution asked for here")
                        .help("its answers are the same; each step is a topic hop of its own"),
                    ),
                }
            }
            for topic in &plan.topics {
                if topic.name.len() > MAX_TOPIC_NAME {
                    diags.push(
                        Diagnostic::new(
                            Code::TopicNameTooLong,
                            p.name.location,
                            format!(
                                "topic `{}` is {} characters long; Kafka allows {MAX_TOPIC_NAME}",
                                topic.name,
                                topic.name.len()
                            ),
                        )
                        .label("names derived from this pipeline are too long")
                        .help("use shorter pipeline, step or model names, or a shorter topic prefix"),
                    );
                }
            }
            plan
        })
        .collect();
    Plan {
        format: PLAN_FORMAT,
        prefix: options.prefix.clone(),
        pipelines,
        models: res.models.iter().map(|m| model_plan(m, &options.prefix)).collect(),
        servers: res
            .servers
            .iter()
            .map(|s| ServerPlan {
                name: s.name.value.clone(),
                namespace: s.namespace.clone(),
                capabilities: s.capabilities.clone(),
                endpoints: s.endpoints.iter().map(|e| e.value.clone()).collect(),
            })
            .collect(),
    }
}

pub use flowc_plan::TopicNames;

fn model_plan(m: &Model, prefix: &str) -> ModelPlan {
    let names = TopicNames::new(prefix, &m.namespace);
    let infer_path = |refs: &ModelRefs| match (&refs.model_ref, &refs.pipeline_ref) {
        (Some(model), _) => Some(format!("/v2/models/{}/infer", model.value)),
        (None, Some(p)) => Some(format!("/v2/pipelines/{}/infer", p.value)),
        (None, None) => None,
    };
    let mut plan = ModelPlan {
        name: m.name.value.clone(),
        namespace: m.namespace.clone(),
        storage_uri: m.storage_uri.clone(),
        reference_model: m.storage_uri.strip_prefix("flowc://").map(str::to_string),
        requirements: m.requirements.clone(),
        server: m.server.as_ref().map(|s| s.value.clone()),
        replicas: m.replicas,
        min_replicas: m.min_replicas,
        max_replicas: m.max_replicas,
        memory: m.memory.clone(),
        parameters: m.parameters.clone(),
        explainer: m.explainer.as_ref().and_then(|e| {
            infer_path(&e.refs).map(|infer_path| ExplainerPlan {
                explainer_type: e.kind.clone(),
                infer_path,
            })
        }),
        llm_infer_path: m.llm.as_ref().and_then(infer_path),
        clean_topics_on_delete: m.clean_topics_on_delete,
        input_topic: names.model(&m.name.value, Side::Inputs),
        output_topic: names.model(&m.name.value, Side::Outputs),
        call: None,
    };
    plan.call = Some(Box::new(model_call_plan(prefix, &plan)));
    plan
}

/// A topic a sub-topology reads, with everything referenced on it.
struct SourceGroup {
    topic: String,
    role: TopicRole,
    /// Short name for node names: `tfsimple1.outputs`, `join.inputs`, `q.step.s.outputs`.
    short: String,
    payload: Payload,
    pipeline_header: String,
    /// Tensors named; `None` once any reference takes the whole message.
    tensors: Option<Vec<String>>,
    renames: Vec<Rename>,
}

impl SourceGroup {
    fn add_tensor(&mut self, tensor: &Option<String>) {
        match (tensor, &mut self.tensors) {
            (None, t) => *t = None,
            (Some(name), Some(list)) => {
                if !list.contains(name) {
                    list.push(name.clone());
                }
            }
            (Some(_), None) => {}
        }
    }

    fn selection(&self) -> Selection {
        match &self.tensors {
            None => Selection::All,
            Some(list) => Selection::Only(list.clone()),
        }
    }
}

/// The topic a reference reads, named where its role is known.
struct TopicRef {
    topic: String,
    role: TopicRole,
    /// Short name for node names.
    short: String,
    side: Side,
    /// The `pipeline` header its records carry.
    header: String,
}

fn topic_role(pipeline_topic: bool, side: Side) -> TopicRole {
    match (pipeline_topic, side) {
        (true, Side::Inputs) => TopicRole::PipelineInputs,
        (true, Side::Outputs) => TopicRole::PipelineOutputs,
        (false, Side::Inputs) => TopicRole::ModelInputs,
        (false, Side::Outputs) => TopicRole::ModelOutputs,
    }
}

/// Groups references by topic in order of first appearance (§5.3). **flowc**: a topic
/// referenced both whole and by tensor gives all its tensors.
fn group_by_topic<'a>(refs: impl IntoIterator<Item = (TopicRef, &'a Option<String>)>) -> Vec<SourceGroup> {
    let mut groups: Vec<SourceGroup> = Vec::new();
    for (
        TopicRef {
            topic,
            role,
            short,
            side,
            header,
        },
        tensor,
    ) in refs
    {
        let group = match groups.iter_mut().position(|g| g.topic == topic) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(SourceGroup {
                    topic,
                    role,
                    short,
                    payload: Payload::of_side(side),
                    pipeline_header: header,
                    tensors: Some(Vec::new()),
                    renames: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        group.add_tensor(tensor);
    }
    groups
}

/// Builds one sub-topology's nodes and typed edges.
struct SubBuilder {
    name: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl SubBuilder {
    fn new(name: &str) -> Self {
        SubBuilder {
            name: name.to_string(),
            nodes: Vec::new(),
            edges: Vec::new(),
        }
    }

    /// Adds a node named `<sub-topology>/<local>` (once) and returns its name.
    fn node(&mut self, local: &str, op: Op) -> String {
        let name = format!("{}/{local}", self.name);
        if !self.nodes.iter().any(|n| n.name == name) {
            self.nodes.push(Node { name: name.clone(), op });
        }
        name
    }

    fn edge(&mut self, from: &str, to: &str, port: Port) {
        self.edges.push(Edge {
            from: from.to_string(),
            to: to.to_string(),
            port,
        });
    }
}

struct PipelineBuilder<'a> {
    p: &'a Pipeline<Resolved>,
    names: TopicNames,
    topics: Vec<Topic>,
    /// Names in `topics`, for constant-time de-duplication.
    topic_names: BTreeSet<String>,
    stores: Vec<Store>,
    /// Index in `stores` where the sub-topology being built started adding.
    subs: Vec<(Role, String, SubBuilder)>,
    copartition: Vec<Vec<String>>,
    guarded: BTreeSet<usize>,
}

impl<'a> PipelineBuilder<'a> {
    fn new(p: &'a Pipeline<Resolved>, prefix: &str) -> Self {
        PipelineBuilder {
            p,
            names: TopicNames::new(prefix, &p.namespace),
            topics: Vec::new(),
            topic_names: BTreeSet::new(),
            stores: Vec::new(),
            subs: Vec::new(),
            copartition: Vec::new(),
            guarded: BTreeSet::new(),
        }
    }

    fn pname(&self) -> &'a str {
        &self.p.name.value
    }

    fn topic(&mut self, name: &str, role: TopicRole, owned: bool) {
        if self.topic_names.insert(name.to_string()) {
            self.topics.push(Topic {
                name: name.to_string(),
                role,
                compacted: matches!(role, TopicRole::Changelog | TopicRole::Control),
                owned,
            });
        }
    }

    fn store(&mut self, part: &str, kind: StoreKind) -> String {
        let name = format!("{part}.{}", kind.as_str());
        let changelog = self
            .names
            .internal(self.pname(), part, &format!("{}-changelog", kind.as_str()));
        self.topic(&changelog, TopicRole::Changelog, true);
        self.stores.push(Store {
            name: name.clone(),
            sub_topology: part.to_string(),
            kind,
            changelog_topic: changelog,
        });
        name
    }

    /// The topic of a reference inside the pipeline; records are filtered on this pipeline.
    fn port_topic(&self, r: &PortRef) -> TopicRef {
        let p = self.pname();
        let (topic, short, pipeline_topic) = match &r.target {
            Target::Pipeline => (self.names.pipeline(p, r.side), format!("{p}.{}", r.side), true),
            Target::Step(s) => (self.names.model(s, r.side), format!("{s}.{}", r.side), false),
        };
        TopicRef {
            topic,
            role: topic_role(pipeline_topic, r.side),
            short,
            side: r.side,
            header: p.to_string(),
        }
    }

    fn groups(&mut self, refs: &[PortRef]) -> Vec<SourceGroup> {
        let groups = group_by_topic(refs.iter().map(|r| (self.port_topic(r), &r.tensor)));
        // This pipeline's own topics are deleted with it; model topics never are.
        self.register(&groups, |role| {
            matches!(role, TopicRole::PipelineInputs | TopicRole::PipelineOutputs)
        });
        groups
    }

    fn register(&mut self, groups: &[SourceGroup], owned: impl Fn(TopicRole) -> bool) {
        for g in groups {
            self.topic(&g.topic, g.role, owned(g.role));
        }
    }

    /// The sink of a sub-topology writing `payload` to `topic` for this pipeline, fed by `from`.
    fn sink(&mut self, sub: &mut SubBuilder, local: &str, topic: String, role: TopicRole, owned: bool, from: &str) {
        self.topic(&topic, role, owned);
        let sink = sub.node(
            local,
            Op::Sink {
                payload: match role {
                    TopicRole::PipelineInputs | TopicRole::ModelInputs => Payload::Request,
                    TopicRole::Errors => Payload::ErrorText,
                    TopicRole::Control | TopicRole::Changelog => Payload::Control,
                    _ => Payload::Response,
                },
                topic,
                pipeline: Some(self.pname().to_string()),
                lineage: false,
            },
        );
        sub.edge(from, &sink, Port::Forward);
    }

    fn renames_for(groups: &mut [SourceGroup], map: &[(Target, Side, String, String)], pname: &str) {
        for g in groups.iter_mut() {
            for (target, side, tensor, to) in map {
                let short = match target {
                    Target::Pipeline => format!("{pname}.{side}"),
                    Target::Step(s) => format!("{s}.{side}"),
                };
                if short == g.short {
                    g.renames.push(Rename {
                        from: tensor.clone(),
                        to: to.clone(),
                    });
                }
            }
        }
    }

    /// Sources → selects → join (if several topics): returns the node carrying the merged data.
    fn data_path(
        &mut self,
        sub: &mut SubBuilder,
        groups: &[SourceGroup],
        to: Payload,
        join: JoinType,
        window: u64,
    ) -> String {
        let mut selects = Vec::new();
        for g in groups {
            let source = sub.node(
                &format!("source:{}", g.short),
                Op::Source {
                    topic: g.topic.clone(),
                    payload: g.payload,
                    pipeline: Some(g.pipeline_header.clone()),
                },
            );
            let select = sub.node(
                &format!("select:{}", g.short),
                Op::Select {
                    tensors: g.selection(),
                    renames: g.renames.clone(),
                    from: g.payload,
                    to,
                },
            );
            sub.edge(&source, &select, Port::Forward);
            selects.push(select);
        }
        if selects.len() == 1 {
            return selects.remove(0);
        }
        let store = (join != JoinType::Any).then(|| self.store(&sub.name, StoreKind::Join));
        let join_node = sub.node(
            "join",
            Op::Join {
                join_type: join,
                window_ms: window,
                inputs: u32::try_from(selects.len()).unwrap_or(u32::MAX),
                store,
            },
        );
        for (i, s) in selects.iter().enumerate() {
            sub.edge(s, &join_node, Port::Join(u32::try_from(i).unwrap_or(u32::MAX)));
        }
        self.copartition.push(groups.iter().map(|g| g.topic.clone()).collect());
        join_node
    }

    /// Trigger sources → matches → gate; returns the gate (data must be connected to it).
    fn trigger_gate(
        &mut self,
        sub: &mut SubBuilder,
        groups: &[SourceGroup],
        join: JoinType,
        window: u64,
        data: &str,
    ) -> String {
        let store = self.store(&sub.name, StoreKind::Triggers);
        let gate = sub.node(
            "gate",
            Op::TriggerGate {
                join_type: join,
                window_ms: window,
                triggers: u32::try_from(groups.len()).unwrap_or(u32::MAX),
                store,
            },
        );
        sub.edge(data, &gate, Port::Data);
        for (i, g) in groups.iter().enumerate() {
            let source = sub.node(
                &format!("source:{}", g.short),
                Op::Source {
                    topic: g.topic.clone(),
                    payload: g.payload,
                    pipeline: Some(g.pipeline_header.clone()),
                },
            );
            let matcher = sub.node(
                &format!("trigger:{}", g.short),
                Op::TriggerMatch { tensors: g.selection() },
            );
            sub.edge(&source, &matcher, Port::Forward);
            sub.edge(&matcher, &gate, Port::Trigger(u32::try_from(i).unwrap_or(u32::MAX)));
        }
        gate
    }

    fn finish_sub(&mut self, role: Role, sub: SubBuilder) {
        let group = match &role {
            Role::ModelCall { model } => self.names.model_group(model),
            _ => self.names.consumer_group(self.pname(), &sub.name),
        };
        self.subs.push((role, group, sub));
    }

    fn window(ms: Option<u64>) -> u64 {
        match ms {
            Some(0) | None => DEFAULT_JOIN_WINDOW_MS,
            Some(ms) => ms,
        }
    }

    fn build(mut self) -> PipelinePlan {
        let p = self.p;
        let pname = self.pname();
        let graph = StepGraph::new(p);
        if p.allow_cycles {
            self.guarded = graph.steps_in_cycles().into_iter().collect();
        }
        let clear_topic = self.names.internal(pname, "_output", "revisits-clear");
        let errors_topic = self.names.errors();

        if let Some(input) = &p.input {
            self.input_sub(input);
        }
        let order = graph
            .topological_order()
            .unwrap_or_else(|| (0..p.steps.len()).collect());
        for i in order {
            self.step_sub(i, &clear_topic, &errors_topic);
        }
        if let Some(output) = &p.output {
            self.output_sub(output, &clear_topic);
        }
        // The error edge: this pipeline's error records answer its callers (§5.2).
        let mut sub = SubBuilder::new("_errors");
        self.topic(&errors_topic, TopicRole::Errors, false);
        let out_topic = self.names.pipeline(pname, Side::Outputs);
        self.topic(&out_topic, TopicRole::PipelineOutputs, true);
        let source = sub.node(
            "source:errors",
            Op::Source {
                topic: errors_topic.clone(),
                payload: Payload::ErrorText,
                pipeline: Some(pname.to_string()),
            },
        );
        let sink = sub.node(
            &format!("sink:{pname}.outputs"),
            Op::Sink {
                topic: out_topic,
                payload: Payload::ErrorText,
                pipeline: Some(pname.to_string()),
                lineage: false,
            },
        );
        sub.edge(&source, &sink, Port::Forward);
        self.finish_sub(Role::Errors, sub);

        // The model calls, so the plan shows the whole flow; shared across pipelines.
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let models: Vec<String> = p
            .steps
            .iter()
            .filter(|s| seen.insert(s.name.value.as_str()))
            .map(|s| s.name.value.clone())
            .collect();
        for m in &models {
            self.model_sub(m, &errors_topic);
        }

        let mut external: Vec<String> = Vec::new();
        if let Some(input) = &p.input {
            for r in input.external_inputs.iter().chain(&input.external_triggers) {
                if !external.contains(&r.pipeline) {
                    external.push(r.pipeline.clone());
                }
            }
        }
        let sub_topologies: Vec<SubTopology> = self
            .subs
            .into_iter()
            .enumerate()
            .map(|(i, (role, consumer_group, sub))| SubTopology {
                id: u32::try_from(i).unwrap_or(u32::MAX),
                name: sub.name,
                role,
                consumer_group,
                nodes: sub.nodes,
                edges: sub.edges,
            })
            .collect();
        let mut plan = PipelinePlan {
            name: pname.to_string(),
            namespace: p.namespace.clone(),
            fingerprint: String::new(),
            synchronous: p.output.is_some(),
            allow_cycles: p.allow_cycles,
            max_step_revisits: p.max_step_revisits.as_ref().map_or(0, |m| m.value),
            clean_topics_on_delete: p.clean_topics_on_delete,
            execution: Execution::PerHop,
            models,
            external_pipelines: external,
            sub_topologies,
            topics: self.topics,
            stores: self.stores,
            copartition_groups: Vec::new(),
        };
        // Besides the join inputs recorded while building: every stateful sub-topology's
        // sources and changelogs (§3 rule 11).
        let mut groups = self.copartition;
        groups.extend(
            plan.sub_topologies
                .iter()
                .filter_map(|s| s.copartition_group(&plan.stores)),
        );
        plan.copartition_groups = flowc_plan::merge_copartition_groups(groups);
        plan.fingerprint = fingerprint(&plan);
        plan
    }

    fn input_sub(&mut self, input: &'a Input<Resolved>) {
        let pname = self.pname();
        let mut sub = SubBuilder::new("_input");
        let topic_of = |names: &TopicNames, r: &ExternalPort| -> TopicRef {
            let (topic, short, pipeline_topic) = match &r.step {
                Some(s) => (
                    names.model(s, r.side),
                    format!("{}.step.{s}.{}", r.pipeline, r.side),
                    false,
                ),
                None => (
                    names.pipeline(&r.pipeline, r.side),
                    format!("{}.{}", r.pipeline, r.side),
                    true,
                ),
            };
            TopicRef {
                topic,
                role: topic_role(pipeline_topic, r.side),
                short,
                side: r.side,
                // Records written for pipeline Q only (§2.2).
                header: r.pipeline.clone(),
            }
        };
        let mut data = group_by_topic(
            input
                .external_inputs
                .iter()
                .map(|r| (topic_of(&self.names, r), &r.tensor)),
        );
        let triggers = group_by_topic(
            input
                .external_triggers
                .iter()
                .map(|r| (topic_of(&self.names, r), &r.tensor)),
        );
        for g in data.iter_mut() {
            for entry in &input.tensor_map {
                if topic_of(&self.names, &entry.key).topic == g.topic {
                    if let Some(t) = &entry.key.tensor {
                        g.renames.push(Rename {
                            from: t.clone(),
                            to: entry.value.value.clone(),
                        });
                    }
                }
            }
        }
        // Another pipeline's topics are never ours to delete.
        self.register(&data, |_| false);
        self.register(&triggers, |_| false);
        let window = Self::window(input.join_window_ms);
        let mut last = self.data_path(&mut sub, &data, Payload::Request, input.join, window);
        if !triggers.is_empty() {
            last = self.trigger_gate(&mut sub, &triggers, input.triggers_join, window, &last);
        }
        let topic = self.names.pipeline(pname, Side::Inputs);
        self.sink(
            &mut sub,
            &format!("sink:{pname}.inputs"),
            topic,
            TopicRole::PipelineInputs,
            true,
            &last,
        );
        self.finish_sub(Role::Input, sub);
    }

    fn map_entries(map: &[TensorMapEntry<MapKey>]) -> Vec<(Target, Side, String, String)> {
        map.iter()
            .map(|e| {
                (
                    e.key.target.clone(),
                    e.key.side,
                    e.key.tensor.clone(),
                    e.value.value.clone(),
                )
            })
            .collect()
    }

    fn step_sub(&mut self, index: usize, clear_topic: &str, errors_topic: &str) {
        let pname = self.pname();
        let step = &self.p.steps[index];
        let sname = step.name.value.as_str();
        let mut sub = SubBuilder::new(sname);
        let request = [PortRef {
            target: Target::Pipeline,
            side: Side::Inputs,
            tensor: None,
            text: format!("{pname}.inputs"),
            location: step.location,
        }];
        let inputs: &[PortRef] = if step.inputs.is_empty() { &request } else { &step.inputs };
        let mut data = self.groups(inputs);
        Self::renames_for(&mut data, &Self::map_entries(&step.tensor_map), pname);
        let window = Self::window(step.join_window_ms);
        let mut last = self.data_path(&mut sub, &data, Payload::Request, step.inputs_join, window);
        if !step.triggers.is_empty() {
            let triggers = self.groups(&step.triggers);
            last = self.trigger_gate(&mut sub, &triggers, step.triggers_join, window, &last);
        }
        if self.guarded.contains(&index) {
            let store = self.store(sname, StoreKind::Revisits);
            let max_visits = self
                .p
                .max_step_revisits
                .as_ref()
                .map_or(0, |m| m.value)
                .saturating_add(1);
            let guard = sub.node("revisits", Op::CycleGuard { max_visits, store });
            sub.edge(&last, &guard, Port::Forward);
            self.topic(clear_topic, TopicRole::Control, true);
            self.topic(errors_topic, TopicRole::Errors, false);
            let clear = sub.node(
                "source:revisits-clear",
                Op::Source {
                    topic: clear_topic.to_string(),
                    payload: Payload::Control,
                    pipeline: Some(pname.to_string()),
                },
            );
            sub.edge(&clear, &guard, Port::Clear);
            let err = sub.node(
                "sink:errors",
                Op::Sink {
                    topic: errors_topic.to_string(),
                    payload: Payload::ErrorText,
                    pipeline: Some(pname.to_string()),
                    lineage: false,
                },
            );
            sub.edge(&guard, &err, Port::Error);
            last = guard;
        }
        if let Some(batch) = &step.batch {
            let store = self.store(sname, StoreKind::Batch);
            let node = sub.node(
                "batch",
                Op::Batch {
                    size: batch.size,
                    window_ms: batch.window_ms,
                    rolling: batch.rolling,
                    store,
                },
            );
            sub.edge(&last, &node, Port::Forward);
            last = node;
        }
        let topic = self.names.model(sname, Side::Inputs);
        self.sink(
            &mut sub,
            &format!("sink:{sname}.inputs"),
            topic,
            TopicRole::ModelInputs,
            false,
            &last,
        );
        self.finish_sub(
            Role::Step {
                step: sname.to_string(),
            },
            sub,
        );
    }

    fn output_sub(&mut self, output: &Output<Resolved>, clear_topic: &str) {
        let pname = self.pname();
        let mut sub = SubBuilder::new("_output");
        let request = [PortRef {
            target: Target::Pipeline,
            side: Side::Inputs,
            tensor: None,
            text: format!("{pname}.inputs"),
            location: output.location,
        }];
        let refs: &[PortRef] = if output.steps.is_empty() {
            &request
        } else {
            &output.steps
        };
        let mut data = self.groups(refs);
        Self::renames_for(&mut data, &Self::map_entries(&output.tensor_map), pname);
        let window = Self::window(output.join_window_ms);
        let last = self.data_path(&mut sub, &data, Payload::Response, output.join, window);
        let topic = self.names.pipeline(pname, Side::Outputs);
        self.sink(
            &mut sub,
            &format!("sink:{pname}.outputs"),
            topic,
            TopicRole::PipelineOutputs,
            true,
            &last,
        );
        if !self.guarded.is_empty() {
            // Reaching the output clears the revisit counters of the key (§5.6).
            self.sink(
                &mut sub,
                "sink:revisits-clear",
                clear_topic.to_string(),
                TopicRole::Control,
                true,
                &last,
            );
        }
        self.finish_sub(Role::Output, sub);
    }

    fn model_sub(&mut self, model: &str, errors_topic: &str) {
        let (sub, topics) = model_call_sub(&self.names, model, errors_topic);
        for (topic, role) in topics {
            self.topic(&topic, role, false);
        }
        self.finish_sub(
            Role::ModelCall {
                model: model.to_string(),
            },
            sub,
        );
    }
}

/// The model gateway's sub-topology of `model` (`model.<m>.inputs` → call → `.outputs`, errors
/// to the errors topic) and the topics it touches; shared by every pipeline that uses the model.
fn model_call_sub(names: &TopicNames, model: &str, errors_topic: &str) -> (SubBuilder, [(String, TopicRole); 3]) {
    let mut sub = SubBuilder::new(&format!("_model-{model}"));
    let input = names.model(model, Side::Inputs);
    let output = names.model(model, Side::Outputs);
    let topics = [
        (input.clone(), TopicRole::ModelInputs),
        (output.clone(), TopicRole::ModelOutputs),
        (errors_topic.to_string(), TopicRole::Errors),
    ];
    let source = sub.node(
        &format!("source:{model}.inputs"),
        Op::Source {
            topic: input,
            payload: Payload::Request,
            pipeline: None,
        },
    );
    let call = sub.node(
        "call",
        Op::ModelCall {
            model: model.to_string(),
        },
    );
    let sink = sub.node(
        &format!("sink:{model}.outputs"),
        Op::Sink {
            topic: output,
            payload: Payload::Response,
            pipeline: None,
            lineage: false,
        },
    );
    let err = sub.node(
        "sink:errors",
        Op::Sink {
            topic: errors_topic.to_string(),
            payload: Payload::ErrorText,
            pipeline: None,
            lineage: false,
        },
    );
    sub.edge(&source, &call, Port::Forward);
    sub.edge(&call, &sink, Port::Forward);
    sub.edge(&call, &err, Port::Error);
    (sub, topics)
}

/// The plan that runs a deployed Model's calls on its own, so the model can be called through
/// its topics (`Seldon-Model: <m>`, §7) even when no pipeline uses it: one model-call
/// sub-topology, in the same consumer group as the pipelines' calls of that model.
pub fn model_call_plan(prefix: &str, model: &ModelPlan) -> PipelinePlan {
    let names = TopicNames::new(prefix, &model.namespace);
    let (sub, topics) = model_call_sub(&names, &model.name, &names.errors());
    let mut plan = PipelinePlan {
        name: model.name.clone(),
        namespace: model.namespace.clone(),
        fingerprint: String::new(),
        synchronous: false,
        allow_cycles: false,
        max_step_revisits: 0,
        clean_topics_on_delete: false,
        execution: Execution::PerHop,
        models: vec![model.name.clone()],
        external_pipelines: Vec::new(),
        sub_topologies: vec![SubTopology {
            id: 0,
            name: sub.name,
            role: Role::ModelCall {
                model: model.name.clone(),
            },
            consumer_group: names.model_group(&model.name),
            nodes: sub.nodes,
            edges: sub.edges,
        }],
        topics: topics
            .into_iter()
            .map(|(name, role)| Topic {
                name,
                role,
                compacted: false,
                owned: false,
            })
            .collect(),
        stores: Vec::new(),
        copartition_groups: Vec::new(),
    };
    plan.fingerprint = fingerprint(&plan);
    plan
}

pub use flowc_plan::fingerprint;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_spec() {
        let n = TopicNames::new("seldon", "default");
        assert_eq!(n.model("m", Side::Inputs), "seldon.default.model.m.inputs");
        assert_eq!(n.pipeline("p", Side::Outputs), "seldon.default.pipeline.p.outputs");
        assert_eq!(n.errors(), "seldon.default.errors.errors");
        assert_eq!(
            n.internal("p", "s", "join-changelog"),
            "seldon.default.pipeline.p.s.join-changelog"
        );
    }

    #[test]
    fn topic_roles_come_from_the_reference_not_the_name() {
        // A model named `pipeline`: its topics contain `.pipeline.` but are model topics,
        // which a pipeline's cleanTopicsOnDelete must never delete.
        let yaml = r#"
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: p}
spec:
  steps:
    - name: pipeline
    - name: b
      inputs: [pipeline]
  output: {steps: [b]}
"#;
        let (_, c) = crate::compile_str("p.yaml", yaml, &CompileOptions::default());
        let plan = c.plan.expect("compiles");
        let topic = plan.pipelines[0]
            .topic("seldon.default.model.pipeline.outputs")
            .expect("topic");
        assert_eq!(topic.role, TopicRole::ModelOutputs);
        assert!(!topic.owned);
        let own = plan.pipelines[0]
            .topic("seldon.default.pipeline.p.outputs")
            .expect("topic");
        assert_eq!(own.role, TopicRole::PipelineOutputs);
        assert!(own.owned);
    }
}
