//! `runnel-operator`: `crd` prints the CustomResourceDefinitions.

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
    Crd,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd => print!("{}", runnel_operator::crds_yaml()?),
    }
    Ok(())
}
