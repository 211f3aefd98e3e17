//! Scale by partition and survive kills, on a real broker. `halves` (tests/e2e/halves.yaml)
//! joins the answers of pipelines `left` and `right` by request key, so the join state of a
//! key sits in the worker owning its partition between its two halves. These tests move
//! that state: a second worker joins mid-stream, a worker is SIGKILLed with half-joined keys,
//! a worker restarts with an empty state directory. Every key must still be answered, with
//! both halves.

mod support;

use std::time::{Duration, Instant};

use rdkafka::message::Message;
use support::{fp32, keys, request, Env};

const WAIT: Duration = Duration::from_secs(120);
const CHANGELOG: &str = "default.pipeline.halves._input.join-changelog";

fn start() -> Env {
    let mut env = Env::start();
    env.start_model_server(&["tests/e2e/halves.yaml"]);
    env.apply(&["tests/e2e/halves.yaml"], 4);
    env
}

fn send_left(env: &Env, p: &rdkafka::producer::BaseProducer, keys: &[String]) {
    for k in keys {
        env.send(p, "left", k, &request(vec![fp32("L", vec![1], vec![1.0])]));
    }
}

fn send_right(env: &Env, p: &rdkafka::producer::BaseProducer, keys: &[String]) {
    for k in keys {
        env.send(p, "right", k, &request(vec![fp32("R", vec![1], vec![2.0])]));
    }
}

/// Waits until the join's changelog holds a record for every key (its half is stored).
fn wait_for_changelog(env: &Env, keys: &[String]) {
    let deadline = Instant::now() + WAIT;
    let consumer = env.reader(&env.topic(CHANGELOG), deadline);
    let mut seen = std::collections::BTreeSet::new();
    while keys.iter().any(|k| !seen.contains(k)) {
        assert!(
            Instant::now() < deadline,
            "join state of {keys:?} never reached {CHANGELOG}\n{}",
            env.logs()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            if m.payload().is_some() {
                seen.insert(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned());
            }
        }
    }
}

fn check_answers(env: &Env, keys: &[String]) {
    let got = env.collect(&env.topic("default.pipeline.halves.outputs"), keys, WAIT);
    for k in keys {
        assert_eq!(
            got[k].tensors(),
            "L FP32 [1] = [1.0]\nR FP32 [1] = [2.0]",
            "key {k}\n{}",
            env.logs()
        );
    }
}

fn restored_counts(log: &str) -> Vec<usize> {
    // Records applied from the changelog: all of it (`restored=`), or the tail after the
    // task's checkpoint (`tail=`) when its store is still on this worker's disk.
    let field = |line: &str, name: &str| -> usize {
        line.split(name)
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0)
    };
    log.lines()
        .filter(|l| l.contains("task started") && l.contains("sub=_input"))
        .map(|l| field(l, "restored=") + field(l, " tail="))
        .collect()
}

/// `flowc status --partitions`: each member of the join's `_input` group and the partitions it
/// holds of the first topic listed.
fn input_holders(env: &Env) -> Vec<(String, Vec<i32>)> {
    let out = env.flowc(&["status", "--partitions"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut in_group = false;
    let mut holders = Vec::new();
    for line in text.lines() {
        if line.starts_with("  ") && !line.starts_with("    ") {
            in_group = line.trim_start().starts_with("_input ");
            continue;
        }
        if in_group {
            if let Some((who, held)) = line.trim().split_once(": ") {
                let first = held.split('[').nth(1).and_then(|l| l.split(']').next()).unwrap_or("");
                let partitions = first.split(", ").filter_map(|p| p.trim().parse().ok()).collect();
                holders.push((who.to_string(), partitions));
            }
        }
    }
    holders
}

#[test]
fn one_worker_then_two_then_one_killed_loses_nothing() {
    let mut env = start();
    let w1 = env.start_worker("worker-1");
    let p = env.producer();

    // One worker, both halves.
    let a = keys("a", 12);
    send_left(&env, &p, &a);
    send_right(&env, &p, &a);
    check_answers(&env, &a);

    // A second worker joins mid-stream: the group rebalances while records keep coming.
    let b = keys("b", 12);
    send_left(&env, &p, &b[..6]);
    let w2 = env.start_worker("worker-2");
    send_right(&env, &p, &b[..6]);
    send_left(&env, &p, &b[6..]);
    env.procs[w2].wait_for_log("sub=_input", 1, WAIT);
    send_right(&env, &p, &b[6..]);
    check_answers(&env, &b);
    let w2_partitions = env.procs[w2].log().matches("task started").count();
    assert!(
        w2_partitions > 0,
        "the second worker never got partitions\n{}",
        env.logs()
    );

    // `flowc status --partitions` shows the two replicas sharing the join's partitions.
    let deadline = Instant::now() + WAIT;
    loop {
        let holders = input_holders(&env);
        let sets: Vec<&Vec<i32>> = holders.iter().map(|(_, ps)| ps).collect();
        let spread = sets.len() == 2
            && sets.iter().all(|ps| !ps.is_empty())
            && sets[0].iter().all(|p| !sets[1].contains(p))
            && sets[0].len() + sets[1].len() == 4;
        if spread {
            assert_ne!(holders[0].0, holders[1].0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed two replicas sharing the partitions: {holders:?}\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    // First halves of new keys, then worker 2 dies without a goodbye; the second halves
    // arrive after. The keys worker 2 held complete from join state restored on worker 1.
    let c = keys("c", 16);
    send_left(&env, &p, &c);
    wait_for_changelog(&env, &c);
    let before = restored_counts(&env.procs[w1].log()).len();
    env.procs[w2].kill();
    send_right(&env, &p, &c);
    let d = keys("d", 8);
    send_left(&env, &p, &d);
    send_right(&env, &p, &d);
    check_answers(&env, &c);
    check_answers(&env, &d);
    let after = restored_counts(&env.procs[w1].log());
    assert!(
        after.len() > before && after[before..].iter().any(|&n| n > 0),
        "worker 1 never restored join state from the changelog after the kill: {after:?}\n{}",
        env.logs()
    );
}

#[test]
fn a_worker_with_an_empty_state_dir_rebuilds_its_stores() {
    let mut env = start();
    let state = env.dir.path().join("state");
    let w = env.start_worker_with_state("worker", &state);
    let p = env.producer();
    let e = keys("e", 12);
    send_left(&env, &p, &e);
    wait_for_changelog(&env, &e);
    env.procs[w].kill();
    std::fs::remove_dir_all(&state).expect("wipe state");
    env.start_worker_with_state("worker-again", &state);
    send_right(&env, &p, &e);
    check_answers(&env, &e);
    let restored = restored_counts(&env.procs.last().expect("worker").log());
    assert!(
        restored.iter().sum::<usize>() >= e.len(),
        "restored {restored:?}\n{}",
        env.logs()
    );
}
