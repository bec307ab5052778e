//! Misbehaving clients for the soak: each [`Abuse`] is one kind of bad peer, tried over and
//! over until told to stop, every attempt bounded in time, with a pause between attempts.
//! What the server did about each attempt (a close code, a refusal, nothing) is tallied, so the
//! soak can show that every kind met the documented answer (README, "Security").

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use tickcast::protocol::{MAX_CLIENT_MESSAGE, PROTOCOL_VERSION, Schema};
use tokio::io::AsyncWriteExt;
use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::clients::counted::{Dial, Traffic};
use crate::clients::http1::Conn;
use crate::clients::rawws::{self, KEY, opcode};
use crate::clients::wire::{self, Ws};

/// A receive buffer small enough that a client that stops reading fills it within seconds.
const TINY_BUFFER: u32 = 4096;
/// Longest any single attempt may take: longer than every server timeout it provokes
/// (idle 15 s, head 10 s, slow 5 s, hello 5 s, flooding 3 s) and than a slow player's stall.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(40);

/// One kind of misbehaving client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Abuse {
    /// Joins, then sends random bytes as a binary message.
    Garbage,
    /// Joins, then sends a text message.
    Text,
    /// Joins, then sends a message over the size limit.
    Oversize,
    /// Says hello with a protocol version the server does not speak.
    WrongVersion,
    /// Joins, then sends moves far over the rate limit.
    Flood,
    /// Joins with a tiny receive buffer and keeps sending moves, but never reads.
    SlowPlayer,
    /// Opens the SSE feed with a tiny receive buffer and never reads.
    SlowSpectator,
    /// Connects, joins and drops the connection, over and over.
    ReconnectStorm,
    /// Upgrades to a WebSocket and never says hello.
    SilentUpgrade,
    /// Joins, then neither reads nor answers pings.
    SilentPlayer,
    /// Sends half an HTTP request head and goes silent.
    HalfHead,
    /// Upgrades and, before any hello, floods pings, pongs or empty continuation frames.
    PreHelloFlood,
    /// Upgrades and pings every second without ever saying hello.
    HelloSquat,
    /// Resumes the SSE feed or a long-poll 200 events back with a tiny receive buffer, and
    /// never reads.
    StalledResumer,
    /// Says hello with a name holding a newline and an escape sequence.
    ControlName,
    /// Upgrades with a rebinding, duplicated or non-ASCII Origin.
    ForeignOrigin,
    /// Sends invalid UTF-8 in a text frame or a close reason, or upgrades with a bad key.
    ProtocolFault,
}

impl Abuse {
    /// Every kind.
    pub const ALL: [Abuse; 17] = [
        Abuse::Garbage,
        Abuse::Text,
        Abuse::Oversize,
        Abuse::WrongVersion,
        Abuse::Flood,
        Abuse::SlowPlayer,
        Abuse::SlowSpectator,
        Abuse::ReconnectStorm,
        Abuse::SilentUpgrade,
        Abuse::SilentPlayer,
        Abuse::HalfHead,
        Abuse::PreHelloFlood,
        Abuse::HelloSquat,
        Abuse::StalledResumer,
        Abuse::ControlName,
        Abuse::ForeignOrigin,
        Abuse::ProtocolFault,
    ];

    /// How many of this kind run at once: the ones that hold a connection for seconds run
    /// several, so some are always open.
    pub fn parallel(self) -> usize {
        match self {
            Abuse::SlowPlayer
            | Abuse::SlowSpectator
            | Abuse::SilentUpgrade
            | Abuse::SilentPlayer
            | Abuse::HalfHead
            | Abuse::HelloSquat
            | Abuse::StalledResumer => 4,
            Abuse::ReconnectStorm => 2,
            _ => 1,
        }
    }

    /// Pause between two attempts of one loop.
    fn pause(self) -> Duration {
        match self {
            Abuse::ReconnectStorm => Duration::from_millis(20),
            _ => Duration::from_millis(200),
        }
    }
}

impl fmt::Display for Abuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Outcomes of all attempts: `(kind, what the server did)` -> attempts.
#[derive(Debug, Clone, Default)]
pub struct Outcomes(Arc<Mutex<BTreeMap<(Abuse, String), u64>>>);

