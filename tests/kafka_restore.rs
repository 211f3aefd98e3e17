//! Restore from checkpoints (issue 16, §10): a worker's join store on its own disk is
//! checkpointed (the changelog offset it is on disk up to), so a worker restarted on the same
//! state directory, even after SIGKILL, replays only the changelog's tail; a fresh state
//! directory restores in full. Apache Kafka only (a checkpoint is a high watermark, which tansu
//! counts in batches).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use flowc_runtime::tensor::{Encoding, InferMessage};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::TopicPartitionList;
use support::{int32, Env};

const WAIT: Duration = Duration::from_secs(120);

/// What tfsimple1 or tfsimple2 would have answered, written straight to its outputs topic.
fn response() -> Vec<u8> {
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

fn key(tag: &str, i: usize) -> (String, i32) {
    let p = (i % 2) as i32;
    (format!("{p}.join.{tag}-{i}"), p)
}

/// One side of the join (`model.<m>.outputs`) for keys `tag-0..n`.
fn feed(env: &Env, producer: &BaseProducer, model: &str, tag: &str, range: std::ops::Range<usize>) {
    let topic = env.topic(&format!("default.model.{model}.outputs"));
    let value = response();
    for i in range {
        let (k, p) = key(tag, i);
        let mut record =
            BaseRecord::to(&topic)
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
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Waits until the join step's group has committed `n` records of tfsimple1's outputs.
fn wait_committed(env: &Env, n: i64) {
    let group = env.topic("default.pipeline.join.tfsimple3");
    let topic = env.topic("default.model.tfsimple1.outputs");
    let consumer: BaseConsumer = env.client_config().set("group.id", &group).create().expect("consumer");
    let deadline = Instant::now() + WAIT;
    loop {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        tpl.add_partition(&topic, 1);
        let committed: i64 = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .map(|c| {
                c.elements()
                    .iter()
                    .filter_map(|e| e.offset().to_raw())
                    .filter(|o| *o > 0)
                    .sum()
            })
            .unwrap_or(0);
        if committed >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {committed} of {n}\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The worker log's "task started" figures of the join step: (restored, tail) summed over
/// partitions, and how many such lines there are.
fn task_started(log: &str) -> (usize, usize, usize) {
    let field = |line: &str, name: &str| -> usize {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("task started") && l.contains("sub=tfsimple3"))
        .collect();
    (
        lines.iter().map(|l| field(l, "restored=")).sum(),
        lines.iter().map(|l| field(l, "tail=")).sum(),
        lines.len(),
    )
}

fn wait_tasks(env: &Env, worker: usize, n: usize) -> (usize, usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (restored, tail, lines) = task_started(&env.procs[worker].log());
        if lines >= n {
            return (restored, tail);
        }
        assert!(Instant::now() < deadline, "no task started\n{}", env.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn checkpointed(state: &Path) -> bool {
    (0..2).all(|p| state.join(format!("default.join/tfsimple3/{p}/.checkpoint")).exists())
}

#[test]
fn a_restart_on_the_same_state_dir_replays_only_the_changelog_tail() {
    const ENTRIES: usize = 20_000;
    const TAIL: usize = 500;
    let mut env = Env::start();
    if support::broker_kind() == flowc_runtime::devbroker::BrokerKind::Tansu {
        eprintln!("tansu's high watermark counts batches: checkpoints are kept on Apache Kafka only");
        return;
    }
    env.start_model_server(&["samples/join.yaml"]);
    env.apply(&["samples/join.yaml"], 2);
    let state = env.dir.path().join("state");
    let a = env.start_worker_with_state("worker-a", &state);
    let producer = env.producer();
    wait_tasks(&env, a, 2);
    feed(&env, &producer, "tfsimple1", "st", 0..ENTRIES);
    wait_committed(&env, ENTRIES as i64);
    // A checkpoint comes every 10 s after a commit.
    let deadline = Instant::now() + WAIT;
    while !checkpointed(&state) {
        assert!(Instant::now() < deadline, "no checkpoint\n{}", env.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Some more after it, then no goodbye.
    feed(&env, &producer, "tfsimple1", "tail", 0..TAIL);
    wait_committed(&env, (ENTRIES + TAIL) as i64);
    env.procs[a].kill();

    let started = Instant::now();
    let b = env.start_worker_with_state("worker-b", &state);
    let (restored, tail) = wait_tasks(&env, b, 2);
    // Both kinds of key meet their other side: the store is whole.
    feed(&env, &producer, "tfsimple2", "st", 7..8);
    feed(&env, &producer, "tfsimple2", "tail", 3..4);
    let outputs = env.topic("default.pipeline.join.outputs");
    let got = env.collect(&outputs, &[key("st", 7).0, key("tail", 3).0], WAIT);
    let first_output = started.elapsed();
    eprintln!(
        "restart on the same state dir after SIGKILL: {restored} restored in full, {tail} replayed from the checkpoint (of {} in the changelog); first outputs {first_output:?} after the start",
        ENTRIES + TAIL
    );
    for (k, r) in &got {
        assert_eq!(r.header("seldon-pipeline-errors"), None, "{k}: {}", r.tensors());
    }
    assert_eq!(restored, 0, "{}", env.procs[b].log());
    assert!(
        tail <= TAIL + 2,
        "replayed {tail}, more than the tail\n{}",
        env.procs[b].log()
    );

    // The same store on a fresh state directory: a full restore.
    env.procs[b].terminate();
    let started = Instant::now();
    let c = env.start_worker_with_state("worker-c", &env.dir.path().join("fresh-state"));
    let (restored, tail) = wait_tasks(&env, c, 2);
    let took = started.elapsed();
    eprintln!(
        "a fresh state dir: {restored} restored in full, {tail} from a checkpoint; tasks ready {took:?} after the start ({:.0} records/s including process start)",
        restored as f64 / took.as_secs_f64()
    );
    assert!(restored >= ENTRIES + TAIL, "{}", env.procs[c].log());
    assert_eq!(tail, 0);
    feed(&env, &producer, "tfsimple2", "st", 11..12);
    let got = env.collect(&outputs, &[key("st", 11).0], WAIT);
    assert_eq!(got[&key("st", 11).0].header("seldon-pipeline-errors"), None);
}
