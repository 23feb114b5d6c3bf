// The one table of who gets a hub-wide or room broadcast, and when: this node's plain sessions at
// once; resumable ones numbered in the hub's or the room's stream (here, or at the broker's echo
// when the hub shares the broker's streams); other nodes through the broker. And what this node
// does with a broadcast the broker brings. How a message reaches the chosen sessions is
// `_fanout.ts`. Imports the contracts, the fan-out, the registry, the history and the stream book.

import type { Counters } from "./_contracts.ts";
import { BOTH, type Fanout, FRAMED, PLAIN } from "./_fanout.ts";
import type { History } from "./_history.ts";
import type { Registry } from "./_registry.ts";
import type { SessionCore } from "./_session.ts";
import type { StreamBook } from "./resume/_streams.ts";
import type { BroadcastKind, Broker, BrokerMessage, BrokerStreams } from "../broker.ts";
import { byteLength } from "./_util.ts";

/** What the delivery table needs of its hub. */
export interface DeliveryHost<K extends object> {
  /** This node's id. */
  readonly node: string;
  /** Set from the first moment of `hub.close()`. */
  readonly closing: boolean;
  /** What `hub.metrics()` counts. */
  readonly counters: Counters;
  /** The sessions and rooms of this node. */
  readonly registry: Registry<SessionCore<K>>;
  /** How a message reaches them. */
  readonly fanout: Fanout<K>;
  /** The streams frames are numbered in. */
  readonly book: StreamBook;
  /** Room histories. */
  readonly history: History;
  /** The broker, if any. */
  readonly broker: Broker | undefined;
  /** The broker's streams, when the hub shares them. */
  readonly streams: BrokerStreams | undefined;
  /** How many messages a broker's stream keeps: enough for resuming and for history. */
  readonly streamLimit: number;
  /** Reports an error of a session to `handleError`. */
  report(s: SessionCore<K>, err: unknown): void;
}

/** Most broadcasts held behind a gap being read, per stream. */
const GAP_HOLD = 10_000;
/** How many times a gap's read is tried. */
const GAP_TRIES = 6;

/** The delivery table of one hub. */
export class Delivery<K extends object> {
  readonly #host: DeliveryHost<K>;
  /** Streams whose missed messages are being read from the broker: what arrived meanwhile, in order. */
  readonly #gaps = new Map<string, BrokerMessage[]>();

  /** @param host The hub. */
  constructor(host: DeliveryHost<K>) {
    this.#host = host;
  }

  /**
   * The one path of a hub-wide or room broadcast. Without a broker's streams: to the broker (an
   * oversized one throws first), then to this node's sessions. With them: appended to its
   * stream (which validates it first), plain sessions here at once, resumable ones (on every
   * node) and plain ones elsewhere when the broker hands it back with its position.
   */
  broadcast(
    kind: BroadcastKind,
    room: string | undefined,
    payload: string | Uint8Array,
    except: SessionCore<K> | undefined,
  ): void {
    const host = this.#host;
    const size = byteLength(payload);
    const streams = host.streams;
    if (!streams) {
      host.broker?.publish(
        room === undefined ? { node: host.node, kind, payload } : { node: host.node, kind, room, payload },
      );
      host.fanout.deliver(payload, size, room, except);
      if (room !== undefined) host.history.remember(room, payload);
      return;
    }
    const msg: BrokerMessage = {
      node: host.node,
      kind,
      payload,
      ...(room === undefined ? {} : { room }),
      ...(except ? { except: except.id } : {}),
    };
    const appended = streams.append(msg, host.streamLimit);
    host.fanout.deliver(payload, size, room, except, PLAIN);
    appended.then(
      () => host.book.worked(),
      (err) => {
        // Not in the broker's stream: no resumable session anywhere gets it (the stream, the one
        // numbering every node shares, never differs between nodes). Counted and reported.
        host.counters.brokerDropped++;
        host.book.failed(err);
      },
    );
  }

