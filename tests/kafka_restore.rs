//! Restore from checkpoints (issue 16, §10): a worker's join store on its own disk is
//! checkpointed (the changelog offset it is on disk up to), so a worker restarted on the same
//! state directory, even after SIGKILL, replays only the changelog's tail; a fresh state
//! directory restores in full (a join store of 100,000 entries). Apache Kafka only (a checkpoint is a high watermark, which tansu
//! counts in batches).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::producer::BaseProducer;
use support::{join, Env};

const WAIT: Duration = Duration::from_secs(120);
/// Checkpoints are on by default; a worker that turns them off restores in full.
const NO_CHECKPOINTS: &[&str] = &["--restore-from-checkpoints=false"];

const PARTITIONS: usize = 2;

fn key(tag: &str, i: usize) -> (String, i32) {
    join::key(tag, i, PARTITIONS)
}

/// One side of the join (`model.<m>.outputs`) for keys `tag-0..n`.
fn feed(env: &Env, producer: &BaseProducer, model: &str, tag: &str, range: std::ops::Range<usize>) {
    join::feed(env, producer, model, tag, range, PARTITIONS);
}

/// Waits until the join step's group has committed `n` records of tfsimple1's outputs.
fn wait_committed(env: &Env, n: i64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let committed = env.committed(
            "default.model.tfsimple1.outputs",
            "default.pipeline.join.tfsimple3",
            PARTITIONS as i32,
        );
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

/// The join step's tasks started by `worker`, once there are `n`: (restored in full, replayed
/// from a checkpoint), summed over partitions.
fn wait_tasks(env: &Env, worker: usize, n: usize) -> (usize, usize) {
    let started = join::wait_tasks(env, worker, "tfsimple3", n, WAIT);
    (
        started.iter().map(|t| t.restored).sum(),
        started.iter().map(|t| t.tail).sum(),
    )
}

/// Whether both tasks wrote a checkpoint after `since` (one written while the store was still
/// filling would make the tail longer than the test's).
fn checkpointed(state: &Path, since: std::time::SystemTime) -> bool {
    (0..2).all(|p| {
        std::fs::metadata(state.join(format!("default.join/tfsimple3/{p}/.checkpoint")))
            .and_then(|m| m.modified())
            .is_ok_and(|at| at > since)
    })
}

#[test]
fn a_restart_on_the_same_state_dir_replays_only_the_changelog_tail() {
    const ENTRIES: usize = 100_000;
    const TAIL: usize = 500;
    let mut env = Env::start();
    if support::broker_kind() == flowc_runtime::devbroker::BrokerKind::Tansu {
        eprintln!("tansu's high watermark counts batches: checkpoints are kept on Apache Kafka only");
        return;
    }
    env.start_model_server(&["samples/join.yaml"]);
    env.apply(&["samples/join.yaml"], 2);
    let state = env.dir.path().join("state");
    let a = env.start_worker_with_state_args("worker-a", &state, &[]);
    let producer = env.producer();
    wait_tasks(&env, a, 2);
    feed(&env, &producer, "tfsimple1", "st", 0..ENTRIES);
    wait_committed(&env, ENTRIES as i64);
    // A checkpoint comes every 10 s after a commit.
    let all_in = std::time::SystemTime::now();
    let deadline = Instant::now() + WAIT;
    while !checkpointed(&state, all_in) {
        assert!(Instant::now() < deadline, "no checkpoint\n{}", env.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Some more after it, then no goodbye.
    feed(&env, &producer, "tfsimple1", "tail", 0..TAIL);
    wait_committed(&env, (ENTRIES + TAIL) as i64);
    env.procs[a].kill();

    let started = Instant::now();
    let b = env.start_worker_with_state_args("worker-b", &state, &[]);
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
    let c = env.start_worker_with_state_args("worker-c", &env.dir.path().join("fresh-state"), NO_CHECKPOINTS);
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
