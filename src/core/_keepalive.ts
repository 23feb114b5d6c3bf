// Keepalive of a hub's connections on this node: one ticker that pings where the runtime lets
// the hub ping, gives up a peer whose pong is overdue (exactly `pongWait` after the ping, not at
// some later tick), and, where a socket cannot ping, one whose queue stopped draining. Imports
// only the contracts and the connection's type.

import type { HubLimits } from "./_contracts.ts";
import type { Connection } from "./_connection.ts";

/** Pong deadlines and pings are compared with this much slack for timer jitter (ms). */
const SLACK = 5;

/** The keepalive of one hub. */
export class Keepalive {
  readonly #limits: HubLimits;
  readonly #connections: () => Iterable<Connection | undefined>;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param limits `pingInterval` and `pongWait`.
   * @param connections The connections of the hub's sessions, read at each tick.
   */
  constructor(limits: HubLimits, connections: () => Iterable<Connection | undefined>) {
    this.#limits = limits;
    this.#connections = connections;
  }

  /** A connection now carries a session: the ticker runs (unless keepalive is off). */
  start(): void {
    const { pingInterval, pongWait } = this.#limits;
    if (pingInterval <= 0 || this.#ticker !== undefined) return;
    this.#ticker = setInterval(this.#tick, Math.max(Math.min(pingInterval, pongWait), 10));
  }

  /** No session is left, or the hub closes. */
  stop(): void {
    clearInterval(this.#ticker);
    clearTimeout(this.#pongTimer);
    this.#ticker = this.#pongTimer = undefined;
  }

  /** Pings where due; where a socket cannot ping, checks that its queue drains. */
  #tick = (): void => {
    const now = Date.now();
    const { pingInterval, pongWait } = this.#limits;
    let pinged = false;
    for (const conn of this.#connections()) {
      if (conn?.tick(now, pingInterval - SLACK, pongWait)) pinged = true;
    }
    // A pong is due exactly `pongWait` after the ping, not at some later tick.
    if (pinged && this.#pongTimer === undefined) this.#pongTimer = setTimeout(this.#checkPongs, pongWait);
  };

  #checkPongs = (): void => {
    this.#pongTimer = undefined;
    const now = Date.now();
    const wait = this.#limits.pongWait;
    let next = Infinity;
    for (const conn of this.#connections()) {
      const left = conn?.checkPong(now, wait - SLACK) ?? -1;
      if (left >= 0 && left < next) next = left;
    }
    if (next !== Infinity && this.#ticker !== undefined) this.#pongTimer = setTimeout(this.#checkPongs, next + SLACK);
  };
}
