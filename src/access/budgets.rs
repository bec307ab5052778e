//! What anonymous callers may take, per client address: rates ([`PerAddress`], [`Bucket`]),
//! things held at once ([`AtOnce`]: spectator streams), and matchmaking's held places
//! ([`HoldLedger`]).
//!
//! Every budget is keyed by [`client_key`]: an IPv4 address, or an IPv6 /64 (one host gets a
//! whole /64, so counting its addresses one by one would count nothing). Every table is
//! bounded and fails closed: when it is full of live entries, a new address is refused until
//! one frees up, so a flood of addresses cannot outgrow the table. Pure apart from the
//! locks: the caller passes the time.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// The key a client address is budgeted under: an IPv4 address as it is (an IPv4-mapped
/// IPv6 address as its IPv4 form), an IPv6 address as its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// A block of addresses: `10.0.0.0/8`, `::1/128`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address as its IPv4 form).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not an address or a block like 10.0.0.0/8");
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse().ok().filter(|p| *p <= max).ok_or_else(bad)?,
        };
        Ok(Self { addr, prefix })
    }
}

/// The client address of a request: the peer's, or, when the peer is one of the trusted
/// proxies (`--trusted-proxies`), the address it says it forwarded for, read from
/// `X-Forwarded-For` right to left past every trusted proxy. Behind a proxy every peer is the
/// proxy; without this, every client would share one address's budgets.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// These proxies.
    pub fn new(proxies: Vec<Cidr>) -> Self {
        Self(proxies)
    }

    /// The client address for a request from `peer` whose `X-Forwarded-For` headers, in order,
    /// are `forwarded`. A list that does not parse is not believed: the peer it is.
    pub fn client<'a>(&self, peer: IpAddr, forwarded: impl Iterator<Item = &'a str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded.flat_map(|h| h.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else { return client };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }
}

/// A token bucket: `burst` actions at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn new(per_second: f64, burst: u32, now: Instant) -> Self {
        Self {
            per_second,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: now,
        }
    }

    /// Takes one token at `now`, or says how long until one is there (what `Retry-After`
    /// should say: a client that waits that long gets through, if nobody else took it).
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
    }

    /// Whether a token is there at `now`, or how long until one is; takes nothing.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_second))
    }

    /// Whether it is full at `now` (an address whose bucket is full is as good as new).
    fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = now;
    }
}

/// A [`Bucket`] per client address, for actions cheap to ask for and costly to serve (creating
/// a room, matchmaking). It tracks at most `max_addresses`; when full, addresses whose bucket
/// has refilled are forgotten, and if none has, a new address is refused until one does.
#[derive(Debug)]
pub struct PerAddress {
    per_second: f64,
    burst: u32,
    max_addresses: usize,
    // A std Mutex: a map lookup and an update, never held across an await.
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl PerAddress {
    /// `burst` actions at once per address, refilled at `per_second`.
    pub fn new(per_second: f64, burst: u32, max_addresses: usize) -> Self {
        Self {
            per_second,
            burst,
            max_addresses,
            buckets: Mutex::default(),
        }
    }

    /// Whether `address` may act at `now` (or how long it must wait), counting nothing: for a
    /// caller checked by several budgets, so that one refusal spends none of the others.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(address);
        let mut buckets = lock(&self.buckets);
        match buckets.get_mut(&key) {
            Some(bucket) => bucket.check(now),
            None => Ok(()),
        }
    }

    /// Counts an action of `address` at `now`, or says how long it must wait.
    pub fn allow(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let key = client_key(address);
        let mut buckets = lock(&self.buckets);
        if !buckets.contains_key(&key) && buckets.len() >= self.max_addresses {
            buckets.retain(|_, bucket| !bucket.is_full(now));
            if buckets.len() >= self.max_addresses {
                return Err(Duration::from_secs_f64(1.0 / self.per_second));
            }
        }
        buckets
            .entry(key)
            .or_insert_with(|| Bucket::new(self.per_second, self.burst, now))
            .take(now)
    }
}

/// Things a client address holds at once (spectator streams): counted while their guard
/// lives, at most `limit` per address, for at most `max_addresses` addresses.
#[derive(Debug)]
pub struct AtOnce<K: Eq + Hash + Copy = IpAddr> {
    inner: Arc<Mutex<HashMap<K, u32>>>,
    max_keys: usize,
}

