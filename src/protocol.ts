/**
 * The `chorus.v1` subprotocol: the frames a resumable session and `chorus-ws/client` exchange,
 * shared by the hub and the client. A client offers it with `new WebSocket(url, ["chorus.v1"])`;
 * a hub answers it. A plain WebSocket (no subprotocol) never sees these frames. `docs/protocol.md`
 * is the full description, precise enough to write a client in another language.
 *
 * Messages to the client belong to **streams**, each known by its key *and* its **epoch**, with
 * increasing **offsets**: the hub-wide stream (key `"h"`: broadcasts), one per room (key
 * `"r:" + name`), and the session's own (key `"s"`: `write`, `broadcastFilter`,
 * `broadcastMultiple`). A broadcast has one offset in its stream, the same for every recipient,
 * so it is encoded once. Before the first message of a stream on a connection, the hub declares
 * it: a small id, its key and its epoch. An id names one key and epoch for the life of the
 * connection and is never given to another (a stream made anew gets a new id). The client keeps,
 * per stream key, the epoch and the highest offset it received: its **position**, which it sends
 * to resume, and which it acknowledges as it goes. Messages from the client are numbered 1, 2, 3…
 * per session (stream id 0).
 *
 * Data frames keep their kind: a text message is a text frame, bytes a binary frame.
 *
 * ```
 * text data     "m" <id base 36> "." <n base 36> ";" <payload>
 * binary data   0x6d <id as unsigned LEB128> <n as unsigned LEB128> <payload>
 * ack           "a" <n base 36>     hub → client: "I have your messages up to number n"
 * received      "r" [<id base 36> "." <offset base 36> ("," <id> "." <offset>)*]
 *                                   client → hub: "I have stream <id> up to <offset>", for the
 *                                   streams that moved since the last one; "r" alone says
 *                                   "alive" (the answer to a heartbeat) and confirms a welcome
 * heartbeat     "p"                 hub → client; the client answers with "received"
 * control       "{" … JSON          the handshake and stream declarations (below)
 * ```
 *
 * Handshake: on open the hub sends `{"t":"hello","v":1}`; the client answers `{"t":"new"}` or
 * `{"t":"resume","token":T,"pos":{key:[epoch,offset],…}}`; the hub answers
 * `{"t":"welcome","resumed":R,"token":T2,"recv":S,"hb":H,"max":M}`: whether the session
 * continues, the credential for the next resume (single-use; `""`: this hub keeps nothing, and
 * data frames are plain from here on), the last number it received from the client (the client
 * sends again what follows), how often it sends heartbeats (ms), and the largest frame it takes
 * from the client (bytes). The client confirms the welcome at once with a `received` frame: only
 * then is the credential it presented retired. Then `{"t":"stream","id":I,"key":K,"epoch":E}` for
 * each stream (with `"from":O` where the session starts following it: a new session, a room just
 * joined), `{"t":"end","key":K}` when the session stops following a stream (it left the room: the
 * client forgets its position there), and a resumed session's missed messages, in order, before
 * anything new. A hub that cannot decide a resume yet (the session is being resumed on another
 * connection, or its broker cannot be reached) closes with 1013: the client tries again later
 * with the same credential.
 *
 * A hub that refuses an upgrade (a 4xx other than 408, 426 and 429) of a client that offered
 * `chorus.v1` may accept it only to close it at once, before `hello`, with close code 4000 + the
 * HTTP status and the answer's text as the reason (see {@linkcode refusalCode}): a browser cannot
 * read the status of a failed handshake. The client stops for good.
 *
 * @module
 */

// A leaf, shared by the hub and the client (the client imports nothing else of chorus). May import: nothing.

/** The subprotocol's name. */
export const PROTOCOL = "chorus.v1";

/** The first byte of a binary data frame (`"m"`). */
const DATA = 0x6d;

/** The hub's first frame: it speaks the protocol. */
export interface HelloMessage {
  /** Kind. */
  t: "hello";
  /** Protocol version. */
  v: 1;
}

/** A client's position: per stream key, the stream's epoch and the highest offset received. */
export type Position = Record<string, [epoch: string, offset: number]>;

/** The client's answer to `hello`: a new session, or the one its credential names. */
export type RequestMessage = { t: "new" } | {
  /** Kind. */
  t: "resume";
  /** The credential of the last `welcome`. */
  token: string;
  /** What the client received. */
  pos: Position;
};

