//! The attacks on the sockets: what an anonymous peer can do to a player's WebSocket, a
//! spectator's stream and the server's shutdown. These are the attacks of the hardening issue
//! that found holes (pre-hello floods, hello squatting, stalled resumers, forged log lines,
//! origin rebinding, uncounted upgrades, stalled players, protocol faults, shutdown).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use client_demo::swarm::{self, SwarmConfig};
use tickcast::client::{Client, ClientError};
use tickcast::protocol::{ClientMsg, Hello, PROTOCOL_VERSION};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};
use tokio_util::sync::CancellationToken;

use super::{Attack, AttackError, Outcome, io, yes};
use crate::clients::counted::{Dial, Traffic};
use crate::clients::http1::Conn;
use crate::clients::rawws::{self, Ending, KEY, opcode};
use crate::server::process::ServerProcess;
use crate::server::procinfo;

/// Upgrades and, before any hello, writes `kind` frames as fast as the socket takes them (up
/// to `limit` bytes or 20 s), reading and discarding whatever comes back.
pub(super) async fn flood(bin: &Path, kind: u8, limit: u64) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let pid = server.pid();
    let rss_before = procinfo::memory(pid).map_err(io(Attack::PingFlood))?.rss_kib;
    let cpu_before = procinfo::cpu_time(pid).map_err(io(Attack::PingFlood))?;
    let (tcp, status) = rawws::upgrade(server.addr(), "/ws", &[], Some(KEY))
        .await
        .map_err(io(Attack::PingFlood))?;
    if status != 101 {
        return Ok(format!("upgrade answered {status}"));
    }
    let (mut read, mut write) = tcp.into_split();
    let started = Instant::now();
    let reader = tokio::spawn(async move {
        let ending = rawws::ending(&mut read, Duration::from_secs(25)).await;
        (ending, started.elapsed())
    });
    // 64 frames per write: the flood is limited by the server, not by our syscalls.
    let one = match kind {
        opcode::CONTINUATION => rawws::frame(opcode::CONTINUATION, false, &[]),
        other => rawws::frame(other, true, &[b'p'; 125]),
    };
    let mut burst = match kind {
        // A fragmented binary message opens, and the continuations never finish it.
        opcode::CONTINUATION => rawws::frame(opcode::BINARY, false, &[]),
        _ => Vec::new(),
    };
    let batch = one.repeat(64);
    burst.extend_from_slice(&batch);
    let sent = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Relaxed) {
                if let Ok(m) = procinfo::memory(pid) {
                    peak.fetch_max(m.rss_kib, Relaxed);
                }
                time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let writer = {
        let sent = sent.clone();
        async move {
            let mut first = Some(burst);
            while sent.load(Relaxed) < limit && started.elapsed() < Duration::from_secs(20) {
                let chunk = first.take().unwrap_or_else(|| batch.clone());
                if write.write_all(&chunk).await.is_err() {
                    break;
                }
                sent.fetch_add(chunk.len() as u64, Relaxed);
            }
            write
        }
    };
    let _write_half = time::timeout(Duration::from_secs(25), writer).await;
    let (ending, closed_after) = reader.await.unwrap_or((Ending::StillOpen, started.elapsed()));
    done.store(true, Relaxed);
    let _ = sampler.await;
    let cpu = procinfo::cpu_time(pid).map_err(io(Attack::PingFlood))? - cpu_before;
    let rss_after = procinfo::memory(pid).map_err(io(Attack::PingFlood))?.rss_kib;
    let _ = server.stop().await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(format!(
        "sent {:.0} MB; {ending} after {:.2} s; server CPU {:.2} s; RSS +{:.1} MiB at peak, +{:.1} MiB after",
        sent.load(Relaxed) as f64 / 1e6,
        closed_after.as_secs_f64(),
        cpu.as_secs_f64(),
        mib(peak.load(Relaxed).saturating_sub(rss_before)),
        mib(rss_after.saturating_sub(rss_before)),
    ))
}

