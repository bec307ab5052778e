//! One player's WebSocket connection, from hello to close.
//!
//! A single task per player: it reads the player's messages, answers pings on the spot, writes
//! the frames the tick loop queues for it, and closes the socket with a code and a reason when
//! anything goes wrong. Nothing a client sends reaches the world except through the player's
//! [`InputSlot`], so a misbehaving client only ever closes its own connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::close_code;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::{self, Instant, MissedTickBehavior, timeout};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth;
use crate::limits::{COMMANDS_PER_TICK, RateLimit, STRIKES_TO_CLOSE, Verdict};
use crate::metrics::CloseReason;
use crate::outbox::outbox;
use crate::protocol::{
    Ack, ClientMsg, Hello, MAX_NAME_LEN, MAX_TOKEN_LEN, Move, PROTOCOL_VERSION, Pong, ServerMsg, unix_micros,
};
use crate::roster::{InputSlot, Outbound, Seat};
use crate::server::AppState;
use crate::sim::MAX_AXIS;
use crate::socket::{self, Message, PlayerSocket};
use crate::tick::JoinRequest;

/// Why a session ends: the close code and reason sent to the client, and how it is counted.
#[derive(Debug)]
struct Close {
    reason: CloseReason,
    code: u16,
    text: String,
    /// Whether a close frame can still be sent: not when the peer is gone or a write stalled
    /// midway (a close frame after half a frame would be garbage).
    send_frame: bool,
}

impl Close {
    fn new(reason: CloseReason, code: u16, text: impl Into<String>) -> Self {
        Self {
            reason,
            code,
            text: text.into(),
            send_frame: true,
        }
    }

    /// The peer went away: nothing to send.
    fn gone() -> Self {
        Self::new(CloseReason::PeerGone, close_code::NORMAL, "").without_frame()
    }

    fn without_frame(self) -> Self {
        Self {
            send_frame: false,
            ..self
        }
    }

    fn too_slow() -> Self {
        Self::new(
            CloseReason::TooSlow,
            close_code::POLICY,
            "too slow: outbound queue stayed full",
        )
    }
}

/// Runs a player connection until it closes. `permit` holds its place under `--max-players`.
///
/// Not an `async fn`: one would keep its arguments in the future beside the session built
/// from them, and this future is most of what an idle player costs.
pub(crate) fn run(
    socket: PlayerSocket,
    peer: SocketAddr,
    state: Arc<AppState>,
    permit: OwnedSemaphorePermit,
) -> impl Future<Output = ()> {
    let span = tracing::info_span!("player", peer = %peer, id = tracing::field::Empty);
    let mut session = Session {
        socket,
        state,
        last_seq: None,
        kick: CancellationToken::new(),
        name: String::new(),
    };
    async move {
        let close = session.serve().await;
        session.finish(close).await;
        drop(permit);
    }
    .instrument(span)
}

struct Session {
    socket: PlayerSocket,
    state: Arc<AppState>,
    /// The highest move `seq` seen; lower or equal ones are stale and ignored.
    last_seq: Option<u32>,
    /// Cancelled by the tick loop when this player is too slow to keep.
    kick: CancellationToken,
    /// The name from the hello, once accepted.
    name: String,
}

impl Session {
    /// Runs the session; it only ever ends with the reason to close.
    async fn serve(&mut self) -> Close {
        match self.play().await {
            Ok(never) => match never {},
            Err(close) => close,
        }
    }

    async fn play(&mut self) -> Result<Infallible, Close> {
        let hello = self.hello().await?;
        let input = Arc::new(InputSlot::default());
        let (out, mut frames) = outbox(self.state.config.player_queue as usize);
        let kick = self.kick.clone();
        let (reply, joined) = oneshot::channel();
        let seat = Seat {
            input: input.clone(),
            out,
            kick: kick.clone(),
        };
        let join = JoinRequest { seat, reply };
        let shutdown = self.state.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => return Err(shutting_down()),
            sent = self.state.joins.send(join) => if sent.is_err() { return Err(shutting_down()) },
        }
        let id = tokio::select! {
            _ = shutdown.cancelled() => return Err(shutting_down()),
            id = joined => match id { Ok(id) => id, Err(_) => return Err(shutting_down()) },
        };
        tracing::Span::current().record("id", id);
        tracing::info!(name = %hello.name, "player joined");
        self.name = hello.name;

