//! `flowc up`: one command from the files to a pipeline answering over HTTP, with its own local
//! broker (`--broker kafka` or `tansu`, as `FLOWC_TEST_BROKER` says), reference model server,
//! worker and gateway; SIGTERM stops it all cleanly.
//!
//! Needs the broker: `scripts/install-kafka.sh` / `scripts/install-broker.sh` (run by
//! `scripts/test.sh`).

mod support;

use std::time::{Duration, Instant};

use support::{free_port, http_post, json_tensors, Proc};

/// A running `flowc up` of `sample` on free ports, once it says it is ready.
struct Up {
    up: Proc,
    broker: u16,
    http_listen: String,
    kind: String,
}

fn start_up(dir: &std::path::Path, sample: &str) -> Up {
    let broker = free_port();
    let (broker_port, http_listen, grpc_listen, model_listen) = (
        broker.to_string(),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let sample = support::root().join(sample).display().to_string();
    let kind = support::broker_kind().to_string();
    let up = Proc::spawn(
        "up",
        dir,
        &[
            "up",
            &sample,
            "--broker",
            &kind,
            "--broker-port",
            &broker_port,
            "--http-listen",
            &http_listen,
            "--grpc-listen",
            &grpc_listen,
            "--model-listen",
            &model_listen,
        ],
    );
    up.wait_for_log("flowc up: ready", 1, Duration::from_secs(120));
    Up {
        up,
        broker,
        http_listen,
        kind,
    }
}

#[test]
fn up_runs_a_sample_end_to_end_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Up {
        mut up,
        broker,
        http_listen,
        kind,
    } = start_up(dir.path(), "samples/join.yaml");
    let log = up.log();
    for part in &[
        format!("flowc up: broker ({kind}) on 127.0.0.1:"),
        "flowc up: reference model server on http://".to_string(),
        "flowc up: worker running".to_string(),
        "flowc up: pipeline gateway on http://".to_string(),
        "curl -s http://".to_string(),
        "flowc inspect join -b 127.0.0.1:".to_string(),
    ] {
        assert!(log.contains(part.as_str()), "no `{part}` in:\n{log}");
    }
    let request = std::fs::read_to_string(support::root().join("samples/requests/join.json")).expect("request");
    let (status, _, body) =
        http_post(&format!("http://{http_listen}/v2/pipelines/join/infer"), &[], &request).expect("http");
    assert_eq!(status, 200, "{body}\n{}", up.log());
    let doubled: Vec<i32> = (1..=16).map(|v| 2 * v).collect();
    assert_eq!(
        json_tensors(&body),
        format!("OUTPUT0 INT32 [1, 16] = {doubled:?}\nOUTPUT1 INT32 [1, 16] = {doubled:?}")
    );

    let started = Instant::now();
    let status = up.terminate().expect("an exit status");
    assert!(status.success(), "{status:?}\n{}", up.log());
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(up.log().contains("flowc up: stopped"), "{}", up.log());
    // The broker went with it.
    assert!(std::net::TcpStream::connect(("127.0.0.1", broker)).is_err());
}

#[test]
fn a_part_that_cannot_start_is_named() {
    // The broker's port is taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port().to_string();
    let out = std::process::Command::new(support::flowc())
        .args(["up", "samples/join.yaml", "--broker-port", &port])
        .current_dir(support::root())
        .output()
        .expect("run flowc");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("the local broker (tansu) did not start on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn dev_broker_runs_a_broker_until_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let kind = support::broker_kind().to_string();
    let port_arg = port.to_string();
    let mut broker = Proc::spawn(
        "dev-broker",
        dir.path(),
        &["dev-broker", "--kind", &kind, "--port", &port_arg],
    );
    // It prints its bootstrap address alone on a line of stdout (the log here holds stdout and
    // stderr) once the broker answers a metadata request.
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !broker.log().lines().any(|l| l == bootstrap) {
        assert!(broker.try_wait().is_none(), "dev-broker exited:\n{}", broker.log());
        assert!(
            Instant::now() < deadline,
            "dev-broker never said it was ready:\n{}",
            broker.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = broker.log();
    assert!(
        log.contains(&format!("flowc dev-broker: {kind} on 127.0.0.1:{port}")),
        "{log}"
    );
    // A real broker: flowc lists its (empty) deployments there.
    let list = std::process::Command::new(support::flowc())
        .args(["list", "-b", &bootstrap])
        .output()
        .expect("run flowc list");
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));

    let status = broker.terminate().expect("an exit status");
    assert!(status.success(), "{status:?}\n{}", broker.log());
    assert!(broker.log().contains("flowc dev-broker: stopped"), "{}", broker.log());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the broker outlived dev-broker"
    );
}

/// The local broker dying is said at once, naming it, and `flowc up` stops (exit status
/// not 0) instead of running on without it; meanwhile the gateway refuses calls with 503
/// naming the broker, not after the producer's 30 s timeout.
#[test]
fn up_says_its_broker_died_and_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Up {
        mut up, broker, kind, ..
    } = start_up(dir.path(), "samples/chain.yaml");
    // The broker is up's child process that listens on the broker port.
    let pid = up.pid().expect("running");
    let children = std::process::Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .expect("pgrep");
    let children: Vec<String> = String::from_utf8_lossy(&children.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(!children.is_empty(), "flowc up has no child process\n{}", up.log());
    for child in &children {
        let _ = std::process::Command::new("kill").args(["-KILL", child]).status();
    }
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = up.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "flowc up runs on without its broker:\n{}",
            up.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = up.log();
    eprintln!(
        "flowc up stopped {:?} after its broker was killed: {status:?}",
        killed.elapsed()
    );
    assert!(!status.success(), "{log}");
    assert!(
        log.contains(&format!("the local broker ({kind}) on 127.0.0.1:{broker} died")),
        "{log}"
    );
}
