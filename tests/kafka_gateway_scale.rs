//! Gateway replicas that come and go under synchronous load (issue 19, PIPELINES.md §7): on a
//! real broker (Apache Kafka by default), with the reference model server and one worker.
//!
//! - 1 → 2 → 1: a closed loop of 16 callers for 60 s; a second gateway starts at 15 s, the
//!   first stops gracefully (SIGTERM) at 35 s. Callers go through a "load balancer" (the list
//!   of live replicas, as a Kubernetes Service's endpoints) and may retry a refused connection,
//!   as any client library does. Every request is answered 200 with its own answer: none
//!   times out, none is lost, although partitions of the outputs topic move twice while
//!   answers are on their way (the gateway's drain reader follows a lost partition until its
//!   callers are answered).
//! - A SIGKILLed replica loses only the requests in flight on it; the other keeps answering,
//!   also while it takes over the dead one's partitions.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use flowc_oip::json::request_to_json;
use support::{http_post, int32, json_tensors, request, Env};

const PIPELINE: &str = "tfsimples";

fn body(v: i32) -> String {
    let r = request(vec![
        int32("INPUT0", vec![1], vec![v]),
        int32("INPUT1", vec![1], vec![v]),
    ]);
    request_to_json(&r).expect("a JSON request").to_string()
}

fn expected(v: i32) -> String {
    format!("OUTPUT0 INT32 [1] = [{}]\nOUTPUT1 INT32 [1] = [{}]", 2 * v, 2 * v)
}

/// How one call ended.
#[derive(Debug)]
enum Call {
    Answered(u16, String),
    /// No connection: nothing was sent (the replica is not listening).
    Refused,
    /// The connection broke after the request was sent.
    Broken(String),
}

fn call(http: &str, v: i32) -> Call {
    match http_post(&format!("{http}/v2/pipelines/{PIPELINE}/infer"), &[], &body(v)) {
        Ok((status, _, text)) => Call::Answered(status, text),
        Err(e) if e.to_lowercase().contains("refused") => Call::Refused,
        Err(e) => Call::Broken(e),
    }
}

#[derive(Default)]
struct Tally {
    answered: AtomicUsize,
    refused_retried: AtomicUsize,
    unavailable_retried: AtomicUsize,
    timeouts: AtomicUsize,
    other: Mutex<Vec<String>>,
}

#[test]
fn gateways_scale_one_two_one_under_load_and_lose_nothing() {
    const CALLERS: usize = 16;
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 4);
    env.start_worker("worker");
    let a = env.start_gateway("gateway-a", &[]);
    env.wait_pipeline_ready(&a.http, PIPELINE);
    let a_index = env.procs.len() - 1;

    let endpoints: RwLock<Vec<String>> = RwLock::new(vec![a.http.clone()]);
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let mut b_http = String::new();
    std::thread::scope(|s| {
        for c in 0..CALLERS {
            let (endpoints, stop, tally, next) = (&endpoints, &stop, &tally, &next);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = (c * 100_000 + i) as i32;
                    i += 1;
                    // One request, retried only where nothing was written: a refused
                    // connection, or 503 (refused before writing).
                    loop {
                        let http = {
                            let list = endpoints.read().unwrap();
                            list[next.fetch_add(1, Ordering::Relaxed) % list.len()].clone()
                        };
                        match call(&http, v) {
                            Call::Answered(200, text) => {
                                if json_tensors(&text) == expected(v) {
                                    tally.answered.fetch_add(1, Ordering::Relaxed);
                                } else {
                                    tally.other.lock().unwrap().push(format!("{v}: wrong answer {text}"));
                                }
                                break;
                            }
                            Call::Answered(503, _) => {
                                tally.unavailable_retried.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            Call::Refused => {
                                tally.refused_retried.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            Call::Answered(504, _) => {
                                tally.timeouts.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Call::Answered(status, text) => {
                                tally
                                    .other
                                    .lock()
                                    .unwrap()
                                    .push(format!("{v} on {http}: {status} {text}"));
                                break;
                            }
                            Call::Broken(e) => {
                                tally.other.lock().unwrap().push(format!("{v} on {http}: {e}"));
                                break;
                            }
                        }
                    }
                }
            });
        }
        // 15 s: a second replica joins; it takes half the partitions of the outputs topic.
        std::thread::sleep(Duration::from_secs(15).saturating_sub(started.elapsed()));
        let b = env.start_gateway("gateway-b", &[]);
        env.wait_pipeline_ready(&b.http, PIPELINE);
        endpoints.write().unwrap().push(b.http.clone());
        b_http = b.http.clone();
        eprintln!("{:?}: gateway B ready", started.elapsed());
        // 35 s: the first stops gracefully. The endpoint goes out of the list first, as a
        // Service drops a terminating pod; callers that already picked it get a refused
        // connection once it stops listening, and retry.
        std::thread::sleep(Duration::from_secs(35).saturating_sub(started.elapsed()));
        endpoints.write().unwrap().retain(|e| *e != a.http);
        let status = env.procs[a_index].terminate();
        eprintln!("{:?}: gateway A stopped: {status:?}", started.elapsed());
        std::thread::sleep(Duration::from_secs(60).saturating_sub(started.elapsed()));
        stop.store(true, Ordering::Relaxed);
    });
    let other = tally.other.lock().unwrap().clone();
    let answered = tally.answered.load(Ordering::Relaxed);
    let timeouts = tally.timeouts.load(Ordering::Relaxed);
    eprintln!(
        "1 -> 2 -> 1 gateways, {CALLERS} callers, {:?}: {answered} answered 200, {timeouts} timed out (504), {} other, {} refused connections and {} 503s retried",
        started.elapsed(),
        other.len(),
        tally.refused_retried.load(Ordering::Relaxed),
        tally.unavailable_retried.load(Ordering::Relaxed),
    );
    let a_log = env.procs[a_index].log();
    assert!(
        a_log.contains("answering the requests it holds"),
        "gateway A did not stop gracefully:\n{a_log}"
    );
    assert!(
        other.is_empty() && timeouts == 0,
        "requests lost: {timeouts} timeouts, {other:?}\n{}",
        env.logs()
    );
    assert!(answered > 100, "too few requests answered ({answered})\n{}", env.logs());
    // The remaining replica answers alone now.
    match call(&b_http, 7) {
        Call::Answered(200, text) => assert_eq!(json_tensors(&text), expected(7)),
        other => panic!("gateway B after A left: {other:?}\n{}", env.logs()),
    }
}

