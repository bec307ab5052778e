//! A room's spectator stream as the cluster reads it: its entries (written by
//! [`super::replica`]) and what a reader makes of them, shared by the follower that keeps a
//! room's feed ([`super::mirror`]) and the one-off look at a room's state ([`super::glance`]).

use std::sync::Arc;

use redis::Value;

use crate::feed::{Epoch, Heard};
use crate::protocol::delta::NetWorld;
use crate::protocol::{Delta, Events, MatchEnded, Schema, ServerMsg};

/// One entry of the stream.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) id: String,
    fields: Vec<(String, Vec<u8>)>,
}

impl Entry {
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }

    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.get(name)?).ok()
    }

    pub(crate) fn number(&self, name: &str) -> Option<u64> {
        self.text(name)?.parse().ok()
    }
}

/// A keyframe entry read: its epoch, the room's tick rate and schema, and the world.
pub(crate) struct Keyframe {
    pub(crate) epoch: Epoch,
    pub(crate) tick_hz: u32,
    pub(crate) schema: Arc<Schema>,
    pub(crate) world: Arc<NetWorld>,
}

impl Entry {
    /// The keyframe this entry is, if it is a whole one.
    pub(crate) fn keyframe(&self) -> Option<Keyframe> {
        let epoch = self.text("e").and_then(Epoch::parse)?;
        let Ok(ServerMsg::Welcome(welcome)) = ServerMsg::decode(self.get("w")?, None) else {
            return None;
        };
        let schema = Arc::new(welcome.schema);
        let Ok(ServerMsg::Snapshot(snapshot)) = ServerMsg::decode(self.get("b")?, Some(&schema)) else {
            return None;
        };
        let world = NetWorld::from_snapshot(&snapshot).ok()?;
        Some(Keyframe {
            epoch,
            tick_hz: welcome.tick_hz,
            schema,
            world: Arc::new(world),
        })
    }

    /// This delta entry applied to `world` of `epoch`: the delta and the world after it; `None`
    /// if it does not apply there (a gap, another incarnation, a checksum that differs).
    pub(crate) fn applied(&self, epoch: &Epoch, world: &NetWorld, schema: &Schema) -> Option<(Delta, NetWorld)> {
        let fits =
            self.text("e").and_then(Epoch::parse).as_ref() == Some(epoch) && self.number("p") == Some(world.tick());
        if !fits {
            return None;
        }
        let Ok(ServerMsg::Delta(delta)) = ServerMsg::decode(self.get("b")?, Some(schema)) else {
            return None;
        };
        let mut next = world.clone();
        next.apply(&delta, schema).ok()?;
        Some((delta, next))
    }
}

impl Entry {
    /// The public events a delta entry carries (`v`), in order; none if it has none, or they
    /// do not decode.
    pub(crate) fn heard(&self, schema: &Schema) -> Vec<Heard> {
        let Some(mut bytes) = self.get("v") else {
            return Vec::new();
        };
        let mut heard = Vec::new();
        while let Some((len, rest)) = bytes.split_first_chunk::<4>() {
            let len = u32::from_le_bytes(*len) as usize;
            let Some(message) = rest.get(..len) else { break };
            let Ok(ServerMsg::Events(Events { tick, events })) = ServerMsg::decode(message, Some(schema)) else {
                break;
            };
            heard.extend(events.into_iter().map(|event| Heard { tick, event }));
            bytes = &rest[len..];
        }
        heard
    }

    /// The end of a match this entry is (`m`): its tick and what it says.
    pub(crate) fn ended(&self, schema: &Schema) -> Option<MatchEnded> {
        match ServerMsg::decode(self.get("b")?, Some(schema)) {
            Ok(ServerMsg::MatchEnded(ended)) => Some(ended),
            _ => None,
        }
    }
}

/// `heard` as a delta entry's `v`: an `Events` message per tick, each its length (4 bytes LE)
/// first; empty for none.
pub(crate) fn encode_heard(heard: &[Heard], schema: &Schema) -> Vec<u8> {
    let mut out = Vec::new();
    for same_tick in heard.chunk_by(|a, b| a.tick == b.tick) {
        let events = Events {
            tick: same_tick[0].tick,
            events: same_tick.iter().map(|h| h.event.clone()).collect(),
        };
        let bytes = ServerMsg::Events(events).encode(schema);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

/// The entries of an XRANGE/XREVRANGE reply.
pub(crate) fn entries(reply: &Value) -> Vec<Entry> {
    match reply {
        Value::Array(items) => items.iter().filter_map(entry).collect(),
        _ => Vec::new(),
    }
}

/// The entries of one stream of an XREAD reply: `[name, [entries]]`.
pub(crate) fn stream_entries(stream: &Value) -> Vec<Entry> {
    match stream {
        Value::Array(pair) if pair.len() == 2 => entries(&pair[1]),
        _ => Vec::new(),
    }
}

/// `[id, [field, value, …]]`.
fn entry(value: &Value) -> Option<Entry> {
    let Value::Array(pair) = value else { return None };
    let [id, Value::Array(flat)] = pair.as_slice() else {
        return None;
    };
    let id = bytes(id).and_then(|b| String::from_utf8(b).ok())?;
    let fields = flat
        .chunks_exact(2)
        .filter_map(|kv| Some((String::from_utf8(bytes(&kv[0])?).ok()?, bytes(&kv[1])?)))
        .collect();
    Some(Entry { id, fields })
}

fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}
