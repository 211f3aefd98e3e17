//! flowc side by side with Kafka Streams (issue 17): the topologies flowc compiles for
//! `samples/chain.yaml` and `samples/join.yaml`, run by a `flowc worker` process and by the
//! Kafka Streams application of `benches/kstreams/` (built once by `benches/kstreams/run.sh`)
//! in turn, A B A B, on one Apache Kafka broker:
//!
//! * **relay**: chain's step `tfsimple2` (`model.tfsimple1.outputs` → select, rename,
//!   response → request → `model.tfsimple2.inputs`);
//! * **join**: join's step `tfsimple3` (`tfsimple1.outputs.OUTPUT0` ⋈ `tfsimple2.outputs.OUTPUT1`,
//!   inner, 60 s window, RocksDB store with a changelog → `model.tfsimple3.inputs`);
//! * **chain**: chain's steps and output (`tfsimple1`, `tfsimple2`, `_output`), three hops.
//!
//! The bench feeds the model topics itself (no model calls, no model-call sub-topologies), so
//! both engines do the same broker work on the same protobuf bytes. Before timing, the first
//! round checks that both engines wrote the same records for the same 1,000 inputs, by key.
//! Each run measures throughput (records/s and per CPU-second of the engine's process, from
//! `/proc/<pid>/stat`), p50/p99 latency of one hop at low load, peak RSS (`VmHWM`); then the
//! restore of a 100,000-entry join store on a fresh instance with an empty state directory.
//!
//! `FLOWC_KS_RECORDS` (records per input topic for throughput, default 50,000),
//! `FLOWC_KS_LATENCY` (latency samples per hop, 200), `FLOWC_KS_ROUNDS` (3),
//! `FLOWC_KS_CHECK` (1,000), `FLOWC_KS_RESTORE` (100,000; 0 skips it), `FLOWC_KS_TOPOLOGIES`
//! (`relay,join,chain`), `FLOWC_KS_GUARANTEE` (`at_least_once`, the default, or
//! `exactly_once`: flowc's EOS v2 against `exactly_once_v2`; or `flowc`: flowc's exactly once
//! against its own at least once, the same topologies and records in one run, which is what
//! exactly once costs), `FLOWC_KS_FLOWC_X` (extra `-X`
//! properties of the flowc worker), `FLOWC_KS_READER_FETCH_WAIT_MS` (the bench reader's, 100).
//! Results and how the comparison is fair: `benches/kstreams/RESULTS.md`.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use common::{env_usize, settle, summarize, PARTITIONS};
use flowc_compiler::plan::{Plan, Role};
use flowc_compiler::{compile, CompileOptions, SourceMap};
use flowc_runtime::kafka::control::Guarantee;
use flowc_runtime::kafka::{deploy, KafkaConfig};
use flowc_runtime::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_runtime::tensor::{Encoding, InferMessage, Tensor, TensorData};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Engine {
    Flowc,
    KStreams,
}

/// One of the two things a run compares: an engine under a processing guarantee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Side {
    engine: Engine,
    exactly_once: bool,
}

impl Side {
    fn name(self) -> &'static str {
        match (self.engine, self.exactly_once, guarantee_mode()) {
            (Engine::Flowc, true, Mode::FlowcGuarantees) => "flowc-eos",
            (Engine::Flowc, false, Mode::FlowcGuarantees) => "flowc-alo",
            (Engine::Flowc, _, _) => "flowc",
            (Engine::KStreams, _, _) => "kafka-streams",
        }
    }
}

/// What `FLOWC_KS_GUARANTEE` compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// flowc against Kafka Streams, both at least once.
    AtLeastOnce,
    /// flowc's EOS v2 against Kafka Streams' `exactly_once_v2`.
    ExactlyOnce,
    /// flowc exactly once against flowc at least once.
    FlowcGuarantees,
}

fn guarantee_mode() -> Mode {
    match std::env::var("FLOWC_KS_GUARANTEE").as_deref() {
        Err(_) | Ok("") | Ok("at_least_once") => Mode::AtLeastOnce,
        Ok("exactly_once") | Ok("exactly_once_v2") => Mode::ExactlyOnce,
        Ok("flowc") => Mode::FlowcGuarantees,
        Ok(other) => panic!("FLOWC_KS_GUARANTEE: at_least_once, exactly_once or flowc, not {other}"),
    }
}

