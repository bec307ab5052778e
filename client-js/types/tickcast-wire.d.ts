// Types of tickcast-wire.js: the bytes of protocol version 5 (PROTOCOL.md is the contract).

/** The protocol version this client speaks (the Hello's, the Welcome's). */
export declare const PROTOCOL_VERSION: 5;
/** The longest resume token, in bytes (a Welcome's, a Hello's). */
export declare const MAX_RESUME: number;

/** Bytes that break a rule of PROTOCOL.md. */
export declare class DecodeError extends Error {}

/** What bytes may be given as: a message as a WebSocket delivers it, or any byte array. */
export type Bytes = Uint8Array | ArrayBuffer | ArrayLike<number>;

/** Reads PROTOCOL.md's types from bytes, refusing every encoding the protocol rules out (a
 *  `DecodeError`). */
export declare class Reader {
  constructor(bytes: Bytes);
  bytes: Uint8Array;
  /** The offset of the next byte to read. */
  at: number;
  left(): number;
  /** Throws a `DecodeError` saying `why` and where. */
  fail(why: string): never;
  u8(): number;
  /** A little-endian integer of `n` bytes. */
  fixed(n: number): number;
  /** An unsigned varint in its shortest form; past 2^53 is refused. */
  varint(): number;
  u32(): number;
  u64(): number;
  /** A zigzag i32, as a signed number. */
  i32(): number;
  bool(): boolean;
  string(max?: number): string;
  /** A string of at most `max` bytes with no control character. */
  text(max: number): string;
  /** An element count, refused if the bytes left could not hold that many. */
  count(): number;
  option<T>(read: () => T): T | null;
  /** Throws unless every byte was read. */
  end(): void;
}

