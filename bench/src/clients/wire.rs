//! A bare player connection for the measuring commands: the WebSocket on a [`Counted`] socket
//! we opened ourselves, and the protocol's messages sent and read by hand.
//!
//! [`tickcast::client::Client`] is what a real client uses; this lower level is for what it
//! deliberately cannot do: connect from a chosen source address, count the bytes on the wire,
//! send frames a well-behaved client never sends, and see the close code that answers them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tickcast::protocol::{
    ClientMsg, Hello, Input, InputValues, MAX_SERVER_MESSAGE, PROTOCOL_VERSION, Schema, ServerMsg, Welcome,
};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::clients::counted::{Counted, Dial, Traffic};

/// A player WebSocket whose traffic is counted.
pub type Ws = WebSocketStream<Counted<TcpStream>>;

/// How a bare connection ended or failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// TCP or the WebSocket upgrade failed.
    #[error("connect: {0}")]
    Connect(#[source] tungstenite::Error),
    /// The server closed, with its code and reason.
    #[error("closed: {code} {reason}")]
    Closed {
        /// The close code (1005 when none, 1006 when the connection just ended).
        code: u16,
        /// The reason text.
        reason: String,
    },
    /// The connection failed.
    #[error("lost: {0}")]
    Lost(#[from] tungstenite::Error),
    /// Something other than the expected message.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Opens the player WebSocket at `addr` (no hello yet), counting into `traffic`.
pub async fn open(addr: SocketAddr, dial: Dial, traffic: Arc<Traffic>) -> Result<Ws, WireError> {
    let tcp = dial.connect(addr).await.map_err(|err| WireError::Connect(err.into()))?;
    let config = WebSocketConfig::default().max_message_size(Some(MAX_SERVER_MESSAGE));
    let url = format!("ws://{addr}/ws");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, Counted::new(tcp, traffic), Some(config))
        .await
        .map_err(WireError::Connect)?;
    Ok(ws)
}

/// Sends a hello of protocol `version` as `name`, and waits for the welcome (which carries the
/// game's schema, by which everything after it is read).
pub async fn join(ws: &mut Ws, name: &str, version: u32) -> Result<Welcome, WireError> {
    send(ws, &hello(name, version), None).await?;
    match next_with(ws, None).await? {
        ServerMsg::Welcome(welcome) => Ok(welcome),
        other => Err(WireError::Protocol(format!("expected welcome, got {other:?}"))),
    }
}

/// A hello as a client of this protocol version sends it.
pub fn hello(name: &str, version: u32) -> ClientMsg {
    ClientMsg::Hello(Hello {
        version,
        name: name.into(),
        token: String::new(),
        resume: String::new(),
        options: Vec::new(),
    })
}

/// An input of these values (the first input fields of the game's schema; the rest are 0).
pub fn input(seq: u32, values: &[i32]) -> ClientMsg {
    ClientMsg::Input(Input {
        seq,
        values: InputValues::new(values),
    })
}

/// Opens a connection and joins as `name`: [`open`] then [`join`]. Returns the socket and the
/// game's schema.
pub async fn connect(
    addr: SocketAddr,
    dial: Dial,
    traffic: Arc<Traffic>,
    name: &str,
) -> Result<(Ws, Schema), WireError> {
    let mut ws = open(addr, dial, traffic).await?;
    let welcome = join(&mut ws, name, PROTOCOL_VERSION).await?;
    Ok((ws, welcome.schema))
}

/// Sends one protocol message (an input or a message is written by the game's schema).
pub async fn send(ws: &mut Ws, msg: &ClientMsg, schema: Option<&Schema>) -> Result<(), WireError> {
    ws.send(Message::Binary(msg.encode(schema).into())).await?;
    Ok(())
}

/// The next server message, read by the game's schema, skipping control frames (tungstenite
/// answers pings by itself); a close frame or the end of the stream is [`WireError::Closed`].
pub async fn next(ws: &mut Ws, schema: &Schema) -> Result<ServerMsg, WireError> {
    next_with(ws, Some(schema)).await
}

async fn next_with(ws: &mut Ws, schema: Option<&Schema>) -> Result<ServerMsg, WireError> {
    loop {
        match unless_ended(ws.next().await)? {
            Message::Binary(bytes) => {
                return ServerMsg::decode(&bytes, schema).map_err(|err| WireError::Protocol(err.to_string()));
            }
            Message::Text(_) => return Err(WireError::Protocol("text message".into())),
            _ => {}
        }
    }
}

/// A message read, or how the connection ended: the end of the stream, a failure or a close
/// frame, as [`WireError`]s.
fn unless_ended(read: Option<Result<Message, tungstenite::Error>>) -> Result<Message, WireError> {
    match read {
        None => Err(WireError::Closed {
            code: 1006,
            reason: "connection ended".into(),
        }),
        Some(Err(err)) => Err(err.into()),
        Some(Ok(Message::Close(frame))) => {
            let (code, reason) = frame.map_or((1005, String::new()), |f| (u16::from(f.code), f.reason.to_string()));
            Err(WireError::Closed { code, reason })
        }
        Some(Ok(message)) => Ok(message),
    }
}

/// Reads and discards server messages (without decoding them) until the connection ends, for at
/// most `patience`, and says how it ended: `close <code>` (a close frame), `ended without a
/// close frame`, `lost: <error>`, or `still open`.
pub async fn ending(ws: &mut Ws, patience: Duration) -> String {
    let until_ended = async {
        match skip(ws).await {
            WireError::Closed { code: 1006, .. } => "ended without a close frame".to_owned(),
            WireError::Closed { code, .. } => format!("close {code}"),
            // Typically a reset or a broken pipe once the server has dropped the socket.
            WireError::Lost(tungstenite::Error::Io(err)) => format!("ended by the server ({})", err.kind()),
            WireError::Lost(err) => format!("lost: {err}"),
            other => other.to_string(),
        }
    };
    tokio::time::timeout(patience, until_ended)
        .await
        .unwrap_or_else(|_| "still open".into())
}

/// Skips server messages until the stream ends or closes; how it ended (as [`next`] reports it).
async fn skip(ws: &mut Ws) -> WireError {
    loop {
        if let Err(end) = unless_ended(ws.next().await) {
            return end;
        }
    }
}