/// The two sides of every comparison, A then B (tables show A/B).
fn sides() -> [Side; 2] {
    let side = |engine, exactly_once| Side { engine, exactly_once };
    match guarantee_mode() {
        Mode::AtLeastOnce => [side(Engine::Flowc, false), side(Engine::KStreams, false)],
        Mode::ExactlyOnce => [side(Engine::Flowc, true), side(Engine::KStreams, true)],
        Mode::FlowcGuarantees => [side(Engine::Flowc, true), side(Engine::Flowc, false)],
    }
}

/// One topology: where it comes from, which sub-topologies of flowc's plan it keeps, the topics
/// the bench feeds and the topic each one's records come out on (topic suffixes after
/// `<prefix>.default.`).
struct Topology {
    name: &'static str,
    file: &'static str,
    yaml: &'static str,
    pipeline: &'static str,
    keep: fn(&str, &Role) -> bool,
    /// (fed topic, what is fed, topic the result appears on)
    hops: Vec<(&'static str, Fed, &'static str)>,
    /// A join: every fed topic gets every key and one output comes out per key.
    join: bool,
    /// flowc's sub-topologies kept, each a consumer group on its own thread.
    sub_topologies: usize,
}

#[derive(Clone, Copy)]
enum Fed {
    Request,
    Response,
}

fn topologies() -> Vec<Topology> {
    let chain = include_str!("../samples/chain.yaml");
    let join = include_str!("../samples/join.yaml");
    vec![
        Topology {
            name: "relay",
            file: "samples/chain.yaml",
            yaml: chain,
            pipeline: "tfsimples",
            keep: |name, _| name == "tfsimple2",
            hops: vec![("model.tfsimple1.outputs", Fed::Response, "model.tfsimple2.inputs")],
            join: false,
            sub_topologies: 1,
        },
        Topology {
            name: "join",
            file: "samples/join.yaml",
            yaml: join,
            pipeline: "join",
            keep: |name, _| name == "tfsimple3",
            hops: vec![
                ("model.tfsimple1.outputs", Fed::Response, "model.tfsimple3.inputs"),
                ("model.tfsimple2.outputs", Fed::Response, "model.tfsimple3.inputs"),
            ],
            join: true,
            sub_topologies: 1,
        },
        Topology {
            name: "chain",
            file: "samples/chain.yaml",
            yaml: chain,
            pipeline: "tfsimples",
            keep: |_, role| matches!(role, Role::Step { .. } | Role::Output),
            hops: vec![
                ("pipeline.tfsimples.inputs", Fed::Request, "model.tfsimple1.inputs"),
                ("model.tfsimple1.outputs", Fed::Response, "model.tfsimple2.inputs"),
                ("model.tfsimple2.outputs", Fed::Response, "pipeline.tfsimples.outputs"),
            ],
            join: false,
            sub_topologies: 3,
        },
    ]
}

/// The messages fed: a `sum-diff` request (INPUT0, INPUT1) and its response (OUTPUT0, OUTPUT1),
/// INT32 [1,16], typed contents, as the reference model writes them.
fn payload(fed: Fed) -> Vec<u8> {
    let (a, b) = match fed {
        Fed::Request => ("INPUT0", "INPUT1"),
        Fed::Response => ("OUTPUT0", "OUTPUT1"),
    };
    let data: Vec<i32> = (1..=16).collect();
    let message = InferMessage {
        id: "bench".into(),
        parameters: Default::default(),
        tensors: vec![
            Tensor::new(a, vec![1, 16], TensorData::Int32(data.iter().map(|x| x * 2).collect())).unwrap(),
            Tensor::new(b, vec![1, 16], TensorData::Int32(vec![0; 16])).unwrap(),
        ],
        encoding: Encoding::Typed,
    };
    match fed {
        Fed::Request => message.to_request().unwrap().encode_to_vec(),
        Fed::Response => message.to_response().unwrap().encode_to_vec(),
    }
}

