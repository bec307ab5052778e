//! What rooms cost the server when an attacker asks for many, or asks for them often: the room
//! list fetched as fast as clients can with 10 000 rooms open, rooms at 240 Hz for free, and
//! empty rooms by the thousand. Each reports the server's CPU, memory and ticks, and what a
//! player in the default room sees meanwhile (its deltas per second: 30 at the default rate).
//!
//! The attacks that open 10 000 rooms start their server with `--room-idle 10m`: creating
//! them takes seconds, and none must idle out before it is measured.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde_json::json;
use tickcast::client::Received;
use tickcast::protocol::ClientMsg;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{self, Instant};

use super::api::{Tally, create_as_admin, create_spread, loopback};
use super::{ADMIN, Attack, Outcome, hello, io, join, mib};
use crate::clients::counted::{Dial, Traffic};
use crate::clients::http1::Conn;
use crate::clients::rawws::{self, KEY, opcode};
use crate::server::process::ServerProcess;
use crate::server::procinfo;

/// Rooms opened by `room-list` and `empty-rooms`.
const MANY_ROOMS: usize = 10_000;
/// How long each attack's load is measured.
const WINDOW: Duration = Duration::from_secs(10);
/// How long `fast-rooms` creates rooms, and then how long its players have to join.
const FAST_CREATE_WITHIN: Duration = Duration::from_secs(20);
const FAST_JOIN_WITHIN: Duration = Duration::from_secs(15);

