//! The plan as text in the shape of Kafka Streams' `Topology#describe()`, so existing
//! describe() visualisers read it, followed by flowc's topics, stores and co-partition groups.

use crate::plan::*;
use std::fmt::Write;

pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    for (i, p) in plan.pipelines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        pipeline(&mut out, p);
    }
    if !plan.models.is_empty() {
        if !plan.pipelines.is_empty() {
            out.push('\n');
        }
        out.push_str("Models:\n");
        for m in &plan.models {
            let _ = write!(out, "  {} ({}, storage {}", m.name, m.namespace, m.storage_uri);
            if !m.requirements.is_empty() {
                let _ = write!(out, ", requirements [{}]", m.requirements.join(", "));
            }
            if let Some(s) = &m.server {
                let _ = write!(out, ", server {s}");
            }
            if let Some(e) = &m.explainer {
                let _ = write!(
                    out,
                    ", explainer {} via {}",
                    e.explainer_type.as_deref().unwrap_or("?"),
                    e.infer_path
                );
            }
            out.push_str(")\n");
        }
    }
    if !plan.servers.is_empty() {
        out.push_str("Servers:\n");
        for s in &plan.servers {
            let _ = writeln!(
                out,
                "  {} ({}, capabilities [{}], endpoints [{}])",
                s.name,
                s.namespace,
                s.capabilities.join(", "),
                s.endpoints.join(", ")
            );
        }
    }
    out
}

fn pipeline(out: &mut String, p: &PipelinePlan) {
    let _ = writeln!(
        out,
        "Pipeline: {} (namespace {}, fingerprint {}{}{})",
        p.name,
        p.namespace,
        p.fingerprint,
        if p.synchronous { "" } else { ", async-only: no output" },
        match p.execution {
            Execution::PerHop => "",
            Execution::Fused => ", execution fused",
        }
    );
    out.push_str("Topologies:\n");
    for sub in &p.sub_topologies {
        let _ = writeln!(
            out,
            "   Sub-topology: {} [{}] ({}, group {})",
            sub.id,
            sub.name,
            sub.role.describe(),
            sub.consumer_group
        );
        for node in &sub.nodes {
            let name = &node.name;
            match &node.op {
                Op::Source { topic, .. } => {
                    let _ = writeln!(out, "    Source: {name} (topics: [{topic}])");
                }
                Op::Sink {
                    topic, lineage: false, ..
                } => {
                    let _ = writeln!(out, "    Sink: {name} (topic: {topic})");
                }
                // Written as lineage, and handed on inside the task: a sink with successors.
                Op::Sink {
                    topic, lineage: true, ..
                } => {
                    let _ = writeln!(out, "    Sink: {name} (topic: {topic}, lineage)");
                }
                op => {
                    let stores: Vec<&str> = op.store().into_iter().collect();
                    let _ = writeln!(out, "    Processor: {name} (stores: [{}])", stores.join(", "));
                    let _ = writeln!(out, "      # {}", detail(op));
                }
            }
            let succ: Vec<String> = sub.successors(name).map(|e| edge_label(&e.to, e.port)).collect();
            let pred: Vec<String> = sub.predecessors(name).map(|e| edge_label(&e.from, e.port)).collect();
            if !matches!(node.op, Op::Sink { lineage: false, .. }) {
                let _ = writeln!(
                    out,
                    "      --> {}",
                    if succ.is_empty() {
                        "none".to_string()
                    } else {
                        succ.join(", ")
                    }
                );
            }
            if !matches!(node.op, Op::Source { .. }) {
                let _ = writeln!(
                    out,
                    "      <-- {}",
                    if pred.is_empty() {
                        "none".to_string()
                    } else {
                        pred.join(", ")
                    }
                );
            }
        }
        out.push('\n');
    }
    out.push_str("Topics:\n");
    for t in &p.topics {
        let mut flags = vec![t.role.as_str()];
        if t.compacted {
            flags.push("compacted");
        }
        if t.owned {
            flags.push("owned");
        }
        let _ = writeln!(out, "  {} ({})", t.name, flags.join(", "));
    }
    if !p.stores.is_empty() {
        out.push_str("Stores:\n");
        for s in &p.stores {
            let _ = writeln!(
                out,
                "  {} ({}, changelog {})",
                s.name,
                s.kind.as_str(),
                s.changelog_topic
            );
        }
    }
    if !p.copartition_groups.is_empty() {
        out.push_str("Co-partition groups:\n");
        for g in &p.copartition_groups {
            let _ = writeln!(out, "  [{}]", g.join(", "));
        }
    }
}

/// The port, when it matters: `a (join 0)`, `b (trigger 1)`.
fn edge_label(name: &str, port: Port) -> String {
    match port {
        Port::Forward => name.to_string(),
        Port::Join(i) => format!("{name} (join {i})"),
        Port::Data => format!("{name} (data)"),
        Port::Trigger(i) => format!("{name} (trigger {i})"),
        Port::Error => format!("{name} (error)"),
        Port::Clear => format!("{name} (clear)"),
    }
}

fn selection(s: &Selection) -> String {
    match s {
        Selection::All => "all tensors".to_string(),
        Selection::Only(t) => format!("tensors [{}]", t.join(", ")),
    }
}

/// One line saying what a processor does.
pub(crate) fn detail(op: &Op) -> String {
    match op {
        Op::Select {
            tensors,
            renames,
            from,
            to,
        } => {
            let mut s = selection(tensors);
            if !renames.is_empty() {
                let r: Vec<String> = renames.iter().map(|r| format!("{} -> {}", r.from, r.to)).collect();
                let _ = write!(s, ", rename {}", r.join(", "));
            }
            if from != to {
                let _ = write!(s, ", {} -> {}", payload(*from), payload(*to));
            }
            s
        }
        Op::Join {
            join_type,
            window_ms,
            inputs,
            ..
        } => format!("{} join of {inputs} inputs, window {window_ms} ms", join_type.as_str()),
        Op::TriggerMatch { tensors } => format!("fires on {}", selection(tensors)),
        Op::TriggerGate {
            join_type,
            window_ms,
            triggers,
            ..
        } => format!(
            "data passes once {} of {triggers} triggers fired, window {window_ms} ms",
            match join_type {
                crate::ast::JoinType::Any => "any",
                _ => "all",
            }
        ),
        Op::CycleGuard { max_visits, .. } => format!("at most {max_visits} visits per request, then an error record"),
        Op::Batch {
            size,
            window_ms,
            rolling,
            ..
        } => {
            let mut s = match size {
                Some(n) => format!("batch of {n} along dim 0"),
                None => "batch along dim 0".to_string(),
            };
            if let Some(w) = window_ms {
                let _ = write!(s, ", flushed after {w} ms");
            }
            if *rolling {
                s.push_str(", rolling");
            }
            s
        }
        Op::ModelCall { model } => format!("calls model {model} (Open Inference Protocol)"),
        Op::Source { topic, .. } | Op::Sink { topic, .. } => topic.clone(),
    }
}

fn payload(p: Payload) -> &'static str {
    match p {
        Payload::Request => "request",
        Payload::Response => "response",
        Payload::ErrorText => "error",
        Payload::Control => "control",
    }
}