/** Writes PROTOCOL.md's types. */
export declare class Writer {
  constructor();
  out: number[];
  u8(v: number): void;
  fixed(v: number, n: number): void;
  varint(v: number): void;
  i32(v: number): void;
  bool(b: boolean | number): void;
  string(s: string): void;
  bytes(): Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// The schema (PROTOCOL.md, "The schema"), as a Welcome carries it.

export type FieldType = "coord" | "uint" | "int" | "flag" | "enum" | "text";
export type Role = "none" | "x" | "y" | "score" | "label" | "name" | "owner";
export type InputType = "i8" | "u8" | "bool" | "i32" | "u32";

/** The field types, by their tag on the wire. */
export declare const FIELD_TYPES: readonly FieldType[];
/** The roles, by their tag on the wire. */
export declare const ROLES: readonly Role[];
/** The input field types, by their tag on the wire. */
export declare const INPUT_TYPES: readonly InputType[];

/** A field of an entity kind. `count`: an enum's number of values, a text's most bytes (0 for
 *  the other types). */
export interface Field {
  name: string;
  type: FieldType;
  count: number;
  role: Role;
  private: boolean;
}

/** An entity kind, as the wire describes it. */
export interface KindDescription {
  name: string;
  fields: Field[];
}

/** An entity kind, with what the client looks up per entity. */
export interface Kind extends KindDescription {
  /** The index of the field with each role (the roles it has). */
  role: Partial<Record<Exclude<Role, "none">, number>>;
  /** Each field's index by name. */
  index: Record<string, number>;
  /** Bit i set: field i is private. */
  privateMask: number;
  /** It has both an x and a y. */
  positioned: boolean;
  /** It has a score or a label. */
  marked: boolean;
}

/** A field of the input, with its range. */
export interface InputField {
  name: string;
  type: InputType;
  min: number;
  max: number;
}

/** A parameter of a message, an event or an option: an int within its range, or a text of at
 *  most `max` bytes. */
export type Param = { name: string; type: "int"; min: number; max: number } | { name: string; type: "text"; max: number };

/** A kind of message players may send, and how many a second. */
export interface MessageKind {
  name: string;
  params: Param[];
  perSecond: number;
}

/** A kind of event the game tells; `public` ones reach spectators too. */
export interface EventKind {
  name: string;
  params: Param[];
  public: boolean;
}

/** A schema as the wire describes it (what `validateSchema` checks). */
export interface SchemaDescription {
  game: string;
  /** Units of a coordinate per world unit. */
  scale: number;
  /** The world's size in world units. */
  width: number;
  height: number;
  kinds: KindDescription[];
  input: InputField[];
  messages: MessageKind[];
  events: EventKind[];
  /** The join options a Hello may carry. */
  options: Param[];
  /** The options a room is created with. */
  roomOptions: Param[];
}

/** A game's schema, as a Welcome carries it (checked and indexed). */
export interface Schema extends SchemaDescription {
  kinds: Kind[];
}

/** Refuses a schema PROTOCOL.md rules out, with a `DecodeError`. */
export declare function validateSchema(schema: SchemaDescription): void;

// ---------------------------------------------------------------------------------------------
// Values and entities.

/** A field's or a parameter's value: a number (a field's as the u32 the world holds, a signed
 *  one as its two's complement bits, a flag 0 or 1), or a text. */
export type Value = number | string;

/** An entity: its id, its kind (an index into the schema's kinds) and its fields in schema
 *  order (a private field 0 or "" until a Private sets it). */
export interface Entity {
  id: number;
  kind: number;
  f: Value[];
}

/** The zero of a field or a parameter: what it reads as before anything set it. */
export declare function zeroOf(field: { type: string }): 0 | "";

// ---------------------------------------------------------------------------------------------
// Server messages.

export interface Welcome {
  type: "welcome";
  version: number;
  playerId: number;
  tickHz: number;
  /** The token that takes this seat back after a dropped connection ("" when the room keeps
   *  no seats). */
  resume: string;
  /** How long the seat is kept after a drop. */
  graceMs: number;
  schema: Schema;
}

export interface Snapshot {
  type: "snapshot";
  tick: number;
  entities: Entity[];
}

/** An entity's changed fields: a value per set bit of `mask` (a coord's signed step, the new
 *  value otherwise; 0 for a flag, which flips). */
export interface Update {
  id: number;
  kind: number;
  mask: number;
  values: Value[];
}

export interface Delta {
  type: "delta";
  tick: number;
  /** The base is the tick `tick - baseGap`. */
  baseGap: number;
  spawned: Entity[];
  updated: Update[];
  removed: number[];
  /** The world checksum after it, about once a second. */
  checksum: number | null;
}

export interface Pong {
  type: "pong";
  nonce: number;
  clientTimeUs: number;
  serverTick: number;
  serverTimeUs: number;
}

export interface Ack {
  type: "ack";
  seq: number;
}

/** An event as the wire carries it: its kind (an index into the schema's events) and a value
 *  per parameter. */
export interface WireEvent {
  kind: number;
  values: Value[];
}

export interface Events {
  type: "events";
  tick: number;
  events: WireEvent[];
}

/** An entity's private fields: a value per set bit of `mask`, whole. */
export interface PrivateEntity {
  id: number;
  kind: number;
  mask: number;
  values: Value[];
}

export interface Private {
  type: "private";
  tick: number;
  /** Every private field is reset first. */
  full: boolean;
  entities: PrivateEntity[];
  checksum: number | null;
}

/** A player's place at a match's end (`player` its entity id in that match). */
export interface Standing {
  player: number;
  name: string;
  rank: number;
  score: number;
}

export interface MatchEnded {
  type: "matchEnded";
  tick: number;
  summary: string;
  standings: Standing[];
}

export type ServerMsg = Welcome | Snapshot | Delta | Pong | Ack | Events | Private | MatchEnded;

/** Decodes one server message; `schema` (a Welcome's) is needed for all but the Welcome,
 *  Pong, Ack and MatchEnded. Throws a `DecodeError` for what the protocol rules out. */
export declare function decodeServerMsg(bytes: Bytes, schema?: Schema | null): ServerMsg;

// ---------------------------------------------------------------------------------------------
// Client messages.

/** Join options or a message's fields, by name: a number for an int, a string for a text. */
export type Fields = Record<string, Value>;

/** A join (`name`, `token`, `options`), or a seat taken back (`resume`, a Welcome's token). */
export interface Hello {
  type: "hello";
  name?: string;
  token?: string;
  resume?: string;
  options?: Fields;
  /** The protocol version (5 unless given: for tests of other versions). */
  version?: number;
}

/** The input, a value per input field of the schema in order. */
export interface Input {
  type: "input";
  seq: number;
  values: number[];
}

export interface Ping {
  type: "ping";
  nonce: number;
  clientTimeUs: number;
}

/** A message: its kind (an index into the schema's messages) and a value per parameter. */
export interface Message {
  type: "message";
  kind: number;
  values: Value[];
}

export type ClientMsg = Hello | Input | Ping | Message;

/** Encodes a client message. Throws a `RangeError` or a `TypeError`, before anything is sent,
 *  for a value the server would close the connection for. */
export declare function encodeClientMsg(msg: Hello | Ping, schema?: Schema | null): Uint8Array;
export declare function encodeClientMsg(msg: Input | Message, schema: Schema): Uint8Array;
export declare function encodeClientMsg(msg: ClientMsg, schema?: Schema | null): Uint8Array;

/** A message of the kind named `name`, its parameters by name (a missing one is 0 or ""),
 *  checked against the schema: throws for an unknown kind or parameter, a value of the wrong
 *  type, out of its range or over its limit. */
export declare function messageOf(schema: Schema, name: string, fields?: Fields): Message;
