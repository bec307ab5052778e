//! The spectator page and the lobby in a real browser (headless Chromium, see
//! `common/browser.rs`): the page must show the live players of a running server, over SSE and
//! over long-polling, draw any game from its schema with its players' names, its public events
//! and its matches' results, and its long-polling fallback must keep up across a 150 ms round
//! trip (through `tickcast-relay`); the lobby lists rooms, with their labels, and links to them.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::browser::{Browser, FEED_AND_RESULTS, Page, base64_decode, chromium_or_skip, moving_players, relayed};
use common::sse::{SseClient, tick_of};
use common::{TestServer, duel, until_snapshot, within};
use serde_json::{Value, json};
use tickcast::client::Client;
use tokio::task::JoinHandle;
use tokio::time::Instant;

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
    let relay = relayed(&server, Duration::from_millis(75), Duration::from_millis(10)).await;

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

/// Polls the spectator page until `done` holds for what it shows besides the world, read from
/// its DOM: the leaderboard's names, the feed's lines, the results.
async fn talk_until(page: &mut Page, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let talk = format!(
        r##"JSON.stringify({{ transport: document.getElementById("transport").textContent,
            names: [...document.querySelectorAll("#leaderboard li")].map((li) => li.dataset.name).sort(),
            {FEED_AND_RESULTS} }})"##
    );
    page.eval_until(&talk, what, done).await
}

/// A tanks room for one kill, created through the rooms API, whose match ends as `after_match`
/// says (`restart`: matches follow each other; `close`); its id and player URL.
async fn tanks_room(server: &TestServer, after_match: &str) -> (String, String) {
    let body = json!({ "game": "tanks", "seed": 7, "options": { "kills": 1 }, "after_match": after_match });
    let created = common::create_room(server, body).await;
    let field = |name: &str| created[name].as_str().unwrap_or_else(|| panic!("{created}")).to_owned();
    (field("id"), field("ws"))
}

/// ann and bob in the room at `ws`, ann joining first (so ann is red, bob blue), ann firing at
/// bob until either leaves.
async fn ann_fires_at_bob(ws: &str) -> JoinHandle<()> {
    let shooter = within(Client::connect(ws, "ann")).await.unwrap();
    let target = within(Client::connect(ws, "bob")).await.unwrap();
    tokio::spawn(duel(shooter, target))
}

/// A small world, so shells reach their target within their one-second flight.
async fn small_world() -> TestServer {
    TestServer::start(tickcast::Config {
        world_size: 200,
        ..tickcast::Config::defaults()
    })
    .await
}

/// Tanks, drawn from its schema, over SSE and over long-polling: both tanks by name with their
/// health labels, shells in flight, and the game's public events as lines (hits).
#[tokio::test]
async fn the_page_draws_any_game_from_its_schema_tanks_with_names_shells_health_and_hits() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = small_world().await;
    let (room, ws) = tanks_room(&server, "restart").await;
    let fighting = ann_fires_at_bob(&ws).await;

    let browser = Browser::launch(&binary, "tanks");
    for (query, transport) in [("", "SSE"), ("?transport=longpoll", "long-poll")] {
        let mut page = Page::open(&browser, &server.http_url(&format!("/rooms/{room}/{query}"))).await;
        let shown = page
            .until(&format!("both tanks, a shell in flight and a hit over {transport}"), |s| {
                s["status"] == "live"
                    && s["transport"] == transport
                    && s["tanks"] == 2
                    && s["shells"].as_u64().is_some_and(|n| n >= 1)
                    // health is tanks' label: one below 100 is a hit the page followed
                    && s["labels"]
                        .as_array()
                        .is_some_and(|l| l.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("health ") && l != "health 100")))
            })
            .await;
        assert_eq!(shown["game"], "tanks");
        assert!(shown["orbs"].is_null(), "no kind of another game: {shown}");
        talk_until(&mut page, &format!("names and a hit over {transport}"), |s| {
            s["names"] == json!(["ann", "bob"])
                && s["feed"]
                    .as_array()
                    .is_some_and(|f| f.contains(&json!(["hit", "hit · target 2 · by 1"])))
        })
        .await;
    }
    fighting.abort();
}

