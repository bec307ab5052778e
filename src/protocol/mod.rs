//! The wire protocol, version 5: every message a player and the server exchange, and the one
//! encoding they share.
//!
//! PROTOCOL.md describes the same bytes for people writing clients in other languages; the
//! test vectors in `tests.rs` are the ones printed there, checked byte for byte.
//!
//! Messages travel one per binary WebSocket message, in bincode 2's standard configuration
//! (little endian, variable-length integers), written and read by hand ([`wire`]) because
//! what follows an entity's kind is the game's business: the game's [`Schema`], sent in the
//! [`Welcome`], says which fields each kind has and how each is sent, and which fields the
//! [`Input`], the [`Message`]s and the [`Events`] have. So entities, updates, inputs, messages
//! and events are decoded *with* a schema; everything else is the same for every game.
//!
//! - [`schema`]: the schema itself, and its checks (a schema is untrusted input to a client).
//! - [`values`]: texts, and the parameters of messages, events and options.
//! - [`entities`]: entities, updates and private fields on the wire, and the checksums.
//! - [`game_messages`]: messages, events, private fields and a match's end.
//! - [`wire`]: the primitives, canonical by construction.
//! - [`delta`]: the world as the wire sees it, and the diffs between two worlds.
//! - [`frames`]: the WebSocket frames the messages travel in (RFC 6455, server side).
//! - [`ended`]: how a room ends, and the close code and reason its players get for it.
//! - [`rooms_api`]: the rooms API's JSON, written by the server and read by clients.

pub mod delta;
pub mod ended;
pub mod entities;
pub(crate) mod frames;
pub mod game_messages;
pub mod rooms_api;
pub mod schema;
pub mod values;
mod wire;

use std::time::{SystemTime, UNIX_EPOCH};

use entities::{new_texts, read_entities, read_updates, write_entities, write_updates};
pub use entities::{owner, private_checksum, world_checksum};
pub use game_messages::{Events, GameEvent, MatchEnded, Message, Private, PrivateUpdate, Results, Standing};
pub use schema::{
    EventKind, Field, FieldType, InputField, InputType, Kind, MAX_FIELDS, MAX_INPUT_FIELDS, MessageKind, Role, Schema,
};
pub use values::{Options, Param, ParamType, Text, Value};
use values::{read_tagged, write_tagged};
pub use wire::DecodeError;
use wire::{Reader, Writer};

/// The protocol version a client must state in its [`Hello`]; bumped with every wire change.
pub const PROTOCOL_VERSION: u32 = 5;

/// Largest client message the server accepts, in bytes (also its WebSocket message limit).
pub const MAX_CLIENT_MESSAGE: usize = 1024;

/// Largest server message a client should accept: a keyframe of a very full world.
pub const MAX_SERVER_MESSAGE: usize = 16 << 20;

/// Longest player name accepted in a [`Hello`], in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Longest join token accepted in a [`Hello`], in bytes.
pub const MAX_TOKEN_LEN: usize = 256;

/// Longest resume token accepted in a [`Hello`], in bytes (the server's are 65 at most: a room
/// id of up to 32, a dot, 32 hex digits).
pub const MAX_RESUME_LEN: usize = 96;

/// An entity id: unique for the life of a room's world, never reused, never 0.
pub type EntityId = u32;

/// A message from a player to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg {
    /// The first message on every connection: version check and identity.
    Hello(Hello),
    /// The player's input from now on: the game's input fields.
    Input(Input),
    /// A latency probe, answered at once with a [`Pong`].
    Ping(Ping),
    /// A discrete command of one of the schema's message kinds.
    Message(Message),
}

/// The opening message of a player connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// A display name, at most [`MAX_NAME_LEN`] bytes of UTF-8; may be empty.
    pub name: String,
    /// A join token when the server requires one, else empty.
    pub token: String,
    /// The resume token of a seat this player held (from its last [`Welcome`]) to take it
    /// back after its connection dropped; empty to join afresh.
    pub resume: String,
    /// Options by name (the schema's `options`): each a number or a text.
    pub options: Vec<(String, Value)>,
}

