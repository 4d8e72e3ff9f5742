//! [`ClusterState::apply`]: the deterministic transition function of the
//! metadata state machine, with replica placement and leader election.
//! No clocks, no randomness, no I/O: every node applies the same log and gets
//! the same state. A refused command changes nothing but `applied_index`:
//! every handler validates first and only then writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::election::{self, Revert};
use crate::placement::{self, Candidate};
use crate::types::{
    Applied, BrokerId, BrokerInfo, ClusterState, Command, Election, PartitionMeta, Placement,
    QuotaEntity, QuotaValue, Rejection, ScramCredential, ScramMechanism, TopicMeta, NO_LEADER,
    QUOTA_KEYS,
};

/// Topic (or cluster-default broker) config that allows electing an
/// out-of-sync replica when no in-sync one is alive.
pub(crate) const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

impl ClusterState {
    /// Applies one command committed at Raft log `index`. A refused command
    /// changes nothing except `applied_index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<Applied, Rejection> {
        self.applied_index = index;
        match command {
            Command::InitCluster { cluster_id } => Ok(self.init_cluster(cluster_id)),
            Command::RegisterBroker(info) => {
                // NO_LEADER and other negative ids would be ambiguous in `leader`.
                if info.id < 0 {
                    return Err(Rejection::Invalid(format!(
                        "broker id must not be negative, got {}",
                        info.id
                    )));
                }
                Ok(self.register_broker(info))
            }
            Command::FenceBroker { id, incarnation } => {
                match self.brokers.get(id) {
                    Some(b) if b.incarnation == *incarnation && !b.fenced => {
                        self.fence(*id);
                        Ok(Applied::Done)
                    }
                    // Unknown, already fenced, or a newer registration: the
                    // controller's expiry raced with a re-registration.
                    _ => Ok(Applied::NoChange),
                }
            }
            Command::ControlledShutdown { id, incarnation } => match self.brokers.get(id) {
                Some(b) if b.incarnation == *incarnation && !b.fenced => {
                    Ok(self.controlled_shutdown(*id))
                }
                // Unknown, fenced, or a newer registration: nothing to move.
                _ => Ok(Applied::NoChange),
            },
            Command::CreateTopic {
                name,
                id,
                placement,
                configs,
            } => self.create_topic(name, *id, placement, configs),
            Command::CreateTopics { topics } => Ok(Applied::Topics(
                topics
                    .iter()
                    .map(|t| {
                        self.create_topic(&t.name, t.id, &t.placement, &t.configs)
                            .map(|_| ())
                    })
                    .collect(),
            )),
            Command::DeleteTopic { name } => match self.topics.remove(name) {
                Some(_) => Ok(Applied::Done),
                None => Err(Rejection::UnknownTopic(name.clone())),
            },
            Command::CreatePartitions {
                name,
                total,
                assignment,
            } => self.create_partitions(name, *total, assignment.as_deref()),
            Command::SetTopicConfigs { name, configs } => {
                let topic = self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| Rejection::UnknownTopic(name.clone()))?;
                Ok(replace(&mut Arc::make_mut(topic).configs, configs))
            }
            Command::SetBrokerConfigs { resource, configs } => {
                self.set_broker_configs(resource, configs)
            }
            Command::SetClientMetrics { name, configs } => {
                if name.is_empty() {
                    return Err(Rejection::Invalid(
                        "a client metrics subscription needs a name".into(),
                    ));
                }
                if configs.is_empty() {
                    return Ok(match self.client_metrics.remove(name) {
                        Some(_) => Applied::Done,
                        None => Applied::NoChange,
                    });
                }
                let slot = self.client_metrics.entry(name.clone()).or_default();
                Ok(replace(slot, configs))
            }
            Command::AlterClientQuotas {
                entity,
                set,
                remove,
            } => self.alter_client_quotas(entity, set, remove),
            Command::CreateAcls(acls) => {
                let before = self.acls.len();
                for acl in acls {
                    self.acls.insert(acl.clone());
                }
                Ok(if self.acls.len() == before {
                    Applied::NoChange
                } else {
                    Applied::Done
                })
            }
            Command::DeleteAcls(acls) => {
                let before = self.acls.len();
                for acl in acls {
                    self.acls.remove(acl);
                }
                Ok(if self.acls.len() == before {
                    Applied::NoChange
                } else {
                    Applied::Done
                })
            }
            Command::AlterScramCredential {
                user,
                mechanism,
                credential,
            } => self.alter_scram_credential(user, *mechanism, credential.as_ref()),
            Command::AlterIsr {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_isr(
                topic,
                *partition,
                *leader,
                *leader_epoch,
                *partition_epoch,
                isr,
            ),
            Command::ElectLeader {
                topic,
                partition,
                election,
            } => self.elect_leader(topic, *partition, *election),
            Command::Reassign {
                topic,
                partition,
                target,
            } => self.reassign(topic, *partition, target.as_deref()),
            Command::AllocateProducerIds { count } => {
                if *count <= 0 {
                    return Err(Rejection::Invalid(format!(
                        "producer id block size must be positive, got {count}"
                    )));
                }
                let first = self.next_producer_id;
                self.next_producer_id = first.checked_add(*count).ok_or_else(|| {
                    Rejection::Invalid(format!(
                        "producer ids exhausted: {first} + {count} overflows"
                    ))
                })?;
                Ok(Applied::ProducerIds(first))
            }
        }
    }

    fn init_cluster(&mut self, cluster_id: &str) -> Applied {
        if self.cluster_id.is_some() {
            return Applied::NoChange;
        }
        self.cluster_id = Some(cluster_id.to_owned());
        Applied::Done
    }

    fn register_broker(&mut self, info: &BrokerInfo) -> Applied {
        let mut info = info.clone();
        info.fenced = false;
        if self.brokers.get(&info.id) == Some(&info) {
            return Applied::NoChange;
        }
        // A new incarnation while the old one still counts as live: the old
        // process is gone (restart faster than the session timeout), and its
        // leaderships and ISR memberships must not carry over under the same
        // leader epochs, since the new process may have lost an unsynced tail.
        if let Some(old) = self.brokers.get(&info.id) {
            if !old.fenced && old.incarnation != info.incarnation {
                self.fence(info.id);
            }
        }
        let id = info.id;
        self.brokers.insert(id, info);
        // A new incarnation (or an unfenced one) is no longer shutting down.
        self.shutting_down.remove(&id);
        // Offline partitions this broker replicates can come back: it leads
        // where it is the surviving ISR member (or where unclean election is on).
        self.update_partitions(
            |p| p.leader == NO_LEADER && p.replicas.contains(&id),
            |state, p| {
                let unclean = state.unclean;
                election::elect_if_needed(p, &|b| state.is_eligible(b), unclean);
            },
        );
        Applied::Done
    }

    /// Fences `id` (registered): drops it from every ISR but keeps a last
    /// member, and re-elects leaders where it led.
    fn fence(&mut self, id: BrokerId) {
        if let Some(b) = self.brokers.get_mut(&id) {
            b.fenced = true;
        }
        self.shutting_down.remove(&id);
        self.update_partitions(
            |p| p.replicas.contains(&id),
            |state, p| {
                election::shrink_isr_without(p, id);
                election::elect_if_needed(p, &|b| state.is_eligible(b), state.unclean);
            },
        );
    }

    /// Marks `id` (registered, unfenced) as shutting down and moves it out of
    /// every partition's way ([`election::move_off_for_shutdown`]). Applied
    /// again (a retried request) it moves whatever it still can.
    fn controlled_shutdown(&mut self, id: BrokerId) -> Applied {
        let newly = self.shutting_down.insert(id);
        let before = self.applied_digest(id);
        self.update_partitions(
            |p| p.replicas.contains(&id),
            |state, p| election::move_off_for_shutdown(p, id, &|b| state.is_eligible(b)),
        );
        if newly || before != self.applied_digest(id) {
            Applied::Done
        } else {
            Applied::NoChange
        }
    }

    /// Leader epochs and ISRs of the partitions `id` replicates (to tell
    /// whether a command changed any).
    fn applied_digest(&self, id: BrokerId) -> Vec<(i32, i32)> {
        self.topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.replicas.contains(&id))
            .map(|p| (p.leader_epoch, p.partition_epoch))
            .collect()
    }

    /// Runs `change` on a copy of every partition `select` picks, and stores
    /// the copies that differ with their epochs bumped.
    fn update_partitions(
        &mut self,
        select: impl Fn(&PartitionMeta) -> bool,
        change: impl Fn(&ChangeContext<'_>, &mut PartitionMeta),
    ) {
        let mut updates: Vec<(String, usize, PartitionMeta)> = Vec::new();
        for (name, topic) in &self.topics {
            let ctx = ChangeContext {
                state: self,
                unclean: self.unclean_election_enabled(name),
            };
            for (index, before) in topic.partitions.iter().enumerate() {
                if !select(before) {
                    continue;
                }
                let mut after = before.clone();
                change(&ctx, &mut after);
                if let Some(after) = election::finish(before, after) {
                    updates.push((name.clone(), index, after));
                }
            }
        }
        for (name, index, after) in updates {
            if let Some(slot) = self
                .topics
                .get_mut(&name)
                .and_then(|t| Arc::make_mut(t).partitions.get_mut(index))
            {
                *slot = after;
            }
        }
    }

    fn create_topic(
        &mut self,
        name: &str,
        id: uuid::Uuid,
        placement: &Placement,
        configs: &BTreeMap<String, String>,
    ) -> Result<Applied, Rejection> {
        if self.topics.contains_key(name) {
            return Err(Rejection::TopicExists(name.to_owned()));
        }
        let partitions = match placement {
            Placement::Auto {
                partitions,
                replication_factor,
            } => {
                if *partitions < 1 {
                    return Err(Rejection::InvalidPartitions(format!(
                        "number of partitions must be at least 1, got {partitions}"
                    )));
                }
                let count = usize::try_from(*partitions).unwrap_or(0);
                let lists = self.auto_place(name, 0, count, i32::from(*replication_factor))?;
                lists.into_iter().map(new_partition).collect()
            }
            Placement::Manual(lists) => {
                if lists.is_empty() {
                    return Err(Rejection::InvalidPartitions(
                        "number of partitions must be at least 1, got 0".to_owned(),
                    ));
                }
                self.validate_manual(lists, 0, None)?;
                self.manual_partitions(lists)?
            }
        };
        self.topics.insert(
            name.to_owned(),
            Arc::new(TopicMeta {
                name: name.to_owned(),
                id,
                partitions,
                configs: configs.clone(),
            }),
        );
        Ok(Applied::Done)
    }

    fn create_partitions(
        &mut self,
        name: &str,
        total: i32,
        assignment: Option<&[Vec<BrokerId>]>,
    ) -> Result<Applied, Rejection> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| Rejection::UnknownTopic(name.to_owned()))?;
        let current = topic.partitions.len();
        let total_usize = usize::try_from(total).unwrap_or(0);
        if total_usize < current {
            return Err(Rejection::InvalidPartitions(format!(
                "topic '{name}' has {current} partitions; cannot shrink to {total}"
            )));
        }
        if total_usize == current {
            return Err(Rejection::InvalidPartitions(format!(
                "topic '{name}' has {current} partitions; cannot keep {total}, the count must increase"
            )));
        }
        let added = total_usize - current;
        let rf = self.replication_factor(name).unwrap_or(0);
        let new_partitions: Vec<PartitionMeta> = match assignment {
            None => {
                let rf = i32::try_from(rf).unwrap_or(i32::MAX);
                let lists = self.auto_place(name, current, added, rf)?;
                lists.into_iter().map(new_partition).collect()
            }
            Some(lists) => {
                if lists.len() != added {
                    return Err(Rejection::InvalidReplicaAssignment(format!(
                        "{added} new partitions need {added} replica assignments, got {}",
                        lists.len()
                    )));
                }
                self.validate_manual(lists, current, Some(rf))?;
                self.manual_partitions(lists)?
            }
        };
        if let Some(topic) = self.topics.get_mut(name) {
            Arc::make_mut(topic).partitions.extend(new_partitions);
        }
        Ok(Applied::Done)
    }

    /// Automatic placement of partitions `first..first + count` over the live brokers.
    fn auto_place(
        &self,
        topic: &str,
        first: usize,
        count: usize,
        replication_factor: i32,
    ) -> Result<Vec<Vec<BrokerId>>, Rejection> {
        let candidates: Vec<Candidate<'_>> = self
            .live_brokers()
            .map(|b| Candidate {
                id: b.id,
                rack: b.rack.as_deref(),
            })
            .collect();
        if replication_factor < 1 {
            return Err(Rejection::InvalidReplicationFactor(format!(
                "replication factor must be at least 1, got {replication_factor}"
            )));
        }
        let rf = usize::try_from(replication_factor).unwrap_or(usize::MAX);
        if rf > candidates.len() {
            return Err(Rejection::InvalidReplicationFactor(format!(
                "replication factor {rf} is larger than the number of available brokers ({})",
                candidates.len()
            )));
        }
        Ok(placement::place(&candidates, topic, first, count, rf))
    }

    /// Checks explicit replica lists (numbered from `first_index`): non-empty,
    /// one length (`expected_len` when given), no broker twice, all registered.
    fn validate_manual(
        &self,
        lists: &[Vec<BrokerId>],
        first_index: usize,
        expected_len: Option<usize>,
    ) -> Result<(), Rejection> {
        let expected_len = expected_len.or_else(|| lists.first().map(Vec::len));
        for (i, list) in lists.iter().enumerate() {
            let index = first_index + i;
            let label = format!("partition {index}");
            validate_replica_list(self, list, &label)?;
            if Some(list.len()) != expected_len {
                return Err(Rejection::InvalidReplicaAssignment(format!(
                    "partition {index} has {} replicas but the replication factor is {}",
                    list.len(),
                    expected_len.unwrap_or(0)
                )));
            }
        }
        Ok(())
    }

    /// Partitions for validated explicit lists: the ISR is the live replicas,
    /// led by the first; a list with no live replica is refused.
    fn manual_partitions(&self, lists: &[Vec<BrokerId>]) -> Result<Vec<PartitionMeta>, Rejection> {
        lists
            .iter()
            .enumerate()
            .map(|(index, list)| {
                let isr: Vec<BrokerId> =
                    list.iter().copied().filter(|&b| self.is_live(b)).collect();
                let leader = *isr.first().ok_or_else(|| {
                    Rejection::InvalidReplicaAssignment(format!(
                        "every replica of partition {index} ({}) is fenced",
                        join(list)
                    ))
                })?;
                Ok(PartitionMeta {
                    replicas: list.clone(),
                    isr,
                    leader,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding: Vec::new(),
                    removing: Vec::new(),
                })
            })
            .collect()
    }

    fn alter_scram_credential(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
        credential: Option<&ScramCredential>,
    ) -> Result<Applied, Rejection> {
        if user.is_empty() {
            return Err(Rejection::UnacceptableCredential(
                "the user name is empty".into(),
            ));
        }
        let Some(credential) = credential else {
            let removed = self
                .scram_credentials
                .get_mut(user)
                .and_then(|by_mechanism| by_mechanism.remove(&mechanism));
            if removed.is_none() {
                return Err(Rejection::NotFound(format!(
                    "user '{user}' has no {} credential",
                    mechanism.sasl_name()
                )));
            }
            if self
                .scram_credentials
                .get(user)
                .is_some_and(BTreeMap::is_empty)
            {
                self.scram_credentials.remove(user);
            }
            return Ok(Applied::Done);
        };
        if !ScramMechanism::ITERATIONS.contains(&credential.iterations) {
            return Err(Rejection::UnacceptableCredential(format!(
                "{} iterations is outside {}..={}",
                credential.iterations,
                ScramMechanism::ITERATIONS.start(),
                ScramMechanism::ITERATIONS.end()
            )));
        }
        let stored = self.scram_credentials.entry(user.to_string()).or_default();
        if stored.get(&mechanism) == Some(credential) {
            return Ok(Applied::NoChange);
        }
        stored.insert(mechanism, credential.clone());
        Ok(Applied::Done)
    }

    fn alter_client_quotas(
        &mut self,
        entity: &QuotaEntity,
        set: &BTreeMap<String, QuotaValue>,
        remove: &[String],
    ) -> Result<Applied, Rejection> {
        if entity.user.is_none() && entity.client_id.is_none() {
            return Err(Rejection::Invalid(
                "a quota entity needs a user, a client id or both".into(),
            ));
        }
        for key in set.keys().chain(remove) {
            if !QUOTA_KEYS.contains(&key.as_str()) {
                return Err(Rejection::Invalid(format!(
                    "unknown quota key '{key}' (known: {})",
                    QUOTA_KEYS.join(", ")
                )));
            }
        }
        if let Some((key, value)) = set.iter().find(|(_, v)| !(v.0.is_finite() && v.0 > 0.0)) {
            return Err(Rejection::Invalid(format!(
                "quota {key} must be a positive number, got {}",
                value.0
            )));
        }
        let before = self.client_quotas.get(entity).cloned().unwrap_or_default();
        let mut after = before.clone();
        for key in remove {
            after.remove(key);
        }
        after.extend(set.iter().map(|(k, v)| (k.clone(), *v)));
        if after == before {
            return Ok(Applied::NoChange);
        }
        if after.is_empty() {
            self.client_quotas.remove(entity);
        } else {
            self.client_quotas.insert(entity.clone(), after);
        }
        Ok(Applied::Done)
    }

    fn set_broker_configs(
        &mut self,
        resource: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<Applied, Rejection> {
        if !resource.is_empty() && resource.parse::<BrokerId>().is_err() {
            return Err(Rejection::Invalid(format!(
                "broker config resource must be a broker id or empty, got '{resource}'"
            )));
        }
        if configs.is_empty() {
            return Ok(match self.broker_configs.remove(resource) {
                Some(old) if !old.is_empty() => Applied::Done,
                _ => Applied::NoChange,
            });
        }
        let slot = self.broker_configs.entry(resource.to_owned()).or_default();
        Ok(replace(slot, configs))
    }

    /// The partition, or UnknownTopic naming `topic-partition`.
    fn partition_ref(&self, topic: &str, partition: i32) -> Result<&PartitionMeta, Rejection> {
        self.partition(topic, partition)
            .ok_or_else(|| Rejection::UnknownTopic(format!("{topic}-{partition}")))
    }

    /// Stores `after` (epochs set by [`election::finish`]) or reports no change.
    fn store(&mut self, topic: &str, partition: i32, after: PartitionMeta) -> Applied {
        let Some(slot) = usize::try_from(partition).ok().and_then(|i| {
            Arc::make_mut(self.topics.get_mut(topic)?)
                .partitions
                .get_mut(i)
        }) else {
            return Applied::NoChange;
        };
        match election::finish(slot, after) {
            Some(after) => {
                *slot = after;
                Applied::Done
            }
            None => Applied::NoChange,
        }
    }

    fn alter_isr(
        &mut self,
        topic: &str,
        partition: i32,
        leader: BrokerId,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[BrokerId],
    ) -> Result<Applied, Rejection> {
        let tp = format!("{topic}-{partition}");
        let p = self.partition_ref(topic, partition)?;
        if leader == NO_LEADER || leader != p.leader {
            return Err(Rejection::NotLeader(format!(
                "broker {leader} is not the leader of {tp} (the leader is {})",
                p.leader
            )));
        }
        if leader_epoch != p.leader_epoch {
            return Err(Rejection::StaleEpoch(format!(
                "{tp} leader epoch {leader_epoch} is not the current {}",
                p.leader_epoch
            )));
        }
        if partition_epoch != p.partition_epoch {
            return Err(Rejection::StaleEpoch(format!(
                "{tp} partition epoch {partition_epoch} is not the current {}",
                p.partition_epoch
            )));
        }
        if !isr.contains(&leader) {
            return Err(Rejection::Invalid(format!(
                "new ISR [{}] of {tp} does not contain its leader {leader}",
                join(isr)
            )));
        }
        for (i, &member) in isr.iter().enumerate() {
            // A leader in controlled shutdown proposes itself with the follower
            // that caught up; the hand-over below then moves the partition.
            if member != leader && self.shutting_down.contains(&member) {
                return Err(Rejection::Invalid(format!(
                    "new ISR of {tp} names broker {member}, which is shutting down"
                )));
            }
            if isr[..i].contains(&member) {
                return Err(Rejection::Invalid(format!(
                    "new ISR of {tp} lists broker {member} more than once"
                )));
            }
            if !p.replicas.contains(&member) {
                return Err(Rejection::Invalid(format!(
                    "new ISR of {tp} names broker {member}, which is not a replica"
                )));
            }
            if !self.is_live(member) {
                return Err(Rejection::Invalid(format!(
                    "new ISR of {tp} names broker {member}, which is fenced"
                )));
            }
        }
        let mut after = p.clone();
        after.isr = isr.to_vec();
        election::complete_reassignment_if_ready(&mut after, &|b| self.is_eligible(b));
        if self.shutting_down.contains(&leader) {
            election::move_off_for_shutdown(&mut after, leader, &|b| self.is_eligible(b));
        }
        Ok(self.store(topic, partition, after))
    }

    fn elect_leader(
        &mut self,
        topic: &str,
        partition: i32,
        kind: Election,
    ) -> Result<Applied, Rejection> {
        let tp = format!("{topic}-{partition}");
        let p = self.partition_ref(topic, partition)?;
        let mut after = p.clone();
        match kind {
            Election::Preferred => {
                let Some(&preferred) = p.replicas.first() else {
                    return Err(Rejection::NoEligibleLeader(format!("{tp} has no replicas")));
                };
                if p.leader == preferred {
                    return Ok(Applied::NoChange);
                }
                if !p.isr.contains(&preferred) {
                    return Err(Rejection::NoEligibleLeader(format!(
                        "preferred replica {preferred} of {tp} is not in the ISR [{}]",
                        join(&p.isr)
                    )));
                }
                if !self.is_live(preferred) {
                    return Err(Rejection::NoEligibleLeader(format!(
                        "preferred replica {preferred} of {tp} is fenced"
                    )));
                }
                if self.in_controlled_shutdown(preferred) {
                    return Err(Rejection::NoEligibleLeader(format!(
                        "preferred replica {preferred} of {tp} is shutting down"
                    )));
                }
                after.leader = preferred;
            }
            Election::Unclean => {
                if p.leader != NO_LEADER && self.is_live(p.leader) {
                    return Ok(Applied::NoChange);
                }
                election::elect_if_needed(&mut after, &|b| self.is_eligible(b), true);
                if after.leader == NO_LEADER {
                    return Err(Rejection::NoEligibleLeader(format!(
                        "no live replica of {tp} among [{}]",
                        join(&p.replicas)
                    )));
                }
            }
        }
        Ok(self.store(topic, partition, after))
    }

    fn reassign(
        &mut self,
        topic: &str,
        partition: i32,
        target: Option<&[BrokerId]>,
    ) -> Result<Applied, Rejection> {
        let tp = format!("{topic}-{partition}");
        let unclean = self.unclean_election_enabled(topic);
        let p = self.partition_ref(topic, partition)?;
        let mut after = p.clone();
        match target {
            Some(target) => {
                validate_replica_list(self, target, &tp)?;
                election::start_reassignment(&mut after, target, &|b| self.is_eligible(b));
            }
            None => {
                if p.adding.is_empty() && p.removing.is_empty() {
                    return Err(Rejection::NoReassignment(tp));
                }
                let outcome =
                    election::revert_reassignment(&mut after, &|b| self.is_eligible(b), unclean);
                if outcome == Revert::NeedsUnclean && !unclean {
                    return Err(Rejection::InvalidReplicaAssignment(format!(
                        "cancelling the reassignment of {tp} needs an unclean leader election: \
                         no original replica is in the ISR"
                    )));
                }
            }
        }
        Ok(self.store(topic, partition, after))
    }
}