#[test]
fn a_sigkilled_gateway_loses_only_its_own_in_flight_requests() {
    const CALLERS_EACH: usize = 4;
    let mut env = Env::start();
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 4);
    env.start_worker("worker");
    let a = env.start_gateway("gateway-a", &[]);
    let a_index = env.procs.len() - 1;
    let b = env.start_gateway("gateway-b", &[]);
    env.wait_pipeline_ready(&a.http, PIPELINE);
    env.wait_pipeline_ready(&b.http, PIPELINE);

    let stop = AtomicBool::new(false);
    // Per replica: answered, and what else happened.
    let answered = [AtomicUsize::new(0), AtomicUsize::new(0)];
    let failed: [Mutex<Vec<String>>; 2] = [Mutex::new(Vec::new()), Mutex::new(Vec::new())];
    let started = Instant::now();
    std::thread::scope(|s| {
        for c in 0..2 * CALLERS_EACH {
            let replica = c % 2;
            let http = if replica == 0 { a.http.clone() } else { b.http.clone() };
            let (stop, answered, failed) = (&stop, &answered, &failed);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = (c * 100_000 + i) as i32;
                    i += 1;
                    match call(&http, v) {
                        Call::Answered(200, text) if json_tensors(&text) == expected(v) => {
                            answered[replica].fetch_add(1, Ordering::Relaxed);
                        }
                        // After the kill, A's callers find nobody listening (nothing was
                        // sent): they stop.
                        Call::Refused if replica == 0 => break,
                        other => {
                            failed[replica].lock().unwrap().push(format!("{v}: {other:?}"));
                            // A broken call on A is its SIGKILL: that caller's replica is
                            // gone.
                            if replica == 0 {
                                break;
                            }
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(5));
        env.procs[a_index].kill();
        eprintln!("{:?}: gateway A SIGKILLed", started.elapsed());
        // B goes on through A's session timeout and the rebalance that gives it A's partitions.
        std::thread::sleep(Duration::from_secs(20));
        stop.store(true, Ordering::Relaxed);
    });
    let (a_ok, b_ok) = (answered[0].load(Ordering::Relaxed), answered[1].load(Ordering::Relaxed));
    let (a_failed, b_failed) = (failed[0].lock().unwrap().clone(), failed[1].lock().unwrap().clone());
    eprintln!(
        "SIGKILL of 1 of 2 gateways: A answered {a_ok} then lost {} in flight; B answered {b_ok}, failed {}",
        a_failed.len(),
        b_failed.len()
    );
    assert!(
        b_failed.is_empty(),
        "gateway B failed requests: {b_failed:?}\n{}",
        env.logs()
    );
    assert!(b_ok > 20, "gateway B answered only {b_ok}\n{}", env.logs());
    assert!(
        a_failed.len() <= CALLERS_EACH,
        "more of A's requests failed than were in flight on it: {a_failed:?}"
    );
}