/// The end of a match, over SSE and over long-polling: the kill that won it in the feed, then
/// its results (`ended`), then the room closing (`closed`, "match over").
#[tokio::test]
async fn the_page_shows_the_kill_that_ends_a_match_and_its_results() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = small_world().await;
    let browser = Browser::launch(&binary, "tanks-ended");
    for (query, transport) in [("", "SSE"), ("?transport=longpoll", "long-poll")] {
        // A room each, which closes at the end of its match; the page follows it from the start.
        let (room, ws) = tanks_room(&server, "close").await;
        let mut page = Page::open(&browser, &server.http_url(&format!("/rooms/{room}/{query}"))).await;
        page.until(&format!("the room live over {transport}"), |s| {
            s["status"] == "live" && s["transport"] == transport
        })
        .await;
        let fighting = ann_fires_at_bob(&ws).await;
        let shown = talk_until(&mut page, &format!("the kill and the results over {transport}"), |s| {
            s["feed"]
                .as_array()
                .is_some_and(|f| f.contains(&json!(["kill", "ann destroyed bob"])))
                && !s["results"].is_null()
        })
        .await;
        assert_eq!(
            shown["results"],
            json!({ "summary": "red wins 1 to 0", "standings": [[1, "ann"], [2, "bob"]] })
        );
        // Its reason, or (a long-poll that comes once the room is gone gets a 404) that it closed.
        page.until("the room closed", |s| {
            s["status"] == "match over" || s["status"] == "room closed"
        })
        .await;
        fighting.abort();
    }
}

#[tokio::test]
async fn the_lobby_pages_through_the_rooms_and_links_to_each_live_room() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(tickcast::Config {
        admin_secret: Some("adm1n".into()),
        ..tickcast::Config::defaults()
    })
    .await;
    // More rooms than a page (50) holds, the default room first: the newest, a tanks room, is
    // on page two.
    let http = reqwest::Client::new();
    let mut created = Value::Null;
    for n in 0..55 {
        created = http
            .post(server.http_url("/rooms"))
            .bearer_auth("adm1n")
            .json(&json!({ "game": if n < 54 { "arena" } else { "tanks" } }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    let room = created["id"].as_str().unwrap().to_owned();
    let mut player = within(Client::connect(created["ws"].as_str().unwrap(), "cat"))
        .await
        .unwrap();
    let id = player.player_id();
    until_snapshot(&mut player).await;
    let playing = tokio::spawn(async move { while player.recv().await.is_ok() {} });

    let browser = Browser::launch(&binary, "lobby");
    let mut page = Page::open(&browser, &server.http_url("/")).await;
    let rows = r##"JSON.stringify([...document.querySelectorAll("#rooms tr")].map(tr => tr.dataset.id))"##;
    let listed_until = async |page: &mut Page, what: &str, done: &dyn Fn(&[Value]) -> bool| {
        let mut listed = Value::Null;
        for _ in 0..100 {
            listed = page.eval(rows).await;
            if listed.as_array().is_some_and(|ids| done(ids)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // the DOM cannot be awaited
        }
        panic!("the lobby never listed {what}: {listed}");
    };
    listed_until(&mut page, "a first page of 50", &|ids| {
        ids.len() == 50 && ids[0] == json!("default") && !ids.contains(&json!(room))
    })
    .await;
    page.eval(r##"JSON.stringify(document.querySelector("#next").click())"##)
        .await;
    listed_until(&mut page, "the newest room on the second page", &|ids| {
        ids.len() == 6 && ids.last() == Some(&json!(room))
    })
    .await;
    // Its game, with what the game says of it: tanks' label `mode`.
    let cell = format!(
        r##"JSON.stringify(document.querySelector('#rooms tr[data-id="{room}"] td:nth-child(2)').textContent)"##
    );
    let shown = page.eval(&cell).await;
    let game = shown.as_str().unwrap_or_default();
    assert!(
        game.starts_with("tanks · ") && game.contains(" · mode teams"),
        "{shown}"
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
    assert_eq!(shown["tanks"], 1);
    let location = page.eval("JSON.stringify(location.pathname)").await;
    assert_eq!(location, json!(format!("/rooms/{room}/")));
    playing.abort();
}
