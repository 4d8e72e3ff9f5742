use super::*;

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_string(), p)
}

fn begun() -> TxnMetadata {
    let m = TxnMetadata::new("app", 100, 60_000, 0);
    m.add_partitions(100, 0, &[tp("a", 0)], 10)
        .unwrap()
        .unwrap()
}

#[test]
fn a_transaction_goes_from_empty_to_ongoing_to_prepare_to_complete() {
    let m = TxnMetadata::new("app", 100, 60_000, 0);
    assert_eq!((m.status, m.epoch), (TxnStatus::Empty, 0));
    let m = m
        .add_partitions(100, 0, &[tp("a", 0), tp("b", 1)], 10)
        .unwrap()
        .unwrap();
    assert_eq!((m.status, m.start_ms), (TxnStatus::Ongoing, 10));
    // Adding what is already there changes nothing; a new one does.
    assert_eq!(m.add_partitions(100, 0, &[tp("a", 0)], 11).unwrap(), None);
    let m = m
        .add_partitions(100, 0, &[tp("c", 2)], 12)
        .unwrap()
        .unwrap();
    assert_eq!(m.partitions.len(), 3);
    assert_eq!(
        m.start_ms, 10,
        "the transaction started with its first partition"
    );
    let m = m.end(100, 0, Outcome::Commit, 20).unwrap().unwrap();
    assert_eq!(m.status, TxnStatus::PrepareCommit);
    assert_eq!(m.marker_outcome(), Some(Outcome::Commit));
    // While markers are written, a retry waits and nothing else gets in.
    assert_eq!(
        m.end(100, 0, Outcome::Commit, 21),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        m.add_partitions(100, 0, &[tp("a", 0)], 21),
        Err(TxnError::ConcurrentTransactions)
    );
    assert!(matches!(
        m.init(60_000, None, || 999, 21),
        Err(TxnError::ConcurrentTransactions)
    ));
    let m = m.complete(30).unwrap();
    assert_eq!(m.status, TxnStatus::CompleteCommit);
    assert!(m.partitions.is_empty());
    // A late retry of the commit succeeds; an abort of it is refused.
    assert_eq!(m.end(100, 0, Outcome::Commit, 31).unwrap(), None);
    assert_eq!(
        m.end(100, 0, Outcome::Abort, 31),
        Err(TxnError::InvalidTxnState)
    );
    // The next transaction starts afresh.
    let m = m
        .add_partitions(100, 0, &[tp("b", 0)], 40)
        .unwrap()
        .unwrap();
    assert_eq!(m.partitions.len(), 1);
    assert_eq!(m.start_ms, 40);
}

#[test]
fn wrong_producer_ids_and_epochs_are_refused() {
    let m = begun();
    assert_eq!(
        m.add_partitions(101, 0, &[tp("a", 1)], 11),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        m.add_partitions(100, 1, &[tp("a", 1)], 11),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        m.end(100, 3, Outcome::Commit, 11),
        Err(TxnError::ProducerFenced)
    );
    let empty = TxnMetadata::new("app", 100, 60_000, 0);
    assert_eq!(
        empty.end(100, 0, Outcome::Commit, 1),
        Err(TxnError::InvalidTxnState)
    );
}

#[test]
fn init_bumps_the_epoch_and_fences_an_open_transaction() {
    let m = TxnMetadata::new("app", 100, 60_000, 0);
    let Ok(Init::Ready(m)) = m.init(30_000, None, || unreachable!(), 5) else {
        panic!("a new epoch")
    };
    assert_eq!((m.producer_id, m.epoch, m.timeout_ms), (100, 1, 30_000));
    let open = m.add_partitions(100, 1, &[tp("a", 0)], 6).unwrap().unwrap();
    // A new producer instance: the open transaction is aborted under a new epoch.
    let Ok(Init::Aborting(aborting)) = open.init(30_000, None, || unreachable!(), 7) else {
        panic!("the open transaction must be aborted first")
    };
    assert_eq!(
        (aborting.status, aborting.epoch),
        (TxnStatus::PrepareAbort, 2)
    );
    assert_eq!(
        aborting.partitions, open.partitions,
        "markers go to its partitions"
    );
    // The old producer is fenced.
    assert_eq!(
        aborting.end(100, 1, Outcome::Commit, 8),
        Err(TxnError::ProducerFenced)
    );
    let done = aborting.complete(9).unwrap();
    let Ok(Init::Ready(again)) = done.init(30_000, None, || unreachable!(), 10) else {
        panic!("ready once the abort completed")
    };
    assert_eq!((again.epoch, again.status), (3, TxnStatus::Empty));
    // KIP-360: the client names its id and epoch; an unknown one is a fenced producer.
    assert_eq!(
        again.init(30_000, Some((100, 1)), || unreachable!(), 11),
        Err(TxnError::ProducerFenced)
    );
    assert!(again
        .init(30_000, Some((100, 3)), || unreachable!(), 11)
        .is_ok());
    assert!(
        again
            .init(30_000, Some((100, 2)), || unreachable!(), 11)
            .is_ok(),
        "a lost answer"
    );
}

#[test]
fn an_exhausted_epoch_gets_a_new_producer_id() {
    let mut m = TxnMetadata::new("app", 100, 60_000, 0);
    m.epoch = i16::MAX - 1;
    let Ok(Init::Ready(next)) = m.init(60_000, None, || 555, 1) else {
        panic!("ready")
    };
    assert_eq!(
        (next.producer_id, next.prev_producer_id, next.epoch),
        (555, 100, 0)
    );
    assert!(next
        .init(60_000, Some((100, i16::MAX - 1)), || 556, 2)
        .is_ok());
}

#[test]
fn an_open_transaction_times_out_into_an_abort_that_fences_its_producer() {
    let m = begun();
    assert_eq!(m.deadline(), Some(10 + 60_000));
    assert_eq!(m.expire(|| unreachable!(), 60_009), None);
    let aborting = m.expire(|| unreachable!(), 60_010).unwrap();
    assert_eq!(
        (aborting.status, aborting.epoch),
        (TxnStatus::PrepareAbort, 1)
    );
    assert_eq!(aborting.deadline(), None);
    assert_eq!(
        aborting.add_partitions(100, 0, &[tp("a", 0)], 60_011),
        Err(TxnError::ProducerFenced)
    );
    let done = aborting.complete(60_020).unwrap();
    assert_eq!(done.status, TxnStatus::CompleteAbort);
    assert_eq!(done.expire(|| unreachable!(), i64::MAX), None);
}
