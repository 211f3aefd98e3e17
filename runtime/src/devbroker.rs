//! A throw-away Kafka broker for development and tests: [tansu](https://github.com/tansu-io/tansu)
//! (Apache-2.0, Kafka protocol, in-memory storage) run as a plain child process on 127.0.0.1.
//!
//! ```no_run
//! # fn main() -> Result<(), flowc_runtime::devbroker::DevBrokerError> {
//! let broker = flowc_runtime::devbroker::DevBroker::start()?;
//! let bootstrap = broker.bootstrap(); // "127.0.0.1:PORT", for `bootstrap.servers`
//! # drop(bootstrap);
//! # Ok(()) }
//! ```
//!
//! The binary comes from `scripts/install-broker.sh`; [`DevBroker::binary`] says where it is
//! looked for. Every broker gets its own port, a fresh empty store and a log file in its own
//! temporary directory; dropping the [`DevBroker`] kills the process, reaps it and removes the
//! directory. Readiness means the broker answered a Kafka metadata request.

use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

/// Overrides the broker binary: the path of a `tansu` executable.
pub const TANSU_ENV: &str = "FLOWC_TANSU";
/// Directory of the tools `scripts/*` install (default `~/.cache/flowc/tools`).
pub const TOOLS_DIR_ENV: &str = "FLOWC_TOOLS_DIR";
/// Where `scripts/install-broker.sh` puts tansu, under the tools directory.
pub const TANSU_RELATIVE_PATH: &str = "tansu-v0.6.0-510f3e2/tansu";

/// How long [`DevBroker::start`] waits for the broker to answer a metadata request.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts retried with a new port when the broker exits at once (e.g. the port was taken
/// between choosing it and the broker binding it).
const START_ATTEMPTS: usize = 3;
/// Lines of the broker log quoted in errors.
const LOG_TAIL_LINES: usize = 40;

/// Why a [`DevBroker`] could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DevBrokerError {
    #[error(
        "tansu broker binary not found (looked at {}{}); run scripts/install-broker.sh \
         or set {TANSU_ENV} to a tansu executable",
        looked_at.display(),
        if *from_env { format!(", from {TANSU_ENV}") } else { String::new() }
    )]
    BinaryNotFound { looked_at: PathBuf, from_env: bool },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("tansu broker exited during start-up ({status}); log {}:\n{log_tail}", log_path.display())]
    Exited {
        status: ExitStatus,
        log_path: PathBuf,
        log_tail: String,
    },
    #[error(
        "tansu broker on {bootstrap} did not answer a metadata request within {timeout:?} \
         (last error: {last_error}); log {}:\n{log_tail}",
        log_path.display()
    )]
    NotReady {
        bootstrap: String,
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

/// A running tansu broker, killed and reaped on drop.
#[derive(Debug)]
pub struct DevBroker {
    child: Child,
    port: u16,
    dir: PathBuf,
    log_path: PathBuf,
}

impl DevBroker {
    /// The tansu executable: `$FLOWC_TANSU` when set, else
    /// `${FLOWC_TOOLS_DIR:-~/.cache/flowc/tools}/tansu-v0.6.0-510f3e2/tansu`.
    pub fn binary() -> Result<PathBuf, DevBrokerError> {
        let (path, from_env) = match std::env::var_os(TANSU_ENV).filter(|v| !v.is_empty()) {
            Some(path) => (PathBuf::from(path), true),
            None => {
                let tools = match std::env::var_os(TOOLS_DIR_ENV).filter(|v| !v.is_empty()) {
                    Some(dir) => PathBuf::from(dir),
                    None => {
                        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
                        home.join(".cache/flowc/tools")
                    }
                };
                (tools.join(TANSU_RELATIVE_PATH), false)
            }
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(DevBrokerError::BinaryNotFound {
                looked_at: path,
                from_env,
            })
        }
    }

    /// Starts a broker on a free port of 127.0.0.1 and waits (up to [`READY_TIMEOUT`]) until it
    /// answers a metadata request.
    pub fn start() -> Result<DevBroker, DevBrokerError> {
        let binary = Self::binary()?;
        let mut attempt = 1;
        loop {
            let mut broker = Self::spawn(&binary, free_port()?)?;
            match broker.wait_ready(READY_TIMEOUT) {
                Ok(()) => return Ok(broker),
                Err(DevBrokerError::Exited { .. }) if attempt < START_ATTEMPTS => attempt += 1,
                Err(err) => return Err(err),
            }
        }
    }

    /// Starts a broker on 127.0.0.1:`port` (`flowc up`), waiting as [`DevBroker::start`] does; a
    /// port in use makes tansu exit, which is reported with its log.
    pub fn start_on(port: u16) -> Result<DevBroker, DevBrokerError> {
        let mut broker = Self::spawn(&Self::binary()?, port)?;
        broker.wait_ready(READY_TIMEOUT)?;
        Ok(broker)
    }

    fn spawn(binary: &Path, port: u16) -> Result<DevBroker, DevBrokerError> {
        let dir = unique_dir()?;
        let log_path = dir.join("tansu.log");
        let log = File::create(&log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io_err("duplicating the log file handle"))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(binary)
            .arg("broker")
            .args(["--cluster-id", "flowc-dev"])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            // tansu also reads its settings from the environment: keep a schema registry or an
            // OTLP exporter configured for something else out of the dev broker.
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(source) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(DevBrokerError::Io {
                    what: format!("starting {}", binary.display()),
                    source,
                });
            }
        };
        Ok(DevBroker {
            child,
            port,
            dir,
            log_path,
        })
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
            let exited = self.child.try_wait().map_err(io_err("checking the tansu process"))?;
            if let Some(status) = exited {
                return Err(DevBrokerError::Exited {
                    status,
                    log_path: self.log_path.clone(),
                    log_tail: self.log_tail(),
                });
            }
            if let Some(consumer) = &consumer {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match consumer.fetch_metadata(None, remaining.min(Duration::from_secs(1))) {
                    Ok(_) => return Ok(()),
                    Err(e) => last_error = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                return Err(DevBrokerError::NotReady {
                    bootstrap: self.bootstrap(),
                    timeout,
                    last_error,
                    log_path: self.log_path.clone(),
                    log_tail: self.log_tail(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `bootstrap.servers` for clients: `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log_path.display()))
    }

    /// The file the broker's stdout and stderr go to (removed on drop).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of [`DevBroker::log`].
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago: bind port 0, read it, release it.
fn free_port() -> Result<u16, DevBrokerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("binding 127.0.0.1:0"))?;
    let port = listener.local_addr().map_err(io_err("reading the bound port"))?.port();
    Ok(port)
}

/// A new directory under the system temporary directory, unique to this process and call.
fn unique_dir() -> Result<PathBuf, DevBrokerError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "flowc-devbroker-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
    Ok(dir)
}
