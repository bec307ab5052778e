//! The values games exchange besides entity fields and inputs: short strings ([`Text`]), and the
//! parameters of messages, events and options ([`Param`], [`Value`]), each declared by name and
//! type in the schema and checked by the engine before a game sees it.
//!
//! A [`Text`] is shared, not copied: a name shown on an entity every tick is one allocation for
//! the life of the player, its reference count touched once per tick.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::wire::{DecodeError, Reader, Writer};

/// The longest text any field, parameter or option may hold, in bytes.
pub const MAX_TEXT: usize = 255;

/// A short string: at most [`MAX_TEXT`] bytes of UTF-8 with no control characters (Unicode
/// category Cc), so it is safe to print in a log, a terminal or a page.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Arc<str>);

/// Why a string is not a [`Text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Longer than allowed.
    #[error("over {0} bytes")]
    TooLong(usize),
    /// It holds a control character.
    #[error("contains control characters")]
    Control,
}

impl Text {
    /// `text`, if it is at most [`MAX_TEXT`] bytes with no control characters.
    pub fn new(text: &str) -> Result<Self, TextError> {
        check_text(text, MAX_TEXT)?;
        Ok(Self::trusted(text))
    }

    /// `text` made safe: control characters become U+FFFD, and it is cut (at a character
    /// boundary) to at most `max` bytes. For what a game makes of untrusted strings.
    pub fn lossy(text: &str, max: usize) -> Self {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        Self::trusted(truncate(&clean, max.min(MAX_TEXT)))
    }

    /// The empty text (one shared allocation).
    pub fn empty() -> Self {
        static EMPTY: OnceLock<Text> = OnceLock::new();
        EMPTY.get_or_init(|| Self(Arc::from(""))).clone()
    }

    /// A text already checked.
    fn trusted(text: &str) -> Self {
        if text.is_empty() {
            Self::empty()
        } else {
            Self(Arc::from(text))
        }
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// This text cut (at a character boundary) to at most `max` bytes: itself when it fits.
    pub fn fit(&self, max: usize) -> Self {
        if self.len() <= max {
            self.clone()
        } else {
            Self::trusted(truncate(self, max))
        }
    }

    /// Whether both are the same allocation (then they are equal without a look at the bytes).
    pub fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::empty()
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Text::new(&text).map_err(|err| serde::de::Error::custom(format!("a text {err}")))
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Checks a string against a text's rules with a limit of `max` bytes.
pub fn check_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.len() > max {
        return Err(TextError::TooLong(max));
    }
    if text.chars().any(char::is_control) {
        return Err(TextError::Control);
    }
    Ok(())
}

/// The value of one parameter of a message, an event or an option (in JSON: a number or a
/// string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A whole number (a `bool` is 0 or 1, an enumeration its index).
    Int(i32),
    /// A short string.
    Text(Text),
}

impl Value {
    /// A text value; `text` is made safe as [`Text::lossy`] does (at most [`MAX_TEXT`] bytes).
    pub fn text(text: &str) -> Self {
        Self::Text(Text::lossy(text, MAX_TEXT))
    }

    /// The number, if it is one.
    pub fn as_int(&self) -> Option<i32> {
        match self {
            Self::Int(v) => Some(*v),
            Self::Text(_) => None,
        }
    }

    /// The text, if it is one.
    pub fn as_text(&self) -> Option<&Text> {
        match self {
            Self::Text(t) => Some(t),
            Self::Int(_) => None,
        }
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int(v)
    }
}

impl From<Text> for Value {
    fn from(t: Text) -> Self {
        Self::Text(t)
    }
}

/// What a parameter holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A whole number in `[min, max]` (sent as a zigzag varint).
    Int {
        /// The smallest value allowed.
        min: i32,
        /// The largest value allowed.
        max: i32,
    },
    /// A text of at most `max_len` bytes (1..=255).
    Text {
        /// Its most bytes.
        max_len: u8,
    },
}

