//! A player client for Rust programs: the reference for how a client talks to tickcast.
//!
//! [`Client::connect`] opens the WebSocket, sends the hello and waits for the welcome; from then
//! on [`Client::recv`] reads the server's messages and keeps a local copy of the world from the
//! snapshot and the deltas (and this player's private fields), exactly as the server has it,
//! and hands over the events the game tells and the end of a match. Every failure is a
//! [`ClientError`] that says what happened: nothing listening, a version mismatch, a close with
//! its reason (a join the game refused is a close with code 4000 and the game's reason).
//!
//! A player joins one room: its URL (`ws://host/rooms/{id}/ws`, or `/ws` for the default
//! room), or a [`rooms_api::HeldPlace`] from matchmaking with [`Client::join`].
//!
//! A player whose connection drops keeps its seat for the room's grace. [`Client::resume`]
//! takes it back on a new connection (retrying with backoff and jitter until the grace ends
//! or the server refuses); with [`Client::auto_resume`], [`Client::recv`] does it by itself
//! when the connection fails or goes silent, and reports [`Received::Resumed`].

pub mod rooms_api;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::protocol::delta::{ApplyError, NetWorld};
use crate::protocol::{
    ClientMsg, DecodeFailure, Events, Hello, Input, InputValues, MAX_SERVER_MESSAGE, MatchEnded, Message, Peeked, Ping,
    Pong, Schema, ServerMsg, Value, Welcome, unix_micros,
};

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached or refused the WebSocket upgrade.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// Where we tried.
        url: String,
        /// Why it failed.
        source: tungstenite::Error,
    },
    /// The server closed the connection, with its close code and reason.
    #[error("closed by the server: {code} {reason}")]
    Closed {
        /// The RFC 6455 close code (1005 when none was sent).
        code: u16,
        /// The server's reason text.
        reason: String,
    },
    /// The connection failed without a close frame.
    #[error("connection lost: {0}")]
    Lost(#[from] tungstenite::Error),
    /// The server sent something that is not a valid message.
    #[error("bad message from the server: {0}")]
    Decode(#[from] DecodeFailure),
    /// The server sent a valid message out of place (e.g. no welcome first).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A delta did not apply to the world held: the local copy is out of sync.
    #[error("out of sync with the server: {0}")]
    Desync(#[from] ApplyError),
    /// Matchmaking (or another rooms API call) failed.
    #[error("matchmaking: {0}")]
    RoomsApi(#[from] rooms_api::ApiError),
    /// Nothing came from the server for the silence limit (see [`Client::auto_resume`]): the
    /// connection is taken for dropped.
    #[error("nothing received for {0:?}")]
    Silent(Duration),
}

impl ClientError {
    /// Whether the connection dropped (or could not be made), rather than the server saying
    /// no: the error a resume may get past. A close with a code, an HTTP refusal of the
    /// upgrade and a bad message are the server's word, and final.
    pub fn is_drop(&self) -> bool {
        use tungstenite::Error as Ws;
        let network = |e: &Ws| {
            matches!(
                e,
                Ws::Io(_) | Ws::ConnectionClosed | Ws::AlreadyClosed | Ws::Protocol(_)
            )
        };
        match self {
            ClientError::Connect { source, .. } => match source {
                Ws::Http(response) => response.status().is_server_error(),
                other => network(other),
            },
            ClientError::Lost(e) => network(e),
            ClientError::Closed { code, .. } => *code == 1006,
            ClientError::Silent(_) => true,
            _ => false,
        }
    }
}

/// What a call to [`Client::recv`] received, after applying it to the local world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A keyframe replaced the local world; it is now at `tick`.
    Snapshot {
        /// The world's tick.
        tick: u64,
        /// The last move the server applied.
        ack: u32,
    },
    /// A delta advanced the local world to `tick`.
    Delta {
        /// The world's tick.
        tick: u64,
        /// The last move the server applied.
        ack: u32,
    },
    /// A pong, with the round-trip time measured on this machine's clock.
    Pong {
        /// The pong as received.
        pong: Pong,
        /// Now minus the ping's send time.
        rtt: Duration,
    },
    /// This player's private fields, applied to the local world (they follow the tick's frame).
    Private {
        /// The tick of the frame they follow.
        tick: u64,
    },
    /// Events the game told this player in a tick (after the tick's frame).
    Events(Events),
    /// The match is over, with its results. A new match's [`Received::Welcome`] may follow.
    MatchEnded(MatchEnded),
    /// A new match began (after [`Received::MatchEnded`]): the player has a new entity id, and
    /// a snapshot follows.
    Welcome {
        /// The player's entity id in the new match.
        player_id: u32,
    },
    /// The connection dropped and the player took its seat back on a new one (with
    /// [`Client::auto_resume`]): the same entity, and a snapshot follows.
    Resumed {
        /// Connections tried, the one that worked included.
        attempts: u32,
        /// From the drop being noticed to the new welcome.
        took: Duration,
    },
}

/// How long to wait before resume attempt `attempt` (from 1): 100 ms doubling to 2 s, each
/// drawn at random between half and all of it, so that a crowd dropped at once does not come
/// back at once.
pub fn resume_backoff(attempt: u32) -> Duration {
    let full = Duration::from_millis(100).saturating_mul(1 << attempt.saturating_sub(1).min(5));
    let full = full.min(Duration::from_secs(2));
    full.mul_f64(rand::random_range(0.5..=1.0))
}

/// The silence [`Client::auto_resume`] takes for a dropped connection when not told another:
/// a room sends a frame every tick (at 1 Hz at the slowest), and the server pings every few
/// seconds.
pub const DEFAULT_SILENCE_LIMIT: Duration = Duration::from_secs(3);

/// A connected player.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Where it connected: where a resume connects again.
    url: String,
    welcome: Welcome,
    /// The game's schema, from the welcome: how every snapshot and delta is read.
    schema: Arc<Schema>,
    world: Option<NetWorld>,
    seq: u32,
    /// The last move the server applied, from its `Ack` messages.
    ack: u32,
    bytes_received: u64,
    /// Whether snapshots and deltas are decoded and applied (see [`Client::keep_world`]).
    keeps_world: bool,
    /// The match ended: a new welcome may come.
    ended: bool,
    /// With auto-resume: how long a silence means a dropped connection.
    silence: Option<Duration>,
    /// A send failed for the network (with auto-resume): the next receive resumes.
    dropped: bool,
    /// When the last message came (with auto-resume, the silence counts from here).
    last_heard: tokio::time::Instant,
    /// A resume under way.
    resuming: Option<Resuming>,
}

/// A resume under way (see [`Client::resume`]).
struct Resuming {
    noticed: tokio::time::Instant,
    deadline: tokio::time::Instant,
    attempts: u32,
    next_try: tokio::time::Instant,
    /// The attempt under way, and when it is given up.
    pending: Option<(
        tokio::task::JoinHandle<Result<Client, ClientError>>,
        tokio::time::Instant,
    )>,
}

/// How long one resume attempt may take (a connection the network holds silent, a welcome
/// that never comes) before it is given up and the next one made.
pub const RESUME_ATTEMPT_LIMIT: Duration = Duration::from_secs(3);

/// A seat taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Connections tried, the one that worked included.
    pub attempts: u32,
    /// From the drop being noticed to the new welcome.
    pub took: Duration,
}

