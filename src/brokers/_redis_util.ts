/**
 * Small helpers of the Redis broker: a command's time limit, closing a connection in bounded
 * time, error texts, option checks. Internal to `chorus-ws/redis`.
 *
 * May import: `_redis_client.ts` (types).
 *
 * @module
 */

import type { RedisClientLike } from "./_redis_client.ts";

/**
 * `promise`, or a rejection once `ms` pass without its answer. node-redis's own command timeout
 * covers only commands not yet written to the socket: one written to a stalled Redis waits forever.
 *
 * @param promise The command.
 * @param ms How long it may take.
 * @param what What it is, for the error.
 * @returns Its answer.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer ${what} within ${ms} ms`)), ms);
  });
  promise.catch(() => {}); // a late failure, after the timeout, is not an unhandled rejection
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Closes a connection after its pending commands, or drops it if that takes longer than `ms`.
 *
 * @param client The connection.
 * @param ms How long a graceful close may take.
 */
export async function quit(client: RedisClientLike, ms: number): Promise<void> {
  if (!client.isOpen) return;
  if (client.isReady) {
    try {
      await within(client.close(), ms, "the close");
      return;
    } catch {
      // stalled, or failed: drop the connection
    }
  }
  try {
    client.destroy();
  } catch {
    // already closed
  }
}

/**
 * The text of an error.
 *
 * @param err What was thrown.
 * @returns Its message.
 */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * An option that is a positive finite number, or its default.
 *
 * @param value The option.
 * @param fallback Its default.
 * @param name Its name, for errors.
 * @returns The value.
 * @throws {TypeError} If it is not a number.
 * @throws {RangeError} If it is not positive and finite.
 */
export function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (!(value > 0) || !Number.isFinite(value)) throw new RangeError(`${name} must be a positive number, not ${value}`);
  return value;
}
