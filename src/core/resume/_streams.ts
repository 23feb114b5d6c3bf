// The stream book of a node: which stream (id, key, epoch, last offset) numbers the hub's
// broadcasts and each room's, in this node's epochs or, with a broker's streams, only in the
// broker's; and a failure of the broker's streams, reported once. Imports only the contracts.

import type { Stream } from "../_contracts.ts";
import { errorText } from "../_util.ts";

/** What follows a stream: told when the stream changes epoch. */
export interface Follower {
  /** The stream was made anew (another epoch): the client is told before its next frame. */
  redeclare(stream: Stream): void;
}

/** The streams of one node. */
export class StreamBook {
  /** The stream of hub-wide broadcasts. */
  hubStream: Stream;
  /** Whether the broker numbers the streams (its epochs, shared by every node). */
  readonly shared: boolean;
  /** The highest `seq` of the broker's streams seen here. */
  lastSeq = 0;
  readonly #node: string;
  readonly #rooms = new Map<string, Stream>();
  #nextId = 3;
  #failing = false;
  readonly #followers: (room: string | undefined) => Iterable<Follower> | undefined;
  readonly #report: (err: unknown) => void;

  /**
   * @param node This node's id (its epochs are named after it).
   * @param shared Whether the broker numbers the streams.
   * @param followers The resumable sessions of the hub (`undefined`) or of a room.
   * @param report Where a failure of the broker's streams goes.
   */
  constructor(
    node: string,
    shared: boolean,
    followers: (room: string | undefined) => Iterable<Follower> | undefined,
    report: (err: unknown) => void,
  ) {
    this.#node = node;
    this.shared = shared;
    this.#followers = followers;
    this.#report = report;
    // With the broker's streams the epoch is the broker's, once a message brings it.
    this.hubStream = { id: 2, key: "h", epoch: shared ? "" : node, offset: 0 };
  }

  /** A room's stream, made with a new epoch when the room (re)appears. */
  roomStream(room: string): Stream {
    let stream = this.#rooms.get(room);
    if (!stream) {
      const id = this.#nextId++;
      this.#rooms.set(
        room,
        // With the broker's streams the epoch is the broker's, unknown until a message brings it.
        stream = { id, key: `r:${room}`, epoch: this.shared ? "" : `${this.#node}.${id.toString(36)}`, offset: 0 },
      );
    }
    return stream;
  }

  /** An id no stream of this node had (a session's own stream in a new epoch). */
  newId(): number {
    return this.#nextId++;
  }

  /**
   * The id of the stream `key` in `epoch` if it is this node's current one for that key (the
   * newest), else `undefined`.
   */
  idOf(key: string, epoch: string): number | undefined {
    const stream = key === "h" ? this.hubStream : this.#rooms.get(key.slice(2));
    return stream?.epoch === epoch ? stream.id : undefined;
  }

  /** A room has no members left: its stream is forgotten here. */
  roomGone(room: string): void {
    this.#rooms.delete(room);
  }

  /** The stream of the hub (`undefined`) or of a room. */
  of(room: string | undefined): Stream {
    return room === undefined ? this.hubStream : this.roomStream(room);
  }

  /**
   * The stream object of a key at the position the broker gave: a new epoch makes a new object
   * (same id), declared again to the sessions that follow it.
   */
  at(key: string, epoch: string, offset: number): Stream {
    const room = key === "h" ? undefined : key.slice(2);
    let stream = this.of(room);
    if (stream.epoch !== epoch) {
      // A new epoch is a new stream: a new id (never one of another epoch), declared again.
      stream = { id: this.#nextId++, key: stream.key, epoch, offset: 0 };
      if (room === undefined) this.hubStream = stream;
      else this.#rooms.set(room, stream);
      const followers = this.#followers(room);
      if (followers) { for (const follower of followers) follower.redeclare(stream); }
    }
    if (offset > stream.offset) stream.offset = offset;
    return stream;
  }

  /** The broker's streams failed: reported once until they work again. */
  failed(err: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    this.#report(new Error(`Broker streams: ${errorText(err)}`, { cause: err }));
  }

  /** The broker's streams work (again). */
  worked(): void {
    this.#failing = false;
  }
}
