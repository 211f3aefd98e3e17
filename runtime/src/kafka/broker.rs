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

/// Asks the broker what it is: Apache Kafka describes its own configuration (hundreds of
/// entries for DescribeConfigs on a broker resource); tansu answers with none. A broker that
/// refuses the request (no `DescribeConfigs` ACL on a managed cluster) is taken for Kafka. A
/// broker that cannot be reached within `wait` is an error (naming a failed authentication
/// when that is why): every command needs the broker next anyway.
pub fn detect(config: &KafkaConfig, wait: Duration) -> Result<BrokerFlavor, KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.admin().create()?;
    let metadata = admin
        .inner()
        .fetch_metadata(None, wait)
        .map_err(|e| KafkaError::unreachable(config, "fetching cluster metadata", e))?;
    let flavor = match describes_itself(&admin, &metadata, wait) {
        Ok(true) => BrokerFlavor::Kafka,
        Ok(false) => BrokerFlavor::Tansu,
        Err(e) => {
            tracing::debug!(bootstrap = %config.bootstrap, "broker configuration not described ({e}); taken for Apache Kafka");
            BrokerFlavor::Kafka
        }
    };
    tracing::debug!(%flavor, bootstrap = %config.bootstrap, "broker detected");
    Ok(flavor)
}

fn describes_itself(
    admin: &AdminClient<DefaultClientContext>,
    metadata: &rdkafka::metadata::Metadata,
    wait: Duration,
) -> Result<bool, String> {
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
        Some(Ok(resource)) => Ok(!resource.entries.is_empty()),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("no DescribeConfigs result".into()),
    }
}
