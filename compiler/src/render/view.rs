//! One drawing model of a plan, shared by the DOT, Mermaid and SVG writers: clusters, topic
//! boxes shared between them, state-store cylinders, and edges. Two views of a plan:
//!
//! - [`View::topology`]: every processor of every sub-topology (one cluster each), as Kafka
//!   Streams' `describe()` lists them; what DOT and Mermaid draw, and `flowc graph --view
//!   topology`;
//! - [`View::steps`]: the pipeline as its users think of it (`flowc graph`'s default): one
//!   frame per step with what it does (join, triggers, batch, revisit guard) and its model,
//!   the output, and the topics between them (the inputs, each step's outputs, the outputs,
//!   errors). Sources, selects and sinks are left out, and a model's call is drawn inside the
//!   step that calls it.

use super::text::detail;
use crate::plan::*;
use std::collections::{BTreeMap, BTreeSet};

/// Which view of a plan to draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ViewKind {
    /// Steps, models and the topics between them.
    #[default]
    Steps,
    /// Every processor of every sub-topology.
    Topology,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Topic,
    Processor,
    Store,
}

#[derive(Clone, Debug)]
pub struct ViewNode {
    /// A safe identifier (`n12`) for formats that restrict ids.
    pub id: String,
    pub label: String,
    /// A second, smaller line (what the processor does).
    pub detail: Option<String>,
    pub shape: Shape,
}

#[derive(Clone, Debug)]
pub struct Cluster {
    pub id: String,
    pub label: String,
    pub nodes: Vec<ViewNode>,
}

#[derive(Clone, Debug)]
pub struct ViewEdge {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    /// Stores and control flow are drawn dashed.
    pub dashed: bool,
}

#[derive(Clone, Debug, Default)]
pub struct View {
    pub clusters: Vec<Cluster>,
    pub topics: Vec<ViewNode>,
    pub edges: Vec<ViewEdge>,
}

impl View {
    /// The view `kind` of `plan`.
    pub fn of(plan: &Plan, kind: ViewKind) -> View {
        match kind {
            ViewKind::Steps => View::steps(plan),
            ViewKind::Topology => View::topology(plan),
        }
    }

    /// Every processor of every sub-topology, a cluster each (a model call shared by several
    /// pipelines drawn once).
    pub fn topology(plan: &Plan) -> View {
        let mut view = View::default();
        let mut topic_ids: BTreeMap<String, String> = BTreeMap::new();
        let mut counter = 0usize;
        let mut next_id = || {
            counter += 1;
            format!("n{counter}")
        };
        let strip = format!("{}.", plan.prefix);
        let mut seen_groups: Vec<String> = Vec::new();
        for p in &plan.pipelines {
            let ns_prefix = format!("{strip}{}.", p.namespace);
            for sub in &p.sub_topologies {
                // A model call shared by several pipelines is drawn once.
                if seen_groups.contains(&sub.consumer_group) {
                    continue;
                }
                seen_groups.push(sub.consumer_group.clone());
                let mut cluster = Cluster {
                    id: next_id(),
                    label: match &sub.role {
                        Role::ModelCall { .. } => sub.role.describe(),
                        _ => format!("{}: {}", p.name, sub.role.describe()),
                    },
                    nodes: Vec::new(),
                };
                let mut ids: BTreeMap<&str, String> = BTreeMap::new();
                for node in &sub.nodes {
                    let id = next_id();
                    ids.insert(node.name.as_str(), id.clone());
                    let local = node.name.rsplit_once('/').map_or(node.name.as_str(), |(_, l)| l);
                    let (label, extra) = match &node.op {
                        Op::Source { .. } => ("source".to_string(), None),
                        Op::Sink { lineage: false, .. } => ("sink".to_string(), None),
                        // A fused task's write for lineage; the data goes on inside the task.
                        Op::Sink { lineage: true, .. } => {
                            ("lineage sink".to_string(), Some("written, and handed on".to_string()))
                        }
                        Op::ModelCall { model } => (
                            format!("model {model}"),
                            Some("Open Inference Protocol call".to_string()),
                        ),
                        op => (local.split(':').next().unwrap_or(local).to_string(), Some(detail(op))),
                    };
                    cluster.nodes.push(ViewNode {
                        id: id.clone(),
                        label,
                        detail: extra,
                        shape: Shape::Processor,
                    });
                    if let Op::Source { topic, .. } | Op::Sink { topic, .. } = &node.op {
                        let topic_id = topic_ids.entry(topic.clone()).or_insert_with(|| {
                            let tid = next_id();
                            let role = p.topic(topic).map(|t| t.role.as_str().to_string());
                            view.topics.push(ViewNode {
                                id: tid.clone(),
                                label: topic.strip_prefix(&ns_prefix).unwrap_or(topic).to_string(),
                                detail: role,
                                shape: Shape::Topic,
                            });
                            tid
                        });
                        let (from, to) = if matches!(node.op, Op::Source { .. }) {
                            (topic_id.clone(), id.clone())
                        } else {
                            (id.clone(), topic_id.clone())
                        };
                        let dashed = matches!(
                            node.op,
                            Op::Source {
                                payload: Payload::Control | Payload::ErrorText,
                                ..
                            } | Op::Sink {
                                payload: Payload::Control | Payload::ErrorText,
                                ..
                            } | Op::Sink { lineage: true, .. }
                        );
                        view.edges.push(ViewEdge {
                            from,
                            to,
                            label: None,
                            dashed,
                        });
                    }
                    if let Some(store) = node.op.store() {
                        let sid = next_id();
                        cluster.nodes.push(ViewNode {
                            id: sid.clone(),
                            label: store.to_string(),
                            detail: Some("RocksDB + changelog".to_string()),
                            shape: Shape::Store,
                        });
                        view.edges.push(ViewEdge {
                            from: id.clone(),
                            to: sid,
                            label: None,
                            dashed: true,
                        });
                    }
                }
                for e in &sub.edges {
                    let (Some(from), Some(to)) = (ids.get(e.from.as_str()), ids.get(e.to.as_str())) else {
                        continue;
                    };
                    let label = port_label(e.port);
                    view.edges.push(ViewEdge {
                        from: from.clone(),
                        to: to.clone(),
                        label,
                        dashed: matches!(e.port, Port::Error | Port::Clear),
                    });
                }
                view.clusters.push(cluster);
            }
        }
        view
    }

