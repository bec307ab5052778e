//! A player's WebSocket: we read its frames ([`crate::protocol::frames`]) and write frames
//! framed once.
//!
//! Reading is [`FrameReader`]'s: every frame the client sends is parsed, unmasked, checked and
//! reported, so the session can charge each one to the player's rate limit. Writing is ours
//! too, because every frame the server sends is framed once, not once per player: the tick's
//! delta becomes one [`frames::binary_frame`] that every player's session writes straight to its
//! socket. A per-connection write buffer would keep the capacity of the largest frame it ever
//! held: a keyframe of the whole world, for every player, for as long as it stays.
//!
//! Frames are formatted once ([`frames::binary_frame`]); the handshake's
//! `Sec-WebSocket-Accept` is tungstenite's.
//! What the client is owed while reading (a pong) is written by the session between its own
//! frames, so frames never interleave: a write cancelled midway leaves the rest owed, and
//! the next write finishes it first.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;

use crate::protocol::MAX_CLIENT_MESSAGE;
use crate::protocol::frames::{self, Fault, Frame, FrameReader};
use crate::room::outbox;

/// The read buffer a player starts with. A move or a ping is under 20 bytes, so this holds a
/// dozen at once; it grows for a larger message (a hello with a token), up to one frame of the
/// message limit ([`FrameReader::space`]).
const READ_BUFFER: usize = 256;

/// Why an upgrade request was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// Not a (well-formed) WebSocket upgrade request: 400.
    #[error("expected a WebSocket upgrade request: {0}")]
    NotAnUpgrade(String),
    /// Another WebSocket version than 13: 426, naming the one we speak.
    #[error("only WebSocket version 13 is spoken here")]
    Version,
    /// An upgrade request on a connection that cannot be upgraded: 400.
    #[error("this connection cannot be upgraded (HTTP/1.1 is required)")]
    NotUpgradable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let text = format!("{self}\n");
        match self {
            Refused::Version => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                text,
            )
                .into_response(),
            Refused::NotAnUpgrade(_) | Refused::NotUpgradable => (StatusCode::BAD_REQUEST, text).into_response(),
        }
    }
}

/// Checks a WebSocket upgrade request; returns the `101` response to send and the upgrade to
/// await.
pub(crate) fn accept(mut req: Request) -> Result<(Response, OnUpgrade), Refused> {
    let key = req.headers().get(header::SEC_WEBSOCKET_KEY);
    if !key.is_some_and(|key| is_websocket_key(key.as_bytes())) {
        return Err(Refused::NotAnUpgrade(
            "Sec-WebSocket-Key must be 16 bytes in base64".into(),
        ));
    }
    let response = create_response_with_body(&req, Body::empty).map_err(|err| match err {
        WsError::Protocol(ProtocolError::MissingSecWebSocketVersionHeader) => Refused::Version,
        err => Refused::NotAnUpgrade(err.to_string()),
    })?;
    let upgrade = req
        .extensions_mut()
        .remove::<OnUpgrade>()
        .ok_or(Refused::NotUpgradable)?;
    Ok((response, upgrade))
}

/// Whether `key` is what RFC 6455 (4.1) asks of a client: 16 bytes, base64-encoded (24
/// characters, the last two `=`).
fn is_websocket_key(key: &[u8]) -> bool {
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(base64) && &key[22..] == b"=="
}