/// 10 000 rooms (created by the admin), then four clients fetch `GET /rooms` as fast as they
/// are answered for [`WINDOW`], never following a cursor (the first page is what an attacker
/// asks for again and again).
pub(super) async fn room_list(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &many_rooms_args()).await?;
    let addr = server.addr();
    let created = create_as_admin(addr, ADMIN, MANY_ROOMS).await;
    let probe = match Probe::join(&server.ws_url()).await {
        Ok(probe) => probe,
        Err(why) => return Ok(format!("the default room's player was {why}")),
    };
    time::sleep(Duration::from_secs(2)).await;
    let quiet = probe.rate_over(Duration::from_secs(3)).await;

    let pid = server.pid();
    let cpu_before = procinfo::cpu_time(pid).map_err(io(Attack::RoomList))?;
    let deltas_before = probe.deltas();
    let started = Instant::now();
    let deadline = started + WINDOW;
    let mut clients = JoinSet::new();
    for n in 2..=5 {
        clients.spawn(fetch_lists(addr, n, deadline));
    }
    let (mut requests, mut lists, mut bytes, mut answers) = (0u64, 0u64, 0u64, Tally::default());
    while let Some(done) = clients.join_next().await {
        if let Ok(fetched) = done {
            requests += fetched.requests;
            lists += fetched.lists;
            bytes += fetched.list_bytes;
            answers.merge(&fetched.answers);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procinfo::cpu_time(pid).map_err(io(Attack::RoomList))? - cpu_before;
    let deltas = (probe.deltas() - deltas_before) as f64 / seconds;
    drop(probe);
    let _ = server.stop().await;
    Ok(format!(
        "{} rooms created by the admin in {:.1} s; 4 clients GET /rooms (first page) for {} s: {:.0} requests/s \
         ({answers}), lists {:.1} MB/s, {:.0} KB each; server CPU {:.2} s/s; the default room's player: {deltas:.1} \
         deltas/s ({quiet:.1} before the load)",
        created.ids.len(),
        created.took.as_secs_f64(),
        WINDOW.as_secs(),
        requests as f64 / seconds,
        bytes as f64 / seconds / 1e6,
        bytes as f64 / lists.max(1) as f64 / 1e3,
        cpu.as_secs_f64() / seconds
    ))
}

/// What one `room-list` client got.
#[derive(Default)]
struct Fetched {
    /// Requests answered, whatever the status.
    requests: u64,
    /// Answers that were a list (200).
    lists: u64,
    /// Their bytes, head and body.
    list_bytes: u64,
    answers: Tally,
}

/// One client fetching `GET /rooms` on a kept-alive connection from 127.0.0.`from` until
/// `deadline`. The body is counted, not parsed (parsing megabytes of JSON here would take the
/// CPU the server is measured on).
async fn fetch_lists(addr: SocketAddr, from: u8, deadline: Instant) -> Fetched {
    let dial = Dial {
        source: Some(loopback(from)),
        recv_buffer: None,
    };
    let mut fetched = Fetched::default();
    let mut conn = None;
    while Instant::now() < deadline {
        let answer = async {
            let conn = match &mut conn {
                Some(conn) => conn,
                None => conn.insert(Conn::dial(addr, dial, Arc::new(Traffic::default())).await?),
            };
            conn.get("/rooms", &[]).await
        };
        match time::timeout_at(deadline, answer).await {
            Ok(Ok(response)) => {
                fetched.requests += 1;
                if response.head.status == 200 {
                    fetched.lists += 1;
                    fetched.list_bytes += (response.head.len + response.body.len()) as u64;
                }
                fetched.answers.add_status(response.head.status);
            }
            Ok(Err(_)) => {
                conn = None;
                fetched.answers.add(&Err(std::io::Error::other("failed")));
            }
            // The window ended mid-answer: not counted.
            Err(_) => break,
        }
    }
    fetched
}

/// 999 rooms without a credential asking 240 Hz (falling back to 60 Hz if that is refused),
/// from as many addresses as the budgets need, each with one idle player (a room with a
/// player ticks, and sends it every tick); then the server's ticks, overruns and CPU over [`WINDOW`], and the
/// deltas a player of the default room receives.
pub(super) async fn fast_rooms(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let addr = server.addr();
    let probe = match Probe::join(&server.ws_url()).await {
        Ok(probe) => probe,
        Err(why) => return Ok(format!("the default room's player was {why}")),
    };
    let deadline = Instant::now() + FAST_CREATE_WITHIN;
    let fast = create_spread(addr, &json!({"game": "arena", "tick_hz": 240}), 999, 2, deadline).await;
    let mut rooms: Vec<(String, u32)> = ids(&fast.rooms).map(|id| (id, 240)).collect();
    let mut made = format!("240 Hz asked: {} created ({})", rooms.len(), fast.answers);
    if let Some(refused) = fast.stopped_by.as_ref().filter(|a| a.status == 400) {
        let body = json!({"game": "arena", "tick_hz": 60});
        let slow = create_spread(addr, &body, 999, fast.next_source, deadline).await;
        made.push_str(&format!(
            " \"{}\"; 60 Hz asked instead: {} created ({})",
            refused.error(),
            slow.rooms.len(),
            slow.answers
        ));
        rooms.extend(ids(&slow.rooms).map(|id| (id, 60)));
    }
    let (players, joined) = idle_players(addr, &rooms).await;
    time::sleep(Duration::from_secs(2)).await;

    let pid = server.pid();
    let scrape_before = server.metrics().await.map_err(io(Attack::FastRooms))?;
    let cpu_before = procinfo::cpu_time(pid).map_err(io(Attack::FastRooms))?;
    let ours_before = procinfo::cpu_time(std::process::id()).map_err(io(Attack::FastRooms))?;
    let deltas_before = probe.deltas();
    let started = Instant::now();
    time::sleep(WINDOW).await;
    let seconds = started.elapsed().as_secs_f64();
    let scrape = server.metrics().await.map_err(io(Attack::FastRooms))?;
    let cpu = procinfo::cpu_time(pid).map_err(io(Attack::FastRooms))? - cpu_before;
    let ours = procinfo::cpu_time(std::process::id()).map_err(io(Attack::FastRooms))? - ours_before;
    let deltas = (probe.deltas() - deltas_before) as f64 / seconds;
    let grew = |key: &str| scrape.value(key) - scrape_before.value(key);
    let ticks = grew("tickcast_ticks_total") / seconds;
    // Every room with a player ticks; the default room has the probe.
    let expected = rooms.iter().map(|(_, hz)| f64::from(*hz)).sum::<f64>() + 30.0;
    drop(players);
    drop(probe);
    let _ = server.stop().await;
    Ok(format!(
        "{made}; {joined} idle players joined them; over {} s: {ticks:.0} ticks/s of {expected:.0} expected ({:.0} %), \
         tick overruns +{:.0}, server CPU {:.2} s/s (this client {:.2}); the default room's player: {deltas:.1} \
         deltas/s (30 expected)",
        WINDOW.as_secs(),
        ticks / expected * 100.0,
        grew("tickcast_tick_overruns_total"),
        cpu.as_secs_f64() / seconds,
        ours.as_secs_f64() / seconds
    ))
}

/// The ids of rooms as the API answered them.
fn ids(rooms: &[serde_json::Value]) -> impl Iterator<Item = String> + '_ {
    rooms.iter().filter_map(|room| Some(room["id"].as_str()?.to_owned()))
}

/// One player in each room, joined 64 at a time within [`FAST_JOIN_WITHIN`]; they stay until
/// the set is dropped. Returns them and how many were welcomed.
async fn idle_players(addr: SocketAddr, rooms: &[(String, u32)]) -> (JoinSet<()>, u64) {
    let joined = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let places = Arc::new(Semaphore::new(64));
    let mut players = JoinSet::new();
    for (i, (id, _)) in rooms.iter().enumerate() {
        let (joined, done, places) = (joined.clone(), done.clone(), places.clone());
        let path = format!("/rooms/{id}/ws");
        players.spawn(async move {
            let place = places.acquire_owned().await;
            let welcomed = time::timeout(Duration::from_secs(5), idle_join(addr, &path, &format!("idle{i}"))).await;
            drop(place);
            done.fetch_add(1, Relaxed);
            if let Ok(Ok(tcp)) = welcomed {
                joined.fetch_add(1, Relaxed);
                idle(tcp).await;
            }
        });
    }
    let deadline = Instant::now() + FAST_JOIN_WITHIN;
    while (done.load(Relaxed) as usize) < rooms.len() && Instant::now() < deadline {
        time::sleep(Duration::from_millis(100)).await;
    }
    (players, joined.load(Relaxed))
}

