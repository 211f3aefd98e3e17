//! The few broker behaviours flowc adapts to. Apache Kafka is the reference (Redpanda and managed
//! Kafkas behave the same here); tansu 0.6, the light embedded broker of `flowc up`, differs in
//! ways that change how far a read must go and how long a fetch waits. Everything else is plain
//! Kafka protocol on every broker.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

use super::config::KafkaConfig;
use super::KafkaError;

/// Which kind of broker flowc talks to, as far as flowc's behaviour depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BrokerFlavor {
    /// Apache Kafka and everything that behaves like it: exact high watermarks, a fetch that
    /// returns as soon as data arrives.
    #[default]
    Kafka,
    /// tansu 0.6: a high watermark that counts record batches rather than records (so it can
    /// lie below the end of a partition), and a fetch that waits out `fetch.wait.max.ms` even
    /// when data arrives.
    Tansu,
}

impl BrokerFlavor {
    /// Whether a partition's high watermark is the offset after its last record, so a read
    /// can stop there without a quiet poll.
    pub fn exact_watermarks(self) -> bool {
        self == BrokerFlavor::Kafka
    }

    /// `fetch.wait.max.ms` for consumers on this broker. Apache Kafka answers a waiting fetch
    /// as soon as a record arrives (broker_probe: a median of 2-4 ms with a 500 ms wait), so
    /// the wait only bounds idle polling: 100 ms keeps an idle worker's fetch traffic low at
    /// no latency cost. tansu does not complete a waiting fetch when a record arrives: a hop
    /// pays a delay that grows with the wait (broker_probe: a mean of 76 ms at 500 ms), so
    /// 10 ms (measured: 6.9 ms a hop, against 2 ms at 1 ms, which would make every idle
    /// consumer poll the broker a thousand times a second).
    pub fn fetch_wait_ms(self) -> u32 {
        match self {
            BrokerFlavor::Kafka => 100,
            BrokerFlavor::Tansu => 10,
        }
    }

    /// Whether producers ask for idempotence (`enable.idempotence`): exactly one copy of each
    /// record per partition even when a produce request is retried after a broker failover.
    /// tansu accepts InitProducerId but is not relied on for it.
    pub fn idempotent_producers(self) -> bool {
        self == BrokerFlavor::Kafka
    }
}

impl std::fmt::Display for BrokerFlavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BrokerFlavor::Kafka => "kafka",
            BrokerFlavor::Tansu => "tansu",
        })
    }
}

/// How the consumer groups of workers rebalance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GroupProtocol {
    /// The classic protocol with librdkafka's client-side `range` assignor. Eager: when a
    /// member joins or leaves, every member gives up every partition, and each task is
    /// rebuilt (tansu, and Kafka before 4.0).
    #[default]
    Classic,
    /// KIP-848's `group.protocol=consumer` with the broker-side `range` assignor
    /// (`group.remote.assignor=range`). Incremental: only the partitions that move stop, and
    /// partition n of every subscribed topic still goes to one member (co-partitioning).
    Consumer,
}

impl GroupProtocol {
    /// The `group.protocol` value.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        }
    }
}

impl std::fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`detect_all`] learns of a broker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detected {
    pub flavor: BrokerFlavor,
    /// The consumer protocol (KIP-848) when the broker offers it
    /// (`group.coordinator.rebalance.protocols` lists `consumer`, as Apache Kafka 4 does by
    /// default), else the classic one.
    pub group_protocol: GroupProtocol,
}

/// Asks the broker what it is: Apache Kafka describes its own configuration (hundreds of
/// entries for DescribeConfigs on a broker resource); tansu answers with none. A broker that
/// refuses the request (no `DescribeConfigs` ACL on a managed cluster) is taken for Kafka. A
/// broker that cannot be reached within `wait` is an error (naming a failed authentication
/// when that is why): every command needs the broker next anyway.
pub fn detect(config: &KafkaConfig, wait: Duration) -> Result<BrokerFlavor, KafkaError> {
    Ok(detect_all(config, wait)?.flavor)
}