/// flowc's plan for the topology: the kept sub-topologies, no model calls (the bench plays the
/// models), at least once.
fn plan(t: &Topology, prefix: &str) -> Plan {
    let mut sources = SourceMap::new();
    sources.add(t.file, t.yaml.to_string());
    let options = CompileOptions {
        prefix: prefix.to_string(),
        ..CompileOptions::default()
    };
    let mut plan = compile(&sources, &options).plan.expect("sample compiles");
    plan.models.clear();
    for p in &mut plan.pipelines {
        p.models.clear();
        p.sub_topologies.retain(|s| (t.keep)(&s.name, &s.role));
        assert_eq!(p.sub_topologies.len(), t.sub_topologies, "{}", t.name);
    }
    plan
}

fn apply(config: &KafkaConfig, t: &Topology, prefix: &str, exactly_once: bool) {
    let options = deploy::ApplyOptions {
        prefix: prefix.into(),
        partitions: PARTITIONS,
        replication: 1,
        dry_run: false,
        gateway_url: "http://127.0.0.1:9010".into(),
        drain: deploy::DEFAULT_DRAIN,
        guarantee: Some(if exactly_once {
            Guarantee::ExactlyOnce
        } else {
            Guarantee::AtLeastOnce
        }),
    };
    deploy::apply(config, &plan(t, prefix), &options).expect("apply");
}

/// A running engine: its process and, for Kafka Streams, the lines it prints.
struct Proc {
    engine: Engine,
    child: Child,
    lines: Option<Receiver<String>>,
    log: PathBuf,
}

