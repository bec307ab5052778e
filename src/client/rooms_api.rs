//! The rooms API from a client's side: matchmaking, creating, listing and closing rooms
//! (README, "The rooms API"), with the JSON types the server writes
//! ([`crate::protocol::rooms_api`]). A game's own backend would call the same endpoints;
//! this is what `client-demo`, the harness and the tests use.
//!
//! One HTTP/1.1 request per call, on hyper's client over a fresh TCP connection, with a
//! deadline for the whole exchange and a bound on the answer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use crate::protocol::rooms_api::{CreatedRoom, HeldPlace, NewRoom, RoomInfo, RoomPage};

/// How long one API call (connect, request, answer) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read: a listing of thousands of rooms.
const MAX_ANSWER: usize = 4 << 20;

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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

/// Finds `name` a place in a room of `game` on the server at `server` (`http://host:port`).
pub async fn matchmake(server: &str, game: &str, name: &str) -> Result<HeldPlace, ApiError> {
    let body = serde_json::json!({ "game": game, "name": name });
    call(Method::POST, server, "/matchmake", Some(body.to_string()), None).await
}

/// [`matchmake`] on a server that requires join tokens: `identity` proves the name (an identity
/// token your backend minted, `tickcast::auth::mint_identity`).
pub async fn matchmake_as(server: &str, game: &str, name: &str, identity: &str) -> Result<HeldPlace, ApiError> {
    let body = serde_json::json!({ "game": game, "name": name, "identity": identity });
    call(Method::POST, server, "/matchmake", Some(body.to_string()), None).await
}

/// Creates a room; `admin` is the server's admin secret, when it has one. The answer carries
/// the room's key, which closes it.
pub async fn create_room(server: &str, room: &NewRoom, admin: Option<&str>) -> Result<CreatedRoom, ApiError> {
    let body = serde_json::to_string(room).map_err(|err| ApiError::Answer(err.to_string()))?;
    call(Method::POST, server, "/rooms", Some(body), admin).await
}

/// Closes room `id` with `credential`: the room's key (from [`create_room`]) or the server's
/// admin secret.
pub async fn close_room(server: &str, id: &str, credential: &str) -> Result<(), ApiError> {
    let path = format!("/rooms/{id}");
    let _: serde_json::Value = call(Method::DELETE, server, &path, None, Some(credential)).await?;
    Ok(())
}

/// The most pages [`rooms`] reads (100 rooms each).
const MAX_PAGES: usize = 1000;

/// The page of public rooms after `cursor` (from the start when `None`).
pub async fn rooms_page(server: &str, cursor: Option<&str>) -> Result<RoomPage, ApiError> {
    let path = match cursor {
        // A cursor is `<digits>.<room id>`: nothing in it needs escaping in a query.
        Some(cursor) => format!("/rooms?cursor={cursor}"),
        None => "/rooms".to_owned(),
    };
    call(Method::GET, server, &path, None, None).await
}

/// Every public room, oldest first, page after page (waiting as the server says when it
/// answers that this address lists too fast).
pub async fn rooms(server: &str) -> Result<Vec<RoomInfo>, ApiError> {
    let mut all = Vec::new();
    let mut cursor = None;
    for _ in 0..MAX_PAGES {
        let page: RoomPage = loop {
            match rooms_page(server, cursor.as_deref()).await {
                // An address lists so many pages a second: wait as the server says.
                Err(ApiError::Refused {
                    status,
                    retry_after: Some(wait),
                    ..
                }) if status == StatusCode::TOO_MANY_REQUESTS && wait <= TIMEOUT => tokio::time::sleep(wait).await,
                page => break page?,
            }
        };
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
) -> Result<T, ApiError> {
    let base: Uri = server.parse().map_err(|_| ApiError::BadUrl(server.into()))?;
    let (Some("http"), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(ApiError::BadUrl(server.into()));
    };
    let unreachable = |why: String| ApiError::Unreachable {
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
        Ok::<_, ApiError>((status, retry_after, bytes))
    };
    let (status, retry_after, bytes) = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| unreachable(format!("no answer within {TIMEOUT:?}")))??;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_owned());
        return Err(ApiError::Refused {
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
    serde_json::from_slice(&bytes).map_err(|err| ApiError::Answer(err.to_string()))
}