/// Five sockets that never say hello but ping every 3 s hold a `--max-players 5` server with
/// join tokens; 6 s in, a player with a valid token tries to join.
pub(super) async fn hello_squat(bin: &Path) -> Outcome {
    let secret = "squat-secret";
    let args = ["--max-players", "5", "--auth-secret", secret].map(String::from);
    let server = ServerProcess::start(bin, &args).await?;
    let addr = server.addr();
    let started = Instant::now();
    let mut squatters = JoinSet::new();
    for _ in 0..5 {
        squatters.spawn(async move {
            let (tcp, _) = rawws::upgrade(addr, "/ws", &[], Some(KEY)).await?;
            let (mut read, mut write) = tcp.into_split();
            let pinger = async {
                loop {
                    time::sleep(Duration::from_secs(3)).await;
                    if write.write_all(&rawws::frame(opcode::PING, true, b"hi")).await.is_err() {
                        return;
                    }
                }
            };
            let ending = tokio::select! {
                ending = rawws::ending(&mut read, Duration::from_secs(30)) => ending,
                () = pinger => Ending::Dropped,
            };
            Ok::<_, std::io::Error>((ending, started.elapsed()))
        });
    }
    time::sleep(Duration::from_secs(6)).await;
    let now = tickcast::protocol::unix_micros() / 1_000_000;
    let token = tickcast::auth::mint(secret.as_bytes(), "default", "ann", now + 60);
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: "ann".into(),
        token,
        resume: String::new(),
        options: Vec::new(),
    };
    let joined = match Client::connect_with(&server.ws_url(), hello).await {
        Ok(_) => "a player with a valid token joined".to_owned(),
        Err(ClientError::Closed { code, reason }) => format!("a player with a valid token got {code} \"{reason}\""),
        Err(err) => format!("a player with a valid token failed: {err}"),
    };
    let mut endings = Vec::new();
    while let Some(squatter) = squatters.join_next().await {
        match squatter {
            Ok(Ok((ending, after))) => endings.push(format!("{ending} at {:.1} s", after.as_secs_f64())),
            Ok(Err(err)) => endings.push(format!("error {err}")),
            Err(err) => endings.push(format!("task {err}")),
        }
    }
    endings.sort();
    endings.dedup();
    let _ = server.stop().await;
    Ok(format!("{joined}; squatters: {}", endings.join(", ")))
}

/// 200 moving players for 32 s (the resume ring fills), then 500 SSE streams and 500
/// long-polls resuming about 290 events back with a 4 KiB receive buffer, never reading.
pub(super) async fn stalled_resumers(bin: &Path) -> Outcome {
    let args = ["--max-spectators", "2000", "--max-connections", "4000"].map(String::from);
    let server = ServerProcess::start(bin, &args).await?;
    let addr = server.addr();
    let bots = SwarmConfig {
        url: server.ws_url(),
        keep_world: false,
        ramp: Duration::from_secs(2),
        ..SwarmConfig::new(200, Duration::from_secs(50))
    };
    let stop = CancellationToken::new();
    let swarm = tokio::spawn({
        let stop = stop.clone();
        async move { swarm::run(&bots, stop, |_| {}).await }
    });
    time::sleep(Duration::from_secs(32)).await;
    let state = Conn::connect(addr).await.map_err(io(Attack::StalledResumers))?;
    let (epoch, tick) = latest_event(state).await.map_err(io(Attack::StalledResumers))?;
    // Events every 3 ticks at 30 Hz and 10 events/s; the ring holds 300.
    let resume = format!("{epoch}-{}", tick.saturating_sub(3 * 290));
    let rss_before = procinfo::memory(server.pid())
        .map_err(io(Attack::StalledResumers))?
        .rss_kib;
    let tiny = Dial {
        source: None,
        recv_buffer: Some(4096),
    };
    let mut held = Vec::new();
    let (mut sse_ok, mut poll_ok) = (0, 0);
    for i in 0..1000 {
        let Ok(mut conn) = Conn::dial(addr, tiny, Arc::new(Traffic::default())).await else {
            continue;
        };
        let sent = if i < 500 {
            conn.send_get("/events", &[("last-event-id", &resume)]).await
        } else {
            conn.send_get(&format!("/poll?after={resume}"), &[]).await
        };
        if sent.is_ok() {
            if i < 500 {
                sse_ok += 1;
            } else {
                poll_ok += 1;
            }
            held.push(conn);
        }
    }
    time::sleep(Duration::from_secs(5)).await;
    let rss_after = procinfo::memory(server.pid())
        .map_err(io(Attack::StalledResumers))?
        .rss_kib;
    stop.cancel();
    let _ = swarm.await;
    drop(held);
    let _ = server.stop().await;
    Ok(format!(
        "{sse_ok} SSE + {poll_ok} long-polls stalled at 200 moving players: RSS +{:.1} MiB",
        rss_after.saturating_sub(rss_before) as f64 / 1024.0
    ))
}

/// The epoch and tick of the current snapshot, from the ETag of `/state` (`"<epoch>-<tick>"`).
async fn latest_event(mut conn: Conn) -> std::io::Result<(String, u64)> {
    let response = conn.get("/state", &[]).await?;
    let etag = response.head.header("etag").unwrap_or_default();
    etag.trim_matches('"')
        .split_once('-')
        .and_then(|(epoch, tick)| Some((epoch.to_owned(), tick.parse().ok()?)))
        .ok_or_else(|| std::io::Error::other(format!("no event id in the ETag of /state: {etag:?}")))
}

