//! The wire protocol, version 3: every message a player and the server exchange, and the one
//! encoding they share.
//!
//! PROTOCOL.md describes the same bytes for people writing clients in other languages; the
//! test vectors in `tests.rs` are the ones printed there, checked byte for byte.
//!
//! Messages travel one per binary WebSocket message, in bincode 2's standard configuration
//! (little endian, variable-length integers), written and read by hand ([`wire`]) because
//! what follows an entity's kind is the game's business: the game's [`Schema`], sent in the
//! [`Welcome`], says which fields each kind has and how each is sent, and which fields the
//! [`Input`] has. So entities, updates and inputs are decoded *with* a schema; everything
//! else is the same for every game.
//!
//! - [`schema`]: the schema itself, and its checks (a schema is untrusted input to a client).
//! - [`wire`]: the primitives, canonical by construction.
//! - [`delta`]: the world as the wire sees it, and the diffs between two worlds.
//! - [`frames`]: the WebSocket frames the messages travel in (RFC 6455, server side).
//! - [`ended`]: how a room ends, and the close code and reason its players get for it.
//! - [`rooms_api`]: the rooms API's JSON, written by the server and read by clients.

pub mod delta;
pub mod ended;
pub(crate) mod frames;
pub mod rooms_api;
pub mod schema;
mod wire;

use std::time::{SystemTime, UNIX_EPOCH};

pub use schema::{Field, FieldType, InputField, InputType, Kind, MAX_FIELDS, MAX_INPUT_FIELDS, Role, Schema};
pub use wire::DecodeError;
use wire::{Reader, Writer};

/// The protocol version a client must state in its [`Hello`]; bumped with every wire change.
pub const PROTOCOL_VERSION: u32 = 3;

/// Largest client message the server accepts, in bytes (also its WebSocket message limit).
pub const MAX_CLIENT_MESSAGE: usize = 1024;

/// Largest server message a client should accept: a keyframe of a very full world.
pub const MAX_SERVER_MESSAGE: usize = 16 << 20;

/// Longest player name accepted in a [`Hello`], in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Longest join token accepted in a [`Hello`], in bytes.
pub const MAX_TOKEN_LEN: usize = 256;

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
    /// The game: its entity kinds and their fields, and its input's fields.
    pub schema: Schema,
}

/// One entity in full: its id, its kind, and its kind's field values in schema order (the
/// unused ones are 0). Signed fields hold their two's complement bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Entity {
    /// Unique for the life of the room's world; never reused, never 0.
    pub id: EntityId,
    /// Its kind: an index into the schema's kinds.
    pub kind: u8,
    /// Its field values.
    pub values: [u32; MAX_FIELDS],
}

impl Entity {
    /// An entity of `kind` with `values` (at most [`MAX_FIELDS`]; the rest 0).
    pub fn new(id: EntityId, kind: u8, values: &[u32]) -> Self {
        let mut all = [0; MAX_FIELDS];
        let n = values.len().min(MAX_FIELDS);
        all[..n].copy_from_slice(&values[..n]);
        Self { id, kind, values: all }
    }
}

/// A keyframe: the complete world at `tick`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The tick this world is the state after.
    pub tick: u64,
    /// Every entity, in ascending id order.
    pub entities: Vec<Entity>,
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
/// value (two's complement), and a [`FieldType::Flag`], which flipped (its value is unused).
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

