//! The relay over real loopback sockets: bytes keep their order under jitter, the delay is
//! applied within a few milliseconds, 0 ms costs nothing measurable next to a direct
//! connection, the bounds hold, ends of streams are forwarded, stopping closes everything, and
//! its faults (a cut, a stall, a blackhole) do what they say.
//! Each test takes well under a second or two.

use std::net::SocketAddr;
use std::time::Duration;

use tickcast_relay::{Relay, RelayConfig, RelayError, Shape};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

/// Only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(10);

async fn within<F: Future>(f: F) -> F::Output {
    timeout(PATIENCE, f).await.expect("timed out waiting")
}

/// An echo server on 127.0.0.1:0; it stops with the test's runtime.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = socket.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

async fn connect(addr: SocketAddr) -> TcpStream {
    let stream = within(TcpStream::connect(addr)).await.unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

async fn relay(target: SocketAddr, delay_ms: u64, jitter_ms: u64) -> Relay {
    let config = RelayConfig {
        shape: Shape {
            delay: Duration::from_millis(delay_ms),
            jitter: Duration::from_millis(jitter_ms),
            bandwidth: None,
        },
        ..RelayConfig::new(target, Duration::ZERO)
    };
    Relay::start(config, CancellationToken::new()).await.unwrap()
}

/// One 8-byte round trip through an echo.
async fn ping(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    stream.write_all(b"ping1234").await.unwrap();
    let mut back = [0; 8];
    within(stream.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"ping1234");
    start.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn bytes_keep_their_order_when_jitter_exceeds_the_gap_between_them() {
    let echo = echo_server().await;
    // Jitter as large as the delay: a chunk's own due time often falls before its elder's.
    let relay = relay(echo, 3, 3).await;
    let mut stream = connect(relay.addr()).await;
    let (mut read, mut write) = stream.split();
    let count = 2000u32;
    let writing = async {
        for i in 0..count {
            write.write_all(&i.to_be_bytes()).await.unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await; // separate chunks in time
            }
        }
    };
    let reading = async {
        let mut back = vec![0; count as usize * 4];
        within(read.read_exact(&mut back)).await.unwrap();
        back
    };
    let ((), back) = tokio::join!(writing, reading);
    let numbers: Vec<u32> = back
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert!(numbers.iter().copied().eq(0..count), "bytes arrived out of order");
    let relayed = relay.relayed();
    assert!(relayed.up.chunks >= 20, "too few chunks to test ordering: {relayed}");
    assert_eq!(
        (relayed.up.bytes, relayed.down.bytes),
        (u64::from(count) * 4, u64::from(count) * 4)
    );
}

#[tokio::test]
async fn each_direction_is_delayed_by_the_one_way_delay() {
    let echo = echo_server().await;
    let relay = relay(echo, 20, 0).await;
    let mut stream = connect(relay.addr()).await;
    let mut rtts = Vec::new();
    for _ in 0..10 {
        rtts.push(ping(&mut stream).await);
    }
    // Up 20 ms, down 20 ms; the timer wheel adds up to a millisecond each way, and the tests
    // running beside this one on two cores a little more: within 3 ms each way.
    let (min, med) = (*rtts.iter().min().unwrap(), median(rtts.clone()));
    assert!(min >= Duration::from_millis(40), "{rtts:?}");
    assert!(med <= Duration::from_millis(46), "{rtts:?}");
}

#[tokio::test]
async fn at_zero_ms_the_relay_adds_no_measurable_delay() {
    let echo = echo_server().await;
    let relay = relay(echo, 0, 0).await;
    let mut direct = connect(echo).await;
    let mut relayed = connect(relay.addr()).await;
    let (mut through_direct, mut through_relay) = (Vec::new(), Vec::new());
    // Interleaved, so both see the same machine.
    for _ in 0..300 {
        through_direct.push(ping(&mut direct).await);
        through_relay.push(ping(&mut relayed).await);
    }
    let (direct, relayed) = (median(through_direct), median(through_relay));
    eprintln!("echo round trip, medians of 300: direct {direct:?}, through the relay at 0 ms {relayed:?}");
    assert!(
        relayed.saturating_sub(direct) < Duration::from_millis(1),
        "direct {direct:?}, relayed {relayed:?}"
    );
}

#[tokio::test]
async fn a_receiver_that_stops_reading_holds_the_relay_to_its_bound() {
    // A target that accepts and never reads.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let held = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
    let bound = 64 * 1024;
    let config = RelayConfig {
        max_buffered: bound,
        ..RelayConfig::new(target, Duration::ZERO)
    };
    let relay = Relay::start(config, CancellationToken::new()).await.unwrap();
    let mut stream = connect(relay.addr()).await;
    let block = vec![7u8; 64 * 1024];
    let (mut written, limit) = (0usize, 256 << 20);
    // Write until the writes stall: the kernel's buffers fill, then the relay's, then ours.
    while written < limit {
        match timeout(Duration::from_millis(300), stream.write_all(&block)).await {
            Ok(result) => result.unwrap(),
            Err(_) => break,
        }
        written += block.len();
    }
    assert!(written < limit, "the writer was never slowed down");
    let relayed = relay.relayed();
    assert!(relayed.peak_buffered <= bound as u64, "{relayed}");
    assert!(relayed.up.bytes < written as u64, "{relayed}, {written} written");
    drop(held);
}

#[tokio::test]
async fn the_end_of_each_stream_is_forwarded_after_its_bytes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        socket.read_to_end(&mut request).await.unwrap();
        socket.write_all(b"bye").await.unwrap();
        request
    });
    let relay = relay(target, 5, 0).await;
    let mut stream = connect(relay.addr()).await;
    stream.write_all(b"hello").await.unwrap();
    stream.shutdown().await.unwrap(); // half-close: still reading
    let mut answer = Vec::new();
    within(stream.read_to_end(&mut answer)).await.unwrap();
    assert_eq!(answer, b"bye");
    assert_eq!(within(server).await.unwrap(), b"hello");
}

