//! The step graph: which step reads which (petgraph), kept apart from the resources so the
//! checks on it (cycles, order) are plain graph algorithms.

use crate::ast::{Pipeline, Resolved, Target};
use crate::source::Location;
use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// How one step depends on another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dependency {
    Data,
    Trigger,
}

#[derive(Clone, Debug)]
pub struct RefEdge {
    pub kind: Dependency,
    /// The reference that creates this edge.
    pub location: Location,
}

/// Steps as nodes (by index into `Pipeline::steps`); an edge `a → b` when `b` reads `a`.
/// References to the pipeline itself are not edges.
pub struct StepGraph {
    pub graph: DiGraph<usize, RefEdge>,
    pub names: Vec<String>,
}

/// A cycle found in the graph, as a path that starts and ends at the same step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cycle {
    pub path: Vec<String>,
    /// The reference on the edge that closes the cycle.
    pub closing_ref: Location,
}

impl StepGraph {
    pub fn new(p: &Pipeline<Resolved>) -> Self {
        let mut graph = DiGraph::new();
        let names: Vec<String> = p.steps.iter().map(|s| s.name.value.clone()).collect();
        let nodes: Vec<NodeIndex> = (0..p.steps.len()).map(|i| graph.add_node(i)).collect();
        // The first step of each name (duplicates are reported elsewhere).
        let mut by_name: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
        for (i, n) in names.iter().enumerate().rev() {
            by_name.insert(n.as_str(), i);
        }
        for (i, step) in p.steps.iter().enumerate() {
            let refs = step
                .inputs
                .iter()
                .map(|r| (r, Dependency::Data))
                .chain(step.triggers.iter().map(|r| (r, Dependency::Trigger)));
            for (r, kind) in refs {
                if let Target::Step(from) = &r.target {
                    if let Some(&j) = by_name.get(from.as_str()) {
                        graph.add_edge(
                            nodes[j],
                            nodes[i],
                            RefEdge {
                                kind,
                                location: r.location,
                            },
                        );
                    }
                }
            }
        }
        StepGraph { graph, names }
    }

    /// One cycle per strongly connected component that has one, each as a concrete path.
    pub fn cycles(&self) -> Vec<Cycle> {
        let mut cycles = Vec::new();
        for scc in tarjan_scc(&self.graph) {
            let looped = scc.len() > 1 || self.graph.find_edge(scc[0], scc[0]).is_some();
            if !looped {
                continue;
            }
            // Start at the step that comes first in the file, for a stable message.
            let start = *scc.iter().min_by_key(|n| self.graph[**n]).unwrap_or(&scc[0]);
            if let Some(cycle) = self.path_back_to(start, &scc) {
                cycles.push(cycle);
            }
        }
        cycles.sort_by_key(|c| c.closing_ref);
        cycles
    }

    /// Breadth-first search inside one component for the shortest path start → … → start.
    fn path_back_to(&self, start: NodeIndex, scc: &[NodeIndex]) -> Option<Cycle> {
        use std::collections::{BTreeMap, BTreeSet, VecDeque};
        let scc: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let mut parent: BTreeMap<NodeIndex, NodeIndex> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(n) = queue.pop_front() {
            let mut edges: Vec<_> = self.graph.edges(n).collect();
            edges.sort_by_key(|e| (self.graph[e.target()], e.weight().location));
            for e in edges {
                let next = e.target();
                if !scc.contains(&next) {
                    continue;
                }
                if next == start {
                    // Walk back from `n` to `start`, then read it forwards and close the loop.
                    let mut path = vec![self.names[self.graph[n]].clone()];
                    let mut cur = n;
                    while cur != start {
                        cur = parent[&cur];
                        path.push(self.names[self.graph[cur]].clone());
                    }
                    path.reverse();
                    path.push(self.names[self.graph[start]].clone());
                    return Some(Cycle {
                        path,
                        closing_ref: e.weight().location,
                    });
                }
                if let std::collections::btree_map::Entry::Vacant(v) = parent.entry(next) {
                    v.insert(n);
                    queue.push_back(next);
                }
            }
        }
        None
    }

    /// Steps in an order where every step comes after the steps it reads, ties broken by
    /// file order (Kahn's algorithm with a min-heap), so plans read like the YAML; `None` when
    /// the graph has a cycle.
    pub fn topological_order(&self) -> Option<Vec<usize>> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut indegree: Vec<usize> = self
            .graph
            .node_indices()
            .map(|n| self.graph.neighbors_directed(n, petgraph::Direction::Incoming).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = self
            .graph
            .node_indices()
            .filter(|n| indegree[n.index()] == 0)
            .map(|n| Reverse(self.graph[n]))
            .collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(Reverse(step)) = ready.pop() {
            order.push(step);
            for next in self.graph.neighbors(NodeIndex::new(step)) {
                indegree[next.index()] -= 1;
                if indegree[next.index()] == 0 {
                    ready.push(Reverse(self.graph[next]));
                }
            }
        }
        (order.len() == indegree.len()).then_some(order)
    }

    /// Steps that are part of some cycle (they get a revisit guard).
    pub fn steps_in_cycles(&self) -> Vec<usize> {
        let mut out: Vec<usize> = tarjan_scc(&self.graph)
            .into_iter()
            .filter(|scc| scc.len() > 1 || self.graph.find_edge(scc[0], scc[0]).is_some())
            .flatten()
            .map(|n| self.graph[n])
            .collect();
        out.sort_unstable();
        out
    }
}
