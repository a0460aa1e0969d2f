//! A global allocator for the tests that measure memory: it forwards to the system allocator
//! and counts the bytes in use across the process (each block as glibc's malloc sizes it), and
//! the allocations each thread makes. Each test binary uses one of the two counts.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, Ordering};

pub struct Counting;

static IN_USE: AtomicI64 = AtomicI64::new(0);

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The memory glibc's malloc takes for a block of `size` bytes: an 8-byte header, rounded up
/// to 16, and at least 32 (small blocks are not the size asked for: a 16-byte value takes 32).
fn block(size: usize) -> i64 {
    ((size + 8 + 15) & !15).max(32) as i64
}

/// Bytes allocated and not yet freed, process-wide, counted as glibc's malloc takes them.
pub fn bytes_in_use() -> i64 {
    IN_USE.load(Ordering::Relaxed)
}

/// Allocations (and reallocations) made by this thread so far.
pub fn allocations_here() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn counted() {
    // No count during the thread's teardown, when its slot may be gone.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; the counters are an atomic
// and a thread-local cell with no destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(block(layout.size()), Ordering::Relaxed);
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(block(layout.size()), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(block(new_size) - block(layout.size()), Ordering::Relaxed);
        counted();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
