//! `flowc`: compile, draw and (later) run Seldon Core 2 inference pipelines as Kafka data flow.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use flowc_compiler::{diagnostic, render, CompileOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

mod cli;
mod gateway_cmd;
mod kafka_cmd;
mod model_server_cmd;
mod up_cmd;

/// `flowc dev-broker`: a local broker in the foreground until Ctrl-C.
#[derive(clap::Args)]
struct DevBrokerArgs {
    /// `kafka` (Apache Kafka, KRaft, from scripts/install-kafka.sh) or `tansu`.
    #[arg(long, default_value = "kafka", value_parser = cli::parse_kind)]
    kind: flowc_runtime::devbroker::BrokerKind,
    /// Port on 127.0.0.1 (default: 9092).
    #[arg(long, default_value_t = 9092)]
    port: u16,
}

#[derive(Parser)]
#[command(
    name = "flowc",
    version,
    about = "Seldon Core 2 inference pipelines as Kafka data flow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate Pipeline/Model/Server YAML and print the compiled topology plan.
    Compile {
        /// YAML files (one or more documents each); compiled together.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How to print the plan (and, for `json`, the diagnostics).
        #[arg(long, short, value_enum, default_value_t = Format::Text)]
        format: Format,
        #[command(flatten)]
        common: Common,
    },
    /// Draw the compiled DAG as an SVG picture (no Graphviz needed).
    Graph {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where to write the picture.
        #[arg(long, short, default_value = "dag.svg")]
        output: PathBuf,
        /// `steps`: the steps, their models and the topics between them; `topology`: every
        /// processor of every sub-topology (as `compile --format dot`).
        #[arg(long, value_enum, default_value_t = GraphView::Steps)]
        view: GraphView,
        #[command(flatten)]
        common: Common,
    },
    /// Compile, create the topics the plan needs and deploy it to the workers (shows what
    /// changes first).
    Apply(kafka_cmd::ApplyArgs),
    /// Unload a deployed pipeline (and its topics, with `cleanTopicsOnDelete`).
    Delete(kafka_cmd::DeleteArgs),
    /// What is deployed.
    List(kafka_cmd::ListArgs),
    /// Whether each deployed pipeline runs: consumer group members and lag.
    Status(kafka_cmd::StatusArgs),
    /// Run every deployed pipeline's tasks for the partitions Kafka assigns to this replica.
    Worker(kafka_cmd::WorkerArgs),
    /// Write a request (OIP JSON) to a pipeline's inputs topic, as an async client does.
    Send(kafka_cmd::SendArgs),
    /// Print answers from a pipeline's outputs topic as JSON lines.
    Read(kafka_cmd::ReadArgs),
    /// Show what a pipeline's steps read and wrote, or one request's lineage (--request-id).
    Inspect(kafka_cmd::InspectArgs),
    /// Everything on one machine: a local broker, the reference models, a worker and the
    /// pipeline gateway, with the files applied; Ctrl-C stops it.
    Up(up_cmd::Args),
    /// The pipeline gateway: synchronous Open Inference Protocol calls of pipelines and models
    /// over HTTP (9010) and gRPC (9011), answered through their topics.
    Gateway(gateway_cmd::Args),
    /// Run only a local broker (Apache Kafka or tansu) on 127.0.0.1 in the foreground, until
    /// Ctrl-C: for scripts, demos and trying flowc against a real Kafka.
    DevBroker(DevBrokerArgs),
    /// Serve the Models with a `flowc://` storageUri with the reference models over gRPC.
    ModelServer(model_server_cmd::Args),
}

#[derive(clap::Args)]
struct Common {
    /// Topic prefix (`<prefix>.<namespace>.model.<m>.inputs`).
    #[arg(long, default_value = "seldon")]
    prefix: String,
    /// Colour diagnostics: auto (when stderr is a terminal), always, never.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(flatten)]
    execution: cli::ExecutionArg,
}

