// Types of tickcast-world.js: the world a player holds, and the games' client-side steps for
// prediction.

import type { Delta, Entity, Private, Schema, Snapshot, Value } from "./tickcast-wire.js";

/** Drift: the server's word and ours no longer agree; the cure is a reconnect. */
export declare class DriftError extends Error {}

/** Entities by id, as the server holds them after `tick`: their public fields, and the private
 *  fields of what this player owns. */
export declare class World {
  constructor(schema: Schema);
  schema: Schema;
  /** The tick of the last frame applied (null before the first snapshot). */
  tick: number | null;
  entities: Map<number, Entity>;
  snapshot(msg: Snapshot): void;
  /** Applies a delta; throws a `DriftError` when it does not fit. */
  delta(msg: Delta): void;
  /** Applies a Private; throws a `DriftError` for an entity not held, or not as that kind. */
  private(msg: Private): void;
  /** The player that owns `e`: its owner field's value, or the entity itself. */
  ownerOf(e: Entity): number;
  /** The entities' ids, ascending. */
  ids(): number[];
  /** The world checksum (FNV-1a over the public fields, in id order), as the server's. */
  checksum(): number;
  /** The private checksum of `player`: over the private fields of what it owns. */
  privateChecksum(player: number): number;
}

/** The games' shared motion rule (src/game/motion.rs): a step per tick, integers only. */
export declare function velocity(dx: number, dy: number, speed: number, scale: number, tickHz: number): [number, number];

/** What a predictor's step is told of the own entity's kind and the world. */
export interface PredictionContext {
  /** The indices of the kind's x and y fields. */
  x: number;
  y: number;
  scale: number;
  width: number;
  height: number;
  tickHz: number;
}

/** A game's client-side step: the own entity's fields one tick later for an input (values in
 *  the schema's order), exactly as the server's game computes them. It may keep constants of
 *  its own beside `step` (arena's `speed`). */
export interface Predictor {
  step(fields: Value[], input: number[], ctx: PredictionContext): Value[];
  /** The indices of the fields besides the position the step predicts (tanks' aim): the
   *  client counts a prediction mismatch when one differs from the server's. */
  readonly fields?: readonly number[];
  readonly [constant: string]: unknown;
}

/** Client-side steps by game name; register your game's with `predictors.set(name, …)`. */
export declare const predictors: Map<string, Predictor>;

/** How fast each game's entities may move (world units per second, by kind name), so that
 *  interpolation can tell a teleport from a move. */
export declare const speedLimits: Map<string, Record<string, number>>;