impl Hello {
    /// A hello of this protocol version as `name`, with no token and no options.
    pub fn new(name: &str) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            name: name.into(),
            token: String::new(),
            resume: String::new(),
            options: Vec::new(),
        }
    }

    /// A hello taking back the seat `resume` names (a [`Welcome::resume`]).
    pub fn resuming(resume: &str) -> Self {
        Self {
            resume: resume.into(),
            ..Self::new("")
        }
    }
}

/// A player's input: the game's input fields, in schema order, until the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Input {
    /// Increases with every input (from 1); stale (lower or equal) ones are ignored.
    pub seq: u32,
    /// The values, one per input field of the schema.
    pub values: InputValues,
}

/// The values of an input, one per input field of the schema (at most [`MAX_INPUT_FIELDS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InputValues {
    len: u8,
    values: [i32; MAX_INPUT_FIELDS],
}

impl InputValues {
    /// The values given, in schema order (at most [`MAX_INPUT_FIELDS`]; more are cut).
    pub fn new(values: &[i32]) -> Self {
        let mut out = Self::default();
        let n = values.len().min(MAX_INPUT_FIELDS);
        out.values[..n].copy_from_slice(&values[..n]);
        out.len = n as u8;
        out
    }

    /// The values.
    pub fn get(&self) -> &[i32] {
        &self.values[..usize::from(self.len)]
    }
}

/// A latency probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// Chosen by the client, echoed in the pong.
    pub nonce: u32,
    /// The client's clock when it sent the ping (any epoch), echoed in the pong.
    pub client_time_us: u64,
}

/// A message from the server to a player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg {
    /// First reply to a good [`Hello`]: who the player is, and the game's schema.
    Welcome(Welcome),
    /// The whole world: sent on join and whenever a player must resynchronise.
    Snapshot(Snapshot),
    /// What changed in one tick.
    Delta(Delta),
    /// The answer to a [`Ping`].
    Pong(Pong),
    /// Which of this player's inputs the server has applied; sent just before the tick's frame
    /// whenever it changed.
    Ack(Ack),
    /// What happened in a tick, as far as this player is told; after the tick's frame.
    Events(Events),
    /// This player's private fields; after the tick's frame.
    Private(Private),
    /// The match is over, with its results.
    MatchEnded(MatchEnded),
}

/// The `seq` of the last [`Input`] the server applied for this player.
///
/// Acks travel on their own so that snapshots and deltas are the same bytes for every player
/// and can be encoded once per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// The applied input's `seq`.
    pub seq: u32,
}

/// Who the player is and what game it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The server's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// This player's entity id.
    pub player_id: u32,
    /// Ticks per second.
    pub tick_hz: u32,
    /// The secret that takes this seat back after a dropped connection (a [`Hello::resume`]),
    /// valid until the next welcome; empty when the room keeps no seats.
    pub resume: String,
    /// How long the seat is kept after a drop, in milliseconds (0: not kept).
    pub grace_ms: u32,
    /// The game: its entity kinds and their fields, and its input's fields.
    pub schema: Schema,
}

/// One entity in full: its id, its kind, and its kind's field values in schema order (the
/// unused ones are 0). Signed fields hold their two's complement bits; a text field holds an
/// index into the texts of the world or message the entity is in (0 is "").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity {
    /// Unique for the life of the match's world; never reused, never 0.
    pub id: EntityId,
    /// Its kind: an index into the schema's kinds.
    pub kind: u8,
    /// Bit `i` set when field `i` is a text (its value an index into texts).
    pub texts: u8,
    /// Its field values.
    pub values: [u32; MAX_FIELDS],
}

impl Entity {
    /// An entity of `kind` with `values` (at most [`MAX_FIELDS`]; the rest 0) and no texts.
    pub fn new(id: EntityId, kind: u8, values: &[u32]) -> Self {
        let mut all = [0; MAX_FIELDS];
        let n = values.len().min(MAX_FIELDS);
        all[..n].copy_from_slice(&values[..n]);
        Self {
            id,
            kind,
            texts: 0,
            values: all,
        }
    }
}

