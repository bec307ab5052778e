//! Latency: end to end over loopback, real clients against the real server (60 Hz), all in this
//! process, the server bound to 127.0.0.1:0.
//!
//! - `ping`: a ping's round trip, from send to its pong. Expected: flat, well under a
//!   millisecond; the session answers at once rather than at the next tick. The server allows
//!   each player two messages per tick, pings included, so the pings rotate over a pool of 64
//!   idle players and each player waits (untimed) at least 10 ms between its own pings. Deltas
//!   that arrive meanwhile are read and applied on the way, as any client would.
//! - `input_to_effect`: from sending a move to receiving the first delta that acks it, i.e.
//!   whose world includes the move. Expected: about half a tick period (8.3 ms at 60 Hz: the
//!   command waits for the next tick) plus a ping, spread evenly from one ping to one tick
//!   period plus one ping. Before each send, untimed, the bench waits a varying fraction of a
//!   tick so that sends land at every phase of the tick, not always just after one. Moves
//!   alternate between heading for the middle of the world and stopping, so each one changes
//!   what the player does, and the bench checks that each "go" did move the player.
//!
//! Run: `cargo bench --bench latency`

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use futures_util::future::try_join_all;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use tickcast::client::{Client, Received};
use tickcast::game::motion::MAX_AXIS;
use tickcast::{Config, Server};

const TICK_HZ: u32 = 60;

/// Players taking turns to ping: enough that round trips back to back stay within each
/// player's allowance (two messages per tick, 120/s at 60 Hz) without much waiting.
const PINGERS: usize = 64;

/// The least time between two pings from one player: 100/s, under the 120/s allowance.
const PING_GAP: Duration = Duration::from_millis(10);

/// Longer than anything a healthy loopback server takes; reached only if a message is lost
/// (rate-limited, or the connection closed), to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(5);

/// The golden ratio's fractional part: successive multiples of it spread evenly over [0, 1).
const GOLDEN: f64 = 0.618_033_988_749_895;

fn latency(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let server = rt.block_on(Loopback::start()).expect("server on loopback");
    let mut group = c.benchmark_group("latency");

    // Connected on first use, so that running only the other benchmark does not pay for it.
    let mut pingers = None;
    group.bench_function("ping", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                if pingers.is_none() {
                    pingers = Some(Pingers::connect(&server.url).await?);
                }
                pingers.as_mut().context("just connected")?.pings(iters).await
            })
            .expect("ping round trips")
        })
    });
    if let Some(pingers) = pingers {
        rt.block_on(pingers.close()).expect("pingers close");
    }

    let mut mover = rt.block_on(Mover::connect(&server)).expect("mover connects");
    // Some 17 ms an iteration: linear sampling would need thousands of them. From here on
    // every sample runs the same number of iterations.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("input_to_effect", |b| {
        b.iter_custom(|iters| rt.block_on(mover.moves(iters)).expect("moves acked"))
    });
    group.finish();
    rt.block_on(async {
        mover.client.close().await?;
        server.stop().await
    })
    .expect("clean shutdown");
}

/// The server, running on its own task.
struct Loopback {
    url: String,
    tick_period: Duration,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Loopback {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("bind loopback")?;
        let config = Config {
            tick_hz: TICK_HZ,
            seed: Some(1),
            ..Config::defaults()
        };
        let tick_period = Duration::from_secs(1) / TICK_HZ;
        let server = Server::new(listener, config);
        let url = format!("ws://{}/ws", server.local_addr()?);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Ok(Self {
            url,
            tick_period,
            shutdown,
            task,
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        timeout(Duration::from_secs(10), self.task)
            .await
            .context("server did not stop")??
    }
}

/// Idle players that take turns to ping.
struct Pingers {
    clients: Vec<Pinger>,
    next: usize,
}

struct Pinger {
    client: Client,
    last_ping: Instant,
    nonce: u32,
}

impl Pingers {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let joins = (0..PINGERS).map(|i| async move {
            let mut client = Client::connect(url, &format!("pinger{i}")).await?;
            until_snapshot(&mut client).await?;
            anyhow::Ok(Pinger {
                client,
                last_ping: Instant::now(),
                nonce: 0,
            })
        });
        let clients = try_join_all(joins).await.context("connect the pingers")?;
        Ok(Self { clients, next: 0 })
    }

    /// Times `iters` ping round trips.
    async fn pings(&mut self, iters: u64) -> anyhow::Result<Duration> {
        // Read through the deltas that piled up while criterion was busy between calls: a pong
        // comes after everything the server sent before it.
        for pinger in &mut self.clients {
            pinger.ping().await?;
        }
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            let turn = self.next;
            self.next = (turn + 1) % self.clients.len();
            let pinger = &mut self.clients[turn];
            tokio::time::sleep_until((pinger.last_ping + PING_GAP).into()).await;
            let start = Instant::now();
            pinger.ping().await?;
            spent += start.elapsed();
        }
        Ok(spent)
    }

