//! The schema on the wire, as the `Welcome` carries it (PROTOCOL.md, "The schema"): written
//! by the server, read by clients, which check it before trusting it ([`Schema::validate`]).

use super::{
    EventKind, Field, FieldType, InputField, InputType, Kind, MAX_EVENTS, MAX_FIELDS, MAX_INPUT_FIELDS, MAX_KINDS,
    MAX_MESSAGES, MAX_PARAMS, MAX_SCHEMA_NAME, MessageKind, Role, Schema,
};
use crate::protocol::values::Param;
use crate::protocol::wire::{DecodeError, Reader, Writer};

impl Schema {
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
                    FieldType::Text(n) => {
                        w.u32(5);
                        w.u8(n);
                    }
                }
                w.u32(field.role as u32);
                w.bool(field.private);
            }
        }
        w.varint(self.input.len() as u64);
        for field in &self.input {
            w.str(&field.name);
            w.u32(field.ty as u32);
            w.i32(field.min);
            w.i32(field.max);
        }
        let params = |w: &mut Writer, params: &[Param]| {
            w.varint(params.len() as u64);
            params.iter().for_each(|p| p.encode(w));
        };
        w.varint(self.messages.len() as u64);
        for message in &self.messages {
            w.str(&message.name);
            params(w, &message.params);
            w.u32(message.per_second);
        }
        w.varint(self.events.len() as u64);
        for event in &self.events {
            w.str(&event.name);
            params(w, &event.params);
            w.bool(event.public);
        }
        params(w, &self.options);
        params(w, &self.room_options);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let game = r.str(MAX_SCHEMA_NAME)?;
        let (scale, width, height) = (r.u32()?, r.u32()?, r.u32()?);
        // Each kind is at least 2 bytes (name length, field count), each field 5.
        let kinds_len = r.count(2)?;
        if kinds_len > MAX_KINDS {
            return Err(DecodeError::OutOfRange("number of entity kinds"));
        }
        let mut kinds = Vec::with_capacity(kinds_len);
        for _ in 0..kinds_len {
            let name = r.str(MAX_SCHEMA_NAME)?;
            let fields_len = r.count(5)?;
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
                    5 => FieldType::Text(r.u8()?),
                    _ => return Err(DecodeError::Unknown("field type")),
                };
                let role = match r.u32()? {
                    0 => Role::None,
                    1 => Role::X,
                    2 => Role::Y,
                    3 => Role::Score,
                    4 => Role::Label,
                    5 => Role::Name,
                    6 => Role::Owner,
                    _ => return Err(DecodeError::Unknown("field role")),
                };
                let private = r.bool()?;
                fields.push(Field {
                    name,
                    ty,
                    role,
                    private,
                });
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
        // A parameter is at least 4 bytes (name length, name, type, its first value).
        let params = |r: &mut Reader<'_>| -> Result<Vec<Param>, DecodeError> {
            let n = r.count(4)?;
            if n > MAX_PARAMS {
                return Err(DecodeError::OutOfRange("number of parameters"));
            }
            (0..n).map(|_| Param::decode(r, MAX_SCHEMA_NAME)).collect()
        };
        // A message kind is at least 3 bytes (name length, parameter count, rate).
        let messages_len = r.count(3)?;
        if messages_len > MAX_MESSAGES {
            return Err(DecodeError::OutOfRange("number of message kinds"));
        }
        let mut messages = Vec::with_capacity(messages_len);
        for _ in 0..messages_len {
            let name = r.str(MAX_SCHEMA_NAME)?;
            let params = params(r)?;
            let per_second = r.u32()?;
            messages.push(MessageKind {
                name,
                params,
                per_second,
            });
        }
        let events_len = r.count(3)?;
        if events_len > MAX_EVENTS {
            return Err(DecodeError::OutOfRange("number of event kinds"));
        }
        let mut events = Vec::with_capacity(events_len);
        for _ in 0..events_len {
            let name = r.str(MAX_SCHEMA_NAME)?;
            let params = params(r)?;
            let public = r.bool()?;
            events.push(EventKind { name, params, public });
        }
        let options = params(r)?;
        let room_options = params(r)?;
        let schema = Self {
            game,
            scale,
            width,
            height,
            kinds,
            input,
            messages,
            events,
            options,
            room_options,
        };
        schema.validate()?;
        Ok(schema)
    }
}
