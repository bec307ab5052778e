//! What each fuzz target checks: `fuzz_targets/<name>.rs` only hands libFuzzer's input to
//! `<name>::run`. Every input starts with a byte choosing the schema its messages are read by
//! (arena's, tanks' or sampler's: `crate::schemas::pick`); the checks shared by the targets are
//! here.

pub mod apply_delta;
pub mod apply_private;
pub mod client_msg;
pub mod server_msg;

use tickcast::protocol::delta::{ApplyError, NetWorld};
use tickcast::protocol::{Param, ParamType, Snapshot, Value};

/// Splits `data` into a message whose length its first two bytes give (little endian; cut to
/// what is there) and the bytes after it; `None` without two bytes.
pub(crate) fn unframe(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (head, rest) = data.split_first_chunk::<2>()?;
    Some(rest.split_at(usize::from(u16::from_le_bytes(*head)).min(rest.len())))
}

/// Asserts that `input`, which decoded to a message whose encoding is `canonical`, is exactly
/// that encoding: the decoders refuse anything else, non-minimal varints included.
pub(crate) fn assert_canonical(input: &[u8], canonical: &[u8]) {
    assert_eq!(input, canonical, "a decoded input is not its canonical encoding");
}

/// Asserts that decoded `values` are what `params` promise whoever reads them next (the
/// server's checks of a message, a client showing an event): one per parameter, each of its
/// parameter's type, a text within its limit and without control characters, so that the only
/// check left, an int's range, is all [`Param::refuse`] can refuse.
pub(crate) fn assert_values_fit(params: &[Param], values: &[Value]) {
    assert_eq!(values.len(), params.len(), "not one value per parameter");
    for (param, value) in params.iter().zip(values) {
        let in_range = match (param.ty, value) {
            (ParamType::Int { min, max }, Value::Int(v)) => (min..=max).contains(v),
            (ParamType::Text { max_len }, Value::Text(t)) => {
                assert!(t.len() <= usize::from(max_len), "{} is over its limit", param.name);
                assert!(!t.chars().any(char::is_control), "{} has a control character", param.name);
                true
            }
            _ => panic!("{} has a value of another type", param.name),
        };
        assert_eq!(param.refuse(value).is_none(), in_range, "{} = {value:?}", param.name);
    }
}

/// The world a decoded snapshot describes, which must be refused exactly when its ids do not
/// strictly ascend; `None` when refused.
pub(crate) fn world_from(snapshot: &Snapshot) -> Option<NetWorld> {
    let ordered = snapshot.entities.windows(2).all(|w| w[0].id < w[1].id);
    match NetWorld::from_snapshot(snapshot) {
        Ok(world) => {
            assert!(ordered, "an unordered snapshot was accepted");
            Some(world)
        }
        Err(e) => {
            assert!(!ordered && e == ApplyError::Unordered, "an ordered snapshot was refused: {e}");
            None
        }
    }
}
