//! A small hand-written HTTP/1.1 client for the measuring commands.
//!
//! Hand-written so that every byte is ours to count: the request we write, the response head
//! and the body framing (`Content-Length` or chunked) all pass through a [`Counted`] socket.
//! It keeps the connection alive between requests, as a browser polling the server does, and
//! reads a streamed (chunked) body one chunk at a time for server-sent events. Heads and bodies
//! are bounded; the caller bounds the time.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::clients::counted::{Counted, Dial, Traffic};

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest body (or chunk) accepted: a snapshot of a very full world.
const MAX_BODY: usize = 64 << 20;

/// One kept-alive HTTP/1.1 connection.
#[derive(Debug)]
pub struct Conn {
    stream: BufReader<Counted<TcpStream>>,
    host: String,
    traffic: Arc<Traffic>,
}

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// Headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Its size on the wire: status line, headers and the blank line.
    pub len: usize,
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status and headers.
    pub head: Head,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Head {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Whether the body is sent in chunks.
    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }
}

impl Conn {
    /// Connects to `addr`, counting into a fresh [`Traffic`].
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Self::dial(addr, Dial::default(), Arc::new(Traffic::default())).await
    }

    /// Connects to `addr` as `dial` says, counting into `traffic`.
    pub async fn dial(addr: SocketAddr, dial: Dial, traffic: Arc<Traffic>) -> io::Result<Self> {
        let tcp = dial.connect(addr).await?;
        Ok(Self {
            stream: BufReader::new(Counted::new(tcp, traffic.clone())),
            host: addr.to_string(),
            traffic,
        })
    }

    /// The bytes this connection has moved so far.
    pub fn traffic(&self) -> &Arc<Traffic> {
        &self.traffic
    }

    /// Writes a GET for `path` with `headers`.
    pub async fn send_get(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<()> {
        let mut request = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n", self.host);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.write_raw(request.as_bytes()).await
    }

    /// Sends `method path` with `headers` and `body` (its `content-length` added unless it is
    /// an empty GET) and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.host);
        if method != "GET" || !body.is_empty() {
            request.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.write_raw(&bytes).await?;
        let head = self.read_head().await?;
        let body = self.read_body(&head).await?;
        Ok(Response { head, body })
    }

    /// Writes bytes as they are (for malformed requests).
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    /// GETs `path` and reads the whole response.
    pub async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        self.send_get(path, headers).await?;
        let head = self.read_head().await?;
        let body = self.read_body(&head).await?;
        Ok(Response { head, body })
    }

    /// Reads a status line and headers.
    pub async fn read_head(&mut self) -> io::Result<Head> {
        let mut raw = Vec::new();
        loop {
            let before = raw.len();
            let n = (&mut self.stream)
                .take((MAX_HEAD + 1 - raw.len()) as u64)
                .read_until(b'\n', &mut raw)
                .await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            if raw.len() > MAX_HEAD {
                return Err(invalid("response head too long"));
            }
            if matches!(&raw[before..], b"\r\n" | b"\n") {
                break;
            }
        }
        parse_head(&raw).ok_or_else(|| invalid("malformed response head"))
    }

    /// Reads the body `head` announces: by length, in chunks, or none (1xx, 204, 304).
    pub async fn read_body(&mut self, head: &Head) -> io::Result<Vec<u8>> {
        if matches!(head.status, 100..=199 | 204 | 304) {
            return Ok(Vec::new());
        }
        if head.chunked() {
            let mut body = Vec::new();
            while let Some(chunk) = self.next_chunk().await? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(invalid("body too large"));
                }
                body.extend_from_slice(&chunk);
            }
            return Ok(body);
        }
        let length: usize = match head.header("content-length") {
            Some(v) => v.trim().parse().map_err(|_| invalid("bad content-length"))?,
            // Neither: the body runs to the end of the connection; we never ask for those.
            None => return Err(invalid("response without a length")),
        };
        if length > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(body)
    }

    /// The next chunk of a chunked body, or `None` after the last (trailers are skipped).
    pub async fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let line = self.line().await?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size > MAX_BODY {
            return Err(invalid("chunk too large"));
        }
        if size == 0 {
            while !self.line().await?.is_empty() {}
            return Ok(None);
        }
        let mut chunk = vec![0; size + 2];
        self.stream.read_exact(&mut chunk).await?;
        chunk.truncate(size); // the CRLF after the data
        Ok(Some(chunk))
    }

    /// One line without its line ending, bounded.
    async fn line(&mut self) -> io::Result<String> {
        let mut raw = Vec::new();
        let n = (&mut self.stream)
            .take(MAX_HEAD as u64)
            .read_until(b'\n', &mut raw)
            .await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        Ok(String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// Parses `HTTP/1.1 200 OK\r\nname: value\r\n...\r\n\r\n`.
pub fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.lines();
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let headers = lines
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        })
        .collect::<Option<_>>()?;
    Some(Head {
        status,
        headers,
        len: raw.len(),
    })
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn heads_parse_with_lowercased_names() {
        let head =
            parse_head(b"HTTP/1.1 304 Not Modified\r\nETag: \"30\"\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert_eq!((head.status, head.len), (304, 69));
        assert_eq!(head.header("etag"), Some("\"30\""));
        assert!(head.chunked());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_none());
    }

    #[tokio::test]
    async fn a_kept_alive_connection_reads_length_and_chunked_bodies_and_counts_every_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let responses = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n";
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.write_all(responses).await.unwrap();
            let mut sink = Vec::new();
            let _ = tcp.read_to_end(&mut sink).await;
        });
        let mut conn = Conn::connect(addr).await.unwrap();
        let first = conn.get("/state", &[("if-none-match", "\"3\"")]).await.unwrap();
        assert_eq!((first.head.status, &first.body[..]), (200, &b"hello"[..]));
        let second = conn.get("/events", &[]).await.unwrap();
        assert_eq!(second.body, b"abcde");
        let (read, written) = conn.traffic().get();
        assert_eq!(read, responses.len() as u64);
        assert!(written > 40, "{written}");
        drop(conn);
        server.await.unwrap();
    }
}
