// Types of tickcast.js: a player's connection to a room of a tickcast server (the header of
// tickcast.js says what it does), and everything of tickcast-wire.js and tickcast-world.js,
// which it re-exports.

import type { Delta, Fields, Private, Schema, Snapshot, Standing, Welcome } from "./tickcast-wire.js";
import type { World } from "./tickcast-world.js";

export * from "./tickcast-wire.js";
export * from "./tickcast-world.js";

/** The options of a `Client`. Where to play is one of `url`, `room` and `matchmake` (the
 *  default room when none is given). */
export interface ClientOptions {
  /** A player WebSocket URL (`ws://…/rooms/<id>/ws`, or a server's `/ws`). */
  url?: string;
  /** A room's id, looked up at `<server>/rooms/<id>` (`default` by default). */
  room?: string;
  /** A game's name: a place is asked of `POST <server>/matchmake`. */
  matchmake?: string;
  /** The server's http(s) origin, and path prefix if any. By default the origin the module was
   *  imported from, else the page's, else `http://127.0.0.1:8080`. */
  server?: string;
  /** The player's name (at most 32 bytes, no control characters). */
  name?: string;
  /** A join token, when the server requires them. */
  token?: string;
  /** The join options the hello carries (and matchmaking is asked with), by the schema's
   *  names: a number or a string each. */
  options?: Fields;
  /** Predict the own entity, for games with a client-side step (default true). */
  predict?: boolean;
  /** Reconnect after a dropped connection (default true). */
  reconnect?: boolean;
  /** Take the seat back after a dropped connection (default true); false: join afresh. */
  resume?: boolean;
  /** How long nothing may arrive before the connection is taken for dropped (default 3000;
   *  0 never). */
  silenceMs?: number;
}

/** Where a `Client` is. */
export type ClientStatus = "idle" | "connecting" | "playing" | "reconnecting" | "refused" | "closed";

/** A close code (a WebSocket close code or an HTTP status) and its reason. */
export interface CloseInfo {
  code: number;
  reason: string;
}

/** An event the game told this player, its parameters by name. */
export interface GameEvent {
  tick: number;
  /** The event kind's name. */
  kind: string;
  fields: Fields;
}

/** How a match ended. */
export interface MatchResults {
  tick: number;
  summary: string;
  standings: Standing[];
}

/** The `detail` of a `reconnecting` event: the attempt to take the seat back, from 1. */
export interface ReconnectingDetail {
  attempt: number;
}

/** The `detail` of a `resumed` event. */
export interface ResumedDetail {
  attempts: number;
  /** From the drop noticed to the new Welcome. */
  tookMs: number;
  /** The same entity as before the drop. */
  playerId: number;
}

/** Every event of a `Client` and its `detail` (the `event:<kind>` events are the game's events
 *  of that kind). */
export interface ClientEventMap {
  /** Joined (or the room's next match started, or the seat was joined afresh). */
  welcome: CustomEvent<Welcome>;
  /** A snapshot or a delta applied. */
  frame: CustomEvent<Snapshot | Delta>;
  /** The player's private fields applied. */
  private: CustomEvent<Private>;
  /** Something the game told this player. */
  event: CustomEvent<GameEvent>;
  [kind: `event:${string}`]: CustomEvent<GameEvent>;
  /** The match is over. */
  ended: CustomEvent<MatchResults>;
  /** The server will not have this player; the client stops. */
  refused: CustomEvent<CloseInfo>;
  /** Taking the seat back after a drop. */
  reconnecting: CustomEvent<ReconnectingDetail>;
  /** The seat was taken back. */
  resumed: CustomEvent<ResumedDetail>;
  /** The seat is gone; the client joins afresh. */
  seatlost: CustomEvent<CloseInfo>;
  status: CustomEvent<ClientStatus>;
  /** The client stopped for good. */
  close: CustomEvent<CloseInfo>;
  /** The world drifted from the server's (the reason); the client comes back with a snapshot. */
  drift: CustomEvent<string>;
}

