//! The wire protocol: every message a player and the server exchange, and the one bincode
//! encoding they share.
//!
//! PROTOCOL.md describes the same bytes for people writing clients in other languages; the
//! test vectors at the bottom of this file are the ones printed there, checked byte for byte.
//!
//! Messages travel one per binary WebSocket message. The encoding is bincode 2's standard
//! configuration (little endian, variable-length integers). What differs between the two
//! directions is only the decode limit, which bounds how much memory a length prefix can make
//! the decoder allocate before the input runs out.

use std::time::{SystemTime, UNIX_EPOCH};

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

/// The protocol version a client must state in its [`Hello`]; bumped with every wire change.
pub const PROTOCOL_VERSION: u32 = 2;

/// Fixed-point positions: one world unit is this many position steps (1/16 unit resolution).
pub const POSITION_SCALE: u32 = 16;

/// Largest client message the server accepts, in bytes (also its WebSocket message limit).
pub const MAX_CLIENT_MESSAGE: usize = 1024;

/// Largest server message a client should accept: a keyframe of a very full world.
pub const MAX_SERVER_MESSAGE: usize = 16 << 20;

/// Longest player name accepted in a [`Hello`], in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Longest join token accepted in a [`Hello`], in bytes.
pub const MAX_TOKEN_LEN: usize = 256;

/// The encoding both sides use; only the decode limit differs by direction.
type Wire<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

const fn wire<const LIMIT: usize>() -> Wire<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// A message from a player to the server.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ClientMsg {
    /// The first message on every connection: version check and identity.
    Hello(Hello),
    /// The direction the player wants to move in from now on.
    Move(Move),
    /// A latency probe, answered at once with a [`Pong`].
    Ping(Ping),
}

/// The opening message of a player connection.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Hello {
    /// Must equal [`PROTOCOL_VERSION`].
    pub version: u32,
    /// A display name, at most [`MAX_NAME_LEN`] bytes of UTF-8; may be empty.
    pub name: String,
    /// A join token when the server requires one, else empty.
    pub token: String,
}

/// A move command: the player's direction until the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Move {
    /// Increases by one or more with every command; stale (lower or equal) ones are ignored.
    pub seq: u32,
    /// Horizontal direction in [-127, 127].
    pub dx: i8,
    /// Vertical direction in [-127, 127].
    pub dy: i8,
}

/// A latency probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Ping {
    /// Chosen by the client, echoed in the pong.
    pub nonce: u32,
    /// The client's clock when it sent the ping (any epoch), echoed in the pong.
    pub client_time_us: u64,
}

/// A message from the server to a player.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum ServerMsg {
    /// First reply to a good [`Hello`].
    Welcome(Welcome),
    /// The whole world: sent on join and whenever a player must resynchronise.
    Snapshot(Snapshot),
    /// What changed in one tick.
    Delta(Delta),
    /// The answer to a [`Ping`].
    Pong(Pong),
    /// Which of this player's moves the server has applied; sent just before the tick's frame
    /// whenever it changed.
    Ack(Ack),
}

/// The `seq` of the last [`Move`] the server applied for this player.
///
/// Acks travel on their own so that snapshots and deltas are the same bytes for every player
/// and can be encoded once per tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Ack {
    /// The applied move's `seq`.
    pub seq: u32,
}

/// Who the player is and what world it is in.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Welcome {
    /// The server's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// This player's entity id.
    pub player_id: u32,
    /// Ticks per second.
    pub tick_hz: u32,
    /// World width in world units.
    pub world_width: u32,
    /// World height in world units.
    pub world_height: u32,
    /// Position steps per world unit ([`POSITION_SCALE`]).
    pub position_scale: u32,
}

/// A keyframe: the complete world at `tick`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Snapshot {
    /// The tick this world is the state after.
    pub tick: u64,
    /// Every entity, in ascending id order.
    pub entities: Vec<EntityState>,
}

/// One entity in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct EntityState {
    /// Unique for the life of the server; never reused.
    pub id: u32,
    /// Player or orb.
    pub kind: EntityKind,
    /// Position in steps of 1/[`POSITION_SCALE`] world units.
    pub x: u32,
    /// Position in steps of 1/[`POSITION_SCALE`] world units.
    pub y: u32,
    /// Orbs collected (always 0 for orbs).
    pub score: u32,
}

