//! The floors of this machine: what loopback networking costs before tickcast does anything,
//! so the `load` command can state its figures as multiples of them.
//!
//! - **TCP echo RTT**: 32 bytes to an echo server and back, Nagle off. The echo server runs on
//!   its own thread and runtime, as the game server runs in its own process.
//! - **WebSocket echo RTT**: the same over tokio-tungstenite, one 32-byte binary message.
//! - **Fan-out**: one thread writes an already-framed message to N loopback TCP sockets at the
//!   tick rate with non-blocking writes (what `try_write` is), while tasks on the other ends
//!   drain them. Its cost is that thread's CPU time (`getrusage(RUSAGE_THREAD)`) divided by the
//!   writes: the syscall, the kernel's TCP send and, on loopback, the receive side's softirq
//!   work, which Linux does in the sender's context (as it does for the server's writes).
//!   Measuring one thread, rather than a child process, keeps the readers' CPU out of it.
//! - **Serving** ([`serving()`]): the fan-out floor with the players' side of the workload
//!   added: the other ends also send what the load's bots send, and the one thread reads and
//!   answers it on epoll between ticks.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use client_demo::stats::{RttStats, RttSummary};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::server::procinfo;

mod serving;

pub use serving::{MESSAGE_BYTES, ServingFloor, Traffic, ends_of, serving, serving_with_ends_elsewhere};

/// Size of an echo message: about a ping or a move.
pub const ECHO_BYTES: usize = 32;

/// Round trips not measured at the start (connection warm-up).
const WARMUP: usize = 200;

/// What one fan-out floor run measured.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FanoutFloor {
    /// Sockets written to.
    pub sockets: usize,
    /// Bytes per write (the framed message).
    pub frame_bytes: usize,
    /// Writes that went through.
    pub writes: u64,
    /// Writes refused because the socket's buffer was full (the reader fell behind).
    pub would_block: u64,
    /// CPU time of the writing thread, in seconds.
    pub cpu_secs: f64,
    /// CPU microseconds per write: the floor of one player's share of a tick.
    pub us_per_write: f64,
}

impl FanoutFloor {
    /// Two runs as one: their writes and CPU time added up.
    pub fn pooled(&self, other: &Self) -> Self {
        let (writes, cpu_secs) = (self.writes + other.writes, self.cpu_secs + other.cpu_secs);
        Self {
            writes,
            would_block: self.would_block + other.would_block,
            cpu_secs,
            us_per_write: per_write(cpu_secs, writes),
            ..*self
        }
    }
}

/// RTT of `rounds` 32-byte echoes over a plain loopback TCP connection.
pub async fn tcp_echo(rounds: usize) -> io::Result<RttSummary> {
    let (addr, echo) = serve_elsewhere(|listener| async move {
        let (mut tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut buf = [0; ECHO_BYTES];
        while tcp.read_exact(&mut buf).await.is_ok() {
            tcp.write_all(&buf).await?;
        }
        Ok(())
    })?;
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut stats = RttStats::new();
    let mut buf = [7; ECHO_BYTES];
    for i in 0..WARMUP + rounds {
        let sent = Instant::now();
        tcp.write_all(&buf).await?;
        tcp.read_exact(&mut buf).await?;
        if i >= WARMUP {
            stats.record(sent.elapsed());
        }
    }
    drop(tcp);
    echo.await?;
    Ok(stats.summary())
}

/// RTT of `rounds` 32-byte binary messages echoed over tokio-tungstenite on loopback.
pub async fn websocket_echo(rounds: usize) -> io::Result<RttSummary> {
    let (addr, echo) = serve_elsewhere(|listener| async move {
        let (tcp, _) = listener.accept().await?;
        tcp.set_nodelay(true)?;
        let mut ws = tokio_tungstenite::accept_async(tcp).await.map_err(io::Error::other)?;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_binary() && ws.send(msg).await.is_err() {
                break;
            }
        }
        Ok(())
    })?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
        .await
        .map_err(io::Error::other)?;
    let mut stats = RttStats::new();
    let payload = bytes::Bytes::from_static(&[7; ECHO_BYTES]);
    for i in 0..WARMUP + rounds {
        let sent = Instant::now();
        ws.send(Message::Binary(payload.clone()))
            .await
            .map_err(io::Error::other)?;
        match ws.next().await {
            Some(Ok(Message::Binary(_))) => {}
            other => return Err(io::Error::other(format!("echo answered {other:?}"))),
        }
        if i >= WARMUP {
            stats.record(sent.elapsed());
        }
    }
    let _ = ws.close(None).await;
    echo.await?;
    Ok(stats.summary())
}

