//! Probes of the brokers flowc runs on: each test pins down one piece of Kafka behaviour the
//! workers, `deploy`, `inspect` and restores rely on, against a real broker through librdkafka.
//! Apache Kafka is the reference; tansu (the embedded broker of `flowc up`) differs in a few
//! places, and there the test matches on the broker kind, asserts what each broker actually does
//! and says so in a comment, so an upgrade of either that changes it shows up here.
//!
//! The broker is `FLOWC_TEST_BROKER` (`kafka`, the default, or `tansu`). All tests of this binary
//! share ONE broker ([`DevBroker::shared`], started by the first test that needs it and killed
//! with the process): Apache Kafka is a JVM that takes seconds to start. Tests run in parallel on
//! it, so every test names its topics, groups and transactional ids with a prefix of its own
//! ([`Probe::n`]) and only ever looks at names with that prefix (group lists, topic lists).
//! Every wait is bounded by a deadline. A failing test prints the tail of the broker's log.
//!
//! Needs the broker: `scripts/install-kafka.sh` (or `FLOWC_KAFKA_HOME`) for Apache Kafka,
//! `scripts/install-broker.sh` (or `FLOWC_TANSU=/path/to/tansu`) for tansu.
//!
//! ```text
//! FLOWC_TEST_BROKER=kafka cargo test -p flowc-runtime --test broker_probe
//! FLOWC_TEST_BROKER=tansu cargo test -p flowc-runtime --test broker_probe
//! ```

use std::collections::BTreeSet;
use std::error::Error;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use flowc_runtime::devbroker::{BrokerKind, DevBroker};
use flowc_runtime::kafka::broker::{self, BrokerFlavor};
use flowc_runtime::kafka::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication, TopicResult};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseProducer, BaseRecord, FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, Timestamp, TopicPartitionList};
use tokio::runtime::Runtime;

type TestResult<T = ()> = Result<T, Box<dyn Error>>;
/// A topic to create: name, partitions, configs.
type TopicSpec<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// The environment variable that picks the broker.
const BROKER_ENV: &str = "FLOWC_TEST_BROKER";
/// Bound of every single broker round trip in these tests.
const CALL: Duration = Duration::from_secs(10);
/// Bound of every wait for a group to settle or for records to arrive.
const SETTLE: Duration = Duration::from_secs(60);
/// Bound of a whole test body.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// Consumers print librdkafka's log to stderr when `FLOWC_PROBE_DEBUG` is set (to librdkafka
/// `debug` contexts, e.g. `cgrp,fetch`), to see what a probe is waiting for.
struct Logged;

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!("librdkafka {level:?} {fac}: {log_message}");
    }
}

impl ConsumerContext for Logged {}

type ProbeConsumer = BaseConsumer<Logged>;

/// One test's view of the shared broker: its kind, the prefix of the test's names, and a
/// runtime for the async admin and producer calls.
struct Probe {
    name: &'static str,
    kind: BrokerKind,
    broker: &'static DevBroker,
    rt: Runtime,
}

/// The broker kind of this run: `FLOWC_TEST_BROKER`, Apache Kafka when unset.
fn broker_kind() -> BrokerKind {
    BrokerKind::from_env(BROKER_ENV, BrokerKind::Kafka).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `body` against the shared broker, on a thread of its own bounded by [`TEST_TIMEOUT`];
/// on an error, a panic or a timeout prints the tail of the broker's log. A timed-out body is
/// left running (a hung librdkafka call cannot be cancelled) and the test fails.
fn probe(name: &'static str, body: impl FnOnce(&Probe) -> TestResult + Send + 'static) {
    let kind = broker_kind();
    let broker = DevBroker::shared(kind).unwrap_or_else(|e| panic!("{name}: cannot start the {kind} dev broker: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let probe = Arc::new(Probe { name, kind, broker, rt });
    let (done_tx, done_rx) = mpsc::channel();
    let worker = {
        let probe = Arc::clone(&probe);
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let started = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| body(&probe).map_err(|e| e.to_string())));
                eprintln!("{name} on {kind}: body took {:?}", started.elapsed());
                let _ = done_tx.send(());
                outcome
            })
            .expect("spawn the probe thread")
    };
    let outcome = match done_rx.recv_timeout(TEST_TIMEOUT) {
        Ok(()) => worker.join().unwrap_or_else(Err),
        Err(_) => Ok(Err(format!("timed out after {TEST_TIMEOUT:?}"))),
    };
    if !matches!(outcome, Ok(Ok(()))) {
        eprintln!(
            "----- {kind} log tail ({}, all of it in {}; shared by every test of this binary) -----\n{}\n\
             ----- end of {kind} log -----",
            broker.bootstrap(),
            broker.log_path().display(),
            broker.log_tail()
        );
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name} on {kind}: {e}"),
        Err(panic) => resume_unwind(panic),
    }
}

