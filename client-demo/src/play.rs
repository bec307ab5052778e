//! `play`: a player in the terminal, one task selecting over keys, the server and three timers.
//!
//! The loop, in the order a reader meets it:
//! - a key becomes a [`Command`] ([`crate::keys`]); a change of direction, a turn of the
//!   turret or a shot is sent at once, as the input fields the game has (any game whose input
//!   has `dx` and `dy`; tanks' `aim` and `fire` too); in a game with a chat, `t` opens a line
//!   that takes the keys until Enter sends it as a `chat` message ([`crate::chat`]);
//! - every message from the server updates the local world (or records a pong's RTT); events
//!   and the end of a match become lines beside the world (the kill feed, chat, results);
//! - every [`REFRESH`] the current direction is sent again, so a lost-looking player heals;
//! - every [`PING_EVERY`] a ping measures the round trip;
//! - at most every [`FRAME`], and only when something changed, the screen is redrawn
//!   ([`crate::draw`]).
//!
//! The terminal is restored however this ends: quit, a server close, an error or a panic.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tickcast::client::{Client, ClientError, Received};
use tickcast::protocol::{Events, MatchEnded};
use tokio::time::{self, MissedTickBehavior};

use crate::arena::Arena;
use crate::behaviour::Decision;
use crate::bot::send_decision;
use crate::chat::{self, Edit, Typing};
use crate::connect::Target;
use crate::draw::View;
use crate::keys::{Command, Steering, command_for};
use crate::stats::RttStats;

/// How often the current direction is sent again even when it did not change.
pub const REFRESH: Duration = Duration::from_millis(250);

/// How often the round trip is measured.
pub const PING_EVERY: Duration = Duration::from_millis(500);

/// Shortest time between two redraws (30 frames a second at most).
pub const FRAME: Duration = Duration::from_millis(33);

/// How long leaving waits for the server to answer the close.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why `play` stopped other than by the player quitting.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    /// The connection failed or the server closed it.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The terminal could not be set up, read or drawn on.
    #[error("terminal: {0}")]
    Terminal(#[from] io::Error),
}

/// Joins `target` as `name` and plays until the player quits or the server ends the game.
pub async fn run(target: &Target, name: &str) -> Result<(), PlayError> {
    // Connect before taking over the terminal, so a failure prints as a plain error.
    let mut client = target.join(name).await?;
    // A dropped connection (a Wi-Fi change, a tunnel) takes the seat back by itself.
    client.auto_resume(true, None);
    let mut game = Game {
        target,
        name,
        client,
        steering: Steering::default(),
        rtt: RttStats::new(),
        resyncs: 0,
        nonce: 0,
        told: VecDeque::new(),
        typing: None,
    };
    let mut screen = Screen::enter()?;
    let played = game.play(&mut screen.terminal).await;
    drop(screen);
    let _ = time::timeout(CLOSE_GRACE, game.client.close()).await;
    played
}

/// The player's side of the game.
struct Game<'a> {
    target: &'a Target,
    name: &'a str,
    client: Client,
    steering: Steering,
    rtt: RttStats,
    resyncs: u64,
    nonce: u32,
    /// The last lines the game told (the kill feed, chat, the end of a match), newest last.
    told: VecDeque<String>,
    /// The chat line being typed, while it is open.
    typing: Option<Typing>,
}

/// Lines of what the game told kept for the screen.
const TOLD_LINES: usize = 6;

