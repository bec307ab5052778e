//! How a player's session ends: the close code and reason it sends and how the close is
//! counted ([`Close`]), and the checks on what a player sends whose failures close it (the
//! hello's fields, decoding, inputs and messages against the schema), in the order PROTOCOL.md
//! gives them.

use axum::extract::ws::close_code;

use crate::metrics::CloseReason;
use crate::players::socket::ReadError;
use crate::protocol::ended::{REFUSED, RESUME_REFUSED};
use crate::protocol::frames::Fault;
use crate::protocol::{
    ClientMsg, Hello, InputField, MAX_NAME_LEN, MAX_RESUME_LEN, MAX_TOKEN_LEN, Message, PROTOCOL_VERSION, Schema,
};
use crate::room::Room;
use crate::state::AppState;

/// Why a session ends: the close code and reason sent to the client, and how it is counted.
#[derive(Debug)]
pub(super) struct Close {
    pub(super) reason: CloseReason,
    /// The close frame to send: a code and reason, an empty one (echoing a peer's close that
    /// carried no code), or none when the peer is gone.
    pub(super) frame: Option<(u16, String)>,
}

impl Close {
    pub(super) fn new(reason: CloseReason, code: u16, text: impl Into<String>) -> Self {
        Self {
            reason,
            frame: Some((code, text.into())),
        }
    }

    /// The peer went away without a close frame: nothing to send.
    pub(super) fn gone() -> Self {
        Self {
            reason: CloseReason::PeerGone,
            frame: None,
        }
    }

    /// The peer sent a close frame: echo its code (RFC 6455, 5.5.1).
    pub(super) fn echo(code: Option<u16>) -> Self {
        Self {
            reason: CloseReason::PeerGone,
            frame: Some((code.unwrap_or(0), String::new())),
        }
    }

    pub(super) fn too_slow(why: impl Into<String>) -> Self {
        Self::new(
            CloseReason::TooSlow,
            close_code::POLICY,
            format!("too slow: {}", why.into()),
        )
    }

    pub(super) fn resume_refused(why: impl Into<String>) -> Self {
        Self::new(CloseReason::ResumeRefused, RESUME_REFUSED, why)
    }

    /// Whether the connection dropped rather than ended: the peer vanished without a close
    /// frame, went silent, or took nothing for too long. Its player's seat is kept; a
    /// goodbye, a broken rule or the room's own word leaves at once.
    pub(super) fn dropped(&self) -> bool {
        match self.reason {
            CloseReason::PeerGone => self.frame.is_none(),
            CloseReason::Idle | CloseReason::TooSlow => true,
            _ => false,
        }
    }
}

pub(super) fn read_error(state: &AppState, err: ReadError) -> Close {
    let fault = match err {
        // A peer that vanished without a close handshake simply left.
        ReadError::Ended(_) => return Close::gone(),
        ReadError::Fault(fault) => fault,
    };
    let reason = match fault {
        Fault::TooBig { .. } => CloseReason::TooBig,
        Fault::InvalidUtf8(_) | Fault::Protocol(_) => CloseReason::Framing,
    };
    if reason == CloseReason::Framing {
        state.metrics.decode_errors.inc();
    }
    Close::new(reason, fault.code(), fault.to_string())
}

pub(super) fn decode(state: &AppState, room: &Room, bytes: &[u8]) -> Result<ClientMsg, Close> {
    ClientMsg::decode(bytes, Some(room.schema())).map_err(|err| {
        state.metrics.decode_errors.inc();
        Close::new(
            CloseReason::Malformed,
            close_code::UNSUPPORTED,
            format!("malformed message: {err}"),
        )
    })
}

/// The checks on a hello's own fields, in the order PROTOCOL.md gives.
pub(super) fn check_hello(hello: &Hello) -> Result<(), Close> {
    if hello.version != PROTOCOL_VERSION {
        return Err(Close::new(
            CloseReason::Handshake,
            close_code::PROTOCOL,
            format!(
                "protocol version {} not supported: this server speaks {PROTOCOL_VERSION}",
                hello.version
            ),
        ));
    }
    match name_or_token_refused(&hello.name, &hello.token, &hello.resume) {
        Some(why) => Err(Close::new(CloseReason::Policy, close_code::POLICY, why)),
        None => Ok(()),
    }
}

/// Why a hello's name or token is refused (1008), if it is: also what a page asking first is
/// told ([`super::admission`]).
pub(super) fn name_or_token_refused(name: &str, token: &str, resume: &str) -> Option<String> {
    if name.len() > MAX_NAME_LEN {
        return Some(format!("name over {MAX_NAME_LEN} bytes"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Some(format!("token over {MAX_TOKEN_LEN} bytes"));
    }
    if resume.len() > MAX_RESUME_LEN {
        return Some(format!("resume token over {MAX_RESUME_LEN} bytes"));
    }
    // A newline or an escape sequence in a name is a forged log line or a repainted terminal
    // wherever the name is shown.
    if name.chars().any(char::is_control) {
        return Some("name contains control characters".into());
    }
    None
}

/// The close of a join the game refused, with its reason.
pub(super) fn refused(reason: &str) -> Close {
    Close::new(CloseReason::Refused, REFUSED, reason)
}

/// Checks a message's values against its kind's parameters (its kind and its texts were
/// checked as it was decoded).
pub(super) fn check_message(schema: &Schema, message: &Message) -> Result<(), Close> {
    let kind = &schema.messages[usize::from(message.kind)];
    for (param, value) in kind.params.iter().zip(&message.values) {
        if let Some(why) = param.refuse(value) {
            return Err(Close::new(
                CloseReason::Policy,
                close_code::POLICY,
                format!("message {} {} {why}", kind.name, param.name),
            ));
        }
    }
    Ok(())
}

/// Checks each input value against its field's range in the schema.
pub(super) fn check_input(fields: &[InputField], values: &[i32]) -> Result<(), Close> {
    for (field, value) in fields.iter().zip(values) {
        if !(field.min..=field.max).contains(value) {
            return Err(Close::new(
                CloseReason::Policy,
                close_code::POLICY,
                format!(
                    "input {} = {value} is outside [{}, {}]",
                    field.name, field.min, field.max
                ),
            ));
        }
    }
    Ok(())
}
