//! `runnel-operator`: `crd` prints the CustomResourceDefinitions.

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    /// Print the Cluster, Topic and Consumer CRDs as a multi-document YAML stream.
    Crd {
        /// Instead of printing, write one file per kind (cluster.yaml, topic.yaml, consumer.yaml)
        /// into each of these directories (e.g. crds and charts/runnel/crds).
        #[arg(long = "out-dir", value_name = "DIR")]
        out_dirs: Vec<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
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
