//! The rooms API's JSON (README, "The rooms API"), defined once for the server that writes it
//! and the clients that read it (`crate::client::rooms_api`): a room as listed and shown, a
//! page of rooms, what creating a room and matchmaking take and answer. Like the binary
//! protocol, a contract with clients written elsewhere from the README alone.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

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
}