/// A keyframe: the complete world at `tick` (its public fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The tick this world is the state after.
    pub tick: u64,
    /// Every entity, in ascending id order.
    pub entities: Vec<Entity>,
    /// The texts the entities' text fields index (index 0 is "").
    pub texts: Vec<Text>,
}

/// The changes from the world at `tick - base_gap` to the world at `tick`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The tick this delta brings the world to.
    pub tick: u64,
    /// How many ticks back the base is: apply only to the world at `tick - base_gap`.
    pub base_gap: u32,
    /// Entities that did not exist at the base, in full.
    pub spawned: Vec<Entity>,
    /// Entities that changed, with only their changed fields.
    pub updated: Updates,
    /// Ids of entities that no longer exist.
    pub removed: Vec<EntityId>,
    /// When present, the [`world_checksum`] of the world at `tick`: a client whose world hashes
    /// differently has drifted and must resynchronise. Sent about once a second.
    pub checksum: Option<u32>,
    /// The texts the spawned entities' and updates' text fields index (index 0 is "").
    pub texts: Vec<Text>,
}

impl Delta {
    /// The tick this delta applies to, if `base_gap` is at most `tick`.
    pub fn base_tick(&self) -> Option<u64> {
        self.tick.checked_sub(u64::from(self.base_gap))
    }
}

/// Changed entities, grouped by kind (kinds ascending, each once), ids strictly ascending
/// within a group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Updates(pub Vec<KindUpdates>);

impl Updates {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|g| g.updates.is_empty())
    }

    /// Every update, with its kind.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &Update)> {
        self.0.iter().flat_map(|g| g.updates.iter().map(move |u| (g.kind, u)))
    }
}

/// The updates of one kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindUpdates {
    /// The kind.
    pub kind: u8,
    /// Its changed entities, ids strictly ascending.
    pub updates: Vec<Update>,
}

/// One entity's changed fields. Bit `i` of `mask` says field `i` changed; `values[i]` is then
/// its new value, except for a [`FieldType::Coord`], where it is the signed step from the old
/// value (two's complement), a [`FieldType::Flag`], which flipped (its value is unused), and a
/// [`FieldType::Text`], an index into the message's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    /// The entity's id.
    pub id: EntityId,
    /// Which fields changed.
    pub mask: u8,
    /// The changes, by field.
    pub values: [u32; MAX_FIELDS],
}

/// The answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// Echoed from the ping.
    pub nonce: u32,
    /// Echoed from the ping.
    pub client_time_us: u64,
    /// The last tick the room completed.
    pub server_tick: u64,
    /// The server's clock, microseconds since the Unix epoch.
    pub server_time_us: u64,
}

/// Why a message could not be decoded.
pub type DecodeFailure = DecodeError;

/// The most options a hello may carry.
pub const MAX_HELLO_OPTIONS: usize = schema::MAX_PARAMS;

