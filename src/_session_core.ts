// What a session is behind the `Session` users hold: its keys and rooms, the order in which
// its messages reach the handlers, its current connection, and its one end. Internal.

import type { SessionInit } from "./adapter.ts";
import type { Connection } from "./_connection.ts";
import type { Registry } from "./_registry.ts";
import { SessionClosedError } from "./errors.ts";
import { Session } from "./session.ts";
import { byteLength, checkClose, checkRoom, isThenable, type Message, toPayload } from "./_util.ts";

let counter = 0;
const idPrefix = crypto.randomUUID().slice(0, 8);

export class SessionCore<K extends object> {
  readonly session: Session<K>;
  readonly id: string;
  readonly init: SessionInit<K>;
  readonly registry: Registry<K>;
  keys: Partial<K> | undefined;
  /** The rooms the session is in; kept as they were at its end, for the disconnect hook. */
  rooms: Set<string> | undefined;
  /** The connection that carries it. */
  conn: Connection<K> | undefined;
  ended = false;
  #busy = false;
  #queue: (string | Uint8Array)[] | undefined;
  #queuedBytes = 0;

  constructor(registry: Registry<K>, init: SessionInit<K>) {
    this.id = `${idPrefix}-${(++counter).toString(36)}`;
    this.registry = registry;
    this.init = init;
    if (init.keys) this.keys = Object.assign(Object.create(null), init.keys);
    this.session = new Session(this);
  }

  /** Sends a validated payload of known size (from a broadcast or `write`). */
  deliver(payload: string | Uint8Array, size: number): void {
    this.conn?.send(payload, size);
  }

  write(msg: Message): void {
    if (this.ended) throw new SessionClosedError("Cannot write to a closed session");
    const payload = toPayload(msg);
    this.deliver(payload, byteLength(payload));
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
    this.registry.join(this, room);
    this.conn?.subscribe(this.registry.roomPrefix + room);
  }

  leave(room: string): void {
    checkRoom(room);
    if (!this.rooms?.delete(room)) return;
    this.registry.leave(this, room);
    if (!this.ended) this.conn?.unsubscribe(this.registry.roomPrefix + room);
  }

  /** Runs the connect hook; messages wait until it has finished. */
  start(): void {
    const connect = this.registry.hooks.connect;
    if (connect) this.#run(connect, undefined);
  }

  /** A message passed the connection's checks: dispatch it, or queue it behind a busy handler. */
  receive(msg: string | Uint8Array): void {
    if (!this.#busy) {
      this.#dispatch(msg);
      return;
    }
    const registry = this.registry;
    const max = registry.limits.maxBufferedAmount;
    const size = byteLength(msg);
    if (this.#queuedBytes + size > max) {
      registry.report(
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

  /** The runtime closed `conn`: if it carries this session, the session ends. */
  connectionClosed(conn: Connection<K>, code: number, reason: string): void {
    if (this.ended || conn !== this.conn) return;
    this.end(code, reason, true);
  }

  /**
   * The session's one end. It leaves the registry first, so hooks (and broadcasts from them)
   * see the hub without it; its queued messages are dropped; `handleClose` runs when the peer
   * ended it; then `handleDisconnect`, whose completion the returned promise tracks.
   */
  end(code: number, reason: string, byPeer: boolean): Promise<void> | undefined {
    if (this.ended) return undefined;
    this.ended = true;
    this.#queue = undefined;
    this.#queuedBytes = 0;
    const registry = this.registry;
    registry.unregister(this);
    const conn = this.conn;
    if (conn) {
      if (byPeer) conn.unsubscribeAll();
      else conn.close(code, reason);
    }
    if (byPeer) {
      const onClose = registry.hooks.close;
      if (onClose) this.call(onClose, code, reason);
    }
    return registry.disconnected(this);
  }

  /** Calls a hook whose result is not awaited; failures go to handleError. */
  call<A, B>(fn: (s: Session<K>, a: A, b: B) => unknown, a: A, b?: B): void {
    try {
      const result = fn(this.session, a, b as B);
      if (isThenable(result)) result.then(undefined, (err) => this.registry.report(this, err));
    } catch (err) {
      this.registry.report(this, err);
    }
  }

  #dispatch(msg: string | Uint8Array): void {
    const hooks = this.registry.hooks;
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
      this.registry.report(this, err);
      return;
    }
    if (!isThenable(result)) return;
    if (this.registry.concurrent) {
      result.then(undefined, (err) => this.registry.report(this, err));
      return;
    }
    this.#busy = true;
    result.then(
      () => this.#resume(),
      (err) => {
        this.registry.report(this, err);
        this.#resume();
      },
    );
  }

  #resume(): void {
    this.#busy = false;
    // Nothing reaches a handler once the session ended: `end` dropped the queue.
    while (!this.ended && !this.#busy && this.#queue && this.#queue.length > 0) {
      const msg = this.#queue.shift()!;
      this.#queuedBytes -= byteLength(msg);
      this.#dispatch(msg);
    }
  }
}
