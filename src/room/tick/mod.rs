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
//! would be sent a tick, so the loop waits for a join with no timer at all; the rooms' sweep
//! ([`crate::rooms`]) wakes it once its idle deadline has passed, and it closes itself. Its
//! spectators' world is kept packed by its feed meanwhile, or, if nobody has played in it
//! yet, not kept at all ([`Feed::park`]). Ticks fall at a fixed phase of the tick period,
//! different for each room, so many rooms spread their work over the period instead of all
//! ticking on the same instant.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::feed::{Epoch, Feed, Heard};
use crate::game::{Dispatch, Game, GameConfig, Labels, To, Told};
use crate::metrics::Metrics;
use crate::protocol::delta::NetWorld;
use crate::protocol::frames;
use crate::protocol::{EntityId, Schema};
use crate::room::extras::{Extras, TickOutput};
use crate::room::joins::Joins;
use crate::room::roster::{self, Departed, FAN_OUT_CHUNK, FanOut, Roster, Turn};
use crate::room::seats::Seats;
use crate::room::views::{ViewFrames, Viewer, Views};
use crate::room::{AfterMatch, RoomId, Settings, Status, Tuning};

/// Players from which a room's fan-out is split over the worker threads: below it, the writes
/// take less than a few milliseconds, and a task per worker would cost more than it saves.
const PARALLEL_FAN_OUT: usize = 256;

/// The most public events kept for the next spectator event; more are dropped (and counted).
const MAX_HEARD: usize = 4096;

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
    /// Its match ended, and its settings say the room closes then.
    MatchOver,
}

