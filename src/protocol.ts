/**
 * The `chorus.v1` subprotocol: the frames a resumable session and `chorus/client` exchange,
 * shared by the hub and the client. A client offers it with `new WebSocket(url, ["chorus.v1"])`;
 * a hub with `resume` on answers it. A plain WebSocket (no subprotocol) never sees these frames.
 *
 * Data frames keep their kind: a text message is a text frame, bytes a binary frame.
 *
 * ```
 * text data     "m" <n base 36> ";" <payload>         n: the message's offset (to the client)
 * binary data   0x6d <n as unsigned LEB128> <payload>    or its sequence number (from the client)
 * ack           "a" <n base 36>                        "I have everything up to n"
 * heartbeat     "p"                                    server → client; the client answers with an ack
 * control       "{" … JSON                             the handshake (below)
 * ```
 *
 * Handshake: on open the server sends `{"t":"hello","v":1}`; the client answers
 * `{"t":"new"}` or `{"t":"resume","token":T,"last":L}` (L: the last offset it received); the
 * server answers `{"t":"welcome","resumed":R,"token":T2,"recv":S,"hb":H}`: whether the session
 * continues, the credential for the next resume (single-use), the last sequence number it
 * received from the client (the client sends again what follows), and how often it sends
 * heartbeats (ms). Only then do data frames flow; a resumed session first replays, in order,
 * every message after L.
 *
 * Offsets are per hub, increasing, with gaps (a session sees only the messages meant for it);
 * sequence numbers count the client's messages of one session from 1. Each side acknowledges
 * what it received, so the other can forget it.
 *
 * @module
 */

/** The subprotocol's name. */
export const PROTOCOL = "chorus.v1";

/** The first byte of a binary data frame (`"m"`). */
const DATA = 0x6d;

/** The server's first frame: it speaks the protocol. */
export interface HelloMessage {
  /** Kind. */
  t: "hello";
  /** Protocol version. */
  v: 1;
}

/** The client's answer to `hello`: a new session, or the one its credential names. */
export type RequestMessage = { t: "new" } | {
  /** Kind. */
  t: "resume";
  /** The credential of the last `welcome`. */
  token: string;
  /** The last offset the client received (0 for none). */
  last: number;
};

/** The server's answer to a request. */
export interface WelcomeMessage {
  /** Kind. */
  t: "welcome";
  /** Whether the session continues (nothing lost); false: a new session. */
  resumed: boolean;
  /** The credential for the next resume. */
  token: string;
  /** The last sequence number the server received from the client (0 for none). */
  recv: number;
  /** The server's heartbeat interval in ms (0: none). */
  hb: number;
}

/** A handshake message. */
export type ControlMessage = HelloMessage | RequestMessage | WelcomeMessage;

/** A decoded frame. */
export type Frame =
  | { kind: "data"; n: number; payload: string | Uint8Array }
  | { kind: "ack"; n: number }
  | { kind: "ping" }
  | { kind: "control"; message: ControlMessage };

/** The heartbeat frame. */
export const PING = "p";

/**
 * Encodes a data frame: a string as a text frame, bytes as a binary frame.
 *
 * @param n The offset (server) or sequence number (client), a positive safe integer.
 * @param payload The message.
 * @returns The frame.
 */
export function encodeData(n: number, payload: string | Uint8Array): string | Uint8Array {
  if (typeof payload === "string") return `m${n.toString(36)};${payload}`;
  let length = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) length++;
  const out = new Uint8Array(1 + length + payload.byteLength);
  out[0] = DATA;
  let at = 1;
  let v = n;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  out.set(payload, at);
  return out;
}

/**
 * Encodes an acknowledgement.
 *
 * @param n The highest offset (client) or sequence number (server) received.
 * @returns The frame.
 */
export function encodeAck(n: number): string {
  return `a${n.toString(36)}`;
}

/**
 * Encodes a handshake message.
 *
 * @param message The message.
 * @returns The frame.
 */
export function encodeControl(message: ControlMessage): string {
  return JSON.stringify(message);
}

/**
 * Decodes a frame.
 *
 * @param frame A text frame as a string, a binary frame as bytes.
 * @returns The frame, or `undefined` when it is not a `chorus.v1` frame.
 */
export function decodeFrame(frame: string | ArrayBuffer | Uint8Array): Frame | undefined {
  if (typeof frame !== "string") {
    const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
    if (bytes.byteLength < 2 || bytes[0] !== DATA) return undefined;
    let n = 0;
    let scale = 1;
    let at = 1;
    for (;;) {
      if (at >= bytes.byteLength || at > 8) return undefined;
      const b = bytes[at++];
      n += (b & 0x7f) * scale;
      scale *= 0x80;
      if (b < 0x80) break;
    }
    if (!valid(n)) return undefined;
    return { kind: "data", n, payload: bytes.subarray(at) };
  }
  switch (frame.charCodeAt(0)) {
    case 0x6d: { // m
      const end = frame.indexOf(";");
      const n = end > 1 && end <= 12 ? parseBase36(frame.slice(1, end)) : -1;
      return valid(n) ? { kind: "data", n, payload: frame.slice(end + 1) } : undefined;
    }
    case 0x61: { // a
      const n = frame.length > 1 && frame.length <= 12 ? parseBase36(frame.slice(1)) : -1;
      return n >= 0 && Number.isSafeInteger(n) ? { kind: "ack", n } : undefined;
    }
    case 0x70: // p
      return frame.length === 1 ? { kind: "ping" } : undefined;
    case 0x7b: { // {
      let message: unknown;
      try {
        message = JSON.parse(frame);
      } catch {
        return undefined;
      }
      return isControl(message) ? { kind: "control", message } : undefined;
    }
  }
  return undefined;
}

/**
 * The frame's overhead on top of its payload, in bytes.
 *
 * @param n The offset or sequence number.
 * @returns The bytes a data frame adds (text: "m", the number, ";"; binary: the kind byte and the varint).
 */
export function dataOverhead(n: number): number {
  return 2 + n.toString(36).length;
}

function parseBase36(text: string): number {
  if (!/^[0-9a-z]+$/.test(text)) return -1;
  return parseInt(text, 36);
}

function valid(n: number): boolean {
  return n >= 1 && Number.isSafeInteger(n);
}

function isControl(m: unknown): m is ControlMessage {
  if (m === null || typeof m !== "object") return false;
  const msg = m as Record<string, unknown>;
  switch (msg.t) {
    case "hello":
      return msg.v === 1;
    case "new":
      return true;
    case "resume":
      return typeof msg.token === "string" && msg.token.length <= 64 && typeof msg.last === "number" &&
        msg.last >= 0 && Number.isSafeInteger(msg.last);
    case "welcome":
      return typeof msg.resumed === "boolean" && typeof msg.token === "string" && typeof msg.recv === "number" &&
        typeof msg.hb === "number";
  }
  return false;
}
