//! What every client runs on the server's bytes: `ServerMsg::decode` (with the hand-written
//! `Updates` decoder inside deltas) must never panic, never hold more memory than its decode
//! limit allows, and accept only the one canonical encoding of each message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast::protocol::{MAX_SERVER_MESSAGE, ServerMsg};
use tickcast_fuzz::{assert_bounded_decode, assert_canonical, peak_alloc};

fuzz_target!(|data: &[u8]| {
    let (decoded, peak) = peak_alloc(|| ServerMsg::decode(data));
    assert_bounded_decode(peak, MAX_SERVER_MESSAGE);
    let Ok(msg) = decoded else { return };
    // `encode` panics if decoded updates broke the order or empty-mask rules it enforces.
    let bytes = msg.encode();
    assert_eq!(
        ServerMsg::decode(&bytes).ok(),
        Some(msg),
        "the encoding does not decode back"
    );
    assert_canonical(data, &bytes);
});