/// What an entity is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
pub enum EntityKind {
    /// A connected player.
    Player,
    /// A collectible orb.
    Orb,
}

/// The changes from the world at `tick - base_gap` to the world at `tick`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Delta {
    /// The tick this delta brings the world to.
    pub tick: u64,
    /// How many ticks back the base is: apply only to the world at `tick - base_gap`.
    pub base_gap: u32,
    /// Entities that did not exist at the base, in full.
    pub spawned: Vec<EntityState>,
    /// Entities that changed, with only their changed fields.
    pub updated: Updates,
    /// Ids of entities that no longer exist.
    pub removed: Vec<u32>,
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

/// The answer to a [`Ping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Pong {
    /// Echoed from the ping.
    pub nonce: u32,
    /// Echoed from the ping.
    pub client_time_us: u64,
    /// The last tick the server completed.
    pub server_tick: u64,
    /// The server's clock, microseconds since the Unix epoch.
    pub server_time_us: u64,
}

/// Field-level changes to one entity. At least one field is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntityUpdate {
    /// The entity's id.
    pub id: u32,
    /// Change of `x` in position steps.
    pub dx: Option<i32>,
    /// Change of `y` in position steps.
    pub dy: Option<i32>,
    /// The new score.
    pub score: Option<u32>,
}

const FIELD_X: u8 = 0x01;
const FIELD_Y: u8 = 0x02;
const FIELD_SCORE: u8 = 0x04;
const FIELDS_ALL: u8 = FIELD_X | FIELD_Y | FIELD_SCORE;

/// Updated entities in strictly ascending id order.
///
/// Encoded by hand to stay small: a count, then per entity the gap from the previous id (the
/// first from 0), a field mask and only the fields the mask names. A moving entity costs 4
/// bytes when ids are dense.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Updates(pub Vec<EntityUpdate>);

impl Encode for Updates {
    fn encode<E: Encoder>(&self, e: &mut E) -> Result<(), EncodeError> {
        (self.0.len() as u64).encode(e)?;
        let mut prev = 0u32;
        for (i, u) in self.0.iter().enumerate() {
            let gap = u.id.checked_sub(prev).filter(|g| *g > 0 || i == 0);
            let gap = gap.ok_or(EncodeError::Other("updates must be in strictly ascending id order"))?;
            gap.encode(e)?;
            prev = u.id;
            let field = |present: bool, bit: u8| if present { bit } else { 0 };
            let mask =
                field(u.dx.is_some(), FIELD_X) | field(u.dy.is_some(), FIELD_Y) | field(u.score.is_some(), FIELD_SCORE);
            if mask == 0 {
                return Err(EncodeError::Other("an update must change at least one field"));
            }
            mask.encode(e)?;
            u.dx.map(|v| v.encode(e)).transpose()?;
            u.dy.map(|v| v.encode(e)).transpose()?;
            u.score.map(|v| v.encode(e)).transpose()?;
        }
        Ok(())
    }
}