  /**
   * A broadcast from the broker: from another node (delivered here to all but its `except`),
   * or one that went through a stream, this node's too (its resumable sessions get it here,
   * numbered with its position; plain ones only when another node sent it).
   */
  fromBroker(msg: BrokerMessage): void {
    const host = this.#host;
    if (host.closing) return;
    const inRoom = msg.kind === "room" || msg.kind === "room-others";
    if (inRoom && msg.room === undefined) return;
    const room = inRoom ? msg.room : undefined;
    const size = byteLength(msg.payload);
    const except = msg.except === undefined ? undefined : host.registry.sessions.get(msg.except);
    const own = msg.node === host.node;
    if (!own) host.counters.brokerIn++;
    const at = msg.position;
    if (at && host.streams) {
      const book = host.book;
      const held = this.#gaps.get(at.key);
      if (held) {
        // Behind a gap being read: in order, after it.
        if (held.length < GAP_HOLD) held.push(msg);
        else this.#gaveUp(at.key, room, "too many messages arrived behind it");
        return;
      }
      // Messages of the stream this node missed (its subscription was down): read first. In the
      // same epoch, those after the last seen; in a new one (Redis restarted empty, or a Redis
      // Cluster failover, which keeps the old entries under it), those appended after the last
      // message seen of the old one.
      const seen = book.of(room);
      const renewed = seen.epoch !== at.epoch && seen.epoch !== "" && seen.time !== undefined;
      const after = seen.epoch === at.epoch ? seen.offset : renewed ? 0 : at.offset - 1;
      if (at.offset > after + 1 && (after > 0 || renewed) && (this.#followers(room)?.size ?? 0) > 0) {
        this.#fill(host.streams, at.key, room, after, msg, renewed ? seen.time : undefined);
        return;
      }
      // A new epoch of a stream this node knew: Redis may have restarted, and its sequence with it.
      if (at.seq > book.lastSeq || (seen.epoch !== at.epoch && seen.epoch !== "")) book.lastSeq = at.seq;
      book.at(at.key, at.epoch, at.offset).time = at.time;
      host.fanout.deliver(msg.payload, size, room, except, own ? FRAMED : BOTH, at.offset);
      return;
    }
    if (own) return; // its own echo: this node delivered it at once
    host.fanout.deliver(msg.payload, size, room, except);
    if (room !== undefined && !at) host.history.remember(room, msg.payload);
  }

  /** The resumable sessions here that follow the hub's stream (`undefined`) or a room's. */
  #followers(room: string | undefined): ReadonlySet<SessionCore<K>> | undefined {
    const registry = this.#host.registry;
    return room === undefined ? registry.framed : registry.framedRooms.get(room);
  }

  /**
   * Reads what this node missed of a stream (offsets after `after`, before `first`'s), delivers
   * it to the resumable sessions in order, then what arrived meanwhile. A read that fails is tried
   * again (up to `GAP_TRIES` times, backing off); then the sessions following the stream end, as
   * they cannot be given everything (their clients get new sessions, `resumed: false`).
   */
  #fill(
    streams: BrokerStreams,
    key: string,
    room: string | undefined,
    after: number,
    first: BrokerMessage,
    since?: number,
  ): void {
    const host = this.#host;
    const held = [first];
    this.#gaps.set(key, held);
    const epoch = first.position!.epoch;
    const missing = first.position!.offset - after - 1;
    const attempt = (tries: number): void => {
      streams.read(key, after, missing).then(
        (read) => {
          if (this.#gaps.get(key) !== held || host.closing) return;
          const all = read.entries.filter((e) => e.offset > after && e.offset < first.position!.offset);
          if (read.epoch !== epoch || all.length !== missing) {
            this.#gaveUp(key, room, read.epoch !== epoch ? "its stream was made anew" : "it was trimmed");
            return;
          }
          // a new epoch: only what was appended after the last message seen of the old one
          const entries = since === undefined ? all : all.filter((e) => e.time > since);
          const book = host.book;
          book.worked();
          if (book.of(room).epoch !== epoch) book.lastSeq = entries[0]?.seq ?? first.position!.seq; // see fromBroker
          for (const e of entries) {
            const except = e.except === undefined ? undefined : host.registry.sessions.get(e.except);
            book.at(key, epoch, e.offset).time = e.time;
            host.fanout.deliver(e.payload, byteLength(e.payload), room, except, FRAMED, e.offset);
          }
          book.at(key, epoch, first.position!.offset - 1); // the new epoch is this node's now, read or not
          this.#gaps.delete(key);
          for (const msg of held) this.fromBroker(msg);
        },
        (err) => {
          if (this.#gaps.get(key) !== held || host.closing) return;
          host.book.failed(err);
          if (tries < GAP_TRIES) setTimeout(() => attempt(tries + 1), 50 * 2 ** tries);
          else this.#gaveUp(key, room, "it could not be read");
        },
      );
    };
    attempt(1);
  }

  /**
   * A gap that cannot be filled: the resumable sessions following the stream end (their clients
   * start new sessions: never a silent gap), and what was held behind it goes on.
   */
  #gaveUp(key: string, room: string | undefined, why: string): void {
    const host = this.#host;
    const held = this.#gaps.get(key) ?? [];
    this.#gaps.delete(key);
    for (const s of [...this.#followers(room) ?? []]) {
      host.report(s, new Error(`Ended session ${s.id}: messages of stream ${key} it missed are lost (${why})`));
      s.end(1011, "Missed messages are lost", false);
    }
    for (const msg of held) this.fromBroker(msg);
  }
}
