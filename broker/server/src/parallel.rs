//! Bounded parallelism for blocking file work over many partitions (opening,
//! recovering, closing logs). That work waits on fsyncs, not on the CPU, and
//! concurrent fsyncs share the file system's journal commits, so a few dozen
//! threads finish far sooner than one even on a small machine.

use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Threads used for partition file work (opens, recoveries, closes).
pub(crate) const IO_THREADS: usize = 32;

/// Runs `f` on every item on at most `threads` threads; the results come back
/// in the order of `items`. Runs inline for a single item.
pub(crate) fn map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = threads.min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                done.lock().push((i, r));
            });
        }
    });
    let mut done = done.into_inner();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_mapped_once_in_order_on_several_threads() {
        let items: Vec<u32> = (0..1000).collect();
        // Item 0 waits for item 1: only a second thread can get there.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tx, rx) = (Mutex::new(tx), Mutex::new(rx));
        let out = map(&items, 8, |x| {
            match x {
                0 => assert!(
                    rx.lock()
                        .recv_timeout(std::time::Duration::from_secs(30))
                        .is_ok(),
                    "item 1 ran while item 0 was running"
                ),
                1 => tx.lock().send(()).unwrap(),
                _ => {}
            }
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(map(&[] as &[u32], 8, |x| *x), Vec::<u32>::new());
    }
}
