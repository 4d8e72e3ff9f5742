//! `runnel dev`: one broker, or a local cluster of N brokers, in this process,
//! for local development.

use anyhow::{bail, Context, Result};
use runnel_server::BrokerConfig;
use tokio::sync::watch;

use crate::cli::DevArgs;

/// Metadata (controller) ports of a dev cluster sit this far above its Kafka ports.
const CONTROLLER_PORT_OFFSET: u16 = 100;

/// The broker configurations for `runnel dev`: the usual `RUNNEL_*`
/// environment overrides, then the dev flags (whose defaults differ from the
/// broker's: data in `./runnel-data`). With N brokers, broker i gets node id
/// i, ports base+i and `DIR/broker-i`; brokers 1.. join through broker 0.
pub(crate) fn configs(args: &DevArgs) -> Result<Vec<BrokerConfig>> {
    let base = BrokerConfig::load(None).context("invalid broker configuration")?;
    let n = args.brokers;
    if !args.racks.is_empty() && args.racks.len() != usize::from(n) {
        bail!(
            "--racks names {} racks for {n} brokers: give one rack per broker",
            args.racks.len()
        );
    }
    if let Some(empty) = args.racks.iter().position(String::is_empty) {
        bail!("--racks: the rack of broker {empty} is empty");
    }
    let rack_of = |i: u16| args.racks.get(usize::from(i)).cloned();
    if n == 1 {
        let mut config = base;
        config.data_dir = args.data_dir.clone();
        config.listen = args.listen.clone();
        config.admin_listen = args.admin_listen.clone();
        if let Some(c) = &args.controller_listen {
            config.controller_listen = c.clone();
        }
        if let Some(rack) = rack_of(0) {
            config.broker_rack = Some(rack);
        }
        return Ok(vec![config]);
    }
    let (host, port) = split(&args.listen, "--listen")?;
    let (admin_host, admin_port) = split(&args.admin_listen, "--admin-listen")?;
    let (ctrl_host, ctrl_port) = match &args.controller_listen {
        Some(c) => split(c, "--controller-listen")?,
        None => (host.clone(), port.saturating_add(CONTROLLER_PORT_OFFSET)),
    };
    if port == 0 || admin_port == 0 || ctrl_port == 0 {
        bail!("a dev cluster needs fixed ports (brokers find each other by them): port 0 is only allowed with --brokers 1");
    }
    let last = n - 1;
    if port.checked_add(last).is_none()
        || admin_port.checked_add(last).is_none()
        || ctrl_port.checked_add(last).is_none()
    {
        bail!("ports of a {n}-broker dev cluster would exceed 65535");
    }
    let seed = format!("{ctrl_host}:{ctrl_port}");
    Ok((0..n)
        .map(|i| {
            let mut c = base.clone();
            c.node_id = i32::from(i);
            c.data_dir = args.data_dir.join(format!("broker-{i}"));
            c.listen = format!("{host}:{}", port + i);
            c.admin_listen = format!("{admin_host}:{}", admin_port + i);
            c.controller_listen = format!("{ctrl_host}:{}", ctrl_port + i);
            c.seeds = if i == 0 {
                Vec::new()
            } else {
                vec![seed.clone()]
            };
            if let Some(rack) = rack_of(i) {
                c.broker_rack = Some(rack);
            }
            c
        })
        .collect())
}

fn split(addr: &str, flag: &str) -> Result<(String, u16)> {
    runnel_server::split_host_port(addr)
        .with_context(|| format!("{flag}: '{addr}' is not HOST:PORT"))
}

/// Runs the broker(s) until Ctrl-C or SIGTERM; each prints its ready line itself.
pub(crate) async fn run(args: DevArgs) -> Result<()> {
    let configs = configs(&args)?;
    for c in &configs {
        std::fs::create_dir_all(&c.data_dir)
            .with_context(|| format!("cannot create data directory {}", c.data_dir.display()))?;
    }
    let signal = runnel_server::shutdown_signal().context("cannot install signal handlers")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = stop_tx.send(true);
    });
    let mut brokers = tokio::task::JoinSet::new();
    for config in configs {
        let mut rx = stop_rx.clone();
        let id = config.node_id;
        brokers.spawn(async move {
            let shutdown = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            (id, runnel_server::run(config, shutdown).await)
        });
    }
    let mut failed = None;
    while let Some(joined) = brokers.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((id, Err(e))) => {
                // One broker failing stops the whole dev cluster.
                failed.get_or_insert_with(|| anyhow::Error::new(e).context(format!("broker {id}")));
                brokers.abort_all();
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                failed.get_or_insert_with(|| anyhow::anyhow!("broker task failed: {e}"));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn args(brokers: u16, listen: &str) -> DevArgs {
        DevArgs {
            data_dir: PathBuf::from("/tmp/d"),
            listen: listen.into(),
            admin_listen: "127.0.0.1:9644".into(),
            brokers,
            controller_listen: None,
            racks: Vec::new(),
        }
    }

    #[test]
    fn racks_go_to_the_brokers_in_node_id_order_one_each() {
        let mut a = args(3, "127.0.0.1:9092");
        a.racks = vec!["RACK0".into(), "RACK1".into(), "RACK2".into()];
        let c = configs(&a).expect("accepted");
        assert_eq!(
            c.iter().map(|c| c.broker_rack.clone()).collect::<Vec<_>>(),
            [
                Some("RACK0".into()),
                Some("RACK1".into()),
                Some("RACK2".into())
            ]
        );
        assert!(configs(&args(3, "127.0.0.1:9092")).expect("accepted")[0]
            .broker_rack
            .is_none());
        a.racks.pop();
        let err = configs(&a).expect_err("refused").to_string();
        assert!(err.contains("--racks names 2 racks for 3 brokers"), "{err}");
        a.racks = vec!["a".into(), String::new(), "c".into()];
        let err = configs(&a).expect_err("refused").to_string();
        assert!(err.contains("the rack of broker 1 is empty"), "{err}");
    }

    #[test]
    fn a_dev_cluster_gets_consecutive_ports_ids_dirs_and_one_seed() {
        let c = configs(&args(3, "127.0.0.1:9092")).expect("accepted");
        assert_eq!(c.len(), 3);
        assert_eq!(
            c.iter().map(|c| c.listen.as_str()).collect::<Vec<_>>(),
            ["127.0.0.1:9092", "127.0.0.1:9093", "127.0.0.1:9094"]
        );
        assert_eq!(c[2].admin_listen, "127.0.0.1:9646");
        assert_eq!(c[1].controller_listen, "127.0.0.1:9193");
        assert_eq!(c[2].node_id, 2);
        assert_eq!(c[2].data_dir, PathBuf::from("/tmp/d/broker-2"));
        assert!(c[0].seeds.is_empty());
        assert_eq!(c[1].seeds, vec!["127.0.0.1:9192".to_string()]);
    }

    #[test]
    fn a_dev_cluster_refuses_port_zero() {
        let err = configs(&args(3, "127.0.0.1:0"))
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains("port 0 is only allowed with --brokers 1"),
            "{err}"
        );
        assert_eq!(configs(&args(1, "127.0.0.1:0")).expect("accepted").len(), 1);
    }
}
