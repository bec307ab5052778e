//! A game's schema: what its entities are made of, what its input holds, which messages its
//! players may send, which events it tells, which options a join and a room may carry; as
//! data every client reads from the `Welcome` (protocol v4), so that one client decodes any
//! game with no code generated for it.
//!
//! A schema is also untrusted input to a client: [`Schema::decode`] checks every limit
//! ([`MAX_KINDS`], [`MAX_FIELDS`], name lengths, one field per role) and refuses what would
//! make the messages that follow ambiguous.

use std::fmt;

mod codec;

use super::values::Param;
use super::wire::DecodeError;

/// Entity kinds a schema may define.
pub const MAX_KINDS: usize = 16;
/// Fields an entity kind may have (the update mask is one byte).
pub const MAX_FIELDS: usize = 8;
/// Fields an input may have.
pub const MAX_INPUT_FIELDS: usize = 8;
/// Longest game, kind, field, message, event or parameter name, in bytes.
pub const MAX_SCHEMA_NAME: usize = 32;
/// Message kinds a schema may define.
pub const MAX_MESSAGES: usize = 32;
/// Event kinds a schema may define.
pub const MAX_EVENTS: usize = 64;
/// Parameters a message or an event may have, and options a join or a room may take.
pub const MAX_PARAMS: usize = 8;
/// The most messages of one kind a schema may allow a player per second.
pub const MAX_PER_SECOND: u32 = 1000;

/// How a field is stored and sent. Every field value is a `u32` in the engine (a signed one as
/// its two's complement bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A fixed-point coordinate in steps of `1 / scale` world units (`u32`): absolute in full
    /// entities, a signed step (zigzag varint) in updates. Moving is then a byte or two.
    Coord,
    /// An unsigned integer (`u32` varint), absolute in updates too.
    Uint,
    /// A signed integer (`i32` zigzag varint), absolute in updates too.
    Int,
    /// A flag (`00` / `01` in full entities); in updates its mask bit alone says it flipped.
    Flag,
    /// A small enumeration with this many values (2..=255): one byte, absolute in updates.
    Enum(u8),
    /// A short string of at most this many bytes (1..=255): a string in full entities and
    /// updates alike. In the engine the field's value is an index into its world's texts.
    Text(u8),
}

/// What a field means to a generic client (drawing, a leaderboard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Nothing a generic client needs to know.
    None,
    /// The entity's x position (a [`FieldType::Coord`]).
    X,
    /// The entity's y position (a [`FieldType::Coord`]).
    Y,
    /// A score, for a leaderboard.
    Score,
    /// A value to print beside the entity.
    Label,
    /// The entity's display name (a [`FieldType::Text`]).
    Name,
    /// The player that owns the entity: a [`FieldType::Uint`] holding that player's entity id.
    /// Its private fields go to that player. An entity of a kind without one is owned by the
    /// player it is (the entity whose id is the player's).
    Owner,
}

/// One field of an entity kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name, as spectators' JSON and clients' code use it.
    pub name: String,
    /// How it is stored and sent.
    pub ty: FieldType,
    /// What it means to a generic client.
    pub role: Role,
    /// Sent only to the entity's owner (see [`Role::Owner`]), never to other players or to
    /// spectators.
    pub private: bool,
}

/// One kind of entity: its name and its fields, in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// Its name (e.g. `player`, `orb`).
    pub name: String,
    /// Its fields, in the order they are sent.
    pub fields: Vec<Field>,
}

/// How an input field is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// One byte, two's complement.
    I8,
    /// One byte.
    U8,
    /// `00` or `01`.
    Bool,
    /// A zigzag varint.
    I32,
    /// A varint.
    U32,
}

/// One field of the input message, with the values it may take (the server closes a
/// connection that sends another with 1008).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputField {
    /// Its name, by which clients set it.
    pub name: String,
    /// How it is sent.
    pub ty: InputType,
    /// The smallest value allowed.
    pub min: i32,
    /// The largest value allowed.
    pub max: i32,
}

impl Field {
    /// A public field named `name`.
    pub fn new(name: &str, ty: FieldType, role: Role) -> Self {
        Self {
            name: name.into(),
            ty,
            role,
            private: false,
        }
    }

    /// This field, sent only to its entity's owner.
    pub fn private(self) -> Self {
        Self { private: true, ..self }
    }
}

impl Kind {
    /// A kind named `name` with these fields, in wire order.
    pub fn new(name: &str, fields: impl IntoIterator<Item = Field>) -> Self {
        Self {
            name: name.into(),
            fields: fields.into_iter().collect(),
        }
    }

