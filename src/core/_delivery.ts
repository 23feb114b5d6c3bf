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
  /** The registered session `s` is (or `undefined`). */
  coreOf(s: unknown): SessionCore<K> | undefined;
}

/** The delivery table of one hub. */
export class Delivery<K extends object> {
  readonly #host: DeliveryHost<K>;

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
        // Local delivery goes on: this node's resumable sessions get it in an epoch of its own.
        host.book.failed(err);
        if (!host.closing) this.#deliverLocally(payload, size, room, host.coreOf(except?.session));
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
      if (at.seq > book.lastSeq) book.lastSeq = at.seq;
      book.at(at.key, at.epoch, at.offset);
      host.fanout.deliver(msg.payload, size, room, except, own ? FRAMED : BOTH, at.offset);
      return;
    }
    if (own) return; // its own echo: this node delivered it at once
    host.fanout.deliver(msg.payload, size, room, except);
    if (room !== undefined && !at) host.history.remember(room, msg.payload);
  }

  /**
   * A broadcast the broker's streams could not take: this node's resumable sessions get it in
   * a local epoch (other nodes miss it; a client that saw it resumes elsewhere as a new session).
   */
  #deliverLocally(
    payload: string | Uint8Array,
    size: number,
    room: string | undefined,
    except: SessionCore<K> | undefined,
  ): void {
    const book = this.#host.book;
    const key = room === undefined ? "h" : `r:${room}`;
    const stream = book.at(key, book.localEpoch(book.of(room).epoch), 0);
    this.#host.fanout.deliver(payload, size, room, except, FRAMED, stream.offset + 1);
  }
}
