// How a message reaches this node's sessions: a loop over them, or the runtime's native fan-out
// (one publish per server to a topic) where nothing per session forbids it; the native topics;
// resumable sessions' numbered frames, encoded once per broadcast. Who gets a message is decided
// by the delivery table (`_delivery.ts`); this is how. Imports the contracts, the registry, the
// session cores and the stream book.

import type { Connection } from "./_connection.ts";
import type { Counters, Hooks, Publisher, Stream } from "./_contracts.ts";
import type { Registry } from "./_registry.ts";
import type { SessionCore } from "./_session.ts";
import type { ResumableSession } from "./resume/_resumable.ts";
import type { StreamBook } from "./resume/_streams.ts";
import { dataOverhead, encodeData } from "../protocol.ts";

/** What a delivery is for: plain sessions, resumable ones (numbered frames), or both. */
export const PLAIN = 1;
export const FRAMED = 2;
export const BOTH = 3;

/** A broadcast numbered in its stream, encoded once for every resumable recipient. */
interface NumberedFrame {
  offset: number;
  frame: string | Uint8Array;
  /** The frame's size: the payload's and the header's. */
  size: number;
}

/**
 * Numbers a broadcast in `stream`: at the broker's offset `at` (which moves the stream on), or
 * at the stream's next one here; then encodes its frame.
 */
function numberFrame(stream: Stream, at: number, payload: string | Uint8Array, size: number): NumberedFrame {
  const offset = at || ++stream.offset;
  if (offset > stream.offset) stream.offset = offset;
  return { offset, frame: encodeData(stream.id, offset, payload), size: size + dataOverhead(stream.id, offset) };
}

/** The fan-out of one hub on this node. */
export class Fanout<K extends object> {
  /** The native topic of every plain session with native fan-out; `chorus.v1` sessions have their own. */
  readonly allTopic: string;
  /** Prefix of a room's native topic (the room's name follows). */
  readonly roomPrefix: string;
  readonly #v1Topic: string;
  readonly #v1RoomPrefix: string;
  /**
   * How many native publishes were made. A native publish queues bytes on sockets behind the
   * sessions' backs, so a connection re-reads `bufferedAmount` when this changed.
   */
  publishes = 0;
  /** Servers whose native fan-out reaches some session, with how many sessions each. */
  #publishers = new Map<Publisher, number>();
  /** Connected sessions without native fan-out: while any is here, broadcasts loop. */
  #foreign = 0;
  readonly #registry: Registry<SessionCore<K>>;
  readonly #hooks: Hooks<K>;
  readonly #counters: Counters;
  readonly #book: StreamBook;

  constructor(
    node: string,
    registry: Registry<SessionCore<K>>,
    hooks: Hooks<K>,
    counters: Counters,
    book: StreamBook,
  ) {
    // "chorus.<node>.all" and "chorus.<node>.room.<name>": distinct for every hub (the node id is
    // random, so two copies of this module in one process do not meet) and for every name.
    this.allTopic = `chorus.${node}.all`;
    this.roomPrefix = `chorus.${node}.room.`;
    this.#v1Topic = `chorus.${node}.v1.all`;
    this.#v1RoomPrefix = `chorus.${node}.v1.room.`;
    this.#registry = registry;
    this.#hooks = hooks;
    this.#counters = counters;
    this.#book = book;
  }

