//! The rooms API from a client's side: matchmaking, creating and listing rooms (README,
//! "Rooms"). A game's own backend would call the same endpoints; this is what `client-demo`
//! and the tests use.
//!
//! One HTTP/1.1 request per call, on hyper's client over a fresh TCP connection, with a
//! deadline for the whole exchange and a bound on the answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

/// How long one API call (connect, request, answer) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read: a listing of thousands of rooms.
const MAX_ANSWER: usize = 4 << 20;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum LobbyError {
    /// The server URL is not `http://host[:port]`.
    #[error("bad server url {0:?}: expected http://host[:port]")]
    BadUrl(String),
    /// Nothing answered, or the exchange broke off.
    #[error("cannot reach {url}: {why}")]
    Unreachable {
        /// Where we tried.
        url: String,
        /// What happened.
        why: String,
    },
    /// The server answered with an error, and said why.
    #[error("{status}: {message}")]
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The server's `error` message.
        message: String,
        /// When the server said to try again (`Retry-After`), for a 429 or a 503.
        retry_after: Option<Duration>,
    },
    /// The answer was not the JSON expected.
    #[error("unexpected answer: {0}")]
    Answer(String),
}

/// A place matchmaking found: the room, how to join it, and the token to join with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Seat {
    /// The room's id.
    pub room: String,
    /// Its player URL.
    pub ws: String,
    /// Its spectator page.
    pub page: String,
    /// Whether the room was created for this request.
    pub created: bool,
    /// A join token for this room and name, when the server requires them.
    pub token: Option<String>,
    /// Until when (Unix seconds) the place is held and the token valid.
    pub expires: u64,
}

/// A room as the API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomInfo {
    /// Its id.
    pub id: String,
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
    /// Whether a player could join now.
    pub joinable: bool,
    /// Whether it is left out of listings.
    pub private: bool,
    /// Its player URL.
    pub ws: String,
    /// Its spectator page.
    pub page: String,
    /// The key that closes it: only in what [`create_room`] answers.
    #[serde(default)]
    pub key: Option<String>,
}

/// What `POST /rooms` takes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NewRoom {
    /// The game.
    pub game: String,
    /// Ticks per second (the server's default if `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_hz: Option<u32>,
    /// Places (the server's default if `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_players: Option<usize>,
    /// The world's seed (random if `None`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Left out of listings and matchmaking.
    pub private: bool,
}

/// Finds `name` a place in a room of `game` on the server at `server` (`http://host:port`).
pub async fn matchmake(server: &str, game: &str, name: &str) -> Result<Seat, LobbyError> {
    let body = serde_json::json!({ "game": game, "name": name });
    call(Method::POST, server, "/matchmake", Some(body.to_string()), None).await
}

/// [`matchmake`] on a server that requires join tokens: `identity` proves the name (an identity
/// token your backend minted, `tickcast::auth::mint_identity`).
pub async fn matchmake_as(server: &str, game: &str, name: &str, identity: &str) -> Result<Seat, LobbyError> {
    let body = serde_json::json!({ "game": game, "name": name, "identity": identity });
    call(Method::POST, server, "/matchmake", Some(body.to_string()), None).await
}

/// Creates a room; `admin` is the server's admin secret, when it has one.
pub async fn create_room(server: &str, room: &NewRoom, admin: Option<&str>) -> Result<RoomInfo, LobbyError> {
    let body = serde_json::to_string(room).map_err(|err| LobbyError::Answer(err.to_string()))?;
    call(Method::POST, server, "/rooms", Some(body), admin).await
}

/// Closes room `id` with `credential`: the room's key (from [`create_room`]) or the server's
/// admin secret.
pub async fn close_room(server: &str, id: &str, credential: &str) -> Result<(), LobbyError> {
    let path = format!("/rooms/{id}");
    let _: serde_json::Value = call(Method::DELETE, server, &path, None, Some(credential)).await?;
    Ok(())
}

/// One page of `GET /rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RoomPage {
    /// The rooms of the page, oldest first.
    pub rooms: Vec<RoomInfo>,
    /// Where the next page starts (`None` on the last page).
    pub next: Option<String>,
}

/// The most pages [`rooms`] reads (100 rooms each).
const MAX_PAGES: usize = 1000;

/// The page of public rooms after `cursor` (from the start when `None`).
pub async fn rooms_page(server: &str, cursor: Option<&str>) -> Result<RoomPage, LobbyError> {
    let path = match cursor {
        // A cursor is `<digits>.<room id>`: nothing in it needs escaping in a query.
        Some(cursor) => format!("/rooms?cursor={cursor}"),
        None => "/rooms".to_owned(),
    };
    call(Method::GET, server, &path, None, None).await
}

/// Every public room, oldest first, page after page.
pub async fn rooms(server: &str) -> Result<Vec<RoomInfo>, LobbyError> {
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page = rooms_page(server, cursor.as_deref()).await?;
        all.extend(page.rooms);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(all)
}

/// One request and its JSON answer, within [`TIMEOUT`].
async fn call<T: serde::de::DeserializeOwned>(
    method: Method,
    server: &str,
    path: &str,
    body: Option<String>,
    bearer: Option<&str>,
) -> Result<T, LobbyError> {
    let base: Uri = server.parse().map_err(|_| LobbyError::BadUrl(server.into()))?;
    let (Some("http"), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(LobbyError::BadUrl(server.into()));
    };
    let unreachable = |why: String| LobbyError::Unreachable {
        url: format!("{server}{path}"),
        why,
    };
    let exchange = async {
        let tcp = TcpStream::connect(authority.as_str())
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = bearer {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|err| unreachable(err.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| unreachable(err.to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(Duration::from_secs);
        let bytes = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|err| unreachable(err.to_string()))?
            .to_bytes();
        Ok::<_, LobbyError>((status, retry_after, bytes))
    };
    let (status, retry_after, bytes) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))??;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        return Err(LobbyError::Refused {
            status,
            message,
            retry_after,
        });
    }
    // A 204 has no body: read it as JSON `null`.
    let bytes = if bytes.is_empty() {
        Bytes::from_static(b"null")
    } else {
        bytes
    };
    serde_json::from_slice(&bytes).map_err(|err| LobbyError::Answer(err.to_string()))
}
