//! Broker configs the brokers apply at runtime (runnel-config's dynamic keys) are set from
//! `spec.config` as the cluster-wide dynamic defaults through the admin API, so changing them
//! restarts nothing; removing one from the spec removes the default (the manifest is the
//! source of truth, as for Topics).

use std::collections::BTreeMap;

use runnel_client::AlterConfigOp;
use runnel_config::dynamic::DYNAMIC_KEYS;

use super::brokers::BrokerView;
use crate::crd::Cluster;
use crate::kafka::kafka_err;
use crate::resources::dynamic_broker_config;
use crate::Error;

/// Kafka's DescribeConfigs source of a cluster-wide dynamic default.
const SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;

/// The changes that bring the cluster-wide dynamic defaults (`have`) to `want`.
pub(super) fn changes(
    want: &BTreeMap<String, String>,
    have: &BTreeMap<String, String>,
) -> Vec<AlterConfigOp> {
    let set = want
        .iter()
        .filter(|(k, v)| have.get(*k) != Some(*v))
        .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()));
    let delete = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .map(|k| AlterConfigOp::Delete(k.clone()));
    set.chain(delete).collect()
}

/// Applies the spec's dynamic keys; returns the keys changed.
pub(super) async fn apply(cluster: &Cluster, view: &BrokerView) -> Result<Vec<String>, Error> {
    let want = dynamic_broker_config(cluster)?;
    let have: BTreeMap<String, String> = view
        .client
        .describe_broker_configs(None)
        .await
        .map_err(kafka_err("describe the cluster-wide broker configs"))?
        .into_iter()
        .filter(|e| e.source == SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG)
        .filter(|e| DYNAMIC_KEYS.iter().any(|k| k.name == e.name))
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect();
    let ops = changes(&want, &have);
    if ops.is_empty() {
        return Ok(Vec::new());
    }
    view.client
        .alter_broker_configs(None, &ops, false)
        .await
        .map_err(kafka_err("set the cluster-wide dynamic broker configs"))?;
    Ok(ops
        .iter()
        .map(|op| match op {
            AlterConfigOp::Set(k, _) | AlterConfigOp::Delete(k) => k.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sets_what_differs_and_deletes_what_the_spec_dropped() {
        let want = map(&[("follower.replication.throttled.rate", "100")]);
        let have = map(&[
            ("follower.replication.throttled.rate", "50"),
            ("leader.replication.throttled.rate", "10"),
        ]);
        assert_eq!(
            changes(&want, &have),
            vec![
                AlterConfigOp::Set("follower.replication.throttled.rate".into(), "100".into()),
                AlterConfigOp::Delete("leader.replication.throttled.rate".into()),
            ]
        );
        assert!(changes(&want, &want).is_empty());
    }
}
