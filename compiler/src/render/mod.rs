//! Printing a plan: `text` (Kafka Streams' `Topology#describe()` shape), `json`, `dot`, `mermaid`,
//! `svg`.

mod dot;
mod mermaid;
mod svg;
mod text;
pub mod view;

pub use dot::dot;
pub use mermaid::mermaid;
pub use svg::svg;
pub use text::text;

use crate::plan::Plan;

/// The plan as pretty JSON (the form the runtime reads).
pub fn json(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).unwrap_or_default()
}