impl Proc {
    fn start(side: Side, bootstrap: &str, t: &Topology, prefix: &str, state: &Path) -> Proc {
        let engine = side.engine;
        std::fs::create_dir_all(state).unwrap();
        let log = state.with_extension("log");
        let err = std::fs::File::create(&log).unwrap();
        match engine {
            Engine::Flowc => {
                let child = Command::new(env!("CARGO_BIN_EXE_flowc"))
                    .args(["worker", "-b", bootstrap, "--prefix", prefix, "--state-dir"])
                    .arg(state)
                    .args(flowc_properties())
                    .env("FLOWC_LOG", "info")
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(err)
                    .spawn()
                    .expect("flowc worker starts");
                Proc {
                    engine,
                    child,
                    lines: None,
                    log,
                }
            }
            Engine::KStreams => {
                let mut child = Command::new(kstreams_script())
                    .arg("run")
                    .arg(format!("bootstrap={bootstrap}"))
                    .arg(format!("topology={}", t.name))
                    .arg(format!("prefix={prefix}"))
                    .arg(format!("app={prefix}-kstreams"))
                    .arg(format!("state={}", state.display()))
                    // As many stream threads as flowc has consumer threads: one per sub-topology.
                    .arg(format!("threads={}", t.sub_topologies))
                    .arg(if side.exactly_once {
                        "guarantee=exactly_once_v2"
                    } else {
                        "guarantee=at_least_once"
                    })
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(err)
                    .spawn()
                    .expect("benches/kstreams/run.sh starts");
                let out = child.stdout.take().unwrap();
                let (tx, rx) = channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                Proc {
                    engine,
                    child,
                    lines: Some(rx),
                    log,
                }
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kafka Streams: waits for `running` (after any restore); the restore line if one came.
    fn wait_running(&mut self) -> Option<(u64, f64)> {
        let rx = self.lines.as_ref()?;
        let mut restored = None;
        loop {
            let line = rx.recv_timeout(Duration::from_secs(180)).unwrap_or_else(|_| {
                panic!(
                    "kafka streams never ran: {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                )
            });
            let mut words = line.split_whitespace();
            match words.next() {
                Some("restored") => {
                    let n = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                    let ms = words.next().and_then(|w| w.parse().ok()).unwrap_or(0.0);
                    restored = Some((n, ms));
                }
                Some("running") => return restored,
                _ => {}
            }
        }
    }

    /// Process CPU time (user + system) so far, in seconds.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `after` starts at field 3.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / clock_ticks()
    }

    /// Peak resident set (`VmHWM`) so far, in MiB.
    fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        kib / 1024.0
    }

    /// Stops gracefully (Kafka Streams: end of stdin; flowc: SIGTERM), leaving the group.
    fn stop(mut self) {
        match self.engine {
            Engine::KStreams => drop(self.child.stdin.take()),
            Engine::Flowc => {
                let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// flowc: the restore its log reports for the join store (records, ms summed over tasks).
    fn flowc_restored(&self) -> Option<(u64, f64)> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let mut total = (0, 0.0);
        let mut any = false;
        for line in text
            .lines()
            .filter(|l| l.contains("task started") && l.contains("tfsimple3"))
        {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(|v| v.trim_matches(|c| c == ',' || c == '"').to_string())
            };
            let n: u64 = field("restored=").and_then(|v| v.parse().ok()).unwrap_or(0);
            let ms = field("elapsed=").map(|v| duration_ms(&v)).unwrap_or(0.0);
            total = (total.0 + n, total.1 + ms);
            any = true;
        }
        any.then_some(total)
    }
}

/// A panicking bench leaves no engine behind.
impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Milliseconds of a Rust `Duration` printed with `{:?}` (`1.5s`, `12.3ms`, `40µs`).
fn duration_ms(v: &str) -> f64 {
    let num = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    if let Some(x) = v.strip_suffix("ms") {
        num(x)
    } else if let Some(x) = v.strip_suffix("µs") {
        num(x) / 1e3
    } else if let Some(x) = v.strip_suffix("ns") {
        num(x) / 1e6
    } else if let Some(x) = v.strip_suffix('s') {
        num(x) * 1e3
    } else {
        0.0
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// `FLOWC_KS_FLOWC_X`: extra `-X key=value` properties for the flowc worker (comma-separated),
/// to measure settings; none by default.
fn flowc_properties() -> Vec<String> {
    std::env::var("FLOWC_KS_FLOWC_X")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| ["-X".to_string(), p.trim().to_string()])
        .collect()
}

fn kstreams_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kstreams/run.sh")
}

/// A reader of every partition of the output topics from the beginning, remembering what came.
struct Outputs {
    consumer: BaseConsumer,
    /// (topic suffix, key) → (partition, value, when it was read); values of `check` keys only.
    seen: BTreeMap<(String, String), (i32, Vec<u8>, Instant)>,
    /// Per tag (`check`, `lat`, `tput`, ...): records read and when the last was.
    tags: BTreeMap<String, (usize, Instant)>,
    prefix: String,
}

impl Outputs {
    fn new(bootstrap: &str, prefix: &str, topics: &[&str]) -> Outputs {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("{prefix}-bench-reader"))
            .set("enable.auto.commit", "false")
            // `FLOWC_KS_READER_FETCH_WAIT_MS`: under read_committed the broker may hold a fetch
            // for its whole wait after a transaction commits, which then adds to the latency.
            .set(
                "fetch.wait.max.ms",
                env_usize("FLOWC_KS_READER_FETCH_WAIT_MS", 100).to_string(),
            )
            .set("isolation.level", "read_committed")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for t in topics {
            for p in 0..PARTITIONS {
                tpl.add_partition_offset(&format!("{prefix}.default.{t}"), p, Offset::Beginning)
                    .unwrap();
            }
        }
        consumer.assign(&tpl).unwrap();
        Outputs {
            consumer,
            seen: BTreeMap::new(),
            tags: BTreeMap::new(),
            prefix: format!("{prefix}.default."),
        }
    }

    fn poll(&mut self, wait: Duration) {
        if let Some(Ok(m)) = self.consumer.poll(wait) {
            let now = Instant::now();
            let topic = m.topic().strip_prefix(&self.prefix).unwrap_or(m.topic()).to_string();
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            // `<partition>.<pipeline>.<tag>-<i>`
            let tag = key
                .rsplit_once('-')
                .and_then(|(left, _)| left.rsplit_once('.'))
                .map(|(_, tag)| tag.to_string())
                .unwrap_or_default();
            let value = if tag == "check" {
                m.payload().unwrap_or_default().to_vec()
            } else {
                Vec::new()
            };
            if let std::collections::btree_map::Entry::Vacant(e) = self.seen.entry((topic, key)) {
                e.insert((m.partition(), value, now));
                let t = self.tags.entry(tag).or_insert((0, now));
                *t = (t.0 + 1, now);
            }
        }
    }

    /// Waits until `n` records of `tag` came; returns when the last did.
    fn wait_count(&mut self, tag: &str, n: usize, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let (count, last) = self.tags.get(tag).copied().unwrap_or((0, Instant::now()));
            if count >= n {
                return last;
            }
            assert!(Instant::now() < deadline, "only {count} of {n} records {tag} came");
            self.poll(Duration::from_millis(100));
        }
    }

    fn wait_key(&mut self, topic: &str, key: &str) -> Instant {
        let id = (topic.to_string(), key.to_string());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(v) = self.seen.get(&id) {
                return v.2;
            }
            assert!(Instant::now() < deadline, "{topic}: {key} never came");
            self.poll(Duration::from_millis(100));
        }
    }
}