/// Runs an echo server on its own thread and single-threaded runtime, as the game server runs
/// in its own process: an echo task on the client's runtime would skip the cross-thread
/// wake-up every real round trip pays, and flatter the floor. The returned future waits for
/// the server to finish (after the client closed its connection).
fn serve_elsewhere<F, Fut>(serve: F) -> io::Result<(SocketAddr, impl Future<Output = io::Result<()>>)>
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = io::Result<()>>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(async move { serve(TcpListener::from_std(listener)?).await })
    });
    let finished = async move {
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(io::Error::other)?
            .map_err(|_| io::Error::other("echo server panicked"))?
    };
    Ok((addr, finished))
}

/// Where a fan-out or serving floor's threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Placement {
    /// Wherever the scheduler puts them, as the server and the bots of an unpinned `load`.
    Anywhere,
    /// The floor's own thread on [`procinfo::SERVER_CPU`] and the players' ends (every other
    /// thread of this process) on [`procinfo::BOTS_CPU`], as `load --pin` places the server
    /// and the bots: every write then reaches a socket the other CPU reads, as the server's
    /// do.
    Apart,
}

/// The system call a fan-out writes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriteCall {
    /// std's `TcpStream::write`, what `try_write` does: the floor's. On Linux that is
    /// `send(2)` with `MSG_NOSIGNAL`, so the same call as [`WriteCall::Send`].
    Write,
    /// `send(2)` through socket2, what the server's tick does for a frame alone.
    Send,
    /// `writev(2)` of the frame in two parts (an ack's few bytes, then the rest).
    Writev,
    /// `sendmsg(2)` of the same two parts, what the server's tick does for an ack and a frame.
    Sendmsg,
}

impl WriteCall {
    /// Every call, in the order `tickcast-bench syscalls` runs them.
    pub const ALL: [WriteCall; 4] = [Self::Write, Self::Send, Self::Writev, Self::Sendmsg];

    /// Writes `frame` to `socket` once with this call.
    fn write(self, socket: &mut std::net::TcpStream, frame: &[u8]) -> io::Result<usize> {
        // An ack frame's length in front, as the tick sends it.
        let (ack, rest) = frame.split_at(frame.len().min(6));
        let parts = [io::IoSlice::new(ack), io::IoSlice::new(rest)];
        match self {
            Self::Write => socket.write(frame),
            Self::Send => socket2::SockRef::from(&*socket).send(frame),
            Self::Writev => socket.write_vectored(&parts),
            Self::Sendmsg => socket2::SockRef::from(&*socket).send_vectored(&parts),
        }
    }
}

/// Writes a `frame_bytes` message to each of `sockets` loopback connections `hz` times a
/// second for `duration`, its threads placed as `placement` says, and measures the writing
/// thread's CPU time.
pub async fn fanout(
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
    placement: Placement,
) -> io::Result<FanoutFloor> {
    let run = fanout_runs(&[WriteCall::Write], sockets, frame_bytes, hz, duration, placement);
    run.await.map(|floors| floors[0])
}

/// [`fanout`] once for each of `calls` in turn, on the same connections (so the differences
/// are the calls', not the sockets'), its threads wherever the scheduler puts them.
pub async fn fanout_with(
    calls: &[WriteCall],
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
) -> io::Result<Vec<FanoutFloor>> {
    fanout_runs(calls, sockets, frame_bytes, hz, duration, Placement::Anywhere).await
}

/// [`fanout_with`], its threads placed as `placement` says.
async fn fanout_runs(
    calls: &[WriteCall],
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
    placement: Placement,
) -> io::Result<Vec<FanoutFloor>> {
    let frame = vec![0x82; frame_bytes];
    let period = Duration::from_secs(1) / hz.max(1);
    let calls = calls.to_vec();
    let runs = on_own_thread(sockets, placement, None, move |mut writers| {
        calls
            .into_iter()
            .map(|call| write_ticks(&mut writers, call, &frame, period, duration))
            .collect::<io::Result<Vec<_>>>()
    })
    .await?;
    Ok(runs
        .into_iter()
        .map(|(writes, would_block, cpu)| {
            let cpu_secs = cpu.as_secs_f64();
            FanoutFloor {
                sockets,
                frame_bytes,
                writes,
                would_block,
                cpu_secs,
                us_per_write: per_write(cpu_secs, writes),
            }
        })
        .collect())
}

/// CPU microseconds per write.
pub(crate) fn per_write(cpu_secs: f64, writes: u64) -> f64 {
    if writes > 0 {
        cpu_secs * 1e6 / writes as f64
    } else {
        0.0
    }
}

