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
//! - **Serving**: the fan-out floor with the players' side of the workload added. The other
//!   ends also send what the load's bots send (a move every 100 ms, a ping every 500 ms), and
//!   the one thread waits on epoll between ticks, reads each message as it comes and answers
//!   each ping at once. It uses mio, which is tokio's reactor without the runtime, so nothing
//!   of ours or of a runtime sits above the system calls: what the workload costs a server
//!   on epoll before it does anything of its own (the reads, the waits and the pongs are the
//!   players', as the writes are). Its cost is that thread's CPU time per frame written.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time;
use tokio_tungstenite::tungstenite::Message;

use crate::measure::procinfo;
use crate::stats::{RttStats, RttSummary};

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

/// What each player sends in the serving floor: a move every `move_every` and a ping every
/// `ping_every`, each [`MESSAGE_BYTES`] long.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// Time between a player's moves.
    pub move_every: Duration,
    /// Time between a player's pings.
    pub ping_every: Duration,
}

/// Length of a player's message in the serving floor: about a bot's move or ping as it frames
/// it (a masked frame: 6 bytes of header, then a few of payload).
pub const MESSAGE_BYTES: usize = 16;

/// The first byte of a move, a ping and a pong in the serving floor (every byte of each).
const MOVE: u8 = b'm';
const PING: u8 = b'p';
const PONG: u8 = b'q';

/// What one serving floor run measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServingFloor {
    /// Players (sockets) served.
    pub sockets: usize,
    /// Bytes per tick's write to each player.
    pub frame_bytes: usize,
    /// Tick writes that went through: the player-ticks.
    pub writes: u64,
    /// Tick writes refused because the socket's buffer was full.
    pub would_block: u64,
    /// Messages read from the players.
    pub messages: u64,
    /// Calls that read them (a call takes all that has arrived, so several messages at
    /// times).
    pub reads: u64,
    /// Pongs written, one per ping read.
    pub pongs: u64,
    /// Waits on epoll (each returns the sockets that had something to read).
    pub polls: u64,
    /// CPU time of the serving thread, in seconds.
    pub cpu_secs: f64,
    /// CPU microseconds per tick's write: the floor of a player-tick with its share of the
    /// players' traffic.
    pub us_per_player_tick: f64,
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

/// The system call a fan-out writes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriteCall {
    /// `write(2)`, what `try_write` does: the floor's.
    Write,
    /// `send(2)`, what the server's tick does for a frame alone.
    Send,
    /// `writev(2)` of the frame in two parts (an ack's few bytes, then the rest).
    Writev,
    /// `sendmsg(2)` of the same two parts, what the server's tick does for an ack and a frame.
    Sendmsg,
}

