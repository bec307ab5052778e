//! What the server runs on every binary message a player sends: `ClientMsg::decode` must
//! never panic, never hold more memory than its decode limit allows, and accept only the one
//! canonical encoding of each message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast::protocol::{ClientMsg, MAX_CLIENT_MESSAGE};
use tickcast_fuzz::{assert_bounded_decode, assert_canonical, peak_alloc};

fuzz_target!(|data: &[u8]| {
    let (decoded, peak) = peak_alloc(|| ClientMsg::decode(data));
    assert_bounded_decode(peak, MAX_CLIENT_MESSAGE);
    let Ok(msg) = decoded else { return };
    let bytes = msg.encode();
    assert_eq!(
        ClientMsg::decode(&bytes).ok(),
        Some(msg),
        "the encoding does not decode back"
    );
    assert_canonical(data, &bytes);
});
