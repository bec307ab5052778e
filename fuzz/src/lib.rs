//! Checks shared by the tickcast fuzz targets: how much memory a decode holds at its peak, and
//! whether an input that decoded was the one canonical encoding of its message.

#[cfg(test)]
mod seeds;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Runs `f` and returns its result together with the most heap bytes that were live at once
/// while it ran, counting only what `f` allocated (its result included).
pub fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

/// Heap bytes live now.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// The most heap bytes live at once since the current `peak_alloc` began.
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes.
///
/// The only `unsafe` in tickcast's fuzzing: a global allocator must be an `unsafe impl`. Every
/// method forwards to `System` unchanged and only adds bookkeeping on success.
struct Counting;

fn grew(by: usize) {
    let live = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: each method calls the same `System` method with the caller's arguments, so it upholds
// exactly the contract `System` does; the counters never affect the returned pointers.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Relaxed);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most heap a decode may hold per byte of input: a count is refused unless the bytes
/// left could hold that many elements of at least one byte (two for an entity), and the
/// largest element in memory is an entity or an update (40 bytes) or a schema's field.
pub const HEAP_PER_INPUT_BYTE: usize = 64;

/// Asserts that a decode of `input_len` bytes held at most [`HEAP_PER_INPUT_BYTE`] heap bytes
/// per input byte (plus a constant) at its peak: no length prefix can make a decode allocate
/// more than its input could fill.
pub fn assert_bounded_decode(peak: usize, input_len: usize) {
    let limit = 4096 + HEAP_PER_INPUT_BYTE * input_len;
    assert!(
        peak <= limit,
        "a decode of {input_len} bytes held {peak} heap bytes, over its {limit}-byte bound"
    );
}

/// The schema of one of the built-in games, chosen by a byte: arena or tanks.
pub fn schema(which: u8) -> tickcast::protocol::Schema {
    use tickcast::game::{Game, GameConfig};
    let config = GameConfig::default();
    if which % 2 == 0 {
        tickcast::game::Arena::schema(&config)
    } else {
        tickcast::game::Tanks::schema(&config)
    }
}

/// Asserts that `input`, which decoded to a message whose encoding is `canonical`, is exactly
/// that encoding: the decoders refuse anything else, non-minimal varints included.
pub fn assert_canonical(input: &[u8], canonical: &[u8]) {
    assert_eq!(input, canonical, "a decoded input is not its canonical encoding");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_counts_what_was_live_at_once() {
        let (_, peak) = peak_alloc(|| {
            drop(vec![0u8; 4000]);
            vec![0u8; 1000]
        });
        // At least the 4000 bytes; a little more if the test harness allocated meanwhile.
        assert!((4000..4500).contains(&peak), "{peak}");
    }
}