/// Keys are the gateway's `<partition>.<pipeline>.<id>` (§4.2), so both engines keep the
/// partition from the key.
fn key(t: &Topology, tag: &str, i: usize) -> (String, i32) {
    let p = (i % PARTITIONS as usize) as i32;
    (format!("{p}.{}.{tag}-{i}", t.pipeline), p)
}

fn send(p: &BaseProducer, topic: &str, key: &str, partition: i32, value: &[u8], pipeline: &str) {
    let mut record = BaseRecord::to(topic)
        .key(key)
        .payload(value)
        .partition(partition)
        .headers(OwnedHeaders::new().insert(Header {
            key: "pipeline",
            value: Some(pipeline),
        }));
    while let Err((_, r)) = p.send(record) {
        record = r;
        p.poll(Duration::from_millis(5));
    }
}

/// Feeds `n` keys of `tag` to every fed topic, the topics interleaved per key.
fn feed(p: &BaseProducer, t: &Topology, prefix: &str, tag: &str, range: std::ops::Range<usize>, hops: &[usize]) {
    let payloads: Vec<Vec<u8>> = t.hops.iter().map(|h| payload(h.1)).collect();
    for i in range {
        let (k, part) = key(t, tag, i);
        for &h in hops {
            let topic = format!("{prefix}.default.{}", t.hops[h].0);
            send(p, &topic, &k, part, &payloads[h], t.pipeline);
        }
    }
    settle(p);
}

/// How many records come out for `n` keys fed to every topic.
fn outputs_for(t: &Topology, n: usize) -> usize {
    if t.join {
        n
    } else {
        n * t.hops.len()
    }
}

/// (topic suffix, key) → (partition, value) of the records an engine wrote.
type Records = BTreeMap<(String, String), (i32, Vec<u8>)>;

#[derive(Clone, Debug, Default)]
struct RunResult {
    rate: f64,
    per_cpu: f64,
    p50: f64,
    p99: f64,
    rss: f64,
}

struct Ctx {
    bootstrap: String,
    config: KafkaConfig,
    /// Single records (latency, probes): `linger.ms=0`.
    producer: BaseProducer,
    /// Bursts: `linger.ms=5`, so feeding costs the shared cores less.
    feeder: BaseProducer,
    /// Engine state directories and logs; removed when the bench succeeds.
    dir: PathBuf,
    next: usize,
}

impl Ctx {
    fn prefix(&mut self, what: &str) -> String {
        self.next += 1;
        format!("ks{}-{what}", self.next)
    }
}

