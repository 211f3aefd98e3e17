//! flowc on a Kafka-protocol broker: deployment (`apply`, `delete`, `list`, `status`) through a
//! compacted deployment log, and the worker that runs every deployed plan's tasks, scaled by
//! partition through consumer groups, with state restored from changelog topics.

pub mod broker;
pub mod client;
pub mod config;
pub mod control;
pub mod deploy;
pub mod diagnose;
pub mod groups;
pub mod inspect;
pub mod members;
pub mod placement;
pub mod restore;
pub mod worker;

use std::time::Duration;

pub use broker::BrokerFlavor;
pub use config::KafkaConfig;

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: {0}")]
    Client(Box<rdkafka::error::KafkaError>),
    #[error(
        "cannot reach a Kafka broker at {bootstrap} while {what} (gave up after {waited:?}{}): {source}",
        reported.as_deref().map(|r| format!("; the connection reported: {r}")).unwrap_or_default()
    )]
    Unreachable {
        bootstrap: String,
        what: String,
        waited: Duration,
        source: Box<rdkafka::error::KafkaError>,
        /// What a second, diagnostic connection reported ([`diagnose::diagnose`]), if anything.
        reported: Option<String>,
    },
    /// The broker refused the client's credentials: a wrong SASL user, password or mechanism.
    #[error("authentication failed at {bootstrap} ({credentials}) while {what}: {reason}")]
    Authentication {
        bootstrap: String,
        what: String,
        /// How the client presented itself ([`diagnose::credentials`]), never the password.
        credentials: String,
        /// librdkafka's text.
        reason: String,
    },
    #[error("timed out {0}")]
    Timeout(String),
    /// Work given up because it is no longer wanted (a restore whose partition moved on).
    #[error("cancelled {0}")]
    Cancelled(String),
    #[error("{0}")]
    Deploy(String),
    #[error(transparent)]
    Task(Box<crate::task::TaskError>),
    #[error(transparent)]
    State(Box<crate::state::StateError>),
}

impl From<rdkafka::error::KafkaError> for KafkaError {
    fn from(e: rdkafka::error::KafkaError) -> Self {
        KafkaError::Client(Box::new(e))
    }
}

impl From<crate::task::TaskError> for KafkaError {
    fn from(e: crate::task::TaskError) -> Self {
        KafkaError::Task(Box::new(e))
    }
}

impl From<crate::state::StateError> for KafkaError {
    fn from(e: crate::state::StateError) -> Self {
        KafkaError::State(Box::new(e))
    }
}

impl KafkaError {
    /// The error of a broker call that failed after `config.timeout`. A short diagnostic
    /// connection (at most 2 s) finds out why, since librdkafka reports it only through the
    /// client's error callback and logs: refused credentials are [`KafkaError::Authentication`],
    /// any other report goes into [`KafkaError::Unreachable`].
    pub(crate) fn unreachable(config: &KafkaConfig, what: &str, source: rdkafka::error::KafkaError) -> KafkaError {
        let reported = match diagnose::diagnose(config, config.timeout.min(Duration::from_secs(2))) {
            Some(diagnose::BrokerProblem::Authentication(reason)) => {
                return KafkaError::Authentication {
                    bootstrap: config.bootstrap.clone(),
                    what: what.to_string(),
                    credentials: diagnose::credentials(config),
                    reason,
                }
            }
            Some(diagnose::BrokerProblem::Connection(text)) => Some(text),
            None => None,
        };
        KafkaError::Unreachable {
            bootstrap: config.bootstrap.clone(),
            what: what.to_string(),
            waited: config.timeout,
            source: Box::new(source),
            reported,
        }
    }
}

/// A consumed record's headers as text (values decoded as UTF-8, lossily), in order.
pub fn text_headers<M: rdkafka::message::Message>(m: &M) -> Vec<(String, String)> {
    use rdkafka::message::Headers as _;
    m.headers()
        .map(|h| {
            h.iter()
                .map(|x| {
                    (
                        x.key.to_string(),
                        String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub use flowc_oip::backend::now_ms;