        let every = (self.state.config.idle_timeout / 3).max(Duration::from_millis(100));
        let mut heartbeat = time::interval_at(Instant::now() + every, every);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut allowance = RateLimit::for_tick_rate(self.state.config.tick_hz, last_heard);
        // Made once, not once per pass of the loop: a fresh `cancelled()` registers with its
        // token (under the token's lock) and deregisters when dropped, and every player
        // shares the one shutdown token: twice a tick per player, all on one lock.
        let (stopping, kicked) = (shutdown.cancelled(), kick.cancelled());
        tokio::pin!(stopping, kicked);
        loop {
            tokio::select! {
                biased;
                () = &mut stopping => return Err(shutting_down()),
                () = &mut kicked => return Err(Close::too_slow()),
                out = frames.recv() => match out {
                    Some(Outbound { ack, frame }) => {
                        let ack = ack.map(|seq| socket::binary_frame(ServerMsg::Ack(Ack { seq }).encode()));
                        let sizes = [ack.as_ref().map(Bytes::len), Some(frame.len())];
                        self.write(ack, frame).await?;
                        sizes.into_iter().flatten().for_each(|len| self.state.metrics.websocket.sent(len));
                    }
                    None => return Err(shutting_down()), // the tick loop has stopped
                },
                _ = heartbeat.tick() => {
                    let idle = self.state.config.idle_timeout;
                    if last_heard.elapsed() >= idle {
                        return Err(Close::new(CloseReason::Idle, close_code::POLICY, format!("nothing received for {idle:?}")));
                    }
                    // Answered by any WebSocket client's stack: proves the path is alive, and
                    // measures the round trip without the client's cooperation.
                    let sent_at = unix_micros().to_le_bytes();
                    self.write(None, socket::ping_frame(&sent_at)).await?;
                }
                msg = self.socket.recv() => {
                    last_heard = Instant::now();
                    let incoming = read(msg)?;
                    // Every message counts, WebSocket pings too: each costs a read, a ping a write.
                    match allowance.check(last_heard) {
                        Verdict::Allow => {}
                        Verdict::Drop => {
                            self.state.metrics.rate_limited.inc();
                            continue;
                        }
                        Verdict::Abuse => return Err(Close::new(
                            CloseReason::Flood,
                            close_code::POLICY,
                            format!("flooding: over {COMMANDS_PER_TICK} messages per tick for {STRIKES_TO_CLOSE} s"),
                        )),
                    }
                    match incoming {
                        Incoming::Binary(bytes) => self.handle(bytes, &input).await?,
                        Incoming::Pong(payload) => self.probed(&payload),
                        // tungstenite has queued the pong: send it now, not with the next tick.
                        Incoming::Ping => self.write(None, Bytes::new()).await?,
                    }
                }
            }
        }
    }

    /// Records the round trip of one of our heartbeat pings.
    fn probed(&self, payload: &[u8]) {
        if let Ok(sent_at) = <[u8; 8]>::try_from(payload) {
            let rtt_us = unix_micros().saturating_sub(u64::from_le_bytes(sent_at));
            self.state.metrics.probe_rtt.observe(rtt_us as f64 / 1e6);
        }
    }

    /// Waits for the hello and checks it.
    async fn hello(&mut self) -> Result<Hello, Close> {
        let deadline = self.state.config.hello_timeout;
        let first = loop {
            let msg = timeout(deadline, self.socket.recv()).await.map_err(|_| {
                Close::new(
                    CloseReason::Handshake,
                    close_code::POLICY,
                    format!("no hello within {deadline:?}"),
                )
            })?;
            if let Incoming::Binary(msg) = read(msg)? {
                break msg;
            }
        };
        self.state.metrics.websocket.received(first.len());
        match decode(&self.state, &first)? {
            ClientMsg::Hello(h) if h.version != PROTOCOL_VERSION => Err(Close::new(
                CloseReason::Handshake,
                close_code::PROTOCOL,
                format!(
                    "protocol version {} not supported: this server speaks {PROTOCOL_VERSION}",
                    h.version
                ),
            )),
            ClientMsg::Hello(h) if h.name.len() > MAX_NAME_LEN || h.token.len() > MAX_TOKEN_LEN => Err(Close::new(
                CloseReason::Policy,
                close_code::POLICY,
                format!("name over {MAX_NAME_LEN} or token over {MAX_TOKEN_LEN} bytes"),
            )),
            ClientMsg::Hello(h) => {
                if let Some(secret) = &self.state.config.auth_secret {
                    let now = unix_micros() / 1_000_000;
                    auth::verify(secret.as_bytes(), &h.name, &h.token, now)
                        .map_err(|err| Close::new(CloseReason::Auth, close_code::POLICY, err.to_string()))?;
                }
                Ok(h)
            }
            _ => Err(Close::new(
                CloseReason::Handshake,
                close_code::PROTOCOL,
                "expected hello as the first message",
            )),
        }
    }

    /// Acts on one binary message from a joined player.
    async fn handle(&mut self, bytes: Bytes, input: &InputSlot) -> Result<(), Close> {
        #[cfg(test)]
        tests::maybe_fail(&self.name);
        let metrics = self.state.metrics.clone();
        metrics.websocket.received(bytes.len());
        match decode(&self.state, &bytes)? {
            ClientMsg::Move(m) => {
                check_move(&m)?;
                if self.last_seq.is_some_and(|last| m.seq <= last) {
                    metrics.inputs_dropped.inc(); // stale: reordered or replayed
                } else {
                    self.last_seq = Some(m.seq);
                    if input.put(m) {
                        metrics.inputs_dropped.inc(); // superseded before a tick took it
                    }
                }
                Ok(())
            }
            ClientMsg::Ping(ping) => {
                // Answered here and now, not at the next tick: RTT must not include tick phase.
                let pong = ServerMsg::Pong(Pong {
                    nonce: ping.nonce,
                    client_time_us: ping.client_time_us,
                    server_tick: self.state.clock.get(),
                    server_time_us: unix_micros(),
                })
                .encode();
                let pong = socket::binary_frame(pong);
                let len = pong.len();
                self.write(None, pong).await?;
                metrics.websocket.sent(len);
                Ok(())
            }
            ClientMsg::Hello(_) => Err(Close::new(CloseReason::Policy, close_code::POLICY, "hello sent twice")),
        }
    }

    /// Writes `frame` after `lead` (a tick's ack and frame leave in one syscall), within the
    /// write timeout, and gives up at once if the tick loop kicks this player meanwhile.
    async fn write(&mut self, lead: Option<Bytes>, frame: Bytes) -> Result<(), Close> {
        let limit = self.state.config.write_timeout;
        let (socket, kick) = (&mut self.socket, &self.kick);
        tokio::select! {
            written = timeout(limit, socket.write(lead, frame)) => match written {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Close::gone()),
                Err(_) => Err(Close::new(CloseReason::Timeout, close_code::POLICY, format!("write stalled for {limit:?}"))
                    .without_frame()),
            },
            // Kicked by the tick loop while this very write is stuck on a full socket.
            _ = kick.cancelled() => Err(Close::too_slow().without_frame()),
        }
    }

    /// Sends the close frame (unless the peer is gone or stalled) and counts the close.
    async fn finish(&mut self, close: Close) {
        self.state.metrics.close(close.reason);
        match close.reason {
            CloseReason::PeerGone => tracing::info!("player left"),
            CloseReason::Shutdown => tracing::debug!("closed for shutdown"),
            reason => tracing::info!(?reason, code = close.code, reason = %close.text, "closing player"),
        }
        let frame = match (close.send_frame, close.reason) {
            (true, _) => socket::close_frame(close.code, &close.text),
            // The peer closed: tungstenite's reply to its close frame, which `write` sends
            // ahead of any frame, is all there is to send.
            (false, CloseReason::PeerGone) => Bytes::new(),
            // A write stalled midway: anything more would be garbage.
            (false, _) => return,
        };
        // Best effort, and briefly: a peer too slow to take a close frame is simply dropped.
        let _ = timeout(Duration::from_millis(500), self.socket.write(None, frame)).await;
    }
}

