//! The serving floor: the fan-out floor's writes, and the players' side of the workload.
//!
//! Under the load's bots a server does more than write each player's frame: it reads what
//! the players send (a move every 100 ms and a ping every 500 ms from each) and answers each
//! ping at once. That work is the workload's, as the writes are. Here one thread does all of
//! it with mio, which is tokio's reactor without the runtime, so nothing of a server's own
//! sits above the system calls: no parsing, no rate limit, no simulation, no tasks. Each
//! tick it writes the frame to every player; until the next, it waits on epoll, reads each
//! message as it comes (one call per wake-up, as tokio reads) and writes a pong for each
//! ping. The other ends send [`MESSAGE_BYTES`]-byte moves and pings at the given rates
//! ([`talk`]). The cost is that thread's CPU time per frame written.
//!
//! Its other ends are tasks on the measuring process's runtime, which sleeps between ticks
//! more than the load's bots do (2 000 bots use most of a core): waking a sleeping reader
//! costs the writer more than queueing data for a busy one, so this floor's writes can cost
//! more than the server's own (BENCHMARKS.md has a profile of both).

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::time;

use super::{Placement, on_own_thread, per_write};
use crate::server::procinfo;

/// What each player sends: a move every `move_every` and a ping every `ping_every`, each
/// [`MESSAGE_BYTES`] long.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// Time between a player's moves.
    pub move_every: Duration,
    /// Time between a player's pings.
    pub ping_every: Duration,
}

/// Length of a player's message: about a bot's move or ping as it frames it (a masked frame:
/// 6 bytes of header, then a few of payload).
pub const MESSAGE_BYTES: usize = 16;

/// What one serving floor run measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ServingFloor {
    /// Players (sockets) served.
    pub sockets: usize,
    /// Bytes of each tick's write to each player.
    pub frame_bytes: usize,
    /// Tick writes that went through: the player-ticks.
    pub writes: u64,
    /// Tick writes refused because the socket's buffer was full.
    pub would_block: u64,
    /// Messages read from the players.
    pub messages: u64,
    /// Pings among them.
    pub pings: u64,
    /// Calls that read them (a call takes all that has arrived, so several messages at
    /// times).
    pub reads: u64,
    /// Pongs written: one per ping, but for a socket too full to take one (then dropped).
    pub pongs: u64,
    /// Waits on epoll, each until a socket has something to read or the next tick is due.
    pub polls: u64,
    /// CPU time of the serving thread, in seconds.
    pub cpu_secs: f64,
    /// CPU microseconds per tick's write: the floor of a player-tick with its share of the
    /// players' traffic.
    pub us_per_player_tick: f64,
}

impl ServingFloor {
    /// Two runs as one: their counts and CPU time added up.
    pub fn pooled(&self, other: &Self) -> Self {
        let (writes, cpu_secs) = (self.writes + other.writes, self.cpu_secs + other.cpu_secs);
        Self {
            writes,
            would_block: self.would_block + other.would_block,
            messages: self.messages + other.messages,
            pings: self.pings + other.pings,
            reads: self.reads + other.reads,
            pongs: self.pongs + other.pongs,
            polls: self.polls + other.polls,
            cpu_secs,
            us_per_player_tick: per_write(cpu_secs, writes),
            ..*self
        }
    }
}

/// The first byte of a move, a ping and a pong (every byte of each).
const MOVE: u8 = b'm';
const PING: u8 = b'p';
const PONG: u8 = b'q';

/// The serving floor: a `frame_bytes` frame written to each of `sockets` players `hz` times
/// a second for `duration`, from a thread that also reads what the players send (`traffic`)
/// and answers their pings, as a server must; its threads placed as `placement` says.
pub async fn serving(
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
    placement: Placement,
    traffic: Traffic,
) -> io::Result<ServingFloor> {
    let frame = vec![0x82; frame_bytes];
    let period = Duration::from_secs(1) / hz.max(1);
    on_own_thread(sockets, placement, Some(traffic), move |players| {
        serve_ticks(players, &frame, period, duration, mio::Interest::READABLE)
    })
    .await
}

/// The serving floor on this process's own thread, with its players' ends in another process
/// (`start_ends`, given the address to connect its `sockets` connections to, for instance
/// `tickcast-bench serving-floor-ends`): for instruction counts (`bench/callgrind.sh`), so that
/// a profiler run on this process counts [`serve_ticks`] and nothing of the ends, which, as the
/// load's bots, run natively elsewhere. The floor starts once all `sockets` have connected.
pub fn serving_with_ends_elsewhere(
    sockets: usize,
    frame_bytes: usize,
    hz: u32,
    duration: Duration,
    interest: mio::Interest,
    send_buffer: Option<usize>,
    start_ends: impl FnOnce(std::net::SocketAddr) -> io::Result<std::process::Child>,
) -> io::Result<ServingFloor> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut ends = start_ends(listener.local_addr()?)?;
    let mut accepted = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let (socket, _) = listener.accept()?;
        // As `connect_pairs` sets the floor's ends of its connections.
        socket.set_nodelay(true)?;
        socket.set_nonblocking(true)?;
        if let Some(bytes) = send_buffer {
            socket2::SockRef::from(&socket).set_send_buffer_size(bytes)?;
        }
        accepted.push(socket);
    }
    let frame = vec![0x82; frame_bytes];
    let period = Duration::from_secs(1) / hz.max(1);
    let floor = serve_ticks(accepted, &frame, period, duration, interest);
    // The sockets are closed: the ends read their EOF and exit.
    let _ = ends.wait();
    floor
}