    /// The steps of every pipeline, with their models and the topics between them.
    pub fn steps(plan: &Plan) -> View {
        let mut view = View::default();
        let mut ids = Ids::default();
        let mut topic_ids: BTreeMap<String, String> = BTreeMap::new();
        let many = plan.pipelines.len() > 1;
        for p in &plan.pipelines {
            StepsOf::new(p).draw(plan, p, many, &mut view, &mut ids, &mut topic_ids);
        }
        view
    }
}

#[derive(Default)]
struct Ids(usize);

impl Ids {
    fn next(&mut self) -> String {
        self.0 += 1;
        format!("n{}", self.0)
    }
}

/// One pipeline's processors as one graph: the plan's edges, and a sink joined to every
/// source of its topic (what crossing the broker does).
struct StepsOf<'a> {
    nodes: BTreeMap<&'a str, &'a Node>,
    succ: BTreeMap<&'a str, Vec<(&'a str, Port)>>,
    has_pred: BTreeSet<&'a str>,
    /// A `_model-<m>` group drawn inside the one step that calls it.
    folded: BTreeMap<&'a str, &'a str>,
}

/// The group a processor belongs to: its step (or `_output`, `_model-<m>`, …).
fn group_of(name: &str) -> &str {
    name.split('/').next().unwrap_or(name)
}

/// What the steps view shows of a processor: a label and detail, or nothing.
fn step_node(node: &Node) -> Option<(String, Option<String>)> {
    match &node.op {
        Op::Join { .. } => Some(("join".to_string(), Some(detail(&node.op)))),
        Op::TriggerGate { .. } => Some(("triggers".to_string(), Some(detail(&node.op)))),
        Op::Batch { .. } => Some(("batch".to_string(), Some(detail(&node.op)))),
        Op::CycleGuard { .. } => Some(("revisit guard".to_string(), Some(detail(&node.op)))),
        Op::ModelCall { model } => Some((
            format!("model {model}"),
            Some("Open Inference Protocol call".to_string()),
        )),
        _ => None,
    }
}

fn port_label(port: Port) -> Option<String> {
    match port {
        Port::Forward => None,
        Port::Join(i) => Some(format!("join {i}")),
        Port::Data => Some("data".to_string()),
        Port::Trigger(i) => Some(format!("trigger {i}")),
        Port::Error => Some("error".to_string()),
        Port::Clear => Some("clear".to_string()),
    }
}

