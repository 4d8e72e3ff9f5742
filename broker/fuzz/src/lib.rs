//! Shared by the fuzz targets: a global allocator that holds every decode to a
//! memory budget proportional to the bytes it was given.
//!
//! libFuzzer's own `-malloc_limit_mb` needs a sanitizer's allocator hooks, and
//! this build runs without a sanitizer (stable Rust, see `scripts/fuzz.sh`);
//! its `-rss_limit_mb` only sees memory that was touched, while an oversized
//! `Vec::with_capacity` on Linux is reserved but never touched. So the budget
//! is enforced here, at the allocator: while a target runs inside
//! [`within_budget`], an allocation that would take the bytes live in that
//! scope past the budget fails, and Rust turns a failed allocation into
//! "memory allocation of N bytes failed" and an abort, which libFuzzer reports
//! as a crash with the input saved. That is the same failure the broker had in
//! production (issue 9), caught before it needs gigabytes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Bytes any decode may hold regardless of its input (small fixed structures).
pub const BASE_BUDGET: usize = 256 << 10;
/// Live bytes allowed per input byte: a decoded struct is larger than its wire
/// form (a 1-byte compact array element can become a ~200-byte Rust struct),
/// but only by a constant factor.
pub const BYTES_PER_INPUT_BYTE: usize = 256;

/// Whether a budget is being enforced right now.
static ENFORCING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed since the budget was set.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// The budget in force.
static BUDGET: AtomicIsize = AtomicIsize::new(isize::MAX);

/// The system allocator with a live-bytes budget (see the module docs).
pub struct BudgetAllocator;

impl BudgetAllocator {
    /// Accounts for `size` more bytes; false when that would exceed the budget.
    fn admit(size: usize) -> bool {
        // A panic's message and backtrace are allocated after the budget was
        // spent; refusing them would turn the report into a hang in the panic
        // handler.
        if !ENFORCING.load(Ordering::Relaxed) || std::thread::panicking() {
            return true;
        }
        let size = isize::try_from(size).unwrap_or(isize::MAX);
        let live = LIVE.fetch_add(size, Ordering::Relaxed).saturating_add(size);
        if live > BUDGET.load(Ordering::Relaxed) {
            LIVE.fetch_sub(size, Ordering::Relaxed);
            // Refuse this one allocation and no more: Rust's report of the
            // failure (message, backtrace) allocates too, and a refusal there
            // would deadlock on the backtrace lock instead of aborting.
            ENFORCING.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn release(size: usize) {
        if ENFORCING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(
                isize::try_from(size).unwrap_or(isize::MAX),
                Ordering::Relaxed,
            );
        }
    }
}

// SAFETY: every method forwards to `System` with the caller's own arguments;
// the only addition is refusing (returning null, which `GlobalAlloc` allows
// for any request) when the budget is spent. The fuzz package is outside the
// root workspace and its `unsafe_code = "forbid"`: an allocator cannot be
// written without `unsafe impl`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for BudgetAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if p.is_null() {
            Self::release(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if p.is_null() {
            Self::release(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::release(layout.size());
        System.dealloc(ptr, layout);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !Self::admit(new_size - old) {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if p.is_null() {
            if new_size > old {
                Self::release(new_size - old);
            }
        } else if new_size < old {
            Self::release(old - new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: BudgetAllocator = BudgetAllocator;

/// The budget for decoding `input_len` bytes.
pub fn budget_for(input_len: usize) -> usize {
    BASE_BUDGET.saturating_add(input_len.saturating_mul(BYTES_PER_INPUT_BYTE))
}

/// Runs `f` with the bytes it may hold live capped at `budget`.
pub fn within_budget<T>(budget: usize, f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ENFORCING.store(false, Ordering::Relaxed);
        }
    }
    LIVE.store(0, Ordering::Relaxed);
    BUDGET.store(
        isize::try_from(budget).unwrap_or(isize::MAX),
        Ordering::Relaxed,
    );
    ENFORCING.store(true, Ordering::Relaxed);
    let _reset = Reset;
    f()
}

/// The API key and version in the first four bytes of `data`.
pub fn key_and_version(data: &[u8]) -> Option<(i16, i16)> {
    match data {
        [k0, k1, v0, v1, ..] => Some((
            i16::from_be_bytes([*k0, *k1]),
            i16::from_be_bytes([*v0, *v1]),
        )),
        _ => None,
    }
}
