//! Long-polls served raw (without hyper), against the real server on 127.0.0.1:0: their
//! answers are hyper's byte for byte on a kept-alive connection, and a long-poll's spectator
//! place is held until its answer is written and freed as soon as its client leaves.

mod common;

use std::time::Duration;

use common::{TestServer, idle_match, within};
use tickcast::Config;
use tokio::io::AsyncWriteExt;

/// Reads one response from `tcp`: its head's lines (`date` blanked) and its body.
async fn response(tcp: &mut tokio::net::TcpStream) -> (Vec<String>, String) {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut byte = [0u8; 1];
        assert_eq!(within(tcp.read(&mut byte)).await.unwrap(), 1, "the connection closed");
        bytes.push(byte[0]);
    };
    let head = String::from_utf8(bytes[..end - 4].to_vec()).unwrap();
    let lines: Vec<String> = head
        .split("\r\n")
        .map(|line| {
            if line.starts_with("date: ") {
                "date: …".into()
            } else {
                line.into()
            }
        })
        .collect();
    let length = lines
        .iter()
        .find_map(|line| line.strip_prefix("content-length: "))
        .map_or(0, |n| n.parse().unwrap());
    let mut body = vec![0u8; length];
    within(tcp.read_exact(&mut body)).await.unwrap();
    (lines, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn long_polls_on_a_kept_alive_connection_are_answered_as_hyper_answers_them() {
    let server = TestServer::start(idle_match()).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    // A snapshot at once, then a bad query, then a wait that ends in 204, then a request the
    // long-poll route does not take: all on the one connection, in order.
    tcp.write_all(b"GET /poll HTTP/1.1\r\nhost: t\r\n\r\n").await.unwrap();
    let (head, body) = response(&mut tcp).await;
    assert_eq!(
        head[..3],
        [
            "HTTP/1.1 200 OK",
            "content-type: application/json",
            "cache-control: no-store"
        ]
    );
    assert_eq!(head[3], format!("content-length: {}", body.len()));
    assert_eq!(head[4..], ["date: …"]);
    let events: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = events[0]["id"].as_str().unwrap().to_owned();
    tcp.write_all(b"GET /poll?timeout_ms=x HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response(&mut tcp).await;
    assert_eq!(
        head[..2],
        ["HTTP/1.1 400 Bad Request", "content-type: text/plain; charset=utf-8"]
    );
    assert_eq!(
        body,
        "Failed to deserialize query string: timeout_ms: invalid digit found in string"
    );
    let poll = format!("GET /poll?after={id}&timeout_ms=200 HTTP/1.1\r\nhost: t\r\n\r\n");
    tcp.write_all(poll.as_bytes()).await.unwrap();
    let (head, body) = response(&mut tcp).await;
    assert_eq!(head, ["HTTP/1.1 204 No Content", "cache-control: no-store", "date: …"]);
    assert!(body.is_empty());
    tcp.write_all(b"GET /rooms/nowhere/poll HTTP/1.1\r\nhost: t\r\n\r\nGET /state HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = response(&mut tcp).await;
    assert_eq!(head[0], "HTTP/1.1 404 Not Found");
    assert_eq!(body, "no room nowhere: see GET /rooms\n");
    let (head, _) = response(&mut tcp).await;
    assert_eq!(
        head[0], "HTTP/1.1 200 OK",
        "the pipelined request after a long-poll is served"
    );
    // HTTP/1.0 keeps the connection only when asked, and says so.
    tcp.write_all(b"GET /poll?after=zz HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response(&mut tcp).await;
    assert_eq!(head[0], "HTTP/1.0 400 Bad Request");
    assert!(head.contains(&"connection: keep-alive".to_owned()), "{head:?}");
    tcp.write_all(b"GET /poll HTTP/1.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = response(&mut tcp).await;
    assert!(head.contains(&"connection: close".to_owned()), "{head:?}");
    let mut rest = Vec::new();
    use tokio::io::AsyncReadExt;
    assert_eq!(
        within(tcp.read_to_end(&mut rest)).await.unwrap(),
        0,
        "closed after its answer"
    );
}

#[tokio::test]
async fn a_waiting_long_poll_whose_client_leaves_frees_its_place_at_once() {
    let server = TestServer::start(idle_match()).await;
    let http = reqwest::Client::new();
    let state: serde_json::Value = within(http.get(server.http_url("/state")).send())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let poll = format!(
        "GET /poll?after={}&timeout_ms=60000 HTTP/1.1\r\nhost: t\r\n\r\n",
        state["tick"]
    );
    tcp.write_all(poll.as_bytes()).await.unwrap();
    let gauge = &server.metrics.spectators_longpoll;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while gauge.get() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the long-poll never waited");
        tokio::time::sleep(Duration::from_millis(5)).await; // a gauge cannot be awaited
    }
    drop(tcp);
    while gauge.get() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "its place was kept until the timeout"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_long_poll_holds_its_place_until_its_answer_is_written() {
    // A snapshot of 60 000 orbs (about 4 MB of JSON) is far more than the kernel buffers
    // between a server and a client that does not read.
    let server = TestServer::start(Config {
        max_spectators: 1,
        orbs: 60_000,
        ..idle_match()
    })
    .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(server.addr).await.unwrap();
    stalled
        .write_all(b"GET /poll HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    while server.metrics.longpoll.messages_sent.get() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await; // a counter cannot be awaited
    }
    // Its answer is stuck on the socket: the place is still taken.
    let http = reqwest::Client::new();
    let refused = within(http.get(server.http_url("/events")).send()).await.unwrap();
    assert_eq!(refused.status(), 503, "the stalled long-poll's place was released");
    // Once it goes, so does its place.
    drop(stalled);
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    loop {
        let res = within(http.get(server.http_url("/state")).send()).await.unwrap();
        assert_eq!(res.status(), 200);
        if within(http.get(server.http_url("/poll?timeout_ms=1")).send())
            .await
            .unwrap()
            .status()
            != 503
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
