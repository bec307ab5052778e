//! What every client runs on the server's bytes: `ServerMsg::decode` by the game's schema
//! (snapshots, deltas, private fields and events are read by it) must never panic, never hold
//! more memory than its input could fill, and accept only the one canonical encoding of each
//! message, which decodes back to itself; a decoded event is one of the schema's kinds with a
//! value of the right type for each parameter. A `Welcome` carries a schema, untrusted too:
//! whatever schema decodes is then used to read more bytes.
//!
//! Input: a byte choosing the schema, by its value mod 4: 0, 1, 2 a game's (arena, tanks,
//! sampler), then the message; 3 the schema of a `Welcome` that comes first: two bytes (little
//! endian) giving the welcome's length, the welcome, then the message read by its schema.

use tickcast::protocol::{Schema, ServerMsg};

use super::{assert_canonical, assert_values_fit, unframe};
use crate::heap::{assert_bounded_decode, peak_alloc};
use crate::schemas::pick;

/// The schema byte (mod 4) of an input whose schema comes in a `Welcome` first.
pub(crate) const FROM_WELCOME: u8 = 3;

/// Checks one input.
pub fn run(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    if which % 4 != FROM_WELCOME {
        check(data, pick(which % 4));
        return;
    }
    let Some((welcome, then)) = unframe(data) else { return };
    // Read by any schema: a welcome needs none.
    check(welcome, pick(0));
    // A hostile schema must not make the messages read with it panic either.
    if let Ok(ServerMsg::Welcome(welcome)) = ServerMsg::decode(welcome, None) {
        check(then, &welcome.schema);
    }
}

fn check(data: &[u8], schema: &Schema) {
    let (decoded, peak) = peak_alloc(|| ServerMsg::decode(data, Some(schema)));
    assert_bounded_decode(peak, data.len());
    let Ok(msg) = decoded else { return };
    if let ServerMsg::Events(events) = &msg {
        for event in &events.events {
            assert_values_fit(&schema.events[usize::from(event.kind)].params, &event.values);
        }
    }
    let bytes = msg.encode(schema);
    assert_eq!(ServerMsg::decode(&bytes, Some(schema)).as_ref(), Ok(&msg), "the encoding does not decode back");
    assert_canonical(data, &bytes);
}
