//! Seats taken back in a real browser (headless Chromium, see `common/browser.rs`): the play
//! page reaches the server through `tickcast-relay`, whose cut leaves both ends holding a
//! half-open connection (no FIN, as when a phone leaves its Wi-Fi). The JavaScript client
//! notices the silence, leaves the old socket open (a close frame would be a goodbye, and give
//! the seat up), and takes its seat back on a new connection: the same entity with its score,
//! its input `seq` going on, the world in sync. A seat the server no longer keeps is said, and
//! the page plays on as a new player. And the module against PROTOCOL.md's vectors of the
//! hello and the welcome, which carry the resume token.

mod common;

use std::time::Duration;

use common::browser::{Browser, Page, chromium_or_skip};
use common::{PATIENCE, TestServer};
use serde_json::{Value, json};
use tickcast::Config;
use tickcast::metrics::CloseReason;
use tickcast_relay::{Relay, RelayConfig};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An arena thick with orbs, so that a moving player scores within a second; the page reaches
/// it through a relay, a port (an origin) of its own.
fn orchard() -> Config {
    Config {
        world_size: 400,
        orbs: 2000,
        allowed_origins: vec!["*".into()],
        ..Config::defaults()
    }
}

async fn relay_to(server: &TestServer) -> Relay {
    Relay::start(RelayConfig::new(server.addr, Duration::ZERO), CancellationToken::new())
        .await
        .unwrap()
}

/// The play page, through `relay`, playing; with logs of its status line (each text it
/// showed, in order) and of its client's seat events, kept from now on.
async fn playing_through(browser: &Browser, relay: &Relay, name: &str) -> Page {
    let mut page = Page::open(browser, &format!("http://{}/play?name={name}", relay.addr())).await;
    page.wait_for(
        "window.tickcastPlay && tickcastPlay.client.status === 'playing' && tickcastPlay.client.stats.snapshots > 0",
    )
    .await;
    page.eval(
        r#"JSON.stringify((() => {
            const status = document.getElementById("status");
            window.statusLog = [status.textContent];
            new MutationObserver(() => {
              if (statusLog[statusLog.length - 1] !== status.textContent) statusLog.push(status.textContent);
            }).observe(status, { childList: true, characterData: true, subtree: true });
            window.seatLog = [];
            for (const kind of ["reconnecting", "resumed", "seatlost", "refused", "welcome", "close"]) {
              tickcastPlay.client.addEventListener(kind, (ev) =>
                seatLog.push([kind, kind === "welcome" ? { playerId: ev.detail.playerId } : ev.detail]));
            }
            return true;
        })())"#,
    )
    .await;
    page
}

/// What the page's client holds of its seat, and what the HUD shows.
const SEAT: &str = r#"JSON.stringify((() => {
    const c = tickcastPlay.client, own = c.world && c.world.entities.get(c.playerId);
    const kind = own && c.schema.kinds[own.kind];
    return { id: c.playerId, status: c.status, seq: c.seq, ack: c.ack, token: c.resumeToken, graceMs: c.graceMs,
             still: Boolean(c.sentInput && c.sentInput.every((v) => v === 0)),
             score: own ? own.f[kind.role.score] : null, x: own ? own.f[kind.role.x] : null,
             stats: c.stats,
             hud: { status: document.getElementById("status").textContent, me: document.getElementById("me").textContent,
                    score: document.getElementById("score").textContent,
                    note: document.getElementById("note").hidden ? null : document.getElementById("note").textContent },
             statusLog: window.statusLog, seatLog: window.seatLog };
})())"#;

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Polls `what` on the server until it holds, or fails after a while.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await; // the metrics cannot be awaited
    }
}