/// What a room hands the tick loop of its game.
pub(crate) struct TickParts<'a> {
    /// The room's id (its players' resume tokens name it).
    pub(crate) room: RoomId,
    pub(crate) settings: &'a Settings,
    pub(crate) status: Arc<Status>,
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
    pub(super) game: G,
    /// Where the game tells events and ends its match.
    pub(super) dispatch: Dispatch,
    pub(super) schema: Arc<Schema>,
    pub(super) tick: u64,
    /// What every synced player holds: the world as of the last tick's delta.
    pub(super) sent: NetWorld,
    /// This tick's capture; swapped with `sent` after the diff to reuse both allocations.
    pub(super) next: NetWorld,
    pub(super) roster: Roster,
    /// The seats of its players: their resume secrets, and those kept for players away.
    pub(super) seats: Seats,
    /// Each player's view of the world, in a room with a view radius (boxed: most rooms have
    /// none, and carry only the pointer).
    views: Option<Box<Views>>,
    /// The room's id, for the resume tokens.
    pub(super) room: RoomId,
    /// How long a seat is kept, for the welcome.
    pub(super) grace_ms: u32,
    /// The world as of the last spectator event; the next event is the diff from here. Only
    /// the feed keeps it while the room rests (packed: see [`Feed::park`]).
    pub(super) spectated: Option<Arc<NetWorld>>,
    /// Public events told since the last spectator event, for it.
    pub(super) heard: Vec<Heard>,
    spectator_every: u64,
    pub(super) feed: Arc<Feed>,
    joins: Arc<Joins>,
    clock: Arc<TickClock>,
    pub(super) metrics: Arc<Metrics>,
    period: Duration,
    /// Where in each period this room's ticks fall.
    phase: Duration,
    /// How long the room may stay empty before it closes itself (`None`: never).
    idle_close: Option<Duration>,
    pub(super) tick_hz: u32,
    /// What a new match is made from: the game's config, and the room's seed.
    pub(super) config: GameConfig,
    pub(super) seed: u64,
    /// Matches played so far in this room.
    pub(super) matches: u64,
    pub(super) after_match: AfterMatch,
    /// Labels and results, for the rest of the server.
    pub(super) status: Arc<Status>,
    /// The match ended and the room closes once its players have been told.
    pub(super) over: bool,
    /// How long the players of a room that closes after its match have to take the news.
    slow_timeout: Duration,
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
            room,
            settings,
            status,
            tuning,
            schema,
            joins,
            clock,
            metrics,
            phase,
            idle_close,
            stop,
        } = parts;
        let config = settings.game_config();
        let game = G::new(&config, settings.seed);
        let mut labels = Labels::default();
        game.labels(&mut labels);
        status.set_labels(labels);
        let ring = tuning.spectator_ring(settings.tick_hz);
        let feed = Arc::new(Feed::new(
            Epoch::random(),
            Arc::default(),
            ring,
            0,
            schema.clone(),
            // The room's own token: its feed ends when the room does.
            stop.clone(),
        ));
        // No copy of the world while nobody has played: the spectators' is made again from the
        // game's config and seed when one needs it, and what players hold, and the next
        // capture, are made at the first tick.
        let (first, seed, first_schema) = (config.clone(), settings.seed, schema.clone());
        feed.park_remade(
            0,
            Arc::new(move || {
                let mut world = NetWorld::default();
                G::new(&first, seed).entities(&mut world.capture(0, &first_schema));
                world
            }),
        );
        let views = settings.view_radius.map(|radius| Box::new(Views::new(radius, &schema)));
        Self {
            views,
            game,
            dispatch: Dispatch::new(schema.clone()),
            schema,
            tick: 0,
            sent: NetWorld::default(),
            next: NetWorld::default(),
            spectated: None,
            heard: Vec::new(),
            spectator_every: u64::from(tuning.spectator_every(settings.tick_hz)),
            feed,
            roster: Roster::new(tuning.slow_timeout, metrics.clone()),
            seats: Seats::new(settings.grace_ticks()),
            room,
            grace_ms: settings.reconnect_grace_ms,
            joins,
            clock,
            metrics,
            period: settings.tick_period(),
            phase,
            idle_close,
            tick_hz: settings.tick_hz,
            config,
            seed: settings.seed,
            matches: 0,
            after_match: settings.after_match,
            status,
            over: false,
            slow_timeout: tuning.slow_timeout,
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
            // no timer at all.
            let origin = Instant::now() + self.phase;
            let mut interval: Option<time::Interval> = None;
            // When the last tick was due, to count the ticks skipped since.
            let mut last_due: Option<Instant> = None;
            let mut empty_since = Instant::now();
            self.rest_from(empty_since);
            let stopped = loop {
                if self.paused() {
                    interval = None;
                    last_due = None;
                    // Woken by a join, or by the rooms' sweep once the idle deadline has passed.
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => break Stopped::Told,
                        () = self.joins.arrived.notified() => {}
                    };
                    for join in self.joins.take() {
                        self.admit(join);
                    }
                    if self.paused() {
                        if self.idle_close.is_some_and(|idle| empty_since.elapsed() >= idle) {
                            break Stopped::Idle;
                        }
                        continue; // Their sessions gave up meanwhile, or it is not time yet.
                    }
                    self.status.set_idle_at(None);
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
                self.metrics
                    .tick_overruns
                    .inc_by(last_due.map_or(0, |last| skipped_between(last, due, self.period)));
                last_due = Some(due);
                // Boxed, as is what follows: what they hold is only needed while they run, and a
                // paused room's future should not carry room for it while it waits.
                Box::pin(self.timed_tick()).await;
                if self.over {
                    Box::pin(self.drain(&stop)).await;
                    break Stopped::MatchOver;
                }
                if self.paused() {
                    empty_since = Instant::now();
                    self.rest_from(empty_since);
                    self.pause();
                }
            };
            self.metrics.players.dec_by(self.roster.len() as i64);
            self.metrics.players_away.dec_by(self.seats.away() as i64);
            self.reset_views();
            tracing::debug!(tick = self.tick, ?stopped, "tick loop stopped");
            stopped
        }
    }

    /// The room is empty from `since`: the sweep of idle rooms wakes it at its idle deadline
    /// (a deadline past what an `Instant` holds is none).
    fn rest_from(&self, since: Instant) {
        let deadline = self.idle_close.and_then(|idle| since.checked_add(idle));
        self.status.set_idle_at(deadline);
    }

    /// One tick, timed.
    async fn timed_tick(&mut self) {
        let started = Instant::now();
        let (work, fan_out) = self.tick_fanned_out(started).await;
        self.metrics.ticks.inc();
        self.metrics.tick_work.observe(work.as_secs_f64());
        self.metrics.fan_out.observe(fan_out.as_secs_f64());
        if started.elapsed() > self.period {
            self.metrics.tick_overruns.inc();
        }
    }

    /// The match is over and the room closes: its players are told; gives them the time to
    /// take it (their queues drained, or the slow-consumer timeout).
    async fn drain(&mut self, stop: &CancellationToken) {
        let deadline = Instant::now() + self.slow_timeout;
        while !self.roster.drained() && Instant::now() < deadline {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                () = time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// Whether the room waits for a join, ticking no more: nobody is connected, and no seat
    /// is kept for anyone away (their grace counts in ticks).
    fn paused(&self) -> bool {
        self.roster.is_empty() && self.seats.none_away()
    }

    /// What the game told since the last call, counted (and the events it told that its
    /// schema refused).
    fn take_told(&mut self) -> Vec<Told> {
        self.metrics.events_refused.inc_by(self.dispatch.take_refused());
        let told = self.dispatch.take_told();
        self.metrics.events_told.inc_by(told.len() as u64);
        told
    }

    /// The last player has left: the room waits for a join, holding one copy of its world
    /// (the spectators', which the last tick brought up to date), packed by the feed. What
    /// players held, and the capture buffer, go: a newcomer starts from a keyframe, and the
    /// next tick's delta goes to nobody who holds a base.
    fn pause(&mut self) {
        self.sent = NetWorld::default();
        self.reset_views();
        self.next = NetWorld::default();
        self.spectated = None;
        self.feed.park();
        // What was told as the last player left is for spectators only.
        let told = self.take_told();
        self.hear(&told);
    }

    /// One tick's work, all at once; `now` is used only for slow-consumer deadlines.
    #[cfg(test)]
    pub(crate) fn tick(&mut self, now: Instant) {
        let (delta, extras) = self.prepare();
        let gone = self.roster.fan_out(&delta, &self.sent, &self.schema, extras, now);
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
        let (delta, extras, views) = self.step_and_encode();
        let mut pass = FanOut::with(None, extras);
        pass.views = views;
        if pass.views.is_none() && self.roster.needs_keyframe() {
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
            let (keyframe, extras, views) = (pass.keyframe.clone(), pass.extras.clone(), pass.views.clone());
            let tasks: Vec<_> = self
                .roster
                .split(parts)
                .into_iter()
                .map(|mut part| {
                    let (delta, keyframe, extras) = (delta.clone(), keyframe.clone(), extras.clone());
                    let views = views.clone();
                    tokio::spawn(async move {
                        let mut pass = FanOut::with(keyframe, extras);
                        pass.views = views;
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
    /// and framed once, and what follows it for each player.
    #[cfg(test)]
    fn prepare(&mut self) -> (Bytes, Arc<Extras>) {
        self.take_turns();
        let (delta, extras, _) = self.step_and_encode();
        (delta, extras)
    }

    /// The players' turn: joins, then each player's messages and latest input.
    fn take_turns(&mut self) {
        for join in self.joins.take() {
            self.admit(join);
        }
        let (game, dispatch, metrics) = (&mut self.game, &mut self.dispatch, &self.metrics);
        self.roster.take_turns(|id, turn| match turn {
            Turn::Message(message) => {
                game.message(id, message, dispatch);
                metrics.messages_applied.inc();
            }
            Turn::Input(input) => {
                game.input(id, input.values.get());
                metrics.inputs_applied.inc();
            }
        });
    }

    /// The world's turn: the step and the diff; returns the delta, encoded and framed once,
    /// and what follows it for each player (its private fields and the events it is told); in
    /// a room with views, each player's frame of its view instead of the delta.
    fn step_and_encode(&mut self) -> (Bytes, Arc<Extras>, Option<Arc<ViewFrames>>) {
        self.game.step(&mut self.dispatch);
        self.tick += 1;
        let tick = self.tick;
        self.game.entities(&mut self.next.capture(tick, &self.schema));
        std::mem::swap(&mut self.sent, &mut self.next);
        // Once a second, enough to catch a drifting client without hashing every tick.
        let checksum_tick = tick % u64::from(self.tick_hz) == 0;
        let views = self.view_frames(checksum_tick);
        // Encoded and framed once; every player is sent the same bytes. In a room with views
        // nobody holds the whole world: each view's frame is its own, and there is no whole
        // delta to diff, hash or encode.
        let delta = match views {
            Some(_) => Bytes::new(),
            None => {
                let changes = self.next.diff(&self.sent, &self.schema);
                let checksum = checksum_tick.then(|| self.sent.checksum(&self.schema));
                frames::binary_frame(changes.encode(&self.sent, 1, checksum, &self.schema))
            }
        };
        let told = self.take_told();
        if told.is_empty() && !self.schema.has_private() {
            return (delta, Extras::none(), views);
        }
        let output = TickOutput {
            game: &self.game,
            schema: &self.schema,
            told: &told,
            before: &self.next,
            now: &self.sent,
            checksum: checksum_tick,
        };
        let players: Vec<EntityId> = self.roster.ids().collect();
        let extras = Extras::build(&output, players.iter().copied(), self.roster.keyframed());
        self.hear(&told);
        (delta, Arc::new(extras), views)
    }

    /// Every player starts its view again from a keyframe (a new match).
    pub(super) fn reset_views(&mut self) {
        if let Some(views) = &mut self.views {
            views.reset();
            self.metrics.views.dec_by(views.last_count(0) as i64);
        }
    }

    /// In a room with views, every player's frame of this tick's world (`self.sent`).
    fn view_frames(&mut self, checksum: bool) -> Option<Arc<ViewFrames>> {
        let views = self.views.as_mut()?;
        let mut keyed: Vec<EntityId> = self.roster.keyframed().collect();
        keyed.sort_unstable();
        let viewers: Vec<Viewer> = self
            .roster
            .ids()
            .map(|id| Viewer {
                id,
                team: self.game.team(id),
                keyed: keyed.binary_search(&id).is_ok(),
            })
            .collect();
        let game = &self.game;
        let frames = views.frames(&self.sent, &self.schema, checksum, &viewers, |e| game.audience(e));
        // A gauge over rooms: each room adds its change since its last tick.
        self.metrics
            .views
            .inc_by(frames.views as i64 - views.last_count(frames.views) as i64);
        self.metrics.view_frames_encoded.inc_by(frames.encoded as u64);
        Some(Arc::new(frames))
    }

    /// Keeps the public events told to everyone for the next spectator event.
    pub(super) fn hear(&mut self, told: &[Told]) {
        let public = |t: &&Told| {
            t.to == To::All
                && self
                    .schema
                    .events
                    .get(usize::from(t.event.kind))
                    .is_some_and(|kind| kind.public)
        };
        for t in told.iter().filter(public) {
            if self.heard.len() >= MAX_HEARD {
                self.metrics.spectator_events_dropped.inc();
                continue;
            }
            self.heard.push(Heard {
                tick: self.tick,
                event: t.event.clone(),
            });
        }
    }

    /// A tick after its fan-out: the players it found too slow or gone leave (or, if their
    /// connection dropped, are kept away), seats whose grace is over are given up, spectators
    /// get their event, the tick is published.
    fn conclude(&mut self, gone: Vec<Departed>) {
        let mut left = false;
        for departed in gone {
            left |= !self.went_away(departed);
        }
        for id in self.seats.expired(self.tick) {
            tracing::debug!(id, "seat given up: its player did not come back");
            self.game.leave(id, &mut self.dispatch);
            self.metrics.players_away.dec();
            self.metrics.seats_expired.inc();
            left = true;
        }
        let tick = self.tick;
        if left && self.paused() {
            // The world of this tick was taken before its fan-out found them gone, and the room
            // now pauses: no next tick will show them leaving. Nobody holds this tick's delta
            // as a base any more (a newcomer starts from a keyframe), so take it again.
            self.game.entities(&mut self.next.capture(tick, &self.schema));
            std::mem::swap(&mut self.sent, &mut self.next);
        }
        let ended = self.dispatch.take_ended();
        // The last player gone, the room pauses, or the match ended: publish now what
        // spectators have not seen.
        if tick % self.spectator_every == 0 || self.paused() || ended.is_some() {
            self.publish();
        }
        self.clock.0.store(tick, Ordering::Relaxed);
        if let Some(results) = ended {
            self.end_match(results);
        }
    }

    /// The spectator event of this tick: the diff from the last one (which merges the ticks in
    /// between) and the public events told since. Nothing changed and nothing told, nothing
    /// published: an idle match must not wake every long-poller.
    pub(super) fn publish(&mut self) {
        if self.feed.unwatched() {
            // Nobody could read this event: the feed keeps only the world, for a snapshot.
            let world = Arc::new(self.sent.clone());
            if self.feed.pass(world.clone()) {
                self.spectated = Some(world);
                self.heard.clear();
                self.metrics.spectator_events_unwatched.inc();
                return;
            }
        }
        // After a rest, the feed's world (the same as when the room paused) is the base.
        let spectated = self.spectated.get_or_insert_with(|| self.feed.latest_world());
        let changes = spectated.diff(&self.sent, &self.schema);
        if !changes.is_empty() || !self.heard.is_empty() {
            let world = Arc::new(self.sent.clone());
            self.spectated = Some(world.clone());
            let heard = std::mem::take(&mut self.heard);
            self.feed.publish(&changes, world, heard);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