impl Client {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8080/ws`) as `name` and waits for the welcome.
    pub async fn connect(url: &str, name: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, Hello::new(name)).await
    }

    /// Like [`Client::connect`], with a hello of the caller's making (a join token, or a
    /// deliberately wrong version in tests).
    pub async fn connect_with(url: &str, hello: Hello) -> Result<Self, ClientError> {
        let config = WebSocketConfig::default().max_message_size(Some(MAX_SERVER_MESSAGE));
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map_err(|source| ClientError::Connect {
                url: url.into(),
                source,
            })?;
        ws.send(WsMessage::Binary(ClientMsg::Hello(hello).encode(None).into()))
            .await?;
        let mut bytes_received = 0;
        let first = next_binary(&mut ws, &mut bytes_received).await?;
        let welcome = match ServerMsg::decode(&first, None)? {
            ServerMsg::Welcome(w) => w,
            other => return Err(ClientError::Protocol(format!("expected welcome, got {other:?}"))),
        };
        Ok(Self {
            ws,
            url: url.into(),
            schema: Arc::new(welcome.schema.clone()),
            welcome,
            world: None,
            seq: 0,
            ack: 0,
            bytes_received,
            keeps_world: true,
            ended: false,
            silence: None,
            dropped: false,
            last_heard: tokio::time::Instant::now(),
            resuming: None,
        })
    }

    /// Whether [`Client::recv`] takes the seat back by itself when the connection fails, or
    /// nothing comes for `silence` ([`DEFAULT_SILENCE_LIMIT`] when `None`), reporting
    /// [`Received::Resumed`]; meanwhile sends that fail are dropped (as the network would).
    /// Off by default.
    pub fn auto_resume(&mut self, on: bool, silence: Option<Duration>) {
        self.silence = on.then(|| silence.unwrap_or(DEFAULT_SILENCE_LIMIT));
    }

    /// The resume token of this player's seat (empty when the room keeps no seats).
    pub fn resume_token(&self) -> &str {
        &self.welcome.resume
    }

    /// How long the room keeps this player's seat after a drop.
    pub fn grace(&self) -> Duration {
        Duration::from_millis(u64::from(self.welcome.grace_ms))
    }

    /// One attempt to take the seat back on a new connection. On success the player has its
    /// entity again (a new resume token comes with the welcome), its input `seq` goes on, and
    /// its world waits for the snapshot that follows.
    pub async fn resume_once(&mut self) -> Result<(), ClientError> {
        let fresh = Self::connect_with(&self.url, self.resuming_hello()?).await?;
        self.adopt(fresh)
    }

    /// The hello that takes this player's seat back.
    fn resuming_hello(&self) -> Result<Hello, ClientError> {
        if self.welcome.resume.is_empty() {
            return Err(ClientError::Protocol(
                "the room keeps no seats: nothing to resume".into(),
            ));
        }
        Ok(Hello::resuming(&self.welcome.resume))
    }

    /// Takes over the connection of `fresh`, a resume of this player's seat.
    fn adopt(&mut self, fresh: Client) -> Result<(), ClientError> {
        if fresh.welcome.player_id != self.welcome.player_id {
            return Err(ClientError::Protocol(format!(
                "resumed as entity {}, not {}",
                fresh.welcome.player_id, self.welcome.player_id
            )));
        }
        self.bytes_received += fresh.bytes_received;
        self.ws = fresh.ws;
        self.schema = fresh.schema;
        self.welcome = fresh.welcome;
        self.world = None;
        self.ended = false;
        self.dropped = false;
        self.last_heard = tokio::time::Instant::now();
        Ok(())
    }

    /// Takes the seat back, trying again after each dropped attempt ([`resume_backoff`]) until
    /// the grace is over; the server's refusal (4001: the seat is gone) ends it at once.
    /// Returns the attempts made.
    ///
    /// Cancel-safe: each attempt runs on a task of its own, which a cancelled call leaves
    /// running and the next call waits for (an attempt cut off after the server took its
    /// token would leave the seat's next token unread).
    pub async fn resume(&mut self) -> Result<Resumed, ClientError> {
        let now = tokio::time::Instant::now();
        let hello = self.resuming_hello()?;
        let grace = self.grace();
        let resuming = self.resuming.get_or_insert_with(|| Resuming {
            noticed: now,
            deadline: now + grace,
            attempts: 0,
            next_try: now,
            pending: None,
        });
        loop {
            let (pending, give_up) = match &mut resuming.pending {
                Some(pending) => pending,
                None => {
                    tokio::time::sleep_until(resuming.next_try).await;
                    resuming.attempts += 1;
                    let (url, hello) = (self.url.clone(), hello.clone());
                    let task = tokio::spawn(async move { Self::connect_with(&url, hello).await });
                    let give_up = (tokio::time::Instant::now() + RESUME_ATTEMPT_LIMIT).min(resuming.deadline);
                    resuming.pending.insert((task, give_up))
                }
            };
            let attempt = match tokio::time::timeout_at(*give_up, &mut *pending).await {
                Ok(attempt) => attempt,
                Err(_) => {
                    pending.abort();
                    Ok(Err(ClientError::Silent(RESUME_ATTEMPT_LIMIT)))
                }
            };
            resuming.pending = None;
            let err = match attempt {
                Ok(Ok(fresh)) => {
                    let done = Resumed {
                        attempts: resuming.attempts,
                        took: resuming.noticed.elapsed(),
                    };
                    self.resuming = None;
                    self.adopt(fresh)?;
                    return Ok(done);
                }
                Ok(Err(err)) => err,
                Err(panicked) => ClientError::Protocol(format!("resume attempt failed: {panicked}")),
            };
            let now = tokio::time::Instant::now();
            if !err.is_drop() || now >= resuming.deadline {
                self.resuming = None;
                return Err(err);
            }
            tracing::debug!(attempt = resuming.attempts, %err, "resume failed; trying again");
            resuming.next_try = now + resume_backoff(resuming.attempts);
        }
    }

    /// Joins the room of a seat from [`rooms_api::matchmake`], as `name` (the name the seat was
    /// asked for), with its token if it has one and the options matchmaking was asked with.
    pub async fn join(seat: &rooms_api::HeldPlace, name: &str) -> Result<Self, ClientError> {
        let hello = Hello {
            token: seat.token.clone().unwrap_or_default(),
            options: seat.options.iter().map(|(k, v)| (k.to_owned(), v.clone())).collect(),
            ..Hello::new(name)
        };
        Self::connect_with(&seat.ws, hello).await
    }

    /// The welcome: this player's id, the tick rate and the game's schema.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The game's schema: its entity kinds and their fields, its input's fields.
    pub fn schema(&self) -> &Arc<Schema> {
        &self.schema
    }

    /// This player's entity id.
    pub fn player_id(&self) -> u32 {
        self.welcome.player_id
    }

    /// Whether to decode snapshots and deltas and keep the world (the default). Without it,
    /// [`Client::recv`] still reports each snapshot and delta with its tick and ack, read
    /// from the first bytes only ([`ServerMsg::peek_tick`]), but [`Client::world`] is `None`
    /// and drift goes unnoticed: for load generators, whose cost would otherwise be mostly
    /// decoding and applying every delta.
    pub fn keep_world(&mut self, keep: bool) {
        self.keeps_world = keep;
        if !keep {
            self.world = None;
        }
    }

    /// The local copy of the world, once the first snapshot arrived.
    pub fn world(&self) -> Option<&NetWorld> {
        self.world.as_ref()
    }

    /// Payload bytes received so far.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received
    }

    /// Sends an input (one value per input field of the schema, in its order) and returns its
    /// sequence number.
    pub async fn send_input(&mut self, values: &[i32]) -> Result<u32, ClientError> {
        self.seq += 1;
        let seq = self.seq;
        let values = InputValues::new(values);
        self.send(&ClientMsg::Input(Input { seq, values })).await?;
        Ok(seq)
    }

    /// The input values for fields given by name (the others 0), in schema order. A name the
    /// game's input does not have is an error.
    pub fn input_values(&self, named: &[(&str, i32)]) -> Result<Vec<i32>, ClientError> {
        let mut values = vec![0; self.schema.input.len()];
        for (name, value) in named {
            let i = self
                .schema
                .input_named(name)
                .ok_or_else(|| ClientError::Protocol(format!("{} has no input field {name:?}", self.schema.game)))?;
            values[i] = *value;
        }
        Ok(values)
    }

    /// Sends the direction `(dx, dy)` as the input fields named `dx` and `dy` (the others 0),
    /// for games that have them (arena and tanks do), and returns its sequence number.
    pub async fn send_move(&mut self, dx: i8, dy: i8) -> Result<u32, ClientError> {
        let values = self.input_values(&[("dx", i32::from(dx)), ("dy", i32::from(dy))])?;
        self.send_input(&values).await
    }

    /// Sends a message of the kind named `kind`, with one value per parameter of the kind.
    pub async fn send_message(&mut self, kind: &str, values: Vec<Value>) -> Result<(), ClientError> {
        let kind = self
            .schema
            .message_named(kind)
            .ok_or_else(|| ClientError::Protocol(format!("{} has no message {kind:?}", self.schema.game)))?;
        self.send(&ClientMsg::Message(Message { kind, values })).await
    }

    /// Sends a ping stamped with the current time; the pong comes back through [`Client::recv`].
    pub async fn send_ping(&mut self, nonce: u32) -> Result<(), ClientError> {
        self.send(&ClientMsg::Ping(Ping {
            nonce,
            client_time_us: unix_micros(),
        }))
        .await
    }

    /// Sends any message as is (for tests of the server's checks). With auto-resume, a send
    /// the network fails is dropped, and the next receive resumes.
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), ClientError> {
        if self.dropped {
            return Ok(());
        }
        let bytes = msg.encode(Some(&self.schema));
        match self.ws.send(WsMessage::Binary(bytes.into())).await {
            Ok(()) => Ok(()),
            Err(err) => {
                let err = ClientError::Lost(err);
                if self.silence.is_some() && err.is_drop() {
                    self.dropped = true;
                    return Ok(());
                }
                Err(err)
            }
        }
    }

    /// Receives the next snapshot, delta or pong and applies it to the local world. Acks are
    /// taken in passing: they arrive just before the frame they belong to, and that frame's
    /// `Received` carries them.
    pub async fn recv(&mut self) -> Result<Received, ClientError> {
        let Some(silence) = self.silence else {
            return self.recv_once().await;
        };
        if !self.dropped && self.resuming.is_none() {
            // From the last message, not from this call: a caller's select loop makes a new
            // call for every timer it has.
            let quiet_until = self.last_heard + silence;
            let resumable = !self.welcome.resume.is_empty();
            let err = match tokio::time::timeout_at(quiet_until, self.recv_once()).await {
                Ok(Err(err)) if err.is_drop() && resumable => err,
                Ok(received) => return received,
                Err(_) if resumable => ClientError::Silent(silence),
                Err(_) => return Err(ClientError::Silent(silence)),
            };
            tracing::debug!(%err, "connection dropped; resuming");
        }
        let Resumed { attempts, took } = self.resume().await?;
        Ok(Received::Resumed { attempts, took })
    }

    /// [`Client::recv`], without resuming.
    async fn recv_once(&mut self) -> Result<Received, ClientError> {
        loop {
            let bytes = next_binary(&mut self.ws, &mut self.bytes_received).await?;
            self.last_heard = tokio::time::Instant::now();
            if !self.keeps_world {
                let ack = self.ack;
                match ServerMsg::peek_tick(&bytes) {
                    Some(Peeked::Snapshot(tick)) => return Ok(Received::Snapshot { tick, ack }),
                    Some(Peeked::Delta(tick)) => return Ok(Received::Delta { tick, ack }),
                    None => {}
                }
            }
            let msg = ServerMsg::decode(&bytes, Some(&self.schema))?;
            if let Some(received) = self.apply(msg)? {
                return Ok(received);
            }
        }
    }

    /// The last move the server applied (0 before any).
    pub fn ack(&self) -> u32 {
        self.ack
    }

    /// Applies one message; an ack only updates state and yields nothing to report.
    fn apply(&mut self, msg: ServerMsg) -> Result<Option<Received>, ClientError> {
        let received = match msg {
            ServerMsg::Snapshot(s) => {
                self.world = Some(NetWorld::from_snapshot(&s)?);
                Received::Snapshot {
                    tick: s.tick,
                    ack: self.ack,
                }
            }
            ServerMsg::Delta(d) => {
                let world = self
                    .world
                    .as_mut()
                    .ok_or_else(|| ClientError::Protocol("delta before any snapshot".into()))?;
                world.apply(&d, &self.schema)?;
                Received::Delta {
                    tick: d.tick,
                    ack: self.ack,
                }
            }
            ServerMsg::Pong(pong) => {
                let rtt = Duration::from_micros(unix_micros().saturating_sub(pong.client_time_us));
                Received::Pong { pong, rtt }
            }
            ServerMsg::Ack(ack) => {
                self.ack = ack.seq;
                return Ok(None);
            }
            ServerMsg::Private(private) => {
                if let Some(world) = self.world.as_mut() {
                    world.apply_private(&private, &self.schema, self.welcome.player_id)?;
                }
                Received::Private { tick: private.tick }
            }
            ServerMsg::Events(events) => Received::Events(events),
            ServerMsg::MatchEnded(ended) => {
                self.ended = true;
                Received::MatchEnded(ended)
            }
            ServerMsg::Welcome(welcome) => {
                if !std::mem::take(&mut self.ended) {
                    return Err(ClientError::Protocol("a second welcome while the match goes on".into()));
                }
                let player_id = welcome.player_id;
                self.schema = Arc::new(welcome.schema.clone());
                self.welcome = welcome;
                self.world = None;
                Received::Welcome { player_id }
            }
        };
        Ok(Some(received))
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.ws.close(None).await?;
        // Drain until the server's close reply so the close handshake completes.
        while let Some(Ok(_)) = self.ws.next().await {}
        Ok(())
    }
}

/// Reads the next binary message, skipping control frames; a close frame becomes an error.
async fn next_binary(
    ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>,
    bytes_received: &mut u64,
) -> Result<tungstenite::Bytes, ClientError> {
    loop {
        let msg = match ws.next().await {
            Some(msg) => msg?,
            None => {
                return Err(ClientError::Closed {
                    code: 1006,
                    reason: "connection ended".into(),
                });
            }
        };
        match msg {
            WsMessage::Binary(bytes) => {
                *bytes_received += bytes.len() as u64;
                return Ok(bytes);
            }
            WsMessage::Close(frame) => {
                let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
                return Err(ClientError::Closed { code, reason });
            }
            WsMessage::Text(_) => return Err(ClientError::Protocol("text message from the server".into())),
            WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => {}
        }
    }
}
