// One socket's life: sending within the outbound limit, the inbound size limit, keepalive,
// native subscriptions, closing. It is the handle an adapter reports the socket's events to.
// Internal.

import type { HubSocket, Publisher, SocketEvents } from "./adapter.ts";
import type { Registry } from "./_registry.ts";
import type { SessionCore } from "./_session_core.ts";
import { utf8Length } from "./_util.ts";

/**
 * Bytes a runtime may count per frame on top of the payload (the largest server frame header).
 * The outbound limit's bookkeeping adds it to every send so its estimate never falls short.
 */
const FRAME_OVERHEAD = 14;

export class Connection<K extends object> implements SocketEvents {
  readonly socket: HubSocket;
  /** The native fan-out of the socket's server; `undefined` when the loop reaches this socket. */
  publisher: Publisher | undefined;
  /** The session this connection carries. */
  core: SessionCore<K> | undefined;
  #registry: Registry<K>;
  /**
   * Bytes this connection may still send before `bufferedAmount` must be read again: the limit
   * minus what was queued at the last read minus what was sent since (frame overhead included).
   * The runtime only ever drains its queue, so while this stays >= 0 the limit cannot be
   * crossed, and most sends skip a call into the runtime. Valid while `#epoch` equals the
   * registry's native publish count.
   */
  #credit = 0;
  #epoch = -1;
  /** With `ping`: when the last ping went. Without: since when the queue has not drained (0: it drains). */
  #watchAt = 0;
  #awaitingPong = false;
  /** Without `ping`: `bufferedAmount` at the last tick plus the bytes sent since. */
  #queued = 0;

  constructor(registry: Registry<K>, socket: HubSocket, publisher: Publisher | undefined) {
    this.#registry = registry;
    this.socket = socket;
    this.publisher = publisher;
  }

  /**
   * Sends a frame of known size within the outbound limit. Returns false when the limit (or
   * the runtime) refused it; a socket that throws is reported and counts as sent (its close
   * follows).
   */
  send(data: string | Uint8Array, size: number): boolean {
    const registry = this.#registry;
    const socket = this.socket;
    const max = registry.limits.maxBufferedAmount;
    let credit = this.#credit - size - FRAME_OVERHEAD;
    if (credit < 0 || this.#epoch !== registry.publishes) {
      if (socket.bufferedAmount + size > max) return false;
      credit = max - socket.bufferedAmount - size - FRAME_OVERHEAD;
      this.#epoch = registry.publishes;
    }
    let status: number | void;
    try {
      status = socket.send(data as string | Uint8Array<ArrayBuffer>);
    } catch (err) {
      this.#credit = 0;
      this.#report(err);
      return true;
    }
    if (status === 0) {
      this.#credit = 0;
      return false;
    }
    this.#credit = credit;
    this.#queued += size;
    return true;
  }

  /** Sends a protocol frame (handshake, ack, heartbeat): small, never counted as a message. */
  sendControl(frame: string): void {
    try {
      this.socket.send(frame);
    } catch (err) {
      this.#report(err);
    }
  }

  /** Adapter event: a frame arrived. */
  receive(data: string | ArrayBuffer | Uint8Array): void {
    const msg = typeof data === "string" || data instanceof Uint8Array ? data : new Uint8Array(data);
    const core = this.core;
    if (!core) {
      this.#registry.handshake(this, msg); // a chorus.v1 connection's first frame (or a let-go one's: ignored)
      return;
    }
    if (core.ended) return;
    const max = this.#registry.limits.maxMessageSize;
    if (typeof msg === "string" ? msg.length > max / 3 && utf8Length(msg) > max : msg.byteLength > max) {
      this.#tooBig(core);
      core.end(1009, "Message too big", false);
      return;
    }
    if (core.framed) core.receiveFrame(msg);
    else core.receive(msg);
  }

  /** Adapter event: the socket closed. */
  closed(code: number, reason: string): void {
    this.#registry.closeEnded(this);
    // A runtime that bounds messages itself (Bun) closes with 1009 before the hub sees one.
    if (code === 1009 && this.core && !this.core.ended) this.#tooBig(this.core);
    if (!this.core) this.#registry.handshakeGone(this);
    this.core?.connectionClosed(this, code, reason);
  }

