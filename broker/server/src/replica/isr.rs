//! The ISR proposer: how a partition leader's ISR shrink or expansion
//! reaches the metadata quorum (an `AlterIsr` command). A trait, so tests and
//! brokers without a quorum can stand in for it; the
//! [`ReplicaManager`](super::ReplicaManager) decides when to propose.

use std::future::Future;
use std::pin::Pin;

use runnel_meta::{Command, MetaError, MetaNode};

/// Sends AlterIsr to the metadata quorum (a trait so tests can fake the quorum).
pub(crate) trait IsrProposer: Send + Sync + 'static {
    /// Proposes `command` (an [`Command::AlterIsr`]) and returns once applied or refused.
    fn alter_isr(
        &self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<(), MetaError>> + Send + '_>>;
}

impl IsrProposer for MetaNode {
    fn alter_isr(
        &self,
        command: Command,
    ) -> Pin<Box<dyn Future<Output = Result<(), MetaError>> + Send + '_>> {
        Box::pin(async move { self.propose(command).await.map(|_| ()) })
    }
}