/// One run of topology `t` on `engine`: check records, latency, throughput, peak RSS.
fn run(ctx: &mut Ctx, t: &Topology, side: Side, check: usize) -> (RunResult, Records) {
    let prefix = ctx.prefix(&format!("{}-{}", t.name, side.name()));
    apply(&ctx.config, t, &prefix, side.exactly_once);
    let state = ctx.dir.join(&prefix);
    let mut out_topics: Vec<&str> = t.hops.iter().map(|h| h.2).collect();
    out_topics.dedup();
    let mut outputs = Outputs::new(&ctx.bootstrap, &prefix, &out_topics);
    let mut proc = Proc::start(side, &ctx.bootstrap, t, &prefix, &state);
    proc.wait_running();
    let all: Vec<usize> = (0..t.hops.len()).collect();

    // The check records (also the warm-up).
    feed(&ctx.feeder, t, &prefix, "check", 0..check, &all);
    outputs.wait_count("check", outputs_for(t, check), Duration::from_secs(120));
    let checked = outputs
        .seen
        .iter()
        .filter(|((_, k), _)| k.contains("check"))
        .map(|(k, v)| (k.clone(), (v.0, v.1.clone())))
        .collect();

    // Latency at low load: one record at a time, every hop in turn (a join: both sides, timed
    // from the completing one).
    let samples = env_usize("FLOWC_KS_LATENCY", 200);
    let mut ms = Vec::new();
    let payloads: Vec<Vec<u8>> = t.hops.iter().map(|h| payload(h.1)).collect();
    for i in 0..samples {
        let (k, part) = key(t, "lat", i);
        let hops: Vec<Vec<usize>> = if t.join {
            vec![all.clone()]
        } else {
            all.iter().map(|&h| vec![h]).collect()
        };
        for group in hops {
            let mut sent = Instant::now();
            for &h in &group {
                sent = Instant::now();
                send(
                    &ctx.producer,
                    &format!("{prefix}.default.{}", t.hops[h].0),
                    &k,
                    part,
                    &payloads[h],
                    t.pipeline,
                );
            }
            let arrived = outputs.wait_key(t.hops[group[0]].2, &k);
            ms.push(arrived.saturating_duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    settle(&ctx.producer);
    let (p50, p99) = summarize(ms);

    // Throughput: a burst of `n` keys per fed topic while the engine runs.
    let n = env_usize("FLOWC_KS_RECORDS", 50_000);
    let cpu0 = proc.cpu();
    let t0 = Instant::now();
    feed(&ctx.feeder, t, &prefix, "tput", 0..n, &all);
    let fed = t0.elapsed().as_secs_f64();
    let last = outputs.wait_count("tput", outputs_for(t, n), Duration::from_secs(600));
    let cpu = proc.cpu() - cpu0;
    let secs = last.duration_since(t0).as_secs_f64();
    let out = outputs_for(t, n) as f64;
    let result = RunResult {
        rate: out / secs,
        per_cpu: out / cpu.max(1e-3),
        p50,
        p99,
        rss: proc.peak_rss_mib(),
    };
    println!(
        "{:<6} {:<14} {:>9.0} rec/s  {:>9.0} rec/CPU-s  ({:.2} CPU-s)  hop p50 {:>6.2} ms  p99 {:>6.2} ms  peak RSS {:>6.1} MiB  (fed in {:.2} s)",
        t.name,
        side.name(),
        result.rate,
        result.per_cpu,
        cpu,
        result.p50,
        result.p99,
        result.rss,
        fed
    );
    proc.stop();
    (result, checked)
}

/// Both sides' records for the same inputs must be equal, by key: same partition, and the
/// same bytes or (protobuf field order aside) the same decoded message.
fn compare(t: &Topology, a: &Records, b: &Records) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{}: the engines wrote different keys",
        t.name
    );
    let mut bytes_equal = 0;
    for ((topic, key), (pa, va)) in a {
        let (pb, vb) = &b[&(topic.clone(), key.clone())];
        assert_eq!(pa, pb, "{}: {topic} {key}: partitions differ", t.name);
        if va == vb {
            bytes_equal += 1;
            continue;
        }
        let same = if topic.ends_with(".inputs") {
            ModelInferRequest::decode(va.as_slice()).unwrap() == ModelInferRequest::decode(vb.as_slice()).unwrap()
        } else {
            ModelInferResponse::decode(va.as_slice()).unwrap() == ModelInferResponse::decode(vb.as_slice()).unwrap()
        };
        assert!(same, "{}: {topic} {key}: the engines wrote different records", t.name);
    }
    println!(
        "check {}: {} records equal by key on both sides ({} byte for byte, the rest as decoded protobuf)",
        t.name,
        a.len(),
        bytes_equal
    );
}

/// The restore of a join store of `entries` keys on a fresh instance: the first instance
/// stores one side of `entries` keys; once their offsets are committed it stops, and a fresh
/// instance with an empty state directory starts; the time is from its start to the join
/// outputs of the last two keys (one per partition), whose other side is sent at once.
/// Returns (ms to first outputs, the engine's own restore report).
fn restore(ctx: &mut Ctx, t: &Topology, side: Side, entries: usize) -> (f64, Option<(u64, f64)>) {
    let engine = side.engine;
    let prefix = ctx.prefix(&format!("restore-{}", side.name()));
    apply(&ctx.config, t, &prefix, side.exactly_once);
    let left = t.hops[0].0;
    let right = t.hops[1].0;
    let mut outputs = Outputs::new(&ctx.bootstrap, &prefix, &[t.hops[0].2]);
    let mut first = Proc::start(side, &ctx.bootstrap, t, &prefix, &ctx.dir.join(format!("{prefix}-a")));
    first.wait_running();
    feed(&ctx.feeder, t, &prefix, "warm", 0..10, &[0, 1]);
    outputs.wait_count("warm", 10, Duration::from_secs(120));
    feed(&ctx.feeder, t, &prefix, "st", 0..entries, &[0]);
    let group = match engine {
        Engine::Flowc => format!("{prefix}.default.pipeline.{}.tfsimple3", t.pipeline),
        Engine::KStreams => format!("{prefix}-kstreams"),
    };
    wait_committed(&ctx.bootstrap, &group, &format!("{prefix}.default.{left}"));
    first.stop();

    let started = Instant::now();
    let mut fresh = Proc::start(side, &ctx.bootstrap, t, &prefix, &ctx.dir.join(format!("{prefix}-b")));
    let payload = payload(Fed::Response);
    let probes: Vec<(String, i32)> = (entries - 2..entries).map(|i| key(t, "st", i)).collect();
    for (k, part) in &probes {
        send(
            &ctx.producer,
            &format!("{prefix}.default.{right}"),
            k,
            *part,
            &payload,
            t.pipeline,
        );
    }
    settle(&ctx.producer);
    let mut done = started;
    for (k, _) in &probes {
        done = done.max(outputs.wait_key(t.hops[0].2, k));
    }
    let ms = done.duration_since(started).as_secs_f64() * 1e3;
    let reported = match engine {
        Engine::KStreams => fresh.wait_running(),
        Engine::Flowc => fresh.flowc_restored(),
    };
    println!(
        "restore {:<14} {entries} entries: first outputs {ms:.0} ms after start; engine reports {}",
        side.name(),
        reported
            .map(|(n, ms)| format!("{n} records restored in {ms:.0} ms"))
            .unwrap_or_else(|| "nothing".into())
    );
    fresh.stop();
    (ms, reported)
}

/// Waits until `group` has committed the end of every partition of `topic`.
fn wait_committed(bootstrap: &str, group: &str, topic: &str) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut tpl = TopicPartitionList::new();
        let mut ends = Vec::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(topic, p);
            ends.push(c.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap().1);
        }
        let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
        let done = (0..PARTITIONS).all(|p| {
            matches!(committed.find_partition(topic, p).map(|e| e.offset()),
                Some(Offset::Offset(o)) if o >= ends[p as usize])
        });
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{group} never committed the end of {topic}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The median (the mean of the middle two for an even count).
fn mid(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn row(metric: &str, better: &str, f: f64, k: f64, digits: usize) {
    println!(
        "| {metric} | {f:.digits$} | {k:.digits$} | {:.2} | {better} |",
        f / k,
        digits = digits
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter.
    let only: Vec<String> = std::env::var("FLOWC_KS_TOPOLOGIES")
        .unwrap_or_else(|_| "relay,join,chain".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let rounds = env_usize("FLOWC_KS_ROUNDS", 3).max(1);
    let check = env_usize("FLOWC_KS_CHECK", 1000);
    let entries = env_usize("FLOWC_KS_RESTORE", 100_000);

    let [a_side, b_side] = sides();
    let (a_name, b_name) = (a_side.name(), b_side.name());
    if b_side.engine == Engine::KStreams {
        eprintln!("kstreams: building the Kafka Streams application (benches/kstreams/run.sh build)");
        let built = Command::new(kstreams_script())
            .arg("build")
            .stdout(Stdio::null())
            .status()
            .expect("run.sh runs");
        assert!(built.success(), "benches/kstreams/run.sh build failed");
    }

    assert_eq!(
        common::broker_kind(),
        flowc_runtime::devbroker::BrokerKind::Kafka,
        "this bench runs on Apache Kafka (FLOWC_BENCH_BROKER=kafka)"
    );
    let broker = common::start_broker();
    let bootstrap = broker.bootstrap();
    let config = KafkaConfig::new(&bootstrap)
        .detect_broker()
        .expect("the broker answers");
    println!("broker: kafka (Apache Kafka 4.3.2, single node, {PARTITIONS} partitions per topic)");
    println!(
        "guarantee: {}",
        match guarantee_mode() {
            Mode::AtLeastOnce => "at least once on both",
            Mode::ExactlyOnce =>
                "exactly once on both (flowc EOS v2 transactions per batch, Kafka Streams exactly_once_v2)",
            Mode::FlowcGuarantees =>
                "flowc exactly once (flowc-eos: EOS v2, transactions of <= 100 ms) against flowc at least once (flowc-alo), A B A B",
        }
    );
    println!(
        "settings: both engines commit every <= 100 ms, fetch.wait.max.ms=100, max 500 records a poll, producer acks=all linger.ms=0 idempotent; flowc one thread per consumer group, Kafka Streams as many stream threads; Kafka Streams -Xmx512m"
    );
    let mut ctx = Ctx {
        producer: common::producer(&bootstrap, 0),
        feeder: common::producer(&bootstrap, 5),
        bootstrap,
        config,
        dir: std::env::temp_dir().join(format!("flowc-kstreams-{}", std::process::id())),
        next: 0,
    };

    let mut tables = Vec::new();
    for t in topologies().iter().filter(|t| only.iter().any(|o| o == t.name)) {
        let mut results: BTreeMap<Side, Vec<RunResult>> = BTreeMap::new();
        let mut checked: BTreeMap<Side, _> = BTreeMap::new();
        for round in 0..rounds {
            for side in [a_side, b_side] {
                let n = if round == 0 { check } else { check.min(200) };
                let (r, out) = run(&mut ctx, t, side, n.max(1));
                if round == 0 {
                    checked.insert(side, out);
                }
                results.entry(side).or_default().push(r);
            }
        }
        compare(t, &checked[&a_side], &checked[&b_side]);
        tables.push((t.name, results));
    }

    let mut restores: BTreeMap<Side, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    if entries >= 2 && only.iter().any(|o| o == "join") {
        let t = topologies().into_iter().find(|t| t.name == "join").unwrap();
        for side in [a_side, b_side] {
            let (ms, reported) = restore(&mut ctx, &t, side, entries);
            let e = restores.entry(side).or_default();
            e.0.push(ms);
            if let Some((_, r)) = reported {
                e.1.push(r);
            }
        }
    }

    println!();
    let mut join_ratio = None;
    for (name, results) in &tables {
        let f = &results[&a_side];
        let k = &results[&b_side];
        let get = |v: &[RunResult], m: fn(&RunResult) -> f64| mid(&v.iter().map(m).collect::<Vec<_>>());
        println!(
            "### {name} (median of {} runs each, alternating {a_name}, {b_name})",
            f.len()
        );
        println!();
        println!("| metric | {a_name} | {b_name} | {a_name}/{b_name} | better |");
        println!("|---|---:|---:|---:|---|");
        let (fr, kr) = (get(f, |r| r.rate), get(k, |r| r.rate));
        row("throughput (records/s)", "higher", fr, kr, 0);
        row(
            "records per CPU-second",
            "higher",
            get(f, |r| r.per_cpu),
            get(k, |r| r.per_cpu),
            0,
        );
        row("hop latency p50 (ms)", "lower", get(f, |r| r.p50), get(k, |r| r.p50), 2);
        row("hop latency p99 (ms)", "lower", get(f, |r| r.p99), get(k, |r| r.p99), 2);
        row("peak RSS (MiB)", "lower", get(f, |r| r.rss), get(k, |r| r.rss), 1);
        if *name == "join" {
            if let (Some(fs), Some(ks)) = (restores.get(&a_side), restores.get(&b_side)) {
                row(
                    &format!("restore {entries}-entry store: start to first output (ms)"),
                    "lower",
                    mid(&fs.0),
                    mid(&ks.0),
                    0,
                );
                if !fs.1.is_empty() && !ks.1.is_empty() {
                    row(
                        "restore as the engine reports it (ms)",
                        "lower",
                        mid(&fs.1),
                        mid(&ks.1),
                        0,
                    );
                }
            }
            join_ratio = Some((fr / kr, get(f, |r| r.per_cpu) / get(k, |r| r.per_cpu)));
        }
        println!();
    }
    if let Some((rate, per_cpu)) = join_ratio {
        println!("join {a_name}/{b_name} throughput per CPU-second ratio: {per_cpu:.2}");
        println!("join {a_name}/{b_name} throughput ratio: {rate:.2}");
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&ctx.dir);
}
