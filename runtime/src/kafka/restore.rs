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
    // Past the high watermark, read on until the partition stays quiet: tansu 0.6 reports a
    // high watermark that counts record batches, not records, so it can lie below the end.
    // On Apache Kafka this costs one quiet poll (nobody else writes this partition).
    loop {
        if Instant::now() > deadline {
            return Err(KafkaError::Timeout(format!(
                "restoring store {store} from {topic}/{partition}: at offset {next} of {high}"
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            if next >= high {
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
    }
    Ok(records)
}
