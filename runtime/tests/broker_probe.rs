//! Probes of the development broker (tansu, see `flowc_runtime::devbroker`): each test pins down
//! one piece of Kafka behaviour the workers rely on, against a real broker through librdkafka.
//! When tansu behaves differently from Apache Kafka the test asserts what tansu actually does
//! and says so in a comment, so an upgrade that changes it shows up here.
//!
//! Every test starts its own broker (start-up takes milliseconds; separate brokers keep groups,
//! offsets and topics of parallel tests apart). Every wait is bounded by a deadline. A failing
//! test prints the broker's log.
//!
//! Needs the tansu binary: `scripts/install-broker.sh` (or `FLOWC_TANSU=/path/to/tansu`).

use std::collections::BTreeSet;
use std::error::Error;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use flowc_runtime::devbroker::DevBroker;
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

/// A broker of its own for one test, and a runtime for the async admin and producer calls.
struct Probe {
    broker: DevBroker,
    rt: Runtime,
}

/// Runs `body` against a fresh broker, on a thread of its own bounded by [`TEST_TIMEOUT`]; on an
/// error, a panic or a timeout prints the broker's log. A timed-out body is left running (a
/// hung librdkafka call cannot be cancelled) and the test fails.
fn probe(name: &'static str, body: impl FnOnce(&Probe) -> TestResult + Send + 'static) {
    let broker = DevBroker::start().unwrap_or_else(|e| panic!("{name}: cannot start the dev broker: {e}"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let probe = Arc::new(Probe { broker, rt });
    let (done_tx, done_rx) = mpsc::channel();
    let worker = {
        let probe = Arc::clone(&probe);
        thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let started = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| body(&probe).map_err(|e| e.to_string())));
                eprintln!("{name}: body took {:?}", started.elapsed());
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
            "----- tansu log ({}) -----\n{}\n----- end of tansu log -----",
            probe.broker.bootstrap(),
            probe.broker.log()
        );
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{name}: {e}"),
        Err(panic) => resume_unwind(panic),
    }
}

impl Probe {
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

    /// Creates topics that must not exist yet.
    fn create(&self, topics: &[(&str, i32)]) -> TestResult {
        let specs: Vec<TopicSpec<'_>> = topics.iter().map(|(n, p)| (*n, *p, &[][..])).collect();
        for result in self.create_topics(&specs)? {
            result.map_err(|(topic, code)| format!("creating {topic}: {code:?}"))?;
        }
        Ok(())
    }

