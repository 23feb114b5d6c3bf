/**
 * chorus' wire format for broadcasts between nodes: compact, binary-safe and versioned.
 *
 * ```
 * byte 0      0xC7  magic (no UTF-8 text starts with 0xC7 0x01 or 0xC7 0x02)
 * byte 1      version: 0x01, or 0x02 for a message with `except` or `position`, or a notice
 * byte 2      flags: bits 0-1 kind (0 all, 1 others, 2 room, 3 room-others),
 *                    bit 7 binary payload (else UTF-8 text);
 *                    version 2 only: bit 2 `except`, bit 3 `position`, bit 4 a notice (below);
 *                    other bits 0
 * byte 3      n = length of the node id (1-255)
 * 4 … 4+n     node id, UTF-8
 * room kinds: room name length as an unsigned LEB128 varint (at most 4 bytes), then the name, UTF-8
 * bit 2:      except: length (varint), then the session id, UTF-8
 * bit 3:      position: key length (varint), key (UTF-8), epoch length (1 byte), epoch (UTF-8),
 *             then offset, seq and time as varints (at most 8 bytes each: integers below 2^53)
 * rest        the payload
 * ```
 *
 * A message without `except` and `position` is written as version 1, byte for byte as before,
 * so nodes that read only version 1 still read it. A notice (bit 4; kind bits 0, no other bit)
 * says that the node of the header claimed a session from another node: the old node's id
 * (varint length, UTF-8), then the session id as the rest (see {@linkcode encodeReleased}).
 * A presence notice (bit 4 and kind bits 1, no other bit) carries one room's joins and leaves on
 * the node of the header: the room (varint length, UTF-8), then as the rest the JSON text
 * `{"j":[[id,keys],…],"l":[[id,keys],…]}` (see {@linkcode encodePresence}). Nodes that read only
 * releases refuse it as a notice (a `BrokerMessageError`), and deliver nothing.
 *
 * @module
 */

import type { BroadcastKind, BrokerMessage, PresenceChange, PresenceEntry, StreamPosition } from "../broker.ts";
import { BrokerMessageError } from "../errors.ts";

/** The newest wire format version this module writes; it reads versions 1 and 2. */
export const WIRE_VERSION = 2;

const MAGIC = 0xc7;
const KINDS: readonly BroadcastKind[] = ["all", "others", "room", "room-others"];
const BINARY = 0x80;
const EXCEPT = 0x04;
const POSITION = 0x08;
const NOTICE = 0x10;
/** With NOTICE: a presence notice (kind bits 1), not a release (kind bits 0). */
const PRESENCE = 0x01;
const MAX_ROOM = (1 << 28) - 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Encodes a broadcast.
 *
 * @param msg The broadcast.
 * @param max The broker's limit on an encoded message, in bytes.
 * @returns Its bytes.
 * @throws {RangeError} If the node id is empty or longer than 255 bytes, the room name is missing,
 *   the position's epoch is longer than 255 bytes or a number of it is not an integer in
 *   [0, 2^53), or the encoded message is larger than `max`.
 */
export function encodeMessage(msg: BrokerMessage, max: number = Infinity): Uint8Array {
  const head = encodeHead(msg, msg.position?.key);
  const position = msg.position ? encodePosition(msg.position) : undefined;
  const payload = typeof msg.payload === "string" ? encoder.encode(msg.payload) : msg.payload;
  const size = head.length + (position?.length ?? 0) + payload.length;
  if (size > max) {
    throw new RangeError(`A broadcast of ${size} bytes exceeds the broker's limit of ${max} bytes`);
  }
  const out = new Uint8Array(size);
  out.set(head);
  if (position) out.set(position, head.length);
  out.set(payload, size - payload.length);
  return out;
}

