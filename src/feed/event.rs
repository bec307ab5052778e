//! One spectator event, encoded once, and the ids that name events: `<epoch>-<tick>`.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Snapshot,
    Delta,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Delta => "delta",
        }
    }
}

/// Names one incarnation of a feed: 8 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Epoch(Arc<str>);

impl Epoch {
    /// A fresh epoch, random.
    pub(crate) fn random() -> Self {
        Self(format!("{:08x}", rand::rng().random::<u32>()).into())
    }

    /// Checks an epoch read from a peer (a stream entry, an event id).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let valid = !text.is_empty() && text.len() <= 16 && text.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| Self(text.to_ascii_lowercase().into()))
    }

    /// The epoch as text.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a spectator is in a feed: the id of the last event it applied, `<epoch>-<tick>`. A
/// bare `<tick>` (what ids were before epochs) is taken as a tick of the current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// `None` for a bare tick.
    pub epoch: Option<Epoch>,
    /// The tick of the event.
    pub tick: u64,
}

impl Position {
    /// Reads an event id; `None` if it is not one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        match text.split_once('-') {
            Some((epoch, tick)) => Some(Self {
                epoch: Some(Epoch::parse(epoch)?),
                tick: tick.parse().ok()?,
            }),
            None => Some(Self {
                epoch: None,
                tick: text.parse().ok()?,
            }),
        }
    }
}

/// One spectator event, encoded once.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) tick: u64,
    /// The incarnation it belongs to.
    pub(crate) epoch: Epoch,
    /// For a delta, the tick it applies to (the previous event's); for a snapshot, `tick`.
    pub(crate) base: u64,
    /// The event's JSON, as in the SSE `data:` line and the long-poll `data` field: a slice
    /// of `sse`, not a second copy (the resume ring holds 30 s of these).
    pub(crate) json: Bytes,
    /// The complete SSE frame: `id:`, `event:`, `data:` and the blank line.
    pub(crate) sse: Bytes,
    /// What precedes `json` in the long-poll form, `{"event":"delta","id":"1a2b3c4d-310",
    /// "data":` (followed by `json` and `}`).
    pub(crate) poll_head: Bytes,
}

impl Event {
    /// Its id, `<epoch>-<tick>`.
    pub(crate) fn id(&self) -> String {
        format!("{}-{}", self.epoch, self.tick)
    }

    /// Its id, as a position in the feed.
    pub(crate) fn position(&self) -> Position {
        Position {
            epoch: Some(self.epoch.clone()),
            tick: self.tick,
        }
    }

    /// Event `tick` of incarnation `epoch`, applying to `base`, with its JSON, framed for SSE
    /// and long-polling once.
    pub(crate) fn new(epoch: &Epoch, tick: u64, base: u64, kind: EventKind, json: Vec<u8>) -> Self {
        let head = format!("id: {epoch}-{tick}\nevent: {}\ndata: ", kind.name());
        let mut sse = Vec::with_capacity(head.len() + json.len() + 2);
        // serde_json's compact output has no newlines, so one `data:` line holds it all.
        sse.extend_from_slice(head.as_bytes());
        sse.extend_from_slice(&json);
        sse.extend_from_slice(b"\n\n");
        let sse = Bytes::from(sse);
        let poll_head = format!(r#"{{"event":"{}","id":"{epoch}-{tick}","data":"#, kind.name());
        Self {
            tick,
            epoch: epoch.clone(),
            base,
            json: sse.slice(head.len()..head.len() + json.len()),
            sse,
            poll_head: poll_head.into(),
        }
    }
}
