//! One bot: a player connection that moves by its [`Brain`], pings, chats (in games with a
//! chat), and counts what it sees.
//!
//! The whole bot is one task and one `select!` loop over the connection and two timers: the
//! connection's `recv` is cancel-safe, so a timer firing never loses a message, and sends
//! happen in the branch bodies, after the `recv` future is dropped. That is the shape we
//! recommend for any tickcast client.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use tickcast::client::{Client, ClientError, Received};
use tickcast::protocol::delta::ApplyError;
use tokio::sync::mpsc;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::arena::Arena;
use crate::behaviour::{Behaviour, Brain, Decision};
use crate::connect::Target;
use crate::stats::RttStats;

/// How long a stopping bot waits for the server to answer its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How often a bot says something, in games with a chat ([`crate::chat`]).
pub const CHAT_EVERY: Duration = Duration::from_secs(5);

/// What bots say, in turn.
const LINES: [&str; 4] = ["gg", "nice shot", "on my way", "glhf"];

/// What one bot is told to do.
#[derive(Debug, Clone)]
pub struct BotSpec {
    /// Its number in the swarm; its player name is `bot-<index>`.
    pub index: usize,
    /// Where it joins.
    pub target: Target,
    /// How it moves.
    pub behaviour: Behaviour,
    /// Seed of its random choices.
    pub seed: u64,
    /// Time between move commands.
    pub move_every: Duration,
    /// Time between pings.
    pub ping_every: Duration,
    /// Whether it decodes every frame and keeps the world (checking the server's checksums),
    /// or follows the stream by tick only and wanders blind (see `Client::keep_world`).
    pub keep_world: bool,
    /// Whether it takes its seat back when its connection drops or goes silent for this long
    /// (`Client::auto_resume`), or stops there.
    pub resume: Option<Duration>,
}

/// Counters every bot bumps as it goes, read once a second for the progress line. Atomics,
/// so no bot ever waits on another or on the reader.
#[derive(Debug, Default)]
pub struct Live {
    /// Bots connected right now.
    pub connected: AtomicUsize,
    /// Bots whose first connection failed.
    pub failed: AtomicUsize,
    /// Deltas applied by all bots.
    pub deltas: AtomicU64,
    /// Payload bytes received by all bots.
    pub bytes: AtomicU64,
    /// Desyncs detected by all bots.
    pub desyncs: AtomicU64,
}

/// What one bot saw; the swarm merges these into its report once every bot has stopped.
#[derive(Debug, Default)]
pub struct BotOutcome {
    /// Whether its first connection succeeded.
    pub connected: bool,
    /// Why the first connection failed, if it did (the bot then did nothing else).
    pub connect_error: Option<String>,
    /// Ping round trips.
    pub rtt: RttStats,
    /// Deltas applied.
    pub deltas: u64,
    /// Snapshots applied: one per connection, more when the server resynchronised us.
    pub snapshots: u64,
    /// Connections made (1, plus one per reconnect after a desync).
    pub connections: u64,
    /// Deltas that carried a world checksum, all of which matched (a mismatch is a desync).
    pub checksums_verified: u64,
    /// Game events received.
    pub events: u64,
    /// Chat messages sent (in games with a `chat` message: one every [`CHAT_EVERY`]).
    pub messages: u64,
    /// Matches that ended while connected.
    pub matches_ended: u64,
    /// Payload bytes received over all its connections.
    pub bytes: u64,
    /// Time spent connected.
    pub connected_for: Duration,
    /// Times its world disagreed with a delta or a checksum.
    pub desyncs: u64,
    /// How its last connection ended when it was not the bot's own choice, as `code reason`.
    pub closed: Option<String>,
    /// Seats taken back after a drop, and the connections tried for them.
    pub resumes: u64,
    /// Connections tried to take the seat back (the ones that worked included).
    pub resume_attempts: u64,
    /// For each resume: when the drop was noticed, and when the first delta after it was
    /// applied (`None` if none came before the bot stopped).
    pub resumed: Vec<(Instant, Option<Instant>)>,
}

