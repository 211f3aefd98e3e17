//! Connection settings for every Kafka client flowc creates. Any librdkafka property passes
//! through (`-X key=value` or a properties file), so the same binary talks to tansu, Apache
//! Kafka, Redpanda or a managed Kafka with TLS/SASL. flowc only sets defaults that the user's
//! properties override.

use std::path::Path;
use std::time::Duration;

use rdkafka::ClientConfig;

use super::broker::{self, BrokerFlavor, GroupProtocol};

#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// librdkafka properties, applied after flowc's defaults (so they win).
    pub properties: Vec<(String, String)>,
    /// Bound on every metadata/admin call, so an unreachable broker is an error, not a hang.
    pub timeout: Duration,
    /// What kind of broker this is ([`KafkaConfig::detect_broker`]); decides a few defaults.
    pub flavor: BrokerFlavor,
    /// How worker groups rebalance: what the broker offers ([`KafkaConfig::detect_broker`]),
    /// unless the user's `group.protocol` says otherwise.
    pub group_protocol: GroupProtocol,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("property `{0}` is not of the form key=value")]
    Property(String),
    #[error("{path}:{line}: `{text}` is not of the form key=value")]
    FileLine { path: String, line: usize, text: String },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            properties: Vec::new(),
            timeout: Duration::from_secs(10),
            flavor: BrokerFlavor::default(),
            group_protocol: GroupProtocol::default(),
        }
    }

    /// Asks the broker what kind it is ([`broker::detect`]) and keeps the answer in
    /// [`KafkaConfig::flavor`]. Fails as the command would: an unreachable broker, or a
    /// failed authentication, within the config's timeout.
    pub fn detect_broker(mut self) -> Result<KafkaConfig, super::KafkaError> {
        let detected = broker::detect_all(&self, self.timeout)?;
        self.flavor = detected.flavor;
        self.group_protocol = detected.group_protocol;
        Ok(self)
    }

    pub fn with(mut self, key: &str, value: &str) -> KafkaConfig {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }

    /// Parses `key=value`.
    pub fn parse_property(text: &str) -> Result<(String, String), ConfigError> {
        match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => Err(ConfigError::Property(text.to_string())),
        }
    }

    /// Reads a Java-style properties file (`key=value` lines, `#` or `!` comments).
    pub fn read_properties_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            out.push(Self::parse_property(line).map_err(|_| ConfigError::FileLine {
                path: path.display().to_string(),
                line: i + 1,
                text: line.to_string(),
            })?);
        }
        Ok(out)
    }

    fn base(&self, defaults: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        // librdkafka's own logs go through `tracing` (feature `tracing` of rdkafka).
        config.set("log_level", "4");
        for (k, v) in defaults {
            config.set(*k, v);
        }
        for (k, v) in &self.properties {
            config.set(k, v);
        }
        config
    }

    fn ms(d: Duration) -> String {
        d.as_millis().to_string()
    }

    /// The group protocol consumers use: the user's `group.protocol` if set, else what the
    /// broker offers.
    pub fn group_protocol_in_force(&self) -> GroupProtocol {
        match self.properties.iter().rev().find(|(k, _)| k == "group.protocol") {
            Some((_, v)) if v.trim().eq_ignore_ascii_case("classic") => GroupProtocol::Classic,
            Some((_, v)) if v.trim().eq_ignore_ascii_case("consumer") => GroupProtocol::Consumer,
            _ => self.group_protocol,
        }
    }

    /// A consumer in `group` that commits by hand. Range assignment keeps co-partitioned
    /// topics together: the task for partition `n` gets partition `n` of every source topic.
    /// With the consumer protocol (KIP-848, Apache Kafka 4) the broker assigns
    /// (`group.remote.assignor=range`) and a rebalance moves only what must move; its session
    /// and heartbeat times are the broker's (`group.consumer.session.timeout.ms`). With the
    /// classic protocol the client assigns, and short session and poll intervals make group
    /// joins and failover take seconds.
    pub fn consumer(&self, group: &str) -> ClientConfig {
        self.consumer_with(group, self.group_protocol_in_force())
    }

    /// [`KafkaConfig::consumer`] with the classic group protocol whatever the broker offers and
    /// the user asked: for a consumer whose rebalance callback replaces its whole assignment
    /// (the gateway's).
    pub fn classic_consumer(&self, group: &str) -> ClientConfig {
        let mut config = self.consumer_with(group, GroupProtocol::Classic);
        config.set("group.protocol", "classic");
        config.remove("group.remote.assignor");
        config
    }

    fn consumer_with(&self, group: &str, protocol: GroupProtocol) -> ClientConfig {
        let mut defaults = vec![
            ("group.id", group.to_string()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", "earliest".into()),
        ];
        match protocol {
            GroupProtocol::Consumer => {
                defaults.push(("group.protocol", "consumer".into()));
                defaults.push(("group.remote.assignor", "range".into()));
            }
            GroupProtocol::Classic => {
                defaults.push(("partition.assignment.strategy", "range".into()));
                defaults.push(("session.timeout.ms", "6000".into()));
                defaults.push(("heartbeat.interval.ms", "1000".into()));
            }
        }
        defaults.extend([
            ("max.poll.interval.ms", "10000".into()),
            // How long the broker may hold a fetch that finds nothing (librdkafka's 500 ms
            // made ~250 ms per hop on tansu, which holds a fetch for all of it): per broker.
            ("fetch.wait.max.ms", self.flavor.fetch_wait_ms().to_string()),
            ("socket.timeout.ms", Self::ms(self.timeout)),
            // What an exactly-once batch wrote is seen once its transaction commits, and what
            // an aborted one wrote never (librdkafka's default too; said here because it is
            // the contract).
            ("isolation.level", "read_committed".into()),
        ]);
        self.base(&defaults)
    }

    /// A consumer that reads partitions it assigns itself (control topic, changelogs); it
    /// never joins a group or commits.
    pub fn reader(&self) -> ClientConfig {
        self.base(&[
            ("group.id", "flowc-reader".to_string()),
            ("enable.auto.commit", "false".into()),
            ("enable.auto.offset.store", "false".into()),
            ("auto.offset.reset", "earliest".into()),
            ("fetch.wait.max.ms", self.flavor.fetch_wait_ms().to_string()),
            ("socket.timeout.ms", Self::ms(self.timeout)),
            ("isolation.level", "read_committed".into()),
        ])
    }

    /// A producer that waits for all in-sync replicas and keeps order per partition.
    ///
    /// No linger: a record is sent at once when no produce request is in flight, so an idle
    /// pipeline pays no fixed wait per hop; while one request is in flight (one per
    /// connection) the records that arrive meanwhile queue up and leave together as the next
    /// batch, so a loaded pipeline still batches. Idempotent on Apache Kafka, so a request
    /// retried across a leader change writes each record once.
    pub fn producer(&self) -> ClientConfig {
        let idempotent = self.flavor.idempotent_producers().to_string();
        self.base(&[
            ("acks", "all".into()),
            ("enable.idempotence", idempotent),
            ("linger.ms", "0".into()),
            ("max.in.flight.requests.per.connection", "1".into()),
            ("message.timeout.ms", "30000".into()),
            ("socket.timeout.ms", Self::ms(self.timeout)),
        ])
    }

    /// [`KafkaConfig::producer`] for records of up to `largest` bytes: librdkafka's own
    /// `message.max.bytes` (1,000,000 by default) is raised to it (within librdkafka's
    /// bounds), so the topics' `max.message.bytes`, checked before writing, decide; a limit set
    /// with `-X` stays. Returns the settings and the client limit in force.
    pub fn producer_for_records_of(&self, largest: usize) -> (ClientConfig, usize) {
        const LIBRDKAFKA_DEFAULT: usize = 1_000_000;
        let mut config = self.producer();
        if !self.properties.iter().any(|(k, _)| k == "message.max.bytes") {
            let bytes = largest.clamp(LIBRDKAFKA_DEFAULT, 1_000_000_000);
            config.set("message.max.bytes", bytes.to_string());
        }
        let limit = config
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(LIBRDKAFKA_DEFAULT);
        (config, limit)
    }

    pub fn admin(&self) -> ClientConfig {
        self.base(&[("socket.timeout.ms", Self::ms(self.timeout))])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_override_defaults() {
        let c = KafkaConfig::new("h:1").with("session.timeout.ms", "45000");
        let consumer = c.consumer("g");
        assert_eq!(consumer.get("session.timeout.ms"), Some("45000"));
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("bootstrap.servers"), Some("h:1"));
    }

    #[test]
    fn consumer_protocol_groups_leave_session_and_assignment_to_the_broker() {
        let mut c = KafkaConfig::new("h:1");
        c.group_protocol = GroupProtocol::Consumer;
        let consumer = c.consumer("g");
        assert_eq!(consumer.get("group.protocol"), Some("consumer"));
        assert_eq!(consumer.get("group.remote.assignor"), Some("range"));
        // librdkafka refuses these with the consumer protocol.
        for key in [
            "session.timeout.ms",
            "heartbeat.interval.ms",
            "partition.assignment.strategy",
        ] {
            assert_eq!(consumer.get(key), None, "{key}");
        }
        // The user's group.protocol wins over the broker's offer.
        let classic = c.with("group.protocol", "classic");
        assert_eq!(classic.group_protocol_in_force(), GroupProtocol::Classic);
        let consumer = classic.consumer("g");
        assert_eq!(consumer.get("partition.assignment.strategy"), Some("range"));
        assert_eq!(consumer.get("group.protocol"), Some("classic"));
        // The gateway's consumer is classic whatever the broker offers or the user asks.
        let mut c = KafkaConfig::new("h:1").with("group.protocol", "consumer");
        c.group_protocol = GroupProtocol::Consumer;
        let gateway = c.classic_consumer("g");
        assert_eq!(gateway.get("group.protocol"), Some("classic"));
        assert_eq!(gateway.get("group.remote.assignor"), None);
        assert_eq!(gateway.get("session.timeout.ms"), Some("6000"));
    }

    #[test]
    fn properties_parse_and_bad_lines_are_named() {
        assert_eq!(
            KafkaConfig::parse_property("security.protocol = SASL_SSL").unwrap(),
            ("security.protocol".to_string(), "SASL_SSL".to_string())
        );
        assert!(KafkaConfig::parse_property("novalue").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.properties");
        std::fs::write(&path, "# comment\nsasl.mechanism=PLAIN\n\nbroken line\n").unwrap();
        let err = KafkaConfig::read_properties_file(&path).unwrap_err().to_string();
        assert!(err.contains(":4: `broken line`"), "{err}");
    }
}