    /// A kind that has a position: fields `x` and `y` (coordinates with the x and y roles,
    /// which clients draw by), then `more`.
    pub fn positioned(name: &str, more: impl IntoIterator<Item = Field>) -> Self {
        let position = [
            Field::new("x", FieldType::Coord, Role::X),
            Field::new("y", FieldType::Coord, Role::Y),
        ];
        Self::new(name, position.into_iter().chain(more))
    }

    /// Bit `i` set for each field `i` that is a [`FieldType::Text`].
    pub fn text_mask(&self) -> u8 {
        self.mask(|f| matches!(f.ty, FieldType::Text(_)))
    }

    /// Bit `i` set for each private field `i`.
    pub fn private_mask(&self) -> u8 {
        self.mask(|f| f.private)
    }

    /// The index of the field with the [`Role::Owner`], if the kind has one.
    pub fn owner_field(&self) -> Option<usize> {
        self.fields.iter().position(|f| f.role == Role::Owner)
    }

    fn mask(&self, pick: impl Fn(&Field) -> bool) -> u8 {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| pick(f))
            .fold(0, |mask, (i, _)| mask | (1 << i))
    }
}

/// A message a player may send besides its input: a discrete command that is never merged or
/// lost (buy, chat, ready), with its parameters, at most `per_second` a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageKind {
    /// Its name.
    pub name: String,
    /// Its parameters, in wire order.
    pub params: Vec<Param>,
    /// The most a player may send a second (in bursts of up to a second's worth); one more
    /// closes the connection.
    pub per_second: u32,
}

impl MessageKind {
    /// A message kind named `name` with `params`, allowed `per_second` times a second.
    pub fn new(name: &str, params: impl IntoIterator<Item = Param>, per_second: u32) -> Self {
        Self {
            name: name.into(),
            params: params.into_iter().collect(),
            per_second,
        }
    }
}

/// Something that happened, which a game tells players: a hit, a kill, a chat line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventKind {
    /// Its name.
    pub name: String,
    /// Its parameters, in wire order.
    pub params: Vec<Param>,
    /// Whether spectators see it too (when it is told to every player).
    pub public: bool,
}

impl EventKind {
    /// An event kind named `name` with `params`, seen by spectators if `public`.
    pub fn new(name: &str, params: impl IntoIterator<Item = Param>, public: bool) -> Self {
        Self {
            name: name.into(),
            params: params.into_iter().collect(),
            public,
        }
    }
}

impl InputField {
    /// An input field named `name`, of type `ty`, taking values in `[min, max]`.
    pub fn new(name: &str, ty: InputType, min: i32, max: i32) -> Self {
        Self {
            name: name.into(),
            ty,
            min,
            max,
        }
    }

    /// One axis of a direction: an `i8` in `[-127, 127]` (symmetric, so -128 is refused).
    pub fn axis(name: &str) -> Self {
        Self::new(name, InputType::I8, -127, 127)
    }
}

/// What a game is made of, as every client learns it from the `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The game's name.
    pub game: String,
    /// Coordinate steps per world unit.
    pub scale: u32,
    /// The world's width in world units (for drawing).
    pub width: u32,
    /// The world's height in world units.
    pub height: u32,
    /// Entity kinds; an entity's `kind` is an index into this list.
    pub kinds: Vec<Kind>,
    /// The input message's fields, in wire order.
    pub input: Vec<InputField>,
    /// The messages a player may send; a message's `kind` is an index into this list.
    pub messages: Vec<MessageKind>,
    /// The events the game tells; an event's `kind` is an index into this list.
    pub events: Vec<EventKind>,
    /// The options a player's hello (and matchmaking) may carry.
    pub options: Vec<Param>,
    /// The options `POST /rooms` may carry, which the game reads when a room starts.
    pub room_options: Vec<Param>,
}

impl Schema {
    /// The schema of game `game` with coordinates in `scale` steps per unit and a world of
    /// `width` by `height` units; the rest is added with [`Schema::kind`], [`Schema::input`]
    /// and the like.
    pub fn new(game: &str, scale: u32, width: u32, height: u32) -> Self {
        Self {
            game: game.into(),
            scale,
            width,
            height,
            kinds: Vec::new(),
            input: Vec::new(),
            messages: Vec::new(),
            events: Vec::new(),
            options: Vec::new(),
            room_options: Vec::new(),
        }
    }