/// Upgrades at `path` and says hello as `name`; the socket once the welcome came.
async fn idle_join(addr: SocketAddr, path: &str, name: &str) -> std::io::Result<TcpStream> {
    let (mut tcp, status) = rawws::upgrade(addr, path, &[], Some(KEY)).await?;
    if status != 101 {
        return Err(std::io::Error::other(format!("upgrade answered {status}")));
    }
    let hello = ClientMsg::Hello(hello(name, ""));
    tcp.write_all(&rawws::frame(opcode::BINARY, true, &hello.encode(None)))
        .await?;
    match rawws::next_frame(&mut tcp).await? {
        (opcode::BINARY, _) => Ok(tcp),
        (other, _) => Err(std::io::Error::other(format!("frame {other} instead of a welcome"))),
    }
}

/// A player that only reads, as cheaply as it can: the bytes waiting every half second
/// (about 120 frames at 240 Hz: well within the socket's buffer), discarded unparsed (a frame at a time, 240 a second per room, would cost this process more CPU than
/// the server it measures); an unsolicited pong every 5 s keeps it from counting as silent.
async fn idle(mut tcp: TcpStream) {
    let pong = rawws::frame(opcode::PONG, true, b"");
    let mut buf = vec![0; 64 * 1024];
    let mut pace = time::interval(Duration::from_millis(500));
    let mut ponged = Instant::now();
    loop {
        pace.tick().await;
        loop {
            match tcp.try_read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        if ponged.elapsed() >= Duration::from_secs(5) {
            if tcp.write_all(&pong).await.is_err() {
                return;
            }
            ponged = Instant::now();
        }
    }
}

/// 10 000 empty rooms (created by the admin): RSS per room, and the server's CPU and ticks
/// over [`WINDOW`] while they wait.
pub(super) async fn empty_rooms(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &many_rooms_args()).await?;
    let pid = server.pid();
    time::sleep(Duration::from_secs(1)).await;
    let rss_before = procinfo::memory(pid).map_err(io(Attack::EmptyRooms))?.rss_kib;
    let created = create_as_admin(server.addr(), ADMIN, MANY_ROOMS).await;
    time::sleep(Duration::from_secs(2)).await;
    let rss_after = procinfo::memory(pid).map_err(io(Attack::EmptyRooms))?.rss_kib;
    let scrape_before = server.metrics().await.map_err(io(Attack::EmptyRooms))?;
    let cpu_before = procinfo::cpu_time(pid).map_err(io(Attack::EmptyRooms))?;
    let started = Instant::now();
    time::sleep(WINDOW).await;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = procinfo::cpu_time(pid).map_err(io(Attack::EmptyRooms))? - cpu_before;
    let scrape = server.metrics().await.map_err(io(Attack::EmptyRooms))?;
    let ticks = scrape.value("tickcast_ticks_total") - scrape_before.value("tickcast_ticks_total");
    let _ = server.stop().await;
    let n = created.ids.len();
    Ok(format!(
        "{n} empty rooms created by the admin in {:.1} s ({}): RSS {:.1} -> {:.1} MiB, {:.1} KiB per room; \
         over {} s while they wait: server CPU {:.3} s/s, {:.0} ticks/s",
        created.took.as_secs_f64(),
        created.answers,
        mib(rss_before),
        mib(rss_after),
        rss_after.saturating_sub(rss_before) as f64 / n.max(1) as f64,
        WINDOW.as_secs(),
        cpu.as_secs_f64() / seconds,
        ticks / seconds
    ))
}

/// A server for 10 000 rooms with an admin secret, whose rooms do not idle out meanwhile.
fn many_rooms_args() -> Vec<String> {
    vec![
        format!("--max-rooms={}", MANY_ROOMS + 1000),
        format!("--admin-secret={ADMIN}"),
        "--room-idle=10m".into(),
    ]
}

/// A player in the default room counting the deltas it receives, until dropped.
struct Probe {
    deltas: Arc<AtomicU64>,
    reader: JoinHandle<()>,
}

impl Probe {
    async fn join(url: &str) -> Result<Self, String> {
        let mut client = join(url, hello("probe", "")).await?;
        client.keep_world(false);
        let deltas = Arc::new(AtomicU64::new(0));
        let counted = deltas.clone();
        let reader = tokio::spawn(async move {
            while let Ok(received) = client.recv().await {
                if matches!(received, Received::Delta { .. }) {
                    counted.fetch_add(1, Relaxed);
                }
            }
        });
        Ok(Self { deltas, reader })
    }

    fn deltas(&self) -> u64 {
        self.deltas.load(Relaxed)
    }

    /// Deltas per second over the next `window`.
    async fn rate_over(&self, window: Duration) -> f64 {
        let before = self.deltas();
        time::sleep(window).await;
        (self.deltas() - before) as f64 / window.as_secs_f64()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