/** Every number a `Client` measures. */
export interface ClientStats {
  /** The last round trip, its smoothed value and its jitter (RFC 3550's), in ms. */
  rtt: number | null;
  rttSmoothed: number | null;
  jitter: number;
  pings: number;
  frames: number;
  snapshots: number;
  checksumsVerified: number;
  checksumMismatches: number;
  privateChecksumsVerified: number;
  privateChecksumMismatches: number;
  events: number;
  messages: number;
  predictionChecks: number;
  predictionMismatches: number;
  predictionMaxError: number;
  corrections: number;
  correctionMax: number;
  reconnects: number;
  drifts: number;
  decodeErrors: number;
  interpolationDelayMs: number;
  lastClose: CloseInfo | null;
  /** Connections taken for dropped by their silence. */
  silences: number;
  /** Seats taken back, the attempts made, seats lost. */
  resumes: number;
  resumeAttempts: number;
  seatsLost: number;
}

/** What `view()` draws of an entity: its kind's name, its fields by name (a number, a text a
 *  string; private ones only on what this player owns) and whether it is this player's. */
export interface ViewedEntity {
  id: number;
  kind: string;
  own: boolean;
  fields: Fields;
}

/** An entity with a position, in world units: interpolated, or predicted when it is the own
 *  one; `jumped` when it teleported or appeared since the last tick drawn. */
export interface PositionedEntity extends ViewedEntity {
  x: number;
  y: number;
  jumped: boolean;
}

/** An entity of a kind without a position. */
export interface UnpositionedEntity extends ViewedEntity {
  x: null;
  y: null;
}

export type ViewEntity = PositionedEntity | UnpositionedEntity;

/** What to draw at a time. */
export interface View {
  entities: ViewEntity[];
  /** The render tick (null before the first frames). */
  tick: number | null;
}

/** An input: by the schema's field names, or an array in schema order. */
export type InputValues = Record<string, number | boolean> | readonly (number | boolean)[];

/** A listener of an event of any name, and the options of adding one: as the DOM's (spelled out,
 *  so that these types need no DOM library: Node's types do). */
export type AnyListener = ((ev: Event) => unknown) | { handleEvent(ev: Event): unknown } | null;
export type ListenerOptions = boolean | { capture?: boolean; once?: boolean; passive?: boolean; signal?: AbortSignal };

/** A player's connection to a room. */
export declare class Client extends EventTarget {
  constructor(options?: ClientOptions);
  /** The options, with their defaults. */
  readonly options: ClientOptions &
    Required<Pick<ClientOptions, "predict" | "reconnect" | "resume" | "silenceMs" | "name" | "token" | "options">>;
  /** The server it plays on. */
  readonly server: string;
  readonly status: ClientStatus;
  /** The room's id, once looked up or matchmade. */
  readonly room?: string;
  /** The schema of the last Welcome. */
  readonly schema: Schema | null;
  /** The world as the server has it. */
  readonly world: World | null;
  readonly playerId: number;
  readonly tickHz: number;
  /** The matches played on this connection, from 1. */
  readonly match: number;
  /** The last match's results. */
  readonly results: MatchResults | null;
  /** The match is over (until the next Welcome). */
  readonly ended: boolean;
  /** Why the server would not have this player. */
  readonly refusal: CloseInfo | null;
  readonly stats: ClientStats;

  /** Connects (resolving the room by matchmaking first when asked). */
  start(): Promise<void>;
  /** Leaves the room (close 1000: a goodbye, the seat given up) and stops reconnecting. */
  stop(): void;
  /** Sets the input and sends it if it changed; values are clamped to each field's range. */
  setInput(values: InputValues, now?: number): void;
  /** Sends a message of the kind named `kind`; throws, sending nothing, for what the server
   *  would close the connection for, or when not connected. */
  send(kind: string, fields?: Fields, now?: number): void;
  /** What to draw at `now` (a `requestAnimationFrame` time, `performance.now()` by default). */
  view(now?: number): View;
  /** The newest tick the server has sent by `now`, as a continuous number. */
  serverTick(now: number): number;
  /** Drops the connection and comes back with a fresh snapshot (to its seat when it has one). */
  drift(why: string): void;

  addEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, ev: ClientEventMap[K]) => unknown,
    options?: ListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: AnyListener,
    options?: ListenerOptions,
  ): void;
  removeEventListener<K extends keyof ClientEventMap>(
    type: K,
    listener: (this: Client, ev: ClientEventMap[K]) => unknown,
    options?: ListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: AnyListener,
    options?: ListenerOptions,
  ): void;
}

/** A line for people about a game's event (a `Client`'s `event` detail, or a spectator's):
 *  "ann destroyed bob", "ann: gg", or its kind and parameters. `nameOf(id)` names an entity id
 *  when the event carries no name for it. */
export declare function describeEvent(event: { kind: string; fields: Fields }, nameOf?: (id: number) => string): string;
