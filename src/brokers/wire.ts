/**
 * chorus' wire format for broadcasts between nodes: compact, binary-safe and versioned.
 *
 * ```
 * byte 0      0xC7  magic (no UTF-8 text starts with 0xC7 0x01)
 * byte 1      0x01  version
 * byte 2      flags: bits 0-1 kind (0 all, 1 others, 2 room, 3 room-others),
 *                    bit 7 binary payload (else UTF-8 text); other bits 0
 * byte 3      n = length of the node id (1-255)
 * 4 … 4+n     node id, UTF-8
 * room kinds: room name length as an unsigned LEB128 varint (at most 4 bytes), then the name, UTF-8
 * rest        the payload
 * ```
 *
 * @module
 */

import type { BroadcastKind, BrokerMessage } from "../broker.ts";
import { BrokerMessageError } from "../errors.ts";

/** The wire format version this module writes and reads. */
export const WIRE_VERSION = 1;

const MAGIC = 0xc7;
const KINDS: readonly BroadcastKind[] = ["all", "others", "room", "room-others"];
const BINARY = 0x80;
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
 *   or the encoded message is larger than `max`.
 */
export function encodeMessage(msg: BrokerMessage, max: number = Infinity): Uint8Array {
  const bytes = encode(msg);
  if (bytes.length > max) {
    throw new RangeError(`A broadcast of ${bytes.length} bytes exceeds the broker's limit of ${max} bytes`);
  }
  return bytes;
}

function encode(msg: BrokerMessage): Uint8Array {
  const kind = KINDS.indexOf(msg.kind);
  if (kind < 0) throw new TypeError(`Unknown broadcast kind ${String(msg.kind)}`);
  const node = encoder.encode(msg.node);
  if (node.length === 0 || node.length > 255) throw new RangeError("A node id must be 1 to 255 bytes of UTF-8");
  const room = kind >= 2 ? encoder.encode(msg.room ?? "") : undefined;
  if (room && (room.length === 0 || room.length > MAX_ROOM)) throw new RangeError("A room broadcast needs a room name");
  const binary = typeof msg.payload !== "string";
  const payload = typeof msg.payload === "string" ? encoder.encode(msg.payload) : msg.payload;
  const roomHead = room ? varintLength(room.length) + room.length : 0;
  const out = new Uint8Array(4 + node.length + roomHead + payload.length);
  out[0] = MAGIC;
  out[1] = WIRE_VERSION;
  out[2] = kind | (binary ? BINARY : 0);
  out[3] = node.length;
  out.set(node, 4);
  let at = 4 + node.length;
  if (room) {
    let n = room.length;
    while (n >= 0x80) {
      out[at++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    out[at++] = n;
    out.set(room, at);
    at += room.length;
  }
  out.set(payload, at);
  return out;
}

/**
 * Reads the node id of an encoded broadcast without decoding the rest (to drop a node's own
 * echo cheaply).
 *
 * @param bytes The encoded broadcast.
 * @returns The node id, or `undefined` when the bytes are not a broadcast of this version.
 */
export function peekNode(bytes: Uint8Array): string | undefined {
  if (bytes.length < 5 || bytes[0] !== MAGIC || bytes[1] !== WIRE_VERSION) return undefined;
  const end = 4 + bytes[3];
  if (bytes[3] === 0 || end > bytes.length) return undefined;
  try {
    return decoder.decode(bytes.subarray(4, end));
  } catch {
    return undefined;
  }
}

/**
 * Whether an encoded broadcast was published by a given node, read from its header without
 * decoding the rest (for a node to drop its own echo cheaply).
 *
 * @param bytes The encoded broadcast.
 * @param node The node's id, UTF-8 encoded.
 * @returns `true` if `bytes` is a broadcast of this version published by `node`.
 */
export function isFromNode(bytes: Uint8Array, node: Uint8Array): boolean {
  const n = node.length;
  if (n === 0 || bytes.length < 4 + n || bytes[0] !== MAGIC || bytes[1] !== WIRE_VERSION || bytes[3] !== n) {
    return false;
  }
  for (let i = 0; i < n; i++) if (bytes[4 + i] !== node[i]) return false;
  return true;
}

/**
 * Decodes a broadcast. The payload is a copy: it does not share memory with `bytes`.
 *
 * @param bytes The encoded broadcast.
 * @param max The broker's limit on an encoded message, in bytes.
 * @returns The broadcast.
 * @throws {BrokerMessageError} If the bytes are larger than `max` or not a broadcast of this version.
 */
export function decodeMessage(bytes: Uint8Array, max: number = Infinity): BrokerMessage {
  if (bytes.length > max) {
    throw new BrokerMessageError(`Refused a broker message of ${bytes.length} bytes: the limit is ${max}`);
  }
  if (bytes.length < 5 || bytes[0] !== MAGIC) {
    throw new BrokerMessageError(`Refused a broker message of ${bytes.length} bytes: not in chorus' wire format`);
  }
  if (bytes[1] !== WIRE_VERSION) {
    throw new BrokerMessageError(
      `Refused a broker message of wire version ${bytes[1]}: this node reads ${WIRE_VERSION}`,
    );
  }
  const flags = bytes[2];
  if ((flags & ~(BINARY | 3)) !== 0) throw new BrokerMessageError("Refused a broker message: unknown flags");
  const kind = KINDS[flags & 3];
  const nodeEnd = 4 + bytes[3];
  if (bytes[3] === 0 || nodeEnd > bytes.length) throw new BrokerMessageError("Refused a broker message: bad node id");
  const node = text(bytes.subarray(4, nodeEnd), "node id");
  let at = nodeEnd;
  let room: string | undefined;
  if (kind === "room" || kind === "room-others") {
    let length = 0;
    for (let shift = 0;; shift += 7) {
      if (at >= bytes.length || shift > 21) throw new BrokerMessageError("Refused a broker message: bad room length");
      const b = bytes[at++];
      length |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    if (length === 0 || at + length > bytes.length) {
      throw new BrokerMessageError("Refused a broker message: bad room length");
    }
    room = text(bytes.subarray(at, at + length), "room name");
    at += length;
  }
  const rest = bytes.subarray(at);
  const payload = flags & BINARY ? rest.slice() : text(rest, "text payload");
  return room === undefined ? { node, kind, payload } : { node, kind, room, payload };
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new BrokerMessageError(`Refused a broker message: its ${what} is not valid UTF-8`);
  }
}

function varintLength(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}
