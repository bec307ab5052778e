//! Chat, in any game whose schema declares a `chat` message: the message's values built from
//! the schema (the line in its first text parameter, every other parameter the value nearest
//! 0 its range allows: in tanks, `team` 0, everyone), and the line `play` is typing.
//!
//! In `play`, `t` opens the line; printable keys type, Backspace erases, Enter sends and Esc
//! drops it. While it is open no key moves, turns or fires.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tickcast::protocol::{ParamType, Schema, Text, Value};

/// The message kind chat is sent as.
pub const CHAT: &str = "chat";

/// The values of a `chat` message saying `line` (cut to the parameter's length), or `None` if
/// the game has no chat, or its chat takes no text.
pub fn values(schema: &Schema, line: &str) -> Option<Vec<Value>> {
    let kind = schema.messages.get(usize::from(schema.message_named(CHAT)?))?;
    let mut line = Some(line);
    let values: Vec<Value> = kind
        .params
        .iter()
        .map(|p| match p.ty {
            ParamType::Text { max_len } => match line.take() {
                Some(line) => Value::Text(Text::lossy(line, usize::from(max_len))),
                None => Value::Text(Text::empty()),
            },
            ParamType::Int { min, max } => Value::Int(0.clamp(min, max)),
        })
        .collect();
    line.is_none().then_some(values)
}

/// The longest line the game's chat takes, if it has one.
pub fn max_len(schema: &Schema) -> Option<usize> {
    let kind = schema.messages.get(usize::from(schema.message_named(CHAT)?))?;
    kind.params.iter().find_map(|p| match p.ty {
        ParamType::Text { max_len } => Some(usize::from(max_len)),
        ParamType::Int { .. } => None,
    })
}

/// What a key did to the line being typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// The line changed (or the key meant nothing); typing goes on.
    Typing,
    /// Enter: send this line.
    Send(String),
    /// Esc: the line is dropped.
    Cancel,
}

/// A line being typed, at most `max` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typing {
    line: String,
    max: usize,
}

impl Typing {
    /// An empty line of at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            line: String::new(),
            max,
        }
    }

    /// The line so far.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Applies a key.
    pub fn key(&mut self, key: &KeyEvent) -> Edit {
        if key.kind == KeyEventKind::Release {
            return Edit::Typing;
        }
        match key.code {
            KeyCode::Enter => return Edit::Send(std::mem::take(&mut self.line)),
            KeyCode::Esc => return Edit::Cancel,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => return Edit::Cancel,
            KeyCode::Backspace => {
                self.line.pop();
            }
            KeyCode::Char(c) if !c.is_control() && self.line.len() + c.len_utf8() <= self.max => self.line.push(c),
            _ => {}
        }
        Edit::Typing
    }
}

#[cfg(test)]
mod tests {
    use tickcast::game::{Arena, Game, GameConfig, Tanks};

    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn tanks_chat_is_the_line_to_everyone_and_arena_has_none() {
        let tanks = Tanks::schema(&GameConfig::default());
        assert_eq!(
            values(&tanks, "gg"),
            Some(vec![Value::Text(Text::new("gg").unwrap()), Value::Int(0)])
        );
        assert_eq!(max_len(&tanks), Some(100));
        let long = "x".repeat(300);
        let cut = values(&tanks, &long).unwrap();
        assert_eq!(cut[0].as_text().map(Text::len), Some(100));
        let arena = Arena::schema(&GameConfig::default());
        assert_eq!((values(&arena, "gg"), max_len(&arena)), (None, None));
    }

    #[test]
    fn typing_edits_within_its_length_and_enter_sends() {
        let mut typing = Typing::new(3);
        for c in ['h', 'i', '\u{7}', '!', '?'] {
            assert_eq!(typing.key(&press(KeyCode::Char(c))), Edit::Typing);
        }
        assert_eq!(typing.line(), "hi!");
        typing.key(&press(KeyCode::Backspace));
        assert_eq!(typing.key(&press(KeyCode::Enter)), Edit::Send("hi".into()));
        assert_eq!(typing.line(), "");
        assert_eq!(typing.key(&press(KeyCode::Esc)), Edit::Cancel);
    }
}