    /// With one more entity kind (its index is the number of kinds before it).
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kinds.push(kind);
        self
    }

    /// With one more input field.
    pub fn with_input(mut self, field: InputField) -> Self {
        self.input.push(field);
        self
    }

    /// With one more message kind.
    pub fn with_message(mut self, message: MessageKind) -> Self {
        self.messages.push(message);
        self
    }

    /// With one more event kind.
    pub fn with_event(mut self, event: EventKind) -> Self {
        self.events.push(event);
        self
    }

    /// With one more join option.
    pub fn with_option(mut self, option: Param) -> Self {
        self.options.push(option);
        self
    }

    /// With one more room option.
    pub fn with_room_option(mut self, option: Param) -> Self {
        self.room_options.push(option);
        self
    }

    /// Whether any kind has a private field.
    pub fn has_private(&self) -> bool {
        self.kinds.iter().any(|k| k.private_mask() != 0)
    }

    /// The index of the message kind named `name`.
    pub fn message_named(&self, name: &str) -> Option<u8> {
        self.messages.iter().position(|m| m.name == name).map(|i| i as u8)
    }

    /// The index of the event kind named `name`.
    pub fn event_named(&self, name: &str) -> Option<u8> {
        self.events.iter().position(|e| e.name == name).map(|i| i as u8)
    }

    /// Kind `kind`, if the schema has it.
    pub fn kind(&self, kind: u8) -> Option<&Kind> {
        self.kinds.get(usize::from(kind))
    }

    /// The index of the kind named `name`.
    pub fn kind_named(&self, name: &str) -> Option<u8> {
        self.kinds.iter().position(|k| k.name == name).map(|i| i as u8)
    }

    /// The index of the input field named `name`.
    pub fn input_named(&self, name: &str) -> Option<usize> {
        self.input.iter().position(|f| f.name == name)
    }

    /// Checks the limits and rules every schema keeps (what [`Schema::decode`] enforces on a
    /// schema from the wire; a game's own schema is checked when the game is registered).
    pub fn validate(&self) -> Result<(), DecodeError> {
        let name_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= MAX_SCHEMA_NAME
                && n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !name_ok(&self.game) {
            return Err(DecodeError::Invalid("a game name must be 1 to 32 of a-z, 0-9, _"));
        }
        if self.scale == 0 {
            return Err(DecodeError::Invalid("the coordinate scale must be at least 1"));
        }
        if self.kinds.is_empty() || self.kinds.len() > MAX_KINDS {
            return Err(DecodeError::OutOfRange("number of entity kinds"));
        }
        let unique = |names: Vec<&str>| names.iter().enumerate().all(|(i, n)| !names[..i].contains(n));
        let params_ok = |params: &[Param]| {
            params.len() <= MAX_PARAMS
                && params.iter().all(|p| name_ok(&p.name) && p.is_valid())
                && unique(params.iter().map(|p| p.name.as_str()).collect())
        };
        if !unique(self.kinds.iter().map(|k| k.name.as_str()).collect())
            || !unique(self.input.iter().map(|f| f.name.as_str()).collect())
            || !unique(self.messages.iter().map(|m| m.name.as_str()).collect())
            || !unique(self.events.iter().map(|e| e.name.as_str()).collect())
            || !self
                .kinds
                .iter()
                .all(|k| unique(k.fields.iter().map(|f| f.name.as_str()).collect()))
        {
            return Err(DecodeError::Invalid(
                "two kinds, fields of a kind, input fields, messages or events share a name",
            ));
        }
        for kind in &self.kinds {
            if !name_ok(&kind.name) || !kind.fields.iter().all(|f| name_ok(&f.name)) {
                return Err(DecodeError::Invalid(
                    "kind and field names must be 1 to 32 of a-z, 0-9, _",
                ));
            }
            if kind.fields.len() > MAX_FIELDS {
                return Err(DecodeError::OutOfRange("number of fields of a kind"));
            }
            for role in [Role::X, Role::Y, Role::Score, Role::Label, Role::Name, Role::Owner] {
                if kind.fields.iter().filter(|f| f.role == role).count() > 1 {
                    return Err(DecodeError::Invalid("a role is given to two fields of one kind"));
                }
            }
            for field in &kind.fields {
                let fits = match field.role {
                    Role::X | Role::Y => field.ty == FieldType::Coord,
                    Role::Name => matches!(field.ty, FieldType::Text(_)),
                    Role::Owner => field.ty == FieldType::Uint,
                    Role::None | Role::Score | Role::Label => true,
                };
                if !fits {
                    return Err(DecodeError::Invalid(
                        "x and y need coordinate fields, name a text, owner a uint",
                    ));
                }
                if field.private && !matches!(field.role, Role::None | Role::Score | Role::Label) {
                    return Err(DecodeError::Invalid("a private field may not be x, y, name or owner"));
                }
                match field.ty {
                    FieldType::Enum(n) if n < 2 => {
                        return Err(DecodeError::Invalid("an enumeration needs at least 2 values"));
                    }
                    FieldType::Text(0) => return Err(DecodeError::Invalid("a text field needs at least 1 byte")),
                    _ => {}
                }
            }
        }
        if self.input.len() > MAX_INPUT_FIELDS {
            return Err(DecodeError::OutOfRange("number of input fields"));
        }
        for field in &self.input {
            if !name_ok(&field.name) {
                return Err(DecodeError::Invalid("input field names must be 1 to 32 of a-z, 0-9, _"));
            }
            let (lo, hi) = field.ty.range();
            if field.min > field.max || field.min < lo || field.max > hi {
                return Err(DecodeError::Invalid("an input field's range does not fit its type"));
            }
        }
        if self.messages.len() > MAX_MESSAGES {
            return Err(DecodeError::OutOfRange("number of message kinds"));
        }
        if self.events.len() > MAX_EVENTS {
            return Err(DecodeError::OutOfRange("number of event kinds"));
        }
        for message in &self.messages {
            if !name_ok(&message.name) || !params_ok(&message.params) {
                return Err(DecodeError::Invalid(
                    "a message kind's name or parameters are not valid",
                ));
            }
            if !(1..=MAX_PER_SECOND).contains(&message.per_second) {
                return Err(DecodeError::OutOfRange("a message kind's rate"));
            }
        }
        for event in &self.events {
            if !name_ok(&event.name) || !params_ok(&event.params) {
                return Err(DecodeError::Invalid("an event kind's name or parameters are not valid"));
            }
            // Spectators' JSON of an event holds its parameters beside these two keys.
            if event.params.iter().any(|p| p.name == "tick" || p.name == "kind") {
                return Err(DecodeError::Invalid("an event parameter may not be named tick or kind"));
            }
        }
        if !params_ok(&self.options) || !params_ok(&self.room_options) {
            return Err(DecodeError::Invalid("options must be at most 8 valid parameters"));
        }
        Ok(())
    }
}