/// [`detect`], plus the group protocol the broker offers (read from the same answer).
pub fn detect_all(config: &KafkaConfig, wait: Duration) -> Result<Detected, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.admin().create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, wait)
        .map_err(|e| KafkaError::unreachable(config, "fetching cluster metadata", e))?;
    let detected = match broker_config(&admin, &metadata, wait) {
        Ok(entries) if entries.is_empty() => Detected {
            flavor: BrokerFlavor::Tansu,
            group_protocol: GroupProtocol::Classic,
        },
        Ok(entries) => Detected {
            flavor: BrokerFlavor::Kafka,
            group_protocol: group_protocol_of(&entries),
        },
        Err(e) => {
            tracing::debug!(bootstrap = %config.bootstrap, "broker configuration not described ({e}); taken for Apache Kafka with classic groups");
            Detected::default()
        }
    };
    tracing::debug!(flavor = %detected.flavor, group_protocol = %detected.group_protocol, bootstrap = %config.bootstrap, "broker detected");
    Ok(detected)
}

/// The consumer protocol when `group.coordinator.rebalance.protocols` lists it.
fn group_protocol_of(entries: &[(String, Option<String>)]) -> GroupProtocol {
    let offered = entries
        .iter()
        .find(|(name, _)| name == "group.coordinator.rebalance.protocols")
        .and_then(|(_, value)| value.as_deref())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "consumer"));
    if offered {
        GroupProtocol::Consumer
    } else {
        GroupProtocol::Classic
    }
}

