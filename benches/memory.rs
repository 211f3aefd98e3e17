//! Memory of a worker and a gateway under load: the `flowc` binary run as separate processes
//! (model server, worker, gateway) on a local broker (`FLOWC_BENCH_BROKER`: Apache Kafka by
//! default, or tansu), the 1-step pipeline of benches/one-step.yaml; their resident memory
//! idle (ready, no traffic: the baseline) and at peak (VmHWM) after `FLOWC_BENCH_REQUESTS`
//! synchronous requests from `FLOWC_BENCH_CLIENTS` concurrent HTTP clients. Linux only (/proc).
//!
//!   cargo bench --bench memory   (FLOWC_BENCH_REQUESTS=20000, FLOWC_BENCH_CLIENTS=64)

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flowc_oip::json::request_to_json;

mod common;

use common::{agent, env_usize};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn flowc(args: &[&str], log: &std::path::Path) -> Proc {
    let file = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(env!("CARGO_BIN_EXE_flowc"))
            .args(args)
            .env("FLOWC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("start flowc"),
    )
}

/// `VmRSS` or `VmHWM` of a process, in MiB.
fn memory(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc (Linux only)");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn main() {
    let requests = env_usize("FLOWC_BENCH_REQUESTS", 20_000);
    let clients = env_usize("FLOWC_BENCH_CLIENTS", 64).max(1);
    common::announce();
    let broker = common::start_broker();
    let b = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let plan = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/one-step.yaml");
    let plan = plan.to_str().unwrap();
    let (model, http, grpc) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let _models = flowc(
        &["model-server", plan, "--listen", &model],
        &dir.path().join("model.log"),
    );
    let applied = Command::new(env!("CARGO_BIN_EXE_flowc"))
        .args(["apply", plan, "-b", &b, "--partitions", "2"])
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));
    let model_url = format!("http://{model}");
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let worker = flowc(
        &["worker", "-b", &b, "--state-dir", state, "--model-server", &model_url],
        &dir.path().join("worker.log"),
    );
    let gateway = flowc(
        &[
            "gateway",
            "-b",
            &b,
            "--http-listen",
            &http,
            "--grpc-listen",
            &grpc,
            "--model-server",
            &model_url,
        ],
        &dir.path().join("gateway.log"),
    );
    let infer = format!("http://{http}/v2/pipelines/bench/infer");
    let body = request_to_json(&common::request()).unwrap().to_string();
    let a = agent();
    common::wait_ready(&a, &format!("http://{http}"));
    // A few requests so every consumer is running, then the idle baseline.
    for _ in 0..20 {
        let r = a
            .post(&infer)
            .header("content-type", "application/json")
            .send(&body)
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    std::thread::sleep(Duration::from_secs(2));
    let (w, g) = (worker.0.id(), gateway.0.id());
    let (w_idle, g_idle) = (memory(w, "VmRSS"), memory(g, "VmRSS"));

    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                let a = agent();
                while next.fetch_add(1, Ordering::Relaxed) < requests {
                    let mut r = a
                        .post(&infer)
                        .header("content-type", "application/json")
                        .send(&body)
                        .unwrap();
                    let status = r.status();
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    assert_eq!(status, 200, "{text}");
                }
            });
        }
    });
    let rate = requests as f64 / started.elapsed().as_secs_f64();
    let (w_peak, g_peak) = (memory(w, "VmHWM"), memory(g, "VmHWM"));
    println!("load: {requests} requests from {clients} concurrent HTTP clients at {rate:.0} requests/s");
    println!(
        "worker   idle RSS {w_idle:6.1} MiB  peak RSS {w_peak:6.1} MiB  ratio {:.2}",
        w_peak / w_idle
    );
    println!(
        "gateway  idle RSS {g_idle:6.1} MiB  peak RSS {g_peak:6.1} MiB  ratio {:.2}",
        g_peak / g_idle
    );
}
