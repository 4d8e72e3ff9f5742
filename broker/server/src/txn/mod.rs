//! Transactions (issue 13): the transaction coordinator's state per
//! transactional id and its record in `__transaction_state`.
//!
//! - [`state`]: one transactional id's state machine, free of I/O.
//! - [`records`]: the record format of `__transaction_state`.
//!
//! Not wired to the broker yet: the APIs, the coordinator runtime (storage,
//! loading with leadership, markers, timeouts) come next.

pub(crate) mod records;
pub(crate) mod state;
