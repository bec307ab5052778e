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
        match self.try_call(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// Sends a DevTools command; its error, if it failed (an evaluation while the page
    /// navigates fails with "Inspected target navigated or closed").
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
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
                return match reply["error"].is_null() {
                    true => Ok(reply["result"].clone()),
                    false => Err(reply["error"].clone()),
                };
            }
        }
    }

    /// Evaluates `expression` in the page and returns its value, parsed from JSON.
    /// `null` if the evaluation failed (the page navigating, say): callers poll or assert.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .try_call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await
            .unwrap_or_default();
        serde_json::from_str(result["result"]["value"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
    }

    /// Evaluates `expression` (a promise of a JSON string) in the page and returns its value.
    async fn eval_async(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        serde_json::from_str(result["result"]["value"].as_str().unwrap_or("null")).unwrap_or(Value::Null)
    }

    /// Polls until `condition` (a JavaScript expression) holds in the page.
    async fn wait_for(&mut self, condition: &str) {
        for _ in 0..100 {
            if self.eval(&format!("JSON.stringify(Boolean({condition}))")).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // the page cannot be awaited
        }
        panic!("the page never had {condition}");
    }

    /// Presses and releases `key` (a `KeyboardEvent.code` such as `ArrowLeft`) as a keyboard
    /// does, through the browser's input pipeline, holding it for `hold`.
    async fn press(&mut self, key: &str, hold: Duration) {
        let code = match key {
            "ArrowLeft" => 37,
            "ArrowUp" => 38,
            "ArrowRight" => 39,
            "ArrowDown" => 40,
            _ => 0,
        };
        for kind in ["rawKeyDown", "keyUp"] {
            let event = json!({ "type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code });
            self.call("Input.dispatchKeyEvent", event).await;
            if kind == "rawKeyDown" {
                tokio::time::sleep(hold).await;
            }
        }
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
        // Polled, also while the page navigates (a link followed): a failed evaluation is
        // nothing shown yet.
        let result = self
            .try_call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await
            .unwrap_or_default();
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
    // Clicked after this evaluation has answered: the navigation destroys the page's context,
    // and an evaluation still running in it would fail.
    let click = format!(
        r##"JSON.stringify(setTimeout(() => document.querySelector('#rooms tr[data-id="{room}"] a').click(), 0) > 0)"##
    );
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

/// The client module against PROTOCOL.md's vectors, in the browser: every message decodes to
/// what the document says, the client's messages encode to its bytes, the snapshot's checksum
/// is the document's, and what the protocol rules out is refused.
#[tokio::test]
async fn the_javascript_client_decodes_and_encodes_protocol_md_s_vectors() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let doc = include_str!("../PROTOCOL.md");
    let block = doc.split("```\nhello:").nth(1).expect("the vectors block");
    let block = format!("hello:{}", block.split("```").next().unwrap());
    let vectors: serde_json::Map<String, Value> = block
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(name, hex)| (name.to_owned(), json!(hex.trim())))
        .collect();
    assert_eq!(vectors.len(), 13, "{block}");

    let browser = Browser::launch(&binary, "vectors");
    let mut page = Page::open(&browser, &server.http_url("/play?name=vectors")).await;
    page.wait_for("window.tickcastPlay").await;
    let script = format!(
        r#"(async () => {{
        const tc = await import(location.origin + "/tickcast.js");
        const v = {vectors};
        const bytes = (hex) => Uint8Array.from(hex.split(" ").map((h) => parseInt(h, 16)));
        const hex = (b) => [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
        const plain = (m) => JSON.parse(JSON.stringify(m, (k, x) => x instanceof Uint32Array ? [...x] : x));
        const arena = tc.decodeServerMsg(bytes(v["arena welcome"]));
        const tanks = tc.decodeServerMsg(bytes(v["tanks welcome"]));
        const out = {{ arena: {{ playerId: arena.playerId, tickHz: arena.tickHz, game: arena.schema.game,
                                kinds: arena.schema.kinds.map((k) => [k.name, k.fields.map((f) => [f.name, f.type, f.role])]),
                                input: arena.schema.input }},
                      tanks: {{ kinds: tanks.schema.kinds.map((k) => [k.name, k.fields.map((f) => [f.name, f.type, f.count, f.role])]),
                                input: tanks.schema.input }} }};
        for (const [name, schema] of [["arena snapshot", arena.schema], ["tanks snapshot", tanks.schema],
            ["arena delta", arena.schema], ["tanks delta", tanks.schema], ["idle delta", arena.schema],
            ["ack", null], ["pong", null]]) out[name] = plain(tc.decodeServerMsg(bytes(v[name]), schema));
        const world = new tc.World(arena.schema);
        world.snapshot(tc.decodeServerMsg(bytes(v["arena snapshot"]), arena.schema));
        out.checksum = world.checksum();
        out.encoded = {{
          hello: hex(tc.encodeClientMsg({{ type: "hello", name: "ann", token: "" }})) === v.hello,
          arena: hex(tc.encodeClientMsg({{ type: "input", seq: 5, values: [127, -127] }}, arena.schema)) === v["arena input"],
          tanks: hex(tc.encodeClientMsg({{ type: "input", seq: 6, values: [0, 127, 64, 1] }}, tanks.schema)) === v["tanks input"],
          ping: hex(tc.encodeClientMsg({{ type: "ping", nonce: 42, clientTimeUs: 1000000 }})) === v.ping,
        }};
        const refused = (hexBytes, schema) => {{
          try {{ tc.decodeServerMsg(bytes(hexBytes), schema); return "accepted"; }}
          catch (err) {{ return err instanceof tc.DecodeError ? "refused" : String(err); }}
        }};
        out.refused = [
          refused("04 fb 05 00"),                 // a varint not in its shortest form
          refused("04 05 00"),                    // a trailing byte
          refused("04 fe"),                       // a 128-bit varint prefix
          refused("01 03 01 07 00 fb 40 1f", arena.schema),            // truncated
          refused("01 03 01 07 02 00 00", arena.schema),               // a kind the schema lacks
          refused("01 03 01 00 01 00 00", arena.schema),               // entity id 0
          refused("02 02 01 00 01 00 01 07 00 00 00", arena.schema),   // an update mask of 0
          refused("02 02 01 00 00 00 00 02", arena.schema),            // an Option byte of 2
        ];
        return JSON.stringify(out);
      }})()"#,
        vectors = Value::Object(vectors),
    );
    let out = page.eval_async(&script).await;
    assert_eq!(out["arena"]["playerId"], 7);
    assert_eq!(out["arena"]["tickHz"], 30);
    assert_eq!(
        out["arena"]["kinds"],
        json!([
            [
                "player",
                [["x", "coord", "x"], ["y", "coord", "y"], ["score", "uint", "score"]]
            ],
            ["orb", [["x", "coord", "x"], ["y", "coord", "y"]]]
        ])
    );
    assert_eq!(
        out["arena"]["input"],
        json!([{"name": "dx", "type": "i8", "min": -127, "max": 127}, {"name": "dy", "type": "i8", "min": -127, "max": 127}])
    );
    assert_eq!(out["tanks"]["kinds"][0][1][6], json!(["state", "enum", 3, "none"]));
    assert_eq!(
        out["tanks"]["input"][3],
        json!({"name": "fire", "type": "bool", "min": 0, "max": 1})
    );
    assert_eq!(
        out["arena snapshot"],
        json!({"type": "snapshot", "tick": 3, "entities": [
            {"id": 1, "kind": 1, "f": [160, 16000]}, {"id": 7, "kind": 0, "f": [8000, 8000, 3]}]})
    );
    assert_eq!(
        out["tanks snapshot"]["entities"][1],
        json!({"id": 38, "kind": 1, "f": [4000, 4000, (-320i32) as u32, 0, 5]}),
        "a signed field is kept as its two's complement bits"
    );
    assert_eq!(
        out["arena delta"],
        json!({"type": "delta", "tick": 1000, "baseGap": 1,
               "spawned": [{"id": 260, "kind": 1, "f": [1600, 80]}],
               "updated": [{"id": 7, "kind": 0, "mask": 3, "values": [80, -3]}, {"id": 9, "kind": 0, "mask": 4, "values": [2]}],
               "removed": [12], "checksum": 0xdead_beef_u32})
    );
    assert_eq!(
        out["tanks delta"]["updated"],
        json!([{"id": 3, "kind": 0, "mask": 0b10_0100, "values": [64, 0]}, {"id": 5, "kind": 0, "mask": 0b100_1000, "values": [75, 1]}])
    );
    assert_eq!(out["idle delta"]["tick"], 70000);
    assert_eq!(out["ack"], json!({"type": "ack", "seq": 300}));
    assert_eq!(
        out["pong"],
        json!({"type": "pong", "nonce": 42, "clientTimeUs": 1_000_000, "serverTick": 250, "serverTimeUs": 1_700_000_000_000_000u64})
    );
    assert_eq!(out["checksum"], 0x8836_2431u32);
    assert_eq!(
        out["encoded"],
        json!({"hello": true, "arena": true, "tanks": true, "ping": true})
    );
    assert_eq!(out["refused"], json!(vec!["refused"; 8]));
}

