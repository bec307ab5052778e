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
}

/// A connected player.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
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
            schema: Arc::new(welcome.schema.clone()),
            welcome,
            world: None,
            seq: 0,
            ack: 0,
            bytes_received,
            keeps_world: true,
            ended: false,
        })
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

    /// Sends any message as is (for tests of the server's checks).
    pub async fn send(&mut self, msg: &ClientMsg) -> Result<(), ClientError> {
        let bytes = msg.encode(Some(&self.schema));
        self.ws.send(WsMessage::Binary(bytes.into())).await?;
        Ok(())
    }

    /// Receives the next snapshot, delta or pong and applies it to the local world. Acks are
    /// taken in passing: they arrive just before the frame they belong to, and that frame's
    /// `Received` carries them.
    pub async fn recv(&mut self) -> Result<Received, ClientError> {
        loop {
            let bytes = next_binary(&mut self.ws, &mut self.bytes_received).await?;
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
