//! How much heap a decode holds at its peak: a counting global allocator (the only `unsafe` in
//! tickcast's fuzzing), and the bound every decode must keep.
//!
//! Counts are per thread, so that a measurement sees only what its own thread allocated: the
//! unit tests replay the seeds through the targets while other tests allocate beside them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The most heap a decode may hold per byte of input. A count is refused unless the bytes
/// left could hold that many elements, so what a decode reserves is proportional to its input:
/// the most per wire byte is an event (32 bytes in memory, 1 on the wire when its kind has no
/// parameters); an entity, an update or a private entry is 40 bytes for at least 2 on the
/// wire; a text read from 1 byte (an empty string) takes a 16-byte slot in its message's
/// texts, which grow by doubling. A message holds at most one reservation it has not filled
/// (the one its decode fails in), so the sum stays under this.
pub(crate) const HEAP_PER_INPUT_BYTE: usize = 64;

/// Asserts that a decode of `input_len` bytes held at most [`HEAP_PER_INPUT_BYTE`] heap bytes
/// per input byte (plus a constant) at its peak: no length prefix can make a decode allocate
/// more than its input could fill.
pub(crate) fn assert_bounded_decode(peak: usize, input_len: usize) {
    let limit = 4096 + HEAP_PER_INPUT_BYTE * input_len;
    assert!(peak <= limit, "a decode of {input_len} bytes held {peak} heap bytes, over its {limit}-byte bound");
}

/// Runs `f` and returns its result together with the most heap bytes that were live at once
/// while it ran, counting only what this thread allocated (the result included).
pub(crate) fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, usize::try_from(peak - base).unwrap_or(0))
}

thread_local! {
    /// Heap bytes this thread allocated minus those it freed (it may free what another
    /// thread allocated, hence signed).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` reached since the current `peak_alloc` began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Adds `by` (negative: freed) to this thread's live bytes (no allocation exceeds
/// `isize::MAX` bytes, so sizes fit). The counters need no destructor, so they are there for as
/// long as the thread runs; `try_with` only guards the rule.
fn count(by: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + by;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

/// The system allocator, counting live bytes.
///
/// A global allocator must be an `unsafe impl`. Every method forwards to `System` unchanged and
/// only adds bookkeeping on success.
struct Counting;

// SAFETY: each method calls the same `System` method with the caller's arguments, so it upholds
// exactly the contract `System` does; the counters never affect the returned pointers, and
// touching them does not allocate (const-initialised thread locals without a destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_counts_what_was_live_at_once_on_this_thread() {
        let (_, peak) = peak_alloc(|| {
            // Another thread's allocations are not this thread's peak.
            std::thread::spawn(|| drop(vec![0u8; 100_000])).join().unwrap();
            drop(vec![0u8; 4000]);
            vec![0u8; 1000]
        });
        // The 4000 bytes, and the little the thread handle and its result take.
        assert!((4000..4500).contains(&peak), "{peak}");
    }
}