fn shutting_down() -> Close {
    Close::new(CloseReason::Shutdown, close_code::AWAY, "server shutting down")
}

/// What the socket produced, sorted.
enum Incoming {
    Binary(Bytes),
    /// A pong to one of our heartbeat pings.
    Pong(Bytes),
    /// A WebSocket ping; tungstenite has queued its pong.
    Ping,
}

fn read(msg: Option<Result<Message, WsError>>) -> Result<Incoming, Close> {
    match msg {
        Some(Ok(Message::Binary(bytes))) => Ok(Incoming::Binary(bytes)),
        Some(Ok(Message::Text(_))) => Err(Close::new(
            CloseReason::TextFrame,
            close_code::UNSUPPORTED,
            "text frames are not accepted: send binary bincode messages",
        )),
        Some(Ok(Message::Pong(payload))) => Ok(Incoming::Pong(payload)),
        // (A raw `Frame` is never produced by reading.)
        Some(Ok(Message::Ping(_) | Message::Frame(_))) => Ok(Incoming::Ping),
        Some(Ok(Message::Close(_))) | None => Err(Close::gone()),
        Some(Err(err)) => Err(read_error(err)),
    }
}

fn read_error(err: WsError) -> Close {
    match err {
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Close::new(
            CloseReason::TooBig,
            close_code::SIZE,
            format!("message of {size} bytes is over the {max_size}-byte limit"),
        ),
        // A peer that vanished without a close handshake simply left.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => Close::gone(),
        WsError::Protocol(p) => Close::new(CloseReason::Malformed, close_code::PROTOCOL, p.to_string()),
        _ => Close::gone(),
    }
}

