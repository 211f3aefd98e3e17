//! `flowc up FILE…`: everything a pipeline needs, on one machine, in one process: a local
//! broker (tansu by default, or Apache Kafka with `--broker kafka`; `--brokers` uses an existing
//! Kafka instead, with `-X`/`--kafka-config` for its security settings), the reference model server for `flowc://`
//! Models, a worker, the pipeline gateway (HTTP 9010, gRPC 9011); the files applied; ready when
//! the gateway holds its partitions and every pipeline's models answer ready. Ctrl-C (or
//! SIGTERM) stops it all. Each part says when it is up; a part that fails is named.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use flowc_oip::grpc::GrpcModels;
use flowc_reference::ReferenceServer;
use flowc_runtime::devbroker::{BrokerKind, DevBroker};
use flowc_runtime::gateway::{self, Gateway, GatewayOptions, Target};
use flowc_runtime::kafka::placement::PlacedModels;
use flowc_runtime::kafka::{deploy, worker, KafkaConfig};
use flowc_runtime::operator::ModelBackend;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline/Model/Server YAML files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Use this Kafka (bootstrap servers) instead of starting a local broker.
    #[arg(long)]
    pub brokers: Option<String>,
    /// The local broker: `tansu` (no JVM, starts in about a second) or `kafka` (Apache Kafka,
    /// KRaft, from scripts/install-kafka.sh).
    #[arg(long, default_value = "tansu", value_parser = crate::cli::parse_kind)]
    pub broker: BrokerKind,
    /// Port of the local broker (127.0.0.1).
    #[arg(long, default_value_t = 9092)]
    pub broker_port: u16,
    /// A librdkafka property for the clients, `key=value` (TLS, SASL for `--brokers`, ...);
    /// repeatable; wins over the file.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub property: Vec<String>,
    /// A properties file of librdkafka settings (`key=value` lines).
    #[arg(long, env = "FLOWC_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
    /// The gateway's HTTP address.
    #[arg(long, default_value = "127.0.0.1:9010")]
    pub http_listen: String,
    /// The gateway's gRPC address.
    #[arg(long, default_value = "127.0.0.1:9011")]
    pub grpc_listen: String,
    /// The reference model server's gRPC address (for Models with a flowc:// storageUri).
    #[arg(long, default_value = "127.0.0.1:9500")]
    pub model_listen: String,
    /// Partitions of the topics created.
    #[arg(long, default_value_t = 2)]
    pub partitions: i32,
    /// Worker state (default: a fresh temporary directory).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// How long to wait for everything to be ready, in seconds.
    #[arg(long, default_value_t = 120)]
    pub ready_timeout_secs: u64,
    /// Topic prefix.
    #[arg(long, default_value = "seldon")]
    pub prefix: String,
    #[command(flatten)]
    pub execution: crate::cli::ExecutionArg,
}

