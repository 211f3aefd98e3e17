//! Reads a changelog partition from its beginning to its current end: the records that rebuild
//! a task's store when its partition moves to this worker (or the worker lost its disk).

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
    let consumer: BaseConsumer = config.reader().create()?;
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, config.timeout)
        .map_err(|e| KafkaError::unreachable(config, &format!("reading changelog {topic}/{partition}"), e))?;
    let mut records = Vec::new();
    if high <= low {
        return Ok(records);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(low))?;
    consumer.assign(&tpl)?;
    // Generous: a long changelog takes a while, but a stuck read must end in an error.
    let deadline = Instant::now() + config.timeout.max(Duration::from_secs(10)) * 6;
    let mut next = low;
    let exact = config.flavor.exact_watermarks();
    loop {
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
    Ok(records)
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
