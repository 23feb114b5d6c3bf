/**
 * The Redis broker's heartbeat: every `heartbeatInterval`, this node's counts are written again
 * (their TTL refreshed), its sessions' states refreshed, its presence deadline kept and dead
 * nodes' members swept, and (with `"rooms"` routing) failed room SUBSCRIBEs tried again.
 * None of this is issued while its previous run is unanswered (a stalled Redis holds one count
 * write, one refresh, one presence beat, not one per beat): see `OneAtATime`. Internal to
 * `chorus-ws/redis`.
 *
 * May import: `_redis_counts.ts`, `_redis_streams.ts`, `_redis_presence.ts`, `_redis_routing.ts`
 * (types), `_redis_util.ts`, `../broker.ts` (types).
 *
 * @module
 */

import type { BrokerLink } from "../broker.ts";
import type { RedisCounts } from "./_redis_counts.ts";
import type { RedisPresence } from "./_redis_presence.ts";
import type { Routing } from "./_redis_routing.ts";
import type { RedisStreams } from "./_redis_streams.ts";
import { errorText, OneAtATime, type Run } from "./_redis_util.ts";

/** What the broker gives its heartbeat. */
export interface HeartbeatHost {
  /** How often it beats, in ms (`heartbeatInterval`). */
  readonly interval: number;
  /** The hub's link while the broker runs, else `undefined`. */
  link(): BrokerLink | undefined;
  /** The broker's routing (room SUBSCRIBEs). */
  readonly routing: Routing;
  /** The broker's session counts. */
  readonly counts: RedisCounts;
  /** The broker's streams (session states). */
  readonly streams: RedisStreams;
  /** The broker's presence. */
  readonly presence: RedisPresence;
  /**
   * Runs a command within the command timeout.
   * @param promise The command.
   * @param what What it is, for the error.
   */
  within<T>(promise: Promise<T>, what: string): Promise<T>;
}

/** The periodic work of a running broker. */
export class Heartbeat {
  #host: HeartbeatHost;
  #timer: ReturnType<typeof setInterval> | undefined;
  #sessionsFailing = false;
  /** The session refresh, one at a time. */
  #refresh = new OneAtATime(() => this.#refreshSessions());

  /**
   * The heartbeat of one broker (not started).
   * @param host The broker's side.
   */
  constructor(host: HeartbeatHost) {
    this.#host = host;
  }

  /** Whether it beats (started, not stopped). */
  get running(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Starts beating, and does the first beat's writes at once.
   * @returns When the first counts, session refresh and presence beat are answered (or failed).
   */
  async start(): Promise<void> {
    this.#timer = setInterval(() => this.beat(), this.#host.interval);
    await Promise.all([this.#host.counts.write(true), this.#refresh.run(), this.#beatPresence()]);
  }

  /** Stops beating. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One beat (also right after a reconnect: Redis may have restarted empty). */
  beat(): void {
    const host = this.#host;
    const link = host.link();
    if (!link) return;
    // rooms whose SUBSCRIBE failed (Redis was away) are tried again
    if (host.routing.mode === "rooms") { for (const room of link.rooms()) host.routing.route(room); }
    host.counts.write(true);
    this.#refresh.run();
    this.#beatPresence();
  }

  /** This node's presence deadline, and the sweep of dead nodes' members. */
  #beatPresence(): Promise<void> {
    if (!this.#host.link()) return Promise.resolve();
    return this.#host.presence.beat();
  }

  /**
   * Refreshes the TTLs of this node's session states, in one script: a node that dies leaves
   * them to expire `ttl` (as saved) after its last heartbeat.
   */
  #refreshSessions(): Run {
    const host = this.#host;
    const link = host.link();
    if (!link) return { done: Promise.resolve(), answered: Promise.resolve() };
    const refresh = host.streams.refresh();
    const done = host.within(refresh, "a session refresh").then(
      () => {
        this.#sessionsFailing = false;
      },
      (err) => {
        if (this.#sessionsFailing || !host.link()) return;
        this.#sessionsFailing = true;
        link.report(new Error(`Session states not refreshed in Redis: ${errorText(err)}`, { cause: err }));
      },
    );
    return { done, answered: refresh };
  }
}