impl Probe {
    /// `what` prefixed with this test's name: a topic, group or transactional id no other test
    /// of the binary uses.
    fn n(&self, what: &str) -> String {
        format!("{}-{what}", self.name)
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.broker.bootstrap());
        config
    }

    fn admin(&self) -> TestResult<AdminClient<DefaultClientContext>> {
        Ok(self.config().create()?)
    }

    fn admin_options() -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(CALL))
            .operation_timeout(Some(CALL))
    }

    /// Runs an admin or producer future to completion, bounded by [`CALL`].
    fn block_on<F: std::future::Future>(&self, future: F) -> TestResult<F::Output> {
        Ok(self.rt.block_on(async { tokio::time::timeout(CALL, future).await })?)
    }

    fn create_topics(&self, topics: &[TopicSpec<'_>]) -> TestResult<Vec<TopicResult>> {
        let new: Vec<NewTopic> = topics
            .iter()
            .map(|(name, partitions, configs)| {
                configs.iter().fold(
                    NewTopic::new(name, *partitions, TopicReplication::Fixed(1)),
                    |t, (k, v)| t.set(k, v),
                )
            })
            .collect();
        let admin = self.admin()?;
        Ok(self.block_on(admin.create_topics(&new, &Self::admin_options()))??)
    }

    /// Creates topics that must not exist yet, and waits (bounded) until the metadata lists
    /// every partition of each with a leader: Apache Kafka answers CreateTopics before the
    /// leaders are known to every client, and a ListOffsets in between fails.
    fn create(&self, topics: &[(&str, i32)]) -> TestResult {
        let specs: Vec<TopicSpec<'_>> = topics.iter().map(|(n, p)| (*n, *p, &[][..])).collect();
        for result in self.create_topics(&specs)? {
            result.map_err(|(topic, code)| format!("creating {topic}: {code:?}"))?;
        }
        for (topic, partitions) in topics {
            self.wait_for_leaders(topic, *partitions)?;
        }
        Ok(())
    }

    fn wait_for_leaders(&self, topic: &str, partitions: i32) -> TestResult {
        let client = self.consumer(None, &[])?;
        let deadline = Instant::now() + CALL;
        loop {
            let metadata = client.fetch_metadata(Some(topic), CALL)?;
            let ready = metadata.topics().first().is_some_and(|t| {
                t.error().is_none()
                    && t.partitions().len() == partitions as usize
                    && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{topic}: no leader for every partition within {CALL:?}").into());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn producer(&self, extra: &[(&str, &str)]) -> TestResult<FutureProducer> {
        let mut config = self.config();
        config.set("message.timeout.ms", "10000");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Ok(config.create()?)
    }

    /// A transactional producer, initialised (the first InitProducerId on a fresh Apache
    /// Kafka creates `__transaction_state`, which takes a moment: bounded by [`SETTLE`]).
    fn transactional_producer(&self, id: &str) -> TestResult<FutureProducer> {
        let producer = self.producer(&[("transactional.id", id)])?;
        producer.init_transactions(SETTLE)?;
        Ok(producer)
    }

    /// Produces one record and waits for its delivery; returns (partition, offset).
    fn produce(&self, producer: &FutureProducer, record: FutureRecord<'_, [u8], [u8]>) -> TestResult<(i32, i64)> {
        let delivery = self
            .block_on(producer.send(record, CALL))?
            .map_err(|(e, _)| format!("delivery failed: {e}"))?;
        Ok((delivery.partition, delivery.offset))
    }

    fn produce_simple(&self, topic: &str, partition: i32, key: &str, value: &str) -> TestResult<i64> {
        let producer = self.producer(&[])?;
        let record = FutureRecord::to(topic)
            .partition(partition)
            .key(key.as_bytes())
            .payload(value.as_bytes());
        Ok(self.produce(&producer, record)?.1)
    }

    /// Produces `payload` to partition 0 of `topic` inside a transaction of `producer`, which
    /// is then committed or aborted.
    fn transaction(&self, producer: &FutureProducer, topic: &str, payloads: &[&str], commit: bool) -> TestResult {
        producer.begin_transaction()?;
        for payload in payloads {
            self.produce(
                producer,
                FutureRecord::to(topic).partition(0).payload(payload.as_bytes()),
            )?;
        }
        if commit {
            producer.commit_transaction(CALL)?;
        } else {
            producer.abort_transaction(CALL)?;
        }
        Ok(())
    }

    /// A consumer with the settings flowc's workers use, plus `extra`.
    fn consumer(&self, group: Option<&str>, extra: &[(&str, &str)]) -> TestResult<ProbeConsumer> {
        let mut config = self.config();
        config
            .set("session.timeout.ms", "6000")
            .set("max.poll.interval.ms", "10000")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("partition.assignment.strategy", "range");
        if let Some(group) = group {
            config.set("group.id", group);
        }
        for (k, v) in extra {
            config.set(*k, *v);
        }
        if let Ok(debug) = std::env::var("FLOWC_PROBE_DEBUG") {
            config.set("debug", debug).set_log_level(RDKafkaLogLevel::Debug);
        } else {
            config.set_log_level(RDKafkaLogLevel::Warning);
        }
        Ok(config.create_with_context(Logged)?)
    }

    /// The topics of this test in the metadata.
    fn topic_names(&self) -> TestResult<BTreeSet<String>> {
        let client = self.consumer(None, &[])?;
        let metadata = client.fetch_metadata(None, CALL)?;
        let prefix = self.n("");
        Ok(metadata
            .topics()
            .iter()
            .map(|t| t.name().to_string())
            .filter(|t| t.starts_with(&prefix))
            .collect())
    }
}

/// Polls until `n` records arrived (errors other than end-of-partition fail).
fn poll_records(consumer: &ProbeConsumer, n: usize) -> TestResult<Vec<OwnedMessage>> {
    let deadline = Instant::now() + SETTLE;
    let mut records = Vec::new();
    while records.len() < n {
        if Instant::now() >= deadline {
            return Err(format!("only {} of {n} records within {SETTLE:?}", records.len()).into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => records.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
    Ok(records)
}

/// Reads the partition `consumer` was assigned (with `enable.partition.eof`) until end of
/// partition; returns the offsets and payloads read.
fn read_until_eof(consumer: &ProbeConsumer, partition: i32) -> TestResult<Vec<(i64, String)>> {
    let deadline = Instant::now() + SETTLE;
    let mut read = Vec::new();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => read.push((
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => return Ok(read),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        if Instant::now() > deadline {
            return Err(format!("no end of partition within {SETTLE:?}, read {read:?}").into());
        }
    }
}

/// The payloads of partition 0 of `topic`, read from the beginning to its end with
/// `isolation.level` = `isolation`.
fn read_to_end(p: &Probe, topic: &str, isolation: &str) -> TestResult<Vec<String>> {
    let consumer = p.consumer(
        Some(&p.n("reader")),
        &[("isolation.level", isolation), ("enable.partition.eof", "true")],
    )?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    Ok(read_until_eof(&consumer, 0)?.into_iter().map(|(_, v)| v).collect())
}

/// The consumer's fetch position on `topic`/`partition`.
fn position(consumer: &ProbeConsumer, topic: &str, partition: i32) -> TestResult<Option<Offset>> {
    Ok(consumer
        .position()?
        .find_partition(topic, partition)
        .map(|e| e.offset()))
}

/// A group member as DescribeGroups describes it: id, client id, host, the length of its
/// metadata and its assignment.
type MemberView<'a> = (&'a str, &'a str, &'a str, Option<usize>, Option<&'a [u8]>);

/// Partition numbers of `topic` in `consumer`'s current assignment.
fn assigned(consumer: &ProbeConsumer, topic: &str) -> TestResult<BTreeSet<i32>> {
    Ok(consumer
        .assignment()?
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect())
}

/// Decodes a member assignment of the Kafka consumer protocol (`ConsumerProtocolAssignment`:
/// version i16, then an array of (topic string, array of i32 partitions), then user data) into
/// (topic, partitions) pairs.
fn decode_assignment(bytes: &[u8]) -> TestResult<Vec<(String, Vec<i32>)>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> TestResult<&'a [u8]> {
        if bytes.len() < n {
            return Err(format!("assignment truncated: wanted {n} bytes, {} left", bytes.len()).into());
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn i16_(bytes: &mut &[u8]) -> TestResult<i16> {
        Ok(i16::from_be_bytes(take(bytes, 2)?.try_into()?))
    }
    fn i32_(bytes: &mut &[u8]) -> TestResult<i32> {
        Ok(i32::from_be_bytes(take(bytes, 4)?.try_into()?))
    }
    let mut rest = bytes;
    let _version = i16_(&mut rest)?;
    let topics = i32_(&mut rest)?;
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = i16_(&mut rest)?;
        let topic = String::from_utf8(take(&mut rest, len.max(0) as usize)?.to_vec())?;
        let n = i32_(&mut rest)?;
        let partitions = (0..n).map(|_| i32_(&mut rest)).collect::<TestResult<Vec<_>>>()?;
        out.push((topic, partitions));
    }
    Ok(out)
}

/// `broker::detect` tells the brokers apart (DescribeConfigs on the broker resource: Apache
/// Kafka describes hundreds of settings, tansu none), and `KafkaConfig::detect_broker` keeps
/// the answer. flowc picks its fetch wait, idempotence and end-of-read rule from it.
#[test]
fn detect_tells_the_broker_apart() {
    probe("detect", |p| {
        let config = KafkaConfig::new(p.broker.bootstrap());
        let started = Instant::now();
        let flavor = broker::detect(&config, CALL)?;
        eprintln!("broker::detect: {flavor} in {:?}", started.elapsed());
        let expected = match p.kind {
            BrokerKind::Kafka => BrokerFlavor::Kafka,
            BrokerKind::Tansu => BrokerFlavor::Tansu,
        };
        assert_eq!(flavor, expected);
        assert_eq!(config.detect_broker()?.flavor, expected);

        // What detect keys on, asserted directly, so a change shows up as a broker change here
        // and not as a wrong flavor somewhere else.
        let admin = p.admin()?;
        let node = admin.inner().fetch_metadata(None, CALL)?.brokers()[0].id();
        let described =
            p.block_on(admin.describe_configs(&[ResourceSpecifier::Broker(node)], &Probe::admin_options()))??;
        let entries = described
            .into_iter()
            .next()
            .ok_or("no DescribeConfigs result")?
            .map_err(|e| format!("DescribeConfigs(broker {node}): {e:?}"))?
            .entries
            .len();
        eprintln!("DescribeConfigs(broker {node}): {entries} entries");
        match p.kind {
            BrokerKind::Kafka => assert!(entries > 50, "Apache Kafka described only {entries} broker configs"),
            // tansu 0.6.0-510f3e2 answers the request with no entries.
            BrokerKind::Tansu => assert_eq!(entries, 0),
        }
        Ok(())
    });
}

/// (a) CreateTopics with a partition count and `cleanup.policy=compact`; creating it again is
/// TopicAlreadyExists. DescribeConfigs of the topic reports the policy back.
#[test]
fn create_topics_with_partitions_and_compaction() {
    probe("create_topics", |p| {
        let (changelog, plain) = (p.n("changelog"), p.n("plain"));
        let compact: &[(&str, &str)] = &[("cleanup.policy", "compact")];
        let results = p.create_topics(&[(&changelog, 6, compact), (&plain, 3, &[])])?;
        assert_eq!(results, vec![Ok(changelog.clone()), Ok(plain.clone())]);
        p.wait_for_leaders(&changelog, 6)?;
        p.wait_for_leaders(&plain, 3)?;

        let client = p.consumer(None, &[])?;
        let metadata = client.fetch_metadata(Some(&changelog), CALL)?;
        let topic = &metadata.topics()[0];
        assert_eq!(topic.error(), None);
        let mut partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        partitions.sort_unstable();
        assert_eq!(partitions, (0..6).collect::<Vec<_>>());
        assert_eq!(
            client.fetch_metadata(Some(&plain), CALL)?.topics()[0]
                .partitions()
                .len(),
            3
        );

        let again = p.create_topics(&[(&changelog, 6, compact)])?;
        assert_eq!(
            again,
            vec![Err((changelog.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
        );

        let admin = p.admin()?;
        let described =
            p.block_on(admin.describe_configs(&[ResourceSpecifier::Topic(&changelog)], &Probe::admin_options()))??;
        let resource = described
            .into_iter()
            .next()
            .ok_or("no DescribeConfigs result")?
            .map_err(|e| format!("DescribeConfigs(topic): {e:?}"))?;
        let policy = resource.get("cleanup.policy").and_then(|e| e.value.clone());
        eprintln!(
            "describe_configs(changelog): cleanup.policy = {policy:?} ({} entries)",
            resource.entries.len()
        );
        assert_eq!(policy.as_deref(), Some("compact"));
        match p.kind {
            // Every topic config, defaults included.
            BrokerKind::Kafka => assert!(resource.entries.len() > 10, "{} entries", resource.entries.len()),
            // tansu 0.6.0-510f3e2 describes only the configs given at creation.
            BrokerKind::Tansu => assert_eq!(resource.entries.len(), 1),
        }
        Ok(())
    });
}

/// (b) A record produced to an explicit partition keeps its key, headers (including a null
/// value) and timestamp.
#[test]
fn produce_and_consume_partition_key_headers() {
    probe("produce_consume", |p| {
        let events = p.n("events");
        p.create(&[(&events, 4)])?;
        let producer = p.producer(&[])?;
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "pipeline",
                value: Some("p1"),
            })
            .insert(Header {
                key: "binary",
                value: Some(&[0u8, 1, 2, 255][..]),
            })
            .insert(Header::<&str> {
                key: "null",
                value: None,
            });
        let record = FutureRecord::to(&events)
            .partition(2)
            .key(&b"request-1"[..])
            .payload(&b"payload"[..])
            .headers(headers)
            .timestamp(1_700_000_000_123);
        let (partition, offset) = p.produce(&producer, record)?;
        assert_eq!((partition, offset), (2, 0));

        let consumer = p.consumer(Some(&p.n("reader")), &[])?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&events, 2, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let record = poll_records(&consumer, 1)?.remove(0);
        assert_eq!(record.topic(), events);
        assert_eq!(record.partition(), 2);
        assert_eq!(record.offset(), 0);
        assert_eq!(record.key(), Some(&b"request-1"[..]));
        assert_eq!(record.payload(), Some(&b"payload"[..]));
        assert_eq!(record.timestamp(), Timestamp::CreateTime(1_700_000_000_123));
        let headers = record.headers().ok_or("no headers")?;
        let got: Vec<(String, Option<Vec<u8>>)> = headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("pipeline".to_string(), Some(b"p1".to_vec())),
                ("binary".to_string(), Some(vec![0, 1, 2, 255])),
                ("null".to_string(), None),
            ]
        );
        Ok(())
    });
}

/// An idempotent producer (`enable.idempotence=true`, `acks=all`, what flowc's producers use on
/// Apache Kafka) gets a producer id and writes every record once, in order; and flowc's own
/// producer settings for the detected broker (`KafkaConfig::producer`) deliver.
#[test]
fn idempotent_producer() {
    probe("idempotent", |p| {
        let topic = p.n("idem");
        p.create(&[(&topic, 1)])?;
        let producer = p.producer(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
        ])?;
        let mut offsets = Vec::new();
        for i in 0..10 {
            let payload = format!("v{i}");
            offsets.push(
                p.produce(
                    &producer,
                    FutureRecord::to(&topic).partition(0).payload(payload.as_bytes()),
                )?
                .1,
            );
        }
        // tansu 0.6.0-510f3e2 also accepts InitProducerId and idempotent produce requests;
        // flowc does not ask for idempotence there (`BrokerFlavor::idempotent_producers`).
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());

        let config = KafkaConfig::new(p.broker.bootstrap()).detect_broker()?;
        let flowc_config = config.producer();
        eprintln!(
            "flowc producer on {}: enable.idempotence={:?}",
            config.flavor,
            flowc_config.get("enable.idempotence")
        );
        assert_eq!(
            flowc_config.get("enable.idempotence"),
            Some(if p.kind == BrokerKind::Kafka { "true" } else { "false" })
        );
        let flowc_producer: FutureProducer = flowc_config.create()?;
        for i in 10..15 {
            let payload = format!("v{i}");
            let (_, offset) = p.produce(
                &flowc_producer,
                FutureRecord::to(&topic).partition(0).payload(payload.as_bytes()),
            )?;
            assert_eq!(offset, i);
        }

        let consumer = p.consumer(Some(&p.n("reader")), &[("enable.partition.eof", "true")])?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let read = read_until_eof(&consumer, 0)?;
        let expected: Vec<(i64, String)> = (0..15).map(|i| (i, format!("v{i}"))).collect();
        assert_eq!(read, expected);
        Ok(())
    });
}

/// (c) Two members of one group subscribed to two topics of 4 partitions each (range
/// assignor): each member gets the same partition numbers of both topics. Measures the first
/// join, the rebalance when the second member joins and the one when it leaves.
///
/// Measured on tansu 0.6.0-510f3e2 (2 cores): the first join takes session.timeout.ms / 2
/// (3 s here; 23 s with librdkafka's default 45 s session timeout), the rebalance when the
/// second member joins ~7 s (~5 s with heartbeat.interval.ms=1000), the one when it leaves
/// (LeaveGroup) ~4 s. Workers on tansu want a short session timeout. Apache Kafka (with
/// `group.initial.rebalance.delay.ms=0`) joins at once and rebalances within a heartbeat.
#[test]
fn consumer_group_copartitions_two_topics() {
    probe("group_copartition", |p| {
        let (left, right) = (p.n("left"), p.n("right"));
        p.create(&[(&left, 4), (&right, 4)])?;
        let topics = [left.as_str(), right.as_str()];
        let all: BTreeSet<i32> = (0..4).collect();
        let group = p.n("copart");
        let a = p.consumer(Some(&group), &[("client.id", "member-a")])?;
        let b = p.consumer(Some(&group), &[("client.id", "member-b")])?;

        let started = Instant::now();
        a.subscribe(&topics)?;
        loop {
            a.poll(Duration::from_millis(50));
            if assigned(&a, &left)? == all && assigned(&a, &right)? == all {
                break;
            }
            if started.elapsed() > SETTLE {
                return Err(format!("member a got no full assignment within {SETTLE:?}").into());
            }
        }
        let join = started.elapsed();
        eprintln!("group join (one member, 8 partitions): {join:?}");

        let started = Instant::now();
        b.subscribe(&topics)?;
        let (mut pa, mut pb);
        loop {
            a.poll(Duration::from_millis(50));
            b.poll(Duration::from_millis(50));
            pa = (assigned(&a, &left)?, assigned(&a, &right)?);
            pb = (assigned(&b, &left)?, assigned(&b, &right)?);
            let total = pa.0.len() + pa.1.len() + pb.0.len() + pb.1.len();
            if !pa.0.is_empty() && !pb.0.is_empty() && total == 8 {
                break;
            }
            if started.elapsed() > SETTLE {
                return Err(format!("no two-member assignment within {SETTLE:?}: a {pa:?}, b {pb:?}").into());
            }
        }
        let rebalance = started.elapsed();
        eprintln!("rebalance (second member joins): {rebalance:?}; a {pa:?}, b {pb:?}");

        // Co-partitioning: a member owns the same partition numbers of both topics, and the
        // members split the partitions between them.
        assert_eq!(pa.0, pa.1, "member a: left and right partitions differ");
        assert_eq!(pb.0, pb.1, "member b: left and right partitions differ");
        assert!(pa.0.is_disjoint(&pb.0));
        assert_eq!(pa.0.union(&pb.0).copied().collect::<BTreeSet<_>>(), all);
        // range over 4 partitions and 2 members: 2 each.
        assert_eq!((pa.0.len(), pb.0.len()), (2, 2));

        // The assignment is stable (no flapping) for a few heartbeats.
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            a.poll(Duration::from_millis(50));
            b.poll(Duration::from_millis(50));
            assert_eq!((assigned(&a, &left)?, assigned(&a, &right)?), pa);
            assert_eq!((assigned(&b, &left)?, assigned(&b, &right)?), pb);
        }

        // The second member leaves (close sends LeaveGroup): the first gets everything back.
        let started = Instant::now();
        drop(b);
        let closed = started.elapsed();
        loop {
            a.poll(Duration::from_millis(50));
            if assigned(&a, &left)? == all && assigned(&a, &right)? == all {
                break;
            }
            if started.elapsed() > SETTLE {
                return Err(format!("member a did not get all partitions back within {SETTLE:?}").into());
            }
        }
        eprintln!(
            "rebalance (second member leaves): {:?} (close took {closed:?})",
            started.elapsed()
        );
        Ok(())
    });
}

/// (d) Offsets committed synchronously survive the consumer: a new member of the group
/// resumes right after them.
#[test]
fn committed_offsets_resume_a_new_consumer() {
    probe("committed_offsets", |p| {
        let work = p.n("work");
        let group = p.n("resume");
        p.create(&[(&work, 1)])?;
        for i in 0..10 {
            p.produce_simple(&work, 0, &format!("k{i}"), &format!("v{i}"))?;
        }
        let first = p.consumer(Some(&group), &[])?;
        first.subscribe(&[&work])?;
        let records = poll_records(&first, 10)?;
        assert_eq!(
            records.iter().map(|r| r.offset()).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        // Processed up to offset 5 included: commit the next offset to read, 6.
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&work, 0, Offset::Offset(6))?;
        first.commit(&tpl, CommitMode::Sync)?;
        // A list returned by `committed()` holds librdkafka references to the consumer's
        // partitions: dropping the consumer while it is alive hangs forever in
        // rd_kafka_destroy (seen here; not a broker issue). Keep it in a narrow scope.
        let resumed_at = first.committed(CALL)?.find_partition(&work, 0).map(|e| e.offset());
        assert_eq!(resumed_at, Some(Offset::Offset(6)));
        let started = Instant::now();
        drop(first);
        eprintln!("consumer close: {:?}", started.elapsed());

        let second = p.consumer(Some(&group), &[])?;
        let started = Instant::now();
        second.subscribe(&[&work])?;
        let records = poll_records(&second, 4)?;
        eprintln!("second consumer: first record after {:?}", started.elapsed());
        assert_eq!(records.iter().map(|r| r.offset()).collect::<Vec<_>>(), vec![6, 7, 8, 9]);
        assert_eq!(records[0].key(), Some(&b"k6"[..]));
        // Nothing else arrives.
        assert!(matches!(
            second.poll(Duration::from_millis(500)),
            None | Some(Err(KafkaError::PartitionEOF(_)))
        ));
        Ok(())
    });
}

/// (e) DeleteTopics removes the topic from the metadata; a topic of the same name created
/// afterwards starts empty.
#[test]
fn delete_topics() {
    probe("delete_topics", |p| {
        let doomed = p.n("doomed");
        p.create(&[(&doomed, 2)])?;
        p.produce_simple(&doomed, 1, "k", "v")?;
        assert!(p.topic_names()?.contains(&doomed));

        let admin = p.admin()?;
        let results = p.block_on(admin.delete_topics(&[&doomed], &Probe::admin_options()))??;
        assert_eq!(results, vec![Ok(doomed.clone())]);
        let deadline = Instant::now() + CALL;
        while p.topic_names()?.contains(&doomed) {
            if Instant::now() > deadline {
                return Err("deleted topic still listed in metadata".into());
            }
            thread::sleep(Duration::from_millis(100));
        }

        // Deleting it again: UnknownTopicOrPartition.
        let again = p.block_on(admin.delete_topics(&[&doomed], &Probe::admin_options()))??;
        assert_eq!(
            again,
            vec![Err((doomed.clone(), RDKafkaErrorCode::UnknownTopicOrPartition))]
        );

        // Re-created, it is empty.
        p.create(&[(&doomed, 2)])?;
        let client = p.consumer(None, &[])?;
        assert_eq!(client.fetch_watermarks(&doomed, 1, CALL)?, (0, 0));
        Ok(())
    });
}

/// (f) ListGroups/DescribeGroups (`fetch_group_list`, what `flowc status` counts members
/// with), OffsetFetch from outside the group (`committed_offsets`, for lags) and ListOffsets
/// (`fetch_watermarks`).
///
/// Apache Kafka lists an active group at once and describes its members fully: protocol
/// `range`, client id, host, and the member's assignment (consumer protocol bytes).
///
/// tansu 0.6.0-510f3e2 lists a group only once it has committed offsets: an active group that
/// never committed is absent from ListGroups, and so from `fetch_group_list` even by name
/// (librdkafka only describes the groups ListGroups named). DescribeGroups then gives the
/// name, state and protocol type and the member ids, but an empty protocol, empty client ids
/// and hosts and no assignments (hence flowc's members topic, `kafka/members.rs`). On both,
/// what a group committed is readable from outside it (OffsetFetch with its group id, no
/// join), which is what `inspect` and `status` need.
#[test]
fn group_list_and_watermarks() {
    probe("group_list", |p| {
        let marks = p.n("marks");
        let group = p.n("listed");
        p.create(&[(&marks, 2)])?;
        for i in 0..3 {
            p.produce_simple(&marks, 1, "k", &format!("v{i}"))?;
        }
        let client = p.consumer(None, &[])?;
        assert_eq!(client.fetch_watermarks(&marks, 0, CALL)?, (0, 0));
        assert_eq!(client.fetch_watermarks(&marks, 1, CALL)?, (0, 3));

        let member = p.consumer(Some(&group), &[("client.id", "lister")])?;
        member.subscribe(&[&marks])?;
        poll_records(&member, 3)?;
        assert_eq!(assigned(&member, &marks)?, BTreeSet::from([0, 1]));
        // This test's groups only: other tests share the broker.
        let prefix = p.n("");
        let group_names = || -> TestResult<Vec<String>> {
            let list = client.fetch_group_list(None, CALL)?;
            Ok(list
                .groups()
                .iter()
                .map(|g| g.name().to_string())
                .filter(|g| g.starts_with(&prefix))
                .collect())
        };
        let before = group_names()?;
        eprintln!("fetch_group_list(None), stable group, nothing committed: {before:?}");
        match p.kind {
            BrokerKind::Kafka => assert_eq!(before, vec![group.clone()]),
            // tansu: not listed before its first commit.
            BrokerKind::Tansu => assert_eq!(before, Vec::<String>::new()),
        }

        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&marks, 1, Offset::Offset(2))?;
        member.commit(&tpl, CommitMode::Sync)?;
        let after = group_names()?;
        eprintln!("fetch_group_list(None), after a commit: {after:?}");
        assert_eq!(after, vec![group.clone()]);

        let described = client.fetch_group_list(Some(&group), CALL)?;
        let info = described.groups().first().ok_or("DescribeGroups returned no group")?;
        let members: Vec<MemberView<'_>> = info
            .members()
            .iter()
            .map(|m| {
                (
                    m.id(),
                    m.client_id(),
                    m.client_host(),
                    m.metadata().map(<[u8]>::len),
                    m.assignment(),
                )
            })
            .collect();
        eprintln!(
            "fetch_group_list({group}): state {:?}, protocol_type {:?}, protocol {:?}, members \
             (id, client id, host, metadata bytes, assignment) {members:?}",
            info.state(),
            info.protocol_type(),
            info.protocol()
        );
        assert_eq!(
            (info.name(), info.state(), info.protocol_type()),
            (group.as_str(), "Stable", "consumer")
        );
        assert_eq!(members.len(), 1);
        let (id, client_id, host, metadata, assignment) = members[0];
        assert!(id.starts_with("lister-"), "member id {id:?}");
        match p.kind {
            BrokerKind::Kafka => {
                assert_eq!((info.protocol(), client_id), ("range", "lister"));
                assert!(host.contains("127.0.0.1"), "member host {host:?}");
                assert!(metadata.is_some_and(|n| n > 0), "member metadata {metadata:?}");
                let assignment = assignment.filter(|a| !a.is_empty()).ok_or("no member assignment")?;
                assert_eq!(decode_assignment(assignment)?, vec![(marks.clone(), vec![0, 1])]);
            }
            // tansu: no protocol, client id, host, metadata or assignment.
            BrokerKind::Tansu => {
                assert_eq!((info.protocol(), client_id, host), ("", "", ""));
                assert_eq!((metadata, assignment), (None, None));
            }
        }
        drop(described);

        // The group's committed offsets, read by a client that never joins it. (The returned
        // list must be dropped before the consumer: see committed_offsets_resume_a_new_consumer.)
        let observer = p.consumer(Some(&group), &[])?;
        let mut query = TopicPartitionList::new();
        query.add_partition(&marks, 0);
        query.add_partition(&marks, 1);
        let offsets: Vec<(i32, Offset)> = observer
            .committed_offsets(query, CALL)?
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        assert_eq!(offsets, vec![(0, Offset::Invalid), (1, Offset::Offset(2))]);
        Ok(())
    });
}

/// (g) A consumer assigned a partition by hand (no subscription, no group join) reads it from
/// the beginning to the high watermark, and `enable.partition.eof` tells when it got there
/// (how a changelog is restored). Records produced one per request here: for batches see the
/// next test.
#[test]
fn manual_assign_reads_to_high_watermark() {
    probe("manual_assign", |p| {
        let changelog = p.n("changelog");
        p.create(&[(&changelog, 3)])?;
        for i in 0..25 {
            p.produce_simple(&changelog, 1, &format!("k{}", i % 7), &format!("v{i}"))?;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&changelog, 1, Offset::Beginning)?;

        // librdkafka (not the broker) refuses `assign` without a `group.id`: it keeps fetch
        // positions in its group handle. A group id is needed, but no group is joined (no
        // subscribe, no JoinGroup) and nothing is committed unless asked.
        let groupless = p.consumer(None, &[])?;
        match groupless.assign(&tpl) {
            Err(KafkaError::Subscription(e)) if e.contains("Unknown group") => {}
            other => return Err(format!("assign without group.id: expected Unknown group, got {other:?}").into()),
        }

        let consumer = p.consumer(Some(&p.n("restorer")), &[("enable.partition.eof", "true")])?;
        let (low, high) = consumer.fetch_watermarks(&changelog, 1, CALL)?;
        assert_eq!((low, high), (0, 25));
        consumer.assign(&tpl)?;
        let offsets: Vec<i64> = read_until_eof(&consumer, 1)?.into_iter().map(|(o, _)| o).collect();
        assert_eq!(offsets, (0..high).collect::<Vec<_>>());
        assert_eq!(position(&consumer, &changelog, 1)?, Some(Offset::Offset(high)));
        Ok(())
    });
}

/// (g) Records produced in batches (several records per Produce request) get contiguous
/// offsets and are all read before end-of-partition. Apache Kafka's high watermark is the
/// offset after the last record (10 here). tansu 0.6.0-510f3e2 reports a wrong one for them:
/// the base offset of the last batch + 1 (two batches of 5, offsets 0..=9, high watermark 6),
/// so on tansu `fetch_watermarks` cannot tell where a partition ends (nor a lag): flowc reads
/// to the end there (`BrokerFlavor::exact_watermarks`).
#[test]
fn batched_records_offsets_and_high_watermark() {
    probe("batched_watermark", |p| {
        let batched = p.n("batched");
        p.create(&[(&batched, 1)])?;
        let producer: BaseProducer = p.config().set("linger.ms", "200").create()?;
        for batch in 0..2 {
            for i in 0..5 {
                let value = format!("v{batch}.{i}");
                producer
                    .send(BaseRecord::to(&batched).partition(0).key("k").payload(&value))
                    .map_err(|(e, _)| e)?;
            }
            producer.flush(CALL)?;
        }
        let consumer = p.consumer(Some(&p.n("reader")), &[("enable.partition.eof", "true")])?;
        let (low, high) = consumer.fetch_watermarks(&batched, 0, CALL)?;
        eprintln!("two batches of 5 records: watermarks ({low}, {high})");
        assert_eq!(low, 0);
        match p.kind {
            BrokerKind::Kafka => assert_eq!(high, 10),
            BrokerKind::Tansu => assert!(
                high < 10,
                "tansu now counts records in the high watermark ({high}); update this probe and \
                 BrokerFlavor::exact_watermarks"
            ),
        }

        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&batched, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let offsets: Vec<i64> = read_until_eof(&consumer, 0)?.into_iter().map(|(o, _)| o).collect();
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
        assert_eq!(position(&consumer, &batched, 0)?, Some(Offset::Offset(10)));
        Ok(())
    });
}

/// (h) Transactions: a producer with a `transactional.id` can init, begin, commit and abort
/// transactions (InitProducerId, AddPartitionsToTxn, EndTxn all answer, on both brokers), and
/// a read_uncommitted consumer gets every record. On Apache Kafka each transaction ends with a
/// control record (a marker) that takes an offset but is never delivered: one committed and
/// one aborted transaction of one record each end at high watermark 4.
#[test]
fn transactional_producer_api() {
    probe("transactions", |p| {
        let txn = p.n("txn");
        p.create(&[(&txn, 1)])?;
        let producer = p.transactional_producer(&p.n("producer"))?;
        p.transaction(&producer, &txn, &["committed"], true)?;
        p.transaction(&producer, &txn, &["aborted"], false)?;

        let uncommitted = read_to_end(p, &txn, "read_uncommitted")?;
        assert_eq!(uncommitted, vec!["committed", "aborted"]);
        let client = p.consumer(None, &[])?;
        let marks = client.fetch_watermarks(&txn, 0, CALL)?;
        eprintln!("txn watermarks after one committed and one aborted transaction: {marks:?}");
        // Both brokers (on tansu each record and each marker is a batch of its own here, so its
        // batch-counting high watermark is exact too).
        assert_eq!(marks, (0, 4));
        Ok(())
    });
}

/// (h) A `read_committed` consumer (librdkafka's default isolation, so every flowc consumer)
/// sees the records of committed transactions and none of aborted ones, in order, with the
/// gaps the markers and aborted records leave in the offsets.
///
/// tansu 0.6.0-510f3e2 does not isolate: its fetch responses carry no aborted-transaction
/// list, so read_committed consumers see aborted records too, and exactly-once
/// (transactional) processing cannot be relied on with it. Asserted as such, so a tansu that
/// starts isolating shows up here.
#[test]
fn read_committed_hides_aborted_records() {
    probe("read_committed", |p| {
        let txn = p.n("txn");
        p.create(&[(&txn, 1)])?;
        let producer = p.transactional_producer(&p.n("producer"))?;
        p.transaction(&producer, &txn, &["c1", "c2", "c3"], true)?;
        p.transaction(&producer, &txn, &["a1", "a2"], false)?;
        p.transaction(&producer, &txn, &["c4"], true)?;

        let consumer = p.consumer(
            Some(&p.n("reader")),
            &[("isolation.level", "read_committed"), ("enable.partition.eof", "true")],
        )?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&txn, 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let read = read_until_eof(&consumer, 0)?;
        eprintln!("read_committed: {read:?}");
        let payloads: Vec<&str> = read.iter().map(|(_, v)| v.as_str()).collect();
        match p.kind {
            BrokerKind::Kafka => {
                assert_eq!(payloads, vec!["c1", "c2", "c3", "c4"]);
                // c1..c3 at 0..=2, commit marker 3, a1 a2 at 4 5, abort marker 6, c4 at 7.
                let offsets: Vec<i64> = read.iter().map(|(o, _)| *o).collect();
                assert_eq!(offsets, vec![0, 1, 2, 7]);
            }
            BrokerKind::Tansu => assert_eq!(
                payloads,
                vec!["c1", "c2", "c3", "a1", "a2", "c4"],
                "tansu's read_committed changed: does it isolate aborted transactions now?"
            ),
        }
        Ok(())
    });
}

/// Restores stop at the high watermark on Apache Kafka even when the last offsets of a
/// partition hold transaction markers (or records a read_committed consumer skips), because
/// the fetch position (`position()`) passes them: after reading a transactional partition to
/// its end, the position equals the high watermark, for both isolation levels.
#[test]
fn fetch_position_reaches_high_watermark_past_transaction_markers() {
    probe("txn_position", |p| {
        let txn = p.n("txn");
        p.create(&[(&txn, 1)])?;
        let producer = p.transactional_producer(&p.n("producer"))?;
        p.transaction(&producer, &txn, &["c1", "c2"], true)?;
        // Ends with an aborted transaction: its record and its marker are the last offsets.
        p.transaction(&producer, &txn, &["a1"], false)?;

        let client = p.consumer(None, &[])?;
        let (low, high) = client.fetch_watermarks(&txn, 0, CALL)?;
        eprintln!("watermarks: ({low}, {high})");
        // c1 c2 at 0 1, commit marker 2, a1 at 3, abort marker 4; on tansu too (its high
        // watermark counts batches, and here the markers and the aborted record are batches of
        // one record).
        assert_eq!((low, high), (0, 5));
        for isolation in ["read_committed", "read_uncommitted"] {
            let consumer = p.consumer(
                Some(&p.n(isolation)),
                &[("isolation.level", isolation), ("enable.partition.eof", "true")],
            )?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&txn, 0, Offset::Beginning)?;
            consumer.assign(&tpl)?;
            let read = read_until_eof(&consumer, 0)?;
            let at = position(&consumer, &txn, 0)?;
            eprintln!("{isolation}: read {read:?}, position {at:?}");
            let last = read.last().map(|(o, _)| *o).ok_or("nothing read")?;
            assert!(last + 1 < high, "{isolation}: the last record read is at the end");
            assert_eq!(at, Some(Offset::Offset(high)), "{isolation}: position after the end");
            let offsets: Vec<i64> = read.iter().map(|(o, _)| *o).collect();
            match (p.kind, isolation) {
                (BrokerKind::Kafka, "read_committed") => assert_eq!(offsets, vec![0, 1]),
                // tansu: no isolation (see read_committed_hides_aborted_records).
                _ => assert_eq!(offsets, vec![0, 1, 3], "{isolation}"),
            }
        }
        Ok(())
    });
}

