// What a session is behind the `Session` users hold: its keys and rooms, the order in which its
// messages reach the handlers, its current connection, and its one end. A resumable session
// (`resume/_resumable.ts`) extends it. Imports the contracts, the helpers, the connection's type
// and the public `Session`.

import type { ConnectionOwner, SessionHost, SessionInit } from "./_contracts.ts";
import type { Connection } from "./_connection.ts";
import { MessageBufferFullError, SessionClosedError } from "../errors.ts";
import { Session, type SessionRecord } from "../session.ts";
import type { Message } from "../types.ts";
import { byteLength, checkClose, checkRoom, isThenable, randomString, toPayload } from "./_util.ts";

let counter = 0;
/** Session ids: a random prefix per process, then a counter. */
const idPrefix = randomString(8, true);

/** A session of this node. */
export class SessionCore<K extends object> implements SessionRecord<K>, ConnectionOwner<Connection> {
  readonly session: Session<K>;
  readonly id: string;
  readonly init: SessionInit<K>;
  protected readonly host: SessionHost<K, SessionCore<K>>;
  keys: Partial<K> | undefined;
  /** The rooms the session is in; kept as they were at its end, for the disconnect hook. */
  rooms: Set<string> | undefined;
  /** The connection that carries it; `undefined` while a resumable session is detached. */
  conn: Connection | undefined;
  ended = false;
  /** It moves between nodes (claimed from the broker, or leaving for another node): no presence join or leave. */
  moved = false;
  /** Frames past `maxMessageSize` are refused. */
  readonly limited = true;
  #busy = false;
  #queue: (string | Uint8Array)[] | undefined;
  #queuedBytes = 0;

  constructor(host: SessionHost<K, SessionCore<K>>, init: SessionInit<K>, id?: string) {
    this.id = id ?? `${idPrefix}-${(++counter).toString(36)}`;
    this.host = host;
    this.init = init;
    if (init.keys) this.keys = Object.assign(Object.create(null), init.keys);
    this.session = new Session(this);
  }

  /** A resumable session: numbered frames, kept until acknowledged; it outlives a lost connection. */
  get framed(): boolean {
    return false;
  }

  get connected(): boolean {
    return !this.ended && this.conn !== undefined;
  }

  get bufferedAmount(): number {
    return this.ended || !this.conn ? 0 : this.conn.socket.bufferedAmount;
  }

  // --- what users do (through `Session`) ---------------------------------------------------

  write(msg: Message): void {
    if (this.ended) throw new SessionClosedError("Cannot write to a closed session");
    const payload = toPayload(msg);
    this.writeOwn(payload, byteLength(payload));
  }

  close(code: number, reason: string): void {
    if (this.ended) throw new SessionClosedError("Session is already closed");
    checkClose(code, reason);
    this.end(code, reason, false);
  }

  join(room: string): void {
    checkRoom(room);
    if (this.ended) throw new SessionClosedError("A closed session cannot join a room");
    if ((this.rooms ??= new Set()).has(room)) return;
    this.rooms.add(room);
    this.host.join(this, room);
    this.joined(room);
    this.conn?.subscribe(this.host.topic(this, room));
  }

  leave(room: string): void {
    checkRoom(room);
    if (!this.rooms?.delete(room)) return;
    this.host.leave(this, room);
    if (this.ended) return;
    this.left(room);
    this.conn?.unsubscribe(this.host.topic(this, room));
  }

  /** The keys changed (`set`, `unset`). */
  keysChanged(): void {}

  // --- what the hub does -------------------------------------------------------------------

  /** Runs the connect hook; messages wait until it has finished. */
  start(): void {
    const connect = this.host.hooks.connect;
    if (connect) this.#run(connect, undefined);
  }

  /** Sends a payload of known size to a plain session (from a broadcast or `write`). */
  deliver(payload: string | Uint8Array, size: number): void {
    const conn = this.conn;
    if (!conn) return;
    if (conn.send(payload, size)) this.sent(payload, size);
    else this.refused(conn, size, conn.socket.bufferedAmount);
  }

