//! The pages on any screen, in a real browser (headless Chromium, see `common/browser.rs`): at a
//! phone's size (393x851, touch) and a laptop's (1280x800) the play page (arena and tanks) and
//! the spectator page keep their HUD, leaderboard, feed and help line off the world and off each
//! other, within the screen (screenshots in `target/test-artifacts/pages/`); the lobby shows
//! every room's play link on a phone; a touch twin-stick moves a tank and turns its turret; tanks'
//! prediction matches the server to the step, turret included, at 0 and 80 ms of round trip; and
//! every page finds its icon.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::{Browser, Page, base64_decode, chromium_or_skip, moving_players, relayed};
use common::{TestServer, until_snapshot, within};
use serde_json::{Value, json};
use tickcast::client::Client;
use tokio::task::JoinHandle;

/// A phone (a Pixel 7's CSS pixels) and a laptop: `(name, width, height, mobile)`.
const SCREENS: [(&str, u32, u32, bool); 2] = [("phone", 393, 851, true), ("laptop", 1280, 800, false)];

/// The least share of the screen's narrower side the world's canvas spans.
const WORLD_SHARE: f64 = 0.75;

/// A tab at `width` x `height` (a phone's: touch, mobile viewport), then at `url`: the size is
/// set before the page loads, so it sees the screen it is on from the start.
async fn sized(browser: &Browser, url: &str, width: u32, height: u32, mobile: bool) -> Page {
    let mut page = Page::open(browser, "about:blank").await;
    let metrics = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile });
    page.call("Emulation.setDeviceMetricsOverride", metrics).await;
    page.call(
        "Emulation.setTouchEmulationEnabled",
        json!({ "enabled": mobile, "maxTouchPoints": if mobile { 5 } else { 1 } }),
    )
    .await;
    page.call("Page.navigate", json!({ "url": url })).await;
    page
}

/// A room of `game` made through the rooms API: its id and player URL.
async fn room(server: &TestServer, game: &str, options: Value) -> (String, String) {
    let created = common::create_room(server, json!({ "game": game, "seed": 7, "options": options })).await;
    let field = |name: &str| created[name].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    (field("id"), field("ws"))
}

/// A tanks room: its id.
async fn tanks_room(server: &TestServer) -> String {
    room(server, "tanks", json!({})).await.0
}

/// A tank in the room at `ws` that drives to and fro, so a page has it to show.
async fn tank_bot(ws: &str) -> JoinHandle<()> {
    let mut bot = within(Client::connect(ws, "bot")).await.unwrap();
    until_snapshot(&mut bot).await;
    tokio::spawn(async move {
        let mut dx = 127;
        while bot.recv().await.is_ok() {
            if bot.world().is_some_and(|w| w.tick() % 30 == 0) {
                dx = -dx;
                if bot.send_move(dx, 0).await.is_err() {
                    break;
                }
            }
        }
    })
}

/// Where the page's parts are (`getBoundingClientRect`, the visible ones), and the screen.
const BOXES: &str = r##"JSON.stringify((() => {
    const box = (el) => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const parts = {};
    for (const [name, el] of [["hud", document.getElementById("hud")], ["board", document.getElementById("board")],
                              ["talk", document.getElementById("talk")], ["help", document.getElementById("help")],
                              ["world", document.querySelector("canvas")]]) {
      if (el && !el.hidden && el.getClientRects().length) parts[name] = box(el);
    }
    return { parts, width: innerWidth, height: innerHeight, scrollWidth: document.documentElement.scrollWidth,
             help: document.getElementById("help").textContent };
})())"##;

