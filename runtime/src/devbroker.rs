//! Throw-away Kafka brokers for development and tests, run as plain child processes on
//! 127.0.0.1: [Apache Kafka](https://kafka.apache.org) (the broker Seldon Core 2 users run;
//! single-node KRaft in combined mode, or a 3-node KRaft cluster) and
//! [tansu](https://github.com/tansu-io/tansu) (Apache-2.0, Kafka protocol, in-memory storage,
//! no JVM, starts in about a second; the embedded default of `flowc up`).
//!
//! ```no_run
//! # fn main() -> Result<(), flowc_runtime::devbroker::DevBrokerError> {
//! use flowc_runtime::devbroker::{BrokerKind, DevBroker};
//! let broker = DevBroker::start(BrokerKind::Kafka)?;
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT", for `bootstrap.servers`
//! # drop(bootstrap);
//! # Ok(()) }
//! ```
//!
//! Apache Kafka comes from `scripts/install-kafka.sh` (jars from Maven Central), tansu from
//! `scripts/install-broker.sh`; [`BrokerKind::locate`] says where each is looked for. Every
//! broker gets its own ports, fresh storage and a log file in its own temporary directory.
//! Readiness means the broker answered a Kafka metadata request that lists every node.
//! Dropping a [`DevBroker`] kills its processes and removes the directory, except when the
//! dropping thread is panicking (a failing test): then the directory, with the broker's log,
//! is kept and its path printed. The processes also die with the process that started them
//! (`PR_SET_PDEATHSIG`), so a test binary that exits or is killed leaves no broker behind.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// Overrides the tansu binary: the path of a `tansu` executable.
pub const TANSU_ENV: &str = "FLOWC_TANSU";
/// Overrides the Apache Kafka installation: a directory with `libs/*.jar` and
/// `config/log4j2.properties`, as `scripts/install-kafka.sh` makes it.
pub const KAFKA_HOME_ENV: &str = "FLOWC_KAFKA_HOME";
/// Directory of the tools `scripts/*` install (default `~/.cache/flowc/tools`).
pub const TOOLS_DIR_ENV: &str = "FLOWC_TOOLS_DIR";
/// Where `scripts/install-broker.sh` puts tansu, under the tools directory.
pub const TANSU_RELATIVE_PATH: &str = "tansu-v0.6.0-510f3e2/tansu";
/// Where `scripts/install-kafka.sh` puts Apache Kafka, under the tools directory.
pub const KAFKA_RELATIVE_PATH: &str = "kafka-4.3.2";
/// The JVM heap of each Apache Kafka node, in MiB: ample for test traffic, small enough that
/// three nodes, a test suite and its builds share a 2-core, 24 GiB machine.
pub const KAFKA_HEAP_MB: u32 = 512;

/// How long a start waits for the broker to answer a metadata request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Starts retried with new ports when the broker exits at once (e.g. a port was taken between
/// choosing it and the broker binding it).
const START_ATTEMPTS: usize = 3;
/// Lines of the broker log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// Which broker a [`DevBroker`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BrokerKind {
    /// Apache Kafka (KRaft), from `scripts/install-kafka.sh`.
    Kafka,
    /// tansu, from `scripts/install-broker.sh`.
    Tansu,
}

impl BrokerKind {
    /// The name used on command lines and in `FLOWC_TEST_BROKER`.
    pub fn name(self) -> &'static str {
        match self {
            BrokerKind::Kafka => "kafka",
            BrokerKind::Tansu => "tansu",
        }
    }

    /// The kind named by environment variable `var` (`kafka` or `tansu`), else `default`.
    pub fn from_env(var: &str, default: BrokerKind) -> Result<BrokerKind, DevBrokerError> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v
                .trim()
                .parse()
                .map_err(|e: String| DevBrokerError::Config(format!("{var}: {e}"))),
            _ => Ok(default),
        }
    }

    /// What runs this broker: the tansu executable, or the Apache Kafka directory.
    /// `$FLOWC_TANSU` / `$FLOWC_KAFKA_HOME` when set, else the tools directory
    /// (`${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}`) joined with [`TANSU_RELATIVE_PATH`] or
    /// [`KAFKA_RELATIVE_PATH`].
    pub fn locate(self) -> Result<PathBuf, DevBrokerError> {
        let (env, relative) = match self {
            BrokerKind::Kafka => (KAFKA_HOME_ENV, KAFKA_RELATIVE_PATH),
            BrokerKind::Tansu => (TANSU_ENV, TANSU_RELATIVE_PATH),
        };
        let (path, from_env) = match std::env::var_os(env).filter(|v| !v.is_empty()) {
            Some(path) => (PathBuf::from(path), true),
            None => (tools_dir().join(relative), false),
        };
        let present = match self {
            BrokerKind::Tansu => path.is_file(),
            BrokerKind::Kafka => path.join("libs").is_dir(),
        };
        if present {
            Ok(path)
        } else {
            Err(DevBrokerError::NotInstalled {
                kind: self,
                looked_at: path,
                from_env: from_env.then_some(env),
            })
        }
    }
}