/** The hub's answer to a request. */
export interface WelcomeMessage {
  /** Kind. */
  t: "welcome";
  /** Whether the session continues (nothing lost); false: a new session. */
  resumed: boolean;
  /** The credential for the next resume; `""`: the hub keeps nothing (data frames are plain). */
  token: string;
  /** The last number the hub received from the client (0 for none). */
  recv: number;
  /** The hub's heartbeat interval in ms (0: none). */
  hb: number;
  /**
   * The largest frame the hub takes from the client, in bytes (its `maxMessageSize`); a larger one
   * closes the connection with 1009. Absent: no limit was given.
   */
  max?: number;
}

/** A stream's declaration: the id its data frames carry on this connection. */
export interface StreamMessage {
  /** Kind. */
  t: "stream";
  /** The id in data frames, 1 or more. */
  id: number;
  /** The stream's key: `"h"`, `"s"` or `"r:" + room`. */
  key: string;
  /** The stream's epoch: offsets of another epoch are not comparable. */
  epoch: string;
  /**
   * The session follows the stream from this offset on (it just joined the room, or it is a new
   * session): the client takes it as its position in the stream unless it has a later one.
   */
  from?: number;
}

/** The session no longer follows a stream (it left the room): the client forgets its position there. */
export interface EndMessage {
  /** Kind. */
  t: "end";
  /** The stream's key. */
  key: string;
}

/** A handshake message. */
export type ControlMessage = HelloMessage | RequestMessage | WelcomeMessage | StreamMessage | EndMessage;

/** A decoded frame. */
export type Frame =
  | { kind: "data"; id: number; n: number; payload: string | Uint8Array }
  | { kind: "ack"; n: number }
  | { kind: "received"; at: [id: number, offset: number][] }
  | { kind: "ping" }
  | { kind: "control"; message: ControlMessage };

/** The heartbeat frame. */
export const PING = "p";

/**
 * Whether `token` has the shape of a resume credential the hub issues (16 to 64 characters of
 * `A–Z a–z 0–9 _ -`). An empty or malformed credential names no session: the hub answers it with
 * a fresh one, and a broker never indexes it.
 */
export function isCredential(token: string): boolean {
  return /^[A-Za-z0-9_-]{16,64}$/.test(token);
}

/** Most entries a resume position may have (a client in more rooms than this cannot resume). */
export const MAX_POSITION_ENTRIES = 4096;

/**
 * Encodes a data frame: a string as a text frame, bytes as a binary frame.
 *
 * @param id The stream id (0 for the client's messages).
 * @param n The offset (hub) or number (client), a positive safe integer.
 * @param payload The message.
 * @returns The frame.
 */
export function encodeData(id: number, n: number, payload: string | Uint8Array): string | Uint8Array {
  if (typeof payload === "string") return `m${id.toString(36)}.${n.toString(36)};${payload}`;
  const head = 1 + varintLength(id) + varintLength(n);
  const out = new Uint8Array(head + payload.byteLength);
  out[0] = DATA;
  const at = writeVarint(out, writeVarint(out, 1, id), n);
  out.set(payload, at);
  return out;
}

/**
 * The bytes a data frame adds to its payload.
 *
 * @param id The stream id.
 * @param n The offset or number.
 * @returns The overhead of the text form (the binary form is never larger).
 */
export function dataOverhead(id: number, n: number): number {
  return 3 + id.toString(36).length + n.toString(36).length;
}

/**
 * Encodes an acknowledgement.
 *
 * @param n What is acknowledged (see the module's doc).
 * @returns The frame.
 */
export function encodeAck(n: number): string {
  return `a${n.toString(36)}`;
}

/**
 * Encodes what the client received: per stream id, the highest offset.
 *
 * @param at Stream ids with their offsets; none for a bare "alive" (and a welcome's confirmation).
 * @returns The frame.
 */
export function encodeReceived(at: Iterable<readonly [id: number, offset: number]>): string {
  let out = "r";
  for (const [id, offset] of at) out += `${out.length > 1 ? "," : ""}${id.toString(36)}.${offset.toString(36)}`;
  return out;
}