  /** Adapter event: the runtime reported an error. */
  errored(err: unknown): void {
    this.#report(err);
  }

  /** Adapter event: a pong arrived. */
  ponged(): void {
    this.#awaitingPong = false;
    const core = this.core;
    const onPong = this.#registry.hooks.pong;
    if (core && core.conn === this && !core.ended && onPong) core.call(onPong, undefined);
  }

  /** Lets go of the socket: no publish reaches it any more, and it is closed. */
  close(code: number, reason: string): void {
    this.#registry.closeStarted(this);
    try {
      this.unsubscribeAll();
      this.socket.close(code, reason);
    } catch (err) {
      this.#report(err);
    }
  }

  /** Subscribes to a native topic; a socket that refuses falls back to the loop. */
  subscribe(topic: string): void {
    if (!this.publisher) return;
    try {
      this.socket.subscribe!(topic);
    } catch (err) {
      this.#report(err);
      this.unsubscribeAll();
      this.#registry.demote(this);
    }
  }

  unsubscribe(topic: string): void {
    if (!this.publisher) return;
    try {
      this.socket.unsubscribe!(topic);
    } catch (err) {
      this.#report(err);
    }
  }

  /** Leaves every native topic of the session, quietly (the socket may be closed already). */
  unsubscribeAll(): void {
    const core = this.core;
    if (!this.publisher || !core) return;
    const registry = this.#registry;
    const socket = this.socket;
    try {
      socket.unsubscribe!(registry.topic(core));
      if (core.rooms) { for (const room of core.rooms) socket.unsubscribe!(registry.topic(core, room)); }
    } catch {
      // a closed socket has no subscriptions left
    }
  }

  /**
   * A native publish of `size` bytes was dropped for some subscriber. The runtime drops for a
   * socket whose queue is already past the limit, so a connection whose queue is past it now
   * was refused the message, as a write would be.
   */
  dropped(size: number): void {
    const queued = this.socket.bufferedAmount;
    if (queued > this.#registry.limits.maxBufferedAmount) this.core?.refused(this, size, queued);
  }

  /**
   * Keepalive step. With `ping`: pings when `interval` has passed since the last one; returns
   * whether it pinged. Without: gives up the connection when its queue has not drained at all
   * for `wait` (a peer that stopped reading; a runtime's own ping cannot get past a full queue).
   * A resumable session also gets a heartbeat frame every `interval`, for its client to tell a
   * dead connection.
   */
  tick(now: number, interval: number, wait: number): boolean {
    const core = this.core;
    if (!core || core.ended) return false;
    const socket = this.socket;
    if (core.framed) core.heartbeat(now, interval);
    if (!socket.ping) {
      const queued = socket.bufferedAmount;
      if (queued === 0 || queued < this.#queued) this.#watchAt = 0;
      else if (this.#watchAt === 0) this.#watchAt = now;
      else if (now - this.#watchAt >= wait) {
        core.lost(this, "Peer stopped reading");
        return false;
      }
      this.#queued = queued;
      return false;
    }
    if (this.#awaitingPong || now - this.#watchAt < interval) return false;
    this.#watchAt = now;
    this.#awaitingPong = true;
    try {
      socket.ping();
    } catch (err) {
      this.#report(err);
    }
    return true;
  }

  /** Gives up the connection if its pong is overdue; else returns the ms left (-1: no pong awaited). */
  checkPong(now: number, wait: number): number {
    const core = this.core;
    if (!this.#awaitingPong || !core || core.ended) return -1;
    const left = this.#watchAt + wait - now;
    if (left > 0) return left;
    core.lost(this, "Pong timeout");
    return -1;
  }

  #tooBig(core: SessionCore<K>): void {
    const registry = this.#registry;
    registry.counters.tooBig++;
    registry.log({
      level: "warn",
      event: "too-big",
      session: core.id,
      code: 1009,
      message:
        `Closed session ${core.id} with 1009: a message larger than maxMessageSize (${registry.limits.maxMessageSize})`,
    });
  }

  #report(err: unknown): void {
    const core = this.core;
    if (core) this.#registry.report(core, err);
    else console.error("chorus: socket:", err);
  }
}