impl fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BrokerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<BrokerKind, String> {
        match s {
            "kafka" => Ok(BrokerKind::Kafka),
            "tansu" => Ok(BrokerKind::Tansu),
            other => Err(format!("unknown broker kind `{other}` (expected `kafka` or `tansu`)")),
        }
    }
}

fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_DIR_ENV).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            home.join(".cache/flowc/tools")
        }
    }
}

/// Why a [`DevBroker`] could not be started or restarted.
#[derive(Debug, thiserror::Error)]
pub enum DevBrokerError {
    #[error(
        "{kind} broker not installed (looked at {}{}); run {}{}",
        looked_at.display(),
        from_env.map(|e| format!(", from {e}")).unwrap_or_default(),
        match kind { BrokerKind::Kafka => "scripts/install-kafka.sh", BrokerKind::Tansu => "scripts/install-broker.sh" },
        match kind {
            BrokerKind::Kafka => format!(" or set {KAFKA_HOME_ENV} to its install directory"),
            BrokerKind::Tansu => format!(" or set {TANSU_ENV} to a tansu executable"),
        }
    )]
    NotInstalled {
        kind: BrokerKind,
        looked_at: PathBuf,
        from_env: Option<&'static str>,
    },
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} exited ({status}); log {}:\n{log_tail}", log_path.display())]
    Exited {
        what: String,
        status: ExitStatus,
        log_path: PathBuf,
        log_tail: String,
    },
    #[error(
        "{kind} broker on {bootstrap} did not answer a metadata request listing {nodes} node(s) \
         within {timeout:?} (last error: {last_error}); log {}:\n{log_tail}",
        log_path.display()
    )]
    NotReady {
        kind: BrokerKind,
        bootstrap: String,
        nodes: usize,
        timeout: Duration,
        last_error: String,
        log_path: PathBuf,
        log_tail: String,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DevBrokerError {
    let what = what.into();
    move |source| DevBrokerError::Io { what, source }
}

/// How to start a [`DevBroker`]: [`DevBroker::builder`].
#[derive(Clone, Debug)]
pub struct DevBrokerBuilder {
    kind: BrokerKind,
    port: Option<u16>,
    nodes: usize,
    sasl_users: Vec<(String, String)>,
    heap_mb: u32,
}

impl DevBrokerBuilder {
    /// The client port of the (first) node; default: a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Apache Kafka only: a KRaft cluster of `nodes` combined broker+controller nodes (default
    /// 1). Topics (internal ones included) are replicated to min(3, nodes) by default, with
    /// `min.insync.replicas` one less: a 3-node cluster keeps accepting `acks=all` writes with
    /// one node down.
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes.max(1);
        self
    }

    /// Apache Kafka only: a second listener speaking SASL_PLAINTEXT with mechanism PLAIN that
    /// accepts these users ([`DevBroker::sasl_bootstrap`]). The PLAINTEXT listener stays.
    pub fn sasl_plain_user(mut self, user: &str, password: &str) -> Self {
        self.sasl_users.push((user.to_string(), password.to_string()));
        self
    }

    /// Apache Kafka only: the JVM heap of each node in MiB (default [`KAFKA_HEAP_MB`]).
    pub fn heap_mb(mut self, heap_mb: u32) -> Self {
        self.heap_mb = heap_mb;
        self
    }

    /// Starts the broker and waits (up to [`READY_TIMEOUT`]) until it answers a metadata request
    /// that lists every node.
    pub fn start(self) -> Result<DevBroker, DevBrokerError> {
        let install = self.kind.locate()?;
        if self.kind == BrokerKind::Tansu && (self.nodes > 1 || !self.sasl_users.is_empty()) {
            return Err(DevBrokerError::Config(
                "the tansu dev broker is a single node without SASL; use --kind kafka".into(),
            ));
        }
        sweep_stale_dirs();
        let mut attempt = 1;
        loop {
            let mut broker = self.spawn(&install)?;
            match broker.wait_ready(READY_TIMEOUT) {
                Ok(()) => return Ok(broker),
                Err(DevBrokerError::Exited { .. }) if attempt < START_ATTEMPTS && self.port.is_none() => attempt += 1,
                Err(err) => return Err(err),
            }
        }
    }

    fn spawn(&self, install: &Path) -> Result<DevBroker, DevBrokerError> {
        let dir = unique_dir()?;
        let mut broker = DevBroker {
            kind: self.kind,
            nodes: Vec::new(),
            dir,
            keep: false,
        };
        match self.kind {
            BrokerKind::Tansu => {
                let port = match self.port {
                    Some(port) => port,
                    None => free_port()?,
                };
                let node_dir = broker.dir.clone();
                let url = format!("tcp://127.0.0.1:{port}");
                let mut command = Command::new(install);
                command
                    .arg("broker")
                    .args(["--cluster-id", "flowc-dev"])
                    .args(["--listener-url", &url])
                    .args(["--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"])
                    // tansu also reads its settings from the environment: keep a schema registry
                    // or an OTLP exporter configured for something else out of the dev broker.
                    .env_remove("SCHEMA_REGISTRY")
                    .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
                    .current_dir(&node_dir);
                broker.nodes.push(Node {
                    id: 0,
                    port,
                    sasl_port: None,
                    log_path: node_dir.join("tansu.log"),
                    command,
                    child: None,
                });
            }
            BrokerKind::Kafka => {
                let mut ports = Vec::new();
                for i in 0..self.nodes {
                    let port = match (i, self.port) {
                        (0, Some(port)) => port,
                        _ => free_port()?,
                    };
                    let controller = free_port()?;
                    let sasl = if self.sasl_users.is_empty() {
                        None
                    } else {
                        Some(free_port()?)
                    };
                    ports.push((port, controller, sasl));
                }
                let voters = ports
                    .iter()
                    .enumerate()
                    .map(|(i, (_, c, _))| format!("{}@127.0.0.1:{c}", i + 1))
                    .collect::<Vec<_>>()
                    .join(",");
                let cluster_id = cluster_id();
                let java = java_binary();
                let mut formats = Vec::new();
                for (i, (port, controller, sasl)) in ports.iter().copied().enumerate() {
                    let node_dir = broker.dir.join(format!("node-{}", i + 1));
                    fs::create_dir_all(node_dir.join("data"))
                        .map_err(io_err(format!("creating {}", node_dir.display())))?;
                    let properties = node_dir.join("server.properties");
                    let text = kafka_properties(&KafkaNodeConfig {
                        id: i + 1,
                        nodes: self.nodes,
                        port,
                        controller,
                        sasl,
                        voters: &voters,
                        data: &node_dir.join("data"),
                        sasl_users: &self.sasl_users,
                    });
                    fs::write(&properties, text).map_err(io_err(format!("writing {}", properties.display())))?;
                    let log_path = node_dir.join("kafka.log");
                    let mut format = Command::new(&java);
                    format
                        .args([
                            "-Xshare:auto",
                            "-XX:TieredStopAtLevel=1",
                            "-XX:+UseSerialGC",
                            "-Xmx256m",
                        ])
                        .arg("-cp")
                        .arg(install.join("libs").join("*"))
                        .arg(format!(
                            "-Dlog4j2.configurationFile={}",
                            install.join("config/log4j2.properties").display()
                        ))
                        .args([
                            "kafka.tools.StorageTool",
                            "format",
                            "--ignore-formatted",
                            "-t",
                            &cluster_id,
                            "-c",
                        ])
                        .arg(&properties);
                    let format_log = node_dir.join("format.log");
                    formats.push((spawn_logged(format, &format_log, "kafka-storage format")?, format_log));
                    let mut command = Command::new(&java);
                    command
                        .arg(format!("-Xms{}m", self.heap_mb))
                        .arg(format!("-Xmx{}m", self.heap_mb))
                        .args([
                            "-XX:+UseG1GC",
                            "-XX:MaxGCPauseMillis=20",
                            "-XX:+ExitOnOutOfMemoryError",
                            "-Djava.awt.headless=true",
                        ])
                        .arg(format!(
                            "-Dlog4j2.configurationFile={}",
                            install.join("config/log4j2.properties").display()
                        ))
                        .arg("-cp")
                        .arg(install.join("libs").join("*"))
                        .arg("kafka.Kafka")
                        .arg(&properties)
                        .current_dir(&node_dir);
                    broker.nodes.push(Node {
                        id: (i + 1) as i32,
                        port,
                        sasl_port: sasl,
                        log_path,
                        command,
                        child: None,
                    });
                }
                for (mut child, log) in formats {
                    let status = child.wait().map_err(io_err("waiting for kafka-storage format"))?;
                    if !status.success() {
                        return Err(DevBrokerError::Exited {
                            what: "kafka-storage format".into(),
                            status,
                            log_tail: tail(&read_log(&log)),
                            log_path: log,
                        });
                    }
                }
            }
        }
        for i in 0..broker.nodes.len() {
            broker.nodes[i].start(self.kind)?;
        }
        Ok(broker)
    }
}