#[tokio::test]
async fn over_the_connection_cap_a_client_waits_for_a_slot() {
    let echo = echo_server().await;
    let config = RelayConfig {
        max_connections: 1,
        ..RelayConfig::new(echo, Duration::ZERO)
    };
    let relay = Relay::start(config, CancellationToken::new()).await.unwrap();
    let mut first = connect(relay.addr()).await;
    ping(&mut first).await;
    // The second is in the listener's backlog: connected, but nobody relays it yet.
    let mut second = connect(relay.addr()).await;
    second.write_all(b"ping1234").await.unwrap();
    let mut back = [0; 8];
    let early = timeout(Duration::from_millis(200), second.read_exact(&mut back)).await;
    assert!(early.is_err(), "a connection over the cap was relayed");
    drop(first);
    within(second.read_exact(&mut back)).await.unwrap();
    assert_eq!(&back, b"ping1234");
    assert_eq!(relay.relayed().connections, 2);
}

#[tokio::test]
async fn stopping_closes_every_connection_and_reports_the_totals() {
    let echo = echo_server().await;
    let stop = CancellationToken::new();
    let relay = Relay::start(RelayConfig::new(echo, Duration::ZERO), stop.clone())
        .await
        .unwrap();
    let addr = relay.addr();
    let mut stream = connect(addr).await;
    ping(&mut stream).await;
    let totals = within(relay.stop()).await;
    assert_eq!((totals.connections, totals.open), (1, 0));
    assert_eq!((totals.up.bytes, totals.down.bytes), (8, 8));
    let mut rest = Vec::new();
    let ended = within(stream.read_to_end(&mut rest)).await;
    assert!(ended.is_err() || rest.is_empty(), "the relayed connection stayed open");
    assert!(TcpStream::connect(addr).await.is_err(), "the relay still listens");
    assert!(!stop.is_cancelled(), "stopping one relay cancels only that relay");
}

#[tokio::test]
async fn a_target_off_loopback_is_refused_before_anything_is_sent() {
    // A documentation address (TEST-NET-1): refused by the check, never dialled.
    let target: SocketAddr = "192.0.2.1:80".parse().unwrap();
    let refused = Relay::start(RelayConfig::new(target, Duration::ZERO), CancellationToken::new()).await;
    assert!(matches!(refused, Err(RelayError::NotLoopback(t)) if t == target));
}

/// Whether anything (bytes or the end of the stream) arrives on `stream` within `wait`.
async fn hears_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut byte = [0; 1];
    timeout(wait, stream.read(&mut byte)).await.is_ok()
}

#[tokio::test]
async fn a_cut_silences_open_connections_both_ways_without_closing_them_and_new_ones_pass() {
    let relay = relay(echo_server().await, 0, 0).await;
    let mut before = connect(relay.addr()).await;
    ping(&mut before).await;
    relay.cut();
    before.write_all(b"anyone?").await.unwrap();
    assert!(
        !hears_within(&mut before, Duration::from_millis(300)).await,
        "after a cut nothing comes back, neither an echo nor the end of the stream"
    );
    let mut after = connect(relay.addr()).await;
    assert!(
        ping(&mut after).await < Duration::from_millis(200),
        "a new connection passes"
    );
    let relayed = relay.stop().await;
    assert_eq!(relayed.connections, 2);
}

#[tokio::test]
async fn a_stall_holds_everything_until_it_ends_then_it_flows_in_order() {
    let relay = relay(echo_server().await, 0, 0).await;
    let mut stream = connect(relay.addr()).await;
    ping(&mut stream).await;
    relay.stall(Duration::from_millis(300));
    let stalled = ping(&mut stream).await;
    assert!(
        stalled >= Duration::from_millis(250),
        "a ping during the stall took {stalled:?}"
    );
    assert!(
        ping(&mut stream).await < Duration::from_millis(200),
        "and after it, as before"
    );
    relay.stop().await;
}

#[tokio::test]
async fn a_blackhole_holds_new_connections_silent_and_spares_open_ones() {
    let relay = relay(echo_server().await, 0, 0).await;
    let mut open = connect(relay.addr()).await;
    ping(&mut open).await;
    relay.blackhole(Duration::from_millis(300));
    let mut holed = connect(relay.addr()).await;
    holed.write_all(b"ping1234").await.unwrap();
    assert!(
        !hears_within(&mut holed, Duration::from_millis(200)).await,
        "held silent"
    );
    assert!(
        ping(&mut open).await < Duration::from_millis(200),
        "an open connection passes"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut later = connect(relay.addr()).await;
    assert!(
        ping(&mut later).await < Duration::from_millis(200),
        "after it, new ones pass"
    );
    let relayed = relay.stop().await;
    assert_eq!((relayed.connections, relayed.open), (3, 0));
}
