//! `flowc model-server`: serves the Models of some YAML whose `storageUri` is `flowc://<name>`
//! with flowc's reference models over Open Inference Protocol gRPC, and REST with `--http-listen`
//! (PIPELINES.md §9).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use flowc_reference::rest::serve_http;
use flowc_reference::{serve, ReferenceServer};

#[derive(clap::Args)]
pub struct Args {
    /// YAML files with the Models (and any Pipelines) to compile together.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Address to serve gRPC on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9500")]
    listen: String,
    /// Address to also serve REST (HTTP/JSON) on (port 0: any free port).
    #[arg(long)]
    http_listen: Option<String>,
    /// Topic prefix (only affects compiling the plan).
    #[arg(long, default_value = "seldon")]
    prefix: String,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Some(plan) = crate::cli::compile_files(
        &args.files,
        &args.prefix,
        crate::cli::ExecutionArg {
            mode: flowc_compiler::plan::Execution::PerHop,
        },
    )?
    else {
        return Ok(ExitCode::from(1));
    };
    let server = ReferenceServer::from_plan(&plan)?;
    flowc_runtime::metrics::register_build_info(server.registry(), "model-server");
    if server.is_empty() {
        bail!("no Model with a flowc:// storageUri to serve");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let http_listener = match &args.http_listen {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("cannot listen on {a}"))?,
            ),
            None => None,
        };
        let http_addr = match &http_listener {
            Some(l) => format!(" and http://{}", l.local_addr()?),
            None => String::new(),
        };
        let served: Vec<String> = server
            .models()
            .iter()
            .map(|(model, reference)| format!("{model} ({reference})"))
            .collect();
        eprintln!(
            "serving {} model{} on grpc://{addr}{http_addr}: {}",
            served.len(),
            if served.len() == 1 { "" } else { "s" },
            served.join(", ")
        );
        // One signal stops both servers.
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let http = http_listener.map(|l| {
            tokio::spawn(serve_http(l, server.clone(), async move {
                let _ = stopped.wait_for(|s| *s).await;
            }))
        });
        let grpc = serve(listener, server, async move {
            crate::cli::shutdown_signal().await;
            let _ = stop.send(true);
        });
        grpc.await?;
        if let Some(http) = http {
            http.await.context("the REST server panicked")??;
        }
        eprintln!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}
