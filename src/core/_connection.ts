// One socket's life: sending within the outbound limit, the inbound size limit, keepalive,
// native subscriptions, closing. It is the handle an adapter reports the socket's events to, and
// it passes them on to its owner (the session it carries, or the `chorus.v1` handshake). Imports
// only the contracts and the helpers.

import type { ConnectionHost, ConnectionOwner, HubSocket, Publisher, SocketEvents } from "./_contracts.ts";
import { utf8Length } from "./_util.ts";

/**
 * Bytes a runtime may count per frame on top of the payload (the largest server frame header).
 * The outbound limit's bookkeeping adds it to every send so its estimate never falls short.
 */
const FRAME_OVERHEAD = 14;

/** A socket the hub holds, in the core's contract. */
export class Connection implements SocketEvents {
  readonly socket: HubSocket;
  /** The native fan-out of the socket's server; `undefined` when the loop reaches this socket. */
  publisher: Publisher | undefined;
  /** What the socket's events go to; `undefined` once the connection was let go. */
  owner: ConnectionOwner<Connection> | undefined;
  #host: ConnectionHost;
  /**
   * Bytes this connection may still send before `bufferedAmount` must be read again: the limit
   * minus what was queued at the last read minus what was sent since (frame overhead included).
   * The runtime only ever drains its queue, so while this stays >= 0 the limit cannot be
   * crossed, and most sends skip a call into the runtime. Valid while `#publishesSeen` equals
   * the host's native publish count.
   */
  #credit = 0;
  #publishesSeen = -1;
  /** With `ping`: when the last ping went. Without: since when the queue has not drained (0: it drains). */
  #watchAt = 0;
  #awaitingPong = false;
  /** Without `ping`: `bufferedAmount` at the last tick plus the bytes sent since. */
  #queued = 0;

  constructor(host: ConnectionHost, socket: HubSocket, publisher: Publisher | undefined) {
    this.#host = host;
    this.socket = socket;
    this.publisher = publisher;
  }

  /**
   * Sends a frame of known size within the outbound limit. Returns false when the limit (or
   * the runtime) refused it; a socket that throws is reported and counts as sent (its close
   * follows).
   */
  send(data: string | Uint8Array, size: number): boolean {
    const host = this.#host;
    const socket = this.socket;
    const max = host.limits.maxBufferedAmount;
    let credit = this.#credit - size - FRAME_OVERHEAD;
    if (credit < 0 || this.#publishesSeen !== host.publishes) {
      if (socket.bufferedAmount + size > max) return false;
      credit = max - socket.bufferedAmount - size - FRAME_OVERHEAD;
      this.#publishesSeen = host.publishes;
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
    const owner = this.owner;
    if (!owner) return; // let go
    const msg = typeof data === "string" || data instanceof Uint8Array ? data : new Uint8Array(data);
    if (owner.limited) {
      const max = this.#host.limits.maxMessageSize;
      if (typeof msg === "string" ? msg.length > max / 3 && utf8Length(msg) > max : msg.byteLength > max) {
        owner.tooBig(this, false);
        return;
      }
    }
    owner.received(this, msg);
  }

  /** Adapter event: the socket closed. */
  closed(code: number, reason: string): void {
    this.#host.closeEnded(this);
    const owner = this.owner;
    if (!owner) return;
    // A runtime that bounds messages itself (Bun) closes with 1009 before the hub sees one.
    if (code === 1009) owner.tooBig(this, true);
    owner.closed(this, code, reason);
  }

  /** Adapter event: the runtime reported an error. */
  errored(err: unknown): void {
    this.#report(err);
  }

  /** Adapter event: a pong arrived. */
  ponged(): void {
    this.#awaitingPong = false;
    this.owner?.ponged(this);
  }

  /** Lets go of the socket: no publish reaches it any more, and it is closed. */
  close(code: number, reason: string): void {
    this.#host.closeStarted(this);
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
      this.#host.demote(this);
    }
  }

  /** Unsubscribes from a native topic. */
  unsubscribe(topic: string): void {
    if (!this.publisher) return;
    try {
      this.socket.unsubscribe!(topic);
    } catch (err) {
      this.#report(err);
    }
  }

  /** Leaves every native topic of its owner, quietly (the socket may be closed already). */
  unsubscribeAll(): void {
    const owner = this.owner;
    if (!this.publisher || !owner) return;
    const socket = this.socket;
    try {
      for (const topic of owner.topics()) socket.unsubscribe!(topic);
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
    if (queued > this.#host.limits.maxBufferedAmount) this.owner?.refused(this, size, queued);
  }

  /**
   * Keepalive step. With `ping`: pings when `interval` has passed since the last one; returns
   * whether it pinged. Without: gives up the connection when its queue has not drained at all
   * for `wait` (a peer that stopped reading; a runtime's own ping cannot get past a full queue).
   * Its owner may send a heartbeat of its own every `interval` (a resumable session's, for its
   * client to tell a dead connection).
   */
  tick(now: number, interval: number, wait: number): boolean {
    const owner = this.owner;
    if (!owner) return false;
    const socket = this.socket;
    owner.beat(now, interval);
    if (!socket.ping) {
      const queued = socket.bufferedAmount;
      if (queued === 0 || queued < this.#queued) this.#watchAt = 0;
      else if (this.#watchAt === 0) this.#watchAt = now;
      else if (now - this.#watchAt >= wait) {
        owner.lost(this, "Peer stopped reading");
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
    const owner = this.owner;
    if (!this.#awaitingPong || !owner) return -1;
    const left = this.#watchAt + wait - now;
    if (left > 0) return left;
    owner.lost(this, "Pong timeout");
    return -1;
  }

  #report(err: unknown): void {
    const owner = this.owner;
    if (owner) owner.report(err);
    else console.error("chorus: socket:", err);
  }
}