/// A name carrying a forged log line and a terminal escape sequence.
pub(super) async fn control_name(bin: &Path) -> Outcome {
    let server = ServerProcess::start_logging(bin, &[], "info").await?;
    let name = "x\nFAKE ERROR root: wiped\u{1b}[2J"; // 28 bytes: under the name limit
    let result = match Client::connect(&server.ws_url(), name).await {
        Ok(mut client) => {
            let _ = client.send_ping(1).await;
            let _ = client.close().await;
            "joined".to_owned()
        }
        Err(ClientError::Closed { code, reason }) => format!("refused {code} \"{reason}\""),
        Err(err) => format!("failed: {err}"),
    };
    time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    let forged = log.lines().any(|l| l.starts_with("FAKE ERROR"));
    let escapes = log.contains('\u{1b}');
    let _ = server.stop().await;
    Ok(format!(
        "{result}; forged log line: {}; raw escape in the log: {}",
        yes(forged),
        yes(escapes)
    ))
}

/// Joins and drops at ~360 a second for 10 s at the default log level.
pub(super) async fn log_storm(bin: &Path) -> Outcome {
    let server = ServerProcess::start_logging(bin, &[], "info").await?;
    let lines_before = server.log_text().lines().count();
    let url = server.ws_url();
    let until = Instant::now() + Duration::from_secs(10);
    let mut joins = 0u64;
    let mut workers = JoinSet::new();
    // 12 workers, one join every 33 ms each: about 360 a second.
    for _ in 0..12 {
        let url = url.clone();
        workers.spawn(async move {
            let mut n = 0u64;
            let mut pace = time::interval(Duration::from_micros(33_000));
            while Instant::now() < until {
                pace.tick().await;
                if Client::connect(&url, "storm").await.is_ok() {
                    n += 1;
                }
            }
            n
        });
    }
    while let Some(n) = workers.join_next().await {
        joins += n.unwrap_or(0);
    }
    time::sleep(Duration::from_millis(500)).await;
    let lines = server.log_text().lines().count() - lines_before;
    let _ = server.stop().await;
    Ok(format!(
        "{joins} joins in 10 s wrote {lines} log lines at the default level"
    ))
}

/// Upgrades with each origin and reports the status: a rebinding name resolves to the server,
/// so its `Host` and `Origin` agree, but it is not the server's own origin.
pub(super) async fn origin(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let addr = server.addr();
    let (port, own) = (addr.port(), format!("http://{addr}"));
    let rebinding_host = format!("evil.example:{port}");
    let rebinding = format!("http://evil.example:{port}");
    let https_own = format!("https://{addr}");
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("own", vec![("origin", &own)]),
        ("foreign", vec![("origin", "http://evil.example")]),
        ("rebinding", vec![("host", &rebinding_host), ("origin", &rebinding)]),
        ("other scheme", vec![("origin", &https_own)]),
        ("duplicated", vec![("origin", &own), ("origin", "http://evil.example")]),
        ("non-ASCII", vec![("origin", "http://\u{e9}vil.example")]),
    ];
    let mut results = Vec::new();
    for (name, headers) in cases {
        let status = upgrade_status(addr, &headers).await;
        results.push(format!("{name} {status}"));
    }
    let _ = server.stop().await;
    Ok(results.join(", "))
}

/// The status an upgrade with these headers gets (`host` replaces the default one).
async fn upgrade_status(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> String {
    let host = headers.iter().find(|(n, _)| *n == "host").map(|(_, v)| *v);
    let mut tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        Err(err) => return format!("connect error {err}"),
    };
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: {KEY}\r\n",
        host.map_or(addr.to_string(), str::to_owned)
    );
    for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    if tcp.write_all(request.as_bytes()).await.is_err() {
        return "write error".into();
    }
    let mut head = vec![0u8; 64];
    let n = time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut tcp, &mut head),
    )
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or(0);
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)
        .unwrap_or("no answer")
        .to_owned()
}

/// 60 upgrades held open (no hello) against `--max-connections 20`.
pub(super) async fn connection_cap(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &["--max-connections".into(), "20".into()]).await?;
    let mut held = Vec::new();
    let mut upgraded = 0;
    let mut refused = 0;
    for _ in 0..60 {
        match rawws::upgrade(server.addr(), "/ws", &[], Some(KEY)).await {
            Ok((tcp, 101)) => {
                upgraded += 1;
                held.push(tcp);
            }
            Ok((_, _)) | Err(_) => refused += 1,
        }
    }
    drop(held);
    let _ = server.stop().await;
    Ok(format!(
        "60 upgrades against a cap of 20: {upgraded} got 101, {refused} refused"
    ))
}

