// Small helpers of the core: payloads, sizes, close codes, room names, error text and reporting,
// random ids. Pure; imports only the public `Message` type.

import type { Message } from "../types.ts";

/** Validates a message and turns an ArrayBuffer into a Uint8Array view (no copy). */
export function toPayload(msg: Message): string | Uint8Array {
  if (typeof msg === "string" || msg instanceof Uint8Array) return msg;
  if (msg instanceof ArrayBuffer) return new Uint8Array(msg);
  throw new TypeError(`A message must be a string, Uint8Array or ArrayBuffer, not ${describe(msg)}`);
}

/** Size in bytes of a payload as it goes on the wire. */
export function byteLength(payload: string | Uint8Array): number {
  return typeof payload === "string" ? utf8Length(payload) : payload.byteLength;
}

/** UTF-8 length of a string without encoding it. */
export function utf8Length(str: string): number {
  let bytes = str.length;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < str.length) {
      const next = str.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 2; // a surrogate pair: 2 code units, 4 bytes
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/** Validates a close code and reason the way `WebSocket.close` would for a server. */
export function checkClose(code: number, reason: string): void {
  if (!Number.isInteger(code) || code < 1000 || code > 4999 || code === 1005 || code === 1006 || code === 1015) {
    throw new RangeError(`Close code must be an integer from 1000 to 4999 (not 1005, 1006 or 1015), not ${code}`);
  }
  if (typeof reason !== "string") throw new TypeError("Close reason must be a string");
  if (utf8Length(reason) > 123) throw new RangeError("Close reason must be at most 123 bytes of UTF-8");
}

/** In a `u` regexp a surrogate pair is one code point, so this matches lone surrogates only. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/**
 * Validates a room name: a non-empty string of well-formed UTF-16. A lone surrogate has no
 * UTF-8 form, so two such names could meet as one name in a runtime's topics or on the wire.
 */
export function checkRoom(room: string): void {
  if (typeof room !== "string" || room === "") throw new TypeError("A room name must be a non-empty string");
  if (LONE_SURROGATE.test(room)) throw new TypeError("A room name must be well-formed Unicode (no lone surrogate)");
}

/** Whether a hook's result is a promise (or any thenable) to wait for or to catch: the one test for it. */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" && typeof (value as PromiseLike<unknown>).then === "function";
}

/** Hands an error to an error hook, or logs it; a hook that fails is logged, never thrown. */
export function reportTo(
  hook: ((err: Error) => unknown) | undefined,
  err: unknown,
  origin: string,
  name: string,
): void {
  const error = err instanceof Error ? err : new Error(String(err));
  if (!hook) {
    console.error(`chorus: ${origin}:`, error);
    return;
  }
  try {
    const result = hook(error);
    if (isThenable(result)) result.then(undefined, (e) => console.error(`chorus: ${name} failed:`, e));
  } catch (e) {
    console.error(`chorus: ${name} failed:`, e);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") return (value as object).constructor?.name ?? "object";
  return typeof value;
}

/**
 * The message of an error, or the text of anything else thrown.
 *
 * @param err What was thrown.
 * @returns Its text.
 */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * The one maker of random ids, from the platform's CSPRNG: base64url without padding for a resume
 * credential (16 bytes: 128 bits), or letters and digits only (`alphanumeric`: one character a
 * byte, for node ids, session id prefixes and epochs, which names and patterns carry as words).
 *
 * @param bytes How many random bytes.
 * @param alphanumeric Letters and digits only.
 * @returns The id.
 */
export function randomString(bytes: number, alphanumeric = false): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  if (alphanumeric) {
    for (const b of random) s += ALPHANUMERIC[b % ALPHANUMERIC.length];
    return s;
  }
  for (const b of random) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