  /** A message passed the connection's checks: dispatch it, or queue it behind a busy handler. */
  receive(msg: string | Uint8Array): void {
    const counters = this.host.counters;
    counters.messagesIn++;
    counters.bytesIn += byteLength(msg);
    if (!this.#busy) {
      this.#dispatch(msg);
      return;
    }
    const max = this.host.limits.maxBufferedAmount;
    const size = byteLength(msg);
    if (this.#queuedBytes + size > max) {
      this.host.report(
        this,
        new RangeError(
          `Closed the session: ${
            this.#queuedBytes + size
          } bytes of messages are waiting for a handler and maxBufferedAmount is ${max}`,
        ),
      );
      this.end(1008, "Too many pending messages", false);
      return;
    }
    this.#queuedBytes += size;
    (this.#queue ??= []).push(msg);
  }

  /**
   * The session's one end. It leaves the registry first, so hooks (and broadcasts from them)
   * see the hub without it; its queued and kept messages are dropped; `handleClose` runs when
   * the peer ended it; then `handleDisconnect`, whose completion the returned promise tracks.
   */
  end(code: number, reason: string, byPeer: boolean): Promise<void> | undefined {
    if (this.ended) return undefined;
    this.stop();
    this.endedForGood();
    const conn = this.conn;
    if (conn) {
      if (byPeer) conn.unsubscribeAll();
      else conn.close(code, reason);
    }
    if (byPeer) {
      const onClose = this.host.hooks.close;
      if (onClose) this.call(onClose, code, reason);
    }
    return this.host.disconnected(this);
  }

  /** Calls a hook whose result is not awaited; failures go to handleError. */
  call<A, B>(fn: (s: Session<K>, a: A, b: B) => unknown, a: A, b?: B): void {
    try {
      const result = fn(this.session, a, b as B);
      if (isThenable(result)) result.then(undefined, (err) => this.host.report(this, err));
    } catch (err) {
      this.host.report(this, err);
    }
  }

  // --- the connection's events -------------------------------------------------------------

  received(_conn: Connection, data: string | Uint8Array): void {
    if (this.ended) return;
    this.receive(data);
  }

  tooBig(_conn: Connection, closing: boolean): void {
    if (this.ended) return;
    this.host.tooBig(this);
    if (!closing) this.end(1009, "Message too big", false);
  }

  closed(conn: Connection, code: number, reason: string): void {
    if (this.ended || conn !== this.conn) return;
    this.end(code, reason, true);
  }

  ponged(conn: Connection): void {
    const onPong = this.host.hooks.pong;
    if (conn === this.conn && !this.ended && onPong) this.call(onPong, undefined);
  }

  /** The hub gives up `conn` (no pong, a peer that stopped reading, a full buffer). */
  lost(conn: Connection, reason: string): void {
    if (this.ended || conn !== this.conn) return;
    if (reason !== "Pong timeout") {
      this.host.slowClient(this, 1001, `Gave up session ${this.id}'s connection: ${reason}`);
    }
    this.connectionLost(conn, reason);
  }

  /** A write or a native publish was refused by the outbound limit. */
  refused(conn: Connection, size: number, queued: number): void {
    if (this.ended || conn !== this.conn) return;
    const host = this.host;
    const max = host.limits.maxBufferedAmount;
    host.counters.dropped++;
    host.report(
      this,
      new MessageBufferFullError(
        `Dropped a message of ${size} bytes: ${queued} bytes are queued and maxBufferedAmount is ${max}`,
      ),
    );
    if (!host.limits.closeOnBufferFull) return;
    host.slowClient(this, 1008, `Closed session ${this.id} with 1008: its outbound buffer is full`);
    this.end(1008, "Message buffer full", false);
  }

  beat(_now: number, _interval: number): void {}

  *topics(): Iterable<string> {
    const host = this.host;
    yield host.topic(this);
    if (this.rooms) { for (const room of this.rooms) yield host.topic(this, room); }
  }

  report(err: unknown): void {
    this.host.report(this, err);
  }

  // --- what a resumable session changes -----------------------------------------------------

  /** A message of the session's own (`write`): a plain session sends it at once. */
  protected writeOwn(payload: string | Uint8Array, size: number): void {
    this.deliver(payload, size);
  }

  /** The session joined `room` (after the registry knows). */
  protected joined(_room: string): void {}

  /** The session left `room` (it has not ended). */
  protected left(_room: string): void {}

  /** The hub gave up the connection: a plain session ends. */
  protected connectionLost(_conn: Connection, reason: string): void {
    this.end(1001, reason, false);
  }

  /** The session leaves this node, for good or for another: what it holds beyond a plain session is let go. */
  protected released(): void {}

  /** The session ended for good (after it left the registry): no node may continue it. */
  protected endedForGood(): void {}

  /** A handler finished: return true to hold the queue (the session is being handed over). */
  protected drained(): boolean {
    return false;
  }

  /**
   * Whatever way the session leaves this node: nothing more is dispatched, kept or timed, and it
   * leaves the registry (before any hook sees the hub).
   */
  protected stop(): void {
    this.ended = true;
    this.dropQueue();
    this.released();
    this.host.unregister(this);
  }

  /** Whether a handler is running now (not concurrent). */
  protected get busy(): boolean {
    return this.#busy;
  }

  /** How many received messages wait behind a busy handler. */
  protected get queued(): number {
    return this.#queue?.length ?? 0;
  }

  /** Drops the messages waiting behind a busy handler. */
  protected dropQueue(): void {
    this.#queue = undefined;
    this.#queuedBytes = 0;
  }

  /** Counts a message handed to the runtime and runs the sent hooks. */
  sent(payload: string | Uint8Array, size: number): void {
    const counters = this.host.counters;
    counters.messagesOut++;
    counters.bytesOut += size;
    const hooks = this.host.hooks;
    if (typeof payload === "string") {
      if (hooks.sentMessage) this.call(hooks.sentMessage, payload);
    } else if (hooks.sentMessageBinary) this.call(hooks.sentMessageBinary, payload);
  }

  #dispatch(msg: string | Uint8Array): void {
    const hooks = this.host.hooks;
    if (typeof msg === "string") {
      if (hooks.message) this.#run(hooks.message, msg);
    } else if (hooks.messageBinary) this.#run(hooks.messageBinary, msg);
  }

  /** Runs a connect or message handler; an async one holds the queue unless concurrent. */
  #run<A>(fn: (s: Session<K>, a: A) => unknown, arg: A): void {
    let result: unknown;
    try {
      result = fn(this.session, arg);
    } catch (err) {
      this.host.report(this, err);
      return;
    }
    if (!isThenable(result)) return;
    if (this.host.concurrent) {
      result.then(undefined, (err) => this.host.report(this, err));
      return;
    }
    this.#busy = true;
    result.then(
      () => this.#drain(),
      (err) => {
        this.host.report(this, err);
        this.#drain();
      },
    );
  }

  /** The handler finished: the next queued messages go to the handlers, in order. */
  #drain(): void {
    this.#busy = false;
    if (this.drained()) return;
    // Nothing reaches a handler once the session ended: `end` dropped the queue.
    while (!this.ended && !this.#busy && this.#queue && this.#queue.length > 0) {
      const msg = this.#queue.shift()!;
      this.#queuedBytes -= byteLength(msg);
      this.#dispatch(msg);
    }
  }
}