fn step(what: &str) {
    eprintln!("flowc up: {what}");
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(plan) = crate::cli::compile_files(&args.files, &args.prefix, args.execution)? else {
        return Ok(ExitCode::from(1));
    };
    if args.partitions < 1 {
        bail!("--partitions must be at least 1 (got {})", args.partitions);
    }

    // The broker.
    let (mut broker, bootstrap) = match &args.brokers {
        Some(b) => {
            step(&format!("using the Kafka at {b}"));
            (None, b.clone())
        }
        None => {
            let broker = DevBroker::start_on(args.broker, args.broker_port).with_context(|| {
                format!(
                    "the local broker ({}) did not start on 127.0.0.1:{}",
                    args.broker, args.broker_port
                )
            })?;
            step(&format!(
                "broker ({}) on {} (log: {})",
                args.broker,
                broker.bootstrap(),
                broker.log_path().display()
            ));
            let b = broker.bootstrap();
            (Some(broker), b)
        }
    };
    let mut config = KafkaConfig::new(&bootstrap);
    if let Some(path) = &args.kafka_config {
        config.properties.extend(KafkaConfig::read_properties_file(path)?);
    }
    for p in &args.property {
        config.properties.push(KafkaConfig::parse_property(p)?);
    }
    let config = config.detect_broker()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // The reference model server, for flowc:// models.
    let server = ReferenceServer::from_plan(&plan).context("the reference model server")?;
    flowc_runtime::metrics::register_build_info(server.registry(), "model-server");
    let mut model_url = None;
    let mut model_server = None;
    if !server.is_empty() {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(&args.model_listen))
            .with_context(|| format!("the reference model server cannot listen on {}", args.model_listen))?;
        let url = format!("http://{}", listener.local_addr()?);
        let names: Vec<&str> = server.models().keys().map(String::as_str).collect();
        step(&format!("reference model server on {url}: {}", names.join(", ")));
        model_server = Some(runtime.spawn(flowc_reference::serve(listener, server, stopped(stop_rx.clone()))));
        model_url = Some(url);
    }

    // Apply.
    let report = deploy::apply(
        &config,
        &plan,
        &deploy::ApplyOptions {
            prefix: args.prefix.clone(),
            partitions: args.partitions,
            replication: 1,
            dry_run: false,
            gateway_url: format!("http://{}", args.http_listen),
            drain: deploy::DEFAULT_DRAIN,
            guarantee: None,
        },
    )
    .context("applying the files")?;
    for line in &report.lines {
        eprintln!("  {line}");
    }

    // Models: placed on Servers of the files, else the reference server.
    let timeout = Duration::from_secs(5);
    let fallback: Option<Arc<dyn ModelBackend>> = match &model_url {
        Some(url) => Some(Arc::new(GrpcModels::connect(url)?.with_timeout(timeout))),
        None => None,
    };
    let placed = Arc::new(PlacedModels::new(fallback, timeout));

    // The worker.
    let temp_state;
    let state_dir = match &args.state_dir {
        Some(d) => d.clone(),
        None => {
            temp_state = tempdir()?;
            temp_state.clone()
        }
    };
    std::fs::create_dir_all(&state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    let mut options = worker::WorkerOptions::new(&args.prefix, &state_dir);
    options.models = Some(placed.clone());
    options.placed = Some(placed.clone());
    let worker_stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (config, stop) = (config.clone(), worker_stop.clone());
        std::thread::Builder::new()
            .name("flowc-worker".into())
            .spawn(move || worker::run(&config, &options, stop))?
    };
    step(&format!("worker running (state in {})", state_dir.display()));

    // The pipeline gateway.
    let mut gateway_options = GatewayOptions::new(&args.prefix, "default");
    gateway_options.models = Some(placed);
    let gateway = runtime.block_on(async { Gateway::new(&config, gateway_options) })?;
    let consumer = {
        let g = gateway.clone();
        std::thread::Builder::new()
            .name("flowc-gateway-outputs".into())
            .spawn(move || g.run_consumer())?
    };
    let http = runtime
        .block_on(tokio::net::TcpListener::bind(&args.http_listen))
        .with_context(|| format!("the gateway cannot listen on {}", args.http_listen))?;
    let grpc = runtime
        .block_on(tokio::net::TcpListener::bind(&args.grpc_listen))
        .with_context(|| format!("the gateway cannot listen on {}", args.grpc_listen))?;
    let http_addr = http.local_addr()?;
    let grpc_addr = grpc.local_addr()?;
    let http_task = runtime.spawn(gateway::http::serve(http, gateway.clone(), stopped(stop_rx.clone())));
    let grpc_task = runtime.spawn(gateway::grpc::serve(grpc, gateway.clone(), stopped(stop_rx)));
    step(&format!(
        "pipeline gateway on http://{http_addr} and grpc://{grpc_addr}"
    ));

    // Ready: the gateway holds its partitions and every pipeline's models are ready.
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout_secs);
    let synchronous: Vec<&str> = plan
        .pipelines
        .iter()
        .filter(|p| p.synchronous)
        .map(|p| p.name.as_str())
        .collect();
    let result = runtime.block_on(async {
        for p in &synchronous {
            loop {
                if worker.is_finished() || consumer.is_finished() {
                    bail!("the {} stopped while starting (see the log above)", if worker.is_finished() { "worker" } else { "gateway" });
                }
                let why = match gateway.ready(&Target::Pipeline(p.to_string())).await {
                    Ok(Ok(())) => break,
                    Ok(Err(why)) => why,
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    bail!("pipeline {p} is not ready after {} s: {why}", args.ready_timeout_secs);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        step("ready");
        for p in &synchronous {
            eprintln!(
                "  curl -s http://{http_addr}/v2/pipelines/{p}/infer -H 'content-type: application/json' -d @request.json"
            );
            eprintln!("  flowc inspect {p} -b {bootstrap}");
        }
        eprintln!("  Ctrl-C stops everything");
        // Until a signal, or until a part stops on its own. The local broker dying is said at
        // once (the gateway already refuses requests with 503 naming it), and everything stops:
        // nothing would work without it, and a new `flowc up` starts a fresh one.
        let part_ended = async {
            loop {
                if worker.is_finished() || consumer.is_finished() {
                    return format!(
                        "the {} stopped unexpectedly",
                        if worker.is_finished() { "worker" } else { "gateway" }
                    );
                }
                if let Some(b) = broker.as_mut() {
                    if let Some(status) = b.exited() {
                        return format!(
                            "the local broker ({}) on {} died ({status}); the end of its log {}:\n{}\nflowc up stops; run it again to start a new broker",
                            b.kind(),
                            b.bootstrap(),
                            b.log_path().display(),
                            b.log_tail()
                        );
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = crate::cli::shutdown_signal() => Ok(()),
            why = part_ended => Err(anyhow::anyhow!(why)),
        }
    });

    step("stopping");
    let _ = stop_tx.send(true);
    gateway.stop();
    worker_stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = http_task.await;
            let _ = grpc_task.await;
            if let Some(m) = model_server {
                let _ = m.await;
            }
        })
        .await;
    });
    let worker_result = worker.join();
    let consumer_result = consumer.join();
    if args.state_dir.is_none() {
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    result?;
    match worker_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(anyhow::Error::new(e).context("the worker")),
        Err(_) => bail!("the worker panicked"),
    }
    match consumer_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(anyhow::Error::new(e).context("the gateway")),
        Err(_) => bail!("the gateway panicked"),
    }
    step("stopped");
    Ok(ExitCode::SUCCESS)
}

/// A fresh directory under the system's temporary directory.
fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "flowc-up-{}-{}",
        std::process::id(),
        flowc_runtime::kafka::now_ms()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