/// Asserts that the page's parts do not overlap and are on the screen, and keeps a screenshot.
async fn assert_laid_out(page: &mut Page, name: &str) -> Value {
    let shown = page.eval(BOXES).await;
    let (width, height) = (shown["width"].as_f64().unwrap(), shown["height"].as_f64().unwrap());
    let parts: Vec<(&String, [f64; 4])> = shown["parts"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k, std::array::from_fn(|i| v[i].as_f64().unwrap())))
        .collect();
    for part in ["hud", "board", "help", "world"] {
        assert!(parts.iter().any(|(k, _)| *k == part), "{name}: no {part}: {shown}");
    }
    for (i, (a, ra)) in parts.iter().enumerate() {
        let [left, top, right, bottom] = *ra;
        assert!(
            left >= 0.0 && right <= width && top >= 0.0 && bottom <= height && right > left && bottom > top,
            "{name}: {a} is not on the {width}x{height} screen: {shown}"
        );
        for (b, rb) in &parts[i + 1..] {
            let apart = ra[2] <= rb[0] || rb[2] <= ra[0] || ra[3] <= rb[1] || rb[3] <= ra[1];
            assert!(apart, "{name}: {a} and {b} overlap: {shown}");
        }
    }
    assert!(
        shown["scrollWidth"].as_f64().unwrap() <= width,
        "{name}: wider than the screen: {shown}"
    );
    // The world gets most of the screen: its canvas spans three quarters of the screen's
    // narrower side at least.
    let world = parts.iter().find(|(k, _)| *k == "world").unwrap().1;
    let side = (world[2] - world[0]).min(world[3] - world[1]);
    assert!(
        side >= width.min(height) * WORLD_SHARE,
        "{name}: the world is squeezed: {shown}"
    );
    screenshot(page, name).await;
    shown
}

/// Saves what the page shows as `target/test-artifacts/pages/{name}.png`.
async fn screenshot(page: &mut Page, name: &str) {
    let shot = page.call("Page.captureScreenshot", json!({ "format": "png" })).await;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .join("test-artifacts/pages");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{name}.png")),
        base64_decode(shot["data"].as_str().unwrap()),
    )
    .unwrap();
}

/// The play page's client is playing, and its panels have something to show.
const PLAYING: &str = "window.tickcastPlay && tickcastPlay.client.status === 'playing' \
    && tickcastPlay.client.stats.frames > 10 && document.querySelectorAll('#leaderboard li').length > 0";

#[tokio::test]
async fn on_a_phone_and_a_laptop_the_panels_sit_around_the_world() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let (_, mut players) = moving_players(&server).await;
    let (tanks, ws) = room(&server, "tanks", json!({})).await;
    players.push(tank_bot(&ws).await);
    let browser = Browser::launch(&binary, "layout");
    for (screen, width, height, mobile) in SCREENS {
        for (game, play) in [
            ("arena", "/play?name=lay".to_owned()),
            ("tanks", format!("/rooms/{tanks}/play?name=lay")),
        ] {
            let mut page = sized(&browser, &server.http_url(&play), width, height, mobile).await;
            page.wait_for(PLAYING).await;
            if game == "tanks" {
                page.wait_for("!document.getElementById('talk').hidden").await;
            }
            let shown = assert_laid_out(&mut page, &format!("play-{game}-{screen}")).await;
            let help = shown["help"].as_str().unwrap();
            match (game, mobile) {
                ("tanks", true) => assert!(!help.contains("mouse") && help.contains("thumb"), "{help}"),
                ("tanks", false) => assert!(help.contains("mouse to aim"), "{help}"),
                (_, true) => assert!(!help.contains("arrows"), "{help}"),
                _ => assert!(help.contains("arrows"), "{help}"),
            }
            page.call("Page.close", json!({})).await;
        }
        for (game, room) in [("arena", "default"), ("tanks", tanks.as_str())] {
            let url = server.http_url(&format!("/rooms/{room}/"));
            let mut page = sized(&browser, &url, width, height, mobile).await;
            page.until("the room live with its players", |s| {
                s["status"] == "live" && s["board"].as_array().is_some_and(|b| !b.is_empty())
            })
            .await;
            assert_laid_out(&mut page, &format!("spectator-{game}-{screen}")).await;
            page.call("Page.close", json!({})).await;
        }
    }
    players.iter().for_each(JoinHandle::abort);
}

