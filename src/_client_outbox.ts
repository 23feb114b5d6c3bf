/**
 * What the client sends: the bounded queue of messages waiting for a connection, the messages sent
 * and not yet acknowledged by a `chorus.v1` hub, their numbers, and the hub's frame size limit
 * (`max` in the welcome) applied to whole frames. Internal to `chorus-ws/client`; no sockets.
 *
 * @module
 */

import { encodeData } from "./protocol.ts";

/** A message as it is sent: a string (a text frame) or bytes (a binary frame). */
export type Payload = string | Uint8Array;

interface Outgoing {
  n: number;
  data: Payload;
}

/** The sending side of a session. */
export class Outbox {
  readonly #maxQueued: number;
  /** The largest frame the hub takes (the last welcome's `max`); `undefined`: no limit known. */
  max: number | undefined;
  /** The next number of an outgoing message. */
  #next = 1;
  /** Sent, not yet acknowledged (numbered frames only), oldest first. */
  #sent: Outgoing[] = [];
  /** Not yet sent (no connection was ready). */
  #queue: Payload[] = [];

  /**
   * Makes an empty outbox.
   *
   * @param maxQueued The most messages queued plus unacknowledged.
   */
  constructor(maxQueued: number) {
    this.#maxQueued = maxQueued;
  }

  /** Whether no message may be added: `maxQueued` are queued or unacknowledged. */
  get full(): boolean {
    return this.#queue.length + this.#sent.length >= this.#maxQueued;
  }

  /**
   * Whether a message is larger than the hub takes, as the next frame sent.
   *
   * @param data The message.
   * @param framed Whether it goes numbered (a `chorus.v1` data frame) or as it is.
   * @returns The frame's size in bytes when it is too large, else 0.
   */
  tooLarge(data: Payload, framed: boolean): number {
    if (this.max === undefined) return 0;
    const size = frameSize(data, framed ? this.#next + this.#queue.length : 0);
    return size > this.max ? size : 0;
  }

  /**
   * Queues a message until a connection is ready.
   *
   * @param data The message.
   */
  queue(data: Payload): void {
    this.#queue.push(data);
  }

  /**
   * Numbers a message, keeps it until acknowledged, and makes its frame.
   *
   * @param data The message.
   * @returns The data frame.
   */
  number(data: Payload): string | Uint8Array {
    const n = this.#next++;
    this.#sent.push({ n, data });
    return encodeData(0, n, data);
  }

  /**
   * Puts messages back at the head of the queue, in their order (they went to a connection that
   * turned out not to take them).
   *
   * @param data The messages.
   */
  requeue(data: Payload[]): void {
    this.#queue = [...data, ...this.#queue];
  }

  /**
   * Takes every queued message, oldest first (for a connection without numbered frames).
   *
   * @returns The messages.
   */
  drain(): Payload[] {
    const queue = this.#queue;
    this.#queue = [];
    return queue;
  }

  /**
   * The hub has the messages up to `n`: they are not kept any longer.
   *
   * @param n The last number the hub received.
   */
  acked(n: number): void {
    let k = 0;
    while (k < this.#sent.length && this.#sent[k].n <= n) k++;
    if (k > 0) this.#sent.splice(0, k);
  }

  /**
   * A welcome: what goes on the new connection, in order. A resumed session gets what the hub had
   * not received (`recv` says up to where), then the queue; a new one every unacknowledged message
   * (at least once across that boundary), then the queue. They are numbered on from `recv` (0 for a
   * new session). A message larger than the hub takes (queued before a welcome told the limit, or a
   * hub that lowered it) is left out and returned in `dropped`.
   *
   * @param resumed Whether the session continued.
   * @param recv The hub's last received number.
   * @param framed Whether the connection's frames are numbered.
   * @returns The frames to send, and the messages left out with their frame sizes.
   */
  restart(
    resumed: boolean,
    recv: number,
    framed: boolean,
  ): { frames: Payload[]; dropped: { data: Payload; size: number }[] } {
    const pending = [
      ...(resumed ? this.#sent.filter((o) => o.n > recv) : this.#sent).map((o) => o.data),
      ...this.#queue,
    ];
    this.#sent = [];
    this.#queue = [];
    this.#next = resumed ? recv + 1 : 1;
    const frames: Payload[] = [];
    const dropped: { data: Payload; size: number }[] = [];
    for (const data of pending) {
      const size = this.tooLarge(data, framed);
      if (size) dropped.push({ data, size });
      else frames.push(framed ? this.number(data) : data);
    }
    return { frames, dropped };
  }

  /** Forgets every message (the client stopped). */
  clear(): void {
    this.#sent = [];
    this.#queue = [];
  }
}

/**
 * The error for a message larger than the hub takes.
 *
 * @param size The frame's size.
 * @param max The hub's limit.
 * @returns The error.
 */
export function tooLarge(size: number, max: number): RangeError {
  return new RangeError(`A message of ${size} bytes is larger than the hub takes (${max} bytes per frame)`);
}

/**
 * A message as it is sent: bytes are copied (the caller may reuse its buffer).
 *
 * @param data A string, or bytes.
 * @returns The payload.
 * @throws {TypeError} If `data` is neither.
 */
export function toPayload(data: string | ArrayBuffer | ArrayBufferView): Payload {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  throw new TypeError("send() takes a string, an ArrayBuffer or an ArrayBufferView");
}

/**
 * The size of a message as the hub receives it: as it is, or in a numbered data frame.
 *
 * @param data The message.
 * @param n Its number in a data frame; 0: sent as it is.
 * @returns Bytes.
 */
export function frameSize(data: Payload, n: number): number {
  if (typeof data !== "string") {
    if (n === 0) return data.byteLength;
    let head = 3; // "m", stream id 0, and the number's first byte
    for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) head++;
    return head + data.byteLength;
  }
  return (n === 0 ? 0 : 4 + n.toString(36).length) + utf8Length(data);
}

/** The UTF-8 length of a string, without encoding it. */
function utf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes++;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 code units
      i++;
    } else bytes += 2; // 3 bytes (a lone surrogate becomes U+FFFD, also 3)
  }
  return bytes;
}
