/**
 * What the client received from a `chorus.v1` hub: the streams declared on the current connection,
 * the session's position in each stream (its key, epoch and highest offset), which data frames are
 * new and which were seen before, and the position acknowledgement (`r`) for what moved since the
 * last one. Internal to `chorus-ws/client`; no timers, no sockets.
 *
 * @module
 */

import { encodeReceived, MAX_POSITION_ENTRIES, type Position, type StreamMessage } from "./protocol.ts";

/** Most ids of one stream key (its epochs) a connection keeps declared. */
const EPOCHS_PER_KEY = 4;

/** Most streams one connection may declare and not end: past it the connection is broken. */
const MAX_STREAMS = 2 * MAX_POSITION_ENTRIES;

/** The receiving side of a `chorus.v1` session. */
export class Inbox {
  /** Per stream key: the epoch and the highest offset received (the session's position). */
  #pos = new Map<string, [epoch: string, offset: number]>();
  /** More keys were followed than a resume request may name: the next connection asks for a new session. */
  #overflow = false;
  /** This connection's streams: id → key and epoch. */
  #streams = new Map<number, [key: string, epoch: string]>();
  /** Per stream id, the highest offset received since the last acknowledgement. */
  #moved = new Map<number, number>();
  /** Data frames received since the last acknowledgement. */
  #unacked = 0;
  /**
   * Ids of the streams the session stopped following (`end`), kept across connections of the
   * session (a hub may send a frame it kept for one again after a resume), the newest at most
   * `MAX_STREAMS`.
   */
  #ended = new Set<number>();

  /** How many stream keys the position holds. */
  get size(): number {
    return this.#pos.size;
  }

  /** Whether a position moved since the last acknowledgement. */
  get moved(): boolean {
    return this.#moved.size > 0;
  }

  /** Data frames received since the last acknowledgement. */
  get unacked(): number {
    return this.#unacked;
  }

  /**
   * What a resume request presents.
   *
   * @returns The position, or `undefined` when it cannot be presented (too many streams were
   * followed at once): then the client asks for a new session.
   */
  position(): Position | undefined {
    if (this.#overflow) return undefined;
    const pos: Position = {};
    for (const [key, at] of this.#pos) pos[key] = [at[0], at[1]];
    return pos;
  }

  /** A new connection: its streams are declared anew, nothing is waiting to be acknowledged. */
  connection(): void {
    this.#streams.clear();
    this.#moved.clear();
    this.#unacked = 0;
  }

  /** A new session: offsets start over. */
  forget(): void {
    this.#pos.clear();
    this.#ended.clear();
    this.#overflow = false;
  }

  /**
   * A stream declaration. Where the session starts following the stream (`from`), nothing before
   * it is missing: that becomes the position unless the client has a later one of the same epoch.
   *
   * @param m The declaration.
   * @returns `false` when the connection declared more streams than it may (a broken hub).
   */
  declare(m: StreamMessage): boolean {
    if (!this.#streams.has(m.id) && this.#streams.size >= MAX_STREAMS) return false;
    this.#streams.set(m.id, [m.key, m.epoch]);
    // A key's stream in a new epoch has a new id; the frames of the older ones that are still on
    // their way come first. The oldest of more than EPOCHS_PER_KEY are forgotten (bounded).
    let same = 0;
    for (const [id, [key]] of [...this.#streams].reverse()) {
      if (key === m.key && ++same > EPOCHS_PER_KEY) this.#streams.delete(id);
    }
    this.#ended.delete(m.id);
    if (m.from !== undefined) {
      const had = this.#pos.get(m.key);
      if (!(had !== undefined && had[0] === m.epoch && had[1] >= m.from)) this.#set(m.key, m.epoch, m.from);
    }
    return true;
  }

  /**
   * The session stopped following a stream (it left the room): its position and every id of it
   * on this connection are forgotten. What moved in it is still acknowledged with the next `r`
   * (which the client sends at once).
   *
   * @param key The stream's key.
   */
  end(key: string): void {
    this.#pos.delete(key);
    for (const [id, stream] of this.#streams) {
      if (stream[0] !== key) continue;
      this.#streams.delete(id);
      this.#ended.delete(id);
      this.#ended.add(id);
      if (this.#ended.size > MAX_STREAMS) this.#ended.delete(this.#ended.values().next().value!);
    }
  }

  /**
   * A data frame: whether it is new (deliver it) or was received before (drop it). A frame of
   * another epoch than the position's is new: offsets of different epochs are not comparable.
   *
   * @param id Its stream id.
   * @param n Its offset.
   * @returns `"new"`, `"seen"`, `"ended"` for a stream the session stopped following (not
   * delivered; acknowledged), or `"undeclared"` for an id never declared (a broken hub).
   */
  data(id: number, n: number): "new" | "seen" | "ended" | "undeclared" {
    const stream = this.#streams.get(id);
    if (!stream) {
      if (!this.#ended.has(id)) return "undeclared";
      // A frame kept for a stream the session left, sent again after a resume: it cannot be put
      // in order any more. Acknowledged, so the hub stops keeping it.
      this.#unacked++;
      if (!((this.#moved.get(id) ?? 0) >= n)) this.#moved.set(id, n);
      return "ended";
    }
    this.#unacked++;
    const [key, epoch] = stream;
    const had = this.#pos.get(key);
    if (had !== undefined && had[0] === epoch && n <= had[1]) return "seen";
    this.#set(key, epoch, n);
    this.#moved.set(id, n);
    return "new";
  }

  /**
   * The acknowledgement of everything that moved since the last one (`r` alone when nothing did:
   * the answer to a heartbeat, the confirmation of a welcome); resets what is pending.
   *
   * @returns The `r` frame.
   */
  ack(): string {
    const frame = encodeReceived(this.#moved);
    this.#moved.clear();
    this.#unacked = 0;
    return frame;
  }

  #set(key: string, epoch: string, offset: number): void {
    const had = this.#pos.get(key);
    if (had) {
      had[0] = epoch;
      had[1] = offset;
    } else if (this.#pos.size < MAX_POSITION_ENTRIES) {
      this.#pos.set(key, [epoch, offset]);
    } else {
      // A resume request may name at most MAX_POSITION_ENTRIES streams (the hub refuses a longer
      // one with 1002): this session cannot resume, so its position stops growing.
      this.#overflow = true;
    }
  }
}