#[tokio::test]
async fn on_a_phone_the_lobby_shows_every_room_s_play_link() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    // Besides the default room: tanks rooms with labels (a long game cell), and arena.
    room(&server, "tanks", json!({ "mode": "ffa", "kills": 100 })).await;
    room(&server, "arena", json!({})).await;
    room(&server, "tanks", json!({})).await;
    let browser = Browser::launch(&binary, "lobby-phone");
    let mut page = sized(&browser, &server.http_url("/"), 393, 851, true).await;
    let shown = page
        .eval_until(
            r##"JSON.stringify({
                width: innerWidth, scrollWidth: document.documentElement.scrollWidth,
                rooms: [...document.querySelectorAll("#rooms tr")].map((tr) => {
                  const a = tr.querySelector("a.play"), r = a && a.getBoundingClientRect();
                  return { id: tr.dataset.id, play: r ? [r.left, r.right] : null,
                           cells: [...tr.cells].map((td) => { const b = td.getBoundingClientRect(); return [b.left, b.right]; }) };
                }) })"##,
            "four rooms",
            |s| s["rooms"].as_array().is_some_and(|r| r.len() == 4),
        )
        .await;
    let width = shown["width"].as_f64().unwrap();
    assert!(shown["scrollWidth"].as_f64().unwrap() <= width, "{shown}");
    for room in shown["rooms"].as_array().unwrap() {
        let play = room["play"]
            .as_array()
            .unwrap_or_else(|| panic!("no play link: {shown}"));
        assert!(
            play[0].as_f64().unwrap() >= 0.0 && play[1].as_f64().unwrap() <= width,
            "{shown}"
        );
        for cell in room["cells"].as_array().unwrap() {
            assert!(cell[1].as_f64().unwrap() <= width, "a cell past the screen: {shown}");
        }
    }
    screenshot(&mut page, "lobby-phone").await;
}

/// The own tank as the server has it: `[x, y]` in world units, `aim`, `ammo`; the world's
/// width; whether a shell of its is in flight; the input the page sends.
const OWN_TANK: &str = r#"JSON.stringify((() => {
    const c = tickcastPlay.client, k = c.schema.kinds[0], own = c.world.entities.get(c.playerId);
    const shell = [...c.world.entities.values()].some((e) => e.kind === 1 && e.f[c.schema.kinds[1].index.owner] === c.playerId);
    return { at: [own.f[k.role.x] / c.schema.scale, own.f[k.role.y] / c.schema.scale], aim: own.f[k.index.aim],
             ammo: own.f[k.index.ammo], shell, width: c.schema.width, input: c.input, tick: c.world.tick };
})())"#;

