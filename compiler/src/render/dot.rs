//! Graphviz DOT: one cluster per sub-topology, topics as boxes, stores as cylinders.

use super::view::{Shape, View};
use crate::plan::Plan;
use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// A two-line label: DOT's `\n` escape separates the lines.
fn label(name: &str, detail: Option<&str>) -> String {
    match detail {
        Some(d) => format!("\"{}\\n{}\"", escape(name), escape(d)),
        None => quote(name),
    }
}

pub fn dot(plan: &Plan) -> String {
    let view = View::topology(plan);
    let mut out = String::new();
    out.push_str("digraph flowc {\n  rankdir=LR;\n  compound=true;\n");
    out.push_str("  node [fontname=\"Helvetica\", fontsize=10];\n  edge [fontname=\"Helvetica\", fontsize=9];\n");
    for t in &view.topics {
        let _ = writeln!(
            out,
            "  {} [shape=box, style=filled, fillcolor=\"#e8f0fe\", label={}];",
            t.id,
            label(&t.label, t.detail.as_deref())
        );
    }
    for c in &view.clusters {
        let _ = writeln!(
            out,
            "  subgraph cluster_{} {{\n    label={};\n    style=rounded;\n    color=\"#888888\";",
            c.id,
            quote(&c.label)
        );
        for n in &c.nodes {
            let attrs = match n.shape {
                Shape::Store => "shape=cylinder, style=filled, fillcolor=\"#fff4e0\"",
                Shape::Topic => "shape=box",
                Shape::Processor => "shape=box, style=rounded",
            };
            let _ = writeln!(
                out,
                "    {} [{attrs}, label={}];",
                n.id,
                label(&n.label, n.detail.as_deref())
            );
        }
        out.push_str("  }\n");
    }
    for e in &view.edges {
        let mut attrs = Vec::new();
        if let Some(l) = &e.label {
            attrs.push(format!("label={}", quote(l)));
        }
        if e.dashed {
            attrs.push("style=dashed".to_string());
        }
        let attrs = if attrs.is_empty() {
            String::new()
        } else {
            format!(" [{}]", attrs.join(", "))
        };
        let _ = writeln!(out, "  {} -> {}{attrs};", e.from, e.to);
    }
    out.push_str("}\n");
    out
}
