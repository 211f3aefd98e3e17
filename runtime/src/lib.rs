//! The Kafka node (see ARCHITECTURE.md): workers, the model and pipeline gateways, deploy and
//! inspect, metrics, traces and dev brokers. It runs the engine's tasks (flowc-engine) on a
//! Kafka-protocol broker and calls models over the Open Inference Protocol (flowc-oip); it reads
//! plans (flowc-plan), never YAML.

pub mod devbroker;
pub mod gateway;
pub mod kafka;
pub mod metrics;
pub mod otlp;
pub mod request_id;
#[cfg(test)]
mod test_fixtures;

// The engine and the protocol, where the node's modules (and its users) have always found them.
pub use flowc_engine::{driver, envelope, operator, ops, record, state, task, telemetry, trace};
pub use flowc_oip::{json, proto, tensor};