#[tokio::test]
async fn a_touch_twin_stick_moves_a_tank_and_turns_its_turret_and_fires() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let tanks = tanks_room(&server).await;
    let browser = Browser::launch(&binary, "twin-stick");
    let url = server.http_url(&format!("/rooms/{tanks}/play?name=thumbs"));
    let mut page = sized(&browser, &url, 393, 851, true).await;
    page.wait_for(PLAYING).await;
    let before = page.eval(OWN_TANK).await;
    let canvas = page
        .eval(r#"JSON.stringify((() => { const r = document.querySelector("canvas").getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })())"#)
        .await;
    let [left, top, w, h] = std::array::from_fn(|i| canvas[i].as_f64().unwrap());
    // Away from the nearer wall; the right thumb drags straight down: aim 64.
    let x = before["at"][0].as_f64().unwrap();
    let dir = if x > before["width"].as_f64().unwrap() / 2.0 {
        -1.0
    } else {
        1.0
    };
    let (lx, rx, y) = (left + w * 0.25, left + w * 0.75, top + h / 2.0);
    let point = |id: u32, x: f64, y: f64| json!({ "id": id, "x": x, "y": y });
    let touches = [
        ("touchStart", vec![point(0, lx, y)]),
        ("touchStart", vec![point(0, lx, y), point(1, rx, y)]),
        ("touchMove", vec![point(0, lx + 40.0 * dir, y), point(1, rx, y + 40.0)]),
        ("touchMove", vec![point(0, lx + 80.0 * dir, y), point(1, rx, y + 80.0)]),
    ];
    for (kind, points) in touches {
        page.call(
            "Input.dispatchTouchEvent",
            json!({ "type": kind, "touchPoints": points }),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await; // thumbs take their time too
    }
    let held = page
        .eval_until(OWN_TANK, "the tank moving, turned down and firing", |s| {
            s["at"][0].as_f64().is_some_and(|at| (at - x) * dir > 20.0)
                && s["aim"] == 64
                && (s["shell"] == true || s["ammo"].as_u64().is_some_and(|a| a < 5))
        })
        .await;
    assert_eq!(held["input"], json!([127 * dir as i32, 0, 64, 1]), "{held}");
    page.call(
        "Input.dispatchTouchEvent",
        json!({ "type": "touchEnd", "touchPoints": [] }),
    )
    .await;
    // Both thumbs up: the tank stops, its turret stays where it was aimed, the gun is quiet.
    let lifted = page
        .eval_until(OWN_TANK, "the sticks let go", |s| s["input"] == json!([0, 0, 64, 0]))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // the release applied, a few ticks on
    let still = page.eval(OWN_TANK).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // and nothing moves any more
    let after = page.eval(OWN_TANK).await;
    assert_eq!(
        (&still["at"], &after["aim"]),
        (&after["at"], &json!(64)),
        "{lifted} {after}"
    );
    let stats = page.eval("JSON.stringify(tickcastPlay.client.stats)").await;
    assert_eq!(stats["predictionMismatches"], 0, "{stats}");
    screenshot(&mut page, "twin-stick-phone").await;
}

/// Checks every step of the own tank against the server's, all of its predicted fields (x, y
/// and the turret's aim), from the frame before and the input the server applied, as the
/// client's own check does for the position: `window.fullCheck`.
const FULL_CHECK: &str = r#"JSON.stringify((() => {
    const c = tickcastPlay.client, check = window.fullCheck = { checks: 0, mismatches: [], moved: 0, turned: 0 };
    let prev = null;
    c.addEventListener("frame", () => {
      const own = c.world.entities.get(c.playerId);
      if (own && prev && c.world.tick === prev.tick + 1) {
        const predicted = c.predictor.step(prev.f, c.ackedInput, c.ownKind());
        check.checks++;
        if ([0, 1, 2].some((i) => predicted[i] !== own.f[i]) && check.mismatches.length < 10)
          check.mismatches.push({ tick: c.world.tick, predicted: predicted.slice(0, 3), server: own.f.slice(0, 3) });
        if (own.f[0] !== prev.f[0] || own.f[1] !== prev.f[1]) check.moved++;
        if (own.f[2] !== prev.f[2]) check.turned++;
      }
      prev = own ? { tick: c.world.tick, f: own.f.slice() } : null;
    });
    return true;
})())"#;

/// A key held down or let go, as a keyboard does.
async fn key(page: &mut Page, code: &str, down: bool) {
    let vk = match code {
        "ArrowLeft" => 37,
        "ArrowUp" => 38,
        "ArrowRight" => 39,
        _ => 40,
    };
    let kind = if down { "rawKeyDown" } else { "keyUp" };
    let event = json!({ "type": kind, "key": code, "code": code, "windowsVirtualKeyCode": vk });
    page.call("Input.dispatchKeyEvent", event).await;
}

/// The mouse to `radius` px from the own tank on screen, at `turn` of a full turn.
async fn aim_mouse(page: &mut Page, turn: f64, radius: f64) {
    let at = page
        .eval(
            r#"JSON.stringify((() => {
                const own = tickcastPlay.client.view(performance.now()).entities.find((e) => e.own);
                return own ? tickcastPlay.toScreen(own.x, own.y) : null;
            })())"#,
        )
        .await;
    let Some([x, y]) = at.as_array().map(|a| [a[0].as_f64().unwrap(), a[1].as_f64().unwrap()]) else {
        return;
    };
    let angle = turn * std::f64::consts::TAU;
    let event = json!({ "type": "mouseMoved", "x": x + angle.cos() * radius, "y": y + angle.sin() * radius });
    page.call("Input.dispatchMouseEvent", event).await;
}