/**
 * Encodes a handshake message or a stream declaration.
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
    if (bytes.byteLength < 3 || bytes[0] !== DATA) return undefined;
    const id = readVarint(bytes, 1);
    if (!id) return undefined;
    const n = readVarint(bytes, id.end);
    if (!n || !(id.value >= 0) || !valid(n.value)) return undefined;
    return { kind: "data", id: id.value, n: n.value, payload: bytes.subarray(n.end) };
  }
  switch (frame.charCodeAt(0)) {
    case 0x6d: { // m
      const end = frame.indexOf(";");
      const dot = frame.indexOf(".");
      if (dot < 2 || end < dot + 2 || end > 26) return undefined;
      const id = parseBase36(frame.slice(1, dot));
      const n = parseBase36(frame.slice(dot + 1, end));
      return id >= 0 && valid(n) ? { kind: "data", id, n, payload: frame.slice(end + 1) } : undefined;
    }
    case 0x61: { // a
      const n = frame.length > 1 && frame.length <= 12 ? parseBase36(frame.slice(1)) : -1;
      return n >= 0 && Number.isSafeInteger(n) ? { kind: "ack", n } : undefined;
    }
    case 0x72: // r
      return decodeReceived(frame);
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

/** Most streams one `received` frame may name. */
const MAX_RECEIVED = 4096;

function decodeReceived(frame: string): Frame | undefined {
  const at: [number, number][] = [];
  if (frame.length === 1) return { kind: "received", at };
  const parts = frame.slice(1).split(",");
  if (parts.length > MAX_RECEIVED) return undefined;
  for (const part of parts) {
    const dot = part.indexOf(".");
    if (dot < 1 || dot > 11 || part.length - dot > 12) return undefined;
    const id = parseBase36(part.slice(0, dot));
    const offset = parseBase36(part.slice(dot + 1));
    if (id < 1 || !Number.isSafeInteger(id) || !valid(offset)) return undefined;
    at.push([id, offset]);
  }
  return { kind: "received", at };
}

function varintLength(n: number): number {
  let length = 1;
  for (let v = n; v >= 0x80; v = Math.floor(v / 0x80)) length++;
  return length;
}

function writeVarint(out: Uint8Array, at: number, n: number): number {
  let v = n;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

function readVarint(bytes: Uint8Array, start: number): { value: number; end: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let at = start; at < bytes.byteLength && at < start + 8; at++) {
    const b = bytes[at];
    value += (b & 0x7f) * scale;
    scale *= 0x80;
    if (b < 0x80) return { value, end: at + 1 };
  }
  return undefined;
}

function parseBase36(text: string): number {
  if (!/^[0-9a-z]+$/.test(text)) return -1;
  return parseInt(text, 36);
}

function valid(n: number): boolean {
  return n >= 1 && Number.isSafeInteger(n);
}

function isPosition(p: unknown): p is Position {
  if (p === null || typeof p !== "object" || Array.isArray(p)) return false;
  const entries = Object.entries(p);
  if (entries.length > MAX_POSITION_ENTRIES) return false;
  return entries.every(([, v]) =>
    Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "number" &&
    Number.isSafeInteger(v[1]) && v[1] >= 0
  );
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
      return typeof msg.token === "string" && msg.token.length <= 64 && isPosition(msg.pos);
    case "welcome":
      return typeof msg.resumed === "boolean" && typeof msg.token === "string" && typeof msg.recv === "number" &&
        typeof msg.hb === "number" && (msg.max === undefined || (typeof msg.max === "number" && msg.max >= 0));
    case "end":
      return typeof msg.key === "string";
    case "stream":
      return typeof msg.id === "number" && Number.isSafeInteger(msg.id) && msg.id >= 1 && typeof msg.key === "string" &&
        typeof msg.epoch === "string" &&
        (msg.from === undefined || (typeof msg.from === "number" && Number.isSafeInteger(msg.from) && msg.from >= 0));
  }
  return false;
}

/**
 * The close code that tells a `chorus.v1` client its upgrade was refused: 4000 + the HTTP status.
 * Only a 4xx other than 408, 426 and 429 refuses for good; the others (and every other status) may
 * let the client in later, so they are no refusal.
 *
 * @param status The HTTP status of the refusal.
 * @returns 4000 + `status`, or `undefined` when the status is no refusal.
 */
export function refusalCode(status: number): number | undefined {
  return status >= 400 && status <= 499 && status !== 408 && status !== 426 && status !== 429
    ? 4000 + status
    : undefined;
}

/**
 * A text cut to what a close frame carries (123 bytes of UTF-8), never inside a character.
 *
 * @param text The text.
 * @returns The reason.
 */
export function closeReason(text: string): string {
  const bytes = new TextEncoder().encode(text);
  if (bytes.byteLength <= 123) return text;
  let end = 123;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--; // back to the start of a character
  return new TextDecoder().decode(bytes.subarray(0, end));
}
