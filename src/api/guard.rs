//! Who may do what through the rooms API, and what a caller without a credential may take.
//!
//! - [`same_site_write`]: every state-changing request (POST, DELETE) must be JSON and come
//!   from no web page or from one of the server's own or allowed origins. A page on another
//!   site can send a `text/plain` POST without asking (a "simple" request); `application/json`
//!   makes its browser ask first with a preflight, which only our origins pass.
//! - [`Caller`]: the admin (the bearer of `--admin-secret`), or anonymous.
//! - [`Budgets`]: what anonymous callers may take, per client address (an IPv6 /64 counts
//!   as one): rooms created (a rate, and how many live at once), a server-wide creation rate,
//!   matchmaking calls (a rate) and places held at once. The admin has no budget.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use tokio::time::Instant;

use super::ApiError;
use crate::access::budgets::{AtOnce, Bucket, Held, HoldClaim, HoldLedger, PerAddress, client_key};
use crate::state::AppState;

/// Rooms one client address may create at once without a credential.
pub(crate) const CREATE_BURST: u32 = 10;
/// After the burst, one room per this long per address.
pub(crate) const CREATE_EVERY: Duration = Duration::from_secs(6);
/// Rooms created without a credential that one client address may have open at once: twice
/// the burst, so that a caller within its rate (rooms idle out after `--room-idle`) is refused
/// by the rate, whose `Retry-After` it can obey, before this.
pub(crate) const ROOMS_PER_ADDRESS: u32 = 20;
/// Rooms created without a credential, over every address: this many at once, then
/// [`SERVER_CREATE_PER_SECOND`].
pub(crate) const SERVER_CREATE_BURST: u32 = 50;
/// See [`SERVER_CREATE_BURST`].
pub(crate) const SERVER_CREATE_PER_SECOND: f64 = 5.0;
/// The fastest tick rate a room created without a credential may ask for.
pub(crate) const ANONYMOUS_MAX_TICK_HZ: u32 = 60;
/// Matchmaking calls one client address may make at once, then one per [`MATCHMAKE_EVERY`].
pub(crate) const MATCHMAKE_BURST: u32 = 20;
/// See [`MATCHMAKE_BURST`].
pub(crate) const MATCHMAKE_EVERY: Duration = Duration::from_secs(1);
/// Places matchmaking holds for one client address at once (a place taken by its player's
/// hello no longer counts).
pub(crate) const HOLDS_PER_ADDRESS: u32 = 8;
/// Room listings one client address may ask for at once, then [`LIST_PER_SECOND`]: a listing
/// is a page of up to 100 rooms (tens of KB) for a request of a few dozen bytes.
pub(crate) const LIST_BURST: u32 = 20;
/// See [`LIST_BURST`].
pub(crate) const LIST_PER_SECOND: f64 = 10.0;
/// Client addresses each budget tracks at once (beyond it, new addresses wait).
pub(crate) const ADDRESSES: usize = 4096;

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The bearer of the admin secret.
    Admin,
    /// Anyone else.
    Anonymous,
}

impl Caller {
    /// The admin if the request carries the admin secret; anonymous otherwise (a wrong
    /// credential is as good as none).
    pub(crate) fn of(state: &AppState, headers: &HeaderMap) -> Self {
        let admin = match (&state.config.admin_secret, bearer(headers)) {
            (Some(secret), Some(given)) => crate::auth::same_secret(given, secret),
            _ => false,
        };
        if admin { Caller::Admin } else { Caller::Anonymous }
    }
}

/// The credential of `Authorization: Bearer <credential>`, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .filter(|given| !given.is_empty())
}

/// Refuses a write a web page on another site could have sent: a body that is not
/// `application/json` (415; a browser sends JSON cross-site only after a preflight), or a
/// foreign `Origin` (403, the origin policy of player sockets: README, "Who may connect").
pub(crate) fn same_site_write(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a request that changes something must have Content-Type: application/json",
        ));
    }
    state
        .origins
        .check(headers)
        .map_err(|refused| ApiError::new(StatusCode::FORBIDDEN, refused.to_string()))
}