/// What the play page measured, read from its `window.tickcastPlay`.
async fn play_figures(page: &mut Page) -> Value {
    page.eval(
        r#"JSON.stringify((() => {
            const { client, measures } = window.tickcastPlay;
            const own = client.world && client.world.entities.get(client.playerId);
            return { status: client.status, id: client.playerId, stats: client.stats, measures,
                     width: client.schema && client.schema.width, tick: client.world && client.world.tick,
                     own: own ? [own.f[0] / 16, own.f[1] / 16] : null };
        })())"#,
    )
    .await
}

/// Plays the page at `url` with `presses` scripted key presses (300 ms each, then 700 ms at
/// rest) while bots move in the room; returns what the page measured.
async fn play_with_keys(browser: &Browser, url: &str, presses: usize) -> Value {
    let mut page = Page::open(browser, url).await;
    let mut figures = Value::Null;
    for _ in 0..100 {
        figures = play_figures(&mut page).await;
        if figures["status"] == "playing" && figures["stats"]["frames"].as_u64().is_some_and(|n| n > 30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // the page cannot be awaited
    }
    assert_eq!(figures["status"], "playing", "{figures}");
    let start = figures["own"].clone();
    let width = figures["width"].as_f64().unwrap();
    for i in 0..presses {
        let own = play_figures(&mut page).await["own"].clone();
        let (x, y) = (own[0].as_f64().unwrap(), own[1].as_f64().unwrap());
        // Away from the nearer wall, so the entity can move.
        let key = match i % 2 {
            0 if x > width / 2.0 => "ArrowLeft",
            0 => "ArrowRight",
            _ if y > width / 2.0 => "ArrowUp",
            _ => "ArrowDown",
        };
        page.press(key, Duration::from_millis(300)).await;
        tokio::time::sleep(Duration::from_millis(700)).await; // at rest before the next key
    }
    let figures = play_figures(&mut page).await;
    eprintln!("{url}: {figures}");
    assert_ne!(
        figures["own"], start,
        "the own entity never moved on the server: {figures}"
    );
    figures
}

/// What a player must feel: the own entity moves on the first animation frame after a key, its
/// predicted position is the server's to the step once the input is acknowledged, every
/// checksum matches, and the others glide no faster than they can move.
fn assert_plays_well(figures: &Value) {
    let stats = &figures["stats"];
    let measures = &figures["measures"];
    let presses = measures["keyToScreen"].as_array().unwrap();
    assert!(presses.len() >= 6, "key presses measured: {figures}");
    assert!(
        presses.iter().all(|p| p["frames"] == 1),
        "a key press took more than one animation frame to show: {figures}"
    );
    assert!(stats["predictionChecks"].as_u64().unwrap() >= 150, "{figures}");
    assert_eq!(stats["predictionMismatches"], 0, "{figures}");
    assert_eq!(stats["predictionMaxError"], 0, "{figures}");
    assert!(stats["checksumsVerified"].as_u64().unwrap() >= 5, "{figures}");
    assert_eq!(stats["checksumMismatches"], 0, "{figures}");
    assert_eq!(
        (stats["drifts"].as_u64(), stats["reconnects"].as_u64()),
        (Some(0), Some(0)),
        "{figures}"
    );
    let smooth = &measures["smoothness"];
    assert!(smooth["samples"].as_u64().unwrap() >= 500, "{figures}");
    assert_eq!(smooth["violations"], 0, "{figures}");
}

#[tokio::test]
async fn a_browser_plays_with_prediction_reconciliation_and_interpolation() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let (ids, players) = moving_players(&server).await;
    let browser = Browser::launch(&binary, "play");
    let figures = play_with_keys(&browser, &server.http_url("/play?name=web"), 8).await;
    assert_plays_well(&figures);
    assert!(!ids.contains(&figures["id"].as_u64().unwrap().try_into().unwrap()));
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn the_same_holds_across_an_80_ms_round_trip_with_jitter() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(tickcast::Config {
        // The page reaches the server through the relay, a port of its own.
        allowed_origins: vec!["*".into()],
        ..tickcast::Config::defaults()
    })
    .await;
    let (_, players) = moving_players(&server).await;
    // 40 ms ± 10 ms each way: a round trip of 80 ms ± 20 ms.
    let config = RelayConfig {
        shape: Shape {
            delay: Duration::from_millis(40),
            jitter: Duration::from_millis(10),
            bandwidth: None,
        },
        ..RelayConfig::new(server.addr, Duration::ZERO)
    };
    let relay = Relay::start(config, CancellationToken::new()).await.unwrap();
    let browser = Browser::launch(&binary, "play-80ms");
    let url = format!("http://{}/rooms/default/play?name=far", relay.addr());
    let figures = play_with_keys(&browser, &url, 8).await;
    assert_plays_well(&figures);
    let rtt = figures["stats"]["rttSmoothed"].as_f64().unwrap();
    assert!(
        (60.0..=140.0).contains(&rtt),
        "the relay's round trip was not felt: {figures}"
    );
    assert!(
        figures["stats"]["interpolationDelayMs"].as_f64().unwrap() > 70.0,
        "{figures}"
    );
    let relayed = relay.stop().await;
    assert!(relayed.connections >= 1, "{relayed}");
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn in_tanks_the_page_aims_with_the_mouse_and_fires_with_a_click() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(tickcast::Config {
        game: "tanks".into(),
        ..tickcast::Config::defaults()
    })
    .await;
    let browser = Browser::launch(&binary, "tanks-play");
    let mut page = Page::open(&browser, &server.http_url("/play?name=gunner")).await;
    page.wait_for(
        "window.tickcastPlay && tickcastPlay.client.status === 'playing' && tickcastPlay.client.stats.frames > 10",
    )
    .await;
    // Where the own tank is drawn, on screen: the mouse goes straight below it (aim 64, +y).
    let at = page
        .eval(
            r#"JSON.stringify((() => {
                const c = tickcastPlay.client, own = c.view(performance.now()).entities.find((e) => e.own);
                const w = innerWidth, h = innerHeight, pad = 24;
                const scale = Math.min((w - 2 * pad) / c.schema.width, (h - 2 * pad) / c.schema.height);
                return [(w - c.schema.width * scale) / 2 + own.x * scale, (h - c.schema.height * scale) / 2 + own.y * scale];
            })())"#,
        )
        .await;
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap() + 40.0);
    for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
        let event = json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 });
        page.call("Input.dispatchMouseEvent", event).await;
        tokio::time::sleep(Duration::from_millis(100)).await; // a tick or three, for the server to apply it
    }
    // The server turned the turret and launched a shell of ours, and the page shows both.
    page.wait_for(
        r#"(() => {
            const c = tickcastPlay.client, me = c.playerId, tanks = c.schema.kinds[0], shells = c.schema.kinds[1];
            const own = c.world.entities.get(me);
            const aim = own && own.f[tanks.index.aim];
            const shell = [...c.world.entities.values()].some((e) => e.kind === 1 && e.f[shells.index.owner] === me);
            return aim >= 60 && aim <= 68 && (shell || own.f[tanks.index.reloading] === 1);
        })()"#,
    )
    .await;
    assert_eq!(
        page.eval("JSON.stringify(tickcastPlay.client.stats.checksumMismatches)")
            .await,
        0
    );
}