    async fn close(self) -> anyhow::Result<()> {
        try_join_all(self.clients.into_iter().map(|p| p.client.close())).await?;
        Ok(())
    }
}

impl Pinger {
    /// Sends a ping and waits for its pong.
    async fn ping(&mut self) -> anyhow::Result<()> {
        self.nonce = self.nonce.wrapping_add(1);
        self.last_ping = Instant::now();
        self.client.send_ping(self.nonce).await?;
        let nonce = self.nonce;
        let client = &mut self.client;
        let pong = async {
            loop {
                match client.recv().await? {
                    Received::Pong { pong, .. } if pong.nonce == nonce => return anyhow::Ok(()),
                    _ => {}
                }
            }
        };
        timeout(PATIENCE, pong).await.context("no pong: rate-limited?")?
    }
}

/// The player whose moves are timed.
struct Mover {
    client: Client,
    tick_period: Duration,
    /// The middle of the world's x axis, in position steps.
    middle_x: u32,
    /// Whether the player's last acked move was a "go" (else it is standing still).
    moving: bool,
    /// Counts sends, to spread them over the tick's phase.
    sends: u64,
}

impl Mover {
    async fn connect(server: &Loopback) -> anyhow::Result<Self> {
        let mut client = Client::connect(&server.url, "mover").await?;
        until_snapshot(&mut client).await?;
        let schema = client.schema();
        let middle_x = schema.width * schema.scale / 2;
        Ok(Self {
            client,
            tick_period: server.tick_period,
            middle_x,
            moving: false,
            sends: 0,
        })
    }

    /// Times `iters` moves, each from its send to the delta that acks it.
    async fn moves(&mut self, iters: u64) -> anyhow::Result<Duration> {
        // Stand still and read through what piled up since the last call, untimed.
        let seq = self.client.send_move(0, 0).await?;
        self.until_ack(seq).await?;
        self.moving = false;
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            tokio::time::sleep(self.next_phase()).await;
            let x0 = self.x()?;
            let go = !self.moving;
            // Toward the middle, so a "go" never pushes against a wall.
            let full = i8::try_from(MAX_AXIS).expect("a full move fits an i8");
            let dx = match (go, x0 < self.middle_x) {
                (false, _) => 0,
                (true, true) => full,
                (true, false) => -full,
            };
            let start = Instant::now();
            let seq = self.client.send_move(dx, 0).await?;
            self.until_ack(seq).await?;
            spent += start.elapsed();
            ensure!(
                !go || self.x()? != x0,
                "move {seq} was acked but the player did not move"
            );
            self.moving = go;
        }
        Ok(spent)
    }

    async fn until_ack(&mut self, seq: u32) -> anyhow::Result<()> {
        let client = &mut self.client;
        let acked = async {
            loop {
                match client.recv().await? {
                    Received::Delta { ack, .. } | Received::Snapshot { ack, .. } if ack == seq => {
                        return anyhow::Ok(());
                    }
                    _ => {}
                }
            }
        };
        timeout(PATIENCE, acked).await.context("move never acked")?
    }

    /// The player's x in the local world, in position steps.
    fn x(&self) -> anyhow::Result<u32> {
        let world = self.client.world().context("no world yet")?;
        let me = world.get(self.client.player_id()).context("player not in its world")?;
        Ok(me.values[0])
    }

    /// How long to wait before the next send: successive waits spread evenly over one tick.
    fn next_phase(&mut self) -> Duration {
        self.sends += 1;
        self.tick_period.mul_f64((self.sends as f64 * GOLDEN).fract())
    }
}

async fn until_snapshot(client: &mut Client) -> anyhow::Result<()> {
    let snapshot = async {
        while !matches!(client.recv().await?, Received::Snapshot { .. }) {}
        anyhow::Ok(())
    };
    timeout(PATIENCE, snapshot).await.context("no snapshot")?
}

criterion_group!(benches, latency);
criterion_main!(benches);