    fn producer(&self, extra: &[(&str, &str)]) -> TestResult<FutureProducer> {
        let mut config = self.config();
        config.set("message.timeout.ms", "10000");
        for (k, v) in extra {
            config.set(*k, *v);
        }
        Ok(config.create()?)
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

    fn topic_names(&self) -> TestResult<BTreeSet<String>> {
        let client = self.consumer(None, &[])?;
        let metadata = client.fetch_metadata(None, CALL)?;
        Ok(metadata.topics().iter().map(|t| t.name().to_string()).collect())
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

/// Partition numbers of `topic` in `consumer`'s current assignment.
fn assigned(consumer: &ProbeConsumer, topic: &str) -> TestResult<BTreeSet<i32>> {
    Ok(consumer
        .assignment()?
        .elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect())
}

/// (a) CreateTopics with a partition count and `cleanup.policy=compact`; creating it again is
/// TopicAlreadyExists.
#[test]
fn create_topics_with_partitions_and_compaction() {
    probe("create_topics", |p| {
        let compact: &[(&str, &str)] = &[("cleanup.policy", "compact")];
        let results = p.create_topics(&[("changelog", 6, compact), ("plain", 3, &[])])?;
        assert_eq!(results, vec![Ok("changelog".to_string()), Ok("plain".to_string())]);

        let client = p.consumer(None, &[])?;
        let metadata = client.fetch_metadata(Some("changelog"), CALL)?;
        let topic = &metadata.topics()[0];
        assert_eq!(topic.error(), None);
        let mut partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        partitions.sort_unstable();
        assert_eq!(partitions, (0..6).collect::<Vec<_>>());
        assert_eq!(
            client.fetch_metadata(Some("plain"), CALL)?.topics()[0]
                .partitions()
                .len(),
            3
        );

        let again = p.create_topics(&[("changelog", 6, compact)])?;
        assert_eq!(
            again,
            vec![Err(("changelog".to_string(), RDKafkaErrorCode::TopicAlreadyExists))]
        );

        // DescribeConfigs: informational (tansu may not report topic configs back).
        let admin = p.admin()?;
        let described =
            p.block_on(admin.describe_configs(&[ResourceSpecifier::Topic("changelog")], &Probe::admin_options()))?;
        match described {
            Ok(resources) => {
                for resource in resources {
                    match resource {
                        Ok(r) => eprintln!(
                            "describe_configs(changelog): cleanup.policy = {:?} ({} entries)",
                            r.get("cleanup.policy").map(|e| e.value.clone()),
                            r.entries.len()
                        ),
                        Err(code) => eprintln!("describe_configs(changelog): error {code:?}"),
                    }
                }
            }
            Err(e) => eprintln!("describe_configs(changelog): request failed: {e}"),
        }
        Ok(())
    });
}

/// (b) A record produced to an explicit partition keeps its key, headers (including a null
/// value) and timestamp.
#[test]
fn produce_and_consume_partition_key_headers() {
    probe("produce_consume", |p| {
        p.create(&[("events", 4)])?;
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
        let record = FutureRecord::to("events")
            .partition(2)
            .key(&b"request-1"[..])
            .payload(&b"payload"[..])
            .headers(headers)
            .timestamp(1_700_000_000_123);
        let (partition, offset) = p.produce(&producer, record)?;
        assert_eq!((partition, offset), (2, 0));

        let consumer = p.consumer(Some("reader"), &[])?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("events", 2, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let record = poll_records(&consumer, 1)?.remove(0);
        assert_eq!(record.topic(), "events");
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

/// (c) Two members of one group subscribed to two topics of 4 partitions each (range
/// assignor): each member gets the same partition numbers of both topics. Measures the first
/// join, the rebalance when the second member joins and the one when it leaves.
///
/// Measured on tansu 0.6.0-510f3e2 (2 cores): the first join takes session.timeout.ms / 2
/// (3 s here; 23 s with librdkafka's default 45 s session timeout), the rebalance when the
/// second member joins ~7 s (~5 s with heartbeat.interval.ms=1000), the one when it leaves
/// (LeaveGroup) ~4 s. Workers on tansu want a short session timeout.
#[test]
fn consumer_group_copartitions_two_topics() {
    probe("group_copartition", |p| {
        p.create(&[("left", 4), ("right", 4)])?;
        let topics = ["left", "right"];
        let all: BTreeSet<i32> = (0..4).collect();
        let a = p.consumer(Some("copart"), &[("client.id", "member-a")])?;
        let b = p.consumer(Some("copart"), &[("client.id", "member-b")])?;

        let started = Instant::now();
        a.subscribe(&topics)?;
        loop {
            a.poll(Duration::from_millis(50));
            if assigned(&a, "left")? == all && assigned(&a, "right")? == all {
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
            pa = (assigned(&a, "left")?, assigned(&a, "right")?);
            pb = (assigned(&b, "left")?, assigned(&b, "right")?);
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
            assert_eq!((assigned(&a, "left")?, assigned(&a, "right")?), pa);
            assert_eq!((assigned(&b, "left")?, assigned(&b, "right")?), pb);
        }

        // The second member leaves (close sends LeaveGroup): the first gets everything back.
        let started = Instant::now();
        drop(b);
        let closed = started.elapsed();
        loop {
            a.poll(Duration::from_millis(50));
            if assigned(&a, "left")? == all && assigned(&a, "right")? == all {
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
        p.create(&[("work", 1)])?;
        for i in 0..10 {
            p.produce_simple("work", 0, &format!("k{i}"), &format!("v{i}"))?;
        }
        let first = p.consumer(Some("resume"), &[])?;
        first.subscribe(&["work"])?;
        let records = poll_records(&first, 10)?;
        assert_eq!(
            records.iter().map(|r| r.offset()).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        // Processed up to offset 5 included: commit the next offset to read, 6.
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("work", 0, Offset::Offset(6))?;
        first.commit(&tpl, CommitMode::Sync)?;
        // A list returned by `committed()` holds librdkafka references to the consumer's
        // partitions: dropping the consumer while it is alive hangs forever in
        // rd_kafka_destroy (seen here; not a tansu issue). Keep it in a narrow scope.
        let resumed_at = first.committed(CALL)?.find_partition("work", 0).map(|e| e.offset());
        assert_eq!(resumed_at, Some(Offset::Offset(6)));
        let started = Instant::now();
        drop(first);
        eprintln!("consumer close: {:?}", started.elapsed());

        let second = p.consumer(Some("resume"), &[])?;
        let started = Instant::now();
        second.subscribe(&["work"])?;
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
        p.create(&[("doomed", 2)])?;
        p.produce_simple("doomed", 1, "k", "v")?;
        assert!(p.topic_names()?.contains("doomed"));

        let admin = p.admin()?;
        let results = p.block_on(admin.delete_topics(&["doomed"], &Probe::admin_options()))??;
        assert_eq!(results, vec![Ok("doomed".to_string())]);
        let deadline = Instant::now() + CALL;
        while p.topic_names()?.contains("doomed") {
            if Instant::now() > deadline {
                return Err("deleted topic still listed in metadata".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        // Deleting it again: UnknownTopicOrPartition.
        let again = p.block_on(admin.delete_topics(&["doomed"], &Probe::admin_options()))??;
        assert_eq!(
            again,
            vec![Err(("doomed".to_string(), RDKafkaErrorCode::UnknownTopicOrPartition))]
        );

        // Re-created, it is empty.
        p.create(&[("doomed", 2)])?;
        let client = p.consumer(None, &[])?;
        assert_eq!(client.fetch_watermarks("doomed", 1, CALL)?, (0, 0));
        Ok(())
    });
}

/// (f) ListGroups/DescribeGroups (`fetch_group_list`), OffsetFetch from outside the group
/// (`committed_offsets`) and ListOffsets (`fetch_watermarks`).
///
/// tansu 0.6.0-510f3e2 lists a group only once it has committed offsets: an active group that
/// never committed is absent from ListGroups, and so from `fetch_group_list` even by name
/// (librdkafka only describes the groups ListGroups named). DescribeGroups then gives the
/// name, state and protocol type and the member ids, but an empty protocol, empty client ids
/// and hosts and no assignments. What a group committed is readable from outside it
/// (OffsetFetch with its group id, no join), which is what `inspect` needs.
#[test]
fn group_list_and_watermarks() {
    probe("group_list_watermarks", |p| {
        p.create(&[("marks", 2)])?;
        for i in 0..3 {
            p.produce_simple("marks", 1, "k", &format!("v{i}"))?;
        }
        let client = p.consumer(None, &[])?;
        assert_eq!(client.fetch_watermarks("marks", 0, CALL)?, (0, 0));
        assert_eq!(client.fetch_watermarks("marks", 1, CALL)?, (0, 3));

        let member = p.consumer(Some("listed"), &[("client.id", "lister")])?;
        member.subscribe(&["marks"])?;
        poll_records(&member, 3)?;
        assert_eq!(assigned(&member, "marks")?, BTreeSet::from([0, 1]));
        let group_names = || -> TestResult<Vec<String>> {
            let list = client.fetch_group_list(None, CALL)?;
            Ok(list.groups().iter().map(|g| g.name().to_string()).collect())
        };
        let before = group_names()?;
        eprintln!("fetch_group_list(None), stable group, nothing committed: {before:?}");
        assert_eq!(before, Vec::<String>::new());

        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("marks", 1, Offset::Offset(2))?;
        member.commit(&tpl, CommitMode::Sync)?;
        let after = group_names()?;
        eprintln!("fetch_group_list(None), after a commit: {after:?}");
        assert_eq!(after, vec!["listed".to_string()]);

        let described = client.fetch_group_list(Some("listed"), CALL)?;
        let group = described.groups().first().ok_or("DescribeGroups returned no group")?;
        let members: Vec<(&str, &str, Option<usize>)> = group
            .members()
            .iter()
            .map(|m| (m.id(), m.client_id(), m.assignment().map(<[u8]>::len)))
            .collect();
        eprintln!(
            "fetch_group_list(listed): state {:?}, protocol_type {:?}, protocol {:?}, members {members:?}",
            group.state(),
            group.protocol_type(),
            group.protocol()
        );
        assert_eq!(
            (group.name(), group.state(), group.protocol_type()),
            ("listed", "Stable", "consumer")
        );
        assert_eq!(members.len(), 1);
        assert!(members[0].0.starts_with("lister-"), "member id {:?}", members[0].0);
        // Kafka would say "range", "lister" and give the member's assignment.
        assert_eq!((group.protocol(), members[0].1, members[0].2), ("", "", None));
        drop(described);

        // The group's committed offsets, read by a client that never joins it. (The returned
        // list must be dropped before the consumer: see committed_offsets_resume_a_new_consumer.)
        let observer = p.consumer(Some("listed"), &[])?;
        let mut query = TopicPartitionList::new();
        query.add_partition("marks", 0);
        query.add_partition("marks", 1);
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
        p.create(&[("changelog", 3)])?;
        for i in 0..25 {
            p.produce_simple("changelog", 1, &format!("k{}", i % 7), &format!("v{i}"))?;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("changelog", 1, Offset::Beginning)?;

        // librdkafka (not the broker) refuses `assign` without a `group.id`: it keeps fetch
        // positions in its group handle. A group id is needed, but no group is joined (no
        // subscribe, no JoinGroup) and nothing is committed unless asked.
        let groupless = p.consumer(None, &[])?;
        match groupless.assign(&tpl) {
            Err(KafkaError::Subscription(e)) if e.contains("Unknown group") => {}
            other => return Err(format!("assign without group.id: expected Unknown group, got {other:?}").into()),
        }

        let consumer = p.consumer(Some("restorer"), &[("enable.partition.eof", "true")])?;
        let (low, high) = consumer.fetch_watermarks("changelog", 1, CALL)?;
        assert_eq!((low, high), (0, 25));
        consumer.assign(&tpl)?;

        let deadline = Instant::now() + SETTLE;
        let mut offsets = Vec::new();
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => offsets.push(m.offset()),
                Some(Err(KafkaError::PartitionEOF(1))) => break,
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
            if Instant::now() > deadline {
                return Err(format!("no end of partition within {SETTLE:?}, read {offsets:?}").into());
            }
        }
        assert_eq!(offsets, (0..high).collect::<Vec<_>>());
        assert_eq!(
            consumer.position()?.find_partition("changelog", 1).map(|e| e.offset()),
            Some(Offset::Offset(high))
        );
        Ok(())
    });
}

/// (g) Records produced in batches (several records per Produce request) get contiguous
/// offsets and are all read before end-of-partition, but tansu 0.6.0-510f3e2 reports a wrong
/// high watermark for them: the base offset of the last batch + 1 (here two batches of 5,
/// offsets 0..=9, high watermark 6 instead of 10). So `fetch_watermarks` cannot tell where a
/// partition ends (nor a lag): read to the end with `enable.partition.eof` instead, and never
/// stop at the high watermark.
#[test]
fn batched_records_offsets_and_high_watermark() {
    probe("batched_watermark", |p| {
        p.create(&[("batched", 1)])?;
        let producer: BaseProducer = p.config().set("linger.ms", "200").create()?;
        for batch in 0..2 {
            for i in 0..5 {
                let value = format!("v{batch}.{i}");
                producer
                    .send(BaseRecord::to("batched").partition(0).key("k").payload(&value))
                    .map_err(|(e, _)| e)?;
            }
            producer.flush(CALL)?;
        }
        let consumer = p.consumer(Some("reader"), &[("enable.partition.eof", "true")])?;
        let (low, high) = consumer.fetch_watermarks("batched", 0, CALL)?;
        eprintln!("two batches of 5 records: watermarks ({low}, {high})");
        assert_eq!(low, 0);
        assert!(
            high < 10,
            "tansu now counts records in the high watermark ({high}); update this probe"
        );

        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("batched", 0, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + SETTLE;
        let mut offsets = Vec::new();
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => offsets.push(m.offset()),
                Some(Err(KafkaError::PartitionEOF(0))) => break,
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
            if Instant::now() > deadline {
                return Err(format!("no end of partition within {SETTLE:?}, read {offsets:?}").into());
            }
        }
        assert_eq!(offsets, (0..10).collect::<Vec<_>>());
        let position = consumer.position()?.find_partition("batched", 0).map(|e| e.offset());
        assert_eq!(position, Some(Offset::Offset(10)));
        Ok(())
    });
}

/// (h) Transactions: a producer with a `transactional.id` can init, begin, commit and abort
/// transactions on tansu (InitProducerId, AddPartitionsToTxn, EndTxn all answer), and committed
/// records are delivered. Isolation is the part that does not work: see the next test.
#[test]
fn transactional_producer_api() {
    probe("transactions", |p| {
        p.create(&[("txn", 1)])?;
        let producer = p.producer(&[("transactional.id", "flowc-probe-txn")])?;
        producer.init_transactions(CALL)?;
        producer.begin_transaction()?;
        p.produce(
            &producer,
            FutureRecord::to("txn").partition(0).payload(&b"committed"[..]),
        )?;
        producer.commit_transaction(CALL)?;
        producer.begin_transaction()?;
        p.produce(&producer, FutureRecord::to("txn").partition(0).payload(&b"aborted"[..]))?;
        producer.abort_transaction(CALL)?;

        let uncommitted = read_to_end(p, "txn", "read_uncommitted")?;
        assert_eq!(uncommitted, vec!["committed", "aborted"]);
        let client = p.consumer(None, &[])?;
        let marks = client.fetch_watermarks("txn", 0, CALL)?;
        eprintln!("txn watermarks after one committed and one aborted transaction: {marks:?}");
        Ok(())
    });
}

/// (h) A `read_committed` consumer must not see records of an aborted transaction.
// Ignored: on tansu 0.6.0-510f3e2 it does (reads ["committed", "aborted"]): fetch responses
// carry no aborted-transaction list, so exactly-once (transactional) processing cannot be
// relied on with this broker. Run with `--ignored` to check a newer tansu.
#[test]
#[ignore = "tansu 0.6.0-510f3e2: read_committed consumers still see aborted records"]
fn read_committed_hides_aborted_records() {
    probe("read_committed", |p| {
        p.create(&[("txn", 1)])?;
        let producer = p.producer(&[("transactional.id", "flowc-probe-txn")])?;
        producer.init_transactions(CALL)?;
        producer.begin_transaction()?;
        p.produce(
            &producer,
            FutureRecord::to("txn").partition(0).payload(&b"committed"[..]),
        )?;
        producer.commit_transaction(CALL)?;
        producer.begin_transaction()?;
        p.produce(&producer, FutureRecord::to("txn").partition(0).payload(&b"aborted"[..]))?;
        producer.abort_transaction(CALL)?;
        assert_eq!(read_to_end(p, "txn", "read_committed")?, vec!["committed"]);
        Ok(())
    });
}

/// The payloads of partition 0 of `topic`, read from the beginning to its end.
fn read_to_end(p: &Probe, topic: &str, isolation: &str) -> TestResult<Vec<String>> {
    let consumer = p.consumer(
        Some("reader"),
        &[("isolation.level", isolation), ("enable.partition.eof", "true")],
    )?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + SETTLE;
    let mut payloads = Vec::new();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => payloads.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()),
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(payloads),
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
        if Instant::now() > deadline {
            return Err(format!("no end of partition within {SETTLE:?}, read {payloads:?}").into());
        }
    }
}
