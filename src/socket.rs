//! A player's WebSocket, split by direction: tungstenite reads, we write pre-framed bytes.
//!
//! Reading is tungstenite's: it parses and unmasks what a client sends, enforces the frame and
//! message limits and answers the client's pings and close. Writing is ours, because every
//! frame the server sends is framed once, not once per player: the tick's delta becomes one
//! [`binary_frame`] that every player's session writes straight to its socket. Sending through
//! tungstenite instead would copy each frame into a per-connection write buffer, and that
//! buffer keeps the capacity of the largest frame it ever held: a keyframe of the whole world
//! (over 100 KiB in a match of 10 000 players), for every player, for as long as it stays.
//!
//! The frame formatting itself is tungstenite's ([`Frame::format`]); only the choice of when
//! to format, and where the bytes go, is ours. What tungstenite wants to write while reading
//! (a pong, a close reply) is collected and written by the session between its own frames,
//! so frames never interleave.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Buf, Bytes};
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::handshake::server::create_response_with_body;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

pub(crate) use tokio_tungstenite::tungstenite::Message;

use crate::protocol::MAX_CLIENT_MESSAGE;

/// tungstenite's read buffer per player. A move or a ping is under 20 bytes, so this holds a
/// dozen at once; the 128 KiB default would be thirty times all the rest of an idle player.
/// It grows for a larger message (a hello with a token), up to the message limit.
const READ_BUFFER: usize = 256;

/// A WebSocket binary frame (final, unmasked, as a server sends it) carrying `payload`.
pub(crate) fn binary_frame(payload: Vec<u8>) -> Bytes {
    format(Frame::message(payload, OpCode::Data(Data::Binary), true))
}

/// A ping frame carrying `payload` (at most 125 bytes).
pub(crate) fn ping_frame(payload: &[u8]) -> Bytes {
    format(Frame::ping(Bytes::copy_from_slice(payload)))
}

/// A close frame with `code` and `reason` (a reason over 123 bytes is cut, on a character
/// boundary, to fit a control frame).
pub(crate) fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format(Frame::close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason[..end].into(),
    })))
}

fn format(frame: Frame) -> Bytes {
    let mut out = Vec::with_capacity(frame.len());
    // Writing into a Vec cannot fail.
    frame.format(&mut out).expect("formatting into a Vec");
    out.into()
}

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

/// A player's socket once the upgrade is done.
#[derive(Debug)]
pub(crate) struct PlayerSocket {
    reader: WebSocketStream<Inbound>,
    writer: OwnedWriteHalf,
    /// Whether tungstenite owes the client a reply (a pong, a close) not yet in `replies`.
    reply_pending: bool,
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
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_CLIENT_MESSAGE))
            .max_frame_size(Some(MAX_CLIENT_MESSAGE))
            .read_buffer_size(READ_BUFFER)
            // Only tungstenite's own replies go through its writer: straight to `Inbound`.
            .write_buffer_size(0);
        let inbound = Inbound {
            read,
            replies: Vec::new(),
        };
        // Bytes the client sent right behind its request (its hello, say) are not lost.
        let reader =
            WebSocketStream::from_partially_read(inbound, parts.read_buf.to_vec(), Role::Server, Some(config)).await;
        Ok(Self {
            reader,
            writer,
            reply_pending: false,
        })
    }

    /// The next message from the client; `None` once the connection is closed.
    pub(crate) async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        let msg = self.reader.next().await;
        self.reply_pending |= matches!(msg, Some(Ok(Message::Ping(_) | Message::Close(_))));
        msg
    }

    /// Writes `frame` (see [`binary_frame`]), after anything tungstenite had to send and
    /// after `lead`, a small frame that belongs with it (a tick's ack): one vectored write
    /// when the socket takes it all. Cancelling it can leave a frame half written: after
    /// that, only dropping the socket is right.
    pub(crate) async fn write(&mut self, lead: Option<Bytes>, frame: Bytes) -> io::Result<()> {
        // tungstenite answers a ping or a close on its next read or flush: flush, so its reply
        // lands in `replies` now. That cannot block (`Inbound` takes every write), and an error
        // only says the connection is already closed, with nothing left to reply.
        if std::mem::take(&mut self.reply_pending) {
            let _ = self.reader.flush().await;
        }
        let replies = Bytes::from(std::mem::take(&mut self.reader.get_mut().replies));
        let mut out = replies.chain(lead.unwrap_or_default()).chain(frame);
        self.writer.write_all_buf(&mut out).await
    }
}

/// The read half, as tungstenite sees the whole stream: reads come from the socket, writes
/// (tungstenite's pongs and close replies) are kept for [`PlayerSocket::write`]. They stay
/// small: tungstenite holds at most one pending reply, and each read adds at most one.
#[derive(Debug)]
struct Inbound {
    read: OwnedReadHalf,
    replies: Vec<u8>,
}

impl AsyncRead for Inbound {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for Inbound {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.replies.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Control;

    use super::*;

    /// Parses one frame the way a client would.
    pub(crate) fn parse(bytes: &[u8]) -> (FrameHeader, &[u8]) {
        let mut cursor = io::Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().expect("a whole header");
        let start = cursor.position() as usize;
        assert_eq!(start + len as usize, bytes.len(), "exactly one frame");
        (header, &bytes[start..])
    }

    #[test]
    fn frames_carry_their_payload_unmasked_with_the_shortest_length() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![7u8; len];
            let frame = binary_frame(payload.clone());
            let header_len = match len {
                0..=125 => 2,
                126..=65_535 => 4,
                _ => 10,
            };
            assert_eq!(frame.len(), header_len + len);
            let (header, body) = parse(&frame);
            assert!(header.is_final && header.mask.is_none());
            assert_eq!(header.opcode, OpCode::Data(Data::Binary));
            assert_eq!(body, payload);
        }
    }

    #[test]
    fn a_long_close_reason_is_cut_to_fit_a_control_frame() {
        let frame = close_frame(1008, &"é".repeat(100));
        let (header, body) = parse(&frame);
        assert_eq!(header.opcode, OpCode::Control(Control::Close));
        assert!(body.len() <= 125);
        assert_eq!(&body[..2], &1008u16.to_be_bytes());
        assert!(std::str::from_utf8(&body[2..]).is_ok(), "cut on a character boundary");
    }
}
