//! Incremental rebalancing (issue 16, §10): worker A runs the join sample's 8 partitions under a
//! steady load; worker B joins. With the consumer group protocol (KIP-848, Apache Kafka 4) only
//! the partitions that move to B stop, for as long as B takes to restore their join stores;
//! A's tasks for the partitions it keeps are never rebuilt and their outputs never pause. The
//! classic (eager) protocol runs the same script for contrast: there every task stops.
//!
//! Apache Kafka only: tansu has no KIP-848 groups.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use support::{join, Env};

const PARTITIONS: usize = 8;
/// Half-joined keys in the store before B joins (what a moved partition restores).
const STORED: usize = 40_000;
/// Keys per second of the steady load (both sides of the join for each).
const RATE: usize = 200;
const WAIT: Duration = Duration::from_secs(120);
/// The join step (the sub-topology with stores).
const JOIN: &str = "tfsimple3";

/// Arrival times of the join step's outputs, per partition, and the keys seen.
#[derive(Default)]
struct Arrivals {
    at: BTreeMap<i32, Vec<Instant>>,
    keys: BTreeSet<String>,
}

/// Reads `topic` from its current end on a thread until `stop`, noting when each record came.
fn watch(env: &Env, topic: &str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Arrivals> {
    let consumer: BaseConsumer = env
        .client_config()
        .set("group.id", "flowc-test-watch")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition_offset(topic, p, Offset::End).expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    std::thread::spawn(move || {
        let mut seen = Arrivals::default();
        while !stop.load(Ordering::Relaxed) {
            let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            seen.at.entry(m.partition()).or_default().push(Instant::now());
            if let Some(Ok(k)) = m.key().map(std::str::from_utf8) {
                seen.keys.insert(k.to_string());
            }
        }
        seen
    })
}

/// The longest gap between two outputs of a partition within `[from, to]`, counting from
/// `from` to the first output and from the last one to `to`.
fn longest_gap(at: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for &t in at.iter().filter(|t| **t > from && **t <= to) {
        longest = longest.max(t - last);
        last = t;
    }
    longest.max(to.saturating_duration_since(last))
}

struct Outcome {
    /// Partitions whose join task B started.
    moved: BTreeSet<i32>,
    /// Per partition: the longest output gap before B joined, and from B's start until the load ended.
    before: BTreeMap<i32, Duration>,
    during: BTreeMap<i32, Duration>,
    /// Join tasks A started after B had joined (an eager rebalance rebuilds them all).
    a_restarted: Vec<join::TaskStarted>,
    env: Env,
}

fn run(protocol: &str) -> Outcome {
    let mut env = Env::start();
    env.client_properties.push(("group.protocol".into(), protocol.into()));
    env.start_model_server(&["samples/join.yaml"]);
    env.apply(&["samples/join.yaml"], PARTITIONS as u32);
    let a = env.start_worker("worker-a");
    join::wait_tasks(&env, a, JOIN, PARTITIONS, WAIT);
    let producer = env.producer();
    // Half-joined keys: the store a moved partition restores.
    join::feed(&env, &producer, "tfsimple1", "stored", 0..STORED, PARTITIONS);

    let stop = Arc::new(AtomicBool::new(false));
    let outputs = env.topic(&format!("default.model.{JOIN}.inputs"));
    let watcher = watch(&env, &outputs, stop.clone());
    // Let the store's backlog drain, so the gaps measured are the steady load's.
    let deadline = Instant::now() + WAIT;
    let left = "default.model.tfsimple1.outputs";
    let group = format!("default.pipeline.join.{JOIN}");
    while env.committed(left, &group, PARTITIONS as i32) < env.end_offsets(left, PARTITIONS as i32) {
        assert!(
            Instant::now() < deadline,
            "the join step never caught up\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The steady load: both sides of RATE keys a second, spread over every partition.
    let load_stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = load_stop.clone();
        let producer = env.producer();
        let (left, right) = (join::side(&env, "tfsimple1"), join::side(&env, "tfsimple2"));
        std::thread::spawn(move || {
            let tick = Duration::from_millis(10);
            let per_tick = RATE / 100;
            let mut sent = 0;
            let mut next = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                join::send(&producer, &left, "load", sent..sent + per_tick, PARTITIONS);
                join::send(&producer, &right, "load", sent..sent + per_tick, PARTITIONS);
                producer.poll(Duration::ZERO);
                sent += per_tick;
                next += tick;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
            producer.flush(Duration::from_secs(30)).expect("flush");
            sent
        })
    };
    let load_began = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let a_log_before = join::tasks_started(&env.procs[a].log(), JOIN).len();
    let b_started = Instant::now();
    let b = env.start_worker("worker-b");
    std::thread::sleep(Duration::from_secs(12));
    load_stop.store(true, Ordering::Relaxed);
    let sent = load.join().expect("load");
    let load_ended = Instant::now();

    // Every key of the load is answered: nothing is lost in the move, and the join still
    // meets both sides (partition n of both topics went to the same member).
    let deadline = Instant::now() + WAIT;
    let wanted: BTreeSet<String> = (0..sent).map(|i| join::key("load", i, PARTITIONS).0).collect();
    let right = "default.model.tfsimple2.outputs";
    while env.committed(right, &group, PARTITIONS as i32) < env.end_offsets(right, PARTITIONS as i32)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    // What the join step wrote before its last commit reaches the watcher.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let watched = watcher.join().expect("watcher");
    let missing: Vec<&String> = wanted.iter().filter(|k| !watched.keys.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "{protocol}: {} of {sent} keys never joined (first {:?})\n{}",
        missing.len(),
        missing.iter().take(5).collect::<Vec<_>>(),
        env.logs()
    );

    let moved: BTreeSet<i32> = join::tasks_started(&env.procs[b].log(), JOIN)
        .iter()
        .map(|t| t.partition)
        .collect();
    let a_restarted = join::tasks_started(&env.procs[a].log(), JOIN)[a_log_before..].to_vec();
    let mut before = BTreeMap::new();
    let mut during = BTreeMap::new();
    for p in 0..PARTITIONS as i32 {
        let at = watched.at.get(&p).map(Vec::as_slice).unwrap_or_default();
        before.insert(p, longest_gap(at, load_began + Duration::from_secs(1), b_started));
        during.insert(p, longest_gap(at, b_started, load_ended));
    }
    Outcome {
        moved,
        before,
        during,
        a_restarted,
        env,
    }
}

fn table(o: &Outcome) -> String {
    let mut out = String::from("partition  moved  longest gap before B  longest gap after B joined\n");
    for p in 0..PARTITIONS as i32 {
        out.push_str(&format!(
            "{p:>9}  {:>5}  {:>20?}  {:>26?}\n",
            if o.moved.contains(&p) { "yes" } else { "no" },
            o.before[&p],
            o.during[&p]
        ));
    }
    out
}

#[test]
fn a_joining_worker_stops_only_the_partitions_that_move() {
    if support::broker_kind() == flowc_runtime::devbroker::BrokerKind::Tansu {
        eprintln!("tansu has no KIP-848 consumer groups: incremental rebalancing is tested on Apache Kafka");
        return;
    }
    let o = run("consumer");
    eprintln!("consumer protocol (KIP-848, incremental):\n{}", table(&o));
    assert!(
        !o.moved.is_empty() && o.moved.len() < PARTITIONS,
        "B should take some of the {PARTITIONS} partitions and A keep the others; B took {:?}\n{}",
        o.moved,
        o.env.logs()
    );
    // A never rebuilt a task: the partitions it kept were never revoked.
    assert!(
        o.a_restarted.is_empty(),
        "A restarted join tasks {:?} after B joined\n{}",
        o.a_restarted,
        o.env.logs()
    );
    // And their outputs never stopped. Their longest gap while B joined is reported beside
    // the moved partitions' pause; the bound is ten batch intervals, well under what a stop
    // costs (librdkafka pausing the whole assignment while a rebalance waits cost a second
    // until `SubRunner::wake_kept`; an eager rebalance stops every task).
    let kept: Vec<Duration> = (0..PARTITIONS as i32)
        .filter(|p| !o.moved.contains(p))
        .map(|p| o.during[&p])
        .collect();
    let moved: Vec<Duration> = o.moved.iter().map(|p| o.during[p]).collect();
    eprintln!(
        "consumer protocol: kept partitions' longest gap {:?} at most; moved partitions paused {:?} to {:?}",
        kept.iter().max().unwrap(),
        moved.iter().min().unwrap(),
        moved.iter().max().unwrap()
    );
    for p in (0..PARTITIONS as i32).filter(|p| !o.moved.contains(p)) {
        assert!(
            o.during[&p] < Duration::from_secs(1),
            "kept partition {p} paused {:?}\n{}\n{}",
            o.during[&p],
            table(&o),
            o.env.logs()
        );
    }
    drop(o);

    // Contrast: the classic protocol's eager rebalance stops every task.
    let c = run("classic");
    eprintln!(
        "classic protocol (eager), for contrast: A restarted {} join tasks\n{}",
        c.a_restarted.len(),
        table(&c)
    );
}
