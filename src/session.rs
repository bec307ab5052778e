//! One player's WebSocket connection, from hello to close.
//!
//! A single task per player: it reads the player's messages, answers pings on the spot, writes
//! the frames the tick loop queues for it, and closes the socket with a code and a reason when
//! anything goes wrong. Nothing a client sends reaches the world except through the player's
//! [`InputSlot`], so a misbehaving client only ever closes its own connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::CloseReason;
use crate::protocol::{
    ClientMsg, Hello, MAX_NAME_LEN, MAX_TOKEN_LEN, Move, PROTOCOL_VERSION, Pong, ServerMsg, unix_micros,
};
use crate::roster::{InputSlot, Seat};
use crate::server::AppState;
use crate::sim::MAX_AXIS;
use crate::tick::JoinRequest;

/// Why a session ends: the close code and reason sent to the client, and how it is counted.
#[derive(Debug)]
struct Close {
    reason: CloseReason,
    code: u16,
    text: String,
}

impl Close {
    fn new(reason: CloseReason, code: u16, text: impl Into<String>) -> Self {
        Self {
            reason,
            code,
            text: text.into(),
        }
    }

    /// The peer went away: nothing to send.
    fn gone() -> Self {
        Self::new(CloseReason::PeerGone, close_code::NORMAL, "")
    }
}

/// Runs a player connection until it closes. `permit` holds its place under `--max-players`.
pub(crate) async fn run(socket: WebSocket, peer: SocketAddr, state: Arc<AppState>, permit: OwnedSemaphorePermit) {
    let span = tracing::info_span!("player", peer = %peer, id = tracing::field::Empty);
    async move {
        let mut session = Session {
            socket,
            state,
            last_seq: None,
        };
        let close = session.serve().await;
        session.finish(close).await;
        drop(permit);
    }
    .instrument(span)
    .await
}

struct Session {
    socket: WebSocket,
    state: Arc<AppState>,
    /// The highest move `seq` seen; lower or equal ones are stale and ignored.
    last_seq: Option<u32>,
}

impl Session {
    async fn serve(&mut self) -> Close {
        let hello = match self.hello().await {
            Ok(hello) => hello,
            Err(close) => return close,
        };
        let input = Arc::new(InputSlot::default());
        let (out, mut frames) = mpsc::channel::<Bytes>(self.state.config.player_queue as usize);
        let kick = CancellationToken::new();
        let (reply, joined) = oneshot::channel();
        let seat = Seat {
            input: input.clone(),
            out,
            kick: kick.clone(),
        };
        let join = JoinRequest { seat, reply };
        let shutdown = self.state.shutdown.clone();
        tokio::select! {
            _ = shutdown.cancelled() => return shutting_down(),
            sent = self.state.joins.send(join) => if sent.is_err() { return shutting_down() },
        }
        let id = tokio::select! {
            _ = shutdown.cancelled() => return shutting_down(),
            id = joined => match id { Ok(id) => id, Err(_) => return shutting_down() },
        };
        tracing::Span::current().record("id", id);
        tracing::info!(name = %hello.name, "player joined");

        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return shutting_down(),
                _ = kick.cancelled() => {
                    return Close::new(CloseReason::TooSlow, close_code::POLICY, "too slow: outbound queue stayed full");
                }
                frame = frames.recv() => match frame {
                    Some(frame) => {
                        let len = frame.len();
                        if let Err(close) = self.send(Message::Binary(frame)).await {
                            return close;
                        }
                        self.state.metrics.websocket.sent(len);
                    }
                    None => return shutting_down(), // the tick loop has stopped
                },
                msg = self.socket.recv() => {
                    let msg = match read(msg) {
                        Ok(Some(msg)) => msg,
                        Ok(None) => continue,
                        Err(close) => return close,
                    };
                    if let Err(close) = self.handle(msg, &input).await {
                        return close;
                    }
                }
            }
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
            if let Some(msg) = read(msg)? {
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
            ClientMsg::Hello(h) => Ok(h),
            _ => Err(Close::new(
                CloseReason::Handshake,
                close_code::PROTOCOL,
                "expected hello as the first message",
            )),
        }
    }

    /// Acts on one binary message from a joined player.
    async fn handle(&mut self, bytes: Bytes, input: &InputSlot) -> Result<(), Close> {
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
                let len = pong.len();
                self.send(Message::Binary(pong.into())).await?;
                metrics.websocket.sent(len);
                Ok(())
            }
            ClientMsg::Hello(_) => Err(Close::new(CloseReason::Policy, close_code::POLICY, "hello sent twice")),
        }
    }

    async fn send(&mut self, msg: Message) -> Result<(), Close> {
        let limit = self.state.config.write_timeout;
        match timeout(limit, self.socket.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Close::gone()),
            Err(_) => Err(Close::new(
                CloseReason::Timeout,
                close_code::POLICY,
                format!("write stalled for {limit:?}"),
            )),
        }
    }

    /// Sends the close frame (unless the peer is gone or stalled) and counts the close.
    async fn finish(mut self, close: Close) {
        self.state.metrics.close(close.reason);
        match close.reason {
            CloseReason::PeerGone => tracing::info!("player left"),
            CloseReason::Shutdown => tracing::debug!("closed for shutdown"),
            reason => tracing::info!(?reason, code = close.code, reason = %close.text, "closing player"),
        }
        if matches!(close.reason, CloseReason::PeerGone | CloseReason::Timeout) {
            return;
        }
        let frame = CloseFrame {
            code: close.code,
            reason: close.text.into(),
        };
        // Best effort, and briefly: a peer too slow to take a close frame is simply dropped.
        let _ = timeout(
            Duration::from_millis(500),
            self.socket.send(Message::Close(Some(frame))),
        )
        .await;
    }
}

fn shutting_down() -> Close {
    Close::new(CloseReason::Shutdown, close_code::AWAY, "server shutting down")
}

/// Sorts what the socket produced: a binary payload, nothing of interest, or the end.
fn read(msg: Option<Result<Message, axum::Error>>) -> Result<Option<Bytes>, Close> {
    match msg {
        Some(Ok(Message::Binary(bytes))) => Ok(Some(bytes)),
        Some(Ok(Message::Text(_))) => Err(Close::new(
            CloseReason::TextFrame,
            close_code::UNSUPPORTED,
            "text frames are not accepted: send binary bincode messages",
        )),
        // Control frames: tungstenite answers pings itself.
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(None),
        Some(Ok(Message::Close(_))) | None => Err(Close::gone()),
        Some(Err(err)) => Err(read_error(err)),
    }
}

fn read_error(err: axum::Error) -> Close {
    match err.into_inner().downcast::<WsError>() {
        Ok(ws) => match *ws {
            WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => Close::new(
                CloseReason::TooBig,
                close_code::SIZE,
                format!("message of {size} bytes is over the {max_size}-byte limit"),
            ),
            WsError::Protocol(p) => Close::new(CloseReason::Malformed, close_code::PROTOCOL, p.to_string()),
            _ => Close::gone(),
        },
        Err(_) => Close::gone(),
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
