//! The tick loop: the one task that owns a room's world. Each tick runs the steps the crate
//! docs list ("The tick, step by step"), in that order.
//!
//! Sessions never lock the world: an input is written to the player's input slot, which
//! keeps only the latest; frames go out from here, and a session is woken only for what
//! its socket could not take.
//!
//! Step 5 writes [`FAN_OUT_CHUNK`] players at a time, reading the way to each one's socket
//! for the whole chunk before its writes ([`super::outbox::warm`]). A room of more than
//! [`FAN_OUT_CHUNK`] players yields to the runtime after step 2, after step 4 and after each
//! chunk of step 5, so that a worker thread busy with a
//! big room still answers pings and reads inputs every fraction of a millisecond; from
//! [`PARALLEL_FAN_OUT`] players the writes are split over one task per worker thread.
//!
//! A room without players is paused: its world only changes through players, and nobody
//! would be sent a tick, so the loop waits for a join (or its idle deadline) with no timer
//! at all. Ticks fall at a fixed phase of the tick period, different for each room, so many
//! rooms spread their work over the period instead of all ticking on the same instant.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::feed::{Epoch, Feed};
use crate::game::Game;
use crate::metrics::Metrics;
use crate::protocol::delta::NetWorld;
use crate::protocol::frames;
use crate::protocol::{Delta, EntityId, PROTOCOL_VERSION, Schema, ServerMsg, Welcome};
use crate::room::joins::{JoinRequest, Joins};
use crate::room::roster::{self, FAN_OUT_CHUNK, FanOut, Roster};
use crate::room::{Settings, Tuning};

/// Players from which a room's fan-out is split over the worker threads: below it, the writes
/// take less than a few milliseconds, and a task per worker would cost more than it saves.
const PARALLEL_FAN_OUT: usize = 256;

/// The tick counter other tasks read (pongs, spectators).
#[derive(Debug, Default)]
pub(crate) struct TickClock(AtomicU64);

impl TickClock {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How a tick loop ended on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// Its token was cancelled (the room was closed, or the server is stopping).
    Told,
    /// Nobody played in it for its idle time.
    Idle,
}

/// What a room hands the tick loop of its game.
pub(crate) struct TickParts<'a> {
    pub(crate) settings: &'a Settings,
    pub(crate) tuning: &'a Tuning,
    pub(crate) schema: Arc<Schema>,
    pub(crate) joins: Arc<Joins>,
    pub(crate) clock: Arc<TickClock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) phase: Duration,
    pub(crate) idle_close: Option<Duration>,
    pub(crate) stop: CancellationToken,
}

/// A running room's tick loop, its game erased: what [`start`] returns.
pub(crate) type Running = Pin<Box<dyn Future<Output = Stopped> + Send>>;

