//! WebSocket at the byte level, for hostile clients: an upgrade with any headers, client frames
//! of any opcode (masked, as RFC 6455 requires of clients, or not), and a reader that skips
//! the server's frames until its close frame.
//!
//! tungstenite (through [`crate::clients::wire`]) is what a well-behaved measuring client
//! uses; it refuses to send what these attacks must send: pings before any message, lone
//! continuation frames, invalid UTF-8, unmasked frames, or a thousand frames in one write.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time;

/// Frame opcodes (RFC 6455, 5.2).
pub mod opcode {
    /// A continuation of a fragmented message.
    pub const CONTINUATION: u8 = 0x0;
    /// A text message.
    pub const TEXT: u8 = 0x1;
    /// A binary message.
    pub const BINARY: u8 = 0x2;
    /// Close.
    pub const CLOSE: u8 = 0x8;
    /// Ping.
    pub const PING: u8 = 0x9;
    /// Pong.
    pub const PONG: u8 = 0xa;
}

/// A well-formed `Sec-WebSocket-Key` (base64 of 16 bytes).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Sends an upgrade request for `path` with `headers` added (and `Sec-WebSocket-Key: key`
/// unless `key` is `None`), and reads the response head. Returns the socket and the status.
pub async fn upgrade(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    key: Option<&str>,
) -> io::Result<(TcpStream, u16)> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-version: 13\r\n"
    );
    if let Some(key) = key {
        request.push_str(&format!("sec-websocket-key: {key}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let status = read_head(&mut tcp).await?;
    Ok((tcp, status))
}

/// Reads an HTTP response head byte by byte (so nothing after it is consumed) and returns
/// its status code.
async fn read_head(tcp: &mut TcpStream) -> io::Result<u16> {
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io::Error::other("response head over 16 KiB"));
        }
        head.push(tcp.read_u8().await?);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not an HTTP response: {line:?}")))
}

/// A client frame: masked with a fixed key (the server must unmask; the key's value does not
/// matter to it), `fin` set or not.
pub fn frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A close frame's payload: the code, then the reason bytes as given (valid UTF-8 or not).
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// How the server ended a connection, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code (1005 when it carried none) and reason.
    Close(u16, String),
    /// The connection ended without a close frame.
    Dropped,
    /// Nothing ended within the patience.
    StillOpen,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Close(code, reason) if reason.is_empty() => write!(f, "close {code}"),
            Ending::Close(code, reason) => write!(f, "close {code} \"{reason}\""),
            Ending::Dropped => f.write_str("dropped without a close frame"),
            Ending::StillOpen => f.write_str("still open"),
        }
    }
}

/// Reads the server's frames, skipping all but close, for at most `patience`.
pub async fn ending(read: &mut (impl AsyncRead + Unpin), patience: Duration) -> Ending {
    time::timeout(patience, async {
        loop {
            match next_frame(read).await {
                Ok((opcode::CLOSE, payload)) => {
                    let code = payload.get(..2).map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
                    return Ending::Close(code, reason);
                }
                Ok(_) => {}
                Err(_) => return Ending::Dropped,
            }
        }
    })
    .await
    .unwrap_or(Ending::StillOpen)
}

/// Reads one server frame (unmasked, at most 16 MiB) and returns its opcode and payload.
pub async fn next_frame(read: &mut (impl AsyncRead + Unpin)) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    read.read_exact(&mut head).await?;
    let len = match head[1] & 0x7f {
        126 => u64::from(read.read_u16().await?),
        127 => read.read_u64().await?,
        n => u64::from(n),
    };
    if len > 16 << 20 {
        return Err(io::Error::other("server frame over 16 MiB"));
    }
    let mut payload = vec![0; len as usize];
    read.read_exact(&mut payload).await?;
    Ok((head[0] & 0x0f, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_masked_with_the_shortest_length() {
        let ping = frame(opcode::PING, true, &[1, 2, 3]);
        assert_eq!(&ping[..2], &[0x89, 0x83]);
        assert_eq!(ping.len(), 2 + 4 + 3);
        let unmasked: Vec<u8> = ping[6..]
            .iter()
            .zip(ping[2..6].iter().cycle())
            .map(|(b, m)| b ^ m)
            .collect();
        assert_eq!(unmasked, [1, 2, 3]);
        assert_eq!(frame(opcode::BINARY, false, &[0; 300])[..4], [0x02, 0x80 | 126, 1, 44]);
    }
}
