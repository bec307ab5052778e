//! What every client runs on the server's bytes: `ServerMsg::decode`, with a game's schema
//! (entities and updates are read by it), must never panic, never hold more memory than its
//! input could fill, and accept only the one canonical encoding of each message. A `Welcome`
//! carries a schema, untrusted too: whatever schema decodes is then used to read more bytes.
//!
//! Input: a byte choosing the game (arena or tanks), then the message; when the message is a
//! `Welcome` whose schema decodes, the bytes after a `0xff 0xff` separator are decoded with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickcast::protocol::ServerMsg;
use tickcast_fuzz::{assert_bounded_decode, assert_canonical, peak_alloc, schema};

fuzz_target!(|data: &[u8]| {
    let Some((&which, data)) = data.split_first() else { return };
    let (first, then) = match data.windows(2).position(|w| w == [0xff, 0xff]) {
        Some(at) => (&data[..at], Some(&data[at + 2..])),
        None => (data, None),
    };
    let schema = schema(which);
    check(first, &schema);
    // A hostile schema must not make the messages read with it panic either.
    if let (Ok(ServerMsg::Welcome(welcome)), Some(then)) = (ServerMsg::decode(first, None), then) {
        check(then, &welcome.schema);
    }
});

fn check(data: &[u8], schema: &tickcast::protocol::Schema) {
    let (decoded, peak) = peak_alloc(|| ServerMsg::decode(data, Some(schema)));
    assert_bounded_decode(peak, data.len());
    let Ok(msg) = decoded else { return };
    let bytes = msg.encode(schema);
    assert_eq!(
        ServerMsg::decode(&bytes, Some(schema)).ok(),
        Some(msg),
        "the encoding does not decode back"
    );
    assert_canonical(data, &bytes);
}
