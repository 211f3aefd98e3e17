//! Why a broker did not answer. librdkafka reports a refused SASL login, a refused connection
//! or a failed TLS handshake only through the client's error callback and its `FAIL` log lines;
//! the call that needed the broker (a metadata request, say) just times out. [`diagnose`] tries
//! once more, briefly, with a client that records those reports, so the error can say what went
//! wrong.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use super::KafkaConfig;

/// What a connection to the broker reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerProblem {
    /// The broker refused the client's credentials (SASL); librdkafka's text.
    Authentication(String),
    /// Any other connection error (connection refused, TLS handshake, a listener that
    /// expects another security protocol); librdkafka's text.
    Connection(String),
}

/// Connects to the broker for at most `wait` and returns the first problem librdkafka reports,
/// or `None` if the broker answered or nothing was reported in time.
pub fn diagnose(config: &KafkaConfig, wait: Duration) -> Option<BrokerProblem> {
    // librdkafka logs a dropped connection (with its hint: "broker might require SASL
    // authentication") at info or warning level, and only logs it.
    let producer: BaseProducer<Recorder> = config
        .admin()
        .set("log_level", "6")
        .set_log_level(RDKafkaLogLevel::Info)
        .create_with_context(Recorder::default())
        .ok()?;
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // The request makes the client connect; its failure says nothing more than "timed out".
        if producer
            .client()
            .fetch_metadata(None, left.min(Duration::from_millis(200)))
            .is_ok()
        {
            return None;
        }
        // Error events wait in the client's queue until polled.
        producer.poll(Duration::from_millis(10));
        if let Some(problem) = producer.context().problem() {
            return Some(problem);
        }
    }
}

/// How the client presents itself: `SASL_PLAINTEXT, SASL PLAIN as alice`, from the user's
/// properties (librdkafka's defaults where unset). Never the password.
pub fn credentials(config: &KafkaConfig) -> String {
    // The last setting wins, as in librdkafka; `sasl.mechanisms` is an alias.
    let get = |keys: &[&str]| {
        config
            .properties
            .iter()
            .rev()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    };
    let protocol = get(&["security.protocol"]).unwrap_or("plaintext").to_ascii_uppercase();
    if !protocol.starts_with("SASL") {
        return protocol;
    }
    let mechanism = get(&["sasl.mechanism", "sasl.mechanisms"])
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    let user = match mechanism.as_str() {
        "GSSAPI" => get(&["sasl.kerberos.principal"]).or(Some("kafkaclient")),
        "OAUTHBEARER" => None,
        _ => get(&["sasl.username"]),
    };
    match user {
        Some(user) => format!("{protocol}, SASL {mechanism} as {user}"),
        None => format!("{protocol}, SASL {mechanism}"),
    }
}

/// What librdkafka reported: error callbacks (code, text) and `FAIL` log lines (a broker
/// connection that failed, with librdkafka's explanation).
#[derive(Default)]
struct Reports {
    errors: Vec<(Option<RDKafkaErrorCode>, String)>,
    failures: Vec<String>,
}

#[derive(Default)]
struct Recorder {
    reports: Mutex<Reports>,
}

impl Recorder {
    fn problem(&self) -> Option<BrokerProblem> {
        classify(&self.reports.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// An authentication error wins over any other (a broker that drops the connection after a
/// failed login reports that too); else the first failed connection, which says more than the
/// error callback's "1/1 brokers are down"; else the first error.
fn classify(reports: &Reports) -> Option<BrokerProblem> {
    let auth = reports.errors.iter().find(|(code, _)| {
        matches!(
            code,
            Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
        )
    });
    if let Some((_, text)) = auth {
        return Some(BrokerProblem::Authentication(text.clone()));
    }
    reports
        .failures
        .first()
        .or(reports.errors.first().map(|(_, text)| text))
        .map(|text| BrokerProblem::Connection(text.clone()))
}

impl ClientContext for Recorder {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        tracing::debug!(?level, fac, message, "librdkafka (broker diagnosis)");
        if fac == "FAIL" {
            let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
            reports.failures.push(message.to_string());
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka error (broker diagnosis)");
        let mut reports = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        reports.errors.push((error.rdkafka_error_code(), reason.to_string()));
    }
}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_name_the_mechanism_and_user_but_not_the_password() {
        let sasl = KafkaConfig::new("h:1")
            .with("security.protocol", "sasl_plaintext")
            .with("sasl.mechanisms", "SCRAM-SHA-256")
            .with("sasl.mechanism", "PLAIN")
            .with("sasl.username", "alice")
            .with("sasl.password", "alice-secret");
        assert_eq!(credentials(&sasl), "SASL_PLAINTEXT, SASL PLAIN as alice");
        let kerberos = KafkaConfig::new("h:1").with("security.protocol", "SASL_SSL");
        assert_eq!(credentials(&kerberos), "SASL_SSL, SASL GSSAPI as kafkaclient");
        assert_eq!(credentials(&KafkaConfig::new("h:1")), "PLAINTEXT");
    }

    #[test]
    fn an_authentication_error_wins_over_the_disconnect_that_follows() {
        let auth = "SASL authentication error: Invalid username or password".to_string();
        let reports = Reports {
            errors: vec![
                (Some(RDKafkaErrorCode::BrokerTransportFailure), "Disconnected".into()),
                (Some(RDKafkaErrorCode::Authentication), auth.clone()),
            ],
            failures: vec!["Disconnected".into()],
        };
        assert_eq!(classify(&reports), Some(BrokerProblem::Authentication(auth)));
        let down = Reports {
            errors: vec![(Some(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down".into())],
            failures: vec!["Disconnected: broker might require SASL authentication".into()],
        };
        assert_eq!(
            classify(&down),
            Some(BrokerProblem::Connection(
                "Disconnected: broker might require SASL authentication".into()
            ))
        );
        assert_eq!(classify(&Reports::default()), None);
    }

    #[test]
    fn a_refused_connection_is_reported_at_once() {
        let started = Instant::now();
        let problem = diagnose(&KafkaConfig::new("127.0.0.1:1"), Duration::from_secs(5));
        assert!(
            matches!(&problem, Some(BrokerProblem::Connection(text)) if text.contains("127.0.0.1:1")),
            "{problem:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }
}