impl InputType {
    /// The values the type can carry.
    pub fn range(self) -> (i32, i32) {
        match self {
            InputType::I8 => (i32::from(i8::MIN), i32::from(i8::MAX)),
            InputType::U8 => (0, 255),
            InputType::Bool => (0, 1),
            InputType::I32 => (i32::MIN, i32::MAX),
            // Input values are `i32`: a `U32` field carries the non-negative ones.
            InputType::U32 => (0, i32::MAX),
        }
    }
}

impl FieldType {
    /// Its name in PROTOCOL.md and the spectators' schema JSON.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Coord => "coord",
            FieldType::Uint => "uint",
            FieldType::Int => "int",
            FieldType::Flag => "flag",
            FieldType::Enum(_) => "enum",
            FieldType::Text(_) => "text",
        }
    }
}

impl Role {
    /// Its name in the spectators' schema JSON (`None`: no role).
    pub fn name(self) -> Option<&'static str> {
        match self {
            Role::None => None,
            Role::X => Some("x"),
            Role::Y => Some("y"),
            Role::Score => Some("score"),
            Role::Label => Some("label"),
            Role::Name => Some("name"),
            Role::Owner => Some("owner"),
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.game)?;
        for kind in &self.kinds {
            let fields: Vec<_> = kind.fields.iter().map(|f| f.name.as_str()).collect();
            write!(f, " {}({})", kind.name, fields.join(","))?;
        }
        let input: Vec<_> = self.input.iter().map(|f| f.name.as_str()).collect();
        write!(f, "; input({})", input.join(","))?;
        let messages: Vec<_> = self.messages.iter().map(|m| m.name.as_str()).collect();
        let events: Vec<_> = self.events.iter().map(|e| e.name.as_str()).collect();
        if !messages.is_empty() {
            write!(f, "; messages({})", messages.join(","))?;
        }
        if !events.is_empty() {
            write!(f, "; events({})", events.join(","))?;
        }
        Ok(())
    }
}
