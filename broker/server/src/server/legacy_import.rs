//! The one-time import of what a broker from before the metadata quorum kept
//! in files (`topics.json`, the producer id reservation) into the cluster
//! metadata, run at start-up by a broker that founds the cluster.

use runnel_meta::{Command, MetaNode, Placement};

use crate::config::BrokerConfig;
use crate::errors::Error;
use crate::persist;

/// Imports what a pre-quorum single broker kept in files: topics.json (each
/// topic proposed with its id and configs, every partition on this broker)
/// and the producer id reservation (so ids never repeat). Each file is renamed
/// to `*.imported` once its content is in the metadata; an interrupted import
/// resumes at the next start. Returns whether topics were imported.
pub(super) async fn import_legacy(config: &BrokerConfig, meta: &MetaNode) -> Result<bool, Error> {
    let data_dir = &config.data_dir;
    let mut imported = false;
    if let Some(legacy) = crate::topics::read_legacy_topics(data_dir)? {
        for topic in legacy {
            let existing = meta.state().borrow().topics.get(&topic.name).map(|t| t.id);
            match existing {
                Some(id) if id == topic.id => continue,
                Some(id) => {
                    tracing::warn!(topic = %topic.name, old_id = %topic.id, id = %id,
                        "topics.json names a topic that exists with another id; not imported");
                    continue;
                }
                None => {}
            }
            let assignment = (0..topic.partitions)
                .map(|_| vec![config.node_id])
                .collect();
            meta.propose(Command::CreateTopic {
                name: topic.name.clone(),
                id: topic.id,
                placement: Placement::Manual(assignment),
                configs: topic.configs.clone(),
            })
            .await?;
            tracing::info!(topic = %topic.name, partitions = topic.partitions,
                "imported topic from topics.json into the cluster metadata");
        }
        let from = data_dir.join(crate::topics::LEGACY_TOPICS_FILE);
        rename_imported(&from)?;
        imported = true;
    }
    if let Some(reserved) = crate::producer_ids::read_legacy_reservation(data_dir)? {
        let next = meta.state().borrow().next_producer_id;
        if reserved > next {
            meta.propose(Command::AllocateProducerIds {
                count: reserved - next,
            })
            .await?;
        }
        rename_imported(&crate::producer_ids::legacy_path(data_dir))?;
    }
    Ok(imported)
}

fn rename_imported(from: &std::path::Path) -> Result<(), Error> {
    let mut to = from.as_os_str().to_owned();
    to.push(".imported");
    std::fs::rename(from, &to).map_err(|source| Error::Io {
        path: from.to_path_buf(),
        source,
    })?;
    if let Some(dir) = from.parent() {
        let _ = persist::sync_dir(dir);
    }
    Ok(())
}
