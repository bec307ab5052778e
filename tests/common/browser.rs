//! Headless Chromium for the page tests, driven over the DevTools protocol: a browser with a
//! profile of its own, a page, evaluations, key presses; and players that keep moving, so a
//! page has something to show.
//!
//! Needs Chromium (`apt-get install chromium`; `.ci/run` installs it). Without it a test says
//! so and passes, unless `TICKCAST_REQUIRE_BROWSER` is set, as CI sets it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tickcast_relay::{Relay, RelayConfig, Shape};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{TestServer, until_snapshot, within};

pub fn chromium() -> Option<PathBuf> {
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
pub struct Browser {
    child: Child,
    devtools: String,
    _profile: PathBuf,
}

impl Browser {
    /// Launches Chromium with a profile of its own: `name` keeps the tests of one run apart.
    pub fn launch(binary: &PathBuf, name: &str) -> Self {
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
pub struct Page {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    session: Option<String>,
    next_id: u64,
}

impl Page {
    pub async fn open(browser: &Browser, url: &str) -> Self {
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

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.try_call(method, params).await {
            Ok(result) => result,
            Err(error) => panic!("{method}: {error}"),
        }
    }

    /// Sends a DevTools command; its error, if it failed (an evaluation while the page
    /// navigates fails with "Inspected target navigated or closed").
    pub async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, Value> {
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
    pub async fn eval(&mut self, expression: &str) -> Value {
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
    pub async fn eval_async(&mut self, expression: &str) -> Value {
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
    pub async fn wait_for(&mut self, condition: &str) {
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
    pub async fn press(&mut self, key: &str, hold: Duration) {
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
    pub async fn shown(&mut self) -> Value {
        // Polled, also while the page navigates (a link followed): a failed evaluation is
        // `null`, nothing shown yet.
        self.eval(SHOWN).await
    }

    /// The ids of the events the page applied, oldest first (its `window.tickcastApplied`).
    pub async fn applied(&mut self) -> Vec<u64> {
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
    pub async fn until(&mut self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.eval_until(SHOWN, what, done).await
    }

    /// Evaluates `expression` (JSON text) until `done` holds for its value, or fails after a
    /// while: a page cannot be awaited.
    pub async fn eval_until(&mut self, expression: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..100 {
            last = self.eval(expression).await;
            if done(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // the DOM cannot be awaited
        }
        panic!("the page never showed {what}; it showed {last}");
    }
}

/// What the spectator page shows, read from the DOM text it keeps current ([`Page::shown`]).
const SHOWN: &str = r##"JSON.stringify({
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

/// A page's event feed and results panel, as fields of a JSON object (both pages have them):
/// `feed` ([kind, line] per line) and `results` (null while hidden).
pub const FEED_AND_RESULTS: &str = r##"feed: [...document.querySelectorAll("#feed li")].map((li) => [li.dataset.kind, li.textContent]),
    results: document.getElementById("results").hidden ? null : {
      summary: document.getElementById("summary").textContent,
      standings: [...document.querySelectorAll("#standings li")].map((li) => [Number(li.value), li.dataset.name]) }"##;

/// A relay in front of `server` delaying each direction by `delay` ± `jitter`: the page's
/// network, on a port of its own.
pub async fn relayed(server: &TestServer, delay: Duration, jitter: Duration) -> Relay {
    let shape = Shape {
        delay,
        jitter,
        bandwidth: None,
    };
    let config = RelayConfig {
        shape,
        ..RelayConfig::new(server.addr, Duration::ZERO)
    };
    Relay::start(config, CancellationToken::new()).await.unwrap()
}

/// The Chromium to test with, or `None` (and the test passes) when there is none and CI does
/// not require one.
pub fn chromium_or_skip() -> Option<PathBuf> {
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
pub async fn moving_players(server: &TestServer) -> (Vec<u32>, Vec<JoinHandle<()>>) {
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

/// Standard base64 (Chromium's screenshots), without pulling in a crate for it.
pub fn base64_decode(s: &str) -> Vec<u8> {
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
