//! Start-up checks and internal topics: source topics must exist and be co-partitioned within
//! a sub-topology; repartition and changelog topics are created with the partition count of
//! the sub-topology that reads them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::StreamsConfig;
use crate::error::{Result, StreamsError};
use crate::topic_ref::TopicRef;
use crate::topology::Topology;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The partition count of each sub-topology, by id.
pub(crate) type PartitionCounts = BTreeMap<usize, i32>;

/// The changelog topic of a store.
pub(crate) fn changelog_topic(app_id: &str, store: &str) -> String {
    TopicRef::Internal(format!("{store}-changelog")).full_name(app_id)
}

/// Checks the source topics, creates the internal ones and returns each sub-topology's
/// partition count.
pub(crate) fn prepare(topology: &Topology, config: &StreamsConfig) -> Result<PartitionCounts> {
    let app = &config.application_id;
    let meta: BaseConsumer = config
        .client_config()
        .create()
        .map_err(|e| StreamsError::kafka("creating a metadata client", e))?;
    let metadata = meta
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| StreamsError::kafka("reading cluster metadata", e))?;
    let existing: BTreeMap<String, i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();

    // Sub-topologies that read only user topics first; one reading a repartition topic gets
    // the count of the sub-topology that writes it.
    let mut counts = PartitionCounts::new();
    let repartition_writer: BTreeMap<&TopicRef, usize> =
        topology.repartitions.iter().map(|(t, w)| (t, *w)).collect();
    for _ in 0..=topology.subtopologies.len() {
        for sub in &topology.subtopologies {
            if counts.contains_key(&sub.id) {
                continue;
            }
            let mut found: Vec<(String, i32)> = Vec::new();
            let mut ready = true;
            for (topic, _) in &sub.sources {
                match topic {
                    TopicRef::User(name) => match existing.get(name) {
                        Some(n) => found.push((name.clone(), *n)),
                        None => {
                            return Err(StreamsError::Topology(format!(
                                "source topic {name} does not exist; create it before starting the application"
                            )))
                        }
                    },
                    TopicRef::Internal(_) => match repartition_writer.get(topic).and_then(|w| counts.get(w)) {
                        Some(n) => found.push((topic.full_name(app), *n)),
                        None => ready = false,
                    },
                }
            }
            if !ready {
                continue;
            }
            if let Some((first, n)) = found.first() {
                if let Some((other, m)) = found.iter().find(|(_, m)| m != n) {
                    return Err(StreamsError::Topology(format!(
                        "topics {first} ({n} partitions) and {other} ({m} partitions) are joined or merged in sub-topology {} and must have the same number of partitions (co-partitioning)",
                        sub.id
                    )));
                }
                counts.insert(sub.id, *n);
            }
        }
    }
    if counts.len() != topology.subtopologies.len() {
        return Err(StreamsError::Topology(
            "the partition count of a repartition topic could not be resolved".into(),
        ));
    }

    let mut wanted: Vec<(String, i32, &str)> = Vec::new();
    for (topic, writer) in &topology.repartitions {
        let reader = topology
            .subtopology_of(app, &topic.full_name(app))
            .ok_or_else(|| StreamsError::Topology(format!("nothing reads {topic:?}")))?;
        let _ = writer;
        wanted.push((topic.full_name(app), counts[&reader], "delete"));
    }
    for (sub, store) in topology.stores() {
        wanted.push((changelog_topic(app, &store.name), counts[&sub], "compact"));
    }
    let admin: AdminClient<DefaultClientContext> = config
        .client_config()
        .create()
        .map_err(|e| StreamsError::kafka("creating an admin client", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StreamsError::Config(format!("tokio runtime: {e}")))?;
    for (name, partitions, cleanup) in &wanted {
        if let Some(have) = existing.get(name) {
            if have != partitions {
                return Err(StreamsError::Topology(format!(
                    "internal topic {name} has {have} partitions, the topology needs {partitions}; delete it (and reset the application) or restore the input topics' partition counts"
                )));
            }
            continue;
        }
        let topic = NewTopic::new(
            name,
            *partitions,
            TopicReplication::Fixed(config.replication_factor),
        )
        .set("cleanup.policy", cleanup);
        let results = runtime
            .block_on(admin.create_topics(
                [&topic],
                &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
            ))
            .map_err(|e| StreamsError::kafka(format!("creating {name}"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(StreamsError::Topology(format!(
                        "creating internal topic {topic} failed: {code}"
                    )))
                }
            }
        }
        tracing::info!(topic = %name, partitions, cleanup, "created internal topic");
    }
    // Wait until every internal topic is visible in metadata (the subscription needs them).
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let metadata = meta
            .fetch_metadata(None, TIMEOUT)
            .map_err(|e| StreamsError::kafka("reading cluster metadata", e))?;
        let missing: Vec<&str> = wanted
            .iter()
            .map(|(n, _, _)| n.as_str())
            .filter(|n| {
                !metadata
                    .topics()
                    .iter()
                    .any(|t| t.name() == *n && t.error().is_none() && !t.partitions().is_empty())
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(StreamsError::Topology(format!(
                "internal topics {missing:?} did not appear in metadata"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(counts)
}