impl<K: Eq + Hash + Copy> AtOnce<K> {
    /// At most `max_keys` keys counted at once.
    pub fn new(max_keys: usize) -> Self {
        Self {
            inner: Arc::default(),
            max_keys,
        }
    }

    /// Counts one more for `key` if it holds fewer than `limit`; the count drops with the guard.
    pub fn take(&self, key: K, limit: u32) -> Option<Held<K>> {
        let mut counts = lock(&self.inner);
        if !counts.contains_key(&key) && counts.len() >= self.max_keys {
            return None;
        }
        let count = counts.entry(key).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Held {
            counts: self.inner.clone(),
            key,
        })
    }

    /// How many `key` holds now.
    pub fn held(&self, key: &K) -> u32 {
        lock(&self.inner).get(key).copied().unwrap_or(0)
    }
}

/// One thing counted by an [`AtOnce`], until dropped.
#[derive(Debug)]
pub struct Held<K: Eq + Hash + Copy = IpAddr> {
    counts: Arc<Mutex<HashMap<K, u32>>>,
    key: K,
}

impl<K: Eq + Hash + Copy> Drop for Held<K> {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// The places matchmaking holds for each client address. A hold counts against its address
/// until it expires or, for a hold in a room of this server, until its [`HoldClaim`] is
/// dropped (the player's hello took the place, or the room ended): so a client that
/// matchmakes and joins at once never runs out, and one that only holds runs out at the
/// budget. A hold in another node's room counts until it expires (that node keeps the claim).
#[derive(Debug)]
pub struct HoldLedger {
    per_address: u32,
    max_addresses: usize,
    // A std Mutex: a short list per address, never held across an await.
    holds: Mutex<HashMap<IpAddr, Vec<Entry>>>,
}

#[derive(Debug)]
struct Entry {
    until: Instant,
    /// `None` for a hold on another node.
    claim: Option<Weak<()>>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.until > now && self.claim.as_ref().is_none_or(|claim| claim.strong_count() > 0)
    }
}

/// Keeps a hold counted against its address while it lives (see [`HoldLedger`]).
#[derive(Debug, Clone)]
pub struct HoldClaim(Arc<()>);

impl HoldClaim {
    /// A claim counted against nobody (the admin's holds).
    pub fn unbudgeted() -> Self {
        Self(Arc::new(()))
    }
}

impl HoldLedger {
    /// `per_address` holds at once per address, for at most `max_addresses` addresses.
    pub fn new(per_address: u32, max_addresses: usize) -> Self {
        Self {
            per_address,
            max_addresses,
            holds: Mutex::default(),
        }
    }

    /// Counts a hold for `address` until `until`, if it has fewer than its budget at `now`.
    /// The claim keeps it counted; once every clone of it is dropped, the hold no longer is.
    pub fn reserve(&self, address: IpAddr, now: Instant, until: Instant) -> Option<HoldClaim> {
        let key = client_key(address);
        let mut holds = lock(&self.holds);
        if !holds.contains_key(&key) && holds.len() >= self.max_addresses {
            holds.retain(|_, entries| entries.iter().any(|e| e.live(now)));
            if holds.len() >= self.max_addresses {
                return None;
            }
        }
        let entries = holds.entry(key).or_default();
        entries.retain(|e| e.live(now));
        if entries.len() >= self.per_address as usize {
            return None;
        }
        let claim = Arc::new(());
        entries.push(Entry {
            until,
            claim: Some(Arc::downgrade(&claim)),
        });
        Some(HoldClaim(claim))
    }

    /// Turns `claim`'s hold into one on another node: it counts until `until` whatever
    /// happens to the claim.
    pub fn held_elsewhere(&self, address: IpAddr, claim: &HoldClaim) {
        let key = client_key(address);
        if let Some(entries) = lock(&self.holds).get_mut(&key) {
            let weak = Arc::downgrade(&claim.0);
            for entry in entries
                .iter_mut()
                .filter(|e| e.claim.as_ref().is_some_and(|c| c.ptr_eq(&weak)))
            {
                entry.claim = None;
            }
        }
    }

    /// Holds `address` has at `now`.
    pub fn held(&self, address: IpAddr, now: Instant) -> usize {
        lock(&self.holds)
            .get(&client_key(address))
            .map_or(0, |entries| entries.iter().filter(|e| e.live(now)).count())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks (map lookups and counts), so a poisoned one
    // still holds consistent counts.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_its_64_and_a_mapped_v4_is_itself() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(client_key(v4), v4);
    }

