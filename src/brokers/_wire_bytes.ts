/**
 * The bytes of chorus' wire format shared by its broadcasts and notices: the magic byte, the
 * flags, varints and UTF-8 text (the format itself is described in `wire.ts`). Internal.
 *
 * May import: `../errors.ts`.
 *
 * @module
 */

import { BrokerMessageError } from "../errors.ts";

/** The first byte of every message (no UTF-8 text starts with 0xC7 0x01 or 0xC7 0x02). */
export const MAGIC = 0xc7;
/** Flags: a binary payload (else UTF-8 text). */
export const BINARY = 0x80;
/** Flags (version 2): the message carries the session left out. */
export const EXCEPT = 0x04;
/** Flags (version 2): the message carries its stream position. */
export const POSITION = 0x08;
/** Flags (version 2): a notice, not a broadcast. */
export const NOTICE = 0x10;
/** With NOTICE: a presence notice (kind bits 1), not a release (kind bits 0). */
export const PRESENCE = 0x01;
/** The longest room name, session id or stream key (a varint of at most 4 bytes). */
export const MAX_ROOM = (1 << 28) - 1;

/** Encodes UTF-8. */
export const encoder: TextEncoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Bytes of a varint length and the part, or 0 without a part.
 * @param part The part.
 * @returns Its size on the wire.
 */
export function lengthed(part: Uint8Array | undefined): number {
  return part ? varintLength(part.length) + part.length : 0;
}

/**
 * Writes `n` (an integer in [0, 2^53)) as an unsigned LEB128 varint.
 * @param out Where.
 * @param at From which index.
 * @param n The number.
 * @returns Where it ends.
 */
export function writeVarint(out: Uint8Array, at: number, n: number): number {
  while (n >= 0x80) {
    out[at++] = (n % 0x80) | 0x80;
    n = Math.floor(n / 0x80);
  }
  out[at++] = n;
  return at;
}

/**
 * Reads an unsigned LEB128 varint of at most `most` bytes.
 * @param bytes The message.
 * @param at From which index.
 * @param most Its most bytes.
 * @param what What it is, for the error.
 * @returns It, and where it ends.
 * @throws {BrokerMessageError} If it is cut short or too long.
 */
export function readVarint(bytes: Uint8Array, at: number, most: number, what: string): [number, number] {
  let n = 0;
  for (let i = 0, scale = 1;; i++, scale *= 0x80) {
    if (at >= bytes.length || i >= most) throw new BrokerMessageError(`Refused a broker message: bad ${what}`);
    const b = bytes[at++];
    n += (b & 0x7f) * scale;
    if (b < 0x80) return [n, at];
  }
}

/**
 * Decodes UTF-8, strictly.
 * @param bytes The bytes.
 * @param what What they are, for the error.
 * @returns The text.
 * @throws {BrokerMessageError} If they are not valid UTF-8.
 */
export function text(bytes: Uint8Array, what: string): string {
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
