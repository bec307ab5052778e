//! The rooms layer's attacks: who may do what through the rooms API (README, "Who may do
//! what"), tried by an anonymous caller from loopback against a server with its default flags
//! unless the attack needs another. Each reports what the attacker got: rooms closed, places
//! held, rooms opened, streams taken, a name played under; and whether others still get in.
//!
//! Addresses: the victims and bystanders use 127.0.0.1 and low addresses, the attacker others
//! (127.0.0.n is another client as far as the server's per-address budgets can tell).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};

use super::api::{Api, Tally, create_spread, list_all, loopback};
use super::{ADMIN, Attack, AttackError, Outcome, hello, io, join, joins, mib, yes};
use crate::clients::counted::Dial;
use crate::server::process::ServerProcess;
use crate::server::procinfo;

/// How long a patient attacker keeps creating rooms, obeying `Retry-After`.
const PERSIST: Duration = Duration::from_secs(20);
/// How long the attacker of `fill-rooms` tries with an admin secret set.
const CLOSED_WINDOW: Duration = Duration::from_secs(15);
/// How long `spectator-lockout` waits for the attacker's places to come back.
const PLACES_BACK_WITHIN: Duration = Duration::from_secs(15);

/// Victims create 100 rooms (from ten addresses, so that no address's budget stops them);
/// the attacker lists the rooms and sends `DELETE /rooms/{id}` without a credential for each.
pub(super) async fn close_rooms(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let addr = server.addr();
    // Well within --room-idle (60 s): the victims' rooms have no players.
    let deadline = Instant::now() + Duration::from_secs(40);
    let victims = create_spread(addr, &json!({"game": "arena"}), 100, 2, deadline).await;
    let mut attacker = Api::new(addr, 200);
    let listed = list_all(&mut attacker).await.map_err(io(Attack::CloseRooms))?;
    let ids: Vec<&str> = listed
        .iter()
        .filter_map(|room| room["id"].as_str())
        .filter(|id| *id != "default")
        .collect();
    let started = Instant::now();
    let mut answers = Tally::default();
    for id in &ids {
        answers.add(&attacker.delete(&format!("/rooms/{id}")).await);
    }
    let took = started.elapsed();
    let open = server.metrics().await.map_err(io(Attack::CloseRooms))?;
    let _ = server.stop().await;
    Ok(format!(
        "victims created {} rooms; the attacker listed {} and sent DELETE without a credential: {} closed, \
         answers {answers}, in {:.2} s; rooms still open: {}",
        victims.rooms.len(),
        ids.len(),
        answers.of(204),
        took.as_secs_f64(),
        open.value("tickcast_rooms")
    ))
}

/// 200 matchmakings with distinct names from one address, then a real player joins the
/// default room; with the default places (5 000), then with `--max-players 16`, where the
/// listed rooms are also checked for a joinable one.
pub(super) async fn hold_places(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let answers = matchmake_many(server.addr(), 200).await;
    let player = joins(&server.ws_url(), "real").await;
    let _ = server.stop().await;
    let default = format!(
        "default flags, 200 matchmakings from one address: {} places held ({answers}); a player then: {player}",
        answers.of(200)
    );

    let server = ServerProcess::start(bin, &["--max-players".into(), "16".into()]).await?;
    let answers = matchmake_many(server.addr(), 200).await;
    // A newer server builds the list at most once a second: this one is built after the holds.
    time::sleep(Duration::from_millis(1100)).await;
    let listed = list_all(&mut Api::new(server.addr(), 3))
        .await
        .map_err(io(Attack::HoldPlaces))?;
    let joinable = listed.iter().filter(|room| room["joinable"] == true).count();
    let player = joins(&server.ws_url(), "real").await;
    let _ = server.stop().await;
    Ok(format!(
        "{default} | --max-players 16: {} held ({answers}); rooms listed {}, joinable {joinable}; a player then: {player}",
        answers.of(200),
        listed.len()
    ))
}

