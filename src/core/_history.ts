// Room history (`HubOptions.history`): each room's last messages with their offsets, kept in the
// broker's streams when the hub shares them (every node reads the same), else in this process.
// Imports the broker contract's types and the public types only.

import type { BrokerStreams } from "../broker.ts";
import type { HistoryEntry } from "../types.ts";

/** Most rooms whose history one process keeps (without the broker's streams). */
export const MAX_ROOMS = 10_000;

/** History options, resolved. */
export interface HistoryLimits {
  /** How many messages each room keeps. */
  readonly size: number;
  /** How old a kept message may be, in ms. */
  readonly ttl: number | undefined;
}

/** The room histories of one hub. */
export class History {
  readonly #limits: HistoryLimits | undefined;
  readonly #streams: BrokerStreams | undefined;
  /** Room histories kept in this process (without the broker's streams). */
  #kept = new Map<
    string,
    { offset: number; entries: { offset: number; time: number; message: string | Uint8Array }[] }
  >();

  /**
   * @param limits `history`, or `undefined` when it is off.
   * @param streams The broker's streams, when the hub shares them.
   */
  constructor(limits: HistoryLimits | undefined, streams: BrokerStreams | undefined) {
    this.#limits = limits;
    this.#streams = streams;
  }

  /** Keeps a room broadcast in this node's history (`history` on, without the broker's streams). */
  remember(room: string, payload: string | Uint8Array): void {
    const limits = this.#limits;
    if (!limits || this.#streams) return;
    const now = Date.now();
    let kept = this.#kept.get(room);
    if (kept) this.#kept.delete(room); // to the end: the rooms are kept in the order last written
    else kept = { offset: 0, entries: [] };
    this.#kept.set(room, kept);
    kept.entries.push({ offset: ++kept.offset, time: now, message: payload });
    if (kept.entries.length > limits.size) kept.entries.shift();
    const oldest = limits.ttl === undefined ? -Infinity : now - limits.ttl;
    while (kept.entries.length > 0 && kept.entries[0].time < oldest) kept.entries.shift();
    // bounded however many room names clients make up: the room written longest ago goes
    if (this.#kept.size > MAX_ROOMS) this.#kept.delete(this.#kept.keys().next().value!);
  }

  /** How many rooms have a history in this process (without the broker's streams). */
  get rooms(): number {
    return this.#kept.size;
  }

  /** A room's last messages, oldest first: from the broker's streams, or this node's memory. */
  async read(room: string, limit: number | undefined): Promise<HistoryEntry[]> {
    const limits = this.#limits;
    if (!limits) return [];
    const n = limit === undefined ? limits.size : Math.min(limit, limits.size);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`limit must be an integer >= 0, not ${limit}`);
    const oldest = limits.ttl === undefined ? -Infinity : Date.now() - limits.ttl;
    const streams = this.#streams;
    if (!streams) {
      const recent = (this.#kept.get(room)?.entries ?? []).filter((e) => e.time >= oldest);
      return (n === 0 ? [] : recent.slice(-n)).map(({ offset, message }) => ({ offset, message }));
    }
    const key = `r:${room}`;
    const { top } = await streams.read(key, Number.MAX_SAFE_INTEGER, 0);
    if (n === 0 || top === 0) return [];
    const { entries } = await streams.read(key, Math.max(0, top - n), n);
    return entries.filter((e) => e.time >= oldest).map(({ offset, payload }) => ({ offset, message: payload }));
  }
}
