//! Reads a changelog partition from its beginning (or a checkpoint) to its current end: the
//! records that rebuild a task's store when its partition moves to this worker, or only its
//! tail when the worker's local store is still there. Checkpoints (`.checkpoint` in a task's
//! state directory, as Kafka Streams keeps them) say up to which changelog offset the local
//! store is known to be on disk.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::config::KafkaConfig;
use super::KafkaError;
use crate::state::ChangelogRecord;

/// Every record of `topic`/`partition` up to the high watermark seen at the start, as
/// changelog records of `store`.
pub fn read_changelog(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    store: &str,
) -> Result<Vec<ChangelogRecord>, KafkaError> {
    Ok(read_changelog_from(
        config,
        topic,
        partition,
        store,
        None,
        &std::sync::atomic::AtomicBool::new(false),
    )?
    .records)
}

/// A changelog read: its records, and whether they are the tail after a checkpoint (apply
/// them onto the local store) or the whole changelog (clear the store first).
#[derive(Debug)]
pub struct ChangelogRead {
    pub records: Vec<ChangelogRecord>,
    pub tail_from: Option<i64>,
}

/// Like [`read_changelog`], from `checkpoint` when the changelog still holds that offset
/// (not compacted or deleted below it, not recreated shorter); else from its beginning. Ends
/// with [`KafkaError::Cancelled`] soon after `cancel` is set (the partition moved on).
pub fn read_changelog_from(
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
    store: &str,
    checkpoint: Option<i64>,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<ChangelogRead, KafkaError> {
    let consumer: BaseConsumer = config.reader().create()?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, config.timeout)
        .map_err(|e| KafkaError::unreachable(config, &format!("reading changelog {topic}/{partition}"), e))?;
    let tail_from = checkpoint.filter(|c| (low..=high).contains(c));
    let low = tail_from.unwrap_or(low);
    let mut records = Vec::new();
    if high <= low {
        return Ok(ChangelogRead { records, tail_from });
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    // Generous: a long changelog takes a while, but a stuck read must end in an error.
    let deadline = Instant::now() + config.timeout.max(Duration::from_secs(10)) * 6;
    let mut next = low;
    let exact = config.flavor.exact_watermarks();
    loop {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(KafkaError::Cancelled(format!(
                "restoring store {store} from {topic}/{partition}"
            )));
        }
        if Instant::now() > deadline {
            return Err(KafkaError::Timeout(format!(
                "restoring store {store} from {topic}/{partition}: at offset {next} of {high}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            // Apache Kafka: the end is the high watermark (the fetch position passes
            // compacted-away offsets and transaction markers too). tansu 0.6 reports a high
            // watermark that counts record batches, not records, so it can lie below the end:
            // past it, read on until the partition stays quiet.
            let done = if exact {
                next >= high || fetch_position(&consumer, topic, partition) >= high
            } else {
                next >= high
            };
            if done {
                break;
            }
            continue;
        };
        let message = message?;
        next = message.offset() + 1;
        records.push(ChangelogRecord {
            store: store.to_string(),
            key: message.key().unwrap_or_default().to_vec(),
            value: message.payload().map(<[u8]>::to_vec),
        });
        if exact && next >= high {
            break;
        }
    }
    Ok(ChangelogRead { records, tail_from })
}

const CHECKPOINT_FILE: &str = ".checkpoint";

/// The checkpoint of a task's state directory: changelog topic → the offset up to which the
/// local store is on disk. Empty when there is none (or it cannot be read: then everything
/// is restored, which is always right).
pub fn read_checkpoint(dir: &std::path::Path) -> std::collections::BTreeMap<String, i64> {
    std::fs::read(dir.join(CHECKPOINT_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Writes the checkpoint atomically (a temporary file renamed over the old one).
pub fn write_checkpoint(
    dir: &std::path::Path,
    offsets: &std::collections::BTreeMap<String, i64>,
) -> std::io::Result<()> {
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec(offsets).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))
}

/// Removes the checkpoint: the local store may take writes that never commit (exactly once),
/// so until the next clean checkpoint it must be restored in full.
pub fn remove_checkpoint(dir: &std::path::Path) {
    let _ = std::fs::remove_file(dir.join(CHECKPOINT_FILE));
}

/// The consumer's fetch position on `topic`/`partition` (-1 when it has none yet): past every
/// record it returned, and past offsets that hold no record for it (compacted away,
/// transaction markers).
pub(crate) fn fetch_position(consumer: &BaseConsumer, topic: &str, partition: i32) -> i64 {
    consumer
        .position()
        .ok()
        .and_then(|tpl| tpl.find_partition(topic, partition).map(|p| p.offset()))
        .and_then(|offset| offset.to_raw())
        .unwrap_or(-1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_a_missing_or_broken_one_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_checkpoint(dir.path()).is_empty());
        let offsets = std::collections::BTreeMap::from([("c1".to_string(), 42), ("c2".to_string(), 0)]);
        write_checkpoint(dir.path(), &offsets).unwrap();
        assert_eq!(read_checkpoint(dir.path()), offsets);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), b"{not json").unwrap();
        assert!(read_checkpoint(dir.path()).is_empty());
        remove_checkpoint(dir.path());
        assert!(read_checkpoint(dir.path()).is_empty());
    }
}
