//! Who holds which partitions, for people (`flowc status --partitions`). On Apache Kafka the
//! broker says it: [`super::groups::describe`] returns every member with its assignment, for
//! groups of either protocol. tansu 0.6 describes members without their assignment, so every
//! worker runner also reports its assignment to the compacted topic `<prefix>.flowc.members`
//! (key `<group>/<member>`) when it changes and every few seconds, and a tombstone when it
//! stops; `status` falls back to those reports when the broker's description has none. They
//! are observation only: Kafka's group protocol decides the assignment; a report of a member
//! that died without a tombstone goes stale and is left out after [`STALE_AFTER`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::config::KafkaConfig;
use super::restore::read_changelog;
use super::KafkaError;

/// How often a runner reports, assignment changes aside.
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Reports older than this are left out (three missed reports).
pub const STALE_AFTER: Duration = Duration::from_secs(15);

pub fn members_topic(prefix: &str) -> String {
    format!("{prefix}.flowc.members")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberReport {
    pub group: String,
    /// The member's `client.id` (workers: `flowc-worker-<host>-<pid>`).
    pub member: String,
    /// Topic → partitions held.
    pub partitions: BTreeMap<String, Vec<i32>>,
    pub at_ms: i64,
    /// What keeps the member from processing, if anything: a runner restarting after an
    /// error, records paused on an unreachable model, lag that keeps growing (§10 health).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl MemberReport {
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.member)
    }
}

/// The current reports, by group, newer than [`STALE_AFTER`] at `now_ms`. The topic must exist
/// (`apply` creates it; `status` checks first).
pub fn read(
    config: &KafkaConfig,
    prefix: &str,
    now_ms: i64,
) -> Result<BTreeMap<String, Vec<MemberReport>>, KafkaError> {
    let records = read_changelog(config, &members_topic(prefix), 0, "members")?;
    let mut latest: BTreeMap<Vec<u8>, Option<MemberReport>> = BTreeMap::new();
    for r in records {
        let report = r.value.as_deref().and_then(|v| serde_json::from_slice(v).ok());
        latest.insert(r.key, report);
    }
    let mut out: BTreeMap<String, Vec<MemberReport>> = BTreeMap::new();
    for report in latest.into_values().flatten() {
        if now_ms - report.at_ms <= STALE_AFTER.as_millis() as i64 {
            out.entry(report.group.clone()).or_default().push(report);
        }
    }
    for reports in out.values_mut() {
        reports.sort_by(|a, b| a.member.cmp(&b.member));
    }
    Ok(out)
}

/// Writes a worker's member reports (one producer per worker process, shared by its runners).
/// Reports are best effort: a failed write is logged, never an error of the runner.
pub struct MemberReporter {
    producer: rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: String,
    /// The member's name: the worker's `client.id`.
    pub member: String,
}

impl MemberReporter {
    pub fn new(config: &KafkaConfig, prefix: &str) -> Result<MemberReporter, KafkaError> {
        let member = config
            .properties
            .iter()
            .rev()
            .find(|(k, _)| k == "client.id")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("flowc-worker-{}", std::process::id()));
        Ok(MemberReporter {
            // Best effort: one acknowledgement is enough, and librdkafka allows idempotence
            // only with acks=all.
            producer: config
                .producer()
                .set("acks", "1")
                .set("enable.idempotence", "false")
                .create()?,
            topic: members_topic(prefix),
            member,
        })
    }

    /// What `group`'s consumer holds now (`None`: it stopped; a tombstone), and what keeps it
    /// from processing, if anything.
    pub fn report(&self, group: &str, partitions: Option<BTreeMap<String, Vec<i32>>>, problem: Option<&str>) {
        let key = format!("{group}/{}", self.member);
        let value = partitions.map(|partitions| {
            serde_json::to_vec(&MemberReport {
                group: group.to_string(),
                member: self.member.clone(),
                partitions,
                at_ms: super::now_ms(),
                problem: problem.map(str::to_string),
            })
            .unwrap_or_default()
        });
        let mut record = rdkafka::producer::BaseRecord::to(&self.topic).key(&key).partition(0);
        if let Some(v) = &value {
            record = record.payload(v.as_slice());
        }
        if let Err((e, _)) = self.producer.send(record) {
            tracing::debug!(error = %e, "member report not written");
        }
    }

    /// Waits (bounded) until the reports are written, before the worker exits.
    pub fn flush(&self) {
        let _ = rdkafka::producer::Producer::flush(&self.producer, Duration::from_secs(2));
    }
}
