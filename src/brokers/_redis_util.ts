/**
 * Small helpers of the Redis broker: a command's time limit, closing a connection in bounded
 * time, error texts, option checks. Internal to `chorus-ws/redis`.
 *
 * May import: `_redis_client.ts` (types), `../core/_util.ts` (the error-text helper).
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
 * The text of an error: the one helper, `errorText` of the core, under the name the broker's
 * modules have used (`redis.ts` and `_redis_presence.ts` still do).
 */
export { errorText } from "../core/_util.ts";

/**
 * An option that is a positive finite number, or its default. Unlike the hub's sizes
 * (`sizeOption` in `../options.ts`, where `Infinity` means no limit), no option of the broker
 * may be `Infinity`: each becomes a timer (`setTimeout` fires at once for it), a Redis expiry or
 * a bound on bytes held for Redis, none of which has an "unlimited".
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

/** One run of periodic work (see {@linkcode OneAtATime}). */
export interface Run {
  /** Settles when the run finished or failed (its failure reported): within the command timeout. */
  readonly done: Promise<void>;
  /** Settles when Redis answered every command of the run (or they failed): however long a stall. */
  readonly answered: Promise<unknown>;
}

/**
 * Periodic work that is never issued while its previous run is unanswered. A run asked for
 * meanwhile is not issued then but once, right after that answer comes, however many were asked
 * for: so what waits for a stalled Redis is one run, however long the stall. (A command that
 * timed out stays queued in the client library until Redis answers it, so "unanswered" is the
 * command's own promise, not its timeout.)
 */
export class OneAtATime {
  #work: () => Run;
  #busy = false;
  #again = false;

  /**
   * Work to run one run at a time.
   * @param work Issues one run.
   */
  constructor(work: () => Run) {
    this.#work = work;
  }

  /** Whether a run is unanswered. */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * Issues a run now, or once after the unanswered one.
   * @returns The run's `done`, or a resolved promise when it was put off.
   */
  run(): Promise<void> {
    if (this.#busy) {
      this.#again = true;
      return Promise.resolve();
    }
    let run: Run;
    try {
      run = this.#work();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#busy = true;
    const settled = () => {
      this.#busy = false;
      if (!this.#again) return;
      this.#again = false;
      this.run().catch(() => {}); // a run reports its own failures
    };
    run.answered.then(settled, settled);
    return run.done;
  }
}

/**
 * Reads that stop queueing behind a stalled Redis: once a read has gone unanswered past the
 * command timeout, the same read asked again (the same key) waits for its answer instead of
 * sending another, until it comes. Before that, each read is sent as asked.
 */
export class StalledReads {
  #within: <T>(promise: Promise<T>, what: string) => Promise<T>;
  #stalled = new Map<string, Promise<unknown>>();

  /**
   * Reads with a command timeout.
   * @param within Bounds a command by the command timeout (see {@linkcode within}).
   */
  constructor(within: <T>(promise: Promise<T>, what: string) => Promise<T>) {
    this.#within = within;
  }

  /**
   * Sends a read, or waits for the same one that stalled.
   * @param key What is read (reads with the same key have the same answer).
   * @param send Sends the read.
   * @param what What it is, for the timeout's error.
   * @returns Its answer, within the command timeout.
   */
  read<T>(key: string, send: () => Promise<T>, what: string): Promise<T> {
    const stalled = this.#stalled.get(key) as Promise<T> | undefined;
    if (stalled) return this.#within(stalled, what);
    const raw = send();
    let answered = false;
    const settled = () => {
      answered = true;
      if (this.#stalled.get(key) === raw) this.#stalled.delete(key);
    };
    raw.then(settled, settled);
    const result = this.#within(raw, what);
    result.catch(() => {
      if (!answered && !this.#stalled.has(key)) this.#stalled.set(key, raw); // timed out, not failed
    });
    return result;
  }
}
