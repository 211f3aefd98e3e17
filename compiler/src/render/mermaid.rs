//! Mermaid flowchart: renders in GitHub/GitLab Markdown and most wikis.

use super::view::{Shape, View};
use crate::plan::Plan;
use std::fmt::Write;

/// Mermaid labels are quoted; `"` and `#` have to be written as entities.
fn text(name: &str, detail: Option<&str>) -> String {
    let esc = |s: &str| {
        s.replace('#', "#35;")
            .replace('"', "#quot;")
            .replace('<', "#lt;")
            .replace('>', "#gt;")
    };
    match detail {
        Some(d) => format!("\"{}<br/><small>{}</small>\"", esc(name), esc(d)),
        None => format!("\"{}\"", esc(name)),
    }
}

pub fn mermaid(plan: &Plan) -> String {
    let view = View::topology(plan);
    let mut out = String::from("flowchart LR\n");
    for t in &view.topics {
        let _ = writeln!(out, "  {}[{}]", t.id, text(&t.label, t.detail.as_deref()));
    }
    for c in &view.clusters {
        let _ = writeln!(out, "  subgraph {}[{}]", c.id, text(&c.label, None));
        for n in &c.nodes {
            let body = text(&n.label, n.detail.as_deref());
            let _ = match n.shape {
                Shape::Store => writeln!(out, "    {}[({})]", n.id, body),
                Shape::Topic => writeln!(out, "    {}[{}]", n.id, body),
                Shape::Processor => writeln!(out, "    {}({})", n.id, body),
            };
        }
        out.push_str("  end\n");
    }
    for e in &view.edges {
        let arrow = if e.dashed { "-.->" } else { "-->" };
        match &e.label {
            Some(l) => {
                let _ = writeln!(out, "  {} {arrow}|{}| {}", e.from, text(l, None), e.to);
            }
            None => {
                let _ = writeln!(out, "  {} {arrow} {}", e.from, e.to);
            }
        }
    }
    out
}