/// How a registered game starts a room: its feed, and the tick loop to spawn.
pub(crate) type Start = fn(TickParts<'_>) -> (Arc<Feed>, Running);

/// Starts a tick loop of game `G` (one monomorphized loop per game: its calls are static).
pub(crate) fn start<G: Game>(parts: TickParts<'_>) -> (Arc<Feed>, Running) {
    let stop = parts.stop.clone();
    let tick_loop = TickLoop::<G>::new(parts);
    (tick_loop.feed(), Box::pin(tick_loop.run(stop)))
}

pub(crate) struct TickLoop<G> {
    game: G,
    schema: Arc<Schema>,
    tick: u64,
    /// What every synced player holds: the world as of the last tick's delta.
    sent: NetWorld,
    /// This tick's capture; swapped with `sent` after the diff to reuse both allocations.
    next: NetWorld,
    roster: Roster,
    /// The world as of the last spectator event; the next event is the diff from here.
    spectated: Arc<NetWorld>,
    spectator_every: u64,
    feed: Arc<Feed>,
    joins: Arc<Joins>,
    clock: Arc<TickClock>,
    metrics: Arc<Metrics>,
    period: Duration,
    /// Where in each period this room's ticks fall.
    phase: Duration,
    /// How long the room may stay empty before it closes itself (`None`: never).
    idle_close: Option<Duration>,
    tick_hz: u32,
}

/// How many ticks fell between two that ran, due at `last` and `due`: the interval skips the
/// ticks a late one made it miss, and each of those is an overrun.
fn skipped_between(last: Instant, due: Instant, period: Duration) -> u64 {
    let periods = due.saturating_duration_since(last).as_nanos() / period.as_nanos().max(1);
    u64::try_from(periods.saturating_sub(1)).unwrap_or(u64::MAX)
}

/// The first instant of `origin + k * period` after `now`.
fn next_tick(origin: Instant, period: Duration, now: Instant) -> Instant {
    if now <= origin {
        return origin;
    }
    let into_period = (now - origin).as_nanos() % period.as_nanos().max(1);
    now + period.saturating_sub(Duration::from_nanos(into_period as u64))
}

impl<G: Game> TickLoop<G> {
    pub(crate) fn new(parts: TickParts<'_>) -> Self {
        let TickParts {
            settings,
            tuning,
            schema,
            joins,
            clock,
            metrics,
            phase,
            idle_close,
            stop,
        } = parts;
        let game = G::new(&settings.game_config(), settings.seed);
        // One copy of the world while nobody plays (the spectators'): what players hold, and
        // the next capture, are made at the first tick (see `pause`).
        let mut world = NetWorld::default();
        game.entities(world.reset(0));
        let spectated = Arc::new(world);
        let ring = tuning.spectator_ring(settings.tick_hz);
        let feed = Arc::new(Feed::new(
            Epoch::random(),
            spectated.clone(),
            ring,
            0,
            schema.clone(),
            // The room's own token: its feed ends when the room does.
            stop.clone(),
        ));
        Self {
            game,
            schema,
            tick: 0,
            sent: NetWorld::default(),
            next: NetWorld::default(),
            spectated,
            spectator_every: u64::from(tuning.spectator_every(settings.tick_hz)),
            feed,
            roster: Roster::new(tuning.slow_timeout, metrics.clone()),
            joins,
            clock,
            metrics,
            period: settings.tick_period(),
            phase,
            idle_close,
            tick_hz: settings.tick_hz,
        }
    }

    /// The spectator feed this loop publishes to.
    pub(crate) fn feed(&self) -> Arc<Feed> {
        self.feed.clone()
    }

    /// Runs ticks at the room's rate until `stop`, or until it has been empty for its idle
    /// time.
    ///
    /// Not an `async fn`: one would keep `self` in its future twice (the argument and the
    /// local it is moved into), and this future is most of what an empty room costs.
    #[allow(clippy::manual_async_fn)]
    pub(crate) fn run(mut self, stop: CancellationToken) -> impl Future<Output = Stopped> + Send {
        async move {
            // Ticks fall on `origin + k * period`, timed while anyone plays: a paused room holds
            // no timer but its idle deadline.
            let origin = Instant::now() + self.phase;
            let mut interval: Option<time::Interval> = None;
            // When the last tick was due, to count the ticks skipped since.
            let mut last_due: Option<Instant> = None;
            let mut empty_since = Instant::now();
            let stopped = loop {
                if self.roster.is_empty() {
                    interval = None;
                    last_due = None;
                    let idle_at = self.idle_close.map(|idle| empty_since + idle);
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => break Stopped::Told,
                        () = self.joins.arrived.notified() => {}
                        _ = time::sleep_until(idle_at.unwrap_or_else(Instant::now)), if idle_at.is_some() => {
                            break Stopped::Idle;
                        }
                    };
                    for join in self.joins.take() {
                        self.admit(join);
                    }
                    if self.roster.is_empty() {
                        continue; // Their sessions gave up meanwhile.
                    }
                    let mut ticks = time::interval_at(next_tick(origin, self.period, Instant::now()), self.period);
                    // A late tick is not followed by a burst of catch-up ticks: players would see
                    // the world jump. Skipped ticks are counted as overruns instead.
                    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
                    interval = Some(ticks);
                }
                // Made above whenever the roster was empty, and kept while it is not.
                let ticks = interval.as_mut().expect("a room with players has its ticks");
                let due = tokio::select! {
                    biased;
                    _ = stop.cancelled() => break Stopped::Told,
                    due = ticks.tick() => due,
                };
                let skipped = last_due.map_or(0, |last| skipped_between(last, due, self.period));
                self.metrics.tick_overruns.inc_by(skipped);
                last_due = Some(due);
                let started = Instant::now();
                // Boxed for the tick: its state is only needed while a tick runs, and an empty
                // room's task should not carry room for it while it waits.
                let (work, fan_out) = Box::pin(self.tick_fanned_out(started)).await;
                self.metrics.ticks.inc();
                self.metrics.tick_work.observe(work.as_secs_f64());
                self.metrics.fan_out.observe(fan_out.as_secs_f64());
                if started.elapsed() > self.period {
                    self.metrics.tick_overruns.inc();
                }
                if self.roster.is_empty() {
                    empty_since = Instant::now();
                    self.pause();
                }
            };
            self.metrics.players.dec_by(self.roster.len() as i64);
            tracing::debug!(tick = self.tick, ?stopped, "tick loop stopped");
            stopped
        }
    }

    /// The last player has left: the room waits for a join, holding one copy of its world
    /// (the spectators', which the last tick brought up to date). What players held, and the
    /// capture buffer, go: a newcomer starts from a keyframe, and the next tick's delta goes to
    /// nobody who holds a base.
    fn pause(&mut self) {
        self.sent = NetWorld::default();
        self.next = NetWorld::default();
    }

    /// One tick's work, all at once; `now` is used only for slow-consumer deadlines.
    #[cfg(test)]
    pub(crate) fn tick(&mut self, now: Instant) {
        let delta = self.prepare();
        let gone = self.roster.fan_out(&delta, &self.sent, &self.schema, now);
        self.conclude(gone);
    }

    /// One tick. Its fan-out (a write per player) is done by this task at once for a small
    /// room. A bigger room yields to the runtime between the tick's phases and between chunks
    /// of players, so that no part of it holds a worker thread for more than a fraction of a
    /// millisecond and pings are answered meanwhile; from [`PARALLEL_FAN_OUT`] players on its
    /// writes are split over one task per worker thread, so they run on every core the runtime
    /// has. Returns the tick loop's own work time (its phases, without the fan-out or the
    /// time others ran while it yielded) and the fan-out's wall time.
    async fn tick_fanned_out(&mut self, now: Instant) -> (Duration, Duration) {
        let phase = Instant::now();
        self.take_turns();
        let mut own = phase.elapsed();
        // Counted with this tick's newcomers, who are owed a keyframe each.
        let big = self.roster.len() > FAN_OUT_CHUNK;
        let yield_if_big = async || {
            if big {
                tokio::task::yield_now().await;
            }
        };
        yield_if_big().await;
        let phase = Instant::now();
        let delta = self.step_and_encode();
        let mut pass = FanOut::default();
        if self.roster.needs_keyframe() {
            pass.keyframe = Some(roster::keyframe(&self.sent, &self.schema));
        }
        own += phase.elapsed();
        yield_if_big().await;
        let parts = if self.roster.len() >= PARALLEL_FAN_OUT {
            tokio::runtime::Handle::current().metrics().num_workers()
        } else {
            1
        };
        let fanning = Instant::now();
        if !big {
            self.roster.fan_out_pass(&mut pass, &delta, now);
        } else if parts <= 1 {
            self.roster.fan_out_yielding(&mut pass, &delta, now).await;
        } else {
            let keyframe = pass.keyframe.clone();
            let tasks: Vec<_> = self
                .roster
                .split(parts)
                .into_iter()
                .map(|mut part| {
                    let (delta, keyframe) = (delta.clone(), keyframe.clone());
                    tokio::spawn(async move {
                        let mut pass = FanOut::with_keyframe(keyframe);
                        part.fan_out_yielding(&mut pass, &delta, now).await;
                        (part, pass)
                    })
                })
                .collect();
            for task in tasks {
                // A panic in a part is the room's: it crashes as if the tick had.
                let (part, part_pass) = task
                    .await
                    .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
                self.roster.rejoin(part);
                pass.merge(part_pass);
            }
        }
        let fanned = fanning.elapsed();
        yield_if_big().await;
        let phase = Instant::now();
        let gone = self.roster.finish(pass);
        self.conclude(gone);
        own += phase.elapsed();
        (own, fanned)
    }

    /// A tick up to its fan-out: joins, inputs, the step, the diff; returns the delta, encoded
    /// and framed once.
    #[cfg(test)]
    fn prepare(&mut self) -> Bytes {
        self.take_turns();
        self.step_and_encode()
    }

    /// The players' turn: joins and each player's latest input.
    fn take_turns(&mut self) {
        for join in self.joins.take() {
            self.admit(join);
        }
        let (game, metrics) = (&mut self.game, &self.metrics);
        self.roster.take_inputs(|id, input| {
            game.input(id, input.values.get());
            metrics.inputs_applied.inc();
        });
    }

    /// The world's turn: the step and the diff; returns the delta, encoded and framed once.
    fn step_and_encode(&mut self) -> Bytes {
        self.game.step();
        self.tick += 1;
        let tick = self.tick;
        self.game.entities(self.next.reset(tick));
        let changes = self.sent.diff(&self.next, &self.schema);
        std::mem::swap(&mut self.sent, &mut self.next);
        // Once a second, enough to catch a drifting client without hashing every tick.
        let checksum = (tick % u64::from(self.tick_hz) == 0).then(|| self.sent.checksum(&self.schema));
        let (spawned, updated, removed) = (changes.spawned, changes.updated, changes.removed);
        let delta = Delta {
            tick,
            base_gap: 1,
            spawned,
            updated,
            removed,
            checksum,
        };
        // Encoded and framed once; every player is sent the same bytes.
        frames::binary_frame(ServerMsg::Delta(delta).encode(&self.schema))
    }

    /// A tick after its fan-out: the players it found too slow or gone leave, spectators get
    /// their event, the tick is published.
    fn conclude(&mut self, gone: Vec<EntityId>) {
        let left = !gone.is_empty();
        for id in gone {
            self.game.leave(id);
            self.metrics.players.dec();
        }
        let tick = self.tick;
        if left && self.roster.is_empty() {
            // The world of this tick was taken before its fan-out found them gone, and the room
            // now pauses: no next tick will show them leaving. Nobody holds this tick's delta
            // as a base any more (a newcomer starts from a keyframe), so take it again.
            self.game.entities(self.next.reset(tick));
            std::mem::swap(&mut self.sent, &mut self.next);
        }
        // The last player gone, the room pauses: publish now what spectators have not seen.
        if tick % self.spectator_every == 0 || self.roster.is_empty() {
            // Diffing against the last event's world merges the ticks in between. Nothing
            // changed, nothing published: an idle match must not wake every long-poller.
            let changes = self.spectated.diff(&self.sent, &self.schema);
            if !changes.is_empty() {
                self.spectated = Arc::new(self.sent.clone());
                self.feed.publish(&changes, self.spectated.clone());
            }
        }
        self.clock.0.store(tick, Ordering::Relaxed);
    }

    fn admit(&mut self, join: JoinRequest) {
        #[cfg(test)]
        tests::maybe_crash(&join.name);
        if join.link.out.is_closed() {
            return; // The session gave up while waiting for this tick.
        }
        let id = self.game.join(&join.name);
        // Made for each join rather than kept: a room holds no copy of its schema of its own.
        let welcome = ServerMsg::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            player_id: id,
            tick_hz: self.tick_hz,
            schema: (*self.schema).clone(),
        });
        // A fresh queue has room; if the session is already gone, this tick's fan-out finds it
        // closed and removes it.
        let welcome = frames::binary_frame(welcome.encode(&self.schema));
        let len = welcome.len();
        if join.link.out.push(None, &welcome).is_ok() {
            self.metrics.websocket.sent(len);
        }
        let _ = join.reply.send(id);
        // Peer-supplied strings are logged escaped (`?`): a name cannot forge a log line.
        tracing::debug!(id, name = ?join.name, "player joined");
        self.roster.insert(id, join.link);
        self.metrics.players.inc();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::game::Arena;
    use crate::game::GameConfig;
    use crate::protocol::{Input, InputValues};
    use tokio::sync::oneshot;

    use crate::room::outbox::{Inbox, outbox};
    use crate::room::roster::{InputSlot, Link};

    /// A player by this name makes its room's tick loop panic when it is admitted (test
    /// builds only).
    pub(crate) const CRASH_NAME: &str = "crash-the-room";

    pub(crate) fn maybe_crash(name: &str) {
        assert!(name != CRASH_NAME, "injected tick loop failure");
    }

    fn tick_loop(config: &Config) -> TickLoop<Arena> {
        let settings = Settings {
            seed: 1,
            ..config.room_settings()
        };
        TickLoop::new(TickParts {
            settings: &settings,
            tuning: &config.tuning(),
            schema: Arc::new(Arena::schema(&settings.game_config())),
            joins: Arc::default(),
            clock: Arc::default(),
            metrics: Arc::default(),
            phase: Duration::ZERO,
            idle_close: None,
            stop: CancellationToken::new(),
        })
    }

    #[test]
    fn ticks_a_late_one_made_the_room_skip_are_counted() {
        let t0 = Instant::now();
        let period = Duration::from_millis(30);
        assert_eq!(skipped_between(t0, t0 + period, period), 0, "on time");
        assert_eq!(skipped_between(t0, t0 + period * 4, period), 3);
    }

    #[test]
    fn ticks_fall_on_the_rooms_phase_after_a_pause() {
        let origin = Instant::now();
        let period = Duration::from_millis(30);
        assert_eq!(next_tick(origin, period, origin - period), origin);
        assert_eq!(
            next_tick(origin, period, origin + Duration::from_millis(45)),
            origin + period * 2
        );
        assert_eq!(next_tick(origin, period, origin + period), origin + period * 2);
    }

    fn join(tick: &mut TickLoop<Arena>, queue: usize) -> (Inbox, Arc<InputSlot>) {
        let (out, rx) = outbox(queue, None);
        let (reply, _) = oneshot::channel();
        let input = Arc::new(InputSlot::default());
        tick.admit(JoinRequest {
            name: "p".into(),
            link: Link {
                input: input.clone(),
                out,
            },
            reply,
        });
        (rx, input)
    }

    /// The next queued item, decoded, with its ack.
    fn next(rx: &mut Inbox) -> (Option<u32>, ServerMsg) {
        let out = rx.try_frame().expect("a queued frame");
        let schema = Arena::schema(&GameConfig::default());
        (
            out.ack,
            ServerMsg::decode(frames::tests::parse(&out.frame).1, Some(&schema)).unwrap(),
        )
    }

    #[test]
    fn a_player_that_falls_behind_gets_a_keyframe_then_is_kicked_when_it_stays_full() {
        let config = Config {
            slow_timeout: Duration::from_secs(1),
            ..Config::defaults()
        };
        let mut tick = tick_loop(&config);
        let (mut rx, _) = join(&mut tick, 3);
        let t0 = Instant::now();
        tick.tick(t0); // welcome + keyframe
        tick.tick(t0); // delta; the queue is now full
        tick.tick(t0); // dropped
        assert!(matches!(next(&mut rx), (None, ServerMsg::Welcome(_))));
        assert!(matches!(next(&mut rx), (None, ServerMsg::Snapshot(s)) if s.tick == 1));
        assert!(matches!(next(&mut rx), (None, ServerMsg::Delta(d)) if d.tick == 2));
        tick.tick(t0); // room again: a keyframe at tick 4, not the delta 3 -> 4
        assert!(matches!(next(&mut rx), (None, ServerMsg::Snapshot(s)) if s.tick == 4));
        assert_eq!(tick.metrics.deltas_dropped.get(), 1);
        assert_eq!(tick.metrics.resync_keyframes.get(), 1);

        for _ in 0..4 {
            tick.tick(t0); // fill the queue again
        }
        assert!(!rx.is_kicked());
        tick.tick(t0 + Duration::from_secs(1));
        assert!(rx.is_kicked(), "a player full past the deadline is kicked");
        assert!(tick.game.players().is_empty());
    }

    #[test]
    fn the_last_player_to_leave_is_gone_from_the_spectators_world_before_the_room_pauses() {
        let mut tick = tick_loop(&Config::defaults());
        let alone = tick.spectated.entities().len();
        let (gone, _) = join(&mut tick, 8);
        tick.tick(Instant::now());
        assert_eq!(tick.sent.entities().len(), alone + 1, "in the world");
        drop(gone);
        tick.tick(Instant::now());
        assert!(tick.roster.is_empty());
        assert_eq!(
            tick.spectated.entities().len(),
            alone,
            "the last event before the pause shows it left"
        );
    }

    #[test]
    fn a_player_whose_session_ended_is_found_by_its_write_and_leaves_the_world() {
        let mut tick = tick_loop(&Config::defaults());
        let (gone, _) = join(&mut tick, 8);
        let (mut stays, _) = join(&mut tick, 8);
        let now = Instant::now();
        tick.tick(now); // welcomes and keyframes
        drop(gone);
        tick.tick(now);
        assert_eq!(tick.roster.len(), 1, "out of the roster");
        assert_eq!(tick.game.players().len(), 1, "and out of the world");
        assert_eq!(tick.metrics.players.get(), 1);
        tick.tick(now);
        assert!(matches!(next(&mut stays), (None, ServerMsg::Welcome(_))));
        assert!(matches!(next(&mut stays), (None, ServerMsg::Snapshot(s)) if s.tick == 1));
        assert!(matches!(next(&mut stays), (None, ServerMsg::Delta(d)) if d.removed.is_empty()));
        assert!(
            matches!(next(&mut stays), (None, ServerMsg::Delta(d)) if d.tick == 3 && d.removed.len() == 1),
            "the others see it removed in the next tick's delta"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_big_room_s_fan_out_split_over_the_workers_reaches_every_player_once() {
        let mut tick = tick_loop(&Config::defaults());
        let players: Vec<_> = (0..PARALLEL_FAN_OUT + 45).map(|_| join(&mut tick, 8)).collect();
        let now = Instant::now();
        tick.tick_fanned_out(now).await; // keyframes
        tick.tick_fanned_out(now).await; // deltas
        assert_eq!(tick.roster.len(), players.len(), "every player is back in the roster");
        for (mut rx, _) in players {
            assert!(matches!(next(&mut rx), (None, ServerMsg::Welcome(_))));
            assert!(matches!(next(&mut rx), (None, ServerMsg::Snapshot(s)) if s.tick == 1));
            assert!(matches!(next(&mut rx), (None, ServerMsg::Delta(d)) if d.tick == 2));
            assert!(rx.try_next().is_none(), "one frame per tick");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_big_room_s_fan_out_lets_other_tasks_run_between_chunks() {
        let mut tick = tick_loop(&Config::defaults());
        let mut inboxes: Vec<_> = (0..3 * FAN_OUT_CHUNK).map(|_| join(&mut tick, 8).0).collect();
        let now = Instant::now();
        tick.tick_fanned_out(now).await; // keyframes
        for rx in &mut inboxes {
            next(rx); // welcome
            next(rx); // keyframe
        }
        // On this one thread, a task that is ready during the next tick runs whenever the tick
        // yields: it counts the players written by the first time it finds any.
        let (seen, counted) = oneshot::channel();
        tokio::spawn(async move {
            loop {
                let written = inboxes.iter_mut().filter_map(|rx| rx.try_next()).count();
                if written > 0 {
                    return seen.send(written);
                }
                tokio::task::yield_now().await;
            }
        });
        tick.tick_fanned_out(now).await;
        assert_eq!(
            counted.await.unwrap(),
            FAN_OUT_CHUNK,
            "the other task ran after the first chunk, not after the whole room"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_player_full_in_a_later_chunk_falls_behind_and_is_kicked_after_the_yields() {
        let config = Config {
            slow_timeout: Duration::from_secs(1),
            ..Config::defaults()
        };
        let mut tick = tick_loop(&config);
        let others = FAN_OUT_CHUNK + 8;
        let mut keeping_up: Vec<_> = (0..others).map(|_| join(&mut tick, 8).0).collect();
        // The last to join has the highest id: it is written in the second chunk. Its queue
        // holds its welcome and first keyframe, then stays full (nobody drains it).
        let (stuck, _) = join(&mut tick, 2);
        let t0 = Instant::now();
        for _ in 0..3 {
            tick.tick_fanned_out(t0).await;
            for rx in &mut keeping_up {
                while rx.try_frame().is_some() {}
            }
        }
        assert_eq!(tick.metrics.deltas_dropped.get(), 1, "one delta dropped, then behind");
        assert!(!stuck.is_kicked());
        tick.tick_fanned_out(t0 + Duration::from_secs(1)).await;
        assert!(stuck.is_kicked(), "full for the slow timeout: kicked");
        assert_eq!(tick.roster.len(), others, "and out of the roster");
        assert_eq!(tick.game.players().len(), others, "and out of the world");
    }

    #[test]
    fn every_player_gets_the_same_delta_bytes_and_only_changed_acks() {
        let mut tick = tick_loop(&Config::defaults());
        let (mut a, a_input) = join(&mut tick, 8);
        let (mut b, _) = join(&mut tick, 8);
        let now = Instant::now();
        tick.tick(now);
        a_input.put(Input {
            seq: 5,
            values: InputValues::new(&[1, 0]),
        });
        tick.tick(now);
        tick.tick(now);
        for rx in [&mut a, &mut b] {
            next(rx); // welcome
            next(rx); // keyframe
        }
        let (a2, b2) = (a.try_frame().unwrap(), b.try_frame().unwrap());
        assert_eq!(a2.ack, Some(5), "the applied move is acked with the tick's frame");
        assert_eq!(b2.ack, None);
        assert!(
            a2.frame.as_ptr() == b2.frame.as_ptr(),
            "the delta is shared, not copied"
        );
        assert_eq!(a.try_frame().unwrap().ack, None, "an unchanged ack is not resent");
    }
}
