/**
 * The Redis broker's backlog: the bytes of broadcasts and appends handed to Redis and not yet
 * acknowledged, bounded by `maxPendingBytes`; the watchdog that tells a stall from a slow
 * stream; the publish latency. Internal to `chorus-ws/redis`.
 *
 * May import: nothing.
 *
 * @module
 */

/** What the broker gives its backlog. */
export interface BacklogHost {
  /** Most bytes waiting for Redis (`maxPendingBytes`). */
  readonly maxPending: number;
  /** How long a broadcast may go unacknowledged before the stall is reported (`commandTimeout`). */
  readonly timeout: number;
  /** Whether the broker stopped. */
  stopped(): boolean;
  /**
   * Reports an outage to the hub.
   * @param err What failed.
   */
  report(err: Error): void;
}

/** Broadcasts and appends waiting for Redis, and the report of an outage: once, not once per broadcast. */
export class Backlog {
  #host: BacklogHost;
  /** Bytes of broadcasts handed to Redis and not acknowledged yet. */
  #pending = 0;
  /** Broadcasts handed to Redis and acknowledged (or failed), to tell a stall from a slow stream. */
  #published = 0;
  #settled = 0;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #failing = false;
  #latency: number | undefined;

  /**
   * A backlog for one broker.
   * @param host The broker's side.
   */
  constructor(host: BacklogHost) {
    this.#host = host;
  }

  /**
   * The recent round trip of a publish or an append (see `Broker.latency`).
   * @returns It in ms, or `undefined` before the first.
   */
  latency(): number | undefined {
    return this.#latency;
  }

  /**
   * A publish's or an append's round trip: a moving average over the last few dozen.
   * @param took How long it took, in ms.
   */
  measured(took: number): void {
    this.#latency = this.#latency === undefined ? took : this.#latency + (took - this.#latency) / 32;
  }

  /**
   * Takes a broadcast of `size` bytes into the backlog, or drops it (reported) past `maxPendingBytes`.
   * @param size Its bytes.
   * @returns Whether it may go.
   */
  admit(size: number): boolean {
    const max = this.#host.maxPending;
    if (this.#pending > 0 && this.#pending + size > max) {
      this.failed(
        `Broadcasts to other nodes are dropped: ${this.#pending} bytes already wait for Redis ` +
          `(maxPendingBytes ${max})`,
      );
      return false;
    }
    this.#take(size);
    return true;
  }

  /**
   * Counts an append's bytes as pending, or throws past `maxPendingBytes` (the hub delivers locally).
   * @param size Its bytes.
   * @throws {Error} Past the bound.
   */
  reserve(size: number): void {
    const max = this.#host.maxPending;
    if (this.#pending > 0 && this.#pending + size > max) {
      throw new Error(`Not appended: ${this.#pending} bytes already wait for Redis (maxPendingBytes ${max})`);
    }
    this.#take(size);
  }

  #take(size: number): void {
    this.#pending += size;
    this.#published++;
    this.#watch();
  }

  /**
   * Bytes handed to Redis were acknowledged (or failed).
   * @param size How many.
   */
  settle(size: number): void {
    this.#pending -= size;
    this.#settled++;
  }

  /** A broadcast was acknowledged: an outage ends once the backlog is mostly gone, so its tail is not a second outage. */
  acknowledged(): void {
    if (this.#pending <= this.#host.maxPending / 2) this.#failing = false;
  }

  /** The connection is ready again: the next failure is a new outage. */
  ready(): void {
    this.#failing = false;
  }

  /**
   * Reports a failed or dropped broadcast: once per outage, not once per broadcast.
   * @param message What happened.
   * @param cause The error, if any.
   */
  failed(message: string, cause?: unknown): void {
    if (this.#failing || this.#host.stopped()) return;
    this.#failing = true;
    this.#host.report(new Error(message, cause === undefined ? undefined : { cause }));
  }

  /** Stops the watchdog. */
  stop(): void {
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
  }

  /**
   * While broadcasts wait for Redis, checks every `commandTimeout` that some were acknowledged;
   * if none were, Redis stalls: report it (broadcasts are held, then dropped past the bound).
   */
  #watch(): void {
    const host = this.#host;
    if (this.#watchdog || host.stopped()) return;
    const settled = this.#settled;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (host.stopped() || this.#settled === this.#published) return;
      if (this.#settled === settled) {
        this.failed(
          `Redis has not acknowledged a broadcast for ${host.timeout} ms: ${this.#pending} bytes wait, ` +
            `and broadcasts to other nodes past maxPendingBytes (${host.maxPending}) are dropped`,
        );
      }
      this.#watch();
    }, host.timeout);
  }
}
