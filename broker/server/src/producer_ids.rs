//! Producer id allocation for InitProducerId. Ids are unique across restarts
//! and brokers: each broker takes blocks of ids from the metadata quorum
//! (`AllocateProducerIds`, committed before any id of the block is handed
//! out) and hands them out one by one.

use std::path::{Path, PathBuf};

use runnel_meta::{Applied, Command, MetaError, MetaNode};
use serde::{Deserialize, Serialize};

use crate::errors::Error;
use crate::persist;

/// How many ids one block holds.
pub(crate) const BLOCK_SIZE: i64 = 1000;

/// Name of the pre-quorum reservation file (imported once into the metadata).
pub(crate) const LEGACY_FILE: &str = "producer_ids.json";

#[derive(Debug, Serialize, Deserialize)]
struct Reserved {
    /// Every id below this may have been handed out already.
    reserved_up_to: i64,
}

/// The end of the ids a pre-quorum broker reserved in `data_dir/producer_ids.json`, if any.
pub(crate) fn read_legacy_reservation(data_dir: &Path) -> Result<Option<i64>, Error> {
    Ok(persist::read_json::<Reserved>(&legacy_path(data_dir))?.map(|r| r.reserved_up_to))
}

/// Path of the pre-quorum reservation file.
pub(crate) fn legacy_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LEGACY_FILE)
}

struct Block {
    next: i64,
    end: i64,
}

/// Hands out producer ids from blocks allocated through the metadata quorum.
pub(crate) struct ProducerIdAllocator {
    meta: MetaNode,
    // Held across the proposal so concurrent callers share one new block.
    block: tokio::sync::Mutex<Block>,
}

impl ProducerIdAllocator {
    /// An allocator with no block yet (the first call fetches one).
    pub(crate) fn new(meta: MetaNode) -> ProducerIdAllocator {
        ProducerIdAllocator {
            meta,
            block: tokio::sync::Mutex::new(Block { next: 0, end: 0 }),
        }
    }

    /// The next unused producer id.
    pub(crate) async fn allocate(&self) -> Result<i64, MetaError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            let first = match self
                .meta
                .propose(Command::AllocateProducerIds { count: BLOCK_SIZE })
                .await?
            {
                Applied::ProducerIds(first) => first,
                other => {
                    return Err(MetaError::Internal(format!(
                        "AllocateProducerIds answered {other:?}"
                    )))
                }
            };
            *block = Block {
                next: first,
                end: first + BLOCK_SIZE,
            };
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}
