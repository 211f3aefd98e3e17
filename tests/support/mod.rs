//! Shared harness of the end-to-end tests: a real Kafka-protocol broker (Apache Kafka by
//! default, tansu with `FLOWC_TEST_BROKER=tansu`; one per test binary, shared by its tests,
//! each of which names its topics and groups with a prefix of its own), `flowc` processes
//! (workers, the reference model server) started as a user would, and a producer/collector
//! that speaks to the broker with rdkafka.
#![allow(dead_code)]

pub mod join;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flowc_runtime::devbroker::{BrokerKind, DevBroker};
use flowc_runtime::proto::inference::{ModelInferRequest, ModelInferResponse};
use flowc_runtime::tensor::{Encoding, InferMessage, Tensor, TensorData};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The flowc binary the tests run: this build's, or `FLOWC_TEST_BIN` (a copy kept apart, so
/// a long test loop goes on while the tree is rebuilt).
pub fn flowc() -> PathBuf {
    std::env::var_os("FLOWC_TEST_BIN").map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flowc")), PathBuf::from)
}

/// `N` distinct free ports: all are bound before any is let go.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| listeners[i].local_addr().expect("a bound port").port())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A child process that is killed when dropped; its output goes to a log file.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, args: &[&str]) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(flowc())
            .args(args)
            // FLOWC_TEST_LOG: the processes' log filter, for a test being debugged.
            .env(
                "FLOWC_LOG",
                std::env::var("FLOWC_TEST_LOG").unwrap_or_else(|_| "info,librdkafka=warn,rdkafka=warn".into()),
            )
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start flowc");
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// Any program (MLServer, say) as a child process killed on drop, its stdout and stderr
    /// going to `<dir>/<name>.log`. `command` comes with its program, arguments, environment and
    /// working directory set.
    pub fn spawn_command(name: &str, dir: &Path, mut command: Command) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({:?}): {e}", command.get_program()));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
        }
    }

    /// The exit status once the process has ended (`None` while it runs, or once killed).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no goodbye, no commit, no leaving the group.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// Waits until the log contains `text` (or panics with the log).
    pub fn wait_for_log(&self, text: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().matches(text).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} did not log `{text}` {count} times within {timeout:?}:\n{}",
            self.name,
            self.log()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The broker kind the tests run on: `FLOWC_TEST_BROKER` (`kafka`, the default, or `tansu`).
pub fn broker_kind() -> BrokerKind {
    BrokerKind::from_env("FLOWC_TEST_BROKER", BrokerKind::Kafka).unwrap_or_else(|e| panic!("{e}"))
}

/// This test binary's broker, started by the first test that needs it.
pub fn shared_broker() -> &'static DevBroker {
    let kind = broker_kind();
    DevBroker::shared(kind).unwrap_or_else(|e| panic!("cannot start the test broker ({kind}): {e}"))
}

/// A topic prefix of this test's own (from the test's name), so tests that share a broker
/// never see each other's topics, consumer groups or deployment logs.
pub fn test_prefix() -> String {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = std::thread::current().name().unwrap_or("test").to_string();
    let name = name.rsplit("::").next().unwrap_or("test");
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("t{n}-{clean}")
}

/// The broker of a test: this binary's shared one, or one of its own (a cluster, say).
pub enum TestBroker {
    Shared(&'static DevBroker),
    Own(DevBroker),
}

impl std::ops::Deref for TestBroker {
    type Target = DevBroker;
    fn deref(&self) -> &DevBroker {
        match self {
            TestBroker::Shared(b) => b,
            TestBroker::Own(b) => b,
        }
    }
}

/// A broker, a topic prefix, a scratch directory and the flowc processes of one test.
pub struct Env {
    pub broker: TestBroker,
    /// `--prefix` of every flowc command of this test (topics are `<prefix>.<ns>.…`).
    pub prefix: String,
    pub dir: tempfile::TempDir,
    pub procs: Vec<Proc>,
    pub model_url: Option<String>,
    /// Extra client settings passed to every flowc command and client (`-X k=v`), and the
    /// bootstrap servers to use instead of the broker's (a SASL listener, say).
    pub client_properties: Vec<(String, String)>,
    pub bootstrap_override: Option<String>,
}

impl Env {
    /// A test on this binary's shared broker.
    pub fn start() -> Env {
        Self::on(TestBroker::Shared(shared_broker()))
    }