/// What `flowc graph` draws.
#[derive(Clone, Copy, ValueEnum)]
enum GraphView {
    Steps,
    Topology,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Dot,
    Mermaid,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FLOWC_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Compile { files, format, common } => {
            let sources = cli::read_sources(&files)?;
            let options = CompileOptions {
                prefix: common.prefix,
                execution: common.execution.mode,
            };
            let compilation = flowc_compiler::compile(&sources, &options);
            let color = match common.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => std::io::stderr().is_terminal(),
            };
            if let Format::Json = format {
                if compilation.has_errors() {
                    println!("{}", diagnostic::render_json(&compilation.diagnostics, &sources));
                    return Ok(ExitCode::from(1));
                }
                if !compilation.diagnostics.is_empty() {
                    eprint!("{}", diagnostic::render_text(&compilation.diagnostics, &sources, color));
                }
            } else if !compilation.diagnostics.is_empty() {
                eprint!("{}", diagnostic::render_text(&compilation.diagnostics, &sources, color));
            }
            let Some(plan) = compilation.plan else {
                return Ok(ExitCode::from(1));
            };
            let out = match format {
                Format::Text => render::text(&plan),
                Format::Json => render::json(&plan),
                Format::Dot => render::dot(&plan),
                Format::Mermaid => render::mermaid(&plan),
            };
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph {
            files,
            output,
            view,
            common,
        } => {
            let sources = cli::read_sources(&files)?;
            let options = CompileOptions {
                prefix: common.prefix,
                execution: common.execution.mode,
            };
            let compilation = flowc_compiler::compile(&sources, &options);
            let color = matches!(common.color, Color::Always)
                || (matches!(common.color, Color::Auto) && std::io::stderr().is_terminal());
            if !compilation.diagnostics.is_empty() {
                eprint!("{}", diagnostic::render_text(&compilation.diagnostics, &sources, color));
            }
            let Some(plan) = compilation.plan else {
                return Ok(ExitCode::from(1));
            };
            let kind = match view {
                GraphView::Steps => flowc_compiler::render::view::ViewKind::Steps,
                GraphView::Topology => flowc_compiler::render::view::ViewKind::Topology,
            };
            let svg = flowc_compiler::render::svg(&plan, kind);
            std::fs::write(&output, svg).with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("wrote {}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply(args) => kafka_cmd::apply(args),
        Command::Delete(args) => kafka_cmd::delete(args),
        Command::List(args) => kafka_cmd::list(args),
        Command::Status(args) => kafka_cmd::status(args),
        Command::Worker(args) => {
            let _spans = flowc_runtime::otlp::init("flowc-worker");
            flowc_runtime::metrics::metrics().set_process("worker");
            kafka_cmd::worker(args)
        }
        Command::Send(args) => kafka_cmd::send(args),
        Command::Read(args) => kafka_cmd::read(args),
        Command::Inspect(args) => kafka_cmd::inspect(args),
        Command::ModelServer(args) => model_server_cmd::run(args),
        Command::Gateway(args) => {
            let _spans = flowc_runtime::otlp::init("flowc-gateway");
            flowc_runtime::metrics::metrics().set_process("gateway");
            gateway_cmd::run(args)
        }
        Command::Up(args) => {
            let _spans = flowc_runtime::otlp::init("flowc");
            flowc_runtime::metrics::metrics().set_process("up");
            up_cmd::run(args)
        }
        Command::DevBroker(args) => dev_broker(args),
    }
}

/// Starts the broker, prints its address on stdout once it answers (scripts wait for that
/// line), and runs until SIGINT/SIGTERM or until the broker exits by itself (exit 1, with its
/// log's tail).
fn dev_broker(args: DevBrokerArgs) -> Result<ExitCode> {
    use std::io::Write as _;
    let mut broker = flowc_runtime::devbroker::DevBroker::start_on(args.kind, args.port)
        .with_context(|| format!("the {} broker did not start on 127.0.0.1:{}", args.kind, args.port))?;
    eprintln!(
        "flowc dev-broker: {} on {} (storage and log in {}); Ctrl-C stops it",
        args.kind,
        broker.bootstrap(),
        broker.dir().display()
    );
    println!("{}", broker.bootstrap());
    std::io::stdout().flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let exited = runtime.block_on(async {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        let signal = cli::shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                _ = &mut signal => return None,
                _ = tick.tick() => {
                    if let Some(status) = broker.exited() {
                        return Some(status);
                    }
                }
            }
        }
    });
    match exited {
        None => {
            eprintln!("flowc dev-broker: stopped");
            Ok(ExitCode::SUCCESS)
        }
        Some(status) => {
            eprintln!("flowc dev-broker: the broker exited ({status}):\n{}", broker.log_tail());
            Ok(ExitCode::from(1))
        }
    }
}