/// `count` matchmakings for arena from 127.0.0.2, a name each.
async fn matchmake_many(addr: SocketAddr, count: usize) -> Tally {
    let mut api = Api::new(addr, 2);
    let mut answers = Tally::default();
    for i in 0..count {
        let body = json!({"game": "arena", "name": format!("squat{i}")});
        answers.add(&api.post("/matchmake", &body).await);
    }
    answers
}

/// The room cap: with the default flags, 100 addresses create rooms until refused, then keep
/// at it obeying `Retry-After`; with `--admin-secret`, what 30 addresses open without one.
pub(super) async fn fill_rooms(bin: &Path) -> Outcome {
    let open = fill_anonymously(bin).await?;
    let closed = fill_past_an_admin_secret(bin).await?;
    Ok(format!("{open} | {closed}"))
}

/// Default flags: 127.0.0.2-101 at once, each creating rooms until its first refusal; then
/// [`PERSIST`] more obeying `Retry-After`; then one more from a fresh address.
async fn fill_anonymously(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let addr = server.addr();
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for n in 2..=101 {
        workers.spawn(async move {
            let mut api = Api::new(addr, n);
            let (mut created, mut refused) = (0, Tally::default());
            loop {
                let answer = api.post("/rooms", &json!({"game": "arena"})).await;
                if matches!(&answer, Ok(created) if created.status == 201) {
                    created += 1;
                } else {
                    refused.add(&answer);
                    return (created, refused);
                }
            }
        });
    }
    let (created, refused) = gather(workers).await;
    let took = started.elapsed();

    let deadline = Instant::now() + PERSIST;
    let mut workers = JoinSet::new();
    for n in 2..=101 {
        workers.spawn(async move {
            let mut api = Api::new(addr, n);
            let (mut created, mut answers) = (0, Tally::default());
            while Instant::now() < deadline {
                let answer = api.post("/rooms", &json!({"game": "arena"})).await;
                answers.add(&answer);
                match answer {
                    Ok(a) if a.status == 201 => created += 1,
                    Ok(a) if matches!(a.status, 429 | 503) && a.retry_after.is_some() => {
                        let wait = a.retry_after.unwrap_or_default().max(Duration::from_millis(100));
                        time::sleep_until((Instant::now() + wait).min(deadline)).await;
                    }
                    // A refusal that waiting does not cure (this address's rooms still open).
                    Ok(_) => break,
                    Err(_) => time::sleep(Duration::from_millis(100)).await,
                }
            }
            (created, answers)
        });
    }
    let (more, answers) = gather(workers).await;
    let further = match Api::new(addr, 150).post("/rooms", &json!({"game": "arena"})).await {
        Ok(a) if a.error().is_empty() => a.status.to_string(),
        Ok(a) => format!("{} \"{}\"", a.status, a.error()),
        Err(err) => format!("no answer ({err})"),
    };
    let open = server.metrics().await.map_err(io(Attack::FillRooms))?;
    let _ = server.stop().await;
    Ok(format!(
        "default flags, 100 addresses at once until each is refused: {created} rooms in {:.2} s (refused: {refused}); \
         {} s more obeying Retry-After: +{more} ({answers}); a fresh address then: {further}; rooms open: {}",
        took.as_secs_f64(),
        PERSIST.as_secs(),
        open.value("tickcast_rooms")
    ))
}

