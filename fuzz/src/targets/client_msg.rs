//! What the server runs on every binary message a player sends: `ClientMsg::decode` by the
//! room's game's schema (its input fields and message kinds) must never panic, never hold more
//! memory than its input could fill, and accept only the one canonical encoding of each
//! message, which decodes back to itself. A hello of another protocol version is the one
//! exception: only its version is read (so that it can be refused for it, whatever follows).
//! A message that decodes is one of the schema's kinds with a value of the right type for
//! each parameter, as the server's checks then assume.
//!
//! Input: a byte choosing the schema, then the message.

use tickcast::protocol::{ClientMsg, PROTOCOL_VERSION};

use super::{assert_canonical, assert_values_fit};
use crate::heap::{assert_bounded_decode, peak_alloc};
use crate::schemas::pick;

/// Checks one input.
pub fn run(data: &[u8]) {
    let Some((&which, data)) = data.split_first() else {
        return;
    };
    let schema = pick(which);
    let (decoded, peak) = peak_alloc(|| ClientMsg::decode(data, Some(schema)));
    assert_bounded_decode(peak, data.len());
    let Ok(msg) = decoded else { return };
    let bytes = msg.encode(Some(schema));
    assert_eq!(ClientMsg::decode(&bytes, Some(schema)).as_ref(), Ok(&msg), "the encoding does not decode back");
    match &msg {
        ClientMsg::Hello(hello) if hello.version != PROTOCOL_VERSION => {
            assert!(
                hello.name.is_empty() && hello.token.is_empty() && hello.resume.is_empty() && hello.options.is_empty(),
                "a hello of version {} was read past its version",
                hello.version
            );
            // Its encoding is the tag, the version, then four empty fields of a byte each.
            assert!(data.starts_with(&bytes[..bytes.len() - 4]), "not the hello's tag and version");
        }
        ClientMsg::Message(message) => {
            assert_values_fit(&schema.messages[usize::from(message.kind)].params, &message.values);
            assert_canonical(data, &bytes);
        }
        _ => assert_canonical(data, &bytes),
    }
}
