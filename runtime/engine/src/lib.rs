//! flowc's step engine (see ARCHITECTURE.md): what a step does to a record, with no I/O.
//!
//! - [`record`]: records and the key, partition and header rules of §4.2/§4.3;
//! - [`envelope`]: a record with its value decoded once, and how stateful operators store one;
//! - [`operator`]: the [`operator::Operator`] trait and its context; [`ops`]: the operators and
//!   their one registry, [`ops::build_operator`];
//! - [`task`]: one sub-topology on one partition, the unit the Kafka node schedules;
//! - [`state`]: state stores with changelog records and expiry (in memory; RocksDB with the
//!   `rocksdb` feature);
//! - [`trace`]: W3C trace context across hops, and the spans the engine reports;
//! - [`telemetry`]: where metrics and spans go, handed in by the caller;
//! - [`driver`]: the in-memory test driver (Kafka Streams' `TopologyTestDriver`).
//!
//! Invariant: no network, no Kafka client, no files but RocksDB's own. Records, model answers
//! and time come in as arguments; what to write comes back as data. `clippy.toml` bans std I/O
//! and the crate graph keeps rdkafka, tonic, axum, hyper and ureq out.

pub mod driver;
pub mod envelope;
pub mod operator;
pub mod ops;
pub mod record;
pub mod state;
pub mod task;
pub mod telemetry;
pub mod trace;