impl Game<'_> {
    async fn play(&mut self, terminal: &mut DefaultTerminal) -> Result<(), PlayError> {
        let mut keys = EventStream::new();
        let mut refresh = time::interval(REFRESH);
        let mut pings = time::interval(PING_EVERY);
        let mut frames = time::interval(FRAME);
        for timer in [&mut refresh, &mut pings, &mut frames] {
            timer.set_missed_tick_behavior(MissedTickBehavior::Skip);
        }
        let mut dirty = true;
        loop {
            tokio::select! {
                event = keys.next() => match event {
                    // The terminal closed its input: nobody is left to play.
                    None => return Ok(()),
                    Some(event) => match event? {
                        Event::Key(key) if self.typing.is_some() => {
                            self.type_key(&key).await?;
                            dirty = true;
                        }
                        Event::Key(key) => match command_for(&key) {
                            Some(Command::Quit) => return Ok(()),
                            Some(Command::Go(dx, dy)) if self.steering.steer((dx, dy)) => {
                                self.send(false).await?;
                                dirty = true;
                            }
                            Some(Command::Turn(by)) => {
                                self.steering.turn(by);
                                self.send(false).await?;
                                dirty = true;
                            }
                            // Fire is a button: pressed in this input, released by the next.
                            Some(Command::Fire) => self.send(true).await?,
                            Some(Command::Chat) => {
                                self.typing = chat::max_len(self.client.schema()).map(Typing::new);
                                dirty = true;
                            }
                            _ => {}
                        },
                        Event::Resize(..) => dirty = true,
                        _ => {}
                    },
                },
                received = self.client.recv() => {
                    match received {
                        Ok(Received::Pong { rtt, .. }) => self.rtt.record(rtt),
                        Ok(Received::Snapshot { .. } | Received::Delta { .. } | Received::Private { .. }) => {}
                        Ok(Received::Welcome { .. }) => {}
                        Ok(Received::Resumed { attempts, took }) => {
                            self.tell(format!("connection dropped: seat taken back after {took:.1?} ({attempts} tries)"));
                        }
                        Ok(Received::Events(events)) => self.heard(&events),
                        Ok(Received::MatchEnded(ended)) => self.ended(&ended),
                        Err(ClientError::Desync(err)) => self.resync(err).await?,
                        Err(err) => return Err(err.into()),
                    }
                    dirty = true;
                }
                _ = refresh.tick() => self.send(false).await?,
                _ = pings.tick() => {
                    self.nonce = self.nonce.wrapping_add(1);
                    self.client.send_ping(self.nonce).await?;
                }
                _ = frames.tick(), if dirty => {
                    terminal.draw(|frame| frame.render_widget(&self.view(), frame.area()))?;
                    dirty = false;
                }
            }
        }
    }

    /// Replaces a connection whose world went wrong with a fresh one. The server gives a new
    /// connection a new player, so this costs the score: it should never happen, and the
    /// panel counts it when it does.
    async fn resync(&mut self, err: tickcast::protocol::delta::ApplyError) -> Result<(), ClientError> {
        tracing::warn!(%err, "world out of sync: taking the seat again for a fresh snapshot");
        self.resyncs += 1;
        // The same seat on a new connection (the old one is closed by the server): the same
        // entity, its score kept. A room that keeps no seats is joined afresh.
        if self.client.resume_once().await.is_ok() {
            return self.send(false).await;
        }
        let mut fresh = self.target.join(self.name).await?;
        fresh.auto_resume(true, None);
        let stale = std::mem::replace(&mut self.client, fresh);
        let _ = time::timeout(CLOSE_GRACE, stale.close()).await;
        self.send(false).await
    }

    /// A key while the chat line is open: Enter sends it (as the game's `chat` message).
    async fn type_key(&mut self, key: &crossterm::event::KeyEvent) -> Result<(), ClientError> {
        let Some(typing) = self.typing.as_mut() else {
            return Ok(());
        };
        match typing.key(key) {
            Edit::Typing => Ok(()),
            Edit::Cancel => {
                self.typing = None;
                Ok(())
            }
            Edit::Send(line) => {
                self.typing = None;
                match chat::values(self.client.schema(), line.trim()) {
                    Some(values) if !line.trim().is_empty() => self.client.send_message(chat::CHAT, values).await,
                    _ => Ok(()),
                }
            }
        }
    }

    /// Keeps the events the game told, as lines to show.
    fn heard(&mut self, events: &Events) {
        let schema = self.client.schema().clone();
        for event in &events.events {
            if let Some(line) = crate::told::describe(&schema, event) {
                self.tell(line);
            }
        }
    }

    /// Keeps the end of a match, as lines to show.
    fn ended(&mut self, ended: &MatchEnded) {
        self.tell(format!("match over: {}", ended.results.summary));
        for s in ended.results.standings.iter().take(3) {
            self.tell(format!("  {}. {} ({})", s.rank, s.name, s.score));
        }
    }

    fn tell(&mut self, line: String) {
        if self.told.len() == TOLD_LINES {
            self.told.pop_front();
        }
        self.told.push_back(line);
    }

    /// Sends the current controls (and a shot, if `fire`).
    async fn send(&mut self, fire: bool) -> Result<(), ClientError> {
        let (dx, dy) = self.steering.direction();
        let aim = self.steering.aim();
        send_decision(&mut self.client, Decision { dx, dy, aim, fire }).await
    }

    fn view(&self) -> View<'_> {
        View {
            world: self.client.world(),
            arena: Arena::from_schema(self.client.schema()),
            aim: self.client.schema().input_named("aim").map(|_| self.steering.aim()),
            me: self.client.player_id(),
            direction: self.steering.direction(),
            rtt: &self.rtt,
            resyncs: self.resyncs,
            told: &self.told,
            typing: self.typing.as_ref().map(Typing::line),
            chat: chat::max_len(self.client.schema()).is_some(),
        }
    }
}

/// The terminal in raw mode on the alternate screen, given back when dropped: on return, on
/// `?` and during a panic's unwinding alike (ratatui's panic hook covers aborting panics).
struct Screen {
    terminal: DefaultTerminal,
}

impl Screen {
    fn enter() -> io::Result<Self> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(Self { terminal }),
            Err(err) => {
                // Raw mode may be on even though entering the alternate screen failed.
                ratatui::restore();
                Err(err)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