    /// A test on a broker of its own.
    pub fn on(broker: TestBroker) -> Env {
        Env {
            broker,
            prefix: test_prefix(),
            dir: tempfile::tempdir().expect("tempdir"),
            procs: Vec::new(),
            model_url: None,
            client_properties: Vec::new(),
            bootstrap_override: None,
        }
    }

    pub fn bootstrap(&self) -> String {
        self.bootstrap_override
            .clone()
            .unwrap_or_else(|| self.broker.bootstrap())
    }

    /// `<prefix>.<rest>`: a topic of this test (`env.topic("default.pipeline.join.outputs")`).
    pub fn topic(&self, rest: &str) -> String {
        format!("{}.{rest}", self.prefix)
    }

    /// Text with this test's prefix written as `seldon`, the default prefix (for golden files).
    pub fn unprefixed(&self, text: &str) -> String {
        text.replace(&format!("{}.", self.prefix), "seldon.")
    }

    /// `-b <broker> --prefix <prefix>` and the extra client settings, for a flowc command.
    pub fn broker_args(&self) -> Vec<String> {
        let mut args = vec![
            "-b".to_string(),
            self.bootstrap(),
            "--prefix".to_string(),
            self.prefix.clone(),
        ];
        for (k, v) in &self.client_properties {
            args.push("-X".into());
            args.push(format!("{k}={v}"));
        }
        args
    }

    /// A client configuration for this test's broker, with the extra client settings.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.bootstrap());
        for (k, v) in &self.client_properties {
            config.set(k, v);
        }
        config
    }

    /// Runs `flowc <args> -b <broker> --prefix <prefix>` to completion.
    pub fn flowc(&self, args: &[&str]) -> Output {
        let extra = self.broker_args();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(extra.iter().map(String::as_str));
        Command::new(flowc())
            .args(&all)
            .current_dir(root())
            .env("FLOWC_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run flowc")
    }

