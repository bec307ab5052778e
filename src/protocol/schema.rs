//! A game's schema: what its entities are made of and what its input holds, as data every
//! client reads from the `Welcome` (protocol v3), so that one client decodes any game with no
//! code generated for it.
//!
//! A schema is also untrusted input to a client: [`Schema::decode`] checks every limit
//! ([`MAX_KINDS`], [`MAX_FIELDS`], name lengths, one field per role) and refuses what would
//! make the messages that follow ambiguous.

use std::fmt;

use super::wire::{DecodeError, Reader, Writer};

/// Entity kinds a schema may define.
pub const MAX_KINDS: usize = 16;
/// Fields an entity kind may have (the update mask is one byte).
pub const MAX_FIELDS: usize = 8;
/// Fields an input may have.
pub const MAX_INPUT_FIELDS: usize = 8;
/// Longest game, kind or field name, in bytes.
pub const MAX_SCHEMA_NAME: usize = 32;

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
    /// A field named `name`.
    pub fn new(name: &str, ty: FieldType, role: Role) -> Self {
        Self {
            name: name.into(),
            ty,
            role,
        }
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
}

impl Schema {
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
        if !unique(self.kinds.iter().map(|k| k.name.as_str()).collect())
            || !unique(self.input.iter().map(|f| f.name.as_str()).collect())
            || !self
                .kinds
                .iter()
                .all(|k| unique(k.fields.iter().map(|f| f.name.as_str()).collect()))
        {
            return Err(DecodeError::Invalid(
                "two kinds, two fields of a kind or two input fields share a name",
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
            for role in [Role::X, Role::Y, Role::Score, Role::Label] {
                if kind.fields.iter().filter(|f| f.role == role).count() > 1 {
                    return Err(DecodeError::Invalid("a role is given to two fields of one kind"));
                }
            }
            let positioned = |f: &Field| matches!(f.role, Role::X | Role::Y);
            if kind.fields.iter().any(|f| positioned(f) && f.ty != FieldType::Coord) {
                return Err(DecodeError::Invalid("x and y roles need coordinate fields"));
            }
            if kind.fields.iter().any(|f| matches!(f.ty, FieldType::Enum(n) if n < 2)) {
                return Err(DecodeError::Invalid("an enumeration needs at least 2 values"));
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
        Ok(())
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.str(&self.game);
        w.u32(self.scale);
        w.u32(self.width);
        w.u32(self.height);
        w.varint(self.kinds.len() as u64);
        for kind in &self.kinds {
            w.str(&kind.name);
            w.varint(kind.fields.len() as u64);
            for field in &kind.fields {
                w.str(&field.name);
                match field.ty {
                    FieldType::Coord => w.u32(0),
                    FieldType::Uint => w.u32(1),
                    FieldType::Int => w.u32(2),
                    FieldType::Flag => w.u32(3),
                    FieldType::Enum(n) => {
                        w.u32(4);
                        w.u8(n);
                    }
                }
                w.u32(field.role as u32);
            }
        }
        w.varint(self.input.len() as u64);
        for field in &self.input {
            w.str(&field.name);
            w.u32(field.ty as u32);
            w.i32(field.min);
            w.i32(field.max);
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let game = r.str(MAX_SCHEMA_NAME)?;
        let (scale, width, height) = (r.u32()?, r.u32()?, r.u32()?);
        // Each kind is at least 2 bytes (name length, field count), each field 4.
        let kinds_len = r.count(2)?;
        if kinds_len > MAX_KINDS {
            return Err(DecodeError::OutOfRange("number of entity kinds"));
        }
        let mut kinds = Vec::with_capacity(kinds_len);
        for _ in 0..kinds_len {
            let name = r.str(MAX_SCHEMA_NAME)?;
            let fields_len = r.count(4)?;
            if fields_len > MAX_FIELDS {
                return Err(DecodeError::OutOfRange("number of fields of a kind"));
            }
            let mut fields = Vec::with_capacity(fields_len);
            for _ in 0..fields_len {
                let name = r.str(MAX_SCHEMA_NAME)?;
                let ty = match r.u32()? {
                    0 => FieldType::Coord,
                    1 => FieldType::Uint,
                    2 => FieldType::Int,
                    3 => FieldType::Flag,
                    4 => FieldType::Enum(r.u8()?),
                    _ => return Err(DecodeError::Unknown("field type")),
                };
                let role = match r.u32()? {
                    0 => Role::None,
                    1 => Role::X,
                    2 => Role::Y,
                    3 => Role::Score,
                    4 => Role::Label,
                    _ => return Err(DecodeError::Unknown("field role")),
                };
                fields.push(Field { name, ty, role });
            }
            kinds.push(Kind { name, fields });
        }
        let input_len = r.count(5)?;
        if input_len > MAX_INPUT_FIELDS {
            return Err(DecodeError::OutOfRange("number of input fields"));
        }
        let mut input = Vec::with_capacity(input_len);
        for _ in 0..input_len {
            let name = r.str(MAX_SCHEMA_NAME)?;
            let ty = match r.u32()? {
                0 => InputType::I8,
                1 => InputType::U8,
                2 => InputType::Bool,
                3 => InputType::I32,
                4 => InputType::U32,
                _ => return Err(DecodeError::Unknown("input type")),
            };
            let (min, max) = (r.i32()?, r.i32()?);
            input.push(InputField { name, ty, min, max });
        }
        let schema = Self {
            game,
            scale,
            width,
            height,
            kinds,
            input,
        };
        schema.validate()?;
        Ok(schema)
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
        write!(f, "; input({})", input.join(","))
    }
}
