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
 * {@linkcode classify} tells what a message is for the node that receives it, and
 * {@linkcode receive} hands it to the hub: the one way both brokers (Redis and memory) read
 * the channel.
 *
 * May import: `_wire_bytes.ts`, `_wire_notices.ts`, `../broker.ts` (types), `../errors.ts`.
 *
 * @module
 */

import type { BroadcastKind, BrokerLink, BrokerMessage, StreamPosition } from "../broker.ts";
import { BrokerMessageError } from "../errors.ts";
import {
  BINARY,
  encoder,
  EXCEPT,
  lengthed,
  MAGIC,
  MAX_ROOM,
  NOTICE,
  POSITION,
  readVarint,
  text,
  writeVarint,
} from "./_wire_bytes.ts";
import { decodePresence, decodeReleased, type PresenceNotice, type ReleasedNotice } from "./_wire_notices.ts";

export {
  decodePresence,
  decodeReleased,
  encodePresence,
  encodeReleased,
  encodeReleasedHead,
  type PresenceNotice,
  type ReleasedNotice,
} from "./_wire_notices.ts";

/** The newest wire format version this module writes; it reads versions 1 and 2. */
const WIRE_VERSION = 2;
const KINDS: readonly BroadcastKind[] = ["all", "others", "room", "room-others"];

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

/** What a message from the broker is, for the node that receives it (see {@linkcode classify}). */
export type Received =
  | { readonly type: "echo" }
  | { readonly type: "released"; readonly notice: ReleasedNotice }
  | { readonly type: "presence"; readonly notice: PresenceNotice }
  | { readonly type: "broadcast"; readonly message: BrokerMessage };

const ECHO: Received = { type: "echo" };

/**
 * Tells what a message from the broker is: this node's own echo (a broadcast it published
 * without a position, recognized from its header alone), a notice that a node claimed a session
 * from another (released), a presence notice, or a broadcast to deliver.
 *
 * @param bytes The message, as the channel carried it.
 * @param max The broker's limit on an encoded message, in bytes.
 * @param echo The receiving node's id, UTF-8 encoded, to recognize its own echo; without it an
 *   echo is decoded as a broadcast (the hub drops it).
 * @returns What it is, decoded.
 * @throws {BrokerMessageError} If the bytes are malformed, or a broadcast larger than `max`.
 */
export function classify(bytes: Uint8Array, max: number, echo?: Uint8Array): Received {
  // an oversized message is refused even if it claims to be this node's echo
  if (echo && bytes.length <= max && isFromNode(bytes, echo)) return ECHO;
  const released = decodeReleased(bytes);
  if (released) return { type: "released", notice: released };
  const presence = decodePresence(bytes);
  if (presence) return { type: "presence", notice: presence };
  return { type: "broadcast", message: decodeMessage(bytes, max) };
}

/** How a broker reads its channel (see {@linkcode receive}). */
export interface ReceiveOptions {
  /** The broker's limit on an encoded message, in bytes. */
  readonly max: number;
  /** This node's id, UTF-8 encoded: its own echoes are dropped here (see {@linkcode classify}). */
  readonly echo?: Uint8Array;
  /** A presence notice of this node itself goes to the hub too (moves that turned out joins). */
  readonly self?: boolean;
}

/**
 * Hands a message from the broker to the hub: a broadcast to `link.deliver`, a presence notice
 * of another node (of this one too with `self`) to `link.presence`, a notice that another node
 * claimed a session of this one to `link.released`. This node's own echo (with `echo`) and
 * notices about other nodes are dropped. A malformed message, or a failure of the hub's side,
 * goes to `link.report`.
 *
 * @param link The hub's side.
 * @param bytes The message.
 * @param options The size limit, and how to treat this node's own messages.
 */
export function receive(link: BrokerLink, bytes: Uint8Array, options: ReceiveOptions): void {
  try {
    const got = classify(bytes, options.max, options.echo);
    switch (got.type) {
      case "echo":
        return;
      case "released": {
        const { node, from, session } = got.notice;
        if (from === link.node && node !== link.node) link.released(session);
        return;
      }
      case "presence":
        if (options.self || got.notice.node !== link.node) link.presence(got.notice.room, got.notice);
        return;
      case "broadcast":
        link.deliver(got.message); // the hub drops its own echo, unless it has a position
    }
  } catch (err) {
    link.report(err);
  }
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