impl<'a> StepsOf<'a> {
    fn new(p: &'a PipelinePlan) -> StepsOf<'a> {
        let mut nodes = BTreeMap::new();
        let mut succ: BTreeMap<&str, Vec<(&str, Port)>> = BTreeMap::new();
        let mut readers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for sub in &p.sub_topologies {
            for n in &sub.nodes {
                nodes.insert(n.name.as_str(), n);
                if let Op::Source { topic, .. } = &n.op {
                    readers.entry(topic.as_str()).or_default().push(n.name.as_str());
                }
            }
            for e in &sub.edges {
                succ.entry(e.from.as_str()).or_default().push((e.to.as_str(), e.port));
            }
        }
        for n in nodes.values() {
            if let Op::Sink { topic, .. } = &n.op {
                for r in readers.get(topic.as_str()).into_iter().flatten() {
                    succ.entry(n.name.as_str()).or_default().push((r, Port::Forward));
                }
            }
        }
        let has_pred = succ.values().flatten().map(|(to, _)| *to).collect();
        // A model's call goes inside the step whose records reach it, when exactly one does.
        let mut callers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (from, tos) in &succ {
            for (to, _) in tos {
                let (gf, gt) = (group_of(from), group_of(to));
                if gt.starts_with("_model-") && gf != gt && !gf.starts_with('_') {
                    callers.entry(gt).or_default().insert(gf);
                }
            }
        }
        let folded = callers
            .into_iter()
            .filter(|(_, c)| c.len() == 1)
            .filter_map(|(g, c)| Some((g, *c.iter().next()?)))
            .collect();
        StepsOf {
            nodes,
            succ,
            has_pred,
            folded,
        }
    }

    fn frame(&self, name: &'a str) -> &'a str {
        let g = group_of(name);
        self.folded.get(g).copied().unwrap_or(g)
    }

    /// Whether the view draws `name` as a box in its frame: what a step does, and the
    /// output's write of the pipeline's outputs.
    fn kept(&self, p: &PipelinePlan, name: &str) -> Option<(String, Option<String>)> {
        let node = self.nodes.get(name)?;
        if let Some(shown) = step_node(node) {
            return Some(shown);
        }
        match &node.op {
            Op::Sink { topic, .. }
                if group_of(name) == "_output"
                    && p.topic(topic).is_some_and(|t| t.role == TopicRole::PipelineOutputs) =>
            {
                Some(("output".to_string(), Some("the pipeline's answer".to_string())))
            }
            _ => None,
        }
    }

    fn draw(
        &self,
        plan: &Plan,
        p: &'a PipelinePlan,
        many: bool,
        view: &mut View,
        ids: &mut Ids,
        topic_ids: &mut BTreeMap<String, String>,
    ) {
        let ns_prefix = format!("{}.{}.", plan.prefix, p.namespace);
        // Frames and their boxes, in plan order.
        let mut frames: Vec<Cluster> = Vec::new();
        let mut frame_index: BTreeMap<&str, usize> = BTreeMap::new();
        let mut box_ids: BTreeMap<&str, String> = BTreeMap::new();
        for sub in &p.sub_topologies {
            for n in &sub.nodes {
                let Some((label, detail)) = self.kept(p, &n.name) else {
                    continue;
                };
                let frame = self.frame(&n.name);
                let i = *frame_index.entry(frame).or_insert_with(|| {
                    let what = match frame {
                        "_output" => "output".to_string(),
                        g => match g.strip_prefix("_model-") {
                            Some(m) => format!("model {m}"),
                            None => format!("step {g}"),
                        },
                    };
                    frames.push(Cluster {
                        id: ids.next(),
                        label: if many { format!("{}: {what}", p.name) } else { what },
                        nodes: Vec::new(),
                    });
                    frames.len() - 1
                });
                let id = ids.next();
                box_ids.insert(n.name.as_str(), id.clone());
                frames[i].nodes.push(ViewNode {
                    id,
                    label,
                    detail,
                    shape: Shape::Processor,
                });
            }
        }
        let mut topic = |view: &mut View, name: &str| -> String {
            topic_ids
                .entry(name.to_string())
                .or_insert_with(|| {
                    let id = ids.next();
                    view.topics.push(ViewNode {
                        id: id.clone(),
                        label: name.strip_prefix(&ns_prefix).unwrap_or(name).to_string(),
                        detail: p.topic(name).map(|t| t.role.as_str().to_string()),
                        shape: Shape::Topic,
                    });
                    id
                })
                .clone()
        };
        let quiet = |t: &str| {
            p.topic(t)
                .is_some_and(|t| matches!(t.role, TopicRole::Errors | TopicRole::Control))
        };
        let mut edges: Vec<ViewEdge> = Vec::new();
        let add = |edges: &mut Vec<ViewEdge>, from: String, to: String, label: Option<String>, dashed: bool| {
            if !edges.iter().any(|e| e.from == from && e.to == to && e.label == label) {
                edges.push(ViewEdge {
                    from,
                    to,
                    label,
                    dashed,
                });
            }
        };
        // `from` → `to`, through the topic box `via` where the records cross one.
        let link = |edges: &mut Vec<ViewEdge>,
                    from: &str,
                    via: Option<String>,
                    to: String,
                    label: Option<String>,
                    dashed: bool| match via {
            Some(topic) => {
                add(edges, from.to_string(), topic.clone(), None, dashed);
                add(edges, topic, to, label, dashed);
            }
            None => add(edges, from.to_string(), to, label, dashed),
        };
        // Start points: every box, and every source nothing in the pipeline writes to (the
        // pipeline's inputs, the errors topic, another pipeline's topics).
        let mut starts: Vec<(&str, String, Option<&str>)> = Vec::new();
        for (name, id) in &box_ids {
            starts.push((name, id.clone(), None));
        }
        for (name, node) in &self.nodes {
            if let Op::Source { topic: t, .. } = &node.op {
                let control = p.topic(t).is_some_and(|t| t.role == TopicRole::Control);
                if !self.has_pred.contains(name) && !control {
                    let id = topic(view, t);
                    starts.push((name, id, Some(t.as_str())));
                }
            }
        }
        for (start, start_id, entry) in starts {
            let from_frame = entry.map(|_| "").unwrap_or_else(|| self.frame(start));
            // Depth first through what the view leaves out, to the next boxes and topics.
            let mut seen: BTreeSet<&str> = BTreeSet::new();
            let mut todo: Vec<(&str, Option<&str>, bool, Port)> =
                vec![(start, entry, entry.is_some_and(quiet), Port::Forward)];
            let mut first = true;
            while let Some((at, crossed, dashed, port)) = todo.pop() {
                if !first && box_ids.contains_key(at) {
                    let to = box_ids[at].clone();
                    let label = port_label(port);
                    let to_frame = self.frame(at);
                    let via = crossed
                        .filter(|t| to_frame != from_frame && entry != Some(*t))
                        .map(|t| topic(view, t));
                    link(&mut edges, &start_id, via, to, label, dashed);
                    continue;
                }
                first = false;
                if !seen.insert(at) {
                    continue;
                }
                let mut crossed = crossed;
                let mut dashed = dashed;
                if let Some(Op::Sink { topic: t, .. }) = self.nodes.get(at).map(|n| &n.op) {
                    // Revisit counters cleared by the output (§5.6) are bookkeeping, not a step
                    // of the pipeline: `--view topology` shows them.
                    if p.topic(t).is_some_and(|t| t.role == TopicRole::Control) {
                        continue;
                    }
                    if crossed.is_none() && self.frame(at) == from_frame {
                        crossed = Some(t.as_str());
                    }
                    dashed |= quiet(t);
                    if self.succ.get(at).is_none_or(|s| s.is_empty()) {
                        // A topic nothing in the pipeline reads: the outputs, errors.
                        let tid = topic(view, t);
                        if tid != start_id {
                            let via = crossed
                                .filter(|c| *c != t && entry != Some(*c) && self.frame(at) != from_frame)
                                .map(|c| topic(view, c));
                            link(&mut edges, &start_id, via, tid, None, dashed);
                        }
                        continue;
                    }
                }
                for (next, next_port) in self.succ.get(at).into_iter().flatten() {
                    if *next_port == Port::Clear {
                        continue;
                    }
                    let d = dashed || *next_port == Port::Error;
                    todo.push((next, crossed, d, *next_port));
                }
            }
        }
        view.clusters.extend(frames);
        view.edges.extend(edges);
    }
}