/// The input-to-screen latency of BENCHMARKS.md, with and without prediction, at 0 and 80 ms of
/// added round trip: `cargo test --release --test browser -- --ignored --nocapture input_to_screen`.
#[tokio::test]
#[ignore = "a measurement: run it by name"]
async fn input_to_screen_with_and_without_prediction() {
    let Some(binary) = chromium_or_skip() else { return };
    let browser = Browser::launch(&binary, "input-to-screen");
    let mut rows = Vec::new();
    for rtt_ms in [0u64, 80] {
        let server = TestServer::start(tickcast::Config {
            allowed_origins: vec!["*".into()],
            ..tickcast::Config::defaults()
        })
        .await;
        let (_, players) = moving_players(&server).await;
        let relay = Relay::start(
            RelayConfig {
                shape: Shape {
                    delay: Duration::from_millis(rtt_ms / 2),
                    jitter: Duration::from_millis(rtt_ms / 8),
                    bandwidth: None,
                },
                ..RelayConfig::new(server.addr, Duration::ZERO)
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        for predict in [true, false] {
            let url = format!(
                "http://{}/rooms/default/play?name=m{rtt_ms}{predict}&predict={}",
                relay.addr(),
                u8::from(predict)
            );
            let figures = play_with_keys(&browser, &url, 20).await;
            let mut ms: Vec<f64> = figures["measures"]["keyToScreen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["ms"].as_f64().unwrap())
                .collect();
            let mut frames: Vec<u64> = figures["measures"]["keyToScreen"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["frames"].as_u64().unwrap())
                .collect();
            ms.sort_by(f64::total_cmp);
            frames.sort_unstable();
            let at = |q: f64| ((ms.len() - 1) as f64 * q).round() as usize;
            rows.push(format!(
                "| {rtt_ms} ms ({} ± {} ms each way) | {} | {} | {:.1} ms | {:.1} ms | {} | {:.1} ms |",
                rtt_ms / 2,
                rtt_ms / 8,
                if predict { "on" } else { "off" },
                ms.len(),
                ms[at(0.5)],
                ms[at(0.95)],
                frames[frames.len() / 2],
                figures["stats"]["rttSmoothed"].as_f64().unwrap(),
            ));
        }
        relay.stop().await;
        players.iter().for_each(JoinHandle::abort);
    }
    println!(
        "| added round trip | prediction | key presses | key to screen p50 | p95 | animation frames p50 | RTT measured by the page |"
    );
    println!("|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