/// Plays tanks on the page at `url` with keys (alone and two at once) and the mouse (aiming
/// while still and while moving, at the walls too), then checks the prediction.
async fn tanks_predicted(browser: &Browser, url: &str) -> Value {
    let mut page = Page::open(browser, url).await;
    page.wait_for(PLAYING).await;
    assert_eq!(page.eval(FULL_CHECK).await, json!(true));
    let moves: [&[&str]; 8] = [
        &["ArrowRight"],
        &["ArrowDown"],
        &["ArrowLeft", "ArrowUp"],
        &["ArrowLeft"],
        &["ArrowUp"],
        &["ArrowRight", "ArrowDown"],
        &["ArrowDown", "ArrowLeft"],
        &["ArrowUp", "ArrowRight"],
    ];
    for (i, keys) in moves.iter().enumerate() {
        aim_mouse(&mut page, i as f64 / 8.0, 90.0).await;
        for k in *keys {
            key(&mut page, k, true).await;
        }
        // Aiming while moving: a sweep of the turret over the hold.
        for j in 1..=4 {
            tokio::time::sleep(Duration::from_millis(100)).await; // a few ticks of moving
            aim_mouse(&mut page, i as f64 / 8.0 + j as f64 / 16.0, 60.0 + 20.0 * j as f64).await;
        }
        for k in *keys {
            key(&mut page, k, false).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await; // at rest, aimed, before the next
    }
    let figures = page
        .eval(r#"JSON.stringify({ stats: tickcastPlay.client.stats, check: window.fullCheck })"#)
        .await;
    eprintln!("{url}: {figures}");
    page.call("Page.close", json!({})).await;
    figures
}

fn assert_predicted(figures: &Value) {
    let (stats, check) = (&figures["stats"], &figures["check"]);
    assert!(stats["predictionChecks"].as_u64().unwrap() >= 100, "{figures}");
    assert_eq!(stats["predictionMismatches"], 0, "{figures}");
    assert_eq!(stats["predictionMaxError"], 0, "{figures}");
    assert_eq!(check["mismatches"], json!([]), "position or aim off: {figures}");
    assert!(check["checks"].as_u64().unwrap() >= 100, "{figures}");
    assert!(
        check["moved"].as_u64().unwrap() >= 30,
        "the tank hardly moved: {figures}"
    );
    assert!(
        check["turned"].as_u64().unwrap() >= 10,
        "the turret hardly turned: {figures}"
    );
    assert_eq!(
        (&stats["checksumMismatches"], &stats["drifts"]),
        (&json!(0), &json!(0)),
        "{figures}"
    );
}

#[tokio::test]
async fn tanks_prediction_matches_the_server_to_the_step_at_0_and_80_ms() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(tickcast::Config {
        // The page reaches the server through the relay too, a port of its own.
        allowed_origins: vec!["*".into()],
        ..tickcast::Config::defaults()
    })
    .await;
    let tanks = tanks_room(&server).await;
    let browser = Browser::launch(&binary, "tanks-prediction");
    let direct = tanks_predicted(&browser, &server.http_url(&format!("/rooms/{tanks}/play?name=near"))).await;
    assert_predicted(&direct);
    // 40 ms ± 10 ms each way: a round trip of 80 ms ± 20 ms.
    let relay = relayed(&server, Duration::from_millis(40), Duration::from_millis(10)).await;
    let url = format!("http://{}/rooms/{tanks}/play?name=far", relay.addr());
    let far = tanks_predicted(&browser, &url).await;
    assert_predicted(&far);
    let rtt = far["stats"]["rttSmoothed"].as_f64().unwrap();
    assert!(
        (60.0..=140.0).contains(&rtt),
        "the relay's round trip was not felt: {far}"
    );
    relay.stop().await;
}

#[tokio::test]
async fn every_page_finds_its_icon() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let browser = Browser::launch(&binary, "favicon");
    for path in [
        "/",
        "/rooms/default/",
        "/rooms/default/play?name=icon",
        "/play?name=icon",
    ] {
        let mut page = Page::open(&browser, &server.http_url(path)).await;
        page.wait_for("document.readyState === 'complete' && document.querySelector('link[rel=icon]')")
            .await;
        let fetched = page
            .eval_async(
                r#"(async () => {
                    const href = document.querySelector('link[rel="icon"]').href;
                    const status = async (url) => (await fetch(url, { cache: "no-store" })).status;
                    return JSON.stringify({ href, icon: await status(href), ico: await status("/favicon.ico") });
                })()"#,
            )
            .await;
        assert_eq!(
            (&fetched["icon"], &fetched["ico"]),
            (&json!(200), &json!(200)),
            "{path}: {fetched}"
        );
        assert_eq!(fetched["href"], server.http_url("/favicon.svg"), "{path}");
        page.call("Page.close", json!({})).await;
    }
    let icon = reqwest::get(server.http_url("/favicon.ico")).await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
}

