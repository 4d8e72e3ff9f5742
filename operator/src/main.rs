//! `runnel-operator`: `run` runs the controllers; `crd` prints the CustomResourceDefinitions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runnel_operator::kafka::ServiceDns;
use runnel_operator::leader::LeaseConfig;
use runnel_operator::run::RunConfig;

#[derive(Parser)]
#[command(
    name = "runnel-operator",
    version,
    about = "Kubernetes operator for Runnel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Cluster, Topic, Consumer and User controllers (log filter: RUST_LOG, default info).
    Run(RunArgs),

    /// Print the Cluster, Topic, Consumer and User CRDs as a multi-document YAML stream.
    Crd {
        /// Instead of printing, write one file per kind (cluster.yaml, topic.yaml, consumer.yaml,
        /// user.yaml) into each of these directories (e.g. crds and charts/runnel/crds).
        #[arg(long = "out-dir", value_name = "DIR")]
        out_dirs: Vec<std::path::PathBuf>,
    },
}

/// Arguments of `runnel-operator run` (the chart's Deployment passes them).
#[derive(clap::Args)]
struct RunArgs {
    /// Campaign for a coordination.k8s.io Lease and reconcile only while holding it, so
    /// several replicas are safe.
    #[arg(long)]
    leader_election: bool,
    /// Namespace to watch (repeatable); none watches every namespace.
    #[arg(long = "namespace", value_name = "NS")]
    namespaces: Vec<String>,
    /// Broker image for Clusters that do not set spec.image.
    #[arg(long, value_name = "IMAGE")]
    broker_image: Option<String>,
    /// Create the Prometheus Operator ServiceMonitor of Clusters with
    /// spec.metrics.serviceMonitor (and delete it when they stop asking). The operator's RBAC
    /// must allow servicemonitors (the chart grants it with serviceMonitor.enabled, and then
    /// passes this flag); without it ServiceMonitors are never touched.
    #[arg(long, env = "RUNNEL_OPERATOR_SERVICE_MONITORS")]
    service_monitors: bool,
    /// ClusterRole (allowing `get nodes`) the operator binds to the brokers' ServiceAccount of
    /// each Cluster with spec.rackLabel, so their init container can read the node's label. The
    /// operator's RBAC must allow ClusterRoleBindings and `bind` on this role (the chart grants
    /// both with rackAwareness.enabled, and then passes this flag).
    #[arg(long, env = "RUNNEL_OPERATOR_RACK_CLUSTER_ROLE", value_name = "NAME")]
    rack_cluster_role: Option<String>,
    /// Address of the HTTP endpoint (/metrics, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Namespace of the leader Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Identity in the leader Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds between re-reconciles of healthy objects (drift detection, lag refresh).
    #[arg(long, default_value_t = 60)]
    resync_seconds: u64,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn run(args: RunArgs) -> anyhow::Result<()> {
    let RunArgs {
        leader_election,
        namespaces,
        broker_image,
        service_monitors,
        rack_cluster_role,
        listen,
        lease_namespace,
        identity,
        resync_seconds,
    } = args;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let client = kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client (in-cluster or KUBECONFIG)")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(addr = %listener.local_addr()?, "HTTP endpoint (/metrics, /healthz, /readyz)");
    let identity = identity.unwrap_or_else(|| format!("runnel-operator-{}", std::process::id()));
    let config = RunConfig {
        namespaces,
        leader_election: leader_election
            .then(|| LeaseConfig::new(lease_namespace, identity.clone())),
        broker_image,
        service_monitors,
        rack_cluster_role,
        resync: Duration::from_secs(resync_seconds.max(1)),
        resolver: Arc::new(ServiceDns),
        instance: Some(identity),
    };
    runnel_operator::run::run(client, config, Some(listener), shutdown_signal()).await?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args)?,
        Command::Crd { out_dirs } if out_dirs.is_empty() => {
            print!("{}", runnel_operator::crds_yaml()?)
        }
        Command::Crd { out_dirs } => {
            for dir in out_dirs {
                for crd in runnel_operator::crds() {
                    let file = dir.join(format!(
                        "{}.yaml",
                        crd.spec.names.singular.as_deref().unwrap_or_default()
                    ));
                    std::fs::write(&file, runnel_operator::crd::crd_yaml(&crd)?)
                        .with_context(|| format!("cannot write {}", file.display()))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart's Deployment is the contract of `run`: every flag it can pass must parse, and
    /// the HTTP port its probes use must be the default of --listen.
    #[test]
    fn run_accepts_every_flag_the_chart_passes_and_listens_on_its_port() {
        let template = include_str!("../../charts/runnel/templates/deployment.yaml");
        let mut args = vec!["runnel-operator".to_string(), "run".to_string()];
        for line in template.lines() {
            let Some(flag) = line.trim().strip_prefix("- --") else {
                continue;
            };
            match flag.split_once('=') {
                Some((name, _)) => args.push(format!("--{name}=value")),
                None => args.push(format!("--{flag}")),
            }
        }
        assert!(args.len() > 4, "flags found in the template: {args:?}");
        let cli = Cli::try_parse_from(&args).expect("the chart's flags parse");
        let Command::Run(run) = cli.command else {
            panic!("not the run command");
        };
        assert!(run.leader_election);
        assert_eq!(run.broker_image.as_deref(), Some("value"));
        assert!(run.service_monitors);
        assert_eq!(run.rack_cluster_role.as_deref(), Some("value"));
        let port = template
            .lines()
            .find_map(|l| l.trim().strip_prefix("containerPort: "))
            .expect("a container port");
        assert_eq!(port, run.listen.port().to_string());
    }
}