/// One named parameter of a message, an event or an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name (`a-z 0-9 _`, 1 to 32 bytes).
    pub name: String,
    /// What it holds.
    pub ty: ParamType,
}

impl Param {
    /// A whole number named `name` in `[min, max]`.
    pub fn int(name: &str, min: i32, max: i32) -> Self {
        Self {
            name: name.into(),
            ty: ParamType::Int { min, max },
        }
    }

    /// A flag named `name` (an int, 0 or 1).
    pub fn flag(name: &str) -> Self {
        Self::int(name, 0, 1)
    }

    /// A text named `name` of at most `max_len` bytes.
    pub fn text(name: &str, max_len: u8) -> Self {
        Self {
            name: name.into(),
            ty: ParamType::Text { max_len },
        }
    }

    /// Why `value` is not a value of this parameter, if it is not (the text a close reason or an
    /// HTTP error carries, after `<where> <name>`).
    pub fn refuse(&self, value: &Value) -> Option<String> {
        match (self.ty, value) {
            (ParamType::Int { min, max }, Value::Int(v)) if !(min..=max).contains(v) => {
                Some(format!("= {v} is outside [{min}, {max}]"))
            }
            (ParamType::Int { .. }, Value::Int(_)) => None,
            (ParamType::Text { max_len }, Value::Text(t)) => match check_text(t, usize::from(max_len)) {
                Ok(()) => None,
                Err(TextError::TooLong(max)) => Some(format!("is over {max} bytes")),
                Err(TextError::Control) => Some("contains control characters".into()),
            },
            (ParamType::Int { .. }, Value::Text(_)) => Some("must be a number".into()),
            (ParamType::Text { .. }, Value::Int(_)) => Some("must be a text".into()),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.str(&self.name);
        match self.ty {
            ParamType::Int { min, max } => {
                w.u32(0);
                w.i32(min);
                w.i32(max);
            }
            ParamType::Text { max_len } => {
                w.u32(1);
                w.u8(max_len);
            }
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>, max_name: usize) -> Result<Self, DecodeError> {
        let name = r.str(max_name)?;
        let ty = match r.u32()? {
            0 => ParamType::Int {
                min: r.i32()?,
                max: r.i32()?,
            },
            1 => ParamType::Text { max_len: r.u8()? },
            _ => return Err(DecodeError::Unknown("parameter type")),
        };
        Ok(Self { name, ty })
    }

    /// Whether the parameter is well formed: a range whose `min` is not over its `max`, a text
    /// of 1 to 255 bytes.
    pub(crate) fn is_valid(&self) -> bool {
        match self.ty {
            ParamType::Int { min, max } => min <= max,
            ParamType::Text { max_len } => max_len >= 1,
        }
    }

    /// Its type's name in the spectators' schema JSON and the docs.
    pub fn type_name(&self) -> &'static str {
        match self.ty {
            ParamType::Int { .. } => "int",
            ParamType::Text { .. } => "text",
        }
    }
}

/// Writes `values` as `params` say (an int as a zigzag varint, a text as a string); a value
/// missing or of the wrong type is sent as 0 or "" (the engine's own values always fit).
pub(crate) fn write_values(w: &mut Writer, params: &[Param], values: &[Value]) {
    for (i, param) in params.iter().enumerate() {
        match (param.ty, values.get(i)) {
            (ParamType::Int { .. }, Some(Value::Int(v))) => w.i32(*v),
            (ParamType::Int { .. }, _) => w.i32(0),
            (ParamType::Text { .. }, Some(Value::Text(t))) => w.str(t),
            (ParamType::Text { .. }, _) => w.str(""),
        }
    }
}

/// Reads a text of at most `max` bytes: UTF-8 with no control characters, or an error.
pub(crate) fn read_text(r: &mut Reader<'_>, max: usize) -> Result<Text, DecodeError> {
    let text = r.str(max)?;
    if text.chars().any(char::is_control) {
        return Err(DecodeError::Invalid("a text with control characters"));
    }
    Ok(Text::trusted(&text))
}

/// Reads one value per parameter: an int (its range is the checks' business:
/// [`Param::refuse`]), or a text within its parameter's limit.
pub(crate) fn read_values(r: &mut Reader<'_>, params: &[Param]) -> Result<Vec<Value>, DecodeError> {
    params
        .iter()
        .map(|param| {
            Ok(match param.ty {
                ParamType::Int { .. } => Value::Int(r.i32()?),
                ParamType::Text { max_len } => Value::Text(read_text(r, usize::from(max_len))?),
            })
        })
        .collect()
}

/// Writes a self-describing value (an option in a hello): tag 0 then an int, or tag 1 then a
/// text.
pub(crate) fn write_tagged(w: &mut Writer, value: &Value) {
    match value {
        Value::Int(v) => {
            w.u32(0);
            w.i32(*v);
        }
        Value::Text(t) => {
            w.u32(1);
            w.str(t);
        }
    }
}

/// Reads what [`write_tagged`] writes.
pub(crate) fn read_tagged(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    match r.u32()? {
        0 => Ok(Value::Int(r.i32()?)),
        1 => Ok(Value::Text(read_text(r, MAX_TEXT)?)),
        _ => Err(DecodeError::Unknown("value tag")),
    }
}

/// Options by name (a join's or a room's), each checked against its parameter in the schema
/// (in JSON, an object of numbers and strings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Options(BTreeMap<String, Value>);

impl Options {
    /// No options.
    pub fn none() -> Self {
        Self::default()
    }