impl WriteCall {
    /// Every call, in the order `client-demo syscalls` runs them.
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
/// second for `duration`, and measures the writing thread's CPU time.
pub async fn fanout(sockets: usize, frame_bytes: usize, hz: u32, duration: Duration) -> io::Result<FanoutFloor> {
    fanout_with(&[WriteCall::Write], sockets, frame_bytes, hz, duration)
        .await
        .map(|floors| floors[0])
}

/// [`fanout`] once for each of `calls` in turn, on the same connections (so the differences
/// are the calls', not the sockets').
pub async fn fanout_with(
    calls: &[WriteCall],
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
) -> io::Result<Vec<FanoutFloor>> {
    let frame = vec![0x82; frame_bytes];
    let period = Duration::from_secs(1) / hz.max(1);
    let calls = calls.to_vec();
    let runs = on_own_thread(sockets, None, move |mut writers| {
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

/// The serving floor: the fan-out floor's writes of a `frame_bytes` frame to `sockets`
/// players `hz` times a second, for `duration`, from a thread that also reads what the
/// players send (`traffic`) and answers their pings, as a server must.
pub async fn serving(
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
    traffic: Traffic,
) -> io::Result<ServingFloor> {
    let frame = vec![0x82; frame_bytes];
    let period = Duration::from_secs(1) / hz.max(1);
    let mut floor = on_own_thread(sockets, Some(traffic), move |players| {
        serve_ticks(players, &frame, period, duration)
    })
    .await?;
    floor.frame_bytes = frame_bytes;
    floor.us_per_player_tick = per_write(floor.cpu_secs, floor.writes);
    Ok(floor)
}

/// CPU microseconds per write.
fn per_write(cpu_secs: f64, writes: u64) -> f64 {
    if writes > 0 {
        cpu_secs * 1e6 / writes as f64
    } else {
        0.0
    }
}

/// Connects `sockets` loopback pairs and runs `serve` on a thread of its own with the accepted
/// ends, while tasks here read everything sent to the other ends (and, with `traffic`, send
/// it); returns what `serve` returned.
async fn on_own_thread<T, F>(sockets: usize, traffic: Option<Traffic>, serve: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(Vec<std::net::TcpStream>) -> io::Result<T> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (accepted, others) = connect_pairs(&listener, addr, sockets).await?;
    let done = Arc::new(AtomicBool::new(false));
    let mut ends = spawn_ends(others, &done, traffic);
    // Named, so a profile can tell it from the runtime's threads.
    let thread = std::thread::Builder::new()
        .name("floor".into())
        .spawn(move || serve(accepted))?;
    let joined = tokio::task::spawn_blocking(move || thread.join()).await;
    done.store(true, Ordering::Relaxed);
    ends.shutdown().await;
    joined
        .map_err(io::Error::other)?
        .map_err(|_| io::Error::other("the serving thread panicked"))?
}

/// The players' ends: each reads all it is sent until the run is over (EOF, an error, or
/// `done` after a read) and, with `traffic`, sends its moves and pings meanwhile, the players'
/// phases spread evenly over each period, as bots started over a ramp are.
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
                let Some(traffic) = traffic else {
                    return std::future::pending().await;
                };
                let start = time::Instant::now();
                let first = |every: Duration| start + every.mul_f64(i as f64 / count as f64);
                let mut moves = time::interval_at(first(traffic.move_every), traffic.move_every);
                let mut pings = time::interval_at(first(traffic.ping_every), traffic.ping_every);
                loop {
                    let kind = tokio::select! {
                        _ = moves.tick() => MOVE,
                        _ = pings.tick() => PING,
                    };
                    if write.write_all(&[kind; MESSAGE_BYTES]).await.is_err() {
                        return;
                    }
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

/// One player of the serving floor: its socket, and how far into a message its last read
/// ended.
struct Player {
    socket: mio::net::TcpStream,
    partial: usize,
}

impl Player {
    /// Reads what has arrived, counts the messages and answers each ping with a pong at once.
    fn read(&mut self, buf: &mut [u8], floor: &mut ServingFloor) -> io::Result<()> {
        loop {
            let n = match self.socket.read(buf) {
                // The other end is gone (the run is over): nothing more to read.
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            floor.reads += 1;
            // The messages that start in this read.
            let mut at = (MESSAGE_BYTES - self.partial) % MESSAGE_BYTES;
            while at < n {
                floor.messages += 1;
                if buf[at] == PING {
                    match self.socket.write(&[PONG; MESSAGE_BYTES]) {
                        Ok(_) => floor.pongs += 1,
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(err) => return Err(err),
                    }
                }
                at += MESSAGE_BYTES;
            }
            self.partial = (self.partial + n) % MESSAGE_BYTES;
            // A read that did not fill the buffer emptied the socket, as tokio assumes on
            // epoll too: no second call to hear that there is nothing left.
            if n < buf.len() {
                return Ok(());
            }
        }
    }
}

/// The serving thread: each tick, one write to each player; until the next, waits on epoll
/// and reads (and answers) what the players send. Returns what it counted and its CPU time.
fn serve_ticks(
    sockets: Vec<std::net::TcpStream>,
    frame: &[u8],
    period: Duration,
    duration: Duration,
) -> io::Result<ServingFloor> {
    let mut poll = mio::Poll::new()?;
    let mut players = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        let mut socket = mio::net::TcpStream::from_std(socket);
        poll.registry()
            .register(&mut socket, mio::Token(i), mio::Interest::READABLE)?;
        players.push(Player { socket, partial: 0 });
    }
    let mut floor = ServingFloor {
        sockets: players.len(),
        ..ServingFloor::default()
    };
    let mut events = mio::Events::with_capacity(1024);
    let mut buf = [0; 4096];
    let cpu_before = procinfo::thread_cpu_time()?;
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < duration {
        for player in &mut players {
            match player.socket.write(frame) {
                Ok(_) => floor.writes += 1,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => floor.would_block += 1,
                Err(err) => return Err(err),
            }
        }
        next += period;
        while let Some(wait) = next.checked_duration_since(Instant::now()) {
            match poll.poll(&mut events, Some(wait)) {
                Ok(()) => floor.polls += 1,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            for event in &events {
                players[event.token().0].read(&mut buf, &mut floor)?;
            }
        }
    }
    floor.cpu_secs = procinfo::thread_cpu_time()?.saturating_sub(cpu_before).as_secs_f64();
    Ok(floor)
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
        let floor = fanout(20, 300, 30, Duration::from_millis(300)).await.unwrap();
        // About 9 ticks of 20 writes.
        assert!(floor.writes + floor.would_block >= 100, "{floor:?}");
        assert!(floor.us_per_write >= 0.0);
        let traffic = Traffic {
            move_every: Duration::from_millis(50),
            ping_every: Duration::from_millis(100),
        };
        let serving = serving(20, 300, 30, Duration::from_millis(600), traffic).await.unwrap();
        // About 18 ticks of 20 writes, and each player's 12 moves and 6 pings.
        assert!(serving.writes + serving.would_block >= 200, "{serving:?}");
        let (moves, pings) = (20 * 12, 20 * 6);
        assert!(
            (moves + pings) / 2 <= serving.messages && serving.messages <= (moves + pings) * 3 / 2,
            "{serving:?}"
        );
        assert!(
            pings / 2 <= serving.pongs && serving.pongs <= pings * 3 / 2,
            "{serving:?}"
        );
        assert!(serving.reads <= serving.messages && serving.polls > 0, "{serving:?}");
        let calls = fanout_with(&WriteCall::ALL, 20, 300, 30, Duration::from_millis(100))
            .await
            .unwrap();
        for (call, floor) in WriteCall::ALL.iter().zip(&calls) {
            assert!(floor.writes >= 20, "{call:?} wrote: {floor:?}");
        }
    }
}
