//! The rooms API's JSON (README, "The rooms API"), defined once for the server that writes it
//! and the clients that read it (`crate::client::rooms_api`): a room as listed and shown, a
//! page of rooms, what creating a room and matchmaking take and answer. Like the binary
//! protocol, a contract with clients written elsewhere from the README alone.

use std::collections::BTreeMap;
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Options, Results};

/// A room's id: 1 to 32 characters of `A-Z a-z 0-9 _ -`, safe in a URL path as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

impl TryFrom<String> for RoomId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text).ok_or_else(|| format!("{text:?} is not a room id"))
    }
}

impl From<RoomId> for String {
    fn from(id: RoomId) -> String {
        id.0
    }
}

impl RoomId {
    /// The id of the room the server opens at start, behind the old paths (`/ws`, `/events`).
    pub const DEFAULT: &'static str = "default";

    /// Checks an id from a URL or a request.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        (!text.is_empty() && text.len() <= 32 && text.chars().all(valid)).then(|| Self(text.to_owned()))
    }

    /// A fresh id: 12 characters from 62, about 71 bits from the operating system's
    /// generator, so a private room's id is as good as a password.
    pub fn random() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        Self(
            (0..12)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect(),
        )
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A room's labels: what its game says of it (`mode`, `map`, `region`), which `GET /rooms`
/// shows and filters by and matchmaking matches. Keys and values are 1 to 32 of `a-z 0-9 _ -`;
/// at most [`Labels::MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Labels(BTreeMap<String, String>);

impl TryFrom<BTreeMap<String, String>> for Labels {
    type Error = String;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, String> {
        let mut labels = Labels::default();
        for (key, value) in map {
            if !labels.set(&key, &value) {
                return Err(format!(
                    "label {key:?}: {value:?}: at most {} labels, keys and values 1 to 32 of a-z 0-9 _ -",
                    Labels::MAX
                ));
            }
        }
        Ok(labels)
    }
}

impl Labels {
    /// The most labels a room has.
    pub const MAX: usize = 8;

    /// Whether `text` may be a label's key or value.
    pub fn valid(text: &str) -> bool {
        !text.is_empty()
            && text.len() <= 32
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }

    /// Sets `key` to `value`; `false` (and nothing set) if either is not valid or there are
    /// [`Labels::MAX`] labels already.
    pub fn set(&mut self, key: &str, value: &str) -> bool {
        let room = self.0.len() < Self::MAX || self.0.contains_key(key);
        if !room || !Self::valid(key) || !Self::valid(value) {
            return false;
        }
        self.0.insert(key.to_owned(), value.to_owned());
        true
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Whether every label of `filter` is one of these.
    pub fn matches(&self, filter: &Labels) -> bool {
        filter.0.iter().all(|(k, v)| self.0.get(k) == Some(v))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every label.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A room as it is now: what the rooms API says of it, and what a cluster's directory keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// Its id.
    pub id: RoomId,
    /// Its game.
    pub game: String,
    /// Players now.
    pub players: usize,
    /// Places.
    pub max_players: usize,
    /// Spectators now.
    pub spectators: usize,
    /// Its last tick.
    pub tick: u64,
    /// Ticks per second.
    pub tick_hz: u32,
    /// When it was created, Unix seconds.
    pub created: u64,
    /// Whether a player could join now (it is open and has a place neither taken nor held).
    pub joinable: bool,
    /// Whether it is left out of listings and matchmaking.
    pub private: bool,
    /// What its game says of it.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// A room as `GET /rooms` lists it and `GET /rooms/{id}` shows it: its summary, and where to
/// reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// What it is now.
    #[serde(flatten)]
    pub summary: RoomSummary,
    /// The player URL (WebSocket), on the node that owns the room.
    pub ws: String,
    /// The spectator page, on the node that answered (any node serves any room's spectators).
    pub page: String,
    /// The node that owns the room (in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// How its last match ended, once one has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_results: Option<Results>,
}

/// What `POST /rooms` answers: the room, and the key that closes it (given only here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedRoom {
    /// The room.
    #[serde(flatten)]
    pub room: RoomInfo,
    /// Its key: `DELETE /rooms/{id}` with `Authorization: Bearer <key>` closes it.
    pub key: String,
}

/// A page of `GET /rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPage {
    /// The page's rooms, oldest first.
    pub rooms: Vec<RoomInfo>,
    /// Where the next page starts (`?cursor=`), absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// What `POST /rooms` takes: all but `game` optional (the server's flags and a random seed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    /// The game.
    pub game: String,
    /// Ticks per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick_hz: Option<u32>,
    /// Places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_players: Option<usize>,
    /// The world's seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Left out of listings and matchmaking.
    #[serde(default)]
    pub private: bool,
    /// The room's options for its game (the schema's `room_options`).
    #[serde(default, skip_serializing_if = "Options::is_empty")]
    pub options: Options,
    /// What happens when a match ends (`restart`, the default, or `close`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_match: Option<AfterMatch>,
    /// How long a player whose connection dropped keeps its seat, in seconds (0 to 300; 0:
    /// it leaves at once). The server's `--reconnect-grace` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_grace: Option<u32>,
    /// How far a player sees, in world units (1 to the world's size): each is sent only the
    /// entities within it. Everyone sees the whole world when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_radius: Option<u32>,
}

/// What a room does when its match ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterMatch {
    /// The next match starts at once, with the same players.
    #[default]
    Restart,
    /// The room closes (its players get 1000 "match over").
    Close,
}

/// What `POST /matchmake` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchmakeRequest {
    /// The game.
    pub game: String,
    /// The name to hold a place for.
    pub name: String,
    /// Proof of the name, when the server requires join tokens: an identity token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The player's join options (the schema's `options`), for its hello.
    #[serde(default, skip_serializing_if = "Options::is_empty")]
    pub options: Options,
    /// Only rooms with these labels (and a room opened for the request gets them, as its room
    /// options).
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub filter: Labels,
}

/// What `POST /matchmake` answers: a place held for the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPlace {
    /// The room's id.
    pub room: RoomId,
    /// Its player URL.
    pub ws: String,
    /// Its spectator page.
    pub page: String,
    /// Whether the room was created for this request.
    pub created: bool,
    /// A join token for this room and name, when the server requires them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Until when (Unix seconds) the place is held (and the token valid).
    pub expires: u64,
    /// The join options asked for: the hello carries them.
    #[serde(default, skip_serializing_if = "Options::is_empty")]
    pub options: Options,
}