/// The players' ends of [`serving_with_ends_elsewhere`], in their own process: `sockets`
/// connections to `addr`, each sending `traffic` and reading all it is sent until the floor
/// closes it.
pub async fn ends_of(addr: std::net::SocketAddr, sockets: usize, traffic: Traffic) -> io::Result<()> {
    let mut others = Vec::with_capacity(sockets);
    for _ in 0..sockets {
        let socket = tokio::net::TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        others.push(socket);
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut ends = super::spawn_ends(others, &done, Some(traffic));
    while ends.join_next().await.is_some() {}
    Ok(())
}

/// One player's end: sends its moves and pings until a write fails (the run is over). Player
/// `i` of `count` starts `i / count` of each period in, so the players' messages are spread
/// evenly, as those of bots started over a ramp are.
pub(super) async fn talk(write: &mut OwnedWriteHalf, traffic: Traffic, i: usize, count: usize) {
    let start = time::Instant::now();
    let every = |period: Duration| period.max(Duration::from_millis(1));
    let first = |period: Duration| start + every(period).mul_f64(i as f64 / count.max(1) as f64);
    let mut moves = time::interval_at(first(traffic.move_every), every(traffic.move_every));
    let mut pings = time::interval_at(first(traffic.ping_every), every(traffic.ping_every));
    loop {
        let kind = tokio::select! {
            _ = moves.tick() => MOVE,
            _ = pings.tick() => PING,
        };
        if write.write_all(&[kind; MESSAGE_BYTES]).await.is_err() {
            return;
        }
    }
}

/// Where the messages that start in a read of `n` bytes begin, when the reads before it
/// ended `partial` bytes into a message.
fn message_starts(partial: usize, n: usize) -> impl Iterator<Item = usize> {
    ((MESSAGE_BYTES - partial) % MESSAGE_BYTES..n).step_by(MESSAGE_BYTES)
}

/// One player: its socket, and how far into a message its last read ended.
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
            for at in message_starts(self.partial, n) {
                floor.messages += 1;
                if buf[at] != PING {
                    continue;
                }
                floor.pings += 1;
                match self.socket.write(&[PONG; MESSAGE_BYTES]) {
                    Ok(_) => floor.pongs += 1,
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) => return Err(err),
                }
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
/// and reads (and answers) what the players send. Never inlined, so that callgrind can count
/// it alone (`--toggle-collect=*serve_ticks*`). Each socket is registered for `interest`:
/// reading, as the floor is; reading and writing, as a tokio socket is, to measure what the
/// readiness for writing costs (every ACK that frees send buffer space is then an event).
#[inline(never)]
fn serve_ticks(
    sockets: Vec<std::net::TcpStream>,
    frame: &[u8],
    period: Duration,
    duration: Duration,
    interest: mio::Interest,
) -> io::Result<ServingFloor> {
    let mut poll = mio::Poll::new()?;
    let mut players = Vec::with_capacity(sockets.len());
    for (i, socket) in sockets.into_iter().enumerate() {
        let mut socket = mio::net::TcpStream::from_std(socket);
        poll.registry().register(&mut socket, mio::Token(i), interest)?;
        players.push(Player { socket, partial: 0 });
    }
    let mut floor = ServingFloor {
        sockets: players.len(),
        frame_bytes: frame.len(),
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
            for event in events.iter().filter(|e| e.is_readable()) {
                players[event.token().0].read(&mut buf, &mut floor)?;
            }
        }
    }
    floor.cpu_secs = procinfo::thread_cpu_time()?.saturating_sub(cpu_before).as_secs_f64();
    floor.us_per_player_tick = per_write(floor.cpu_secs, floor.writes);
    Ok(floor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_found_across_reads_split_anywhere() {
        // Three messages, read in two parts split at every point: each message is found
        // once, in the part where it starts.
        let total = 3 * MESSAGE_BYTES;
        for split in 1..total {
            let first: Vec<usize> = message_starts(0, split).collect();
            let partial = split % MESSAGE_BYTES;
            let second: Vec<usize> = message_starts(partial, total - split).map(|at| at + split).collect();
            let all: Vec<usize> = first.into_iter().chain(second).collect();
            assert_eq!(all, [0, MESSAGE_BYTES, 2 * MESSAGE_BYTES], "split at {split}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_serving_floor_reads_the_players_and_answers_every_ping() {
        let traffic = Traffic {
            move_every: Duration::from_millis(50),
            ping_every: Duration::from_millis(100),
        };
        let floor = serving(20, 300, 30, Duration::from_millis(600), Placement::Anywhere, traffic)
            .await
            .unwrap();
        // About 18 ticks of 20 writes, and each player's 12 moves and 6 pings.
        assert!(floor.writes + floor.would_block >= 200, "{floor:?}");
        assert_eq!(floor.frame_bytes, 300);
        let (moves, pings) = (20 * 12, 20 * 6);
        let sent = moves + pings;
        assert!(
            sent / 2 <= floor.messages && floor.messages <= sent * 3 / 2,
            "{floor:?}"
        );
        assert!(pings / 2 <= floor.pings && floor.pings <= pings * 3 / 2, "{floor:?}");
        // Twenty sockets that are read all along never refuse a pong.
        assert_eq!(floor.pongs, floor.pings, "{floor:?}");
        let pooled = floor.pooled(&floor);
        assert_eq!((pooled.writes, pooled.pongs), (2 * floor.writes, 2 * floor.pongs));
        assert!((pooled.us_per_player_tick - floor.us_per_player_tick).abs() < 1e-9);
    }
}
