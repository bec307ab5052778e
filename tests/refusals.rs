//! Refusals a player can read, in a real browser (headless Chromium, see `common/browser.rs`).
//! A browser hides why a WebSocket upgrade was refused (the socket closes 1006, no reason), so
//! when a connection ends before its welcome the JavaScript client asks the server (a plain
//! `GET` of the player URL) and, refused, says why and stops instead of reconnecting for ever:
//! the play page on a foreign origin (403), a room that does not exist (404, from the player
//! URL and from the rooms API), a full room (1013, the hello's close).

mod common;

use std::time::Duration;

use common::TestServer;
use common::browser::{Browser, Page, chromium_or_skip};
use serde_json::{Value, json};
use tickcast::Config;
use tickcast::metrics::CloseReason;

/// What the play page shows of its connection (its status, the refusal's banner when up) and
/// what its client knows.
async fn shown(page: &mut Page) -> Value {
    page.eval(
        r#"JSON.stringify((() => {
            const c = window.tickcastPlay && tickcastPlay.client, banner = document.getElementById("refusal");
            return { status: document.getElementById("status").textContent,
                     banner: banner && !banner.hidden ? banner.textContent : null,
                     client: c && { status: c.status, refusal: c.refusal, reconnects: c.stats.reconnects } };
        })())"#,
    )
    .await
}

/// Polls the play page until its client was refused; what it shows then.
async fn until_refused(page: &mut Page) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = shown(page).await;
        if last["client"]["status"] == "refused" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // the page cannot be awaited
    }
    panic!("the page was never refused; it showed {last}");
}

/// Long enough for the client to have reconnected twice over, had it not stopped (its backoff
/// starts at half a second).
const WOULD_HAVE_RETRIED: Duration = Duration::from_secs(2);

/// The play page of one server pointed (`?server=`) at another, which does not allow the
/// page's origin: the upgrade is refused with 403, which the browser hides; the client asks,
/// the page shows the reason and the code instead of "reconnecting", and no upgrade follows.
/// A server that allows the origin is played from the same page.
#[tokio::test]
async fn a_page_of_a_foreign_origin_shows_it_is_refused_and_stops_trying() {
    let Some(binary) = chromium_or_skip() else { return };
    // The page's server and the game's: two ports, two origins.
    let pages = TestServer::at(30).await;
    let game = TestServer::at(30).await;
    let origin = format!("http://{}", pages.addr);
    let browser = Browser::launch(&binary, "refused-origin");
    let url = pages.http_url(&format!("/play?name=far&server=http://{}", game.addr));
    let mut page = Page::open(&browser, &url).await;
    let refused = until_refused(&mut page).await;
    let reason = format!("origin {origin} is not allowed");
    assert_eq!(
        refused["client"]["refusal"],
        json!({ "code": 403, "reason": reason }),
        "{refused}"
    );
    assert_eq!(refused["banner"], format!("refused: {reason} (403)"), "{refused}");
    assert_eq!(refused["status"], "refused", "{refused}");

    // One upgrade, refused, and none after it.
    tokio::time::sleep(WOULD_HAVE_RETRIED).await; // nothing to await: the absence of retries
    let later = shown(&mut page).await;
    assert_eq!(game.metrics.closes(CloseReason::Origin), 1, "{later}");
    assert_eq!(later["client"]["status"], "refused", "{later}");
    assert_eq!(later["client"]["reconnects"], 0, "{later}");
    assert_eq!(later["banner"], refused["banner"], "{later}");

    // A server that allows the page's origin is played from it, in a room by its path.
    let allowing = TestServer::start(Config {
        allowed_origins: vec![origin],
        ..Config::defaults()
    })
    .await;
    let url = pages.http_url(&format!(
        "/rooms/default/play?name=near&server=http://{}",
        allowing.addr
    ));
    let mut page = Page::open(&browser, &url).await;
    page.wait_for(
        "window.tickcastPlay && tickcastPlay.client.status === 'playing' && tickcastPlay.client.stats.frames > 0",
    )
    .await;
    let playing = shown(&mut page).await;
    assert_eq!(playing["banner"], Value::Null, "{playing}");
    assert_eq!(allowing.metrics.closes(CloseReason::Origin), 0);
}

