//! Cross-origin requests: the client module is public code, any page may import it; the rooms
//! API answers CORS and preflights for the origins that may open player sockets (the
//! server's own and `--allowed-origins`), and nothing for the others.

mod common;

use common::{TestServer, within};
use reqwest::header::{ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, VARY};
use reqwest::{Method, Response};
use tickcast::Config;

const ALLOWED: &str = "http://play.example";
const FOREIGN: &str = "http://evil.example";

async fn server() -> TestServer {
    TestServer::start(Config {
        allowed_origins: vec![ALLOWED.into()],
        ..Config::defaults()
    })
    .await
}

async fn send(server: &TestServer, method: Method, path: &str, origin: &str) -> Response {
    let req = reqwest::Client::new()
        .request(method.clone(), server.http_url(path))
        .header("origin", origin);
    let req = match method {
        Method::OPTIONS => req
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type"),
        Method::POST => req
            .header("content-type", "application/json")
            .body(r#"{"game": "arena", "name": "ann"}"#),
        _ => req,
    };
    within(req.send()).await.unwrap()
}

fn allow_origin(res: &Response) -> Option<&str> {
    res.headers()
        .get(ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_client_module_is_importable_from_any_origin() {
    let server = server().await;
    for path in ["/tickcast.js", "/tickcast-wire.js", "/tickcast-world.js"] {
        let res = send(&server, Method::GET, path, FOREIGN).await;
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(allow_origin(&res), Some("*"), "{path}");
    }
}

#[tokio::test]
async fn allowed_origins_read_and_matchmake_through_the_rooms_api_and_others_cannot() {
    let server = server().await;
    let own = format!("http://{}", server.addr);
    for origin in [ALLOWED, own.as_str()] {
        // The preflight a POST with a JSON body needs.
        let res = send(&server, Method::OPTIONS, "/matchmake", origin).await;
        assert_eq!(res.status(), 204, "{origin}");
        assert_eq!(allow_origin(&res), Some(origin));
        let methods = res.headers()[ACCESS_CONTROL_ALLOW_METHODS].to_str().unwrap();
        assert!(methods.contains("POST") && methods.contains("GET"), "{methods}");
        let headers = res.headers()[ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
        assert!(headers.contains("content-type"), "{headers}");
        // Reads and matchmaking are readable by the page.
        for (method, path) in [
            (Method::GET, "/rooms"),
            (Method::GET, "/rooms/default"),
            (Method::POST, "/matchmake"),
        ] {
            let res = send(&server, method.clone(), path, origin).await;
            assert_eq!(res.status(), 200, "{method} {path} from {origin}");
            assert_eq!(allow_origin(&res), Some(origin), "{method} {path}");
            assert!(res.headers().get_all(VARY).iter().any(|v| v == "origin"));
        }
    }

    // Another site: its preflight is refused with the reason, its reads carry no CORS header
    // (its page cannot read them), its writes are refused.
    let res = send(&server, Method::OPTIONS, "/rooms", FOREIGN).await;
    assert_eq!(res.status(), 403);
    assert_eq!(allow_origin(&res), None);
    assert!(res.text().await.unwrap().contains("is not allowed"));
    let res = send(&server, Method::GET, "/rooms/default", FOREIGN).await;
    assert_eq!((res.status().as_u16(), allow_origin(&res)), (200, None));
    let res = send(&server, Method::POST, "/matchmake", FOREIGN).await;
    assert_eq!((res.status().as_u16(), allow_origin(&res)), (403, None));
}
