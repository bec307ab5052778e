//! Shared test fixtures: a real server on 127.0.0.1:0 and helpers around real clients.
#![allow(dead_code, unreachable_pub)] // each test crate uses its own subset

pub mod browser;
pub mod raw;
pub mod redis;
pub mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tickcast::client::{Client, Received};
use tickcast::metrics::Metrics;
use tickcast::{Config, Server};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Long enough for anything a healthy loopback server does; only reached when a test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running server; shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start(config: Config) -> Self {
        Self::with_games(config, tickcast::Games::builtin()).await
    }

    /// A server running `games` (the built-in ones and games of a test's own).
    pub async fn with_games(config: Config, games: tickcast::Games) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let server = Server::with_games(
            listener,
            Config {
                seed: config.seed.or(Some(7)),
                ..config
            },
            games,
        );
        let addr = server.local_addr().unwrap();
        let metrics = server.metrics();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            addr,
            metrics,
            shutdown,
            task: Some(task),
        }
    }

    /// A server with the defaults at `tick_hz`.
    pub async fn at(tick_hz: u32) -> Self {
        Self::start(Config {
            tick_hz,
            ..Config::defaults()
        })
        .await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn player(&self, name: &str) -> Client {
        within(Client::connect(&self.ws_url(), name))
            .await
            .expect("player connects")
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let task = self.task.take().unwrap();
        within(task).await.expect("server task")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A match where nothing changes: no players, no orbs, so no spectator events after the first.
pub fn idle_match() -> Config {
    Config {
        orbs: 0,
        ..Config::defaults()
    }
}

/// Awaits `f`, failing the test if it takes longer than [`PATIENCE`].
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(PATIENCE, f).await.expect("timed out waiting")
}

/// Receives until the first snapshot and returns its tick.
pub async fn until_snapshot(client: &mut Client) -> u64 {
    loop {
        if let Received::Snapshot { tick, .. } = within(client.recv()).await.expect("recv") {
            return tick;
        }
    }
}

/// Receives until the local world reaches `tick`.
pub async fn until_tick(client: &mut Client, tick: u64) {
    while client.world().is_none_or(|w| w.tick() < tick) {
        within(client.recv()).await.expect("recv");
    }
}

/// An arena input (the test server's game): a direction, as sequence number `seq`.
pub fn moving(seq: u32, dx: i32, dy: i32) -> tickcast::protocol::ClientMsg {
    tickcast::protocol::ClientMsg::Input(tickcast::protocol::Input {
        seq,
        values: tickcast::protocol::InputValues::new(&[dx, dy]),
    })
}

/// `msg` as a client of arena writes it.
pub fn arena_bytes(msg: &tickcast::protocol::ClientMsg) -> Vec<u8> {
    use tickcast::game::Game;
    let schema = tickcast::game::Arena::schema(&tickcast::game::GameConfig::default());
    msg.encode(Some(&schema))
}

/// How many entities of the kind named `kind` are in `client`'s world.
pub fn count_of(client: &Client, kind: &str) -> usize {
    let Some(world) = client.world() else { return 0 };
    let schema = client.schema();
    world
        .entities()
        .iter()
        .filter(|e| schema.kind(e.kind).is_some_and(|k| k.name == kind))
        .count()
}

/// Field `name` of entity `id` in `client`'s world, by the schema's name for it.
pub fn field_of(client: &Client, id: u32, name: &str) -> Option<u32> {
    let e = client.world()?.get(id)?;
    let kind = client.schema().kind(e.kind)?;
    let i = kind.fields.iter().position(|f| f.name == name)?;
    Some(e.values[i])
}

/// Tanks: the input that turns `shooter`'s turret towards `target`'s tank and fires (`None`
/// while either is not in its world).
pub fn fire_at(shooter: &Client, target: u32) -> Option<Vec<i32>> {
    let me = shooter.player_id();
    let (ax, ay) = (field_of(shooter, me, "x")?, field_of(shooter, me, "y")?);
    let (bx, by) = (field_of(shooter, target, "x")?, field_of(shooter, target, "y")?);
    let angle = (f64::from(by) - f64::from(ay)).atan2(f64::from(bx) - f64::from(ax));
    let aim = (angle / std::f64::consts::TAU * 256.0).round().rem_euclid(256.0) as i32;
    Some(
        shooter
            .input_values(&[("aim", aim), ("fire", 1)])
            .expect("tanks' input"),
    )
}

/// Tanks: `shooter` keeps firing at `target`'s tank while `target` is read (so both stay
/// connected), until either connection ends.
pub async fn duel(mut shooter: Client, mut target: Client) {
    loop {
        tokio::select! {
            received = shooter.recv() => if received.is_err() { return },
            received = target.recv() => if received.is_err() { return } else { continue },
        }
        if let Some(values) = fire_at(&shooter, target.player_id())
            && shooter.send_input(&values).await.is_err()
        {
            return;
        }
    }
}

/// PROTOCOL.md's test vectors, by name: `name: hex` lines of its vector block.
pub fn protocol_vectors() -> serde_json::Map<String, serde_json::Value> {
    let doc = include_str!("../../PROTOCOL.md");
    let block = doc.split("```\nhello:").nth(1).expect("the vectors block");
    let block = format!("hello:{}", block.split("```").next().unwrap());
    block
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(name, hex)| (name.to_owned(), serde_json::json!(hex.trim())))
        .collect()
}

/// A room made with `POST /rooms` and `body`: the answer (its `id`, `ws`, `key`…).
pub async fn create_room(server: &TestServer, body: serde_json::Value) -> serde_json::Value {
    let res = within(
        reqwest::Client::new()
            .post(server.http_url("/rooms"))
            .json(&body)
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201, "POST /rooms {body}");
    res.json().await.unwrap()
}
