//! The ping probe of a `load` step: one more player that only pings, from a thread and runtime
//! of its own, so that its round trips are the loaded server's and not the bots' queueing.

use std::io;
use std::time::Duration;

use client_demo::stats::{RttStats, RttSummary};
use tickcast::client::{Client, ClientError, Received};
use tokio::time::{self, Instant, MissedTickBehavior};

use crate::server::procinfo;

/// How often the probe pings: within the rate limit (60 messages a second at 30 Hz).
const PROBE_EVERY: Duration = Duration::from_millis(25);

/// How long the probe waits for a pong before it counts the ping as lost and sends the next.
const PROBE_PATIENCE: Duration = Duration::from_secs(1);

/// What a probe measured.
#[derive(Debug, Default)]
pub(super) struct Probed {
    pub(super) rtt: RttSummary,
    /// From the ping's sending to the pong's making (the server's clock is this machine's):
    /// the way there and the server's own wait.
    pub(super) there: RttSummary,
    /// From the pong's making to its arrival: the way back and the probe's own wake-up.
    pub(super) back: RttSummary,
    /// Pings not answered within [`PROBE_PATIENCE`].
    pub(super) lost: u64,
}

/// One more player in the (first) room that only pings, every [`PROBE_EVERY`] through the
/// window, from a thread and runtime of its own: the round trip a player whose own client is
/// not busy sees from the loaded server. The bots' RTTs include the bots' own queueing: N of
/// them in one runtime, on the same cores (or, pinned, the one core) as their clock.
///
/// Pinned, one probe runs on each CPU: on the server's, its round trips leave out the bots'
/// scheduling (what pinning is for) and include the server's own; on the bots', they include
/// the bots' time slices as well.
pub(super) struct Probe {
    thread: std::thread::JoinHandle<io::Result<Probed>>,
}

impl Probe {
    /// Connects and pings for `window`, on a new thread: on `cpu`, or on this thread's CPUs.
    pub(super) fn start(url: String, window: Duration, cpu: Option<usize>) -> Self {
        let thread = std::thread::spawn(move || {
            if let Some(cpu) = cpu {
                procinfo::pin_this_thread(cpu)?;
            }
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(Self::ping(url, window)).map_err(io::Error::other)
        });
        Self { thread }
    }

    /// Pings until `window` has passed; ends by then, plus at most [`PROBE_PATIENCE`].
    async fn ping(url: String, window: Duration) -> Result<Probed, ClientError> {
        let until = Instant::now() + window;
        let mut player = Client::connect(&url, "load-probe").await?;
        player.keep_world(false);
        let mut every = time::interval(PROBE_EVERY);
        // After a stall, no burst of pings the rate limit would drop.
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut rtt, mut there, mut back, mut lost) = (RttStats::new(), RttStats::new(), RttStats::new(), 0);
        for nonce in 0u32.. {
            every.tick().await;
            if Instant::now() >= until {
                break;
            }
            player.send_ping(nonce).await?;
            // Any pong will do: its round trip is its own ping's (a late one included).
            let pong = async {
                loop {
                    if let Received::Pong { rtt, pong } = player.recv().await? {
                        return Ok::<_, ClientError>((rtt, pong));
                    }
                }
            };
            match time::timeout(PROBE_PATIENCE, pong).await {
                // The first round trips warm the connection up.
                Ok(sample) if nonce >= 10 => {
                    let (sample, pong) = sample?;
                    rtt.record(sample);
                    let made = pong.server_time_us.saturating_sub(pong.client_time_us);
                    there.record(Duration::from_micros(made));
                    back.record(sample.saturating_sub(Duration::from_micros(made)));
                }
                Ok(sample) => drop(sample?),
                Err(_) => lost += 1,
            }
        }
        Ok(Probed {
            rtt: rtt.summary(),
            there: there.summary(),
            back: back.summary(),
            lost,
        })
    }

    /// What the probe measured; a probe that failed is logged and measured nothing.
    pub(super) async fn finish(self, log: &mut impl FnMut(&str)) -> Probed {
        super::joined(self.thread, "the ping probe", log).await
    }
}
