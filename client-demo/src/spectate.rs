//! `spectate`: follows the server's spectator feed (`GET /events`) and summarises it once a
//! second.
//!
//! One HTTP/1.1 GET, read as it arrives: body chunks go through the [`sse`] parser, events
//! through [`feed`] into a [`World`]. Like a browser's `EventSource`, the follower reconnects
//! after the server's `retry:` delay (sending `Last-Event-ID`) when an established stream
//! breaks, or when the world it rebuilt stops matching the deltas (a new stream starts with a
//! snapshot). It stops at the `shutdown` event, or when told to, and gives up after
//! [`MAX_RETRIES`] reconnections in a row that delivered nothing usable.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::arena::Standing;
use crate::feed::{self, FeedError, FeedEvent, World};
use crate::sse::{self, SseError};

/// Reconnection delay when the server did not set one (the standard leaves it to the client).
const DEFAULT_RETRY: Duration = Duration::from_secs(1);

/// Reconnections in a row, without an event in between, before giving up.
pub const MAX_RETRIES: u32 = 5;

/// Players shown in a summary.
const LEADERS: usize = 3;

/// Why following the feed failed.
#[derive(Debug, thiserror::Error)]
pub enum SpectateError {
    /// The URL is not an `http://host:port/path` URL.
    #[error("bad url {url:?}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No TCP connection could be made.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// Where we tried.
        url: String,
        /// Why it failed.
        source: io::Error,
    },
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered, but not with 200.
    #[error("{url} answered {status}")]
    Status {
        /// Where we asked.
        url: String,
        /// What it said.
        status: StatusCode,
    },
    /// The server answered 200 with something other than an event stream.
    #[error("{url} sent {content_type:?}, not text/event-stream")]
    NotEventStream {
        /// Where we asked.
        url: String,
        /// The content type it sent.
        content_type: String,
    },
    /// The stream broke the event-stream format.
    #[error(transparent)]
    Sse(#[from] SseError),
    /// An event was not what the feed promises, or did not fit the world held.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// [`MAX_RETRIES`] reconnections in a row brought nothing usable.
    #[error("gave up after {MAX_RETRIES} reconnections in a row; the last one: {last}")]
    GaveUp {
        /// Why the last connection ended.
        last: String,
    },
}

impl SpectateError {
    /// What a person can do about this error, when there is something to add.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SpectateError::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionRefused => {
                Some("nothing is listening there: is the server running? Start it with `cargo run --release`")
            }
            SpectateError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            } => Some("this server has no spectator feed there: it is served at /events"),
            _ => None,
        }
    }

    /// Whether a fresh connection may fix it (as opposed to a wrong URL or a broken server).
    fn is_transient(&self) -> bool {
        matches!(self, SpectateError::Connect { .. } | SpectateError::Http(_))
    }
}

/// How following ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server said it is shutting down, and why.
    Shutdown(String),
    /// The caller's token fired.
    Stopped,
}

/// The feed's state once a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Time since following began.
    pub elapsed: Duration,
    /// The world's tick, once a snapshot arrived.
    pub tick: Option<u64>,
    /// Entities in the world, by kind name, in the schema's order.
    pub census: Vec<(String, usize)>,
    /// Spectators connected, as the server last said.
    pub spectators: u32,
    /// Events received in the last second.
    pub events_per_sec: u64,
    /// Body bytes received in the last second.
    pub bytes_per_sec: u64,
    /// The best players.
    pub leaders: Vec<Standing>,
    /// Reconnections so far.
    pub reconnects: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:>3}s] ", self.elapsed.as_secs())?;
        match self.tick {
            Some(tick) => {
                let census: Vec<String> = self.census.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
                write!(
                    f,
                    "tick {tick} | {} | {} spectators",
                    census.join(", "),
                    self.spectators
                )?;
            }
            None => f.write_str("waiting for the first snapshot")?,
        }
        write!(
            f,
            " | {} events/s, {:.1} KiB/s",
            self.events_per_sec,
            self.bytes_per_sec as f64 / 1024.0
        )?;
        if !self.leaders.is_empty() {
            let top: Vec<String> = self.leaders.iter().map(|s| format!("#{} {}", s.id, s.score)).collect();
            write!(f, " | top {}", top.join(", "))?;
        }
        if self.reconnects > 0 {
            write!(f, " | {} reconnects", self.reconnects)?;
        }
        Ok(())
    }
}

/// Follows the feed at `url` until the server shuts down or `stop` fires; `on_summary` is
/// called once a second.
pub async fn follow(
    url: &str,
    stop: CancellationToken,
    mut on_summary: impl FnMut(&Summary),
) -> Result<Ended, SpectateError> {
    let uri = parse_url(url)?;
    let mut follower = Follower {
        url,
        parser: sse::Parser::new(),
        world: None,
        started: Instant::now(),
        events: 0,
        applied: 0,
        bytes: 0,
        last: (0, 0),
        reconnects: 0,
    };
    let mut summaries = time::interval_at(Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    summaries.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut retries = 0;
    loop {
        let applied_before = follower.applied;
        let ended = follower.stream(&uri, &stop, &mut summaries, &mut on_summary).await;
        // Only a connection that made progress resets the count of failures in a row.
        if follower.applied > applied_before {
            retries = 0;
        }
        let why = match ended {
            Ok(Some(ended)) => return Ok(ended),
            Ok(None) => "the stream ended".to_string(),
            Err(SpectateError::Feed(err @ (FeedError::WrongBase { .. } | FeedError::UnknownEntity(_))))
                if follower.applied > 0 =>
            {
                // Our world no longer fits the feed: ask for a snapshot rather than a resume.
                follower.world = None;
                follower.parser.forget_last_event_id();
                err.to_string()
            }
            // The first connection failing is a wrong URL or a server not running: say so now.
            Err(err) if follower.applied > 0 && err.is_transient() => err.to_string(),
            Err(err) => return Err(err),
        };
        retries += 1;
        if retries > MAX_RETRIES {
            return Err(SpectateError::GaveUp { last: why });
        }
        let delay = follower.parser.retry().unwrap_or(DEFAULT_RETRY);
        tracing::warn!(%why, ?delay, "reconnecting to the feed");
        tokio::select! {
            () = stop.cancelled() => return Ok(Ended::Stopped),
            () = time::sleep(delay) => {}
        }
        // The world is kept: the server resumes after `Last-Event-ID` with the deltas that
        // follow it, or sends a snapshot that replaces it.
        follower.reconnects += 1;
    }
}

/// The state kept across reconnections.
struct Follower<'a> {
    url: &'a str,
    parser: sse::Parser,
    world: Option<World>,
    started: Instant,
    /// Events received.
    events: u64,
    /// Events received and applied (or understood as a shutdown).
    applied: u64,
    /// Body bytes received.
    bytes: u64,
    /// `(events, bytes)` at the previous summary.
    last: (u64, u64),
    reconnects: u64,
}