struct KafkaNodeConfig<'a> {
    id: usize,
    nodes: usize,
    port: u16,
    controller: u16,
    sasl: Option<u16>,
    voters: &'a str,
    data: &'a Path,
    sasl_users: &'a [(String, String)],
}

/// `server.properties` of one KRaft node in combined mode.
fn kafka_properties(c: &KafkaNodeConfig<'_>) -> String {
    let replication = c.nodes.min(3);
    let min_isr = replication.saturating_sub(1).max(1);
    let mut listeners = format!(
        "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
        c.port, c.controller
    );
    let mut advertised = format!("PLAINTEXT://127.0.0.1:{}", c.port);
    let mut protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".to_string();
    if let Some(sasl) = c.sasl {
        listeners.push_str(&format!(",SASL_PLAINTEXT://127.0.0.1:{sasl}"));
        advertised.push_str(&format!(",SASL_PLAINTEXT://127.0.0.1:{sasl}"));
        protocols.push_str(",SASL_PLAINTEXT:SASL_PLAINTEXT");
    }
    let mut text = format!(
        "# flowc dev broker: KRaft node {id} of {nodes}, combined broker and controller.\n\
         process.roles=broker,controller\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n\
         listeners={listeners}\n\
         advertised.listeners={advertised}\n\
         listener.security.protocol.map={protocols}\n\
         log.dirs={data}\n\
         num.partitions=1\n\
         default.replication.factor={replication}\n\
         min.insync.replicas={min_isr}\n\
         offsets.topic.replication.factor={replication}\n\
         offsets.topic.num.partitions=10\n\
         transaction.state.log.replication.factor={replication}\n\
         transaction.state.log.min.isr={min_isr}\n\
         transaction.state.log.num.partitions=10\n\
         share.coordinator.state.topic.replication.factor={replication}\n\
         share.coordinator.state.topic.min.isr={min_isr}\n\
         # A group's first member is assigned at once, not after 3 s (tests join many groups).\n\
         group.initial.rebalance.delay.ms=0\n\
         # KIP-848 groups (what workers join on Kafka): a dead member is noticed after 6 s, as\n\
         # flowc's classic-group settings do, and members heartbeat every 500 ms, which is how\n\
         # assignments reach them (the broker's defaults are 45 s and 5 s).\n\
         group.consumer.min.session.timeout.ms=6000\n\
         group.consumer.session.timeout.ms=6000\n\
         group.consumer.min.heartbeat.interval.ms=500\n\
         group.consumer.heartbeat.interval.ms=500\n\
         # A 2-core machine: few threads.\n\
         num.network.threads=2\n\
         num.io.threads=2\n\
         num.recovery.threads.per.data.dir=1\n\
         background.threads=4\n\
         log.cleaner.threads=1\n\
         log.cleaner.dedupe.buffer.size=8388608\n\
         # Small segments keep a test's disk use and a compacted changelog's cleaning small.\n\
         log.segment.bytes=16777216\n\
         log.index.size.max.bytes=1048576\n",
        id = c.id,
        nodes = c.nodes,
        voters = c.voters,
        data = c.data.display(),
    );
    if !c.sasl_users.is_empty() {
        let users: String = c.sasl_users.iter().map(|(u, p)| format!(" user_{u}=\"{p}\"")).collect();
        text.push_str(&format!(
            "sasl.enabled.mechanisms=PLAIN\n\
             listener.name.sasl_plaintext.plain.sasl.jaas.config=\
             org.apache.kafka.common.security.plain.PlainLoginModule required{users};\n"
        ));
    }
    text
}