/// A player with a 4 KiB receive buffer joins a world whose keyframe outgrows every buffer,
/// then never reads: how is it closed, and under which reason is it counted?
pub(super) async fn stalled_player(bin: &Path) -> Outcome {
    let args = ["--orbs", "60000"].map(String::from);
    let server = ServerProcess::start(bin, &args).await?;
    let tiny = Dial {
        source: None,
        recv_buffer: Some(4096),
    };
    let (mut ws, _) = crate::clients::wire::connect(server.addr(), tiny, Arc::new(Traffic::default()), "stalled")
        .await
        .map_err(|e| AttackError::Io(Attack::StalledPlayer, e.to_string()))?;
    let started = Instant::now();
    let mut reasons = String::new();
    while started.elapsed() < Duration::from_secs(20) {
        time::sleep(Duration::from_millis(250)).await;
        let scrape = server.metrics().await.map_err(io(Attack::StalledPlayer))?;
        let closes = scrape.labelled("tickcast_closes_total");
        let counted: Vec<String> = closes
            .iter()
            .filter(|(reason, n)| **n > 0.0 && !reason.contains("PeerGone"))
            .map(|(reason, _)| reason.clone())
            .collect();
        if !counted.is_empty() {
            reasons = counted.join(", ");
            break;
        }
    }
    let after = started.elapsed();
    let ending = crate::clients::wire::ending(&mut ws, Duration::from_secs(10)).await;
    let _ = server.stop().await;
    Ok(format!(
        "counted as {reasons} after {:.1} s; the client, reading again, saw: {ending}",
        after.as_secs_f64()
    ))
}

/// Invalid UTF-8 in a text frame and in a close reason (RFC 6455 asks for 1007), and upgrades
/// with an empty or non-base64 key (a 400).
pub(super) async fn protocol_faults(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let addr = server.addr();
    let mut results = Vec::new();
    let faults: [(&str, Vec<u8>); 2] = [
        (
            "invalid UTF-8 text",
            rawws::frame(opcode::TEXT, true, &[0xff, 0xfe, 0xfd]),
        ),
        (
            "invalid UTF-8 close reason",
            rawws::frame(opcode::CLOSE, true, &rawws::close_payload(1000, &[0xc3, 0x28])),
        ),
    ];
    for (name, bytes) in faults {
        let (mut tcp, _) = rawws::upgrade(addr, "/ws", &[], Some(KEY))
            .await
            .map_err(io(Attack::ProtocolFaults))?;
        let hello = ClientMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            name: "faulty".into(),
            token: String::new(),
            resume: String::new(),
            options: Vec::new(),
        });
        tcp.write_all(&rawws::frame(opcode::BINARY, true, &hello.encode(None)))
            .await
            .map_err(io(Attack::ProtocolFaults))?;
        tcp.write_all(&bytes).await.map_err(io(Attack::ProtocolFaults))?;
        results.push(format!(
            "{name}: {}",
            rawws::ending(&mut tcp, Duration::from_secs(5)).await
        ));
    }
    for (name, key) in [("empty key", ""), ("non-base64 key", "not base64 at all!")] {
        let status = match rawws::upgrade(addr, "/ws", &[], Some(key)).await {
            Ok((_, status)) => status.to_string(),
            Err(err) => format!("error {err}"),
        };
        results.push(format!("{name}: {status}"));
    }
    let _ = server.stop().await;
    Ok(results.join("; "))
}

/// SIGTERM while three sockets wait for their hello and three requests are half sent.
pub(super) async fn shutdown(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let addr = server.addr();
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let (tcp, _) = rawws::upgrade(addr, "/ws", &[], Some(KEY))
            .await
            .map_err(io(Attack::Shutdown))?;
        waiting.push(tcp);
    }
    let mut half = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(addr).await.map_err(io(Attack::Shutdown))?;
        tcp.write_all(b"GET /state HTTP/1.1\r\nhost: x\r\n")
            .await
            .map_err(io(Attack::Shutdown))?;
        half.push(tcp);
    }
    time::sleep(Duration::from_millis(200)).await;
    let endings = tokio::spawn(async move {
        let mut endings = Vec::new();
        for mut tcp in waiting {
            endings.push(rawws::ending(&mut tcp, Duration::from_secs(8)).await.to_string());
        }
        endings
    });
    let started = Instant::now();
    let status = server.stop().await.map_err(io(Attack::Shutdown))?;
    let took = started.elapsed();
    let mut endings = endings.await.unwrap_or_default();
    endings.dedup();
    drop(half);
    Ok(format!(
        "exited ({status}) {:.2} s after SIGTERM (grace 2 s); sockets waiting for hello: {}",
        took.as_secs_f64(),
        endings.join(", ")
    ))
}
