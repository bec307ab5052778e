//! Where a client connects, connecting with a deadline, and what to tell a person when it fails.
//!
//! The protocol work (hello, welcome, keeping the world) is [`tickcast::client::Client`]'s; this
//! module adds what a tool around it needs: default addresses, the rule that load only ever
//! targets this machine, and a hint for each way a connection fails.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tickcast::client::{Client, ClientError};
use tickcast::protocol::PROTOCOL_VERSION;
use tokio_tungstenite::tungstenite::{self, http::Uri};

/// Where `cargo run --release` of the server serves its lobby and rooms API.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Where the same server accepts players into its default room.
pub const DEFAULT_WS_URL: &str = "ws://127.0.0.1:8080/ws";

/// Where the same server serves its spectator feed.
pub const DEFAULT_EVENTS_URL: &str = "http://127.0.0.1:8080/events";

/// How long one connection attempt (TCP, WebSocket upgrade, hello and welcome) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a URL is not a place we may send load to.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The URL does not parse or has no host.
    #[error("bad url {url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// The host name does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host part of the URL.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// The host is, or resolves to, an address outside 127.0.0.0/8 and ::1.
    #[error(
        "{host} ({addr}) is not a loopback address: load tests only target this machine (pass --allow-remote to override)"
    )]
    NotLoopback {
        /// The host part of the URL.
        host: String,
        /// The first non-loopback address it resolved to.
        addr: SocketAddr,
    },
}

/// Checks that every address `url`'s host resolves to is a loopback address.
///
/// Resolving (rather than matching the text) accepts `localhost` and refuses a name that
/// points elsewhere.
pub async fn ensure_loopback(url: &str) -> Result<(), TargetError> {
    let bad = |why: &str| TargetError::BadUrl {
        url: url.into(),
        why: why.into(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|err: tungstenite::http::uri::InvalidUri| bad(&err.to_string()))?;
    let host = uri.host().ok_or_else(|| bad("no host"))?;
    // An IPv6 literal keeps its brackets in the URI; the resolver wants it bare.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| TargetError::Resolve {
            host: host.into(),
            source,
        })?;
    let mut any = false;
    for addr in addrs {
        any = true;
        if !addr.ip().is_loopback() {
            return Err(TargetError::NotLoopback {
                host: host.into(),
                addr,
            });
        }
    }
    if any {
        Ok(())
    } else {
        Err(bad("the host resolves to no address"))
    }
}

/// [`Client::connect`] with a deadline of [`CONNECT_TIMEOUT`]: a server that accepts the TCP
/// connection but never answers is a failure, not a hang.
pub async fn connect(url: &str, name: &str) -> Result<Client, ClientError> {
    Target::Url(url.into()).join(name).await
}

/// Where a player goes: a room's player URL, or whatever room matchmaking finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A player URL: `ws://host:port/rooms/{id}/ws`, or `ws://host:port/ws` for the default
    /// room.
    Url(String),
    /// `POST /matchmake` for `game` on the server at `server` (`http://host:port`), then the
    /// room it answers, with its token.
    Matchmake {
        /// The server's base URL.
        server: String,
        /// The game.
        game: String,
    },
}

impl Target {
    /// The player URL of room `room` on the server at `server` (`http://host:port`).
    pub fn room(server: &str, room: &str) -> Self {
        let ws = server
            .strip_prefix("https://")
            .map(|rest| format!("wss://{rest}"))
            .unwrap_or_else(|| format!("ws://{}", server.trim_start_matches("http://")));
        Self::Url(format!("{}/rooms/{room}/ws", ws.trim_end_matches('/')))
    }

    /// The URL load would go to (for the loopback rule and reports).
    pub fn url(&self) -> &str {
        match self {
            Target::Url(url) => url,
            Target::Matchmake { server, .. } => server,
        }
    }

