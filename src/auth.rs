//! Join tokens: proof from a game backend that a player may join, under a name, until a time.
//!
//! When the server runs with `--auth-secret`, a player's `Hello.token` must be
//!
//! ```text
//! v1.<expiry>.<mac>
//! ```
//!
//! where `expiry` is a Unix time in seconds (decimal) and `mac` is the lowercase hex
//! HMAC-SHA256, keyed with the secret, of the bytes `tickcast-join-v1\n<name>\n<expiry>`, with
//! `name` exactly as sent in the `Hello`. The backend that knows the secret mints tokens (see
//! README, "Security"); the game server only verifies them, in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token was refused. The messages are what the player's close reason says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token, while the server requires one.
    #[error("a join token is required")]
    Missing,
    /// Not of the form `v1.<expiry>.<mac>`.
    #[error("malformed join token")]
    Malformed,
    /// The MAC does not match this name and expiry.
    #[error("invalid join token")]
    Invalid,
    /// Valid, but past its expiry.
    #[error("join token expired")]
    Expired,
}

const CONTEXT: &str = "tickcast-join-v1";

/// Makes a token letting `name` join until `expires` (Unix seconds).
pub fn mint(secret: &[u8], name: &str, expires: u64) -> String {
    let mac = mac(secret, name, expires).finalize().into_bytes();
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1.{expires}.{hex}")
}

/// Checks `token` for `name` at time `now` (Unix seconds).
pub fn verify(secret: &[u8], name: &str, token: &str, now: u64) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    let mut parts = token.splitn(3, '.');
    let (Some("v1"), Some(expiry), Some(hex)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TokenError::Malformed);
    };
    let expires: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let given = decode_hex(hex).ok_or(TokenError::Malformed)?;
    // `verify_slice` compares in constant time.
    mac(secret, name, expires)
        .verify_slice(&given)
        .map_err(|_| TokenError::Invalid)?;
    if now >= expires {
        return Err(TokenError::Expired);
    }
    Ok(())
}

fn mac(secret: &[u8], name: &str, expires: u64) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{CONTEXT}\n{name}\n{expires}").as_bytes());
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
    fn a_minted_token_verifies_for_its_name_until_it_expires() {
        let token = mint(b"s3cret", "ann", 1_000);
        assert_eq!(verify(b"s3cret", "ann", &token, 999), Ok(()));
        assert_eq!(verify(b"s3cret", "ann", &token, 1_000), Err(TokenError::Expired));
        assert_eq!(verify(b"s3cret", "bob", &token, 999), Err(TokenError::Invalid));
        assert_eq!(verify(b"other", "ann", &token, 999), Err(TokenError::Invalid));
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let token = mint(b"k", "ann", 5_000);
        let later = token.replace("v1.5000.", "v1.9000.");
        assert_eq!(verify(b"k", "ann", &later, 10), Err(TokenError::Invalid));
        // The same MAC spelled in uppercase, or with a sign: one spelling per token.
        let upper = format!("v1.5000.{}", token[8..].to_ascii_uppercase());
        let signed = format!("v1.5000.+{}", &token[9..]);
        for bad in [
            "v1",
            "v2.5000.00",
            "v1.x.00",
            "v1.5000.zz",
            "v1.5000.ab",
            &upper,
            &signed,
        ] {
            assert_eq!(verify(b"k", "ann", bad, 10), Err(TokenError::Malformed), "{bad}");
        }
        assert_eq!(verify(b"k", "ann", "", 10), Err(TokenError::Missing));
    }

    #[test]
    fn the_documented_example_matches() {
        // README, "Security": the openssl one-liner for secret "s3cret", name "ann",
        // expiry 1800000000 prints this MAC.
        let doc = include_str!("../README.md");
        let token = mint(b"s3cret", "ann", 1_800_000_000);
        assert!(doc.contains(&token), "README lacks the example token {token}");
    }
}