/// `--admin-secret`: 127.0.0.2-31 for [`CLOSED_WINDOW`], each as fast as it is answered,
/// `POST /rooms` and `POST /matchmake` for tanks (a game with no open room, so a place there
/// means a new room).
async fn fill_past_an_admin_secret(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[format!("--admin-secret={ADMIN}")]).await?;
    let addr = server.addr();
    let before = rooms_created(&server, Attack::FillRooms).await?;
    let deadline = Instant::now() + CLOSED_WINDOW;
    let mut workers = JoinSet::new();
    for n in 2..=31u8 {
        workers.spawn(async move {
            let mut api = Api::new(addr, n);
            let (mut rooms, mut places) = (Tally::default(), Tally::default());
            let mut i = 0;
            while Instant::now() < deadline {
                rooms.add(&api.post("/rooms", &json!({"game": "arena"})).await);
                let body = json!({"game": "tanks", "name": format!("f{n}-{i}")});
                places.add(&api.post("/matchmake", &body).await);
                i += 1;
            }
            (rooms, places)
        });
    }
    let (mut rooms, mut places) = (Tally::default(), Tally::default());
    while let Some(done) = workers.join_next().await {
        if let Ok((r, p)) = done {
            rooms.merge(&r);
            places.merge(&p);
        }
    }
    let after = rooms_created(&server, Attack::FillRooms).await?;
    let _ = server.stop().await;
    Ok(format!(
        "--admin-secret, 30 addresses for {} s without it: POST /rooms {rooms}; POST /matchmake for tanks {places}; \
         rooms opened: {}",
        CLOSED_WINDOW.as_secs(),
        after - before
    ))
}

/// The server's `tickcast_rooms_created_total`.
async fn rooms_created(server: &ServerProcess, attack: Attack) -> Result<f64, AttackError> {
    let scrape = server.metrics().await.map_err(io(attack))?;
    Ok(scrape.value("tickcast_rooms_created_total"))
}

/// Sums what each worker created and how it was refused.
async fn gather(mut workers: JoinSet<(u64, Tally)>) -> (u64, Tally) {
    let (mut created, mut answers) = (0, Tally::default());
    while let Some(done) = workers.join_next().await {
        if let Ok((n, tally)) = done {
            created += n;
            answers.merge(&tally);
        }
    }
    (created, answers)
}

/// Five `text/plain` POSTs with a foreign `Origin` to `/rooms` and five to `/matchmake`: what
/// a page on any site can make its visitors' browsers send without a preflight.
pub(super) async fn cross_site(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &[]).await?;
    let before = rooms_created(&server, Attack::CrossSite).await?;
    let mut api = Api::new(server.addr(), 2);
    let headers = [("content-type", "text/plain"), ("origin", "https://evil.example")];
    let (mut rooms, mut places) = (Tally::default(), Tally::default());
    for i in 0..5 {
        rooms.add(&api.send("POST", "/rooms", &headers, br#"{"game":"arena"}"#).await);
        let body = json!({"game": "arena", "name": format!("visitor{i}")}).to_string();
        places.add(&api.send("POST", "/matchmake", &headers, body.as_bytes()).await);
    }
    let after = rooms_created(&server, Attack::CrossSite).await?;
    let _ = server.stop().await;
    Ok(format!(
        "text/plain from https://evil.example: POST /rooms {rooms}, POST /matchmake {places}; \
         rooms opened {}, places held {}",
        after - before,
        places.of(200)
    ))
}

/// One address opens 1 000 SSE streams on a private, empty room and keeps them without
/// reading (`--max-spectators 1000`); can another address still watch? Then it closes them:
/// how soon are its places back?
pub(super) async fn spectator_lockout(bin: &Path) -> Outcome {
    let server = ServerProcess::start(bin, &["--max-spectators".into(), "1000".into()]).await?;
    let addr = server.addr();
    let private = Api::new(addr, 1)
        .post("/rooms", &json!({"game": "arena", "private": true}))
        .await
        .map_err(io(Attack::SpectatorLockout))?;
    let Some(id) = private.json["id"].as_str() else {
        let _ = server.stop().await;
        return Ok(format!("no private room: POST /rooms answered {}", private.status));
    };
    let path = format!("/rooms/{id}/events");
    time::sleep(Duration::from_millis(500)).await;
    let rss_before = procinfo::memory(server.pid())
        .map_err(io(Attack::SpectatorLockout))?
        .rss_kib;
    let (mut streams, mut answers) = (Vec::new(), Tally::default());
    for _ in 0..1000 {
        match open_stream(addr, 2, &path).await {
            Ok((200, tcp)) => {
                answers.add_status(200);
                streams.push(tcp);
            }
            Ok((status, _)) => answers.add_status(status),
            Err(err) => answers.add(&Err(err)),
        }
    }
    let taken = streams.len();
    let sse = match open_stream(addr, 3, "/events").await {
        Ok((status, _)) => status.to_string(),
        Err(err) => format!("no answer ({err})"),
    };
    let poll = match Api::new(addr, 3).get("/poll?timeout_ms=1000").await {
        Ok(answer) => answer.status.to_string(),
        Err(err) => format!("no answer ({err})"),
    };
    time::sleep(Duration::from_millis(500)).await;
    let rss_after = procinfo::memory(server.pid())
        .map_err(io(Attack::SpectatorLockout))?
        .rss_kib;

    drop(streams);
    let closed = Instant::now();
    let mut again = Vec::new();
    while again.len() < taken && closed.elapsed() < PLACES_BACK_WITHIN {
        match open_stream(addr, 2, &path).await {
            Ok((200, tcp)) => again.push(tcp),
            _ => time::sleep(Duration::from_millis(50)).await,
        }
    }
    let back = if again.len() == taken {
        format!("all {taken} back after {:.2} s", closed.elapsed().as_secs_f64())
    } else {
        format!(
            "{} of {taken} back within {} s",
            again.len(),
            PLACES_BACK_WITHIN.as_secs()
        )
    };
    drop(again);
    let _ = server.stop().await;
    Ok(format!(
        "one address, 1000 SSE streams on a private empty room: {taken} accepted ({answers}), RSS +{:.1} MiB; \
         another address then: SSE on the default room {sse}, long-poll {poll}; the attacker closed its \
         streams: {back}",
        mib(rss_after.saturating_sub(rss_before))
    ))
}

/// Opens an SSE stream of `path` from 127.0.0.`from`: its status, and the socket (the stream
/// stays open while it is kept, and nothing after the status line is read).
async fn open_stream(addr: SocketAddr, from: u8, path: &str) -> io::Result<(u16, TcpStream)> {
    let dial = Dial {
        source: Some(loopback(from)),
        recv_buffer: None,
    };
    let opening = async {
        let mut tcp = dial.connect(addr).await?;
        let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n\r\n");
        tcp.write_all(head.as_bytes()).await?;
        // Byte by byte: the status line and nothing of the stream after it.
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") && line.len() < 256 {
            if tcp.read(&mut byte).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a status"));
            }
            line.push(byte[0]);
        }
        let status = String::from_utf8_lossy(&line)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("no status line"))?;
        Ok((status, tcp))
    };
    time::timeout(Duration::from_secs(5), opening)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no status within 5 s"))?
}

