//! Producer id allocation for InitProducerId. Ids never repeat across
//! restarts: a block of ids is reserved in `data_dir/producer_ids.json`
//! (fsynced) before any id of the block is handed out.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::errors::Error;
use crate::persist;

/// How many ids are reserved per write of the file.
pub const BLOCK_SIZE: i64 = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct Reserved {
    /// Every id below this may have been handed out already.
    reserved_up_to: i64,
}

struct State {
    next: i64,
    reserved_up_to: i64,
}

/// Hands out producer ids; persistent and thread-safe.
pub struct ProducerIdAllocator {
    path: PathBuf,
    state: Mutex<State>,
}

impl ProducerIdAllocator {
    /// Loads the reservation; allocation resumes after the last reserved block.
    pub fn open(data_dir: &Path) -> Result<ProducerIdAllocator, Error> {
        let path = data_dir.join("producer_ids.json");
        let start = persist::read_json::<Reserved>(&path)?.map_or(0, |r| r.reserved_up_to);
        Ok(ProducerIdAllocator {
            path,
            state: Mutex::new(State {
                next: start,
                reserved_up_to: start,
            }),
        })
    }

    /// The next unused producer id. Blocking when a new block must be reserved.
    pub fn allocate(&self) -> Result<i64, Error> {
        let mut state = self.state.lock();
        if state.next >= state.reserved_up_to {
            let reserved_up_to = state.next + BLOCK_SIZE;
            persist::write_json(&self.path, &Reserved { reserved_up_to })?;
            state.reserved_up_to = reserved_up_to;
        }
        let id = state.next;
        state.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.allocate().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        let mut previous = b.allocate().unwrap();
        assert!(previous > 2, "reopened allocator reused an id: {previous}");
        for _ in 0..(BLOCK_SIZE + 5) {
            let id = b.allocate().unwrap();
            assert!(id > previous, "ids must strictly increase");
            previous = id;
        }
    }
}