fn decode(state: &AppState, bytes: &[u8]) -> Result<ClientMsg, Close> {
    ClientMsg::decode(bytes).map_err(|err| {
        state.metrics.decode_errors.inc();
        Close::new(CloseReason::Malformed, close_code::UNSUPPORTED, err.to_string())
    })
}

fn check_move(m: &Move) -> Result<(), Close> {
    let range = -MAX_AXIS..=MAX_AXIS;
    if range.contains(&m.dx) && range.contains(&m.dy) {
        Ok(())
    } else {
        Err(Close::new(
            CloseReason::Policy,
            close_code::POLICY,
            format!("move ({}, {}) is outside [-{MAX_AXIS}, {MAX_AXIS}]", m.dx, m.dy),
        ))
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use crate::client::{Client, ClientError, Received};
    use crate::{Config, Server};

    /// A player by this name makes its session task panic on its first message after joining
    /// (test builds only).
    const PANIC_NAME: &str = "inject-a-panic";

    pub(super) fn maybe_fail(name: &str) {
        assert!(name != PANIC_NAME, "injected session failure");
    }

    #[tokio::test]
    async fn a_panicking_session_takes_down_only_its_own_player() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server::new(
            listener,
            Config {
                seed: Some(1),
                ..Config::defaults()
            },
        );
        let url = format!("ws://{}/ws", server.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));

        let mut ann = Client::connect(&url, "ann").await.unwrap();
        let mut doomed = Client::connect(&url, PANIC_NAME).await.unwrap();
        let doomed_id = doomed.player_id();
        doomed.send_ping(1).await.unwrap(); // its session panics on this
        // ann sees the doomed player come and go, and the ticks keep coming.
        let mut seen = false;
        let mut gone_at = None;
        while gone_at.is_none_or(|t| ann.world().unwrap().tick() < t + 5) {
            match ann.recv().await.unwrap() {
                Received::Snapshot { .. } | Received::Delta { .. } => {
                    let present = ann.world().unwrap().get(doomed_id).is_some();
                    seen |= present;
                    if seen && !present && gone_at.is_none() {
                        gone_at = Some(ann.world().unwrap().tick());
                    }
                }
                Received::Pong { .. } => {}
            }
        }
        drop(doomed);
        // A newcomer still joins.
        let newcomer = Client::connect(&url, "late").await;
        assert!(
            newcomer.is_ok(),
            "{:?}",
            newcomer.err().map(|e: ClientError| e.to_string())
        );
        shutdown.cancel();
        running.await.unwrap().unwrap();
    }
}
