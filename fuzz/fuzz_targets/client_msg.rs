//! What the server runs on every binary message a player sends: `ClientMsg::decode`, with the
//! input fields of a room's game, must never panic, never hold more memory than its input could
//! fill, and accept only the one canonical encoding of each message.
//!
//! Input: a byte choosing the game (arena or tanks), then the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast::protocol::ClientMsg;
use tickcast_fuzz::{assert_bounded_decode, assert_canonical, peak_alloc, schema};

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else { return };
    let schema = schema(which);
    let (decoded, peak) = peak_alloc(|| ClientMsg::decode(data, &schema.input));
    assert_bounded_decode(peak, data.len());
    let Ok(msg) = decoded else { return };
    let bytes = msg.encode(&schema.input);
    assert_eq!(
        ClientMsg::decode(&bytes, &schema.input).ok(),
        Some(msg),
        "the encoding does not decode back"
    );
    assert_canonical(data, &bytes);
});
