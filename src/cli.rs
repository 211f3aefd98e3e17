//! What the commands share, so that no command file calls another: how to reach the broker
//! (`KafkaArgs`), how pipelines run (`ExecutionArg`), reading and compiling YAML for the
//! commands that run plans, the worker's model endpoints, the broker kind of a local broker and
//! the shutdown signal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use flowc_compiler::{diagnostic, CompileOptions, SourceMap};
use flowc_runtime::devbroker::BrokerKind;
use flowc_runtime::kafka::KafkaConfig;

/// How to reach the broker. Any librdkafka property passes through.
#[derive(clap::Args, Clone)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, short = 'b', env = "FLOWC_BOOTSTRAP_SERVERS", default_value = "127.0.0.1:9092")]
    pub bootstrap_servers: String,
    /// A librdkafka property, `key=value` (TLS, SASL, ...); repeatable; wins over the file.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub property: Vec<String>,
    /// A properties file of librdkafka settings (`key=value` lines).
    #[arg(long, env = "FLOWC_KAFKA_CONFIG")]
    pub kafka_config: Option<PathBuf>,
    /// Bound on each broker call, in milliseconds (an unreachable broker fails after it).
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Topic prefix (`<prefix>.<namespace>.model.<m>.inputs`).
    #[arg(long, default_value = "seldon")]
    pub prefix: String,
}

impl KafkaArgs {
    pub fn config(&self) -> Result<KafkaConfig> {
        let mut config = KafkaConfig::new(&self.bootstrap_servers);
        config.timeout = Duration::from_millis(self.timeout_ms.max(100));
        if let Some(path) = &self.kafka_config {
            config.properties.extend(KafkaConfig::read_properties_file(path)?);
        }
        for p in &self.property {
            config.properties.push(KafkaConfig::parse_property(p)?);
        }
        // A few defaults depend on the broker (tansu or Apache Kafka): ask it once.
        Ok(config.detect_broker()?)
    }
}

/// How pipelines run (§10).
#[derive(clap::Args, Clone, Copy, Debug)]
pub(crate) struct ExecutionArg {
    /// How pipelines without a `flowc.io/execution` annotation run: `per-hop` (every step,
    /// model call and the output a topic hop of its own, as Seldon) or `fused` (a pipeline's
    /// steps and model calls in one task; every intermediate record is still written).
    #[arg(long = "execution", default_value = "per-hop", value_parser = parse_execution)]
    pub(crate) mode: flowc_compiler::plan::Execution,
}

fn parse_execution(s: &str) -> Result<flowc_compiler::plan::Execution, String> {
    flowc_compiler::plan::Execution::parse(s)
        .ok_or_else(|| format!("`{s}` is not an execution mode; use `per-hop` or `fused`"))
}

pub(crate) fn read_sources(files: &[PathBuf]) -> Result<SourceMap> {
    let mut sources = SourceMap::new();
    for path in files {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        sources.add(display_name(path), text);
    }
    Ok(sources)
}

/// Compiles `files` for commands that run the plan (apply, model-server, up): diagnostics go to
/// stderr; `None` when there were errors (the command exits 1).
pub(crate) fn compile_files(
    files: &[PathBuf],
    prefix: &str,
    execution: ExecutionArg,
) -> Result<Option<flowc_compiler::Plan>> {
    let sources = read_sources(files)?;
    let compilation = flowc_compiler::compile(
        &sources,
        &CompileOptions {
            prefix: prefix.to_string(),
            execution: execution.mode,
        },
    );
    if !compilation.diagnostics.is_empty() {
        eprint!(
            "{}",
            diagnostic::render_text(&compilation.diagnostics, &sources, std::io::stderr().is_terminal())
        );
    }
    Ok(compilation.plan)
}

fn display_name(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The worker's own model endpoints (`--model-server`, `--model-endpoint`), or none.
pub(crate) fn model_backend(
    default: &Option<String>,
    per_model: &[String],
    timeout: Duration,
) -> Result<Option<Arc<dyn flowc_runtime::operator::ModelBackend>>> {
    if default.is_none() && per_model.is_empty() {
        return Ok(None);
    }
    let mut models = flowc_oip::grpc::GrpcModels::new()?.with_timeout(timeout);
    if let Some(url) = default {
        models = models.with_default_endpoint(url)?;
    }
    for entry in per_model {
        let Some((model, url)) = entry.split_once('=') else {
            anyhow::bail!("--model-endpoint `{entry}` is not of the form MODEL=URL");
        };
        models = models.with_model(model.trim(), url.trim())?;
    }
    Ok(Some(Arc::new(models)))
}

pub(crate) fn parse_kind(s: &str) -> Result<BrokerKind, String> {
    s.parse()
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