impl Follower<'_> {
    /// Reads one connection's stream; `Ok(None)` when it ends without a shutdown event.
    async fn stream(
        &mut self,
        uri: &Uri,
        stop: &CancellationToken,
        summaries: &mut time::Interval,
        on_summary: &mut impl FnMut(&Summary),
    ) -> Result<Option<Ended>, SpectateError> {
        let mut body = tokio::select! {
            () = stop.cancelled() => return Ok(Some(Ended::Stopped)),
            body = open(self.url, uri, self.parser.last_event_id()) => body?,
        };
        self.parser.restart();
        let mut events = Vec::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(Some(Ended::Stopped)),
                _ = summaries.tick() => on_summary(&self.summary()),
                frame = body.frame() => {
                    let Some(frame) = frame else { return Ok(None) };
                    let Ok(data) = frame?.into_data() else { continue }; // trailers
                    self.bytes += data.len() as u64;
                    self.parser.push(&data, &mut events)?;
                    for event in events.drain(..) {
                        self.events += 1;
                        let shutdown = self.handle(&event)?;
                        self.applied += 1;
                        if let Some(reason) = shutdown {
                            return Ok(Some(Ended::Shutdown(reason)));
                        }
                    }
                }
            }
        }
    }

    /// Applies one event; returns the reason when it is the server's shutdown.
    fn handle(&mut self, event: &sse::Event) -> Result<Option<String>, FeedError> {
        match FeedEvent::parse(event)? {
            Some(FeedEvent::Snapshot(snapshot)) => self.world = Some(World::from_snapshot(snapshot)),
            Some(FeedEvent::Delta(delta)) => match &mut self.world {
                Some(world) => world.apply(&delta)?,
                None => {
                    return Err(FeedError::WrongBase {
                        base: delta.base,
                        held: None,
                    });
                }
            },
            Some(FeedEvent::Shutdown(feed::Shutdown { reason })) => return Ok(Some(reason)),
            None => tracing::debug!(event = %event.event, "skipping an event type this client does not know"),
        }
        Ok(None)
    }

    fn summary(&mut self) -> Summary {
        let (events, bytes) = (self.events - self.last.0, self.bytes - self.last.1);
        self.last = (self.events, self.bytes);
        let world = self.world.as_ref();
        Summary {
            elapsed: self.started.elapsed(),
            tick: world.map(|w| w.tick),
            census: world.map(World::census).unwrap_or_default(),
            spectators: world.map_or(0, |w| w.spectators),
            events_per_sec: events,
            bytes_per_sec: bytes,
            leaders: world.map(|w| w.leaderboard(LEADERS)).unwrap_or_default(),
            reconnects: self.reconnects,
        }
    }
}

/// Checks that `url` is something [`open`] can request.
fn parse_url(url: &str) -> Result<Uri, SpectateError> {
    let bad = |why: &str| SpectateError::BadUrl {
        url: url.into(),
        why: why.into(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|err: hyper::http::uri::InvalidUri| bad(&err.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("the feed is plain http://, e.g. http://127.0.0.1:8080/events"));
    }
    if uri.host().is_none() {
        return Err(bad("no host"));
    }
    Ok(uri)
}

/// Sends the GET and checks that an event stream comes back.
async fn open(url: &str, uri: &Uri, last_event_id: &str) -> Result<Incoming, SpectateError> {
    // `parse_url` checked there is a host.
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let tcp = TcpStream::connect((host, uri.port_u16().unwrap_or(80)))
        .await
        .map_err(|source| SpectateError::Connect {
            url: url.into(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    // The connection task ends when the response body (and `sender`) are dropped.
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "feed connection ended");
        }
    });

    let mut request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, authority)
        .header(ACCEPT, "text/event-stream")
        .header(CACHE_CONTROL, "no-cache");
    // An id that cannot be a header value (control characters) is not sent rather than fatal.
    match HeaderValue::from_bytes(last_event_id.as_bytes()) {
        Ok(id) if !last_event_id.is_empty() => request = request.header("last-event-id", id),
        _ => {}
    }
    // Every part is a checked URI piece or a constant, so building cannot fail.
    let request = request.body(Empty::<Bytes>::new()).expect("a well-formed request");
    let response = sender.send_request(request).await?;
    if response.status() != StatusCode::OK {
        return Err(SpectateError::Status {
            url: url.into(),
            status: response.status(),
        });
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Err(SpectateError::NotEventStream {
            url: url.into(),
            content_type: content_type.into(),
        });
    }
    Ok(response.into_body())
}
