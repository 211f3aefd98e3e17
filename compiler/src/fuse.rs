//! Fused execution (§10 **flowc**): a pipeline's per-hop plan folded into one sub-topology.
//!
//! The per-hop plan is built first, exactly as §5.2 says; fusing only rewires it, so both modes
//! run the same operators with the same settings and stores, and give the same answers:
//!
//! * every step sub-topology, the model call of each step and `_output` become one
//!   sub-topology, `_fused`, in the order step, its model call, next step, …, output;
//! * a topic that one of them writes and another reads (`model.<m>.inputs|outputs`) no longer
//!   carries the data from one to the other: the sink writing it becomes a *lineage* sink,
//!   which still writes every record (marked as lineage) and hands the same record straight
//!   to the nodes that the topic's sources fed; those sources go;
//! * `_input` (chaining) and `_errors` stay sub-topologies of their own, and the fused task
//!   reads `pipeline.<p>.inputs` from the broker as a step did.
//!
//! What cannot be fused is said, and the pipeline then runs per-hop: a cycle (§5.6) is the one
//! case, because its revisit counters are cleared through a topic that a fused task would have
//! to both write and wait on.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::*;

/// Name of the fused sub-topology (`_` cannot start a step name, so it never collides).
pub const FUSED: &str = "_fused";

/// The fused form of a per-hop pipeline plan, or why it cannot be fused.
pub fn fuse(plan: &PipelinePlan, names: &TopicNames) -> Result<PipelinePlan, String> {
    let cyclic: Vec<&str> = plan
        .sub_topologies
        .iter()
        .filter(|s| s.nodes.iter().any(|n| matches!(n.op, Op::CycleGuard { .. })))
        .map(|s| s.name.as_str())
        .collect();
    if !cyclic.is_empty() {
        return Err(format!(
            "step{} {} {} in a cycle: revisit counters are cleared through a topic the task would both write and wait on (§5.6)",
            if cyclic.len() == 1 { "" } else { "s" },
            cyclic.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
            if cyclic.len() == 1 { "is" } else { "are" },
        ));
    }

    // The sub-topologies that fuse, in running order: each step with its model call, then
    // the output.
    let mut steps = Vec::new();
    let mut order: Vec<&SubTopology> = Vec::new();
    for sub in &plan.sub_topologies {
        if let Role::Step { step } = &sub.role {
            steps.push(step.clone());
            order.push(sub);
            if let Some(call) = plan
                .sub_topologies
                .iter()
                .find(|s| matches!(&s.role, Role::ModelCall { model } if model == step))
            {
                order.push(call);
            }
        }
    }
    order.extend(plan.sub_topologies.iter().filter(|s| s.role == Role::Output));
    let fused_names: BTreeSet<&str> = order.iter().map(|s| s.name.as_str()).collect();

    let nodes: Vec<&Node> = order.iter().flat_map(|s| &s.nodes).collect();
    let written: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Sink { topic, .. } => Some(topic.as_str()),
            _ => None,
        })
        .collect();
    // Topics both written and read inside: their sources go, their sinks feed on.
    let internal: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| match &n.op {
            Op::Source { topic, .. } if written.contains(topic.as_str()) => Some(topic.as_str()),
            _ => None,
        })
        .collect();
    let mut sinks_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut dropped: BTreeMap<&str, &str> = BTreeMap::new();
    for n in &nodes {
        match &n.op {
            Op::Sink { topic, .. } if internal.contains(topic.as_str()) => {
                sinks_of.entry(topic.as_str()).or_default().push(n.name.as_str())
            }
            Op::Source { topic, .. } if internal.contains(topic.as_str()) => {
                dropped.insert(n.name.as_str(), topic.as_str());
            }
            _ => {}
        }
    }

    let mut fused = SubTopology {
        id: 0,
        name: FUSED.to_string(),
        role: Role::Fused { steps: steps.clone() },
        consumer_group: names.consumer_group(&plan.name, FUSED),
        nodes: Vec::new(),
        edges: Vec::new(),
    };
    for n in &nodes {
        if dropped.contains_key(n.name.as_str()) {
            continue;
        }
        let mut node = (*n).clone();
        if let Op::Sink { topic, lineage, .. } = &mut node.op {
            *lineage = internal.contains(topic.as_str());
        }
        fused.nodes.push(node);
    }
    for edge in order.iter().flat_map(|s| &s.edges) {
        match dropped.get(edge.from.as_str()) {
            None => fused.edges.push(edge.clone()),
            // What the source would have read back, its topic's sinks hand on directly.
            Some(topic) => {
                for sink in &sinks_of[topic] {
                    fused.edges.push(Edge {
                        from: sink.to_string(),
                        to: edge.to.clone(),
                        port: edge.port,
                    });
                }
            }
        }
    }

    let mut out = plan.clone();
    out.execution = Execution::Fused;
    let mut subs: Vec<SubTopology> = Vec::new();
    let mut placed = false;
    for sub in &plan.sub_topologies {
        if !fused_names.contains(sub.name.as_str()) {
            subs.push(sub.clone());
        } else if !placed {
            placed = true;
            subs.push(fused.clone());
        }
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        sub.id = u32::try_from(i).unwrap_or(u32::MAX);
    }
    out.sub_topologies = subs;
    for store in &mut out.stores {
        if fused_names.contains(store.sub_topology.as_str()) {
            store.sub_topology = FUSED.to_string();
        }
    }
    // A stateful sub-topology's sources and changelogs are co-partitioned (rule 11); the
    // topics now crossed inside the task no longer need to be.
    out.copartition_groups = flowc_plan::merge_copartition_groups(
        out.sub_topologies
            .iter()
            .filter_map(|s| s.copartition_group(&out.stores))
            .collect(),
    );
    out.fingerprint = String::new();
    out.fingerprint = fingerprint(&out);
    Ok(out)
}
