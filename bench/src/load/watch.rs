//! Watchers: a few more players in the (first) room that keep the world they are sent and count
//! its entities at every frame through the window, from a thread and runtime of their own. In
//! a room with views, that is the view a player holds, measured where a client sees it: the
//! load's bots follow the stream without keeping a world (decoding every delta would cost each
//! of them O(N) per tick), so they cannot say.
//!
//! A watcher joins where the game spawns it (arena: at random over the world) and never moves,
//! so the watchers sample the world at random places while the bots wander through their
//! views; they send nothing but a ping a second, which keeps them from the idle timeout.

use std::io;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::future::try_join_all;
use serde::Serialize;
use tickcast::client::{Client, ClientError, Received};
use tokio::time::{self, Instant, MissedTickBehavior};

use crate::server::procinfo;

/// Watchers the `load` command runs in a big world (`--world-size` or `--view-radius`): enough
/// that their mean is not one place's, few enough that keeping the whole world (without views)
/// costs the bots' process little (8 clients applying every delta at N = 2 000 is about 2 % of a
/// core).
pub const WATCHERS: usize = 8;

/// How often a watcher pings: well within the idle timeout and the rate limit.
const PING_EVERY: Duration = Duration::from_secs(1);

/// The entities the watchers held, over every frame each of them applied in the window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Held {
    /// Watchers that took part.
    pub watchers: usize,
    /// Frames counted (keyframes and deltas, all watchers).
    pub frames: u64,
    /// Mean entities held after a frame.
    pub mean: f64,
    /// The fewest any watcher held after a frame.
    pub least: usize,
    /// The most any watcher held after a frame.
    pub most: usize,
}

/// Watchers running on a thread of their own until their window ends.
pub(crate) struct Watchers {
    thread: JoinHandle<io::Result<Held>>,
}

impl Watchers {
    /// Connects `count` watchers to `url` and counts for `window`, on a new thread: on `cpu`,
    /// or on this thread's CPUs.
    pub(crate) fn start(url: String, count: usize, window: Duration, cpu: Option<usize>) -> Self {
        let thread = std::thread::spawn(move || {
            if let Some(cpu) = cpu {
                procinfo::pin_this_thread(cpu)?;
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime
                .block_on(watch_all(url, count, window))
                .map_err(io::Error::other)
        });
        Self { thread }
    }

    /// What they held; watchers that failed are logged and held nothing.
    pub(crate) async fn finish(self, log: &mut impl FnMut(&str)) -> Held {
        super::joined(self.thread, "the watchers", log).await
    }
}

/// One watcher's counts.
#[derive(Debug, Default)]
struct Count {
    frames: u64,
    entities: u64,
    least: Option<usize>,
    most: usize,
}

/// Connects every watcher, then counts until `window` has passed since the call.
async fn watch_all(url: String, count: usize, window: Duration) -> Result<Held, ClientError> {
    let until = Instant::now() + window;
    let mut clients = Vec::with_capacity(count);
    for i in 0..count {
        // Keeping the world is a client's default.
        clients.push(Client::connect(&url, &format!("load-watcher-{i}")).await?);
    }
    let counts = try_join_all(clients.into_iter().map(|client| watch(client, until))).await?;
    let frames: u64 = counts.iter().map(|c| c.frames).sum();
    let entities: u64 = counts.iter().map(|c| c.entities).sum();
    Ok(Held {
        watchers: counts.len(),
        frames,
        mean: if frames > 0 {
            entities as f64 / frames as f64
        } else {
            0.0
        },
        least: counts.iter().filter_map(|c| c.least).min().unwrap_or(0),
        most: counts.iter().map(|c| c.most).max().unwrap_or(0),
    })
}

/// Counts what one watcher holds after each frame until `until`.
async fn watch(mut client: Client, until: Instant) -> Result<Count, ClientError> {
    let mut count = Count::default();
    let mut ping = time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    for nonce in 0u32.. {
        tokio::select! {
            () = time::sleep_until(until) => break,
            _ = ping.tick() => client.send_ping(nonce).await?,
            received = client.recv() => {
                if let Received::Snapshot { .. } | Received::Delta { .. } = received?
                    && let Some(world) = client.world()
                {
                    let held = world.entities().len();
                    count.frames += 1;
                    count.entities += held as u64;
                    count.least = Some(count.least.map_or(held, |least| least.min(held)));
                    count.most = count.most.max(held);
                }
            }
        }
    }
    Ok(count)
}