#[tokio::test]
async fn a_spectator_clicks_a_player_to_follow_it_and_zooms() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::at(30).await;
    let mut ann = server.player("ann").await;
    common::until_snapshot(&mut ann).await;
    let id = ann.player_id();
    let keep = tokio::spawn(async move { while ann.recv().await.is_ok() {} });
    let browser = Browser::launch(&binary, "follow");
    let mut page = sized(&browser, &server.http_url("/rooms/default/"), 1280, 800, false).await;
    page.wait_for("window.tickcastPage && window.tickcastApplied.length > 0")
        .await;
    let everything = page
        .eval("JSON.stringify(document.querySelectorAll('#leaderboard li').length)")
        .await;
    assert_eq!(everything, json!(1), "ann is listed");
    // Click ann where she is drawn.
    let spot = page
        .eval(&format!(
            r#"JSON.stringify((() => {{ const r = document.querySelector("canvas").getBoundingClientRect();
                const e = window.tickcastPage.entity({id});
                const [x, y] = window.tickcastPage.toScreen(e.px, e.py);
                return [r.left + x, r.top + y]; }})())"#
        ))
        .await;
    let (x, y) = (spot[0].as_f64().unwrap(), spot[1].as_f64().unwrap());
    for kind in ["mousePressed", "mouseReleased"] {
        page.call(
            "Input.dispatchMouseEvent",
            json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
        )
        .await;
    }
    let source = page
        .eval_until(
            "JSON.stringify(window.tickcastPage.source())",
            "the stream of ann's square",
            |s| {
                s.as_str()
                    .is_some_and(|s| s.contains(&format!("follow={id}&w=400&h=400")))
            },
        )
        .await;
    assert!(source.as_str().unwrap().contains("/rooms/default/events?"), "{source}");
    // The page now holds ann's square only: fewer orbs than the world's 100, all near her.
    let square = page
        .eval_until(
            &format!("JSON.stringify(window.tickcastPage.near({id}, 200))"),
            "only ann's square held",
            |v| v["all"].as_bool() == Some(true) && v["count"].as_u64().is_some_and(|n| (1..101).contains(&n)),
        )
        .await;
    assert!(square["count"].as_u64().unwrap() < 101, "{square}");
    // `+` zooms in: a smaller square.
    page.press("Equal", std::time::Duration::from_millis(30)).await;
    page.eval_until(
        "JSON.stringify(window.tickcastPage.source())",
        "a smaller square",
        |s| s.as_str().is_some_and(|s| s.contains("&w=267&h=267")),
    )
    .await;
    screenshot(&mut page, "spectator-following").await;
    keep.abort();
}
