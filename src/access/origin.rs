//! Which web origins may open player sockets: cross-site WebSocket hijacking and DNS
//! rebinding defence.
//!
//! A browser sends the `Origin` of the page that opens a WebSocket; a page from another site
//! must not play with its visitor's browser. The request's own `Host` says nothing here: a
//! rebinding name (`evil.example` made to resolve to this server) sends `Host: evil.example`
//! and `Origin: http://evil.example` in agreement. So origins are compared, as scheme, host
//! and port, with the server's own public origins (`--public-origin`, by default the bind
//! address and its `localhost` forms) and with `--allowed-origins`. A request without an
//! `Origin` (a native client, a bot) is allowed; one with two, or one that does not parse, is
//! refused.

use std::fmt;
use std::net::SocketAddr;

use axum::http::{HeaderMap, header};

/// A web origin: scheme, host and port, normalized (lowercase, the default port explicit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]` (a trailing `/` is tolerated in configuration). Only
    /// `http` and `https` are origins of pages; hosts must be ASCII (browsers send IDNs in
    /// punycode).
    pub fn parse(text: &str) -> Option<Self> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal's colons are inside its brackets.
            Some((host, port)) if !port.contains(']') => (host, port.parse().ok()?),
            _ => (authority, default_port),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':');
        if host.is_empty() || !host.chars().all(valid) {
            return None;
        }
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The origins a server bound to `addr` is reached at from this machine: `http://` with the
    /// address itself, `localhost`, and for an unspecified address (`0.0.0.0`, `::`) the
    /// loopback address too. Other names it is reached by go in `--public-origin`.
    pub fn local_forms(addr: SocketAddr) -> Vec<Self> {
        let port = addr.port();
        let http = |host: String| Self {
            scheme: "http".into(),
            host,
            port,
        };
        let ip = addr.ip();
        let mut forms = vec![http("localhost".into())];
        let literal = |ip: std::net::IpAddr| match ip {
            std::net::IpAddr::V4(v4) => v4.to_string(),
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        };
        if ip.is_unspecified() {
            forms.push(http("127.0.0.1".into()));
            forms.push(http("[::1]".into()));
        } else {
            forms.push(http(literal(ip)));
        }
        forms
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Why an upgrade's `Origin` was refused (the 403's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// More than one `Origin` header.
    #[error("more than one Origin header")]
    Duplicated,
    /// Not ASCII, or not `scheme://host[:port]` (`null` included).
    #[error("unparsable Origin {0:?}")]
    Unparsable(String),
    /// A well-formed origin that is neither ours nor allowed.
    #[error("origin {0} is not allowed")]
    Foreign(String),
}

/// The origins allowed to open player sockets.
#[derive(Debug, Clone)]
pub struct Policy {
    allowed: Vec<Origin>,
    any: bool,
}

impl Policy {
    /// Our own public origins plus `extra` (`*` allows any; the flag's parser has already
    /// refused anything else that is not an origin, see [`parse_allowed`]).
    pub fn new(own: Vec<Origin>, extra: &[String]) -> Self {
        let mut allowed = own;
        allowed.extend(extra.iter().filter_map(|e| Origin::parse(e)));
        let any = extra.iter().any(|e| e == "*");
        Self { allowed, any }
    }

    /// Checks a player upgrade's headers.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let Some(origin) = origins.next() else {
            return Ok(()); // not a browser
        };
        if origins.next().is_some() {
            return Err(Refused::Duplicated);
        }
        let text = origin
            .to_str()
            .map_err(|_| Refused::Unparsable(String::from_utf8_lossy(origin.as_bytes()).into_owned()))?;
        let parsed = Origin::parse(text).ok_or_else(|| Refused::Unparsable(text.into()))?;
        if self.any || self.allowed.contains(&parsed) {
            Ok(())
        } else {
            Err(Refused::Foreign(text.into()))
        }
    }

    /// The origins allowed by name (for the startup log).
    pub fn allowed(&self) -> &[Origin] {
        &self.allowed
    }
}

/// Parses a `--public-origin` value, so a typo fails at start rather than silently.
pub fn parse_origin(text: &str) -> Result<Origin, String> {
    Origin::parse(text).ok_or_else(|| format!("not an origin (scheme://host[:port]): {text:?}"))
}

/// Parses an `--allowed-origins` entry: an origin, or `*`.
pub fn parse_allowed(text: &str) -> Result<String, String> {
    if text == "*" {
        return Ok(text.into());
    }
    parse_origin(text).map(|_| text.into())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(origins: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for o in origins {
            map.append(header::ORIGIN, HeaderValue::from_bytes(o).unwrap());
        }
        map
    }

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let a = Origin::parse("http://Game.Example").unwrap();
        assert_eq!(a, Origin::parse("http://game.example:80/").unwrap());
        assert_ne!(a, Origin::parse("https://game.example").unwrap());
        assert_ne!(a, Origin::parse("http://game.example:8080").unwrap());
        assert_eq!(
            Origin::parse("http://[::1]:8080").unwrap().to_string(),
            "http://[::1]:8080"
        );
        for bad in [
            "null",
            "game.example",
            "ftp://game.example",
            "http://",
            "http://a b",
            "http://x:99999",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_own_and_listed_origins_pass_and_rebinding_does_not() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let policy = Policy::new(Origin::local_forms(addr), &["https://play.example".into()]);
        for ok in [
            &b"http://127.0.0.1:8080"[..],
            b"http://localhost:8080",
            b"https://play.example",
        ] {
            assert_eq!(policy.check(&headers(&[ok])), Ok(()), "{ok:?}");
        }
        assert_eq!(policy.check(&HeaderMap::new()), Ok(()), "no Origin: not a browser");
        let refused = |o: &[&[u8]]| policy.check(&headers(o)).unwrap_err();
        // DNS rebinding: the name agrees with the Host header, but it is not ours.
        assert!(matches!(refused(&[b"http://evil.example:8080"]), Refused::Foreign(_)));
        assert!(matches!(refused(&[b"https://127.0.0.1:8080"]), Refused::Foreign(_)));
        assert!(matches!(refused(&[b"http://127.0.0.1:9999"]), Refused::Foreign(_)));
        assert_eq!(
            refused(&[b"http://127.0.0.1:8080", b"http://evil.example"]),
            Refused::Duplicated
        );
        assert!(matches!(
            refused(&["http://\u{e9}vil.example".as_bytes()]),
            Refused::Unparsable(_)
        ));
        assert!(matches!(refused(&[b"null"]), Refused::Unparsable(_)));
        let any = Policy::new(vec![], &["*".into()]);
        assert_eq!(any.check(&headers(&[b"https://anything.example"])), Ok(()));
        assert!(parse_allowed("not an origin").is_err());
        assert!(parse_allowed("*").is_ok());
    }

    #[test]
    fn an_unspecified_bind_address_is_reached_by_its_loopback_forms() {
        let forms: Vec<String> = Origin::local_forms("0.0.0.0:80".parse().unwrap())
            .iter()
            .map(Origin::to_string)
            .collect();
        assert_eq!(forms, ["http://localhost:80", "http://127.0.0.1:80", "http://[::1]:80"]);
    }
}
