//! The rooms API as an attacker calls it: raw requests from a chosen loopback address
//! (127.0.0.n: another client, as far as the server's budgets can tell), with any headers, on
//! a kept-alive connection; each answer read as its status, `Retry-After` and JSON. Hand-made
//! because `tickcast::client::rooms_api` is a well-behaved client: it always says JSON, always
//! connects from the system's address and opens a connection per call.
//!
//! Also what the rooms attacks share: tallies of answers, listing every room, and creating
//! many rooms (spread over addresses, as an anonymous caller must; or as the admin, in
//! parallel).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinSet;
use tokio::time::{self, Instant};

use crate::clients::counted::{Dial, Traffic};
use crate::clients::http1::Conn;

/// How long one call (connect, request, answer) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// The most pages [`list_all`] reads.
const MAX_PAGES: usize = 200;
/// The shortest and longest wait on a `Retry-After`: the server says whole seconds, and an
/// attack's deadline is seconds away.
const MIN_WAIT: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(6);

/// Loopback address `127.0.0.n`.
pub(super) fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// One client of the rooms API: one source address, one kept-alive connection, maybe a
/// credential.
#[derive(Debug)]
pub(super) struct Api {
    addr: SocketAddr,
    dial: Dial,
    bearer: Option<String>,
    conn: Option<Conn>,
}

/// One answer.
#[derive(Debug, Clone)]
pub(super) struct Answer {
    /// Its status.
    pub(super) status: u16,
    /// What its `Retry-After` said (whole seconds).
    pub(super) retry_after: Option<Duration>,
    /// Its body as JSON (`Null` when it is not).
    pub(super) json: Value,
}

impl Answer {
    /// The server's `error` message, if it gave one.
    pub(super) fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}

impl Api {
    /// A client of the server at `addr` connecting from 127.0.0.`from`.
    pub(super) fn new(addr: SocketAddr, from: u8) -> Self {
        Self {
            addr,
            dial: Dial {
                source: Some(loopback(from)),
                recv_buffer: None,
            },
            bearer: None,
            conn: None,
        }
    }

    /// The same, sending `Authorization: Bearer <credential>` with every request.
    pub(super) fn with_bearer(mut self, credential: &str) -> Self {
        self.bearer = Some(credential.to_owned());
        self
    }

    /// `GET path`.
    pub(super) async fn get(&mut self, path: &str) -> io::Result<Answer> {
        self.send("GET", path, &[], b"").await
    }

    /// `POST path` with `body` as JSON.
    pub(super) async fn post(&mut self, path: &str, body: &Value) -> io::Result<Answer> {
        let body = body.to_string();
        self.send("POST", path, &[("content-type", "application/json")], body.as_bytes())
            .await
    }

    /// `DELETE path`, saying JSON (the server takes writes only as JSON).
    pub(super) async fn delete(&mut self, path: &str) -> io::Result<Answer> {
        self.send("DELETE", path, &[("content-type", "application/json")], b"")
            .await
    }

    /// `method path` with exactly these headers (and the credential, if any).
    pub(super) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Answer> {
        let authorization = self.bearer.as_ref().map(|b| format!("Bearer {b}"));
        let mut all = headers.to_vec();
        if let Some(authorization) = &authorization {
            all.push(("authorization", authorization));
        }
        // A kept-alive connection the server has closed meanwhile fails at once: one more try
        // on a fresh one. A fresh connection that fails is the answer.
        let reused = self.conn.is_some();
        match self.once(method, path, &all, body).await {
            Err(_) if reused => self.once(method, path, &all, body).await,
            answer => answer,
        }
    }

    async fn once(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Answer> {
        let exchange = async {
            let conn = match &mut self.conn {
                Some(conn) => conn,
                None => self
                    .conn
                    .insert(Conn::dial(self.addr, self.dial, Arc::new(Traffic::default())).await?),
            };
            conn.request(method, path, headers, body).await
        };
        let response = match time::timeout(CALL_TIMEOUT, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                self.conn = None;
                return Err(err);
            }
            Err(_) => {
                self.conn = None;
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer within 5 s"));
            }
        };
        let head = &response.head;
        if head
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        Ok(Answer {
            status: head.status,
            retry_after: head
                .header("retry-after")
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_secs),
            json: serde_json::from_slice(&response.body).unwrap_or(Value::Null),
        })
    }
}

/// How many answers of each status an attack got (`no answer` for calls that failed).
#[derive(Debug, Clone, Default)]
pub(super) struct Tally(BTreeMap<String, u64>);

impl Tally {
    /// Counts `answer`.
    pub(super) fn add(&mut self, answer: &io::Result<Answer>) {
        let key = match answer {
            Ok(answer) => answer.status.to_string(),
            Err(_) => "no answer".to_owned(),
        };
        *self.0.entry(key).or_default() += 1;
    }

