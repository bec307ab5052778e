//! The rooms layer's attacks (the "safe to expose" run): closing others' rooms, holding every
//! place, filling the room cap, cross-site writes, locking out spectators, matchmaking under
//! another's name, a room list rebuilt per request, fast rooms for free. Each from loopback,
//! against the real server with its default flags unless the attack needs another.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde_json::{Value, json};
use tickcast::Config;
use tickcast::client::{Client, ClientError};
use tickcast::protocol::{Hello, PROTOCOL_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::common::{TestServer, until_snapshot, within};

/// Loopback address `127.0.0.n`: another client, as far as the server can tell.
fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// An HTTP client whose connections come from `from`.
fn http_from(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder().local_address(from).build().unwrap()
}

/// `method path` with a JSON body from `http`, with a credential; the status, `Retry-After`
/// and the JSON answer.
async fn call(
    http: &reqwest::Client,
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    bearer: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = http
        .request(method.parse().unwrap(), server.http_url(path))
        .header("content-type", "application/json");
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    if let Some(bearer) = bearer {
        req = req.bearer_auth(bearer);
    }
    let res = within(req.send()).await.unwrap();
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let text = res.text().await.unwrap();
    (status, retry, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn nobody_closes_a_room_without_its_key_or_the_admin_secret() {
    for admin_secret in [None, Some("adm1n")] {
        let server = TestServer::start(Config {
            admin_secret: admin_secret.map(Into::into),
            ..Config::defaults()
        })
        .await;
        let http = reqwest::Client::new();
        let (status, _, room) = call(
            &http,
            &server,
            "POST",
            "/rooms",
            Some(json!({"game": "arena"})),
            admin_secret,
        )
        .await;
        assert_eq!(status, 201, "{room}");
        let key = room["key"].as_str().expect("a key, once").to_owned();
        let path = format!("/rooms/{}", room["id"].as_str().unwrap());
        let (_, _, shown) = call(&http, &server, "GET", &path, None, None).await;
        assert!(shown.get("key").is_none(), "the key is shown to others: {shown}");

        let (status, _, error) = call(&http, &server, "DELETE", &path, None, None).await;
        assert_eq!(status, 401, "{admin_secret:?}: {error}");
        let (status, _, _) = call(&http, &server, "DELETE", &path, None, Some("guess")).await;
        assert_eq!(status, 403, "{admin_secret:?}");
        let (status, _, _) = call(&http, &server, "DELETE", "/rooms/default", None, Some(&key)).await;
        assert_eq!(status, 403, "a room's key opens that room only");
        let (status, _, _) = call(&http, &server, "DELETE", &path, None, Some(&key)).await;
        assert_eq!(status, 204, "{admin_secret:?}");
        assert_eq!(server.metrics.rooms_closed(tickcast::protocol::ended::Ended::Closed), 1);
    }
}

#[tokio::test]
async fn one_address_holds_at_most_its_budget_of_places_and_players_still_join() {
    let server = TestServer::start(Config {
        max_players: 16,
        ..Config::defaults()
    })
    .await;
    let http = reqwest::Client::new();
    let mut held = 0;
    let mut refused = 0;
    for i in 0..200 {
        let body = json!({"game": "arena", "name": format!("squat{i}")});
        match call(&http, &server, "POST", "/matchmake", Some(body), None).await {
            (200, _, _) => held += 1,
            (429, retry, _) => {
                assert!(retry.is_some(), "a 429 says when to come back");
                refused += 1;
            }
            (status, _, error) => panic!("{status}: {error}"),
        }
    }
    assert_eq!(
        (held, refused),
        (8, 192),
        "one address holds its budget of places, no more"
    );
    // Holds never take more than half a room's free places: a player joins the default room
    // (which holds 8 of its 16) and finds a place, and so do seven more.
    let mut players = Vec::new();
    for i in 0..8 {
        let mut player = within(Client::connect(&server.ws_url(), &format!("real{i}")))
            .await
            .unwrap_or_else(|err| panic!("player {i} was refused: {err}"));
        until_snapshot(&mut player).await;
        players.push(player);
    }
    // Each of those players took a place no hold had: the room is now full.
    let full = within(Client::connect(&server.ws_url(), "late")).await.err();
    assert!(matches!(full, Some(ClientError::Closed { code: 1013, .. })), "{full:?}");

    // Another address has its own budget; a name already held is answered with its hold,
    // its deadline unchanged (no renewal by asking again).
    let other = http_from(loopback(2));
    let ask = || {
        call(
            &other,
            &server,
            "POST",
            "/matchmake",
            Some(json!({"game": "arena", "name": "dup"})),
            None,
        )
    };
    let (status, _, first) = ask().await;
    assert_eq!(status, 200, "{first}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, _, again) = ask().await;
    assert_eq!(
        (again["room"].clone(), again["expires"].clone()),
        (first["room"].clone(), first["expires"].clone())
    );
    // A name playing in a room is not held there again.
    let (status, _, playing) = call(
        &other,
        &server,
        "POST",
        "/matchmake",
        Some(json!({"game": "arena", "name": "real0"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{playing}");
    assert_ne!(playing["room"], json!("default"), "held where real0 plays: {playing}");
}

#[tokio::test]
async fn anonymous_rooms_keep_to_their_share_their_rate_and_60_hz() {
    let server = TestServer::start(Config {
        max_rooms: 41,
        ..Config::defaults()
    })
    .await;
    // Four addresses create what they can: the default room and 30 anonymous rooms fill
    // three quarters of 41 (30), and the rest of the cap waits for the admin.
    let mut created = 0;
    let mut last = (0, None, Value::Null);
    for n in 1..=4 {
        let http = http_from(loopback(n));
        for _ in 0..10 {
            last = call(&http, &server, "POST", "/rooms", Some(json!({"game": "arena"})), None).await;
            if last.0 == 201 {
                created += 1;
            }
        }
    }
    assert_eq!(created, 30, "{last:?}");
    assert_eq!(last.0, 503, "{last:?}");
    assert!(last.2["error"].as_str().unwrap().contains("share"), "{last:?}");
    assert!(last.1.is_some(), "a 503 says when to come back");
    // Matchmaking cannot open one either (no room of tanks exists), from a fresh address.
    let (status, _, error) = call(
        &http_from(loopback(5)),
        &server,
        "POST",
        "/matchmake",
        Some(json!({"game": "tanks", "name": "t"})),
        None,
    )
    .await;
    assert_eq!(status, 503, "{error}");
    assert!(error["error"].as_str().unwrap().contains("share"), "{error}");

    // Per address: ten at once, then the rate, whose Retry-After is the truth.
    let server = TestServer::at(30).await;
    let http = reqwest::Client::new();
    for _ in 0..10 {
        assert_eq!(
            call(&http, &server, "POST", "/rooms", Some(json!({"game": "arena"})), None)
                .await
                .0,
            201
        );
    }
    let (status, retry, error) = call(&http, &server, "POST", "/rooms", Some(json!({"game": "arena"})), None).await;
    assert_eq!(status, 429, "{error}");
    let wait: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, error) = call(&http, &server, "POST", "/rooms", Some(json!({"game": "arena"})), None).await;
    assert_eq!(status, 201, "a client that obeys Retry-After gets through: {error}");

    // Anonymous rooms tick at most 60 times a second; the admin's up to 240.
    let (status, _, error) = call(
        &http_from(loopback(3)),
        &server,
        "POST",
        "/rooms",
        Some(json!({"game": "arena", "tick_hz": 240})),
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("60"), "{error}");
    let admin = TestServer::start(Config {
        admin_secret: Some("adm1n".into()),
        ..Config::defaults()
    })
    .await;
    let (status, _, _) = call(
        &http,
        &admin,
        "POST",
        "/rooms",
        Some(json!({"game": "arena", "tick_hz": 240})),
        Some("adm1n"),
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn with_an_admin_secret_anonymous_callers_open_no_room_by_any_path() {
    let config = Config {
        admin_secret: Some("adm1n".into()),
        no_default_room: true,
        ..Config::defaults()
    };
    let server = TestServer::start(config.clone()).await;
    let http = reqwest::Client::new();
    let (status, _, _) = call(&http, &server, "POST", "/rooms", Some(json!({"game": "arena"})), None).await;
    assert_eq!(status, 401);
    let mm = json!({"game": "arena", "name": "ann"});
    let (status, retry, error) = call(&http, &server, "POST", "/matchmake", Some(mm.clone()), None).await;
    assert_eq!(status, 503, "{error}");
    assert!(retry.is_some());
    assert!(
        error["error"].as_str().unwrap().contains("opened by the admin"),
        "{error}"
    );
    assert_eq!(server.metrics.rooms_created.get(), 0);
    // An open room is joined.
    let (status, _, room) = call(
        &http,
        &server,
        "POST",
        "/rooms",
        Some(json!({"game": "arena"})),
        Some("adm1n"),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, place) = call(&http, &server, "POST", "/matchmake", Some(mm.clone()), None).await;
    assert_eq!((status, place["room"].clone()), (200, room["id"].clone()));
    // Unless the server says anonymous rooms are welcome.
    let open = TestServer::start(Config {
        anonymous_rooms: true,
        ..config
    })
    .await;
    let (status, _, place) = call(&http, &open, "POST", "/matchmake", Some(mm), None).await;
    assert_eq!((status, place["created"].clone()), (200, json!(true)), "{place}");
}

#[tokio::test]
async fn cross_site_writes_are_refused_before_anything_is_done() {
    let server = TestServer::start(Config {
        allowed_origins: vec!["https://friend.example".into()],
        ..Config::defaults()
    })
    .await;
    let http = reqwest::Client::new();
    let room = json!({"game": "arena"}).to_string();
    let post = |path: &str, content_type: &str, origin: Option<&str>| {
        let mut req = http
            .post(server.http_url(path))
            .header("content-type", content_type)
            .body(room.clone());
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        req.send()
    };
    // What a page on any site may send without asking: a text/plain "simple" request.
    for path in ["/rooms", "/matchmake"] {
        let res = within(post(path, "text/plain", Some("https://evil.example")))
            .await
            .unwrap();
        assert_eq!(res.status(), 415, "{path}");
        let res = within(post(path, "text/plain;charset=UTF-8", None)).await.unwrap();
        assert_eq!(res.status(), 415, "{path}");
    }
    let res = within(post("/rooms", "application/json", Some("https://evil.example")))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let delete = within(http.delete(server.http_url("/rooms/default")).bearer_auth("k").send())
        .await
        .unwrap();
    assert_eq!(delete.status(), 415);
    assert_eq!(
        server.metrics.rooms_created.get(),
        1,
        "only the default room was opened"
    );
    // Our own origin and the allowed one may.
    let own = format!("http://{}", server.addr);
    for origin in [own.as_str(), "https://friend.example"] {
        let res = within(post("/rooms", "application/json", Some(origin))).await.unwrap();
        assert_eq!(res.status(), 201, "{origin}");
    }
}

/// Opens an SSE request for `path` from `from`; its status, and the socket (open while kept).
async fn sse_from(addr: SocketAddr, from: IpAddr, path: &str) -> (u16, TcpStream) {
    sse_forwarded(addr, from, path, None).await
}

/// [`sse_from`], saying it was forwarded for `client` (`X-Forwarded-For`).
async fn sse_forwarded(addr: SocketAddr, from: IpAddr, path: &str, client: Option<&str>) -> (u16, TcpStream) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    let mut tcp = within(socket.connect(addr)).await.unwrap();
    let forwarded = client.map_or(String::new(), |c| format!("x-forwarded-for: {c}\r\n"));
    let head = format!("GET {path} HTTP/1.1\r\nhost: t\r\n{forwarded}accept: text/event-stream\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        within(tcp.read_exact(&mut byte)).await.unwrap();
        line.push(byte[0]);
    }
    let status = String::from_utf8_lossy(&line)[9..12].parse().unwrap();
    (status, tcp)
}

#[tokio::test]
async fn one_address_cannot_lock_every_spectator_out() {
    let server = TestServer::start(Config {
        max_spectators: 120,
        ..Config::defaults()
    })
    .await;
    let http = reqwest::Client::new();
    let (_, _, private) = call(
        &http,
        &server,
        "POST",
        "/rooms",
        Some(json!({"game": "arena", "private": true})),
        None,
    )
    .await;
    let path = format!("/rooms/{}/events", private["id"].as_str().unwrap());
    // One address opens streams on one private, empty room until refused: 50 of them.
    let mut streams = Vec::new();
    let refused = loop {
        let (status, tcp) = sse_from(server.addr, loopback(1), &path).await;
        if status != 200 {
            break (status, tcp);
        }
        streams.push(tcp);
        assert!(streams.len() <= 60, "never refused");
    };
    assert_eq!((streams.len(), refused.0), (50, 503));
    // Another address watches that room and any other.
    let (status, _watching) = sse_from(server.addr, loopback(2), &path).await;
    assert_eq!(status, 200);
    let (status, _default) = sse_from(server.addr, loopback(2), "/events").await;
    assert_eq!(status, 200);
    // Half of --max-spectators per room: a third address finds the private room full at 60.
    let mut more = Vec::new();
    let status = loop {
        let (status, tcp) = sse_from(server.addr, loopback(3), &path).await;
        if status != 200 {
            break status;
        }
        more.push(tcp);
    };
    assert_eq!((status, more.len()), (503, 9), "50 + 1 + 9 = the room's 60");
    // Streams that close free their places when the close arrives, though the room is idle
    // and nothing is written to them.
    drop(streams);
    let freed = tokio::time::Instant::now();
    loop {
        let (status, tcp) = sse_from(server.addr, loopback(1), &path).await;
        if status == 200 {
            drop(tcp);
            break;
        }
        assert!(freed.elapsed() < Duration::from_secs(2), "the places stayed taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn with_join_tokens_matchmaking_wants_proof_of_the_name() {
    let secret = "s3cret";
    let server = TestServer::start(Config {
        auth_secret: Some(secret.into()),
        ..Config::defaults()
    })
    .await;
    let http = reqwest::Client::new();
    let matchmake = |name: &str, identity: Option<String>| {
        let mut body = json!({"game": "arena", "name": name});
        if let Some(identity) = identity {
            body["identity"] = json!(identity);
        }
        call(&http, &server, "POST", "/matchmake", Some(body), None)
    };
    // The attacker asks for the victim's name: no token, no hold.
    let (status, _, answer) = matchmake("victim", None).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer.get("token").is_none());
    let stolen = tickcast::auth::mint_identity(secret.as_bytes(), "attacker", u64::MAX);
    assert_eq!(
        matchmake("victim", Some(stolen)).await.0,
        401,
        "another name's identity"
    );
    // The victim, with its backend's identity token, gets its place and plays.
    let identity = tickcast::auth::mint_identity(secret.as_bytes(), "victim", u64::MAX);
    let (status, _, place) = matchmake("victim", Some(identity)).await;
    assert_eq!(status, 200, "{place}");
    let hello = Hello {
        version: PROTOCOL_VERSION,
        name: "victim".into(),
        token: place["token"].as_str().unwrap().into(),
        resume: String::new(),
        options: Vec::new(),
    };
    let mut victim = within(Client::connect_with(place["ws"].as_str().unwrap(), hello))
        .await
        .unwrap();
    until_snapshot(&mut victim).await;
    // The admin may matchmake for anyone.
    let admin = TestServer::start(Config {
        auth_secret: Some(secret.into()),
        admin_secret: Some("adm1n".into()),
        ..Config::defaults()
    })
    .await;
    let (status, _, place) = call(
        &http,
        &admin,
        "POST",
        "/matchmake",
        Some(json!({"game": "arena", "name": "x"})),
        Some("adm1n"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(place["token"].is_string());
}

#[tokio::test]
async fn the_room_list_comes_in_pages_built_at_most_once_a_second() {
    let server = TestServer::start(Config {
        admin_secret: Some("adm1n".into()),
        ..Config::defaults()
    })
    .await;
    let http = reqwest::Client::new();
    for i in 0..150 {
        let game = if i % 3 == 0 { "tanks" } else { "arena" };
        let (status, _, _) = call(
            &http,
            &server,
            "POST",
            "/rooms",
            Some(json!({"game": game, "max_players": 1})),
            Some("adm1n"),
        )
        .await;
        assert_eq!(status, 201);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let builds = server.metrics.room_list_builds.get();
    let get = |query: String| {
        let http = http.clone();
        let url = server.http_url(&format!("/rooms{query}"));
        async move {
            let res = within(http.get(url).send()).await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Pages of at most 100, oldest first, every room once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map_or(String::new(), |c| format!("?cursor={c}"));
        let (status, page) = get(query).await;
        assert_eq!(status, 200, "{page}");
        let rooms = page["rooms"].as_array().unwrap();
        assert!(rooms.len() <= 100);
        seen.extend(rooms.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 151, "every room once");
    assert_eq!(seen[0], "default");
    seen.dedup();
    assert_eq!(seen.len(), 151);
    // Filters, and bad queries said so.
    let (_, tanks) = get("?game=tanks&limit=100".into()).await;
    assert_eq!(tanks["rooms"].as_array().unwrap().len(), 50);
    assert!(tanks["rooms"].as_array().unwrap().iter().all(|r| r["game"] == "tanks"));
    let (_, joinable) = get("?joinable=true".into()).await;
    assert!(
        joinable["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["joinable"] == true)
    );
    for bad in ["?limit=0", "?limit=101", "?cursor=nonsense", "?colour=red"] {
        assert_eq!(get(bad.into()).await.0, 400, "{bad}");
    }
    // Fifty requests within a second: the list was built once or twice for all of them, and
    // one address gets its budget of listings, then 429s that say when to come back.
    let started = tokio::time::Instant::now();
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..50 {
        *statuses.entry(get(String::new()).await.0).or_insert(0) += 1;
    }
    let took = started.elapsed();
    let built = server.metrics.room_list_builds.get() - builds;
    assert!(built <= took.as_secs() + 2, "{built} builds in {took:?}");
    assert!(statuses.get(&429).is_some_and(|n| *n > 0), "{statuses:?}");
    let res = within(http.get(server.http_url("/rooms")).send()).await.unwrap();
    if res.status() == 429 {
        assert!(res.headers().contains_key("retry-after"));
    }
}

#[tokio::test]
async fn a_listing_answer_never_grows_with_the_number_of_rooms() {
    // 400 rooms: the first page is still 100 of them.
    let server = TestServer::start(Config {
        admin_secret: Some("adm1n".into()),
        max_rooms: 2000,
        ..Config::defaults()
    })
    .await;
    let http = reqwest::Client::new();
    for _ in 0..400 {
        let (status, _, _) = call(
            &http,
            &server,
            "POST",
            "/rooms",
            Some(json!({"game": "arena"})),
            Some("adm1n"),
        )
        .await;
        assert_eq!(status, 201);
    }
    let res = within(http.get(server.http_url("/rooms")).send()).await.unwrap();
    let body = res.bytes().await.unwrap();
    let page: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(page["rooms"].as_array().unwrap().len(), 100);
    assert!(body.len() < 40_000, "{} bytes", body.len());
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_budget() {
    for trusted in [false, true] {
        let server = TestServer::start(Config {
            max_spectators_per_address: 2,
            trusted_proxies: if trusted {
                vec!["127.0.0.1".parse().unwrap()]
            } else {
                Vec::new()
            },
            ..Config::defaults()
        })
        .await;
        // Three clients behind the proxy at 127.0.0.1, two streams each.
        let mut streams = Vec::new();
        let mut refused = 0;
        for client in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
            for _ in 0..2 {
                match sse_forwarded(server.addr, loopback(1), "/events", Some(client)).await {
                    (200, tcp) => streams.push(tcp),
                    (503, _) => refused += 1,
                    (status, _) => panic!("{status}"),
                }
            }
        }
        if trusted {
            assert_eq!((streams.len(), refused), (6, 0), "each client its own two");
        } else {
            assert_eq!(
                (streams.len(), refused),
                (2, 4),
                "a header nobody vouches for is not believed"
            );
        }
    }
}
