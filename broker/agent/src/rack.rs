//! The `rack` step that runs as the broker pod's init container when a Cluster sets
//! `rackLabel` (Strimzi's `kafka-init` does the same): it reads that label of the node the pod
//! was scheduled on and writes its value to the file the broker reads as `broker_rack_file`.
//! The Kubernetes downward API cannot expose node labels, so the step asks the API server, with
//! a token only the init container mounts (the broker and agent containers get none).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

/// What the step needs: whose label, which label, where to write it.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "rack")]
pub struct RackArgs {
    /// The node the pod runs on (the pod template passes `spec.nodeName` from the downward API).
    #[arg(long)]
    pub node: String,
    /// The node label whose value is the rack (e.g. `topology.kubernetes.io/zone`).
    #[arg(long)]
    pub label: String,
    /// The file to write the rack to (on a volume the broker container mounts).
    #[arg(long)]
    pub out: PathBuf,
}

/// Why no rack was written.
#[derive(Debug, thiserror::Error)]
pub enum RackError {
    /// The in-cluster API configuration (service host, token) is missing or unusable.
    #[error("no Kubernetes API configuration: {0}")]
    Config(#[source] Box<kube::Error>),
    /// The API server refused or failed the read of the node.
    #[error("reading node {node}: {source}")]
    Node {
        /// The node asked for.
        node: String,
        /// What the API server answered.
        #[source]
        source: Box<kube::Error>,
    },
    /// The node does not carry the label (or carries it empty): without a rack the broker would
    /// silently fall out of rack-aware placement, so the pod does not start.
    #[error(
        "node {node} has no value for label {label:?}: label every node the brokers may run on, \
         or remove the Cluster's rackLabel"
    )]
    Missing {
        /// The node.
        node: String,
        /// The label it lacks.
        label: String,
    },
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Reads `args.label` of node `args.node` with `client` and writes it to `args.out` (through a
/// temporary file and a rename, so the broker never reads half a value). Returns the rack.
pub async fn write_rack(client: kube::Client, args: &RackArgs) -> Result<String, RackError> {
    let node = Api::<Node>::all(client)
        .get(&args.node)
        .await
        .map_err(|source| RackError::Node {
            node: args.node.clone(),
            source: Box::new(source),
        })?;
    let rack = node
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(&args.label))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| RackError::Missing {
            node: args.node.clone(),
            label: args.label.clone(),
        })?;
    write_atomically(&args.out, &rack).map_err(|source| RackError::Write {
        path: args.out.clone(),
        source,
    })?;
    Ok(rack)
}

/// The step as the init container runs it: in-cluster configuration (the projected token).
pub async fn run(args: &RackArgs) -> Result<String, RackError> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| RackError::Config(Box::new(e)))?;
    write_rack(client, args).await
}

fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{text}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_the_value_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("rack");
        write_atomically(&out, "zone-a").expect("write");
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "zone-a\n");
        write_atomically(&out, "zone-b").expect("rewrite");
        assert_eq!(std::fs::read_to_string(&out).expect("read"), "zone-b\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["rack"]);
    }

    #[test]
    fn arguments_parse_as_the_pod_template_passes_them() {
        use clap::Parser;
        let args = RackArgs::try_parse_from([
            "rack",
            "--node",
            "node-1",
            "--label",
            "topology.kubernetes.io/zone",
            "--out",
            "/var/run/runnel-rack/rack",
        ])
        .expect("parse");
        assert_eq!(args.node, "node-1");
        assert_eq!(args.label, "topology.kubernetes.io/zone");
        assert!(RackArgs::try_parse_from(["rack", "--node", "n"]).is_err());
    }
}
