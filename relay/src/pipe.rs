//! One direction of one relayed connection: read what arrives, stamp each chunk with its
//! release time from the [`Link`], and write it out at that time, in order.
//!
//! Reading and writing run concurrently in one task, joined by a queue whose size is bounded in
//! bytes (see [`pipe`]). The end of the stream is forwarded too: after the last chunk is written,
//! the write side is shut down, so a half-close reaches the peer as it would over a network.

use std::io;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::{self, Instant};

use crate::faults::Faults;
use crate::link::Link;

/// Largest single read. A chunk is whatever one read returned, up to this.
const READ_CHUNK: usize = 16 * 1024;

/// What one direction carried, shared by every connection of a relay.
#[derive(Debug, Default)]
pub(crate) struct Carried {
    pub(crate) bytes: AtomicU64,
    pub(crate) chunks: AtomicU64,
}

/// Bytes read but not yet written out, and the chunk's due time.
struct Chunk {
    bytes: Vec<u8>,
    release: Instant,
}

/// Relays `from` to `to` through `link` until `from` ends (then shuts `to` down) or either
/// side fails.
///
/// Bound: at most `max_buffered` bytes are held between the read and the write. Overflow
/// policy: before each read the reader reserves room for a whole read; when there is none it
/// stops reading until the writer has written enough out, so the sender's TCP window fills
/// and the sender is slowed down (backpressure, as a full router queue would do, but without
/// dropping: TCP over loopback never retransmits). Nothing grows past the bound.
pub(crate) async fn pipe(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    mut link: Link,
    max_buffered: usize,
    carried: &Carried,
    peak_buffered: &AtomicU64,
    faults: &Faults,
) -> io::Result<()> {
    let budget = Semaphore::new(max_buffered);
    // Unbounded in chunks, but every chunk queued holds at least one byte of the budget.
    let (queue, mut queued) = mpsc::unbounded_channel::<Chunk>();
    let read = async {
        let queue = queue; // dropped when reading ends, which ends the writer's loop
        let want = READ_CHUNK.min(max_buffered).max(1);
        let mut buf = vec![0; want];
        loop {
            // The semaphore is never closed, so acquiring can only wait.
            if let Ok(room) = budget.acquire_many(want as u32).await {
                room.forget();
            }
            let n = from.read(&mut buf).await?;
            let read_at = Instant::now();
            budget.add_permits(want - n);
            if n == 0 {
                return Ok(());
            }
            let held = (max_buffered - budget.available_permits()) as u64;
            peak_buffered.fetch_max(held, Relaxed);
            let chunk = Chunk {
                bytes: buf[..n].to_vec(),
                release: link.release_at(read_at, n),
            };
            if queue.send(chunk).is_err() {
                return Ok(()); // the writer has failed; try_join reports its error
            }
        }
    };
    let write = async {
        while let Some(chunk) = queued.recv().await {
            // Skip the timer when the chunk is already due: at 0 ms the relay must not wait
            // for the timer wheel's next millisecond.
            if chunk.release > Instant::now() {
                time::sleep_until(chunk.release).await;
            }
            // A stall holds everything written, in order, until it ends.
            while let Some(until) = faults.stalled() {
                time::sleep_until(until).await;
            }
            to.write_all(&chunk.bytes).await?;
            budget.add_permits(chunk.bytes.len());
            carried.bytes.fetch_add(chunk.bytes.len() as u64, Relaxed);
            carried.chunks.fetch_add(1, Relaxed);
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}