impl Outcomes {
    fn add(&self, kind: Abuse, outcome: String) {
        // A poisoned lock only means another loop panicked mid-insert; the counts stay usable.
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((kind, outcome)).or_default() += 1;
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> BTreeMap<(Abuse, String), u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Tries `kind` against `addr` until `stop`, tallying into `outcomes`.
pub async fn run(kind: Abuse, addr: SocketAddr, seed: u64, outcomes: Outcomes, stop: CancellationToken) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    while !stop.is_cancelled() {
        let outcome = tokio::select! {
            () = stop.cancelled() => break,
            outcome = time::timeout(ATTEMPT_LIMIT, attempt(kind, addr, &mut rng)) => match outcome {
                Ok(outcome) => outcome,
                Err(_) => "attempt timed out (no answer from the server)".into(),
            },
        };
        outcomes.add(kind, outcome);
        tokio::select! {
            () = stop.cancelled() => break,
            () = time::sleep(kind.pause()) => {}
        }
    }
}

/// One attempt; returns what the server did.
async fn attempt(kind: Abuse, addr: SocketAddr, rng: &mut impl Rng) -> String {
    let traffic = Arc::new(Traffic::default());
    let tiny = Dial {
        source: None,
        recv_buffer: Some(TINY_BUFFER),
    };
    let joined = |dial| {
        let traffic = traffic.clone();
        async move {
            let mut ws = wire::open(addr, dial, traffic).await?;
            let welcome = wire::join(&mut ws, "abuser", PROTOCOL_VERSION).await?;
            Ok::<(Ws, Schema), wire::WireError>((ws, welcome.schema))
        }
    };
    let result: Result<String, String> = async {
        match kind {
            Abuse::Garbage | Abuse::Text | Abuse::Oversize => {
                let (mut ws, _) = joined(Dial::default()).await.map_err(err)?;
                let message = match kind {
                    Abuse::Garbage => {
                        let mut bytes = vec![0u8; rng.random_range(1..64)];
                        rng.fill(&mut bytes[..]);
                        // A first byte past every message tag: never a valid message by accident.
                        bytes[0] = 0xee;
                        Message::Binary(bytes.into())
                    }
                    Abuse::Text => Message::Text("{\"move\":[1,0]}".into()),
                    _ => Message::Binary(vec![0; MAX_CLIENT_MESSAGE * 2].into()),
                };
                ws.send(message).await.map_err(err)?;
                Ok(wire::ending(&mut ws, Duration::from_secs(5)).await)
            }
            Abuse::WrongVersion => {
                let mut ws = wire::open(addr, Dial::default(), traffic.clone()).await.map_err(err)?;
                match wire::join(&mut ws, "abuser", PROTOCOL_VERSION + 98).await {
                    Err(wire::WireError::Closed { code, .. }) => Ok(format!("close {code}")),
                    Ok(_) => Ok("welcomed (!)".into()),
                    Err(other) => Err(other.to_string()),
                }
            }
            Abuse::Flood => {
                let (mut ws, input) = joined(Dial::default()).await.map_err(err)?;
                flood(&mut ws, &input).await
            }
            Abuse::SlowPlayer => {
                let (mut ws, input) = joined(tiny).await.map_err(err)?;
                // Keep sending moves, so it is not idle, but never read: its queue on the server
                // fills once the socket buffers do (a quarter of a megabyte of deltas: about
                // 17 s with a hundred players moving), and then it is too slow to keep.
                let mut seq = 0;
                let until = Instant::now() + Duration::from_secs(30);
                while Instant::now() < until {
                    seq += 1;
                    if wire::send(&mut ws, &wire::input(seq, &[0, 1]), Some(&input))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    time::sleep(Duration::from_millis(100)).await;
                }
                Ok(wire::ending(&mut ws, Duration::from_secs(5)).await)
            }
            Abuse::SilentPlayer => {
                let (mut ws, _) = joined(Dial::default()).await.map_err(err)?;
                // Neither read nor answer pings, longer than the idle timeout; then read what is
                // left to see how the server ended it.
                time::sleep(Duration::from_secs(18)).await;
                Ok(wire::ending(&mut ws, Duration::from_secs(5)).await)
            }
            Abuse::SlowSpectator => {
                let mut conn = Conn::dial(addr, tiny, traffic.clone()).await.map_err(err)?;
                conn.send_get("/events", &[]).await.map_err(err)?;
                let head = conn.read_head().await.map_err(err)?;
                time::sleep(Duration::from_secs(15)).await;
                Ok(format!("{} then held 15 s unread", head.status))
            }
            Abuse::ReconnectStorm => {
                let ws = joined(Dial::default()).await.map_err(err)?;
                drop(ws); // no close handshake: the TCP connection just goes
                Ok("welcomed then dropped".into())
            }
            Abuse::SilentUpgrade => {
                let mut ws = wire::open(addr, Dial::default(), traffic.clone()).await.map_err(err)?;
                Ok(wire::ending(&mut ws, Duration::from_secs(12)).await)
            }
            Abuse::PreHelloFlood => pre_hello_flood(addr, rng).await,
            Abuse::HelloSquat => {
                let (tcp, status) = rawws::upgrade(addr, "/ws", &[], Some(KEY)).await.map_err(err)?;
                if status != 101 {
                    return Ok(format!("upgrade answered {status}"));
                }
                let (mut read, mut write) = tcp.into_split();
                let pinger = async {
                    loop {
                        time::sleep(Duration::from_secs(1)).await;
                        if write
                            .write_all(&rawws::frame(opcode::PING, true, b"squat"))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                };
                Ok(tokio::select! {
                    ending = rawws::ending(&mut read, Duration::from_secs(20)) => ending.to_string(),
                    () = pinger => "could not write".into(),
                })
            }
            Abuse::StalledResumer => {
                let mut state = Conn::connect(addr).await.map_err(err)?;
                let etag = state.get("/state", &[]).await.map_err(err)?;
                let tick: u64 = etag
                    .head
                    .header("etag")
                    .unwrap_or_default()
                    .trim_matches('"')
                    .parse()
                    .unwrap_or(0);
                // 200 events back at the default 30 Hz and 10 events/s.
                let resume = tick.saturating_sub(600).to_string();
                let mut conn = Conn::dial(addr, tiny, traffic.clone()).await.map_err(err)?;
                let sse = rng.random_bool(0.5);
                if sse {
                    conn.send_get("/events", &[("last-event-id", &resume)])
                        .await
                        .map_err(err)?;
                } else {
                    conn.send_get(&format!("/poll?after={resume}"), &[])
                        .await
                        .map_err(err)?;
                }
                time::sleep(Duration::from_secs(15)).await;
                Ok(format!(
                    "{} resumed, held 15 s unread",
                    if sse { "SSE" } else { "long-poll" }
                ))
            }
            Abuse::ControlName => {
                let mut ws = wire::open(addr, Dial::default(), traffic.clone()).await.map_err(err)?;
                match wire::join(&mut ws, "x\nFAKE ERROR\u{1b}[2J", PROTOCOL_VERSION).await {
                    Err(wire::WireError::Closed { code, .. }) => Ok(format!("close {code}")),
                    Ok(_) => Ok("welcomed (!)".into()),
                    Err(other) => Err(other.to_string()),
                }
            }
            Abuse::ForeignOrigin => {
                let host = format!("evil.example:{}", addr.port());
                let rebinding = format!("http://{host}");
                let own = format!("http://{addr}");
                let headers: Vec<(&str, &str)> = match rng.random_range(0..3) {
                    0 => vec![("origin", &rebinding)],
                    1 => vec![("origin", &own), ("origin", "http://evil.example")],
                    _ => vec![("origin", "http://\u{e9}vil.example")],
                };
                let (_, status) = rawws::upgrade(addr, "/ws", &headers, Some(KEY)).await.map_err(err)?;
                Ok(format!("upgrade answered {status}"))
            }
            Abuse::ProtocolFault => protocol_fault(addr, rng).await,
            Abuse::HalfHead => {
                let mut tcp = Dial::default().connect(addr).await.map_err(err)?;
                tcp.write_all(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    .await
                    .map_err(err)?;
                let started = Instant::now();
                let mut buf = [0u8; 512];
                let read = time::timeout(
                    Duration::from_secs(20),
                    tokio::io::AsyncReadExt::read(&mut tcp, &mut buf),
                )
                .await;
                Ok(match read {
                    Ok(Ok(_)) => format!("closed by the server after ~{} s", started.elapsed().as_secs()),
                    Ok(Err(e)) => format!("reset after ~{} s: {}", started.elapsed().as_secs(), e.kind()),
                    Err(_) => "still open after 20 s".into(),
                })
            }
        }
    }
    .await;
    result.unwrap_or_else(|e| format!("error: {e}"))
}

/// Upgrades and floods pings, pongs or empty continuation frames before any hello, for at
/// most 10 s, and says how the server ended it.
async fn pre_hello_flood(addr: SocketAddr, rng: &mut impl Rng) -> Result<String, String> {
    let (tcp, status) = rawws::upgrade(addr, "/ws", &[], Some(KEY)).await.map_err(err)?;
    if status != 101 {
        return Ok(format!("upgrade answered {status}"));
    }
    let (mut read, mut write) = tcp.into_split();
    let (opening, frame) = match rng.random_range(0..3) {
        0 => (Vec::new(), rawws::frame(opcode::PING, true, &[b'p'; 125])),
        1 => (Vec::new(), rawws::frame(opcode::PONG, true, &[b'p'; 125])),
        _ => (
            rawws::frame(opcode::BINARY, false, &[]),
            rawws::frame(opcode::CONTINUATION, false, &[]),
        ),
    };
    let batch = frame.repeat(64);
    // True when it flooded for the whole 10 s; false when the server stopped taking bytes.
    let flood = async {
        if write.write_all(&opening).await.is_err() {
            return false;
        }
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if write.write_all(&batch).await.is_err() {
                return false;
            }
        }
        true
    };
    let ran_out = tokio::select! {
        ending = rawws::ending(&mut read, Duration::from_secs(12)) => return Ok(ending.to_string()),
        ran_out = flood => ran_out,
    };
    if ran_out {
        return Ok("not closed after 10 s of flooding".into());
    }
    // The server closed while we were writing: its close frame is in what is left to read.
    Ok(rawws::ending(&mut read, Duration::from_secs(2)).await.to_string())
}

/// Joins and sends invalid UTF-8 in a text frame or a close reason, or upgrades with a key
/// that is not 16 bytes of base64.
async fn protocol_fault(addr: SocketAddr, rng: &mut impl Rng) -> Result<String, String> {
    let fault = match rng.random_range(0..3) {
        0 => rawws::frame(opcode::TEXT, true, &[0xff, 0xfe]),
        1 => rawws::frame(opcode::CLOSE, true, &rawws::close_payload(1000, &[0xc3, 0x28])),
        _ => {
            let (_, status) = rawws::upgrade(addr, "/ws", &[], Some("not base64"))
                .await
                .map_err(err)?;
            return Ok(format!("upgrade answered {status}"));
        }
    };
    let (mut tcp, _) = rawws::upgrade(addr, "/ws", &[], Some(KEY)).await.map_err(err)?;
    let hello = wire::hello("faulty", PROTOCOL_VERSION).encode(None);
    tcp.write_all(&rawws::frame(opcode::BINARY, true, &hello))
        .await
        .map_err(err)?;
    tcp.write_all(&fault).await.map_err(err)?;
    Ok(rawws::ending(&mut tcp, Duration::from_secs(5)).await.to_string())
}

/// Sends moves at about 500 a second (the allowance is 2 per tick) while reading, until the
/// server closes the connection or 10 s pass.
async fn flood(ws: &mut Ws, input: &Schema) -> Result<String, String> {
    let mut sends = time::interval(Duration::from_millis(2));
    sends.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0u32;
    while Instant::now() < deadline {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(frame))) => {
                    return Ok(format!("close {}", frame.map_or(1005, |f| u16::from(f.code))));
                }
                None => return Ok("ended without a close frame".into()),
                Some(Err(err)) => return Ok(format!("lost: {err}")),
                Some(Ok(_)) => continue,
            },
            _ = sends.tick() => {}
        }
        seq += 1;
        if wire::send(ws, &wire::input(seq, &[1, 0]), Some(input)).await.is_err() {
            return Ok(wire::ending(ws, Duration::from_secs(2)).await);
        }
    }
    Ok("not closed after 10 s of flooding".into())
}

fn err(e: impl fmt::Display) -> String {
    e.to_string()
}