impl ClientMsg {
    /// Decodes one client message; `schema` is the game's (inputs and messages are read by
    /// it; without one, they are refused). The whole buffer must be exactly one message,
    /// except a hello of another protocol version, whose version alone is read (so that it can
    /// be refused for its version, whatever the rest of it holds).
    pub fn decode(bytes: &[u8], schema: Option<&Schema>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let need = || schema.ok_or(DecodeError::Invalid("an input or message without a schema"));
        let msg = match r.u32()? {
            0 => {
                let version = r.u32()?;
                if version != PROTOCOL_VERSION {
                    return Ok(ClientMsg::Hello(Hello {
                        version,
                        name: String::new(),
                        token: String::new(),
                        resume: String::new(),
                        options: Vec::new(),
                    }));
                }
                let name = r.str(MAX_CLIENT_MESSAGE)?;
                let token = r.str(MAX_CLIENT_MESSAGE)?;
                let resume = r.str(MAX_CLIENT_MESSAGE)?;
                // An option is at least 3 bytes (name length, tag, value).
                let n = r.count(3)?;
                if n > MAX_HELLO_OPTIONS {
                    return Err(DecodeError::OutOfRange("number of options"));
                }
                let options = (0..n)
                    .map(|_| Ok((r.str(schema::MAX_SCHEMA_NAME)?, read_tagged(&mut r)?)))
                    .collect::<Result<_, DecodeError>>()?;
                ClientMsg::Hello(Hello {
                    version,
                    name,
                    token,
                    resume,
                    options,
                })
            }
            1 => {
                let input = &need()?.input;
                let seq = r.u32()?;
                let mut values = [0; MAX_INPUT_FIELDS];
                for (field, value) in input.iter().zip(&mut values) {
                    *value = match field.ty {
                        InputType::I8 => i32::from(r.u8()? as i8),
                        InputType::U8 => i32::from(r.u8()?),
                        InputType::Bool => i32::from(r.bool()?),
                        InputType::I32 => r.i32()?,
                        InputType::U32 => i32::try_from(r.u32()?).map_err(|_| DecodeError::OutOfRange("u32 input"))?,
                    };
                }
                ClientMsg::Input(Input {
                    seq,
                    values: InputValues {
                        len: input.len().min(MAX_INPUT_FIELDS) as u8,
                        values,
                    },
                })
            }
            2 => ClientMsg::Ping(Ping {
                nonce: r.u32()?,
                client_time_us: r.varint()?,
            }),
            3 => ClientMsg::Message(Message::read(&mut r, need()?)?),
            _ => return Err(DecodeError::Unknown("client message tag")),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Whether `bytes` are a `Message` (tag 3), told by their first byte without decoding.
    pub fn is_message(bytes: &[u8]) -> bool {
        bytes.first() == Some(&3)
    }

    /// Encodes this message; `schema` is the game's (an input's values and a message's are
    /// written by it; missing values are sent as 0 or ""). A hello needs none.
    pub fn encode(&self, schema: Option<&Schema>) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            ClientMsg::Hello(h) => {
                w.u32(0);
                w.u32(h.version);
                w.str(&h.name);
                w.str(&h.token);
                w.str(&h.resume);
                w.varint(h.options.len() as u64);
                for (name, value) in &h.options {
                    w.str(name);
                    write_tagged(&mut w, value);
                }
            }
            ClientMsg::Input(i) => {
                w.u32(1);
                w.u32(i.seq);
                let input = schema.map_or(&[][..], |s| &s.input);
                for (k, field) in input.iter().enumerate() {
                    let v = i.values.get().get(k).copied().unwrap_or_default();
                    match field.ty {
                        InputType::I8 | InputType::U8 => w.u8(v as u8),
                        InputType::Bool => w.bool(v != 0),
                        InputType::I32 => w.i32(v),
                        InputType::U32 => w.u32(v as u32),
                    }
                }
            }
            ClientMsg::Ping(p) => {
                w.u32(2);
                w.u32(p.nonce);
                w.varint(p.client_time_us);
            }
            ClientMsg::Message(m) => {
                w.u32(3);
                match schema {
                    Some(schema) => m.write(&mut w, schema),
                    None => w.u32(u32::from(m.kind)),
                }
            }
        }
        w.0
    }
}

impl ServerMsg {
    /// About how many bytes the encoding takes (enough for most, so the buffer is allocated
    /// once): a few bytes per entity field, per update and per removal.
    fn size_hint(&self) -> usize {
        match self {
            ServerMsg::Snapshot(m) => 16 + m.entities.len() * 16,
            ServerMsg::Delta(m) => {
                let updates: usize = m.updated.0.iter().map(|g| 2 + g.updates.len() * 6).sum();
                24 + m.spawned.len() * 16 + updates + m.removed.len() * 4
            }
            _ => 64,
        }
    }

