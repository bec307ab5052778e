//! The spectator page in a real browser: headless Chromium, driven over the DevTools protocol,
//! must show the live players of a running server, over SSE and over long-polling, and its
//! long-polling fallback must keep up across a 150 ms round trip (through `tickcast-relay`).
//!
//! Needs Chromium (`apt-get install chromium`; `.ci/run` installs it). Without it the test
//! says so and passes, unless `TICKCAST_REQUIRE_BROWSER` is set, as CI sets it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::sse::{SseClient, tick_of};
use common::{TestServer, duel, until_snapshot, within};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickcast_relay::{Relay, RelayConfig, Shape};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

fn chromium() -> Option<PathBuf> {
    let candidates = std::env::var_os("TICKCAST_CHROMIUM")
        .into_iter()
        .map(PathBuf::from)
        .chain(
            [
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ]
            .into_iter()
            .map(PathBuf::from),
        );
    candidates.into_iter().find(|p| p.exists())
}

/// A headless Chromium, killed on drop.
struct Browser {
    child: Child,
    devtools: String,
    _profile: PathBuf,
}

impl Browser {
    /// Launches Chromium with a profile of its own: `name` keeps the tests of one run apart.
    fn launch(binary: &PathBuf, name: &str) -> Self {
        let profile =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{name}-{}", std::process::id()));
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                // Keep the browser off the network: this machine has none, and tests must not try.
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-port=0",
                "--window-size=1280,800",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start chromium");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let devtools = stderr
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.split_once("DevTools listening on ")
                    .map(|(_, url)| url.trim().to_owned())
            })
            .expect("chromium prints its DevTools address");
        Self {
            child,
            devtools,
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DevTools protocol connection attached to one page.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    session: Option<String>,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser, url: &str) -> Self {
        let (ws, _) = within(tokio_tungstenite::connect_async(browser.devtools.as_str()))
            .await
            .unwrap();
        let mut page = Self {
            ws,
            session: None,
            next_id: 0,
        };
        let target = page.call("Target.createTarget", json!({ "url": url })).await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        page.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
        page
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut msg = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = &self.session {
            msg["sessionId"] = json!(session);
        }
        self.ws.send(Message::Text(msg.to_string().into())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = within(self.ws.next()).await else {
                continue;
            };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == self.next_id {
                assert!(reply["error"].is_null(), "{method}: {}", reply["error"]);
                return reply["result"].clone();
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value, parsed from JSON.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        serde_json::from_str(result["result"]["value"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
    }

    /// What the page shows, read from the DOM text it keeps current.
    async fn shown(&mut self) -> Value {
        let expression = r##"JSON.stringify({
            status: document.getElementById("status").textContent,
            transport: document.getElementById("transport").textContent,
            tick: Number(document.getElementById("tick").textContent) || 0,
            game: document.getElementById("game").textContent,
            players: Number(document.getElementById("count-player")?.textContent),
            orbs: Number(document.getElementById("count-orb")?.textContent),
            tanks: Number(document.getElementById("count-tank")?.textContent),
            shells: Number(document.getElementById("count-shell")?.textContent),
            board: [...document.querySelectorAll("#leaderboard li")].map(li => Number(li.dataset.id)),
            labels: [...document.querySelectorAll("#leaderboard li")].map(li => li.dataset.label),
        })"##;
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        serde_json::from_str(result["result"]["value"].as_str().unwrap_or("{}")).unwrap_or(Value::Null)
    }

    /// The ids of the events the page applied, oldest first (its `window.tickcastApplied`).
    async fn applied(&mut self) -> Vec<u64> {
        let expression = "JSON.stringify(window.tickcastApplied || [])";
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        serde_json::from_str(result["result"]["value"].as_str().unwrap_or("[]")).unwrap_or_default()
    }

    /// Polls the page until `done` holds for what it shows, or fails after a while.
    async fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.shown().await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // the DOM cannot be awaited
        }
        panic!("the page never showed {what}; it showed {last}");
    }
}