#[tokio::test]
async fn the_play_page_cut_off_mid_match_takes_its_seat_back_with_its_entity_and_score() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(orchard()).await;
    let relay = relay_to(&server).await;
    let browser = Browser::launch(&binary, "resume-cut");
    let mut page = playing_through(&browser, &relay, "ann").await;
    let joined = page.eval(SEAT).await;
    assert!(
        joined["token"].as_str().is_some_and(|t| t.starts_with("default.")),
        "{joined}"
    );
    assert_eq!(joined["graceMs"], 15000, "{joined}");

    // Ann moves and scores, then stands still (so her score holds while she is away).
    page.eval("JSON.stringify(tickcastPlay.client.setInput({ dx: 127, dy: 40 }) ?? true)")
        .await;
    page.eval_until(SEAT, "a score of 2", |s| s["score"].as_u64().is_some_and(|n| n >= 2))
        .await;
    page.eval("JSON.stringify(tickcastPlay.client.setInput({ dx: 0, dy: 0 }) ?? true)")
        .await;
    let stopped = page
        .eval_until(SEAT, "the stop applied", |s| s["still"] == true && s["ack"] == s["seq"])
        .await;
    let frames = count(&stopped["stats"]["frames"]);
    let before = page
        .eval_until(SEAT, "frames after the stop", |s| {
            s["stats"]["frames"].as_u64().is_some_and(|n| n >= frames + 3)
        })
        .await;
    let (id, score, seq) = (count(&before["id"]), count(&before["score"]), count(&before["seq"]));
    assert_eq!(before["hud"]["status"], "playing", "{before}");

    // The network goes, both ways, no FIN: nothing tells the browser. The client notices the
    // silence (3 s), says it is reconnecting, and takes the seat back on a new connection.
    relay.cut();
    let cut = Instant::now();
    let back = page
        .eval_until(SEAT, "the seat taken back", |s| {
            s["stats"]["resumes"] == 1
                && s["status"] == "playing"
                && s["stats"]["snapshots"].as_u64() > before["stats"]["snapshots"].as_u64()
        })
        .await;
    let took = cut.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "taken back after {took:?}: before the silence limit, so not by it"
    );
    assert_eq!(count(&back["id"]), id, "the same entity: {back}");
    assert_eq!(back["score"].as_u64(), Some(score), "its score kept: {back}");
    assert_ne!(back["token"], before["token"], "a token works once: a new one came");
    assert_eq!(back["stats"]["silences"], 1, "{back}");
    // No fresh join, no refusal, no seat lost.
    let log = back["seatLog"].as_array().unwrap();
    let kinds: Vec<&str> = log.iter().map(|e| e[0].as_str().unwrap()).collect();
    assert_eq!(kinds.last(), Some(&"resumed"), "{back}");
    assert!(kinds[..kinds.len() - 1].iter().all(|k| *k == "reconnecting"), "{back}");
    let attempts = count(&back["stats"]["resumeAttempts"]);
    assert!((1..=3).contains(&attempts), "{back}");
    let resumed = &log.last().unwrap()[1];
    assert_eq!(
        (resumed["playerId"].as_u64(), resumed["attempts"].as_u64()),
        (Some(id), Some(attempts)),
        "{back}"
    );
    assert!(resumed["tookMs"].as_f64().is_some_and(|ms| ms < 5000.0), "{back}");
    assert_eq!(back["stats"]["reconnects"], 0, "{back}");
    assert_eq!(back["stats"]["seatsLost"], 0, "{back}");
    // The HUD said so, and plays on as the same player.
    let shown: Vec<&str> = back["statusLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(shown, ["playing", "reconnecting…", "playing"], "{back}");
    assert_eq!(back["hud"]["me"], before["hud"]["me"], "{back}");
    assert_eq!(back["hud"]["score"], score.to_string(), "{back}");

    // The input in force (still) went out again with the next `seq`: the server applied the
    // old connection's last input until then.
    assert_eq!(back["seq"].as_u64(), Some(seq + 1), "{back}");

    // Deltas flow again and their checksums hold; the input `seq` goes on, and the server
    // applies the next move.
    let verified = count(&back["stats"]["checksumsVerified"]);
    page.eval("JSON.stringify(tickcastPlay.client.setInput({ dx: -127, dy: 0 }) ?? true)")
        .await;
    let after = page
        .eval_until(SEAT, "a checksum verified and the next move applied", |s| {
            s["stats"]["checksumsVerified"].as_u64() > Some(verified)
                && s["ack"].as_u64() == Some(seq + 2)
                && s["x"] != back["x"]
        })
        .await;
    assert_eq!(after["seq"].as_u64(), Some(seq + 2), "{after}");
    for stat in [
        "checksumMismatches",
        "privateChecksumMismatches",
        "drifts",
        "decodeErrors",
    ] {
        assert_eq!(after["stats"][stat], 0, "{stat}: {after}");
    }

    // The server: one resume, which replaced the old connection (it still looked open to the
    // server: the close frame of 4002 went nowhere), and no seat given up.
    assert_eq!(server.metrics.resumes.get(), 1);
    until("the old connection replaced", || {
        server.metrics.closes(CloseReason::Replaced) == 1
    })
    .await;
    assert_eq!(server.metrics.seats_expired.get(), 0);
    assert_eq!(server.metrics.players_away.get(), 0);
}