/// What a per-partition change may consult.
struct ChangeContext<'a> {
    state: &'a ClusterState,
    /// The topic allows unclean leader election.
    unclean: bool,
}

impl ChangeContext<'_> {
    /// Live and not shutting down: may lead or join an ISR.
    fn is_eligible(&self, broker: BrokerId) -> bool {
        self.state.is_eligible(broker)
    }
}

/// A fresh partition on `replicas`, led by the first, all in sync, epochs 0.
fn new_partition(replicas: Vec<BrokerId>) -> PartitionMeta {
    PartitionMeta {
        leader: replicas.first().copied().unwrap_or(NO_LEADER),
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
        adding: Vec::new(),
        removing: Vec::new(),
    }
}

/// One replica list: non-empty, no broker twice, every broker registered.
fn validate_replica_list(
    state: &ClusterState,
    list: &[BrokerId],
    label: &str,
) -> Result<(), Rejection> {
    if list.is_empty() {
        return Err(Rejection::InvalidReplicaAssignment(format!(
            "{label} has an empty replica list"
        )));
    }
    for (i, &b) in list.iter().enumerate() {
        if list[..i].contains(&b) {
            return Err(Rejection::InvalidReplicaAssignment(format!(
                "{label} lists broker {b} more than once"
            )));
        }
        if !state.brokers.contains_key(&b) {
            return Err(Rejection::InvalidReplicaAssignment(format!(
                "{label} names broker {b}, which is not registered"
            )));
        }
    }
    Ok(())
}

/// Replaces `slot` with `new`, reporting whether that changed anything.
fn replace(slot: &mut BTreeMap<String, String>, new: &BTreeMap<String, String>) -> Applied {
    if slot == new {
        return Applied::NoChange;
    }
    slot.clone_from(new);
    Applied::Done
}

fn join(ids: &[BrokerId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
