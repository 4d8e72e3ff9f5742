//! `runnel-agent` binary: parses flags, binds the gRPC listener, prints a ready line, serves;
//! or, as `runnel-agent rack ...`, runs the init container's rack step once.

use anyhow::Context;
use clap::Parser;
use runnel_agent::rack::RackArgs;
use runnel_agent::{AgentConfig, AgentSasl, AgentService, DEFAULT_LISTEN};

/// Sidecar agent of one Runnel broker.
#[derive(Debug, Parser)]
#[command(name = "runnel-agent", version)]
struct Args {
    /// Without a command the agent serves.
    #[command(subcommand)]
    command: Option<Command>,
    /// gRPC listen address.
    #[arg(long, env = "RUNNEL_AGENT_LISTEN", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// Broker admin HTTP address (for /readyz).
    #[arg(
        long,
        env = "RUNNEL_AGENT_BROKER_ADMIN",
        default_value = "127.0.0.1:9644"
    )]
    broker_admin: String,
    /// Broker Kafka address (for metadata).
    #[arg(
        long,
        env = "RUNNEL_AGENT_BROKER_KAFKA",
        default_value = "127.0.0.1:9092"
    )]
    broker_kafka: String,
    /// Node id of the broker (the pod ordinal); optional in a one-broker cluster.
    #[arg(long, env = "RUNNEL_NODE_ID")]
    node_id: Option<i32>,
    /// The broker's data directory (mounted into the agent), for BrokerStatus's data_dir_bytes.
    #[arg(long, env = "RUNNEL_AGENT_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// SASL user to log in to the broker's Kafka listener as (with --sasl-password-file),
    /// when that listener uses SASL.
    #[arg(
        long,
        env = "RUNNEL_AGENT_SASL_USERNAME",
        requires = "sasl_password_file"
    )]
    sasl_username: Option<String>,
    /// File holding the SASL password; read at every connection, so a rotated Secret applies.
    #[arg(
        long,
        env = "RUNNEL_AGENT_SASL_PASSWORD_FILE",
        requires = "sasl_username"
    )]
    sasl_password_file: Option<std::path::PathBuf>,
    /// SASL mechanism.
    #[arg(
        long,
        env = "RUNNEL_AGENT_SASL_MECHANISM",
        default_value = "SCRAM-SHA-512"
    )]
    sasl_mechanism: String,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write the rack of the pod's node (its `--label` value) to `--out`, then exit (the broker
    /// pod's init container when the Cluster sets rackLabel).
    Rack(RackArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    if let Some(Command::Rack(rack)) = &args.command {
        let value = runnel_agent::rack::run(rack).await?;
        println!(
            "rack of node {} is {value:?} (label {}), written to {}",
            rack.node,
            rack.label,
            rack.out.display()
        );
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let service = AgentService::new(AgentConfig {
        broker_admin: args.broker_admin,
        broker_kafka: args.broker_kafka,
        node_id: args.node_id,
        data_dir: args.data_dir,
        sasl: args
            .sasl_username
            .zip(args.sasl_password_file)
            .map(|(username, password_file)| AgentSasl {
                mechanism: args.sasl_mechanism,
                username,
                password_file,
            }),
    });
    // Tests and scripts wait for this line to learn the bound port.
    println!("runnel-agent ready grpc={addr}");
    // Kubernetes stops the sidecar with SIGTERM; exit at once rather than wait out the grace period.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let shutdown = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    };
    runnel_agent::serve(listener, service, shutdown).await?;
    Ok(())
}