/// The broker's configuration entries (name, value), as DescribeConfigs gives them.
fn broker_config(
    admin: &AdminClient<DefaultClientContext>,
    metadata: &rdkafka::metadata::Metadata,
    wait: Duration,
) -> Result<Vec<(String, Option<String>)>, String> {
    let Some(broker) = metadata.brokers().first() else {
        return Err("the metadata lists no broker".into());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let options = AdminOptions::new().request_timeout(Some(wait));
    let results = runtime
        .block_on(admin.describe_configs([&ResourceSpecifier::Broker(broker.id())], &options))
        .map_err(|e| e.to_string())?;
    match results.into_iter().next() {
        Some(Ok(resource)) => Ok(resource.entries.into_iter().map(|e| (e.name, e.value)).collect()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no DescribeConfigs result".into()),
    }
}

/// Whether a client reaches any broker, as librdkafka sees it: all brokers down
/// (`ALL_BROKERS_DOWN`, raised as soon as the last connection fails) until a statistics
/// report (`statistics.interval.ms`, see [`BrokerHealth::STATS_INTERVAL_MS`]) shows a
/// connection up again. A client context owns one and feeds it from its `error` and `stats`
/// callbacks; the gateway refuses requests at once while it says down.
#[derive(Debug, Default)]
pub struct BrokerHealth {
    down: std::sync::Mutex<Option<BrokerDown>>,
}

/// Since when no broker answers, and librdkafka's words for why.
#[derive(Clone, Debug)]
pub struct BrokerDown {
    pub since: std::time::Instant,
    pub reason: String,
}

impl BrokerHealth {
    /// How often librdkafka reports statistics to a client that tracks its health: how long
    /// the health may say "down" after a broker came back.
    pub const STATS_INTERVAL_MS: u32 = 1000;

    /// From `ClientContext::error`.
    pub fn on_error(&self, error: &rdkafka::error::KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::AllBrokersDown) {
            let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
            if down.is_none() {
                tracing::warn!(reason, "no Kafka broker answers");
                *down = Some(BrokerDown {
                    since: std::time::Instant::now(),
                    reason: reason.to_string(),
                });
                crate::metrics::metrics().broker_connected.set(0);
            }
        }
    }

    /// From `ClientContext::stats`: any broker connection up clears "down".
    pub fn on_stats(&self, statistics: &rdkafka::Statistics) {
        let up = statistics
            .brokers
            .values()
            .any(|b| b.state == "UP" && b.source != "internal" && b.source != "logical");
        self.set_up(up, "no broker connection is up");
    }

    /// A request the broker answered (a fetch, metadata) proves it reachable; a statistics
    /// report with no connection up proves the opposite.
    pub fn set_up(&self, up: bool, reason: &str) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match (up, down.is_some()) {
            (true, true) => {
                tracing::info!("a Kafka broker answers again");
                *down = None;
            }
            (false, false) => {
                *down = Some(BrokerDown {
                    since: std::time::Instant::now(),
                    reason: reason.to_string(),
                })
            }
            _ => {}
        }
        crate::metrics::metrics()
            .broker_connected
            .set(i64::from(down.is_none()));
    }

    /// `Some` while no broker answers.
    pub fn down(&self) -> Option<BrokerDown> {
        self.down.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The largest record batch each topic takes (its `max.message.bytes`, which defaults to the
/// broker's `message.max.bytes`, 1 MiB on Apache Kafka), from DescribeConfigs. Topics the
/// broker does not describe (tansu describes none) are left out: the client's own
/// `message.max.bytes` is then the only limit known.
pub fn topic_record_limits(
    config: &KafkaConfig,
    topics: &[&str],
) -> Result<std::collections::BTreeMap<String, usize>, KafkaError> {
    let mut out = std::collections::BTreeMap::new();
    if topics.is_empty() || config.flavor == BrokerFlavor::Tansu {
        return Ok(out);
    }
    let admin: AdminClient<DefaultClientContext> = config.admin().create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaError::Deploy(format!("cannot start a runtime for DescribeConfigs: {e}")))?;
    let options = AdminOptions::new().request_timeout(Some(config.timeout));
    let resources: Vec<ResourceSpecifier<'_>> = topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = runtime
        .block_on(admin.describe_configs(resources.iter(), &options))
        .map_err(|e| KafkaError::unreachable(config, "describing topic configurations", e))?;
    for (topic, result) in topics.iter().zip(results) {
        let Ok(resource) = result else { continue };
        if let Some(limit) = resource
            .get("max.message.bytes")
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            out.insert(topic.to_string(), limit);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod health_tests {
    use super::*;

    #[test]
    fn all_brokers_down_until_a_connection_is_up() {
        let health = BrokerHealth::default();
        assert!(health.down().is_none());
        health.on_error(
            &rdkafka::error::KafkaError::Global(rdkafka::types::RDKafkaErrorCode::AllBrokersDown),
            "3/3 brokers are down",
        );
        let down = health.down().expect("down");
        assert_eq!(down.reason, "3/3 brokers are down");
        // Another error is not about reachability.
        health.set_up(true, "");
        assert!(health.down().is_none());
        health.on_error(
            &rdkafka::error::KafkaError::Global(rdkafka::types::RDKafkaErrorCode::MessageTimedOut),
            "x",
        );
        assert!(health.down().is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, value: &str) -> (String, Option<String>) {
        (name.to_string(), Some(value.to_string()))
    }

    #[test]
    fn the_consumer_protocol_is_used_only_where_the_broker_offers_it() {
        let kafka4 = [
            entry("num.io.threads", "2"),
            entry("group.coordinator.rebalance.protocols", "classic,consumer,streams"),
        ];
        assert_eq!(group_protocol_of(&kafka4), GroupProtocol::Consumer);
        let classic_only = [entry("group.coordinator.rebalance.protocols", "classic")];
        assert_eq!(group_protocol_of(&classic_only), GroupProtocol::Classic);
        // Kafka 3.x describes no such entry.
        assert_eq!(
            group_protocol_of(&[entry("num.io.threads", "2")]),
            GroupProtocol::Classic
        );
    }
}