/// What anonymous callers may take.
#[derive(Debug)]
pub(crate) struct Budgets {
    /// Room creations per address.
    creations: PerAddress,
    /// Rooms open per address.
    rooms: AtOnce,
    /// Room creations over every address.
    server: Mutex<Bucket>,
    /// Matchmaking calls per address.
    matchmakes: PerAddress,
    /// Places held per address.
    holds: HoldLedger,
    /// Room listings per address.
    listings: PerAddress,
}

impl Default for Budgets {
    fn default() -> Self {
        Self {
            creations: PerAddress::new(1.0 / CREATE_EVERY.as_secs_f64(), CREATE_BURST, ADDRESSES),
            rooms: AtOnce::new(ADDRESSES),
            server: Mutex::new(Bucket::new(
                SERVER_CREATE_PER_SECOND,
                SERVER_CREATE_BURST,
                Instant::now(),
            )),
            matchmakes: PerAddress::new(1.0 / MATCHMAKE_EVERY.as_secs_f64(), MATCHMAKE_BURST, ADDRESSES),
            holds: HoldLedger::new(HOLDS_PER_ADDRESS, ADDRESSES),
            listings: PerAddress::new(LIST_PER_SECOND, LIST_BURST, ADDRESSES),
        }
    }
}

impl Budgets {
    /// A room `peer` may create without a credential at `now`: its share of the budget, to be
    /// kept by the room for as long as it is open (429 or 503 with `Retry-After` otherwise).
    /// Every budget is checked before any is spent: a refusal spends nothing.
    pub(crate) fn room(&self, peer: IpAddr, now: Instant) -> Result<Held, ApiError> {
        let Some(held) = self.rooms.take(client_key(peer), ROOMS_PER_ADDRESS) else {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this address has {ROOMS_PER_ADDRESS} rooms open: close one (with its key) or let one idle out"
                ),
            ));
        };
        let too_fast = |wait| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many rooms created from this address: {CREATE_BURST} at once, then one every {}s",
                    CREATE_EVERY.as_secs()
                ),
            )
            .retry_after(wait)
        };
        self.creations.check(peer, now).map_err(too_fast)?;
        // A std Mutex: one bucket update, never held across an await.
        let mut server = self.server.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        server.take(now).map_err(|wait| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "rooms are being created without a credential faster than this server allows: try again shortly",
            )
            .retry_after(wait)
        })?;
        drop(server);
        self.creations.allow(peer, now).map_err(too_fast)?;
        Ok(held)
    }

    /// A matchmaking call of `peer` at `now`, and the claim its hold will keep counted against
    /// it (429 with `Retry-After` over its rate or its holds).
    pub(crate) fn matchmake(&self, peer: IpAddr, now: Instant, until: Instant) -> Result<HoldClaim, ApiError> {
        self.matchmakes.allow(peer, now).map_err(|wait| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many matchmaking calls from this address: {MATCHMAKE_BURST} at once, then one every {}s",
                    MATCHMAKE_EVERY.as_secs()
                ),
            )
            .retry_after(wait)
        })?;
        self.holds.reserve(peer, now, until).ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "this address holds {HOLDS_PER_ADDRESS} places already: join with them, or wait until they expire"
                ),
            )
            .retry_after(Duration::from_secs(5))
        })
    }

    /// A listing of the rooms for `peer` at `now` (429 with `Retry-After` over its rate).
    pub(crate) fn listing(&self, peer: IpAddr, now: Instant) -> Result<(), ApiError> {
        self.listings.allow(peer, now).map_err(|wait| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many listings from this address: {LIST_BURST} at once, then {LIST_PER_SECOND} a second"),
            )
            .retry_after(wait)
        })
    }

    /// `claim`'s hold went to another node of the cluster: it counts against `peer` until it
    /// expires.
    pub(crate) fn held_elsewhere(&self, peer: IpAddr, claim: &HoldClaim) {
        self.holds.held_elsewhere(peer, claim);
    }
}
