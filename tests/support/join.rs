//! The join sample (`samples/join.yaml`) fed from its sides: what tfsimple1 and tfsimple2 would
//! have answered, written straight to their outputs topics, so a test drives the join step's
//! store without model calls. Keys name their partition (`<p>.join.<tag>-<i>`).

use std::time::{Duration, Instant};

use flowc_runtime::tensor::{Encoding, InferMessage};
use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{int32, Env};

/// What tfsimple1 or tfsimple2 would have answered.
pub fn response() -> Vec<u8> {
    let doubled: Vec<i32> = (1..=16).map(|v| 2 * v).collect();
    InferMessage {
        id: "r".into(),
        parameters: Default::default(),
        tensors: vec![
            int32("OUTPUT0", vec![1, 16], doubled),
            int32("OUTPUT1", vec![1, 16], vec![0; 16]),
        ],
        encoding: Encoding::Typed,
    }
    .to_response()
    .expect("encodes")
    .encode_to_vec()
}

/// Key `i` of `tag` over `partitions` partitions, and its partition.
pub fn key(tag: &str, i: usize, partitions: usize) -> (String, i32) {
    let p = (i % partitions) as i32;
    (format!("{p}.join.{tag}-{i}"), p)
}

/// The topic of one side of the join: `model.<model>.outputs`.
pub fn side(env: &Env, model: &str) -> String {
    env.topic(&format!("default.model.{model}.outputs"))
}

/// Writes one side of the join (`topic`, see [`side`]) for keys `range` of `tag`, without
/// waiting for acknowledgements.
pub fn send(producer: &BaseProducer, topic: &str, tag: &str, range: std::ops::Range<usize>, partitions: usize) {
    let value = response();
    for i in range {
        let (k, p) = key(tag, i, partitions);
        let mut record =
            BaseRecord::to(topic)
                .key(&k)
                .payload(&value)
                .partition(p)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "pipeline",
                    value: Some("join"),
                }));
        while let Err((_, r)) = producer.send(record) {
            record = r;
            producer.poll(Duration::from_millis(5));
        }
    }
}

/// [`send`], then waits until the broker has every record.
pub fn feed(
    env: &Env,
    producer: &BaseProducer,
    model: &str,
    tag: &str,
    range: std::ops::Range<usize>,
    partitions: usize,
) {
    send(producer, &side(env, model), tag, range, partitions);
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// One "task started" line of a worker's log for sub-topology `sub`: its partition and how
/// many changelog records it restored in full and replayed from a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskStarted {
    pub partition: i32,
    pub restored: usize,
    pub tail: usize,
}

/// Every "task started" line of `sub` in `log`.
pub fn tasks_started(log: &str, sub: &str) -> Vec<TaskStarted> {
    let field = |line: &str, name: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    log.lines()
        .filter(|l| l.contains("task started") && l.contains(&format!("sub={sub} ")))
        .map(|l| TaskStarted {
            partition: field(l, "partition=") as i32,
            restored: field(l, "restored="),
            tail: field(l, "tail="),
        })
        .collect()
}

/// Waits until worker `worker`'s log has `n` "task started" lines of `sub`.
pub fn wait_tasks(env: &Env, worker: usize, sub: &str, n: usize, timeout: Duration) -> Vec<TaskStarted> {
    let deadline = Instant::now() + timeout;
    loop {
        let started = tasks_started(&env.procs[worker].log(), sub);
        if started.len() >= n {
            return started;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} tasks of {sub} started\n{}",
            started.len(),
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
