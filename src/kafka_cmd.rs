//! `flowc apply | delete | list | status | worker`: the commands that talk to a Kafka broker.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use flowc_runtime::kafka::client::PipelineClient;
use flowc_runtime::kafka::{deploy, worker};

use crate::cli::{model_backend, KafkaArgs};

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Pipeline/Model YAML files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Partitions of the topics created.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Show what would change and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// The pipeline gateway's URL, as explainers reach it: their `infer_uri` is
    /// `<url>/v2/models/<m>/infer` or `<url>/v2/pipelines/<p>/infer`.
    #[arg(long, env = "FLOWC_GATEWAY_URL", default_value = "http://127.0.0.1:9010")]
    pub gateway_url: String,
    /// How long the previous version of an updated pipeline keeps serving the requests it
    /// accepted, in milliseconds (its changed steps run beside the new ones until then).
    #[arg(long, default_value_t = deploy::DEFAULT_DRAIN.as_millis() as u64)]
    pub drain_timeout_ms: u64,
    /// The processing guarantee of these pipelines, `at-least-once` or `exactly-once` (default:
    /// each worker's `--processing-guarantee`).
    #[arg(long, value_parser = parse_guarantee)]
    pub processing_guarantee: Option<flowc_runtime::kafka::control::Guarantee>,
    #[command(flatten)]
    pub execution: crate::cli::ExecutionArg,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn apply(args: ApplyArgs) -> Result<ExitCode> {
    let Some(plan) = crate::cli::compile_files(&args.files, &args.kafka.prefix, args.execution)? else {
        return Ok(ExitCode::from(1));
    };
    if args.partitions < 1 {
        anyhow::bail!("--partitions must be at least 1 (got {})", args.partitions);
    }
    let config = args.kafka.config()?;
    let report = deploy::apply(
        &config,
        &plan,
        &deploy::ApplyOptions {
            prefix: args.kafka.prefix.clone(),
            partitions: args.partitions,
            replication: args.replication_factor,
            dry_run: args.dry_run,
            gateway_url: args.gateway_url.clone(),
            drain: Duration::from_millis(args.drain_timeout_ms),
            guarantee: args.processing_guarantee,
        },
    )?;
    for line in &report.lines {
        println!("{line}");
    }
    if args.dry_run {
        println!("(dry run: nothing applied)");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The pipeline's name.
    pub name: String,
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn delete(args: DeleteArgs) -> Result<ExitCode> {
    let config = args.kafka.config()?;
    for line in deploy::delete(&config, &args.kafka.prefix, &args.namespace, &args.name)? {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ListArgs {
    /// Print the deployment records as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn list(args: ListArgs) -> Result<ExitCode> {
    let config = args.kafka.config()?;
    let deployments = deploy::list(&config, &args.kafka.prefix)?;
    if args.json {
        let all: Vec<_> = deployments.values().collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        print!("{}", deploy::render_list(&deployments));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Show which replica (client id and host) holds which partitions of each group.
    #[arg(long)]
    pub partitions: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn status(args: StatusArgs) -> Result<ExitCode> {
    let config = args.kafka.config()?;
    let all = deploy::status(&config, &args.kafka.prefix)?;
    if all.is_empty() {
        println!("no pipelines deployed");
    }
    for p in &all {
        println!(
            "pipeline {} ({}) version {}: {}",
            p.name,
            p.fingerprint,
            p.version,
            if !p.running() {
                "not running"
            } else if p.problems().is_empty() {
                "running"
            } else {
                "running, with problems"
            }
        );
        for problem in p.problems() {
            println!("  ! {problem}");
        }
        for (version, until) in &p.draining {
            let left = (until - flowc_runtime::kafka::now_ms()).max(0) as f64 / 1000.0;
            println!("  version {version}: draining, stops in {left:.0} s");
        }
        for g in &p.groups {
            let members = g.members.map_or("?".to_string(), |n| n.to_string());
            let which = g
                .draining
                .map(|v| format!("  (version {v}, draining)"))
                .unwrap_or_default();
            println!(
                "  {:<28} members {:>2}  lag {:>6}  group {}{which}",
                g.sub_topology, members, g.lag, g.group
            );
            if args.partitions {
                for a in &g.assignments {
                    let held: Vec<String> = a.partitions.iter().map(|(t, ps)| format!("{t} {ps:?}")).collect();
                    let held = if held.is_empty() {
                        "no partitions".to_string()
                    } else {
                        held.join(", ")
                    };
                    println!("      {}: {held}", a.member);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct WorkerArgs {
    /// Where task state (RocksDB) lives; rebuilt from changelogs, so it may be empty.
    #[arg(long, env = "FLOWC_STATE_DIR", default_value = "flowc-state")]
    pub state_dir: PathBuf,
    /// Default Open Inference Protocol gRPC endpoint for model steps, e.g. http://127.0.0.1:9500.
    #[arg(long, env = "FLOWC_MODEL_SERVER")]
    pub model_server: Option<String>,
    /// The endpoint of one model, `MODEL=URL`; repeatable; wins over --model-server.
    #[arg(long, value_name = "MODEL=URL")]
    pub model_endpoint: Vec<String>,
    /// Timeout of one model call, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub model_timeout_ms: u64,
    /// Model calls in flight at once, per model.
    #[arg(long, default_value_t = 16)]
    pub model_concurrency: usize,
    /// Serve Prometheus metrics on `GET http://ADDR/metrics` (e.g. 0.0.0.0:9100).
    #[arg(long, value_name = "ADDR", env = "FLOWC_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// `at-least-once` (outputs acknowledged before offsets commit) or `exactly-once` (a batch's
    /// outputs, state changes and offsets in one Kafka transaction; read the outputs with
    /// `isolation.level=read_committed`), for pipelines whose deployment does not choose one.
    #[arg(long, default_value = "at-least-once", value_parser = parse_guarantee)]
    pub processing_guarantee: flowc_runtime::kafka::control::Guarantee,
    /// At least once: checkpoint stores, and restore only the changelog's tail when a task's
    /// store is still on disk (`--restore-from-checkpoints=false`: every task restores its
    /// stores in full from their changelogs). Exactly once always restores in full.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub restore_from_checkpoints: bool,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let mut config = args.kafka.config()?;
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    // A name per replica, so `flowc status --partitions` says who holds what (`-X client.id=`
    // overrides it).
    if !config.properties.iter().any(|(k, _)| k == "client.id") {
        config.properties.push((
            "client.id".to_string(),
            format!("flowc-worker-{host}-{}", std::process::id()),
        ));
    }
    let mut options = worker::WorkerOptions::new(&args.kafka.prefix, &args.state_dir);
    options.model_concurrency = args.model_concurrency.max(1);
    options.guarantee = args.processing_guarantee;
    options.checkpoints = args.restore_from_checkpoints;
    // Stable across restarts of this replica (same host, same state directory): what its
    // transactional producers are named after.
    let state = std::fs::canonicalize(&args.state_dir).unwrap_or_else(|_| args.state_dir.clone());
    options.instance = format!("{host}-{:016x}", fnv1a(state.to_string_lossy().as_bytes()));
    let timeout = Duration::from_millis(args.model_timeout_ms.max(1));
    let fallback = model_backend(&args.model_server, &args.model_endpoint, timeout)?;
    // Models placed on deployed Servers are called there; others through the flags above.
    let placed = Arc::new(flowc_runtime::kafka::placement::PlacedModels::new(fallback, timeout));
    options.models = Some(placed.clone());
    options.placed = Some(placed);
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("cannot create state dir {}", args.state_dir.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let signals = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if let Some(addr) = &args.metrics_listen {
        let listener = signals
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
        signals.spawn(flowc_runtime::metrics::serve(listener, std::future::pending()));
    }
    std::thread::spawn(move || {
        signals.block_on(async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        });
        flag.store(true, Ordering::Relaxed);
    });
    worker::run(&config, &options, stop)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct SendArgs {
    /// The pipeline to send to (its `…pipeline.<p>.inputs` topic).
    pub pipeline: String,
    /// The request as Open Inference Protocol JSON, or `@FILE`.
    pub request: String,
    /// The record key (the request id); default: a fresh one.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// An async client's write (§7): the request on the pipeline's inputs topic with the
/// `pipeline` header. Prints the key to read the answer by.
pub fn send(args: SendArgs) -> Result<ExitCode> {
    let text = match args.request.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?,
        None => args.request.clone(),
    };
    let json: serde_json::Value = serde_json::from_str(&text).context("the request is not valid JSON")?;
    let request = flowc_runtime::json::request_from_json(&json)?;
    let config = args.kafka.config()?;
    let key = args.key.unwrap_or_else(|| {
        format!(
            "req-{:x}",
            flowc_runtime::kafka::now_ms() as u64 ^ u64::from(std::process::id())
        )
    });
    PipelineClient::new(&config, &args.kafka.prefix, &args.namespace, &args.pipeline).send(&key, &request)?;
    println!("{key}");
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct ReadArgs {
    /// The pipeline whose `…pipeline.<p>.outputs` topic to read.
    pub pipeline: String,
    /// Only this request's answer.
    #[arg(long)]
    pub key: Option<String>,
    /// Stop after this many records.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    /// Give up (exit 1) after this long, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub wait_ms: u64,
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// An async client's read: answers on the outputs topic, one JSON line each.
pub fn read(args: ReadArgs) -> Result<ExitCode> {
    let config = args.kafka.config()?;
    let client = PipelineClient::new(&config, &args.kafka.prefix, &args.namespace, &args.pipeline);
    if args.count == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(args.wait_ms);
    let mut printed = 0;
    client.read(args.key.as_deref(), deadline, |line| {
        println!("{line}");
        printed += 1;
        printed < args.count
    })?;
    if printed < args.count {
        eprintln!(
            "no more answers on {} within {} ms ({printed} printed)",
            client.topic(flowc_compiler::ast::Side::Outputs),
            args.wait_ms
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum InspectFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// What to show: `P` (every step, the pipeline's inputs and outputs, errors), `P.S`,
    /// `P.S.inputs`, `P.S.outputs`, `P.S.outputs.T`, `P.inputs[.T]`, `P.outputs[.T]`.
    pub target: String,
    /// Only this request, step by step: its raw id, its key, or its `x-request-id`.
    #[arg(long, short = 'r')]
    pub request_id: Option<String>,
    /// Records per topic (without --request-id).
    #[arg(long, short = 'c', alias = "offset", default_value_t = 10)]
    pub count: usize,
    /// Search only records written since then: a DURATION ago (e.g. 30s, 10m, 2h) or a time
    /// in ms since the Unix epoch. A gateway request id needs neither: it carries its time.
    #[arg(long, value_name = "DURATION|MS")]
    pub since: Option<String>,
    /// Search only records written until then: a DURATION ago or ms since the epoch.
    #[arg(long, value_name = "DURATION|MS")]
    pub until: Option<String>,
    /// How long after entering a request's records can still be written: the gateway's
    /// request timeout (the plan's join, trigger and batch windows are added).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub window: String,
    /// Read every retained record, even for a request id that carries its time.
    #[arg(long)]
    pub scan: bool,
    /// Show the records as they are written, from now on, until interrupted (like
    /// `kubectl logs -f`); the target, --request-id and --tensor filter them.
    #[arg(long, short = 'F', conflicts_with_all = ["since", "until", "scan"])]
    pub follow: bool,
    /// Only this tensor, at every step.
    #[arg(long, short = 't')]
    pub tensor: Option<String>,
    #[arg(long, short, value_enum, default_value_t = InspectFormat::Text)]
    pub format: InspectFormat,
    /// Show record headers.
    #[arg(long)]
    pub headers: bool,
    /// Show whole tensors (default: the first 8 values of each).
    #[arg(long)]
    pub full: bool,
    /// Give up after this long, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub wait_ms: u64,
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

/// A duration as humantime reads it (`30s`, `10m`, `1h 30m`, `500ms`, `2d`), or plain seconds
/// (`flag` names the option in errors).
fn parse_duration(flag: &str, text: &str) -> Result<Duration> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().with_context(|| format!("{flag} {text}: too large"))?;
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .with_context(|| format!("{flag} {text}: expected a duration, e.g. 30s, 10m, 2h, 1h 30m"))
}

/// A point in time for --since/--until: a duration ago, or ms since the epoch (a number of
/// 12 digits or more, which no duration in seconds is meant to be).
fn parse_time(flag: &str, text: &str, now_ms: i64) -> Result<i64> {
    let t = text.trim();
    if t.len() >= 12 && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .with_context(|| format!("{flag} {t}: not a time in ms since the epoch"));
    }
    Ok(now_ms - parse_duration(flag, t)?.as_millis() as i64)
}

/// `flowc inspect` (§8): the records of a pipeline's topics, or one request's lineage.
pub fn inspect(args: InspectArgs) -> Result<ExitCode> {
    use flowc_runtime::kafka::inspect::{self, InspectOptions, Selector};
    let selector = Selector::parse(&args.target).map_err(anyhow::Error::msg)?;
    let now = flowc_runtime::kafka::now_ms();
    let since_ms = args
        .since
        .as_deref()
        .map(|t| parse_time("--since", t, now))
        .transpose()?;
    let until_ms = args
        .until
        .as_deref()
        .map(|t| parse_time("--until", t, now))
        .transpose()?;
    if let (Some(since), Some(until)) = (since_ms, until_ms) {
        anyhow::ensure!(since <= until, "--since is after --until: nothing to search");
    }
    let options = InspectOptions {
        prefix: args.kafka.prefix.clone(),
        namespace: args.namespace.clone(),
        count: args.count.max(1),
        request_id: args.request_id.clone(),
        since_ms,
        until_ms,
        request_window: parse_duration("--window", &args.window)?,
        scan: args.scan,
        tensor: args.tensor.clone(),
        full: args.full,
        headers: args.headers,
        timeout: Duration::from_millis(args.wait_ms.max(100)),
    };
    let config = args.kafka.config()?;
    if args.follow {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let on_signal = stop.clone();
        // Ctrl-C or SIGTERM ends the stream cleanly (the consumer closes).
        std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(crate::cli::shutdown_signal());
                on_signal.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        });
        let json = matches!(args.format, InspectFormat::Json);
        inspect::follow(&config, &selector, &options, &stop, |shown| {
            if json {
                let line = inspect::render_json(std::slice::from_ref(&shown), &options);
                if let Some(one) = line.as_array().and_then(|a| a.first()) {
                    println!("{one}");
                }
            } else {
                print!("{}", inspect::render_follow(&shown, &options));
            }
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    let found = inspect::inspect(&config, &selector, &options)?;
    if options.request_id.is_some() {
        eprintln!("{}", found.searched.describe());
    }
    match args.format {
        InspectFormat::Text => print!("{}", inspect::render_text(&found.shown, &options)),
        InspectFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&inspect::render_json(&found.shown, &options))?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_guarantee(s: &str) -> Result<flowc_runtime::kafka::control::Guarantee, String> {
    s.parse()
}

/// FNV-1a, 64 bits: a short name that stays the same for the same bytes on every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times() {
        assert_eq!(parse_duration("--window", "30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("--window", "1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("--window", "500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("--window", "45").unwrap(), Duration::from_secs(45));
        let e = parse_duration("--since", "10x").unwrap_err().to_string();
        assert!(e.starts_with("--since 10x: expected a duration"), "{e}");
        assert_eq!(parse_time("--since", "10m", 1_000_000).unwrap(), 400_000);
        assert_eq!(parse_time("--until", "1796554151486", 0).unwrap(), 1_796_554_151_486);
    }
}