/// ListOffsets by timestamp (`offsets_for_times`, `flowc inspect --since`). Apache Kafka
/// answers the first offset whose timestamp is at or after the time asked, and none (`End`)
/// after the last record. tansu 0.6.0-510f3e2 ignores the timestamp and answers the log start
/// (0) for every time: `inspect --since` on tansu reads from the beginning (correct, only
/// slower), and never learns that nothing was written since.
#[test]
fn offsets_for_times() {
    probe("offsets_for_times", |p| {
        let topic = p.n("timed");
        p.create(&[(&topic, 1)])?;
        let producer = p.producer(&[])?;
        for (i, ts) in [1_000_000i64, 2_000_000, 3_000_000].iter().enumerate() {
            let payload = format!("v{i}");
            p.produce(
                &producer,
                FutureRecord::to(&topic)
                    .partition(0)
                    .payload(payload.as_bytes())
                    .timestamp(*ts),
            )?;
        }
        let client = p.consumer(Some(&p.n("reader")), &[])?;
        let mut found = Vec::new();
        for since in [0, 1_500_000, 3_000_000, 4_000_000] {
            let mut times = TopicPartitionList::new();
            times.add_partition_offset(&topic, 0, Offset::Offset(since))?;
            let answer = client.offsets_for_times(times, CALL);
            let offset = answer.map(|tpl| tpl.find_partition(&topic, 0).map(|e| e.offset()));
            eprintln!("offsets_for_times({since}): {offset:?}");
            found.push(offset.map_err(|e| e.to_string()));
        }
        let expected: Vec<Result<Option<Offset>, String>> = match p.kind {
            BrokerKind::Kafka => [Offset::Offset(0), Offset::Offset(1), Offset::Offset(2), Offset::End]
                .into_iter()
                .map(|o| Ok(Some(o)))
                .collect(),
            BrokerKind::Tansu => vec![Ok(Some(Offset::Offset(0))); 4],
        };
        assert_eq!(found, expected);
        Ok(())
    });
}