impl<Context> Decode<Context> for Updates {
    fn decode<D: Decoder<Context = Context>>(d: &mut D) -> Result<Self, DecodeError> {
        let len =
            usize::try_from(u64::decode(d)?).map_err(|_| DecodeError::Other("update count does not fit in memory"))?;
        // Charge the decode limit before allocating, as bincode does for its own containers.
        d.claim_container_read::<EntityUpdate>(len)?;
        let mut out = Vec::with_capacity(len);
        let mut prev = 0u32;
        for i in 0..len {
            // As bincode's own Vec decoder does: the up-front charge was an estimate; what the
            // element really reads is charged as it is decoded.
            d.unclaim_bytes_read(core::mem::size_of::<EntityUpdate>());
            let gap = u32::decode(d)?;
            if gap == 0 && i > 0 {
                return Err(DecodeError::Other("update ids must strictly ascend"));
            }
            let id = prev.checked_add(gap).ok_or(DecodeError::Other("update id overflows"))?;
            prev = id;
            let mask = u8::decode(d)?;
            if mask == 0 || mask & !FIELDS_ALL != 0 {
                return Err(DecodeError::Other("bad update field mask"));
            }
            let has = |bit: u8| mask & bit != 0;
            out.push(EntityUpdate {
                id,
                dx: has(FIELD_X).then(|| i32::decode(d)).transpose()?,
                dy: has(FIELD_Y).then(|| i32::decode(d)).transpose()?,
                score: has(FIELD_SCORE).then(|| u32::decode(d)).transpose()?,
            });
        }
        Ok(Updates(out))
    }
}
bincode::impl_borrow_decode!(Updates);

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeFailure {
    /// The bytes are not a valid message (includes length prefixes over the decode limit).
    #[error("malformed message: {0}")]
    Malformed(#[from] DecodeError),
    /// A valid message was followed by extra bytes.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// The message decodes, but not from its canonical bytes (e.g. a varint longer than needed).
    #[error("non-canonical encoding: integers must use their shortest form")]
    NonCanonical,
}

/// Decodes exactly one message in its one canonical encoding.
///
/// bincode accepts varints written longer than needed (`fb 05 00` for 5); re-encoding and
/// comparing refuses them, so every message has exactly one encoding (found by fuzzing).
fn decode_exact<T: Decode<()> + Encode, const LIMIT: usize>(bytes: &[u8]) -> Result<T, DecodeFailure> {
    let (msg, used) = bincode::decode_from_slice(bytes, wire::<LIMIT>())?;
    if used != bytes.len() {
        return Err(DecodeFailure::TrailingBytes(bytes.len() - used));
    }
    match bincode::encode_to_vec(&msg, wire::<LIMIT>()) {
        Ok(canonical) if canonical == bytes => Ok(msg),
        _ => Err(DecodeFailure::NonCanonical),
    }
}

fn encode_vec<T: Encode>(msg: &T) -> Vec<u8> {
    // Encoding into a Vec only fails for the invariant `Updates` enforces (ascending ids, no
    // empty update), which the server's own diff upholds.
    bincode::encode_to_vec(msg, wire::<MAX_SERVER_MESSAGE>()).expect("encode a well-formed message")
}

impl ClientMsg {
    /// Decodes one client message; the whole buffer must be exactly one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeFailure> {
        decode_exact::<_, MAX_CLIENT_MESSAGE>(bytes)
    }

    /// Encodes this message for sending.
    pub fn encode(&self) -> Vec<u8> {
        encode_vec(self)
    }
}

impl ServerMsg {
    /// Decodes one server message; the whole buffer must be exactly one message.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeFailure> {
        decode_exact::<_, MAX_SERVER_MESSAGE>(bytes)
    }

    /// Encodes this message for sending.
    pub fn encode(&self) -> Vec<u8> {
        encode_vec(self)
    }

    /// The tick of a snapshot or delta, read from its first bytes (the tag, then the tick)
    /// without decoding or checking the rest; `None` for other messages or bytes that do not
    /// start like one. For clients that follow the stream without keeping a world, such as
    /// load generators: decoding every delta is most of what a client costs.
    pub fn peek_tick(bytes: &[u8]) -> Option<Peeked> {
        let ((tag, tick), _): ((u32, u64), _) = bincode::decode_from_slice(bytes, wire::<16>()).ok()?;
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

/// FNV-1a (32-bit) over each entity, in id order, as the little-endian bytes of `id`, then
/// `kind` as one byte (0 player, 1 orb), then `x`, `y` and `score`: 17 bytes per entity.
pub fn world_checksum<'a>(entities: impl IntoIterator<Item = &'a EntityState>) -> u32 {
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
        eat(&[match e.kind {
            EntityKind::Player => 0,
            EntityKind::Orb => 1,
        }]);
        eat(&e.x.to_le_bytes());
        eat(&e.y.to_le_bytes());
        eat(&e.score.to_le_bytes());
    }
    hash
}

/// Microseconds since the Unix epoch on this machine's clock (the unit of ping and pong times).
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Quantizes a world coordinate to position steps.
pub fn quantize(v: f32) -> u32 {
    // Coordinates are clamped to the world by the simulation, so this never saturates in
    // practice; `as` saturates rather than wrapping if it ever did.
    (v * POSITION_SCALE as f32).round() as u32
}

/// Turns position steps back into world units.
pub fn dequantize(q: u32) -> f32 {
    q as f32 / POSITION_SCALE as f32
}

#[cfg(test)]
mod tests;
