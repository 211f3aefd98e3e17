//! One drawing model of a plan, shared by the DOT, Mermaid and SVG writers: clusters (one per
//! sub-topology), topic boxes shared between them, state-store cylinders, and edges.

use super::text::detail;
use crate::plan::*;
use std::collections::BTreeMap;

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
    pub fn new(plan: &Plan) -> View {
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
                    let label = match e.port {
                        Port::Forward => None,
                        Port::Join(i) => Some(format!("join {i}")),
                        Port::Data => Some("data".to_string()),
                        Port::Trigger(i) => Some(format!("trigger {i}")),
                        Port::Error => Some("error".to_string()),
                        Port::Clear => Some("clear".to_string()),
                    };
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
}
