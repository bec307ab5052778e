//! Tokens a game backend mints with the server's `--auth-secret`: join tokens (a player may
//! join one room, under a name, until a time) and identity tokens (the caller is that name,
//! until a time: what `POST /matchmake` asks for when tokens are on).
//!
//! When the server runs with `--auth-secret`, a player's `Hello.token` must be
//!
//! ```text
//! v2.<expiry>.<mac>
//! ```
//!
//! where `expiry` is a Unix time in seconds (decimal) and `mac` is the lowercase hex
//! HMAC-SHA256, keyed with the secret, of the bytes
//! `tickcast-join-v2\n<room>\n<name>\n<expiry>`, with `room` the id of the room joined and
//! `name` exactly as sent in the `Hello`: a token for one room does not open another. The
//! backend that knows the secret mints tokens (see README, "Security"), and so does the
//! server's matchmaking; the server verifies them in constant time. Version 1 tokens named no
//! room and are refused.
//!
//! An identity token is `id1.<expiry>.<mac>`, the MAC over
//! `tickcast-identity-v1\n<name>\n<expiry>`: it proves a name, not a room, so matchmaking can
//! hand out a join token for whichever room it finds.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token was refused. The messages are what the player's close reason says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token, while the server requires one.
    #[error("a join token is required")]
    Missing,
    /// Not of the form `<version>.<expiry>.<mac>` of its kind.
    #[error("malformed join token")]
    Malformed,
    /// The MAC does not match this name and expiry.
    #[error("invalid join token")]
    Invalid,
    /// Valid, but past its expiry.
    #[error("join token expired")]
    Expired,
    /// A version 1 token, which names no room.
    #[error("join token v1 names no room: mint a v2 token")]
    Unbound,
}

const JOIN: &str = "tickcast-join-v2";
const IDENTITY: &str = "tickcast-identity-v1";

/// Makes a token letting `name` join room `room` until `expires` (Unix seconds).
pub fn mint(secret: &[u8], room: &str, name: &str, expires: u64) -> String {
    signed(
        "v2",
        mac(secret, &format!("{JOIN}\n{room}\n{name}\n{expires}")),
        expires,
    )
}

/// Checks `token` for `name` joining `room` at time `now` (Unix seconds).
pub fn verify(secret: &[u8], room: &str, name: &str, token: &str, now: u64) -> Result<(), TokenError> {
    if token.starts_with("v1.") && token.matches('.').count() >= 2 {
        return Err(TokenError::Unbound);
    }
    check("v2", token, now, |expires| {
        mac(secret, &format!("{JOIN}\n{room}\n{name}\n{expires}"))
    })
}

/// Makes an identity token: the holder is `name` until `expires` (Unix seconds).
pub fn mint_identity(secret: &[u8], name: &str, expires: u64) -> String {
    signed("id1", mac(secret, &format!("{IDENTITY}\n{name}\n{expires}")), expires)
}

/// Checks an identity token for `name` at time `now` (Unix seconds).
pub fn verify_identity(secret: &[u8], name: &str, token: &str, now: u64) -> Result<(), TokenError> {
    check("id1", token, now, |expires| {
        mac(secret, &format!("{IDENTITY}\n{name}\n{expires}"))
    })
}

/// Whether `given` is `secret`, compared in constant time for a given length (the length is
/// no secret worth keeping).
pub fn same_secret(given: &str, secret: &str) -> bool {
    given.len() == secret.len() && given.bytes().zip(secret.bytes()).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// `<version>.<expires>.<mac in lowercase hex>`.
fn signed(version: &str, mac: Hmac<Sha256>, expires: u64) -> String {
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("{version}.{expires}.{hex}")
}

/// Checks a `<version>.<expiry>.<mac>` token against the MAC `expected` computes for its expiry.
fn check(version: &str, token: &str, now: u64, expected: impl FnOnce(u64) -> Hmac<Sha256>) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(given_version), Some(expiry), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    if given_version != version {
        return Err(TokenError::Malformed);
    }
    let expires: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let given = decode_hex(hex).ok_or(TokenError::Malformed)?;
    // `verify_slice` compares in constant time.
    expected(expires)
        .verify_slice(&given)
        .map_err(|_| TokenError::Invalid)?;
    if now >= expires {
        return Err(TokenError::Expired);
    }
    Ok(())
}

fn mac(secret: &[u8], message: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac
}

/// Decodes the MAC: exactly 64 lowercase hex digits (one spelling per token).
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if hex.len() != 64 || !hex.bytes().all(lower_hex) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_for_its_room_and_name_until_it_expires() {
        let token = mint(b"s3cret", "lobby1", "ann", 1_000);
        assert_eq!(verify(b"s3cret", "lobby1", "ann", &token, 999), Ok(()));
        assert_eq!(
            verify(b"s3cret", "lobby1", "ann", &token, 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(b"s3cret", "lobby1", "bob", &token, 999),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            verify(b"s3cret", "lobby2", "ann", &token, 999),
            Err(TokenError::Invalid)
        );
        assert_eq!(verify(b"other", "lobby1", "ann", &token, 999), Err(TokenError::Invalid));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let token = mint(b"k", "r", "ann", 5_000);
        let later = token.replace("v2.5000.", "v2.9000.");
        assert_eq!(verify(b"k", "r", "ann", &later, 10), Err(TokenError::Invalid));
        // The same MAC spelled in uppercase, or with a sign: one spelling per token.
        let upper = format!("v2.5000.{}", token[8..].to_ascii_uppercase());
        let signed = format!("v2.5000.+{}", &token[9..]);
        for bad in [
            "v2",
            "v3.5000.00",
            "v2.x.00",
            "v2.5000.zz",
            "v2.5000.ab",
            &upper,
            &signed,
        ] {
            assert_eq!(verify(b"k", "r", "ann", bad, 10), Err(TokenError::Malformed), "{bad}");
        }
        assert_eq!(verify(b"k", "r", "ann", "", 10), Err(TokenError::Missing));
        let v1 = token.replacen("v2.", "v1.", 1);
        assert_eq!(verify(b"k", "r", "ann", &v1, 10), Err(TokenError::Unbound));
    }

    #[test]
    fn an_identity_token_proves_its_name_and_nothing_else() {
        let token = mint_identity(b"s3cret", "ann", 1_000);
        assert!(token.starts_with("id1.1000."));
        assert_eq!(verify_identity(b"s3cret", "ann", &token, 999), Ok(()));
        assert_eq!(verify_identity(b"s3cret", "bob", &token, 999), Err(TokenError::Invalid));
        assert_eq!(
            verify_identity(b"s3cret", "ann", &token, 1_000),
            Err(TokenError::Expired)
        );
        assert_eq!(verify_identity(b"s3cret", "ann", "", 1), Err(TokenError::Missing));
        // Neither kind of token passes for the other.
        let join = mint(b"s3cret", "default", "ann", 1_000);
        assert_eq!(verify_identity(b"s3cret", "ann", &join, 1), Err(TokenError::Malformed));
        assert_eq!(
            verify(b"s3cret", "default", "ann", &token, 1),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn the_documented_example_matches() {
        // README, "Security": the openssl one-liner for secret "s3cret", room "default", name
        // "ann", expiry 1800000000 prints this MAC.
        let doc = include_str!("../README.md");
        let token = mint(b"s3cret", "default", "ann", 1_800_000_000);
        assert!(doc.contains(&token), "README lacks the example token {token}");
        let identity = mint_identity(b"s3cret", "ann", 1_800_000_000);
        assert!(doc.contains(&identity), "README lacks the example identity {identity}");
    }
}