    /// Joins as `name`, within [`CONNECT_TIMEOUT`] (matchmaking included).
    pub async fn join(&self, name: &str) -> Result<Client, ClientError> {
        let joining = async {
            match self {
                Target::Url(url) => Client::connect(url, name).await,
                Target::Matchmake { server, game } => {
                    let seat = matchmake_obeying_retry_after(server, game, name).await?;
                    Client::join(&seat, name).await
                }
            }
        };
        let url = self.url();
        match tokio::time::timeout(CONNECT_TIMEOUT, joining).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Connect {
                url: url.into(),
                source: tungstenite::Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no welcome within {CONNECT_TIMEOUT:?}"),
                )),
            }),
        }
    }
}

/// Matchmaking that waits as the server says (`Retry-After`) when it is refused for now (a
/// 429 over this address's budget, a 503), for as long as [`Target::join`] lets it.
async fn matchmake_obeying_retry_after(
    server: &str,
    game: &str,
    name: &str,
) -> Result<tickcast::client::rooms_api::HeldPlace, tickcast::client::rooms_api::ApiError> {
    use tickcast::client::rooms_api::{self, ApiError};
    loop {
        match rooms_api::matchmake(server, game, name).await {
            Err(ApiError::Refused {
                status,
                retry_after: Some(wait),
                ..
            }) if status == 429 || status == 503 => {
                // A little jitter, so bots refused together do not come back together.
                let jitter = Duration::from_millis(u64::from(rand::random::<u8>()) * 4);
                tokio::time::sleep(wait + jitter).await;
            }
            answer => return answer,
        }
    }
}

/// What a person can do about `err`, when there is something to say beyond its message.
pub fn hint(err: &ClientError) -> Option<String> {
    let text = match err {
        ClientError::Connect {
            source: tungstenite::Error::Io(io),
            ..
        } if io.kind() == io::ErrorKind::ConnectionRefused => {
            "nothing is listening there: is the server running? Start it with `cargo run --release`".into()
        }
        ClientError::Connect {
            source: tungstenite::Error::Http(response),
            ..
        } => format!(
            "the server answered HTTP {} instead of upgrading to a WebSocket: players connect to /ws",
            response.status()
        ),
        ClientError::Connect {
            source: tungstenite::Error::Url(_),
            ..
        } => "player URLs look like ws://127.0.0.1:8080/ws".into(),
        ClientError::Closed { code: 1002, .. } => format!(
            "this client speaks protocol version {PROTOCOL_VERSION}: build it from the same tickcast version as the server"
        ),
        ClientError::Closed { code: 1013, .. } => "the server is at its player cap (its --max-players)".into(),
        ClientError::Closed { code: 1001, .. } => "the server was stopped: run this again once it is back".into(),
        ClientError::Closed { code: 1008, .. } => {
            "the server dropped this client for breaking a rule or reading too slowly".into()
        }
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_hosts_pass_and_others_are_refused() {
        for url in [
            "ws://127.0.0.1:8080/ws",
            "ws://127.9.8.7/ws",
            "ws://[::1]:9/ws",
            "ws://localhost:1/ws",
        ] {
            ensure_loopback(url).await.unwrap_or_else(|err| panic!("{url}: {err}"));
        }
        for url in [
            "ws://10.0.0.1:8080/ws",
            "ws://192.168.1.2/ws",
            "ws://[2001:db8::1]:80/ws",
        ] {
            let err = ensure_loopback(url).await.unwrap_err();
            assert!(matches!(err, TargetError::NotLoopback { .. }), "{url}: {err}");
        }
        assert!(matches!(
            ensure_loopback("no host here").await,
            Err(TargetError::BadUrl { .. })
        ));
    }

    #[test]
    fn a_version_mismatch_gets_a_hint() {
        let err = ClientError::Closed {
            code: 1002,
            reason: "protocol version 3 not supported: this server speaks 2".into(),
        };
        let expected = format!("protocol version {PROTOCOL_VERSION}");
        assert!(hint(&err).unwrap().contains(&expected));
        assert!(hint(&ClientError::Protocol("x".into())).is_none());
    }
}
