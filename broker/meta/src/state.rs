//! [`ClusterState::apply`]: the deterministic transition function of the
//! metadata state machine, with replica placement and leader election.
//! No clocks, no randomness, no I/O: every node applies the same log and gets
//! the same state.

use crate::types::{Applied, ClusterState, Command, Rejection};

impl ClusterState {
    /// Applies one command committed at Raft log `index`. A refused command
    /// changes nothing except `applied_index`.
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<Applied, Rejection> {
        self.applied_index = index;
        let _ = command;
        todo!("state machine transitions")
    }
}