/// Runs one bot until `stop` fires or the server ends its connection.
pub async fn run(
    spec: BotSpec,
    live: Arc<Live>,
    rtt_samples: mpsc::Sender<Duration>,
    stop: CancellationToken,
) -> BotOutcome {
    let mut out = BotOutcome::default();
    let name = format!("bot-{}", spec.index);
    let mut brain = Brain::new(spec.behaviour, spec.seed);
    let mut client = tokio::select! {
        () = stop.cancelled() => return out,
        connected = spec.target.join(&name) => match connected {
            Ok(client) => client,
            Err(err) => {
                live.failed.fetch_add(1, Relaxed);
                out.connect_error = Some(err.to_string());
                return out;
            }
        },
    };
    client.keep_world(spec.keep_world);
    client.auto_resume(spec.resume.is_some(), spec.resume);
    live.connected.fetch_add(1, Relaxed);
    out.connected = true;
    let since = Instant::now();
    loop {
        out.connections += 1;
        let mut session = Session {
            out: &mut out,
            live: &live,
            rtt_samples: &rtt_samples,
        };
        let end = session.drive(&mut client, &mut brain, &spec, &stop).await;
        out.bytes += client.bytes_received();
        match end {
            End::Stopped => {
                // Politely, so the server logs a normal leave; a server that does not answer
                // the close in time is not worth waiting for.
                let _ = time::timeout(CLOSE_GRACE, client.close()).await;
                break;
            }
            End::Desync(err) => {
                out.desyncs += 1;
                live.desyncs.fetch_add(1, Relaxed);
                tracing::warn!(bot = %name, %err, "world out of sync: reconnecting for a fresh snapshot");
                let _ = time::timeout(CLOSE_GRACE, client.close()).await;
                let reconnected = tokio::select! {
                    () = stop.cancelled() => break,
                    reconnected = spec.target.join(&name) => reconnected,
                };
                match reconnected {
                    Ok(fresh) => {
                        client = fresh;
                        client.keep_world(spec.keep_world);
                        client.auto_resume(spec.resume.is_some(), spec.resume);
                    }
                    Err(err) => {
                        out.closed = Some(format!("reconnect after desync failed: {err}"));
                        break;
                    }
                }
            }
            End::Closed(err) => {
                tracing::debug!(bot = %name, %err, "connection ended");
                out.closed = Some(close_reason(&err));
                break;
            }
        }
    }
    out.connected_for = since.elapsed();
    live.connected.fetch_sub(1, Relaxed);
    out
}

/// How one connection of a bot ended.
enum End {
    /// The swarm told the bot to stop.
    Stopped,
    /// The local world no longer matches the server's.
    Desync(ApplyError),
    /// The server closed the connection, or it failed.
    Closed(ClientError),
}

/// Sends a decision as the input fields the game has (by name: `dx`, `dy`, `aim`, `fire`).
pub async fn send_decision(client: &mut Client, d: Decision) -> Result<(), ClientError> {
    let schema = client.schema().clone();
    let named = [
        ("dx", i32::from(d.dx)),
        ("dy", i32::from(d.dy)),
        ("aim", i32::from(d.aim)),
        ("fire", i32::from(d.fire)),
    ];
    let known: Vec<_> = named
        .into_iter()
        .filter(|(name, _)| schema.input_named(name).is_some())
        .collect();
    let values = client.input_values(&known)?;
    client.send_input(&values).await.map(drop)
}

/// The counters one connection updates.
struct Session<'a> {
    out: &'a mut BotOutcome,
    live: &'a Live,
    rtt_samples: &'a mpsc::Sender<Duration>,
}