/// With `--auth-secret`: the attacker matchmakes without a credential as `victim`; then the
/// victim joins with its own join token (minted by its backend), and the attacker with the
/// token matchmaking gave it, if any.
pub(super) async fn name_theft(bin: &Path) -> Outcome {
    let secret = "s3cret";
    let server = ServerProcess::start(bin, &["--auth-secret".into(), secret.into()]).await?;
    let seat = Api::new(server.addr(), 2)
        .post("/matchmake", &json!({"game": "arena", "name": "victim"}))
        .await
        .map_err(io(Attack::NameTheft))?;
    let stolen = seat.json["token"].as_str();
    let room = seat.json["room"].as_str().unwrap_or("none");
    let now = tickcast::protocol::unix_micros() / 1_000_000;
    let own = tickcast::auth::mint(secret.as_bytes(), "default", "victim", now + 300);
    let victim = join(&server.ws_url(), hello("victim", &own)).await;
    let attacker = match (stolen, seat.json["ws"].as_str()) {
        (Some(token), Some(ws)) => match join(ws, hello("victim", token)).await {
            Ok(_) => "welcomed, playing as \"victim\"".to_owned(),
            Err(why) => why,
        },
        _ => "had no token to try".to_owned(),
    };
    let victim = victim.map_or_else(|why| why, |_| "welcomed".to_owned());
    let _ = server.stop().await;
    Ok(format!(
        "anonymous matchmaking as \"victim\": {} (token: {}, room {room}); the victim with its own token: {victim}; \
         the attacker with the token it got: {attacker}",
        seat.status,
        yes(stolen.is_some())
    ))
}