    /// Decodes one server message; `schema` is the game's, from the [`Welcome`] (entities,
    /// updates, events and private fields are read by it; without one, they are refused). The
    /// whole buffer must be exactly one message.
    pub fn decode(bytes: &[u8], schema: Option<&Schema>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let need = || schema.ok_or(DecodeError::Invalid("a game message before the welcome's schema"));
        let msg = match r.u32()? {
            0 => ServerMsg::Welcome(Welcome {
                version: r.u32()?,
                player_id: r.u32()?,
                tick_hz: r.u32()?,
                resume: r.str(MAX_RESUME_LEN)?,
                grace_ms: r.u32()?,
                schema: Schema::decode(&mut r)?,
            }),
            1 => {
                let schema = need()?;
                let tick = r.varint()?;
                let mut texts = new_texts();
                let entities = read_entities(&mut r, schema, &mut texts)?;
                ServerMsg::Snapshot(Snapshot { tick, entities, texts })
            }
            2 => {
                let schema = need()?;
                let (tick, base_gap) = (r.varint()?, r.u32()?);
                let mut texts = new_texts();
                let spawned = read_entities(&mut r, schema, &mut texts)?;
                let updated = read_updates(&mut r, schema, &mut texts)?;
                let n = r.count(1)?;
                let removed = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
                let checksum = if r.option()? { Some(r.u32()?) } else { None };
                ServerMsg::Delta(Delta {
                    tick,
                    base_gap,
                    spawned,
                    updated,
                    removed,
                    checksum,
                    texts,
                })
            }
            3 => ServerMsg::Pong(Pong {
                nonce: r.u32()?,
                client_time_us: r.varint()?,
                server_tick: r.varint()?,
                server_time_us: r.varint()?,
            }),
            4 => ServerMsg::Ack(Ack { seq: r.u32()? }),
            5 => ServerMsg::Events(Events::read(&mut r, need()?)?),
            6 => ServerMsg::Private(Private::read(&mut r, need()?)?),
            7 => ServerMsg::MatchEnded(MatchEnded::read(&mut r)?),
            _ => return Err(DecodeError::Unknown("server message tag")),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes this message with `schema` (the game's: entities, updates, events and private
    /// fields are written by it). The server's own messages always fit their schema.
    pub fn encode(&self, schema: &Schema) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.size_hint()));
        match self {
            ServerMsg::Welcome(m) => {
                w.u32(0);
                w.u32(m.version);
                w.u32(m.player_id);
                w.u32(m.tick_hz);
                w.str(&m.resume);
                w.u32(m.grace_ms);
                m.schema.encode(&mut w);
            }
            ServerMsg::Snapshot(m) => {
                w.u32(1);
                w.varint(m.tick);
                write_entities(&mut w, &m.entities, &m.texts, schema);
            }
            ServerMsg::Delta(m) => {
                w.u32(2);
                w.varint(m.tick);
                w.u32(m.base_gap);
                write_entities(&mut w, &m.spawned, &m.texts, schema);
                write_updates(&mut w, &m.updated, &m.texts, schema);
                w.varint(m.removed.len() as u64);
                m.removed.iter().for_each(|id| w.u32(*id));
                w.option_u32(m.checksum);
            }
            ServerMsg::Pong(m) => {
                w.u32(3);
                w.u32(m.nonce);
                w.varint(m.client_time_us);
                w.varint(m.server_tick);
                w.varint(m.server_time_us);
            }
            ServerMsg::Ack(m) => {
                w.u32(4);
                w.u32(m.seq);
            }
            ServerMsg::Events(m) => {
                w.u32(5);
                m.write(&mut w, schema);
            }
            ServerMsg::Private(m) => {
                w.u32(6);
                m.write(&mut w, schema);
            }
            ServerMsg::MatchEnded(m) => {
                w.u32(7);
                m.write(&mut w);
            }
        }
        w.0
    }

    /// The tick of a snapshot or delta, read from its first bytes (the tag, then the tick)
    /// without decoding or checking the rest; `None` for other messages or bytes that do not
    /// start like one. For clients that follow the stream without keeping a world, such as
    /// load generators: decoding every delta is most of what a client costs.
    pub fn peek_tick(bytes: &[u8]) -> Option<Peeked> {
        let mut r = Reader::new(bytes);
        let tag = r.u32().ok()?;
        let tick = r.varint().ok()?;
        match tag {
            1 => Some(Peeked::Snapshot(tick)),
            2 => Some(Peeked::Delta(tick)),
            _ => None,
        }
    }
}

/// What [`ServerMsg::peek_tick`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peeked {
    /// A snapshot of this tick.
    Snapshot(u64),
    /// A delta to this tick.
    Delta(u64),
}

/// Microseconds since the Unix epoch on this machine's clock (the unit of ping and pong times).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests;