/**
 * Encodes a broadcast's header up to its position's epoch: everything but the epoch, the
 * numbers and the payload. A broker that computes the position where it stores the message
 * (a Redis script) appends `epoch length, epoch, offset, seq, time` and the payload to it.
 *
 * @param msg The broadcast (its `position` is ignored).
 * @param key The stream's key when the message will carry a position; `undefined` for none.
 * @returns The header's bytes.
 * @throws {RangeError} As {@linkcode encodeMessage}.
 */
export function encodeHead(msg: BrokerMessage, key: string | undefined): Uint8Array {
  const kind = KINDS.indexOf(msg.kind);
  if (kind < 0) throw new TypeError(`Unknown broadcast kind ${String(msg.kind)}`);
  const node = encoder.encode(msg.node);
  if (node.length === 0 || node.length > 255) throw new RangeError("A node id must be 1 to 255 bytes of UTF-8");
  const room = kind >= 2 ? encoder.encode(msg.room ?? "") : undefined;
  if (room && (room.length === 0 || room.length > MAX_ROOM)) throw new RangeError("A room broadcast needs a room name");
  const except = msg.except === undefined ? undefined : encoder.encode(msg.except);
  const keyBytes = key === undefined ? undefined : encoder.encode(key);
  if ((except && except.length > MAX_ROOM) || (keyBytes && keyBytes.length > MAX_ROOM)) {
    throw new RangeError("A session id or stream key is too long");
  }
  const v2 = except !== undefined || keyBytes !== undefined;
  const binary = typeof msg.payload !== "string";
  const size = 4 + node.length + lengthed(room) + lengthed(except) + lengthed(keyBytes);
  const out = new Uint8Array(size);
  out[0] = MAGIC;
  out[1] = v2 ? 2 : 1;
  out[2] = kind | (binary ? BINARY : 0) | (except ? EXCEPT : 0) | (keyBytes ? POSITION : 0);
  out[3] = node.length;
  out.set(node, 4);
  let at = 4 + node.length;
  for (const part of [room, except, keyBytes]) {
    if (!part) continue;
    at = writeVarint(out, at, part.length);
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Encodes a notice that `node` claimed session `session` from node `from` (a version 2 message).
 *
 * @param node The node that claimed the session.
 * @param from The node that had it.
 * @param session The session's id.
 * @returns Its bytes.
 * @throws {RangeError} If a node id is empty or longer than 255 bytes.
 */
export function encodeReleased(node: string, from: string, session: string): Uint8Array {
  const head = encodeReleasedHead(node);
  const old = encoder.encode(from);
  if (old.length === 0 || old.length > 255) throw new RangeError("A node id must be 1 to 255 bytes of UTF-8");
  const id = encoder.encode(session);
  const out = new Uint8Array(head.length + lengthed(old) + id.length);
  out.set(head);
  let at = writeVarint(out, head.length, old.length);
  out.set(old, at);
  at += old.length;
  out.set(id, at);
  return out;
}

/**
 * The header of a notice of {@linkcode encodeReleased} up to the old node's id (for a Redis
 * script that appends the old node's id, as a varint length and the bytes, and the session id).
 *
 * @param node The node that claims.
 * @returns The header's bytes.
 * @throws {RangeError} If the node id is empty or longer than 255 bytes.
 */
export function encodeReleasedHead(node: string): Uint8Array {
  const id = encoder.encode(node);
  if (id.length === 0 || id.length > 255) throw new RangeError("A node id must be 1 to 255 bytes of UTF-8");
  const out = new Uint8Array(4 + id.length);
  out.set([MAGIC, 2, NOTICE, id.length]);
  out.set(id, 4);
  return out;
}

/**
 * Encodes a presence notice: one room's joins and leaves on one node (a version 2 message).
 *
 * @param node The node whose sessions joined and left (every entry's node).
 * @param room The room.
 * @param change The joins and leaves; each entry's `node` is taken to be `node`.
 * @param max The broker's limit on an encoded message, in bytes.
 * @returns Its bytes.
 * @throws {RangeError} If the node id is empty or longer than 255 bytes, the room is empty, or
 *   the notice is larger than `max`.
 */
export function encodePresence(node: string, room: string, change: PresenceChange, max: number = Infinity): Uint8Array {
  const id = encoder.encode(node);
  if (id.length === 0 || id.length > 255) throw new RangeError("A node id must be 1 to 255 bytes of UTF-8");
  const name = encoder.encode(room);
  if (name.length === 0 || name.length > MAX_ROOM) throw new RangeError("A presence notice needs a room name");
  const list = (entries: readonly PresenceEntry[]) =>
    entries.map((e) => `[${JSON.stringify(e.id)},${JSON.stringify(e.keys) ?? "{}"}]`).join(",");
  const body = encoder.encode(`{"j":[${list(change.joins)}],"l":[${list(change.leaves)}]}`);
  const size = 4 + id.length + lengthed(name) + body.length;
  if (size > max) throw new RangeError(`A presence notice of ${size} bytes exceeds the broker's limit of ${max} bytes`);
  const out = new Uint8Array(size);
  out.set([MAGIC, 2, NOTICE | PRESENCE, id.length]);
  out.set(id, 4);
  let at = writeVarint(out, 4 + id.length, name.length);
  out.set(name, at);
  at += name.length;
  out.set(body, at);
  return out;
}

/** A presence notice (see {@linkcode encodePresence}). */
export interface PresenceNotice extends PresenceChange {
  /** The node whose sessions joined and left. */
  readonly node: string;
  /** The room. */
  readonly room: string;
}

/**
 * Decodes a presence notice of {@linkcode encodePresence}.
 *
 * @param bytes The encoded message.
 * @returns The notice, or `undefined` when the bytes are no presence notice.
 * @throws {BrokerMessageError} If the bytes are a malformed presence notice.
 */
export function decodePresence(bytes: Uint8Array): PresenceNotice | undefined {
  if (bytes.length < 5 || bytes[0] !== MAGIC || bytes[1] !== 2 || bytes[2] !== (NOTICE | PRESENCE)) return undefined;
  const nodeEnd = 4 + bytes[3];
  if (bytes[3] === 0 || nodeEnd > bytes.length) throw new BrokerMessageError("Refused a presence notice: bad node id");
  const node = text(bytes.subarray(4, nodeEnd), "node id");
  const [length, at] = readVarint(bytes, nodeEnd, 4, "room length");
  if (length === 0 || at + length > bytes.length) throw new BrokerMessageError("Refused a presence notice: bad room");
  const room = text(bytes.subarray(at, at + length), "room name");
  let body: { j?: unknown; l?: unknown };
  try {
    body = JSON.parse(text(bytes.subarray(at + length), "body"));
  } catch (err) {
    if (err instanceof BrokerMessageError) throw err;
    throw new BrokerMessageError("Refused a presence notice: its body is not JSON");
  }
  const entries = (list: unknown): PresenceEntry[] => {
    if (!Array.isArray(list)) throw new BrokerMessageError("Refused a presence notice: bad body");
    return list.map((e) => {
      if (!Array.isArray(e) || typeof e[0] !== "string" || e[1] === null || typeof e[1] !== "object") {
        throw new BrokerMessageError("Refused a presence notice: bad entry");
      }
      return { id: e[0], node, keys: e[1] as Record<string, unknown> };
    });
  };
  return { node, room, joins: entries(body?.j), leaves: entries(body?.l) };
}

/** A notice that a node claimed another node's session (see {@linkcode encodeReleased}). */
export interface ReleasedNotice {
  /** The node that claimed the session. */
  readonly node: string;
  /** The node that had it. */
  readonly from: string;
  /** The session's id. */
  readonly session: string;
}

/**
 * Decodes a notice of {@linkcode encodeReleased}.
 *
 * @param bytes The encoded message.
 * @returns The notice, or `undefined` when the bytes are no notice (a broadcast, or something else).
 * @throws {BrokerMessageError} If the bytes are a malformed notice.
 */
export function decodeReleased(bytes: Uint8Array): ReleasedNotice | undefined {
  if (bytes.length < 5 || bytes[0] !== MAGIC || bytes[1] !== 2 || bytes[2] !== NOTICE) return undefined;
  const nodeEnd = 4 + bytes[3];
  if (bytes[3] === 0 || nodeEnd > bytes.length) throw new BrokerMessageError("Refused a broker notice: bad node id");
  const node = text(bytes.subarray(4, nodeEnd), "node id");
  const [length, at] = readVarint(bytes, nodeEnd, 4, "old node id");
  if (length === 0 || length > 255 || at + length > bytes.length) {
    throw new BrokerMessageError("Refused a broker notice: bad old node id");
  }
  const from = text(bytes.subarray(at, at + length), "old node id");
  const session = text(bytes.subarray(at + length), "session id");
  return { node, from, session };
}

/**
 * Reads the node id of an encoded broadcast without decoding the rest (to drop a node's own
 * echo cheaply).
 *
 * @param bytes The encoded broadcast.
 * @returns The node id, or `undefined` when the bytes are not a broadcast of a version this module reads.
 */
export function peekNode(bytes: Uint8Array): string | undefined {
  if (bytes.length < 5 || bytes[0] !== MAGIC || (bytes[1] !== 1 && bytes[1] !== 2)) return undefined;
  const end = 4 + bytes[3];
  if (bytes[3] === 0 || end > bytes.length) return undefined;
  try {
    return decoder.decode(bytes.subarray(4, end));
  } catch {
    return undefined;
  }
}

/**
 * Whether an encoded broadcast is a node's own echo, which that node drops: a broadcast
 * published by that node without a position, read from its header without decoding the rest.
 * A broadcast with a position (appended to a stream) is no echo to drop: every node delivers
 * it, its publisher too.
 *
 * @param bytes The encoded broadcast.
 * @param node The node's id, UTF-8 encoded.
 * @returns `true` if `bytes` is a broadcast without position published by `node`.
 */
export function isFromNode(bytes: Uint8Array, node: Uint8Array): boolean {
  const n = node.length;
  if (n === 0 || bytes.length < 4 + n || bytes[0] !== MAGIC || bytes[3] !== n) return false;
  if (bytes[1] !== 1 && (bytes[1] !== 2 || (bytes[2] & (POSITION | NOTICE)) !== 0)) return false;
  for (let i = 0; i < n; i++) if (bytes[4 + i] !== node[i]) return false;
  return true;
}

/**
 * Decodes a broadcast. The payload is a copy: it does not share memory with `bytes`.
 *
 * @param bytes The encoded broadcast.
 * @param max The broker's limit on an encoded message, in bytes.
 * @returns The broadcast.
 * @throws {BrokerMessageError} If the bytes are larger than `max` or not a broadcast of a version this module reads.
 */
export function decodeMessage(bytes: Uint8Array, max: number = Infinity): BrokerMessage {
  if (bytes.length > max) {
    throw new BrokerMessageError(`Refused a broker message of ${bytes.length} bytes: the limit is ${max}`);
  }
  if (bytes.length < 5 || bytes[0] !== MAGIC) {
    throw new BrokerMessageError(`Refused a broker message of ${bytes.length} bytes: not in chorus' wire format`);
  }
  const version = bytes[1];
  if (version !== 1 && version !== 2) {
    throw new BrokerMessageError(
      `Refused a broker message of wire version ${version}: this node reads 1 and ${WIRE_VERSION}`,
    );
  }
  const flags = bytes[2];
  const known = version === 1 ? BINARY | 3 : BINARY | 3 | EXCEPT | POSITION;
  if ((flags & ~known) !== 0) {
    throw new BrokerMessageError(
      flags & NOTICE && version === 2
        ? "Refused a broker message: a notice"
        : "Refused a broker message: unknown flags",
    );
  }
  const kind = KINDS[flags & 3];
  const nodeEnd = 4 + bytes[3];
  if (bytes[3] === 0 || nodeEnd > bytes.length) throw new BrokerMessageError("Refused a broker message: bad node id");
  const node = text(bytes.subarray(4, nodeEnd), "node id");
  let at = nodeEnd;
  let room: string | undefined;
  let except: string | undefined;
  let position: StreamPosition | undefined;
  if (kind === "room" || kind === "room-others") {
    let length: number;
    [length, at] = readVarint(bytes, at, 4, "room length");
    if (length === 0 || at + length > bytes.length) {
      throw new BrokerMessageError("Refused a broker message: bad room length");
    }
    room = text(bytes.subarray(at, at + length), "room name");
    at += length;
  }
  if (flags & EXCEPT) {
    let length: number;
    [length, at] = readVarint(bytes, at, 4, "session id length");
    if (at + length > bytes.length) throw new BrokerMessageError("Refused a broker message: bad session id length");
    except = text(bytes.subarray(at, at + length), "session id");
    at += length;
  }
  if (flags & POSITION) {
    let length: number;
    [length, at] = readVarint(bytes, at, 4, "stream key length");
    if (at + length > bytes.length) throw new BrokerMessageError("Refused a broker message: bad stream key length");
    const key = text(bytes.subarray(at, at + length), "stream key");
    at += length;
    if (at >= bytes.length || at + 1 + bytes[at] > bytes.length) {
      throw new BrokerMessageError("Refused a broker message: bad epoch length");
    }
    const epoch = text(bytes.subarray(at + 1, at + 1 + bytes[at]), "epoch");
    at += 1 + bytes[at];
    let offset: number, seq: number, time: number;
    [offset, at] = readVarint(bytes, at, 8, "offset");
    [seq, at] = readVarint(bytes, at, 8, "seq");
    [time, at] = readVarint(bytes, at, 8, "time");
    position = { key, epoch, offset, seq, time };
  }
  const rest = bytes.subarray(at);
  // a plain copy: `slice` of a node Buffer (what Redis clients hand over) would share its memory
  const payload = flags & BINARY ? new Uint8Array(rest) : text(rest, "text payload");
  const msg: { -readonly [K in keyof BrokerMessage]: BrokerMessage[K] } = { node, kind, payload };
  if (room !== undefined) msg.room = room;
  if (except !== undefined) msg.except = except;
  if (position !== undefined) msg.position = position;
  return msg;
}

/** The position's bytes after its key: epoch length, epoch, offset, seq, time. */
function encodePosition(position: StreamPosition): Uint8Array {
  const epoch = encoder.encode(position.epoch);
  if (epoch.length > 255) throw new RangeError("An epoch must be at most 255 bytes of UTF-8");
  const out = new Uint8Array(1 + epoch.length + 24);
  out[0] = epoch.length;
  out.set(epoch, 1);
  let at = 1 + epoch.length;
  for (const n of [position.offset, position.seq, position.time]) {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`A stream position needs integers in [0, 2^53), not ${n}`);
    }
    at = writeVarint(out, at, n);
  }
  return out.subarray(0, at);
}

/** Bytes of a varint length and the part, or 0 without a part. */
function lengthed(part: Uint8Array | undefined): number {
  return part ? varintLength(part.length) + part.length : 0;
}

/** Writes `n` (an integer in [0, 2^53)) as an unsigned LEB128 varint; returns where it ends. */
function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/** Reads an unsigned LEB128 varint of at most `most` bytes; returns it and where it ends. */
function readVarint(bytes: Uint8Array, at: number, most: number, what: string): [number, number] {
  let n = 0;
  for (let i = 0, scale = 1;; i++, scale *= 0x80) {
    if (at >= bytes.length || i >= most) throw new BrokerMessageError(`Refused a broker message: bad ${what}`);
    const b = bytes[at++];
    n += (b & 0x7f) * scale;
    if (b < 0x80) return [n, at];
  }
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new BrokerMessageError(`Refused a broker message: its ${what} is not valid UTF-8`);
  }
}

function varintLength(n: number): number {
  let length = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    length++;
  }
  return length;
}