    /// `given` checked against `params`: every name must be one of them and its value must
    /// fit it. The error is the reason to give (`option team = 7 is outside [0, 1]`).
    pub fn checked(params: &[Param], given: impl IntoIterator<Item = (String, Value)>) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (name, value) in given {
            let Some(param) = params.iter().find(|p| p.name == name) else {
                let known: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
                return Err(format!(
                    "unknown option {name:?} (this game's options: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ));
            };
            if let Some(why) = param.refuse(&value) {
                return Err(format!("option {name} {why}"));
            }
            if out.insert(name.clone(), value).is_some() {
                return Err(format!("option {name} given twice"));
            }
        }
        Ok(Self(out))
    }

    /// The option named `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The number named `name`, if given as one.
    pub fn int(&self, name: &str) -> Option<i32> {
        self.get(name).and_then(Value::as_int)
    }

    /// The text named `name`, if given as one.
    pub fn text(&self, name: &str) -> Option<&Text> {
        self.get(name).and_then(Value::as_text)
    }

    /// Every option, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether none was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_refuse_control_characters_and_lossy_cuts_at_a_character() {
        assert_eq!(Text::new("bob\n").unwrap_err(), TextError::Control);
        assert_eq!(Text::new(&"x".repeat(256)).unwrap_err(), TextError::TooLong(255));
        assert_eq!(Text::lossy("a\u{1b}[2J", 32).as_str(), "a\u{fffd}[2J");
        assert_eq!(Text::lossy("héé", 4).as_str(), "hé", "not inside the second é");
        assert!(Text::empty().same(&Text::new("").unwrap()), "one empty text");
    }

    #[test]
    fn options_are_checked_by_name_type_and_range() {
        let params = [Param::int("team", 0, 1), Param::text("colour", 8)];
        fn given(v: Vec<(&str, Value)>) -> Vec<(String, Value)> {
            v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
        }
        let ok = Options::checked(&params, given(vec![("team", Value::Int(1))])).unwrap();
        assert_eq!(ok.int("team"), Some(1));
        assert_eq!(
            Options::checked(&params, given(vec![("team", Value::Int(7))])).unwrap_err(),
            "option team = 7 is outside [0, 1]"
        );
        assert_eq!(
            Options::checked(&params, given(vec![("colour", Value::text("magentaaa"))])).unwrap_err(),
            "option colour is over 8 bytes"
        );
        assert!(Options::checked(&params, given(vec![("mode", Value::Int(1))])).is_err());
        assert!(Options::checked(&params, given(vec![("colour", Value::Int(1))])).is_err());
    }
}
