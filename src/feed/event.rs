//! One spectator event, encoded once, and the ids that name events: `<epoch>-<tick>` for a
//! snapshot or a delta, `<epoch>-<tick>-<n>` for the `n`th game event told after the delta of
//! `tick` (and before the next delta).

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;

/// What an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Snapshot,
    Delta,
    /// Something the game told (a public event told to every player).
    Game,
    /// The match ended, with its results.
    Ended,
}

impl EventKind {
    fn name(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Delta => "delta",
            Self::Game => "event",
            Self::Ended => "ended",
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

/// Where a spectator is in a feed: the id of the last event it applied, `<epoch>-<tick>` or
/// `<epoch>-<tick>-<n>`. A bare `<tick>` (what ids were before epochs) is taken as a tick of
/// the current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// `None` for a bare tick.
    pub epoch: Option<Epoch>,
    /// Where in the feed: the tick of the last delta, and how many game events after it.
    pub at: At,
}

/// A place in a feed's order: after the delta (or snapshot) of `tick`, and `seq` of the game
/// events that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct At {
    pub tick: u64,
    pub seq: u32,
}

impl At {
    /// Right after the delta or snapshot of `tick`.
    pub(crate) fn tick(tick: u64) -> Self {
        Self { tick, seq: 0 }
    }
}

impl Position {
    /// Reads an event id; `None` if it is not one.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let mut parts = text.splitn(3, '-');
        let first = parts.next()?;
        let Some(tick) = parts.next() else {
            return Some(Self {
                epoch: None,
                at: At::tick(first.parse().ok()?),
            });
        };
        let seq = match parts.next() {
            Some(seq) => seq.parse().ok().filter(|n| *n > 0)?,
            None => 0,
        };
        Some(Self {
            epoch: Some(Epoch::parse(first)?),
            at: At {
                tick: tick.parse().ok()?,
                seq,
            },
        })
    }
}

/// One spectator event, encoded once.
#[derive(Debug)]
pub(crate) struct Event {
    /// Where it is in the feed: its id.
    pub(crate) at: At,
    /// The incarnation it belongs to.
    pub(crate) epoch: Epoch,
    /// Where the feed was just before it (for a snapshot, `at`): a spectator there needs this
    /// event next.
    pub(crate) prev: At,
    /// The event's JSON, as in the SSE `data:` line and the long-poll `data` field: a slice
    /// of `sse`, not a second copy (the resume ring holds 30 s of these).
    pub(crate) json: Bytes,
    /// The complete SSE frame: `id:`, `event:`, `data:` and the blank line.
    pub(crate) sse: Bytes,
    /// What it is.
    pub(crate) kind: EventKind,
    /// What precedes `json` in the long-poll form, `{"event":"delta","id":"1a2b3c4d-310",
    /// "data":` (followed by `json` and `}`).
    pub(crate) poll_head: Bytes,
}

impl Event {
    /// Its id, `<epoch>-<tick>` or `<epoch>-<tick>-<n>`.
    pub(crate) fn id(&self) -> String {
        id(&self.epoch, self.at)
    }

    /// Its id, as a position in the feed.
    pub(crate) fn position(&self) -> Position {
        Position {
            epoch: Some(self.epoch.clone()),
            at: self.at,
        }
    }

    /// Event `at` of incarnation `epoch`, following `prev`, with its JSON, framed for SSE and
    /// long-polling once.
    pub(crate) fn new(epoch: &Epoch, at: At, prev: At, kind: EventKind, json: Vec<u8>) -> Self {
        let id = id(epoch, at);
        let head = format!("id: {id}\nevent: {}\ndata: ", kind.name());
        let mut sse = Vec::with_capacity(head.len() + json.len() + 2);
        // serde_json's compact output has no newlines, so one `data:` line holds it all.
        sse.extend_from_slice(head.as_bytes());
        sse.extend_from_slice(&json);
        sse.extend_from_slice(b"\n\n");
        let sse = Bytes::from(sse);
        let poll_head = format!(r#"{{"event":"{}","id":"{id}","data":"#, kind.name());
        Self {
            at,
            epoch: epoch.clone(),
            prev,
            json: sse.slice(head.len()..head.len() + json.len()),
            sse,
            kind,
            poll_head: poll_head.into(),
        }
    }
}

/// The id of the event at `at` of `epoch`.
fn id(epoch: &Epoch, at: At) -> String {
    match at.seq {
        0 => format!("{epoch}-{}", at.tick),
        n => format!("{epoch}-{}-{n}", at.tick),
    }
}
