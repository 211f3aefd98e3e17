//! flowc's reference models and the Open Inference Protocol server that runs them (PIPELINES.md
//! §1.3, §9; see ARCHITECTURE.md): what `flowc model-server` and `flowc up` serve, and what tests
//! and benches call as a real model server.
//!
//! - [`models`]: the reference models, pure functions of a request;
//! - [`server`]: [`ReferenceServer`] (which Models it serves) and its gRPC front;
//! - [`rest`]: its REST front.
//!
//! Invariant: no Kafka, no pipeline state: a model server only answers calls.

pub mod models;
pub mod rest;
pub mod server;

pub use server::{serve, ReferenceServer};