/// One broker process: how to start it, and the running child.
#[derive(Debug)]
struct Node {
    /// Kafka's `node.id` (0 for tansu).
    id: i32,
    port: u16,
    sasl_port: Option<u16>,
    log_path: PathBuf,
    command: Command,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self, kind: BrokerKind) -> Result<(), DevBrokerError> {
        let what = format!("the {kind} broker (node {})", self.id);
        // Appends, so a restarted node's log follows its first life.
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(io_err(format!("opening {}", self.log_path.display())))?;
        let log_err = log.try_clone().map_err(io_err("duplicating the log file handle"))?;
        self.command.stdin(Stdio::null()).stdout(log).stderr(log_err);
        die_with_parent(&mut self.command);
        let child = self.command.spawn().map_err(io_err(format!("starting {what}")))?;
        self.child = Some(child);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running broker (one process, or one per node of a Kafka cluster), killed and reaped on
/// drop.
#[derive(Debug)]
pub struct DevBroker {
    kind: BrokerKind,
    nodes: Vec<Node>,
    dir: PathBuf,
    keep: bool,
}

impl DevBroker {
    /// How to start a broker of `kind`, with options.
    pub fn builder(kind: BrokerKind) -> DevBrokerBuilder {
        DevBrokerBuilder {
            kind,
            port: None,
            nodes: 1,
            sasl_users: Vec::new(),
            heap_mb: KAFKA_HEAP_MB,
        }
    }

    /// A single-node broker of `kind` on a free port of 127.0.0.1, ready.
    pub fn start(kind: BrokerKind) -> Result<DevBroker, DevBrokerError> {
        Self::builder(kind).start()
    }

    /// A single-node broker of `kind` on 127.0.0.1:`port` (`flowc up`, `flowc dev-broker`); a
    /// port in use makes the broker exit, which is reported with its log.
    pub fn start_on(kind: BrokerKind, port: u16) -> Result<DevBroker, DevBrokerError> {
        Self::builder(kind).port(port).start()
    }

    /// One single-node broker of `kind` for the whole process, started on first use: a test
    /// binary shares one JVM broker between its tests (each test names its topics and groups
    /// with a prefix of its own). It is never dropped; it dies with the process. Its directory
    /// (with the log) stays until a later start finds its process gone and removes it.
    pub fn shared(kind: BrokerKind) -> Result<&'static DevBroker, String> {
        static KAFKA: OnceLock<Result<DevBroker, String>> = OnceLock::new();
        static TANSU: OnceLock<Result<DevBroker, String>> = OnceLock::new();
        let cell = match kind {
            BrokerKind::Kafka => &KAFKA,
            BrokerKind::Tansu => &TANSU,
        };
        cell.get_or_init(|| {
            // PR_SET_PDEATHSIG fires when the *thread* that started the child ends, so the
            // shared broker is started by a thread that lives as long as the process.
            let (tx, rx) = std::sync::mpsc::channel();
            let spawned = thread::Builder::new()
                .name(format!("flowc-devbroker-{kind}"))
                .spawn(move || {
                    let _ = tx.send(DevBroker::start(kind).map(|mut b| {
                        b.keep = true;
                        b
                    }));
                    loop {
                        thread::park();
                    }
                });
            match spawned {
                Ok(_) => rx
                    .recv()
                    .map_err(|_| "the broker starter thread died".to_string())
                    .and_then(|r| r.map_err(|e| e.to_string())),
                Err(e) => Err(format!("cannot start the broker starter thread: {e}")),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), DevBrokerError> {
        let deadline = Instant::now() + timeout;
        let mut last_error = String::from("none yet");
        let consumer: Option<BaseConsumer> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "250")
            .set("log_level", "0")
            .create()
            .map_err(|e| last_error = e.to_string())
            .ok();
        loop {
            for node in &mut self.nodes {
                let exited = match node.child.as_mut() {
                    Some(child) => child.try_wait().map_err(io_err("checking the broker process"))?,
                    None => None,
                };
                if let Some(status) = exited {
                    node.child = None;
                    return Err(DevBrokerError::Exited {
                        what: format!("the {} broker (node {}) during start-up", self.kind, node.id),
                        status,
                        log_path: node.log_path.clone(),
                        log_tail: tail(&read_log(&node.log_path)),
                    });
                }
            }
            if let Some(consumer) = &consumer {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match consumer.fetch_metadata(None, remaining.min(Duration::from_secs(1))) {
                    Ok(md) if md.brokers().len() >= self.running_nodes() => return Ok(()),
                    Ok(md) => last_error = format!("{} of {} nodes listed", md.brokers().len(), self.running_nodes()),
                    Err(e) => last_error = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(DevBrokerError::NotReady {
                    kind: self.kind,
                    bootstrap: self.bootstrap(),
                    nodes: self.running_nodes(),
                    timeout,
                    last_error,
                    log_path: self.nodes[0].log_path.clone(),
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn running_nodes(&self) -> usize {
        self.nodes.iter().filter(|n| n.child.is_some()).count()
    }

    /// Which broker this is.
    pub fn kind(&self) -> BrokerKind {
        self.kind
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:PORT` of every node, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `bootstrap.servers` of the SASL_PLAINTEXT listeners, if the broker has them.
    pub fn sasl_bootstrap(&self) -> Option<String> {
        let ports: Vec<String> = self
            .nodes
            .iter()
            .filter_map(|n| n.sasl_port.map(|p| format!("127.0.0.1:{p}")))
            .collect();
        (!ports.is_empty()).then(|| ports.join(","))
    }

    /// The client port of the first node.
    pub fn port(&self) -> u16 {
        self.nodes[0].port
    }

    /// The Kafka `node.id`s of the nodes (1, 2, 3 for a 3-node cluster), in order.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// SIGKILLs node `id` (a Kafka `node.id`); its storage stays for [`DevBroker::restart_node`].
    pub fn kill_node(&mut self, id: i32) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) {
            node.kill();
        }
    }

    /// Starts node `id` again on its ports and storage, and waits until the cluster lists it.
    pub fn restart_node(&mut self, id: i32) -> Result<(), DevBrokerError> {
        let kind = self.kind;
        let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) else {
            return Err(DevBrokerError::Config(format!("no node {id}")));
        };
        if node.child.is_none() {
            node.start(kind)?;
        }
        self.wait_ready(READY_TIMEOUT)
    }

    /// The exit status of the first node found to have exited by itself (not by
    /// [`DevBroker::kill_node`]), if any.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        for node in &mut self.nodes {
            if let Some(status) = node.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                node.child = None;
                return Some(status);
            }
        }
        None
    }

    /// Every node's stdout and stderr so far (a header line per node of a cluster).
    pub fn log(&self) -> String {
        if self.nodes.len() == 1 {
            return read_log(&self.nodes[0].log_path);
        }
        self.nodes
            .iter()
            .map(|n| format!("--- node {}\n{}", n.id, read_log(&n.log_path)))
            .collect()
    }

    /// The file the (first) node's stdout and stderr go to.
    pub fn log_path(&self) -> &Path {
        &self.nodes[0].log_path
    }

    /// The directory with the broker's storage and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of every node's log.
    pub fn log_tail(&self) -> String {
        if self.nodes.len() == 1 {
            return tail(&read_log(&self.nodes[0].log_path));
        }
        self.nodes
            .iter()
            .map(|n| format!("--- node {}\n{}\n", n.id, tail(&read_log(&n.log_path))))
            .collect()
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if self.keep || thread::panicking() {
            eprintln!("{} broker log kept in {}", self.kind, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

fn spawn_logged(mut command: Command, log_path: &Path, what: &str) -> Result<Child, DevBrokerError> {
    let log = File::create(log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
    let log_err = log.try_clone().map_err(io_err("duplicating the log file handle"))?;
    command.stdin(Stdio::null()).stdout(log).stderr(log_err);
    die_with_parent(&mut command);
    command.spawn().map_err(io_err(format!("starting {what}")))
}

/// The child gets SIGKILL when the thread that started it ends (with its process, or on its
/// own): no broker outlives a killed test binary.
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2),
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `$JAVA_HOME/bin/java` when set, else `java` from the PATH.
fn java_binary() -> PathBuf {
    match std::env::var_os("JAVA_HOME").filter(|v| !v.is_empty()) {
        Some(home) if Path::new(&home).join("bin/java").is_file() => Path::new(&home).join("bin/java"),
        _ => PathBuf::from("java"),
    }
}

/// A KRaft cluster id: 16 bytes in URL-safe base64 without padding (Kafka's `Uuid` text form),
/// unique enough for throw-away brokers (time, process id and a counter).
fn cluster_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&nanos.to_be_bytes());
    bytes[8..12].copy_from_slice(&std::process::id().to_be_bytes());
    bytes[12..].copy_from_slice(&(COUNTER.fetch_add(1, Ordering::Relaxed) as u32).to_be_bytes());
    // Kafka rejects the all-zero and the "metadata topic" ids; neither can come out of this.
    base64_url(&bytes)
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// A port that was free a moment ago: bind port 0, read it, release it.
fn free_port() -> Result<u16, DevBrokerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("binding 127.0.0.1:0"))?;
    let port = listener.local_addr().map_err(io_err("reading the bound port"))?.port();
    Ok(port)
}

const DIR_PREFIX: &str = "flowc-devbroker-";

/// A new directory under the system temporary directory, unique to this process and call.
fn unique_dir() -> Result<PathBuf, DevBrokerError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "{DIR_PREFIX}{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    Ok(dir)
}

/// Removes the directories of dev brokers whose process is gone (a shared broker's, or a
/// failing test's kept log), once they are an hour old.
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_kafka_uuids() {
        let id = cluster_id();
        assert_eq!(id.len(), 22, "{id}");
        assert!(
            id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{id}"
        );
        assert_ne!(id, cluster_id());
        assert_eq!(base64_url(b"\xfb\xff"), "-_8");
    }

    #[test]
    fn kinds_parse_and_name_themselves() {
        assert_eq!("kafka".parse::<BrokerKind>(), Ok(BrokerKind::Kafka));
        assert_eq!("tansu".parse::<BrokerKind>(), Ok(BrokerKind::Tansu));
        assert!("redpanda".parse::<BrokerKind>().unwrap_err().contains("`redpanda`"));
        assert_eq!(BrokerKind::Kafka.to_string(), "kafka");
    }

    #[test]
    fn kafka_properties_replicate_internal_topics_across_a_cluster() {
        let data = PathBuf::from("/tmp/x");
        let users = [("alice".to_string(), "secret".to_string())];
        let text = kafka_properties(&KafkaNodeConfig {
            id: 2,
            nodes: 3,
            port: 1,
            controller: 2,
            sasl: Some(3),
            voters: "1@a:1,2@a:2,3@a:3",
            data: &data,
            sasl_users: &users,
        });
        assert!(text.contains("node.id=2\n"), "{text}");
        assert!(text.contains("offsets.topic.replication.factor=3\n"), "{text}");
        assert!(text.contains("transaction.state.log.min.isr=2\n"), "{text}");
        assert!(text.contains("min.insync.replicas=2\n"), "{text}");
        assert!(text.contains("SASL_PLAINTEXT://127.0.0.1:3"), "{text}");
        assert!(text.contains("user_alice=\"secret\";"), "{text}");
    }
}