/// Connects `sockets` loopback pairs and runs `serve` on a thread of its own with the accepted
/// ends, while tasks here read everything sent to the other ends (and, with `traffic`, send
/// it), the threads placed as `placement` says; returns what `serve` returned.
async fn on_own_thread<T, F>(sockets: usize, placement: Placement, traffic: Option<Traffic>, serve: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(Vec<std::net::TcpStream>) -> io::Result<T> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (accepted, others) = connect_pairs(&listener, addr, sockets).await?;
    let done = Arc::new(AtomicBool::new(false));
    // Until the run is over: the runtime's threads, which run the readers, and the thread
    // below until it moves itself.
    let readers_apart = match placement {
        Placement::Apart => Some(procinfo::PinnedProcess::to(procinfo::BOTS_CPU)?),
        Placement::Anywhere => None,
    };
    let mut ends = spawn_ends(others, &done, traffic);
    // Named, so a profile can tell it from the runtime's threads.
    let thread = std::thread::Builder::new().name("floor".into()).spawn(move || {
        if placement == Placement::Apart {
            procinfo::pin_this_thread(procinfo::SERVER_CPU)?;
        }
        serve(accepted)
    })?;
    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
    done.store(true, Ordering::Relaxed);
    ends.shutdown().await;
    drop(readers_apart);
    joined
        .map_err(io::Error::other)?
        .map_err(|_| io::Error::other("the floor thread panicked"))?
}

/// The players' ends: each reads all it is sent until the run is over (EOF, an error, or
/// `done` after a read) and, with `traffic`, sends its moves and pings meanwhile
/// ([`serving::talk`]).
fn spawn_ends(others: Vec<TcpStream>, done: &Arc<AtomicBool>, traffic: Option<Traffic>) -> JoinSet<()> {
    let count = others.len().max(1);
    let mut ends = JoinSet::new();
    for (i, other) in others.into_iter().enumerate() {
        let done = done.clone();
        ends.spawn(async move {
            let (mut read, mut write) = other.into_split();
            let drain = async {
                let mut buf = vec![0; 64 * 1024];
                while !done.load(Ordering::Relaxed) && matches!(read.read(&mut buf).await, Ok(n) if n > 0) {}
            };
            let talk = async {
                match traffic {
                    Some(traffic) => serving::talk(&mut write, traffic, i, count).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = drain => {}
                () = talk => {}
            }
        });
    }
    ends
}

/// `n` connected pairs: the accepted ends as non-blocking std sockets (for the writer thread)
/// and the connecting ends for the readers.
async fn connect_pairs(
    listener: &TcpListener,
    addr: SocketAddr,
    n: usize,
) -> io::Result<(Vec<std::net::TcpStream>, Vec<TcpStream>)> {
    let (mut writers, mut readers) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let (reader, accepted) = tokio::try_join!(TcpStream::connect(addr), listener.accept())?;
        let writer = accepted.0.into_std()?;
        // As the server's sockets: no coalescing, and a full buffer is WouldBlock, not a wait.
        writer.set_nodelay(true)?;
        // As the bots' (the tickcast client's): a ping right after a move is not held back
        // until the move is acknowledged.
        reader.set_nodelay(true)?;
        writer.set_nonblocking(true)?;
        writers.push(writer);
        readers.push(reader);
    }
    Ok((writers, readers))
}

/// The writer thread: one write per socket per tick. Returns (writes, would-block, CPU time).
fn write_ticks(
    sockets: &mut [std::net::TcpStream],
    call: WriteCall,
    frame: &[u8],
    period: Duration,
    duration: Duration,
) -> io::Result<(u64, u64, Duration)> {
    let (mut writes, mut would_block) = (0u64, 0u64);
    let cpu_before = procinfo::thread_cpu_time()?;
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < duration {
        for socket in sockets.iter_mut() {
            match call.write(socket, frame) {
                Ok(_) => writes += 1,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => would_block += 1,
                Err(err) => return Err(err),
            }
        }
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = procinfo::thread_cpu_time()?.saturating_sub(cpu_before);
    Ok((writes, would_block, cpu))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_floors_measure_something_plausible() {
        let tcp = tcp_echo(50).await.unwrap();
        assert_eq!(tcp.samples, 50);
        assert!(tcp.p50 > 0 && tcp.p50 <= tcp.max);
        let ws = websocket_echo(50).await.unwrap();
        assert_eq!(ws.samples, 50);
        let floor = fanout(20, 300, 30, Duration::from_millis(300), Placement::Anywhere)
            .await
            .unwrap();
        // About 9 ticks of 20 writes.
        assert!(floor.writes + floor.would_block >= 100, "{floor:?}");
        assert!(floor.us_per_write >= 0.0);
        let calls = fanout_with(&WriteCall::ALL, 20, 300, 30, Duration::from_millis(100))
            .await
            .unwrap();
        for (call, floor) in WriteCall::ALL.iter().zip(&calls) {
            assert!(floor.writes >= 20, "{call:?} wrote: {floor:?}");
        }
    }
}