impl Session<'_> {
    /// Receives, moves and pings until the connection ends or `stop` fires.
    async fn drive(&mut self, client: &mut Client, brain: &mut Brain, spec: &BotSpec, stop: &CancellationToken) -> End {
        let arena = Arena::from_schema(client.schema());
        let me = client.player_id();
        let tick_hz = u64::from(client.welcome().tick_hz.max(1));
        let mut moves = time::interval(spec.move_every);
        let mut pings = time::interval(spec.ping_every);
        // A bot that fell behind (a busy machine) skips beats instead of bursting to catch up.
        moves.set_missed_tick_behavior(MissedTickBehavior::Skip);
        pings.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // Bots chat out of step with each other: the first line after a share of the period.
        let offset = CHAT_EVERY.mul_f64((spec.index % 10) as f64 / 10.0);
        let mut chats = time::interval_at(Instant::now() + CHAT_EVERY + offset, CHAT_EVERY);
        chats.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let chat_in_game = crate::chat::max_len(client.schema()).is_some();
        let mut nonce = 0u32;
        let mut bytes_seen = client.bytes_received();
        loop {
            let step = tokio::select! {
                () = stop.cancelled() => return End::Stopped,
                received = client.recv() => received.map(|r| self.count(r, tick_hz, spec.keep_world)),
                _ = moves.tick() => match client.world().map(|world| brain.decide(world, &arena, me)) {
                    Some(decision) => send_decision(client, decision).await,
                    None if !spec.keep_world => {
                        let (dx, dy) = brain.decide_blind();
                        send_decision(client, Decision { dx, dy, ..Decision::default() }).await
                    }
                    // Before the first snapshot there is nothing to decide on.
                    None => Ok(()),
                },
                _ = pings.tick() => {
                    nonce = nonce.wrapping_add(1);
                    client.send_ping(nonce).await
                }
                _ = chats.tick(), if chat_in_game => {
                    let line = LINES[(self.out.messages as usize + spec.index) % LINES.len()];
                    self.out.messages += 1;
                    match crate::chat::values(client.schema(), line) {
                        Some(values) => client.send_message(crate::chat::CHAT, values).await,
                        None => Ok(()),
                    }
                }
            };
            // For the live per-second figures; the outcome's total is taken at the end.
            let bytes = client.bytes_received();
            self.live.bytes.fetch_add(bytes - bytes_seen, Relaxed);
            bytes_seen = bytes;
            match step {
                Ok(()) => {}
                Err(ClientError::Desync(err)) => return End::Desync(err),
                Err(err) => return End::Closed(err),
            }
        }
    }

    fn count(&mut self, received: Received, tick_hz: u64, checked: bool) {
        match received {
            Received::Snapshot { .. } => self.out.snapshots += 1,
            Received::Delta { tick, .. } => {
                if let Some((_, first @ None)) = self.out.resumed.last_mut() {
                    *first = Some(Instant::now());
                }
                self.out.deltas += 1;
                self.live.deltas.fetch_add(1, Relaxed);
                // The server puts a checksum on every tick_hz-th tick (PROTOCOL.md), and
                // `recv` has already compared it: reaching here means it matched.
                if checked && tick % tick_hz == 0 {
                    self.out.checksums_verified += 1;
                }
            }
            Received::Pong { rtt, .. } => {
                self.out.rtt.record(rtt);
                // Only for the live progress line: if it is full, that line misses a sample.
                let _ = self.rtt_samples.try_send(rtt);
            }
            Received::Events(events) => self.out.events += events.events.len() as u64,
            Received::MatchEnded(_) => self.out.matches_ended += 1,
            Received::Resumed { attempts, took } => {
                self.out.resumes += 1;
                self.out.resume_attempts += u64::from(attempts);
                self.out.resumed.push((Instant::now() - took, None));
            }
            Received::Private { .. } | Received::Welcome { .. } => {}
        }
    }
}

/// A connection's end as the report groups it: the server's close code and reason, or how
/// the connection failed.
pub fn close_reason(err: &ClientError) -> String {
    match err {
        ClientError::Closed { code, reason } => format!("{code} {reason}"),
        ClientError::Lost(err) => format!("lost: {err}"),
        other => other.to_string(),
    }
}