/// Fetch latency: how long a record produced while a consumer's fetch is waiting on the broker
/// (nothing to return yet, `fetch.wait.max.ms=500`) takes to reach the consumer.
///
/// Apache Kafka answers the waiting fetch as soon as the record is written, so the wait only
/// bounds idle polling: the median of 5 tries must be well under the wait (< 250 ms; a few ms
/// measured). This pins a behaviour, it is no benchmark: the bound is loose on purpose.
/// tansu 0.6.0-510f3e2 does not answer at once: a record waits for a delay that grows with
/// the fetch wait (measured on 2 cores, 12 tries spread over the wait: at 500 ms a mean of
/// 76 ms, median 100 ms, max 212 ms; at 2000 ms a mean of 317 ms, max 851 ms; the tries of
/// this test give about [100, 114, 3, 3, 156] ms). That is why flowc uses a 10 ms wait on
/// tansu (`BrokerFlavor::fetch_wait_ms`). On tansu the latencies are recorded and their mean
/// must be at least a twentieth of the wait (25 ms; Apache Kafka's is about 2 ms).
#[test]
fn fetch_returns_when_a_record_arrives() {
    probe("fetch_latency", |p| {
        const WAIT_MS: u64 = 500;
        const TRIES: usize = 5;
        let topic = p.n("latency");
        p.create(&[(&topic, 1)])?;
        let producer: BaseProducer = p.config().set("linger.ms", "0").set("acks", "all").create()?;
        // Warm the producer: connection and metadata, so a try measures the fetch.
        producer
            .send(BaseRecord::<(), str>::to(&topic).partition(0).payload("warm-up"))
            .map_err(|(e, _)| e)?;
        producer.flush(CALL)?;

        let wait = WAIT_MS.to_string();
        let consumer = p.consumer(Some(&p.n("reader")), &[("fetch.wait.max.ms", wait.as_str())])?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(1))?;
        consumer.assign(&tpl)?;
        // Let the consumer connect and start its waiting fetches.
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                return Err(format!("unexpected record at offset {}", m.offset()).into());
            }
        }

        let mut latencies = Vec::new();
        for i in 0..TRIES {
            // Spread the tries over the fetch's wait.
            let pause = Instant::now() + Duration::from_millis(150 + 110 * i as u64);
            while Instant::now() < pause {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(10)) {
                    return Err(format!("unexpected record at offset {}", m.offset()).into());
                }
            }
            let payload = format!("try-{i}");
            let sent = Instant::now();
            producer
                .send(BaseRecord::<(), String>::to(&topic).partition(0).payload(&payload))
                .map_err(|(e, _)| e)?;
            let deadline = sent + CALL;
            let latency = loop {
                producer.poll(Duration::ZERO);
                match consumer.poll(Duration::from_millis(1)) {
                    Some(Ok(m)) if m.payload() == Some(payload.as_bytes()) => break sent.elapsed(),
                    Some(Ok(m)) => return Err(format!("unexpected record at offset {}", m.offset()).into()),
                    Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                    Some(Err(e)) => return Err(e.into()),
                }
                if Instant::now() > deadline {
                    return Err(format!("try {i}: record not received within {CALL:?}").into());
                }
            };
            producer.flush(CALL)?;
            latencies.push(latency);
        }
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        let median = sorted[TRIES / 2];
        let max = sorted[TRIES - 1];
        let mean = latencies.iter().sum::<Duration>() / TRIES as u32;
        eprintln!(
            "fetch latency on {} with fetch.wait.max.ms={WAIT_MS}: {latencies:?}, median {median:?}, mean \
             {mean:?}, max {max:?}",
            p.kind
        );
        match p.kind {
            BrokerKind::Kafka => assert!(
                median < Duration::from_millis(250),
                "Apache Kafka held the fetch: median {median:?} of {latencies:?}"
            ),
            BrokerKind::Tansu => assert!(
                mean >= Duration::from_millis(WAIT_MS / 20),
                "tansu answered every waiting fetch early ({latencies:?}): does it stop holding \
                 fetches? then BrokerFlavor::fetch_wait_ms can grow"
            ),
        }
        Ok(())
    });
}