/// The Chromium to test with, or `None` (and the test passes) when there is none and CI does
/// not require one.
fn chromium_or_skip() -> Option<PathBuf> {
    let binary = chromium();
    if binary.is_none() {
        assert!(
            std::env::var_os("TICKCAST_REQUIRE_BROWSER").is_none(),
            "TICKCAST_REQUIRE_BROWSER set but no chromium"
        );
        eprintln!("skipped: no chromium found (apt-get install chromium, or set TICKCAST_CHROMIUM)");
    }
    binary
}

/// Two players that keep moving, so the page has something to follow; their ids and tasks.
async fn moving_players(server: &TestServer) -> (Vec<u32>, Vec<JoinHandle<()>>) {
    let mut ids = Vec::new();
    let mut players = Vec::new();
    for name in ["ann", "bob"] {
        let mut player = server.player(name).await;
        ids.push(player.player_id());
        until_snapshot(&mut player).await;
        players.push(tokio::spawn(async move {
            let mut dx = 127;
            while player.recv().await.is_ok() {
                if player.world().is_some_and(|w| w.tick() % 30 == 0) {
                    dx = -dx;
                    if player.send_move(dx, 64).await.is_err() {
                        break;
                    }
                }
            }
        }));
    }
    (ids, players)
}

#[tokio::test]
async fn the_spectator_page_shows_the_live_players_over_sse_and_long_poll() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let (ids, players) = moving_players(&server).await;

    let browser = Browser::launch(&binary, "transports");
    for (query, transport) in [("", "SSE"), ("?transport=longpoll", "long-poll")] {
        let mut page = Page::open(&browser, &server.http_url(&format!("/rooms/default/{query}"))).await;
        let shown = page
            .until(&format!("both players live over {transport}"), |s| {
                s["status"] == "live"
                    && s["transport"] == transport
                    && ids
                        .iter()
                        .all(|id| s["board"].as_array().is_some_and(|b| b.contains(&json!(id))))
            })
            .await;
        assert_eq!(
            (shown["game"].as_str(), shown["players"].as_u64()),
            (Some("arena"), Some(2))
        );
        assert_eq!(shown["orbs"], 100);
        // And it keeps following the match.
        let tick = shown["tick"].as_u64().unwrap();
        page.until("the tick advancing", |s| s["tick"].as_u64().is_some_and(|t| t > tick))
            .await;
        if transport == "SSE" {
            let shot = page.call("Page.captureScreenshot", json!({ "format": "png" })).await;
            let png = base64_decode(shot["data"].as_str().unwrap());
            std::fs::write(
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("spectator-page.png"),
                png,
            )
            .unwrap();
        }
    }
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn the_long_poll_fallback_shows_every_event_in_order_at_150_ms_round_trip() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let (_, players) = moving_players(&server).await;
    // 75 ms each way, ±10 ms: a long-poll's answer and the next request cost 150 ms, more than
    // the 100 ms between events, so the page must take the events that piled up meanwhile in
    // one answer, every one of them.
    let config = RelayConfig {
        shape: Shape {
            delay: Duration::from_millis(75),
            jitter: Duration::from_millis(10),
            bandwidth: None,
        },
        ..RelayConfig::new(server.addr, Duration::ZERO)
    };
    let relay = Relay::start(config, CancellationToken::new()).await.unwrap();

    let browser = Browser::launch(&binary, "longpoll-150ms");
    let url = format!("http://{}/rooms/default/?transport=longpoll", relay.addr());
    let mut page = Page::open(&browser, &url).await;
    page.until("live over long-poll", |s| {
        s["status"] == "live" && s["transport"] == "long-poll"
    })
    .await;

    // What the server published meanwhile, seen directly: about 3 s of events.
    let mut reference = SseClient::connect(&server.http_url("/events"), None).await;
    let mut published = Vec::new();
    while published.len() < 30 {
        let event = reference.next().await.expect("the reference stream ends");
        if event.event == "delta" {
            published.push(tick_of(&event.id.unwrap()));
        }
    }
    let newest = *published.last().unwrap();
    let published_at = Instant::now();
    let mut applied = page.applied().await;
    while applied.last().is_none_or(|&last| last < newest) {
        assert!(
            published_at.elapsed() < Duration::from_secs(2),
            "the page fell behind: it applied up to {:?}, the server published {newest}",
            applied.last()
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // the page cannot be awaited
        applied = page.applied().await;
    }
    // Shown within two round trips and a bit of the newest event.
    assert!(
        published_at.elapsed() < Duration::from_millis(500),
        "{:?}",
        published_at.elapsed()
    );
    assert!(applied.windows(2).all(|w| w[0] < w[1]), "out of order: {applied:?}");
    let shown: Vec<u64> = applied
        .iter()
        .copied()
        .filter(|id| (published[0]..=newest).contains(id))
        .collect();
    assert_eq!(shown, published, "the page skipped or resynchronised");
    let relayed = relay.stop().await;
    assert!(relayed.connections >= 1 && relayed.down.bytes > 0, "{relayed}");
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn the_page_draws_any_game_from_its_schema_tanks_with_shells_and_health_labels() {
    let Some(binary) = chromium_or_skip() else { return };
    // A small world, so shells reach their target within their one-second flight.
    let server = TestServer::start(tickcast::Config {
        game: "tanks".into(),
        world_size: 200,
        ..tickcast::Config::defaults()
    })
    .await;
    let (shooter, target) = (server.player("ann").await, server.player("bob").await);
    let ids = [shooter.player_id(), target.player_id()];
    let fighting = tokio::spawn(duel(shooter, target));

    let browser = Browser::launch(&binary, "tanks");
    let mut page = Page::open(&browser, &server.http_url("/rooms/default/")).await;
    let shown = page
        .until("both tanks, a shell in flight and a hit", |s| {
            s["status"] == "live"
                && s["tanks"] == 2
                && s["shells"].as_u64().is_some_and(|n| n >= 1)
                && ids
                    .iter()
                    .all(|id| s["board"].as_array().is_some_and(|b| b.contains(&json!(id))))
                // health is tanks' label: one below 100 is a hit the page followed
                && s["labels"]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("health ") && l != "health 100")))
        })
        .await;
    assert_eq!(shown["game"], "tanks");
    assert!(shown["orbs"].is_null(), "no kind of another game: {shown}");
    fighting.abort();
}

