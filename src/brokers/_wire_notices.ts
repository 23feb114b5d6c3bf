/**
 * The notices of chorus' wire format (see `wire.ts`): a node claimed a session from another node
 * (released), and one room's joins and leaves on a node (presence). Internal; `wire.ts`
 * re-exports them.
 *
 * May import: `_wire_bytes.ts`, `../broker.ts` (types), `../errors.ts`.
 *
 * @module
 */

import type { PresenceChange, PresenceEntry } from "../broker.ts";
import { BrokerMessageError } from "../errors.ts";
import { encoder, lengthed, MAGIC, MAX_ROOM, NOTICE, PRESENCE, readVarint, text, writeVarint } from "./_wire_bytes.ts";

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