    /// `flowc apply` that must succeed (in the mode of `FLOWC_TEST_EXECUTION`); returns its
    /// stdout.
    pub fn apply(&self, files: &[&str], partitions: u32) -> String {
        let p = partitions.to_string();
        let mut args = vec!["apply"];
        args.extend(files);
        args.extend(["--partitions", &p]);
        // The suites run in either execution mode (§10); CI runs the e2e ones in both.
        let execution = execution();
        args.extend(["--execution", execution.as_str()]);
        let out = self.flowc(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "flowc apply {files:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// The reference model server for the Models of `files`, on a free port.
    pub fn start_model_server(&mut self, files: &[&str]) {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["model-server", "--listen", &listen];
        let paths: Vec<String> = files.iter().map(|f| root().join(f).display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        let proc = Proc::spawn("model-server", self.dir.path(), &args);
        proc.wait_for_log("serving", 1, Duration::from_secs(20));
        self.model_url = Some(format!("http://{listen}"));
        self.procs.push(proc);
    }

    /// A `flowc worker` with its own state directory; returns its index in `procs`.
    pub fn start_worker(&mut self, name: &str) -> usize {
        let state = self.dir.path().join(format!("{name}-state"));
        self.start_worker_with_state(name, &state)
    }

    pub fn start_worker_with_state(&mut self, name: &str, state: &Path) -> usize {
        self.start_worker_with_state_args(name, state, &[])
    }

    /// [`Env::start_worker_with_state`] with `extra` arguments after the usual ones.
    pub fn start_worker_with_state_args(&mut self, name: &str, state: &Path, extra: &[&str]) -> usize {
        let broker_args = self.broker_args();
        let state = state.display().to_string();
        let mut args = vec!["worker", "--state-dir", &state];
        args.extend(broker_args.iter().map(String::as_str));
        let url = self.model_url.clone();
        if let Some(url) = &url {
            args.extend(["--model-server", url]);
        }
        args.extend(extra);
        self.procs.push(Proc::spawn(name, self.dir.path(), &args));
        self.procs.len() - 1
    }

    /// A `flowc worker` with its own state directory and `extra` arguments after the usual ones
    /// (e.g. `--model-endpoint iris=http://127.0.0.1:PORT`); returns its index in `procs`.
    pub fn start_worker_with_args(&mut self, name: &str, extra: &[&str]) -> usize {
        let state = self.dir.path().join(format!("{name}-state"));
        self.start_worker_with_state_args(name, &state, extra)
    }

    pub fn logs(&self) -> String {
        let mut out = format!("--- broker log (tail)\n{}\n", self.broker.log_tail());
        for p in &self.procs {
            out.push_str(&format!("--- {} log\n{}\n", p.name, p.log()));
        }
        out
    }

    pub fn producer(&self) -> BaseProducer {
        self.client_config().set("acks", "all").create().expect("producer")
    }

    /// Writes a request to `<prefix>.default.pipeline.<p>.inputs` as an async client does.
    pub fn send(&self, producer: &BaseProducer, pipeline: &str, key: &str, request: &ModelInferRequest) {
        let topic = self.topic(&format!("default.pipeline.{pipeline}.inputs"));
        let value = request.encode_to_vec();
        let headers = OwnedHeaders::new().insert(Header {
            key: "pipeline",
            value: Some(pipeline),
        });
        producer
            .send(BaseRecord::to(&topic).key(key).payload(&value).headers(headers))
            .map_err(|(e, _)| e)
            .expect("send");
        producer.flush(Duration::from_secs(10)).expect("flush");
    }

    /// A consumer of every partition of `topic` from the beginning (no group join), once the
    /// topic exists; panics with every process's log if it does not appear by `deadline`.
    pub fn reader(&self, topic: &str, deadline: Instant) -> BaseConsumer {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", "flowc-test-reader")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let partitions = loop {
            let md = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .expect("metadata");
            let n = md.topics().first().map_or(0, |t| t.partitions().len());
            if n > 0 {
                break n as i32;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} never appeared\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).expect("tpl");
        }
        consumer.assign(&tpl).expect("assign");
        consumer
    }

    /// The offsets consumer group `group` committed on `topic` (both after this test's
    /// prefix), summed over its first `partitions` partitions.
    pub fn committed(&self, topic: &str, group: &str, partitions: i32) -> i64 {
        let consumer: BaseConsumer = self
            .client_config()
            .set("group.id", self.topic(group))
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(&self.topic(topic), p);
        }
        consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .map(|c| {
                c.elements()
                    .iter()
                    .filter_map(|e| e.offset().to_raw())
                    .filter(|o| *o > 0)
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The end offsets of `topic` (after this test's prefix), summed over its first
    /// `partitions` partitions.
    pub fn end_offsets(&self, topic: &str, partitions: i32) -> i64 {
        let consumer: BaseConsumer = self.client_config().create().expect("consumer");
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(&self.topic(topic), p, Duration::from_secs(5))
                    .map(|(_, high)| high)
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Reads `topic` from the beginning until it has given `n` records, whatever their keys.
    pub fn collect_n(&self, topic: &str, n: usize, timeout: Duration) -> Vec<(String, Received)> {
        let deadline = Instant::now() + timeout;
        let consumer = self.reader(topic, deadline);
        let mut got = Vec::new();
        while got.len() < n {
            assert!(
                Instant::now() < deadline,
                "{topic}: {} of {n} records within {timeout:?}\n{}",
                got.len(),
                self.logs()
            );
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            got.push(Received::of(&m.expect("consume")));
        }
        got
    }

    /// Reads `topic` from the beginning until `keys` all have a record (or the timeout ends,
    /// which fails the test with every process's log). Returns the first record of each key.
    pub fn collect(&self, topic: &str, keys: &[String], timeout: Duration) -> BTreeMap<String, Received> {
        let deadline = Instant::now() + timeout;
        let consumer = self.reader(topic, deadline);
        let mut got: BTreeMap<String, Received> = BTreeMap::new();
        while keys.iter().any(|k| !got.contains_key(k)) {
            if Instant::now() > deadline {
                let missing: Vec<&String> = keys.iter().filter(|k| !got.contains_key(*k)).collect();
                panic!(
                    "{topic}: no record for {} of {} keys within {timeout:?} (missing {missing:?})\n{}",
                    missing.len(),
                    keys.len(),
                    self.logs()
                );
            }
            let Some(m) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let (key, record) = Received::of(&m.expect("consume"));
            got.entry(key).or_insert(record);
        }
        got
    }
}

/// One record as a test sees it.
#[derive(Clone, Debug)]
pub struct Received {
    pub partition: i32,
    pub headers: Vec<(String, String)>,
    pub value: Bytes,
}

impl Received {
    /// A consumed record: its key and what a test looks at.
    pub fn of(m: &rdkafka::message::BorrowedMessage<'_>) -> (String, Received) {
        let headers = flowc_runtime::kafka::text_headers(m);
        let record = Received {
            partition: m.partition(),
            headers,
            value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        };
        (
            String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            record,
        )
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The response's tensors, one line each: `NAME DATATYPE [shape] = values`.
    pub fn tensors(&self) -> String {
        match ModelInferResponse::decode(self.value.clone())
            .ok()
            .and_then(|r| InferMessage::from_response(&r).ok())
        {
            Some(m) => m.tensors.iter().map(render).collect::<Vec<_>>().join("\n"),
            None => format!("<not a response: {}>", String::from_utf8_lossy(&self.value)),
        }
    }
}

pub fn render(t: &Tensor) -> String {
    let values = match &t.data {
        TensorData::Int32(v) => format!("{v:?}"),
        TensorData::Int64(v) => format!("{v:?}"),
        TensorData::Fp32(v) => format!("{v:?}"),
        TensorData::Fp64(v) => format!("{v:?}"),
        TensorData::Bool(v) => format!("{v:?}"),
        other => format!("{other:?}"),
    };
    format!("{} {} {:?} = {values}", t.name, t.datatype(), t.shape)
}

pub fn request(tensors: Vec<Tensor>) -> ModelInferRequest {
    InferMessage {
        id: String::new(),
        parameters: Default::default(),
        tensors,
        encoding: Encoding::Typed,
    }
    .to_request()
    .expect("encodes")
}

pub fn int32(name: &str, shape: Vec<i64>, v: Vec<i32>) -> Tensor {
    Tensor::new(name, shape, TensorData::Int32(v)).expect("tensor")
}

pub fn fp32(name: &str, shape: Vec<i64>, v: Vec<f32>) -> Tensor {
    Tensor::new(name, shape, TensorData::Fp32(v)).expect("tensor")
}

pub fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A running `flowc gateway`: its HTTP base URL and gRPC endpoint.
pub struct GatewayAddr {
    pub http: String,
    pub grpc: String,
}

impl Env {
    /// A `flowc gateway` on free ports with `extra` arguments; returns once it says it is ready
    /// (its outputs consumer holds its partitions).
    pub fn start_gateway(&mut self, name: &str, extra: &[&str]) -> GatewayAddr {
        let broker_args = self.broker_args();
        let (http, grpc) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let mut args: Vec<&str> = broker_args.iter().map(String::as_str).collect();
        args.splice(0..0, ["gateway"]);
        args.extend(["--http-listen", &http, "--grpc-listen", &grpc]);
        let url = self.model_url.clone();
        if let Some(url) = &url {
            args.extend(["--model-server", url]);
        }
        args.extend(extra);
        self.procs.push(Proc::spawn(name, self.dir.path(), &args));
        let addr = GatewayAddr {
            http: format!("http://{http}"),
            grpc: format!("http://{grpc}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, _, _)) = http_get(&format!("{}/v2/health/ready", addr.http), &[]) {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "gateway {name} never became ready\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the gateway at `http` answers 200 on `/v2/pipelines/<p>/ready`.
    pub fn wait_pipeline_ready(&self, http: &str, pipeline: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let got = http_get(&format!("{http}/v2/pipelines/{pipeline}/ready"), &[]);
            if let Ok((200, _, _)) = got {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pipeline {pipeline} never became ready on {http}: {got:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// An HTTP answer: status, headers and body text.
pub type HttpAnswer = (u16, Vec<(String, String)>, String);

fn http_agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(60)))
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// `GET url`: status, headers and body text.
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpAnswer, String> {
    let mut request = http_agent().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    answer(request.call())
}

/// `POST url` with `body` (JSON): status, headers and body text.
pub fn http_post(url: &str, headers: &[(&str, &str)], body: &str) -> Result<HttpAnswer, String> {
    let mut request = http_agent().post(url).header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    answer(request.send(body))
}

fn answer(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<HttpAnswer, String> {
    let mut r = response.map_err(|e| e.to_string())?;
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((status, headers, body))
}

/// A JSON response's outputs, one line each: `NAME DATATYPE [shape] = values` (as
/// [`Received::tensors`] renders a record).
pub fn json_tensors(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    let response = flowc_oip::json::response_from_json(&v).unwrap_or_else(|e| panic!("{e}: {body}"));
    let message = InferMessage::from_response(&response).expect("decodes");
    message.tensors.iter().map(render).collect::<Vec<_>>().join("\n")
}

/// A response's tensors rendered like [`json_tensors`].
pub fn response_tensors(response: &ModelInferResponse) -> String {
    let message = InferMessage::from_response(response).expect("decodes");
    message.tensors.iter().map(render).collect::<Vec<_>>().join("\n")
}

fn seq(from: i32, step: i32) -> Vec<i32> {
    (0..16).map(|i| from + i * step).collect()
}

/// The samples whose reference models [`worked_examples`] needs served.
pub const WORKED_EXAMPLE_SAMPLES: [&str; 6] = [
    "samples/chain.yaml",
    "samples/join.yaml",
    "samples/conditional.yaml",
    "samples/pipeline-inputs.yaml",
    "samples/triggers.yaml",
    "samples/cycle.yaml",
];

/// The worked examples of PIPELINES.md §9 on the reference models: pipeline, request and the
/// exact answer rendered by [`render`] (the cycle's `stop` tensor line is only its name: its
/// datatype is the counter model's business).
pub fn worked_examples() -> Vec<(&'static str, ModelInferRequest, String)> {
    let sum_diff_in = || {
        request(vec![
            int32("INPUT0", vec![1, 16], seq(1, 1)),
            int32("INPUT1", vec![1, 16], seq(1, 1)),
        ])
    };
    vec![
        (
            "tfsimples",
            sum_diff_in(),
            format!(
                "OUTPUT0 INT32 [1, 16] = {:?}\nOUTPUT1 INT32 [1, 16] = {:?}",
                seq(2, 2),
                seq(2, 2)
            ),
        ),
        (
            "join",
            sum_diff_in(),
            format!(
                "OUTPUT0 INT32 [1, 16] = {:?}\nOUTPUT1 INT32 [1, 16] = {:?}",
                seq(2, 2),
                seq(2, 2)
            ),
        ),
        (
            "conditional-pipeline",
            request(vec![
                int32("CHOICE", vec![1], vec![0]),
                fp32("INPUT0", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
                fp32("INPUT1", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
            ]),
            "OUTPUT FP32 [4] = [10.0, 20.0, 30.0, 40.0]".to_string(),
        ),
        (
            "pipeline-inputs",
            request(vec![
                fp32("INPUT0", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
                fp32("INPUT1", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
            ]),
            "OUTPUT FP32 [4] = [10.0, 20.0, 30.0, 40.0]\nOUTPUT FP32 [4] = [11.0, 12.0, 13.0, 14.0]".to_string(),
        ),
        (
            "triggers",
            request(vec![
                int32("ok1", vec![1], vec![1]),
                fp32("INPUT", vec![4], vec![1.0, 2.0, 3.0, 4.0]),
            ]),
            "OUTPUT FP32 [4] = [10.0, 20.0, 30.0, 40.0]".to_string(),
        ),
        (
            "cycle",
            request(vec![int32("INPUT", vec![1], vec![0])]),
            "output INT32 [1] = [10]\nstop".to_string(),
        ),
    ]
}

/// Checks an answer of [`worked_examples`] (`what` names the request in the failure).
pub fn check_answer(pipeline: &str, what: &str, tensors: &str, expected: &str) {
    if pipeline == "cycle" {
        // The counter's `stop` tensor's datatype is the model's business; its name is not.
        let names: Vec<&str> = tensors.lines().map(|l| l.split(' ').next().unwrap_or("")).collect();
        assert_eq!(names, ["output", "stop"], "{pipeline} {what}: {tensors}");
        assert!(
            tensors.starts_with("output INT32 [1] = [10]"),
            "{pipeline} {what}: {tensors}"
        );
    } else {
        assert_eq!(tensors, expected, "{pipeline} {what}");
    }
}

/// The value of one series (`name{labels}`, exactly as exposed) in Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// The bin dir of the Python venv with MLServer and tritonclient; the test fails (it does not
/// skip) without it.
pub fn mlserver_bin() -> PathBuf {
    match std::env::var_os("FLOWC_MLSERVER_BIN") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => panic!(
            "FLOWC_MLSERVER_BIN is not set: install the venv with \
             `export FLOWC_MLSERVER_BIN=\"$(./scripts/setup-python.sh | tail -n 1)\"` \
             (scripts/test.sh does this) and run the test again"
        ),
    }
}

/// The execution mode the suites apply pipelines in: `FLOWC_TEST_EXECUTION` (`per-hop`, the
/// default, or `fused`).
pub fn execution() -> String {
    match std::env::var("FLOWC_TEST_EXECUTION").ok().as_deref() {
        None | Some("") | Some("per-hop") => "per-hop".to_string(),
        Some("fused") => "fused".to_string(),
        Some(other) => panic!("FLOWC_TEST_EXECUTION is `{other}`; use `per-hop` or `fused`"),
    }
}