impl ClientMsg {
    /// Decodes one client message; `input` is the schema's input fields (inputs are read by
    /// them). The whole buffer must be exactly one message.
    pub fn decode(bytes: &[u8], input: &[InputField]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let msg = match r.u32()? {
            0 => ClientMsg::Hello(Hello {
                version: r.u32()?,
                name: r.str(MAX_CLIENT_MESSAGE)?,
                token: r.str(MAX_CLIENT_MESSAGE)?,
            }),
            1 => {
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
            _ => return Err(DecodeError::Unknown("client message tag")),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes this message; `input` is the schema's input fields (an input's values are
    /// written by them; missing values are sent as 0).
    pub fn encode(&self, input: &[InputField]) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            ClientMsg::Hello(h) => {
                w.u32(0);
                w.u32(h.version);
                w.str(&h.name);
                w.str(&h.token);
            }
            ClientMsg::Input(i) => {
                w.u32(1);
                w.u32(i.seq);
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

    /// Decodes one server message; `schema` is the game's, from the [`Welcome`] (entities and
    /// updates are read by it; without one, a snapshot or delta is refused). The whole buffer
    /// must be exactly one message.
    pub fn decode(bytes: &[u8], schema: Option<&Schema>) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let need = || schema.ok_or(DecodeError::Invalid("a snapshot or delta before the welcome's schema"));
        let msg = match r.u32()? {
            0 => ServerMsg::Welcome(Welcome {
                version: r.u32()?,
                player_id: r.u32()?,
                tick_hz: r.u32()?,
                schema: Schema::decode(&mut r)?,
            }),
            1 => {
                let schema = need()?;
                let tick = r.varint()?;
                ServerMsg::Snapshot(Snapshot {
                    tick,
                    entities: entities(&mut r, schema)?,
                })
            }
            2 => {
                let schema = need()?;
                ServerMsg::Delta(Delta {
                    tick: r.varint()?,
                    base_gap: r.u32()?,
                    spawned: entities(&mut r, schema)?,
                    updated: updates(&mut r, schema)?,
                    removed: {
                        let n = r.count(1)?;
                        (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?
                    },
                    checksum: if r.option()? { Some(r.u32()?) } else { None },
                })
            }
            3 => ServerMsg::Pong(Pong {
                nonce: r.u32()?,
                client_time_us: r.varint()?,
                server_tick: r.varint()?,
                server_time_us: r.varint()?,
            }),
            4 => ServerMsg::Ack(Ack { seq: r.u32()? }),
            _ => return Err(DecodeError::Unknown("server message tag")),
        };
        r.finish()?;
        Ok(msg)
    }

    /// Encodes this message with `schema` (the game's: entities and updates are written by
    /// it). The server's own messages always fit their schema.
    pub fn encode(&self, schema: &Schema) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(self.size_hint()));
        match self {
            ServerMsg::Welcome(m) => {
                w.u32(0);
                w.u32(m.version);
                w.u32(m.player_id);
                w.u32(m.tick_hz);
                m.schema.encode(&mut w);
            }
            ServerMsg::Snapshot(m) => {
                w.u32(1);
                w.varint(m.tick);
                write_entities(&mut w, &m.entities, schema);
            }
            ServerMsg::Delta(m) => {
                w.u32(2);
                w.varint(m.tick);
                w.u32(m.base_gap);
                write_entities(&mut w, &m.spawned, schema);
                write_updates(&mut w, &m.updated, schema);
                w.varint(m.removed.len() as u64);
                m.removed.iter().for_each(|id| w.u32(*id));
                match m.checksum {
                    Some(c) => {
                        w.u8(1);
                        w.u32(c);
                    }
                    None => w.u8(0),
                }
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

/// The fields of `kind`, or an error for a kind the schema lacks.
fn fields(schema: &Schema, kind: u8) -> Result<&[Field], DecodeError> {
    schema
        .kind(kind)
        .map(|k| k.fields.as_slice())
        .ok_or(DecodeError::Unknown("entity kind"))
}

fn write_entities(w: &mut Writer, entities: &[Entity], schema: &Schema) {
    w.varint(entities.len() as u64);
    for e in entities {
        w.u32(e.id);
        w.u32(u32::from(e.kind));
        let fields = schema.kind(e.kind).map_or(&[][..], |k| k.fields.as_slice());
        for (field, value) in fields.iter().zip(e.values) {
            match field.ty {
                FieldType::Coord | FieldType::Uint => w.u32(value),
                FieldType::Int => w.i32(value as i32),
                FieldType::Flag => w.bool(value != 0),
                FieldType::Enum(_) => w.u8(value as u8),
            }
        }
    }
}

fn entities(r: &mut Reader<'_>, schema: &Schema) -> Result<Vec<Entity>, DecodeError> {
    // An entity is at least 2 bytes (id, kind).
    let n = r.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.u32()?;
        if id == 0 {
            return Err(DecodeError::Invalid("entity id 0"));
        }
        let kind = u8::try_from(r.u32()?).map_err(|_| DecodeError::Unknown("entity kind"))?;
        let mut values = [0; MAX_FIELDS];
        for (field, value) in fields(schema, kind)?.iter().zip(&mut values) {
            *value = match field.ty {
                FieldType::Coord | FieldType::Uint => r.u32()?,
                FieldType::Int => r.i32()? as u32,
                FieldType::Flag => u32::from(r.bool()?),
                FieldType::Enum(count) => {
                    let v = r.u8()?;
                    if v >= count {
                        return Err(DecodeError::OutOfRange("enum value"));
                    }
                    u32::from(v)
                }
            };
        }
        out.push(Entity { id, kind, values });
    }
    Ok(out)
}

fn write_updates(w: &mut Writer, updates: &Updates, schema: &Schema) {
    let groups = || updates.0.iter().filter(|g| !g.updates.is_empty());
    w.varint(groups().count() as u64);
    for group in groups() {
        w.u32(u32::from(group.kind));
        w.varint(group.updates.len() as u64);
        let fields = schema.kind(group.kind).map_or(&[][..], |k| k.fields.as_slice());
        let mut prev = 0;
        for u in &group.updates {
            w.u32(u.id.wrapping_sub(prev));
            prev = u.id;
            w.u8(u.mask);
            for (i, field) in fields.iter().enumerate() {
                if u.mask & (1 << i) == 0 {
                    continue;
                }
                let value = u.values[i];
                match field.ty {
                    FieldType::Coord | FieldType::Int => w.i32(value as i32),
                    FieldType::Uint => w.u32(value),
                    FieldType::Flag => {}
                    FieldType::Enum(_) => w.u8(value as u8),
                }
            }
        }
    }
}

fn updates(r: &mut Reader<'_>, schema: &Schema) -> Result<Updates, DecodeError> {
    // A group is at least 3 bytes (kind, count, one update's gap); an update at least 2.
    let n = r.count(3)?;
    let mut groups: Vec<KindUpdates> = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = u8::try_from(r.u32()?).map_err(|_| DecodeError::Unknown("entity kind"))?;
        if groups.last().is_some_and(|g| g.kind >= kind) {
            return Err(DecodeError::Invalid("update groups must have strictly ascending kinds"));
        }
        let fields = fields(schema, kind)?;
        let count = r.count(2)?;
        if count == 0 {
            return Err(DecodeError::Invalid("an empty update group"));
        }
        let all_fields = u8::try_from((1u16 << fields.len()) - 1).unwrap_or(u8::MAX);
        let mut group = Vec::with_capacity(count);
        let mut prev = 0u32;
        for _ in 0..count {
            let gap = r.u32()?;
            if gap == 0 {
                return Err(DecodeError::Invalid("update ids must strictly ascend from 1"));
            }
            let id = prev.checked_add(gap).ok_or(DecodeError::OutOfRange("update id"))?;
            prev = id;
            let mask = r.u8()?;
            if mask == 0 || mask & !all_fields != 0 {
                return Err(DecodeError::Invalid("bad update field mask"));
            }
            let mut values = [0; MAX_FIELDS];
            for (i, field) in fields.iter().enumerate() {
                if mask & (1 << i) == 0 {
                    continue;
                }
                values[i] = match field.ty {
                    FieldType::Coord | FieldType::Int => r.i32()? as u32,
                    FieldType::Uint => r.u32()?,
                    FieldType::Flag => 0,
                    FieldType::Enum(count) => {
                        let v = r.u8()?;
                        if v >= count {
                            return Err(DecodeError::OutOfRange("enum value"));
                        }
                        u32::from(v)
                    }
                };
            }
            group.push(Update { id, mask, values });
        }
        groups.push(KindUpdates { kind, updates: group });
    }
    Ok(Updates(groups))
}

/// FNV-1a (32-bit) over each entity, in id order: `id` (4 bytes LE), `kind` (1 byte), then
/// each field value of its kind, in schema order, as 4 bytes LE (flags 0 or 1, signed fields
/// as their two's complement bits).
pub fn world_checksum<'a>(entities: impl IntoIterator<Item = &'a Entity>, schema: &Schema) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let mut hash = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash = (hash ^ u32::from(*b)).wrapping_mul(PRIME);
        }
    };
    for e in entities {
        eat(&e.id.to_le_bytes());
        eat(&[e.kind]);
        let n = schema.kind(e.kind).map_or(0, |k| k.fields.len());
        for value in &e.values[..n] {
            eat(&value.to_le_bytes());
        }
    }
    hash
}

/// Microseconds since the Unix epoch on this machine's clock (the unit of ping and pong times).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests;