#[tokio::test]
async fn the_lobby_lists_the_rooms_and_links_to_each_live_room() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let created: Value = reqwest::Client::new()
        .post(server.http_url("/rooms"))
        .json(&json!({ "game": "arena" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let room = created["id"].as_str().unwrap().to_owned();
    let mut player = within(tickcast::client::Client::connect(
        created["ws"].as_str().unwrap(),
        "cat",
    ))
    .await
    .unwrap();
    let id = player.player_id();
    until_snapshot(&mut player).await;
    let playing = tokio::spawn(async move { while player.recv().await.is_ok() {} });

    let browser = Browser::launch(&binary, "lobby");
    let mut page = Page::open(&browser, &server.http_url("/")).await;
    let rows = r##"JSON.stringify([...document.querySelectorAll("#rooms tr")].map(tr => tr.dataset.id))"##;
    let mut listed = Value::Null;
    for _ in 0..100 {
        listed = page.eval(rows).await;
        if listed
            .as_array()
            .is_some_and(|ids| ids.contains(&json!(room)) && ids.contains(&json!("default")))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // the DOM cannot be awaited
    }
    assert!(
        listed.as_array().is_some_and(|ids| ids.contains(&json!(room))),
        "the lobby listed {listed}"
    );
    // Follow the room's link, as a visitor clicks it.
    let click = format!(r##"JSON.stringify(document.querySelector('#rooms tr[data-id="{room}"] a').click())"##);
    page.eval(&click).await;
    let shown = page
        .until("the created room live with its player", |s| {
            s["status"] == "live" && s["board"].as_array().is_some_and(|b| b == &vec![json!(id)])
        })
        .await;
    assert_eq!(shown["players"], 1);
    let location = page.eval("JSON.stringify(location.pathname)").await;
    assert_eq!(location, json!(format!("/rooms/{room}/")));
    playing.abort();
}

/// Standard base64 (the screenshot), without pulling in a crate for one test.
fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(value).collect();
    digits
        .chunks(4)
        .flat_map(|c| {
            let n = c
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, d)| n | u32::from(*d) << (18 - 6 * i));
            n.to_be_bytes()[1..c.len()].to_vec()
        })
        .collect()
}