/// A seat the server gave up before the client came back (it notices the silent connection
/// within a second and a half, and keeps seats for half a second; the client notices after
/// 3 s): the resume is refused
/// with 4001, which is no refusal of the player: the page says the place was lost and plays on
/// as a new player.
#[tokio::test]
async fn a_seat_given_up_meanwhile_is_said_and_the_page_plays_on_as_a_new_player() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(Config {
        reconnect_grace: Duration::from_millis(500),
        // The server notices the silent connection quickly (it pings every 333 ms).
        idle_timeout: Duration::from_secs(1),
        ..orchard()
    })
    .await;
    let relay = relay_to(&server).await;
    let browser = Browser::launch(&binary, "resume-lost");
    let mut page = playing_through(&browser, &relay, "bob").await;
    let before = page.eval(SEAT).await;
    assert_eq!(before["graceMs"], 500, "{before}");
    let id = count(&before["id"]);

    relay.cut();
    until("the seat given up", || server.metrics.seats_expired.get() == 1).await;
    let lost = page
        .eval_until(SEAT, "a new player", |s| {
            s["status"] == "playing"
                && s["id"].as_u64().is_some_and(|n| n != id)
                && s["stats"]["snapshots"].as_u64() > Some(0)
        })
        .await;
    let log = lost["seatLog"].as_array().unwrap();
    let seatlost: Vec<&Value> = log.iter().filter(|e| e[0] == "seatlost").map(|e| &e[1]).collect();
    assert_eq!(seatlost.len(), 1, "{lost}");
    assert_eq!(seatlost[0]["code"], 4001, "{lost}");
    assert!(
        seatlost[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("resume token unknown")),
        "{lost}"
    );
    assert!(
        !log.iter().any(|e| e[0] == "refused" || e[0] == "close"),
        "no refusal: {lost}"
    );
    assert!(log.iter().any(|e| e[0] == "reconnecting"), "it tried: {lost}");
    assert!(!log.iter().any(|e| e[0] == "resumed"), "{lost}");
    assert_eq!(
        log.iter().find(|e| e[0] == "welcome").map(|e| &e[1]),
        Some(&json!({ "playerId": lost["id"] })),
        "{lost}"
    );
    assert_eq!(lost["stats"]["seatsLost"], 1, "{lost}");
    assert_eq!(lost["stats"]["reconnects"], 1, "{lost}");
    assert!(
        lost["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t != before["token"]),
        "{lost}"
    );
    assert!(
        lost["hud"]["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("your place was lost (resume token unknown")),
        "{lost}"
    );
    assert!(
        lost["hud"]["me"]
            .as_str()
            .is_some_and(|me| me.ends_with(&format!("(P{})", lost["id"]))),
        "{lost}"
    );
    assert_eq!(server.metrics.resumes.get(), 0);
    assert_eq!(server.metrics.closes(CloseReason::ResumeRefused), 1);
}

/// The module against PROTOCOL.md's vectors of the version 5 hello and welcome: the resume
/// token and the grace decode, the hellos encode to the document's bytes, and a resume token
/// longer than the protocol allows is refused both ways.
#[tokio::test]
async fn the_javascript_client_reads_and_writes_the_resume_token_as_protocol_md_says() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let vectors = common::protocol_vectors();
    for name in [
        "hello",
        "hello resuming",
        "hello with options",
        "arena welcome",
        "tanks welcome",
    ] {
        assert!(vectors.contains_key(name), "no {name:?} vector in PROTOCOL.md");
    }

    let browser = Browser::launch(&binary, "resume-vectors");
    let mut page = Page::open(&browser, &server.http_url("/play?name=vectors")).await;
    page.wait_for("window.tickcastPlay").await;
    let script = format!(
        r#"(async () => {{
        const tc = await import(location.origin + "/tickcast.js");
        const v = {vectors};
        const bytes = (hex) => Uint8Array.from(hex.split(" ").map((h) => parseInt(h, 16)));
        const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
        const welcome = (name) => {{ const w = tc.decodeServerMsg(bytes(v[name]));
          return {{ version: w.version, playerId: w.playerId, tickHz: w.tickHz, resume: w.resume, graceMs: w.graceMs, game: w.schema.game }}; }};
        const token = "default.00112233445566778899aabbccddeeff";
        const thrown = (f) => {{ try {{ f(); return "accepted"; }} catch (err) {{ return err.constructor.name; }} }};
        // The arena welcome with a resume token of 97 bytes in place of its 40.
        const long = [...bytes(v["arena welcome"])];
        long.splice(4, 41, 97, ...new Array(97).fill(0x61));
        return JSON.stringify({{
          version: tc.PROTOCOL_VERSION,
          arena: welcome("arena welcome"), tanks: welcome("tanks welcome"),
          encoded: {{
            hello: hex(tc.encodeClientMsg({{ type: "hello", name: "ann", token: "" }})) === v.hello,
            resuming: hex(tc.encodeClientMsg({{ type: "hello", resume: token }})) === v["hello resuming"],
            withOptions: hex(tc.encodeClientMsg({{ type: "hello", name: "ann", token: "", resume: "", options: {{ team: 1 }} }})) === v["hello with options"],
          }},
          longWelcome: thrown(() => tc.decodeServerMsg(Uint8Array.from(long))),
          longHello: thrown(() => tc.encodeClientMsg({{ type: "hello", resume: "a".repeat(97) }})),
          longestHello: thrown(() => tc.encodeClientMsg({{ type: "hello", resume: "a".repeat(96) }})),
        }});
      }})()"#,
        vectors = Value::Object(vectors),
    );
    let out = page.eval_async(&script).await;
    assert_eq!(
        out,
        json!({
            "version": 5,
            "arena": { "version": 5, "playerId": 7, "tickHz": 30, "resume": "default.00112233445566778899aabbccddeeff",
                       "graceMs": 15000, "game": "arena" },
            "tanks": { "version": 5, "playerId": 3, "tickHz": 30, "resume": "", "graceMs": 0, "game": "tanks" },
            "encoded": { "hello": true, "resuming": true, "withOptions": true },
            "longWelcome": "DecodeError",
            "longHello": "RangeError",
            "longestHello": "accepted",
        })
    );
}