/// A room that does not exist, 404 each way: the play page pointed at a server without a
/// default room (its upgrade refused, which the browser hides: the client asks) shows the
/// reason; a client given the player URL of an unknown room learns the same by asking, and one
/// given the room's id from the rooms API's lookup; none of them tries again.
#[tokio::test]
async fn an_unknown_room_shows_404_and_the_client_stops() {
    let Some(binary) = chromium_or_skip() else { return };
    let pages = TestServer::at(30).await;
    let roomless = TestServer::start(Config {
        no_default_room: true,
        ..Config::defaults()
    })
    .await;
    let browser = Browser::launch(&binary, "refused-room");
    let url = pages.http_url(&format!("/play?name=lost&server=http://{}", roomless.addr));
    let mut page = Page::open(&browser, &url).await;
    let refused = until_refused(&mut page).await;
    let reason = "this server has no default room (it runs with --no-default-room or --no-rooms): see GET /rooms";
    assert_eq!(
        refused["client"]["refusal"],
        json!({ "code": 404, "reason": reason }),
        "{refused}"
    );
    assert_eq!(refused["banner"], format!("refused: {reason} (404)"), "{refused}");

    // Clients of the module, on the page's own server: by the player URL, and by the room's id.
    let clients = page
        .eval_async(
            r#"(async () => {
                const { Client } = await import(location.origin + "/tickcast.js");
                const refused = (options) => new Promise((resolve) => {
                  const c = new Client({ name: "lost", ...options }), events = [];
                  for (const kind of ["refused", "close"]) c.addEventListener(kind, (ev) => events.push([kind, ev.detail]));
                  c.addEventListener("refused", () => setTimeout(() => resolve({ events, status: c.status,
                    refusal: c.refusal, reconnects: c.stats.reconnects }), 2000)); // time to have retried, had it not stopped
                  c.start();
                });
                const url = location.origin.replace(/^http/, "ws") + "/rooms/nope/ws";
                return JSON.stringify(await Promise.all([refused({ url }), refused({ room: "nope" })]));
            })()"#,
        )
        .await;
    let stopped = |refusal: Value| json!({ "events": [["refused", refusal], ["close", refusal]], "status": "refused", "refusal": refusal, "reconnects": 0 });
    assert_eq!(
        clients,
        json!([
            stopped(json!({ "code": 404, "reason": "no room nope: see GET /rooms" })),
            stopped(json!({ "code": 404, "reason": "no room \"nope\"" })),
        ])
    );
}

/// A full room (a cap of one player, taken): the hello is closed with 1013, which the page
/// shows, and it does not knock again.
#[tokio::test]
async fn a_full_room_shows_1013_and_the_page_does_not_knock_again() {
    let Some(binary) = chromium_or_skip() else { return };
    let server = TestServer::start(Config {
        max_players: 1,
        ..Config::defaults()
    })
    .await;
    let _first = server.player("first").await;
    let browser = Browser::launch(&binary, "refused-full");
    let mut page = Page::open(&browser, &server.http_url("/play?name=second")).await;
    let refused = until_refused(&mut page).await;
    assert_eq!(
        refused["client"]["refusal"],
        json!({ "code": 1013, "reason": "server full" }),
        "{refused}"
    );
    assert_eq!(refused["banner"], "refused: server full (1013)", "{refused}");
    tokio::time::sleep(WOULD_HAVE_RETRIED).await; // nothing to await: the absence of retries
    let later = shown(&mut page).await;
    assert_eq!(server.metrics.closes(CloseReason::Full), 1, "{later}");
    assert_eq!(later["client"]["status"], "refused", "{later}");
    assert_eq!(later["client"]["reconnects"], 0, "{later}");
}