  /** The native topic of the hub, or of a room, for a session of this kind. */
  topic(s: SessionCore<K>, room?: string): string {
    if (room === undefined) return s.framed ? this.#v1Topic : this.allTopic;
    return (s.framed ? this.#v1RoomPrefix : this.roomPrefix) + room;
  }

  /** A connection now carries a session: count it, subscribe it to the session's topics. */
  adopt(conn: Connection, s: SessionCore<K>): void {
    this.#track(conn);
    conn.subscribe(this.topic(s));
    if (s.rooms) { for (const room of s.rooms) conn.subscribe(this.topic(s, room)); }
  }

  /** A connection no longer carries a session. */
  release(conn: Connection): void {
    this.#untrack(conn);
  }

  /** A connection whose socket refused a subscription: from now on it is reached by the loop. */
  demote(conn: Connection, tracked: boolean): void {
    if (!conn.publisher) return;
    if (tracked) this.#untrack(conn);
    conn.publisher = undefined;
    if (tracked) this.#track(conn);
  }

  /**
   * Delivers a message on this node to every session, or to a room's, but `except`: the one
   * place a hub-wide or room broadcast reaches sessions.
   */
  deliver(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
    parts: number = BOTH,
    offset = 0,
  ): void {
    if (this.#foreign === 0 && this.#publishers.size > 0) {
      const hooks = this.#hooks;
      if (typeof payload === "string" ? !hooks.sentMessage : !hooks.sentMessageBinary) {
        this.#publish(payload, size, room, except, parts, offset);
        return;
      }
    }
    const registry = this.#registry;
    const targets = room === undefined ? registry.sessions.values() : registry.rooms.get(room);
    if (targets) this.deliverTo(targets, payload, size, except, this.#book.of(room), parts, offset);
  }

  /**
   * The loop: delivers to each target but `except`. Resumable sessions get a numbered frame of
   * `stream`, encoded once for all of them, or, without a stream, one of their own stream each.
   * Nothing is allocated per plain recipient.
   */
  deliverTo(
    targets: Iterable<SessionCore<K>>,
    payload: string | Uint8Array,
    size: number,
    except: SessionCore<K> | undefined,
    stream?: Stream,
    parts: number = BOTH,
    at = 0,
  ): void {
    let frame: NumberedFrame | undefined;
    for (const s of targets) {
      if (s === except) continue;
      if (!s.framed) {
        if (!(parts & PLAIN)) continue;
        // what `s.deliver` does, here: the loop hands each message to the connection itself
        const conn = s.conn;
        if (!conn) continue;
        if (conn.send(payload, size)) s.sent(payload, size);
        else s.refused(conn, size, conn.socket.bufferedAmount);
      } else if (!(parts & FRAMED)) {
        continue;
      } else if (!stream) {
        (s as ResumableSession<K>).deliverOwn(payload, size);
      } else {
        frame ??= numberFrame(stream, at, payload, size);
        (s as ResumableSession<K>).deliverFrame(stream, frame.offset, frame.frame, frame.size, payload);
      }
    }
  }

  /**
   * `deliver` through the runtime's native fan-out: one publish per server to the hub's or the
   * room's topic, from `except`'s own socket on its server (the runtime skips it); plain and
   * resumable sessions have topics of their own, and each resumable one keeps the frame.
   */
  #publish(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
    parts: number,
    at: number,
  ): void {
    const registry = this.#registry;
    let members: Set<SessionCore<K>> | undefined;
    let framed: Set<SessionCore<K>> | undefined;
    let exceptIn: boolean;
    if (room === undefined) {
      framed = registry.framed;
      exceptIn = except !== undefined && registry.sessions.get(except.id) === except;
    } else {
      members = registry.rooms.get(room);
      if (!members) return;
      framed = registry.framedRooms.get(room);
      exceptIn = except !== undefined && members.has(except);
    }
    const all = members ? members.size : registry.sessions.size;
    const framedCount = framed?.size ?? 0;
    const plain = parts & PLAIN ? all - framedCount - (exceptIn && !except!.framed ? 1 : 0) : 0;
    const numbered = parts & FRAMED ? framedCount - (exceptIn && except!.framed ? 1 : 0) : 0;
    if (plain <= 0 && numbered <= 0) return;
    this.publishes++;
    const from = exceptIn ? except!.conn : undefined;
    let dropped = false;
    const counters = this.#counters;
    if (plain > 0) {
      dropped = this.#publishAll(room === undefined ? this.allTopic : this.roomPrefix + room, payload, from);
      counters.messagesOut += plain;
      counters.bytesOut += plain * size;
    }
    if (numbered > 0) {
      const stream = this.#book.of(room);
      const { offset, frame, size: frameSize } = numberFrame(stream, at, payload, size);
      const topic = room === undefined ? this.#v1Topic : this.#v1RoomPrefix + room;
      if (this.#publishAll(topic, frame, from)) dropped = true;
      // Each resumable session keeps the frame until its client acknowledges it.
      for (const s of framed!) {
        if (s === except || !(s as ResumableSession<K>).keep(stream, offset, frame, frameSize) || !s.conn) continue;
        counters.messagesOut++;
        counters.bytesOut += size;
      }
    }
    if (!dropped) return;
    // Dropped for some subscriber: find the sessions past their limit.
    for (const s of members ?? registry.sessions.values()) if (s !== except) s.conn?.dropped(size);
  }

  /** One publish per server; returns whether some server dropped it (or had no subscriber). */
  #publishAll(topic: string, data: string | Uint8Array, from: Connection | undefined): boolean {
    let dropped = false;
    for (const publisher of this.#publishers.keys()) {
      const status = from?.publisher === publisher ? from.socket.publish!(topic, data) : publisher.publish(topic, data);
      // 0 is also "no subscriber there": with several servers, one may hold none of the room.
      if (status === 0) dropped = true;
    }
    return dropped;
  }

  #track(conn: Connection): void {
    const publisher = conn.publisher;
    if (publisher) this.#publishers.set(publisher, (this.#publishers.get(publisher) ?? 0) + 1);
    else this.#foreign++;
  }

  #untrack(conn: Connection): void {
    const publisher = conn.publisher;
    if (!publisher) {
      this.#foreign--;
      return;
    }
    const n = this.#publishers.get(publisher)! - 1;
    if (n > 0) this.#publishers.set(publisher, n);
    else this.#publishers.delete(publisher);
  }
}