    /// Counts an answer of `status` (read by other means than [`Api`]).
    pub(super) fn add_status(&mut self, status: u16) {
        *self.0.entry(status.to_string()).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub(super) fn merge(&mut self, other: &Tally) {
        for (key, n) in &other.0 {
            *self.0.entry(key.clone()).or_default() += n;
        }
    }

    /// Answers of `status`.
    pub(super) fn of(&self, status: u16) -> u64 {
        self.0.get(&status.to_string()).copied().unwrap_or(0)
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let each: Vec<String> = self.0.iter().map(|(status, n)| format!("{status} ×{n}")).collect();
        f.write_str(&each.join(", "))
    }
}

/// Every public room `GET /rooms` lists, following `next` page after page (an older server
/// answers them all at once, without `next`).
pub(super) async fn list_all(api: &mut Api) -> io::Result<Vec<Value>> {
    let mut rooms = Vec::new();
    let mut path = "/rooms".to_owned();
    for _ in 0..MAX_PAGES {
        let answer = api.get(&path).await?;
        if answer.status != 200 {
            return Err(io::Error::other(format!("GET {path} answered {}", answer.status)));
        }
        rooms.extend(answer.json["rooms"].as_array().cloned().unwrap_or_default());
        match answer.json["next"].as_str() {
            // A cursor is `<digits>.<room id>`: nothing in it needs escaping.
            Some(next) => path = format!("/rooms?cursor={next}"),
            None => break,
        }
    }
    Ok(rooms)
}

/// What [`create_spread`] got.
#[derive(Debug, Default)]
pub(super) struct Spread {
    /// The rooms created, as the server answered them.
    pub(super) rooms: Vec<Value>,
    /// Every answer.
    pub(super) answers: Tally,
    /// The answer that stopped it, when one did (a 400 for the body itself, a 401).
    pub(super) stopped_by: Option<Answer>,
    /// The next address it would have used.
    pub(super) next_source: u8,
}

/// Creates up to `want` rooms with `body` and no credential, as a caller with many addresses
/// would: from 127.0.0.`first` on, moving to the next address when one is refused (429),
/// waiting out a server-wide refusal (503, its `Retry-After`), until `deadline`. It stops at
/// an answer no wait cures (400, 401, ...) and when the addresses run out.
pub(super) async fn create_spread(addr: SocketAddr, body: &Value, want: usize, first: u8, deadline: Instant) -> Spread {
    let mut spread = Spread {
        next_source: first,
        ..Spread::default()
    };
    let mut api = Api::new(addr, first);
    while spread.rooms.len() < want && Instant::now() < deadline {
        let answer = api.post("/rooms", body).await;
        spread.answers.add(&answer);
        match answer {
            Ok(created) if created.status == 201 => spread.rooms.push(created.json),
            Ok(refused) if refused.status == 429 => {
                if spread.next_source == u8::MAX {
                    spread.stopped_by = Some(refused);
                    break;
                }
                spread.next_source += 1;
                api = Api::new(addr, spread.next_source);
            }
            Ok(busy) if busy.status == 503 => {
                let wait = busy.retry_after.unwrap_or(MAX_WAIT).clamp(MIN_WAIT, MAX_WAIT);
                time::sleep_until((Instant::now() + wait).min(deadline)).await;
            }
            Ok(other) => {
                spread.stopped_by = Some(other);
                break;
            }
            Err(_) => time::sleep(MIN_WAIT).await,
        }
    }
    spread.next_source = spread.next_source.saturating_add(1);
    spread
}

/// What [`create_as_admin`] got.
#[derive(Debug, Default)]
pub(super) struct AdminCreated {
    /// The ids of the rooms created.
    pub(super) ids: Vec<String>,
    /// Every answer.
    pub(super) answers: Tally,
    /// How long it took.
    pub(super) took: Duration,
}

/// Creates `count` rooms of arena with the admin secret, from eight connections at once (the
/// admin has no budget: this is the server's own speed).
pub(super) async fn create_as_admin(addr: SocketAddr, admin: &str, count: usize) -> AdminCreated {
    const WORKERS: usize = 8;
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for w in 0..WORKERS {
        let mut api = Api::new(addr, 1).with_bearer(admin);
        let share = count / WORKERS + usize::from(w < count % WORKERS);
        workers.spawn(async move {
            let (mut ids, mut answers) = (Vec::with_capacity(share), Tally::default());
            let body = serde_json::json!({"game": "arena"});
            for _ in 0..share {
                let answer = api.post("/rooms", &body).await;
                answers.add(&answer);
                if let Ok(created) = answer
                    && let Some(id) = created.json["id"].as_str()
                {
                    ids.push(id.to_owned());
                }
            }
            (ids, answers)
        });
    }
    let mut created = AdminCreated::default();
    while let Some(done) = workers.join_next().await {
        if let Ok((ids, answers)) = done {
            created.ids.extend(ids);
            created.answers.merge(&answers);
        }
    }
    created.took = started.elapsed();
    created
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_statuses_and_failures_in_order() {
        let answer = |status| {
            Ok(Answer {
                status,
                retry_after: None,
                json: Value::Null,
            })
        };
        let mut tally = Tally::default();
        assert_eq!(tally.to_string(), "none");
        tally.add(&answer(429));
        tally.add(&answer(201));
        tally.add(&answer(201));
        tally.add(&Err(io::Error::other("reset")));
        let mut more = Tally::default();
        more.add_status(429);
        tally.merge(&more);
        assert_eq!(tally.to_string(), "201 ×2, 429 ×2, no answer ×1");
        assert_eq!((tally.of(201), tally.of(503)), (2, 0));
    }
}
