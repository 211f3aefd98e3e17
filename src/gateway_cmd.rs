//! `flowc gateway`: the pipeline gateway (PIPELINES.md §7) over HTTP and gRPC.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use flowc_runtime::gateway::{self, Gateway, GatewayOptions};
use flowc_runtime::kafka::placement::PlacedModels;

use crate::cli::{model_backend, KafkaArgs};

#[derive(clap::Args)]
pub struct Args {
    /// HTTP (Open Inference Protocol JSON) address.
    #[arg(long, default_value = "0.0.0.0:9010")]
    pub http_listen: String,
    /// gRPC (`inference.GRPCInferenceService`) address.
    #[arg(long, default_value = "0.0.0.0:9011")]
    pub grpc_listen: String,
    /// The namespace whose pipelines and models are served.
    #[arg(long, short, default_value = "default")]
    pub namespace: String,
    /// How long a request waits for its answer before 504 / DEADLINE_EXCEEDED, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Largest request taken (HTTP body or gRPC message), in bytes; larger ones get 413.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Consumer group of the gateway replicas (default `<prefix>.<namespace>.flowc.gateway`).
    #[arg(long)]
    pub group: Option<String>,
    /// Where models that are on no Server are asked whether they are ready (gRPC endpoint).
    #[arg(long, env = "FLOWC_MODEL_SERVER")]
    pub model_server: Option<String>,
    /// The endpoint of one model, `MODEL=URL`; repeatable.
    #[arg(long, value_name = "MODEL=URL")]
    pub model_endpoint: Vec<String>,
    #[command(flatten)]
    pub kafka: KafkaArgs,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let config = args.kafka.config()?;
    let mut options = GatewayOptions::new(&args.kafka.prefix, &args.namespace);
    options.request_timeout = Duration::from_millis(args.request_timeout_ms.max(1));
    let request_timeout = options.request_timeout;
    options.max_request_bytes = args.max_request_bytes.max(1);
    if let Some(group) = args.group {
        options.group = group;
    }
    let ready_timeout = Duration::from_secs(3);
    let fallback = model_backend(&args.model_server, &args.model_endpoint, ready_timeout)?;
    options.models = Some(Arc::new(PlacedModels::new(fallback, ready_timeout)));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let gateway = runtime.block_on(async { Gateway::new(&config, options) })?;
    let consumer = {
        let gateway = gateway.clone();
        std::thread::Builder::new()
            .name("flowc-gateway-outputs".into())
            .spawn(move || gateway.run_consumer())?
    };
    let result = runtime.block_on(async {
        let http = tokio::net::TcpListener::bind(&args.http_listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.http_listen))?;
        let grpc = tokio::net::TcpListener::bind(&args.grpc_listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.grpc_listen))?;
        tracing::info!(http = %http.local_addr()?, grpc = %grpc.local_addr()?, "gateway listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let http = tokio::spawn(gateway::http::serve(http, gateway.clone(), signal(stop_rx.clone())));
        let grpc = tokio::spawn(gateway::grpc::serve(grpc, gateway.clone(), signal(stop_rx)));
        // Until a signal, or until the outputs consumer ends (an unreachable broker, say).
        let consumer_ended = async {
            while !consumer.is_finished() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = crate::cli::shutdown_signal() => {}
            _ = consumer_ended => {}
        }
        // A graceful stop: readiness says no at once, the listeners take no new connection,
        // and the requests taken are answered (the outputs consumer keeps its partitions until
        // then), for at most one request timeout.
        tracing::info!(
            in_flight = gateway.in_flight(),
            "gateway stopping: answering the requests it holds"
        );
        gateway.start_draining();
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(request_timeout + Duration::from_secs(1), async {
            let _ = http.await;
            let _ = grpc.await;
        })
        .await;
        tracing::info!(in_flight = gateway.in_flight(), "gateway stopped");
        anyhow::Ok(())
    });
    gateway.stop();
    match consumer.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => anyhow::bail!("the gateway's consumer thread panicked"),
    }
    result?;
    Ok(ExitCode::SUCCESS)
}
