//! A player socket at the byte level, for hostile peers: an upgrade with any headers, client
//! frames of any kind (tungstenite formats and masks them), and the server's close frame.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends `GET /ws` with the upgrade headers (the key as given, none if `None`) and `headers`,
/// and returns the socket and the response's status. `host` replaces the request's Host.
pub async fn upgrade(addr: SocketAddr, key: Option<&str>, headers: &[(&str, &str)]) -> (TcpStream, u16) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let host = headers
        .iter()
        .find(|(name, _)| *name == "host")
        .map_or(addr.to_string(), |(_, v)| (*v).to_owned());
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-version: 13\r\n"
    );
    if let Some(key) = key {
        request.push_str(&format!("sec-websocket-key: {key}\r\n"));
    }
    for (name, value) in headers.iter().filter(|(name, _)| *name != "host") {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.expect("a response head"));
    }
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    (tcp, status)
}

/// A client frame, masked: `opcode` as RFC 6455 numbers it, `fin` set or not.
pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let op = OpCode::from(opcode);
    let mut frame = match op {
        OpCode::Data(_) => Frame::message(Bytes::copy_from_slice(payload), op, fin),
        OpCode::Control(_) => {
            let mut f = Frame::pong(Bytes::copy_from_slice(payload));
            f.header_mut().opcode = op;
            f
        }
    };
    frame.header_mut().mask = Some(rand::random());
    let mut out = Vec::new();
    frame.format(&mut out).expect("format into a Vec");
    out
}

/// A binary frame carrying `payload`.
pub fn binary(payload: &[u8]) -> Vec<u8> {
    frame(u8::from(OpCode::Data(Data::Binary)), true, payload)
}

/// What the server sent until it closed.
#[derive(Debug, Default)]
pub struct Ending {
    /// The close frame's code and reason, if one came.
    pub close: Option<(u16, String)>,
    /// Frames before it, by opcode.
    pub pongs: usize,
    pub others: usize,
}

/// Reads the server's frames until its close frame or the end of the connection, for at most
/// `patience` (`None` as the close if it never came).
pub async fn ending(read: &mut (impl AsyncRead + Unpin), patience: Duration) -> Ending {
    let mut ending = Ending::default();
    let _ = tokio::time::timeout(patience, async {
        loop {
            let mut head = [0u8; 2];
            if read.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = match head[1] & 0x7f {
                126 => u64::from(read.read_u16().await.unwrap_or(0)),
                127 => read.read_u64().await.unwrap_or(0),
                n => u64::from(n),
            };
            let mut payload = vec![0; len as usize];
            if read.read_exact(&mut payload).await.is_err() {
                return;
            }
            match head[0] & 0x0f {
                0x8 => {
                    let code = payload.get(..2).map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    ending.close = Some((code, reason));
                    return;
                }
                0xa => ending.pongs += 1,
                _ => ending.others += 1,
            }
        }
    })
    .await;
    ending
}