    #[test]
    fn a_trusted_proxy_is_seen_through_and_nobody_else_is() {
        let proxies = TrustedProxies::new(vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Not a proxy: its header is whatever it likes.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            ip("203.0.113.9")
        );
        // Through two trusted hops to the client, past a forged entry the client wrote itself.
        let chain = ["6.6.6.6, 198.51.100.7", "10.1.2.3"];
        assert_eq!(proxies.client(ip("127.0.0.1"), chain.into_iter()), ip("198.51.100.7"));
        assert_eq!(proxies.client(ip("127.0.0.1"), std::iter::empty()), ip("127.0.0.1"));
        assert_eq!(
            proxies.client(ip("127.0.0.1"), ["nonsense"].into_iter()),
            ip("127.0.0.1")
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("::1/128".parse::<Cidr>().unwrap().contains(ip("::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
    }

    #[test]
    fn each_address_gets_its_burst_then_its_rate_and_is_told_how_long_to_wait() {
        let now = Instant::now();
        let limit = PerAddress::new(1.0, 3, 100);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!((0..5).filter(|_| limit.allow(a, now).is_ok()).count(), 3);
        assert!(limit.allow(b, now).is_ok(), "another address has its own bucket");
        let wait = limit.allow(a, now + Duration::from_millis(400)).unwrap_err();
        assert!(
            (Duration::from_millis(590)..=Duration::from_millis(610)).contains(&wait),
            "{wait:?}"
        );
        assert!(
            limit.allow(a, now + Duration::from_millis(400) + wait).is_ok(),
            "waiting as told works"
        );
    }

    #[test]
    fn checking_an_address_spends_nothing() {
        let now = Instant::now();
        let limit = PerAddress::new(1.0, 1, 100);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(limit.check(ip, now).is_ok());
        }
        assert!(limit.allow(ip, now).is_ok(), "the checks took nothing");
        assert!(limit.check(ip, now).is_err());
    }

    #[test]
    fn the_addresses_of_one_ipv6_64_share_a_bucket() {
        let now = Instant::now();
        let limit = PerAddress::new(1.0, 2, 100);
        let host = |n: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, n, 0, 0, 1]);
        assert!(limit.allow(host(1), now).is_ok() && limit.allow(host(2), now).is_ok());
        assert!(limit.allow(host(3), now).is_err(), "one /64 is one client");
    }

    #[test]
    fn the_address_table_is_bounded_and_fails_closed() {
        let now = Instant::now();
        let limit = PerAddress::new(1.0, 1, 2);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert!(limit.allow(ip(1), now).is_ok() && limit.allow(ip(2), now).is_ok());
        assert!(
            limit.allow(ip(3), now).is_err(),
            "a full table of busy addresses refuses newcomers"
        );
        let later = now + Duration::from_secs(2);
        assert!(
            limit.allow(ip(3), later).is_ok(),
            "refilled addresses are forgotten to make room"
        );
    }

    #[test]
    fn things_held_at_once_are_counted_until_their_guard_drops() {
        let places = AtOnce::new(2);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        let a1 = places.take(ip(1), 2).unwrap();
        let _a2 = places.take(ip(1), 2).unwrap();
        assert!(places.take(ip(1), 2).is_none(), "at its limit");
        let _b = places.take(ip(2), 2).unwrap();
        assert!(places.take(ip(3), 2).is_none(), "the table is full of live addresses");
        drop(a1);
        assert_eq!(places.held(&ip(1)), 1);
        assert!(places.take(ip(1), 2).is_some());
    }

    #[test]
    fn holds_count_until_claimed_or_expired() {
        let now = Instant::now();
        let ledger = HoldLedger::new(2, 10);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let until = now + Duration::from_secs(30);
        let first = ledger.reserve(ip, now, until).unwrap();
        let second = ledger.reserve(ip, now, until).unwrap();
        assert!(ledger.reserve(ip, now, until).is_none(), "at the budget");
        drop(first); // its place was taken by a hello
        assert_eq!(ledger.held(ip, now), 1);
        let third = ledger.reserve(ip, now, until).unwrap();
        ledger.held_elsewhere(ip, &third);
        drop(third);
        assert_eq!(
            ledger.held(ip, now),
            2,
            "a hold on another node counts until it expires"
        );
        assert_eq!(ledger.held(ip, until), 0, "expired holds count no more");
        drop(second);
    }
}
