/**
 * One bounded in-memory stream of numbered entries: an epoch, offsets that increase by one from
 * 1, appends that keep at most a given number of entries (and, with a ttl, drop them once they
 * are too old), reads after an offset. The memory broker keeps its streams in these, and the
 * hub its in-memory room history. Centrifuge's `internal/memstream` is the model.
 *
 * May import: nothing (types only, if ever). Internal.
 *
 * @module
 */

/** An entry of a {@linkcode MemStream}. */
export interface MemEntry<T> {
  /** Its offset in the stream: 1 for the first entry of the epoch, then one more for each. */
  readonly offset: number;
  /** When it was appended, in ms since 1970. */
  readonly time: number;
  /** Until when it lives, in ms since 1970 (`Infinity` without a ttl): past it, it is expired. */
  readonly expires: number;
  /** The value, as appended (not copied). */
  readonly value: T;
}

/**
 * A bounded in-memory stream. Its entries are contiguous: the oldest kept has offset
 * {@linkcode MemStream.first}, the newest {@linkcode MemStream.top}. Offsets are never given
 * twice within an epoch; a stream that starts over is a new `MemStream` with a new epoch.
 *
 * @example
 * ```ts
 * import { MemStream } from "./_memstream.ts";
 *
 * const stream = new MemStream<string>("e1");
 * stream.append("a", 2);
 * stream.append("b", 2);
 * stream.append("c", 2); // keeps the last 2: "a" is gone
 * console.log(stream.read(0).map((e) => `${e.offset}:${e.value}`)); // ["2:b", "3:c"]
 * ```
 */
export class MemStream<T> {
  /** The stream's epoch: offsets of another epoch are never compared with this one's. */
  readonly epoch: string;
  #entries: MemEntry<T>[] = [];
  /** Index of the oldest live entry in `#entries` (those before it are dropped). */
  #head = 0;
  #top = 0;

  /**
   * An empty stream.
   * @param epoch The epoch (the caller makes it unique, e.g. random).
   */
  constructor(epoch: string) {
    this.epoch = epoch;
  }

  /** The offset of the newest entry ever appended in this epoch; 0 before the first. */
  get top(): number {
    return this.#top;
  }

  /** How many entries are kept (expired ones not yet pruned included). */
  get size(): number {
    return this.#entries.length - this.#head;
  }

  /** The offset of the oldest entry kept, or `top + 1` when none is. */
  get first(): number {
    return this.#top - this.size + 1;
  }

  /**
   * Appends a value, then drops the oldest entries past `limit`.
   *
   * @param value The value (kept as is, not copied).
   * @param limit How many entries the stream keeps at most: a positive integer.
   * @param ttl How long the entry lives, in ms (a positive number; `Infinity`, the default: for good).
   * @param now The time now, in ms since 1970.
   * @returns The entry's offset.
   * @throws {RangeError} If `limit` or `ttl` is out of range.
   */
  append(value: T, limit: number, ttl: number = Infinity, now: number = Date.now()): number {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw new RangeError(`A stream limit must be a positive integer, not ${limit}`);
    }
    if (typeof ttl !== "number" || !(ttl > 0)) throw new RangeError(`A ttl must be a positive number, not ${ttl}`);
    const offset = ++this.#top;
    this.#entries.push({ offset, time: now, expires: now + ttl, value });
    const over = this.size - limit;
    if (over > 0) this.#dropOldest(over);
    return offset;
  }

  /**
   * The entries after an offset that have not expired, oldest first.
   *
   * @param after The offset after which to read (0: from the oldest kept).
   * @param limit How many entries at most.
   * @param now The time now, in ms since 1970.
   * @returns The entries (the stream's own records: do not change them).
   */
  read(after: number, limit: number = Infinity, now: number = Date.now()): MemEntry<T>[] {
    const out: MemEntry<T>[] = [];
    if (!(limit > 0) || after >= this.#top) return out;
    const entries = this.#entries;
    const from = this.#head + Math.max(0, Math.floor(after) + 1 - this.first);
    for (let i = from; i < entries.length && out.length < limit; i++) {
      if (entries[i].expires >= now) out.push(entries[i]);
    }
    return out;
  }

  /**
   * Drops the oldest entries that expired (up to the first that has not).
   *
   * @param now The time now, in ms since 1970.
   * @returns How many were dropped.
   */
  prune(now: number = Date.now()): number {
    const entries = this.#entries;
    let n = 0;
    while (this.#head + n < entries.length && entries[this.#head + n].expires < now) n++;
    if (n > 0) this.#dropOldest(n);
    return n;
  }

  /** Drops every entry; the epoch and `top` stay, so the next append continues the offsets. */
  drop(): void {
    this.#entries = [];
    this.#head = 0;
  }

  #dropOldest(n: number): void {
    const entries = this.#entries;
    this.#head += n;
    if (this.#head === entries.length) {
      this.#entries = [];
      this.#head = 0;
    } else if (this.#head * 2 >= entries.length) {
      // as many dropped as kept: copy the kept ones (amortized O(1) per entry; at most 2 × limit held)
      this.#entries = entries.slice(this.#head);
      this.#head = 0;
    }
  }
}