/// A player's socket once the upgrade is done.
#[derive(Debug)]
pub(crate) struct PlayerSocket {
    read: OwnedReadHalf,
    frames: FrameReader,
    /// Shared with the tick loop once the player joins: it writes each tick's frame straight
    /// to the socket when nothing is owed (see [`crate::room::outbox`]).
    writer: Arc<OwnedWriteHalf>,
    /// Whole frames owed to the peer, in order; the first may be partly written already (a
    /// write was cancelled midway), and is finished before anything else is sent.
    unsent: VecDeque<Bytes>,
    /// Whether the first of `unsent` is partly written.
    partial: bool,
    /// The payload of the latest ping not yet answered. RFC 6455 (5.5.3) asks a pong for the
    /// most recent ping only, so a peer that pings faster than it reads costs one slot. A
    /// copy (at most 125 bytes), not a view that would keep the read buffer it came in, and
    /// half the size of one in every player's socket.
    pong: Option<Box<[u8]>>,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The peer broke RFC 6455 or our limits.
    #[error(transparent)]
    Fault(#[from] Fault),
    /// The connection ended (or failed) without a close frame.
    #[error("connection ended: {0}")]
    Ended(#[from] io::Error),
}

impl PlayerSocket {
    /// Completes the upgrade. Fails only if the connection went away meanwhile, or if it is
    /// not one of our TCP connections (every connection comes from our accept loop).
    pub(crate) async fn open(upgrade: OnUpgrade) -> io::Result<Self> {
        let upgraded = upgrade.await.map_err(io::Error::other)?;
        let parts = upgraded
            .downcast::<TokioIo<TcpStream>>()
            .map_err(|_| io::Error::other("upgraded connection is not a TCP stream"))?;
        let (read, writer) = parts.io.into_inner().into_split();
        Ok(Self {
            read,
            // Bytes the client sent right behind its request (its hello, say) are not lost.
            frames: FrameReader::new(MAX_CLIENT_MESSAGE, &parts.read_buf, READ_BUFFER),
            writer: Arc::new(writer),
            unsent: VecDeque::new(),
            partial: false,
            pong: None,
        })
    }

    /// The next frame from the client. Cancel-safe: bytes read stay buffered until a whole
    /// frame is there. A ping is answered with the next write ([`PlayerSocket::send`]).
    pub(crate) async fn recv(&mut self) -> Result<Frame, ReadError> {
        loop {
            if let Some(frame) = self.frames.next()? {
                if let Frame::Ping(payload) = &frame {
                    self.pong = Some(payload.as_ref().into());
                }
                return Ok(frame);
            }
            let space = self.frames.space();
            let read = self.read.read_buf(&mut self.frames.buffer().limit(space)).await?;
            if read == 0 {
                return Err(ReadError::Ended(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Gives back the read buffer if it holds nothing (no part of a frame): an idle player
    /// then holds none. The next read takes a small one, grown as a frame needs.
    pub(crate) fn release_buffer(&mut self) {
        let buffer = self.frames.buffer();
        if buffer.is_empty() && buffer.capacity() > 0 {
            *buffer = BytesMut::new();
        }
    }

    /// The write half, for the tick loop's direct writes.
    pub(crate) fn writer(&self) -> Arc<OwnedWriteHalf> {
        self.writer.clone()
    }

    /// The payload of the latest ping not yet answered, for an answer sent another way.
    pub(crate) fn take_pong(&mut self) -> Option<Bytes> {
        self.pong.take().map(Bytes::from)
    }

    /// Writes `frame` (see [`frames::binary_frame`]) after `lead`, a small frame that belongs with it
    /// (a tick's ack), and after what is owed (the rest of an interrupted frame, a pong): one
    /// vectored write when the socket takes it all.
    ///
    /// Cancel-safe at frame boundaries: cancelled midway, the frames stay owed and the next
    /// call finishes them first, so a close frame can always follow whole frames.
    pub(crate) async fn send(&mut self, lead: Option<Bytes>, frame: Bytes) -> io::Result<()> {
        self.unsent.extend(lead);
        if !frame.is_empty() {
            self.unsent.push_back(frame);
        }
        self.flush().await
    }

    /// Writes everything owed.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if let Some(payload) = self.pong.take() {
            // Not inside a frame that is partly written.
            let at = usize::from(self.partial).min(self.unsent.len());
            self.unsent.insert(at, frames::pong_frame(Bytes::from(payload)));
        }
        while !self.unsent.is_empty() {
            let mut slices = [IoSlice::new(&[]); 4];
            for (slice, bytes) in slices.iter_mut().zip(&self.unsent) {
                *slice = IoSlice::new(bytes);
            }
            let mut written = match try_send(&self.writer, &slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    self.writer.writable().await?;
                    continue;
                }
                Err(err) => return Err(err),
            };
            while let Some(front) = self.unsent.front_mut() {
                if written < front.len() {
                    front.advance(written);
                    self.partial = true;
                    break;
                }
                written -= front.len();
                self.unsent.pop_front();
                self.partial = false;
            }
        }
        Ok(())
    }
}

/// Writes `slices` to `socket` now or not at all (`WouldBlock`): [`outbox::send`] once the
/// runtime has checked the socket is writable (and noted it is not, when it is full).
pub(crate) fn try_send(socket: &OwnedWriteHalf, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    let stream: &TcpStream = socket.as_ref();
    stream.try_io(Interest::WRITABLE, || outbox::send(stream, slices))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_base64_sixteen_byte_key_is_a_websocket_key() {
        assert!(is_websocket_key(b"dGhlIHNhbXBsZSBub25jZQ=="));
        for bad in [
            &b""[..],
            b"dGhlIHNhbXBsZSBub25jZQ",
            b"dGhlIHNhbXBsZSBub25jZQ=",
            b"dGhlIHNhbXBsZ!Bub25jZQ==",
        ] {
            assert!(!is_websocket_key(bad), "{bad:?}");
        }
    }
}
