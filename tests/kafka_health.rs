//! Status that follows data-plane health (issue 19, §10), on a real broker: `flowc status` and
//! the gateway's readiness name what is wrong (a sub-topology with no live member, a runner
//! paused on an unreachable model), readiness answers 424 with that cause, the gateway's
//! `flowc_pipeline_ready` gauge follows; and with the broker gone the gateway refuses calls at
//! once with 503 naming the broker.

mod support;

use std::time::{Duration, Instant};

use flowc_runtime::devbroker::DevBroker;
use support::{free_port, http_get, http_post, int32, request, Env, Proc, TestBroker};

const PIPELINE: &str = "tfsimples";

fn body() -> String {
    let r = request(vec![
        int32("INPUT0", vec![1, 16], (1..=16).collect()),
        int32("INPUT1", vec![1, 16], (1..=16).collect()),
    ]);
    flowc_oip::json::request_to_json(&r)
        .expect("a JSON request")
        .to_string()
}

/// Waits until `GET url` answers `status` with a body containing `text`; returns the body.
fn wait_for(env: &Env, url: &str, status: u16, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let got = http_get(url, &[]);
        if let Ok((s, _, b)) = &got {
            if *s == status && b.contains(text) {
                return b.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} never answered {status} with `{text}`: {got:?}\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One series' value in Prometheus text, if it is there yet.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .and_then(|v| v.trim().parse().ok())
}

fn status_text(env: &Env) -> String {
    let out = env.flowc(&["status"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_and_readiness_name_what_is_wrong() {
    let mut env = Env::start();
    let model_port = free_port();
    let listen = format!("127.0.0.1:{model_port}");
    let file = support::root().join("samples/chain.yaml").display().to_string();
    let model_server = |env: &Env, name: &str| {
        let p = Proc::spawn(name, env.dir.path(), &["model-server", "--listen", &listen, &file]);
        p.wait_for_log("serving", 1, Duration::from_secs(20));
        p
    };
    let mut server = model_server(&env, "model-server");
    env.model_url = Some(format!("http://{listen}"));
    env.apply(&["samples/chain.yaml"], 2);
    let worker = env.start_worker("worker");
    let gw = env.start_gateway("gateway", &[]);
    let ready = format!("{}/v2/pipelines/{PIPELINE}/ready", gw.http);
    wait_for(&env, &ready, 200, "true");
    let gauge = format!("flowc_pipeline_ready{{pipeline=\"{PIPELINE}\"}}");
    let metrics = || {
        http_get(&format!("{}/metrics", gw.http), &[])
            .map(|(_, _, b)| b)
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&metrics(), &gauge) != Some(1.0) {
        assert!(Instant::now() < deadline, "gauge never 1:\n{}", metrics());
        std::thread::sleep(Duration::from_millis(250));
    }

    // The model server goes away while requests flow: the model call pauses and says so.
    server.kill();
    let (status, _, _) = http_post(&format!("{}/v2/pipelines/{PIPELINE}/infer", gw.http), &[], &body()).expect("http");
    eprintln!("with the model server down, a request got {status}");
    let why = wait_for(&env, &ready, 424, "");
    eprintln!("readiness with the model server down: {why}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = status_text(&env);
        if text.contains("paused, retrying") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "status never said paused:\n{text}\n{}",
            env.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!("status with the model server down:\n{text}");
    assert!(text.contains("running, with problems"), "{text}");
    assert!(text.contains("sub-topology _model-tfsimple1 on "), "{text}");
    server = model_server(&env, "model-server-2");
    wait_for(&env, &ready, 200, "true");

    // The worker dies: after its session timeout no member is left.
    env.procs[worker].kill();
    let why = wait_for(&env, &ready, 424, "has no live member");
    eprintln!("readiness with no worker: {why}");
    let text = status_text(&env);
    eprintln!("status with no worker:\n{text}");
    assert!(text.contains("! sub-topology tfsimple1 has no live member"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&metrics(), &gauge) != Some(0.0) {
        assert!(Instant::now() < deadline, "gauge never 0:\n{}", metrics());
        std::thread::sleep(Duration::from_millis(250));
    }
    // And back.
    env.start_worker("worker-2");
    wait_for(&env, &ready, 200, "true");
    let text = status_text(&env);
    assert!(!text.contains(" ! "), "{text}");
    drop(server);
}

#[test]
fn with_the_broker_gone_the_gateway_refuses_at_once_naming_it() {
    let broker = DevBroker::start(support::broker_kind()).expect("a broker of its own");
    let mut env = Env::on(TestBroker::Own(broker));
    env.start_model_server(&["samples/chain.yaml"]);
    env.apply(&["samples/chain.yaml"], 2);
    env.start_worker("worker");
    let gw = env.start_gateway("gateway", &[]);
    env.wait_pipeline_ready(&gw.http, PIPELINE);
    let url = format!("{}/v2/pipelines/{PIPELINE}/infer", gw.http);
    let (status, _, text) = http_post(&url, &[], &body()).expect("http");
    assert_eq!(status, 200, "{text}");
    let bootstrap = env.bootstrap();
    match &mut env.broker {
        TestBroker::Own(b) => {
            for id in 0..4 {
                b.kill_node(id);
            }
        }
        TestBroker::Shared(_) => unreachable!(),
    }
    let killed = Instant::now();
    // The first calls may still be written to a socket that has not noticed; from the moment
    // the client sees every broker down, calls are refused at once.
    let mut first_refusal = None;
    let mut answers = Vec::new();
    while killed.elapsed() < Duration::from_secs(40) {
        let started = Instant::now();
        let (status, _, text) = http_post(&url, &[], &body()).expect("http");
        answers.push((status, started.elapsed()));
        if status == 503 && text.contains(&format!("no Kafka broker answers at {bootstrap}")) {
            first_refusal.get_or_insert((killed.elapsed(), text));
            if answers.iter().filter(|(s, _)| *s == 503).count() >= 5 {
                break;
            }
        }
    }
    let (after, text) = first_refusal.unwrap_or_else(|| panic!("never refused: {answers:?}\n{}", env.logs()));
    let refused: Vec<Duration> = answers.iter().filter(|(s, _)| *s == 503).map(|(_, d)| *d).collect();
    eprintln!("broker killed; first 503 after {after:?}: {text}; the 503s took {refused:?}; all answers {answers:?}");
    let ready = http_get(&format!("{}/v2/health/ready", gw.http), &[]).expect("http");
    assert_eq!(ready.0, 503, "{ready:?}");
    assert!(ready.2.contains("no Kafka broker answers"), "{ready:?}");
}
