/**
 * The options of a `Hub`: their types and documentation, their defaults and their validation, in
 * one place, so the hub's constructor only wires. A leaf: may import types only, of `broker.ts`,
 * `metrics.ts` and `types.ts`.
 *
 * @module
 */

import type { Broker } from "./broker.ts";
import type { LogEntry } from "./metrics.ts";
import type { Keys } from "./types.ts";

/** Options of a `Hub`. Times are in milliseconds, sizes in bytes. */
export interface HubOptions<K extends object = Keys> {
  /**
   * Largest inbound message; a larger one closes the session with 1009.
   * @default {1048576}
   */
  maxMessageSize?: number;
  /**
   * Most bytes a session may have queued for sending. A write that would exceed it is
   * refused (see `onBufferFull`), so memory stays bounded however slowly a client reads.
   * @default {4194304}
   */
  maxBufferedAmount?: number;
  /**
   * What a refused write does: `"drop"` drops the message and reports a
   * `MessageBufferFullError` to `handleError`; `"close"` also closes the session with 1008.
   * @default {"drop"}
   */
  onBufferFull?: "drop" | "close";
  /**
   * How often an idle peer is pinged, where the runtime lets the hub ping (Bun); `0` turns
   * keepalive off. On Deno the runtime pings by itself within `pongWait`.
   * @default {30000}
   */
  pingInterval?: number;
  /**
   * How long a ping may go unanswered before the peer is disconnected. On Deno this becomes
   * `idleTimeout`, rounded up to whole seconds, and a peer whose outbound queue does not drain
   * at all for this long (it stopped reading) is disconnected too.
   * @default {60000}
   */
  pongWait?: number;
  /**
   * When true, a handler that returns a promise does not hold back the session's next message.
   * @default {false}
   */
  concurrentMessageHandling?: boolean;
  /**
   * Decides whether an upgrade that carries an `Origin` header is accepted. By default only
   * an origin whose host equals the request's `Host` is (a request without `Origin`, from a
   * non-browser client, is always accepted). Refused upgrades get 403.
   * @default {sameOrigin}
   */
  checkOrigin?: (origin: string, req: Request) => boolean;
  /**
   * Carries hub-wide and room broadcasts to the hubs of other processes and machines, and
   * keeps cluster-wide counts (`hub.count()`, `room.count()`); e.g. `redisBroker()` from
   * `chorus-ws/redis`. Without one the hub is a single node. `broadcastFilter`,
   * `broadcastMultiple`, `sessions()`, `get()` and `size` stay node-local either way.
   * @default {undefined}
   */
  broker?: Broker;
  /**
   * Resumable sessions, for clients that speak `chorus.v1` (`chorus-ws/client` does): when such a
   * client's connection is lost, its session waits `window` ms for it, keeping everything sent
   * to it (at most `maxMessages` messages and `maxBufferedAmount` bytes; past that, or once the
   * window passed, the session ends). When the client comes back, the same session continues:
   * what it missed arrives once, in order, and so does what it sent that the hub had not
   * received. Plain WebSocket clients are never detached. Off when absent.
   * @default {undefined}
   */
  resume?: ResumeOptions;
  /**
   * A log hook, silent by default: refused upgrades (`"info"`), sessions closed for a message
   * over `maxMessageSize` or for a client that did not keep up (`"warn"`), broker errors
   * (`"error"`). Each entry is a `LogEntry`. Counts of the same are in `hub.metrics()`.
   * @default {undefined}
   */
  logger?: (entry: LogEntry) => void;
  /**
   * Room history: each room keeps its last `size` messages (none older than `ttl` ms), with
   * offsets; `await room.history(limit)` returns them oldest first. With a broker that keeps
   * streams (`redisBroker`), they live in the broker and every node reads the same history;
   * otherwise in this process, for at most 10,000 rooms (past that, the room written longest
   * ago is forgotten). Off when absent.
   * @default {undefined}
   */
  history?: HistoryOptions;
  /**
   * Presence: `room.members()` lists a room's sessions on every node, each with its id, node and
   * the keys named in `keys` (nothing else of a session's keys leaves its node), and
   * `handlePresence` reports joins and leaves anywhere in the cluster, on every node. Changes are
   * gathered per room for `interval` ms and sent as one message per room per interval, so a storm
   * of joins costs a bounded number of messages, and a join costs the same in a room of any
   * size. With a broker that keeps presence (`redisBroker`) it spans the
   * cluster; without one, this node. Off when absent.
   * @default {undefined}
   */
  presence?: PresenceOptions<K>;
}

/** Options of presence (`HubOptions.presence`). */
export interface PresenceOptions<K extends object = Keys> {
  /** The session keys a member shows (`member.keys`), as JSON values; the others stay private. */
  keys: readonly (keyof K & string)[];
  /**
   * How long joins and leaves are gathered before they are sent, per room, in ms: the delay of
   * `handlePresence`, and the bound on presence messages (one per room per node per interval).
   * @default {50}
   */
  interval?: number;
}

/** Options of room history (`HubOptions.history`). */
export interface HistoryOptions {
  /** How many messages each room keeps. */
  size: number;
  /**
   * How old a kept message may be, in ms.
   * @default {undefined}
   */
  ttl?: number;
}

/** Options of resumable sessions (`HubOptions.resume`). */
export interface ResumeOptions {
  /**
   * How long a session whose connection was lost waits for its client, in ms.
   * @default {120000}
   */
  window?: number;
  /**
   * Most messages kept for one session (sent and not acknowledged by its client, or sent while
   * it was away); past it the session ends.
   * @default {1000}
   */
  maxMessages?: number;
  /**
   * Most sessions of this node waiting for their clients at once (each keeps what was sent to
   * it). Past it, the one that has waited longest ends (its client gets a new session,
   * `resumed: false`, and `handleError` hears why), so memory stays bounded whatever the connect
   * rate.
   * @default {10000}
   */
  maxDetached?: number;
}

/**
 * The default origin check: the origin's host must equal the request's `Host` header.
 *
 * @param origin The `Origin` header.
 * @param req The upgrade request.
 * @returns Whether the origin is the request's own.
 */
export function sameOrigin(origin: string, req: Request): boolean {
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    return false;
  }
  const expected = req.headers.get("host") ?? new URL(req.url).host;
  return host.toLowerCase() === expected.toLowerCase();
}

/** The largest delay `setTimeout` keeps (2^31 − 1 ms, about 24.8 days); a larger one fires at once. */
export const MAX_TIMER = 2 ** 31 - 1;

/** A hub's options, checked and with their defaults. */
export interface ResolvedOptions<K extends object> {
  readonly maxMessageSize: number;
  readonly maxBufferedAmount: number;
  readonly closeOnBufferFull: boolean;
  readonly pingInterval: number;
  readonly pongWait: number;
  readonly concurrent: boolean;
  readonly checkOrigin: (origin: string, req: Request) => boolean;
  readonly broker: Broker | undefined;
  readonly logger: ((entry: LogEntry) => void) | undefined;
  readonly history: { readonly size: number; readonly ttl: number | undefined } | undefined;
  readonly resume: { readonly window: number; readonly maxMessages: number; readonly maxDetached: number } | undefined;
  readonly presence: { readonly keys: readonly (keyof K & string)[]; readonly interval: number } | undefined;
}

/**
 * Checks a hub's options and fills in the defaults.
 *
 * @param options The options as given.
 * @returns The resolved options.
 * @throws {TypeError} If an option has the wrong type.
 * @throws {RangeError} If a number is out of range.
 */
export function resolveOptions<K extends object>(options: HubOptions<K>): ResolvedOptions<K> {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  knownNames(options, HUB_OPTIONS, "HubOptions");
  const onBufferFull = options.onBufferFull ?? "drop";
  if (onBufferFull !== "drop" && onBufferFull !== "close") {
    throw new TypeError(`onBufferFull must be "drop" or "close", not ${String(onBufferFull)}`);
  }
  const checkOrigin = options.checkOrigin ?? sameOrigin;
  if (typeof checkOrigin !== "function") throw new TypeError("checkOrigin must be a function");
  const broker = options.broker;
  if (broker !== undefined && (broker === null || typeof broker.start !== "function")) {
    throw new TypeError("broker must be a Broker (e.g. redisBroker() from chorus-ws/redis)");
  }
  if (options.logger !== undefined && typeof options.logger !== "function") {
    throw new TypeError("logger must be a function");
  }
  const history = options.history;
  let resolvedHistory: ResolvedOptions<K>["history"];
  if (history !== undefined) {
    if (history === null || typeof history !== "object") {
      throw new TypeError("history must be an object: { size, ttl? }");
    }
    knownNames(history, ["size", "ttl"], "history");
    sizeOption(history.size, 0, "history.size");
    if (!Number.isInteger(history.size)) throw new RangeError("history.size must be an integer");
    if (history.ttl !== undefined) sizeOption(history.ttl, 0, "history.ttl");
    resolvedHistory = { size: history.size, ttl: history.ttl };
  }
  const resume = options.resume;
  if (resume !== undefined && (resume === null || typeof resume !== "object")) {
    throw new TypeError("resume must be an object: { window?, maxMessages?, maxDetached? }");
  }
  if (resume) knownNames(resume, ["window", "maxMessages", "maxDetached"], "resume");
  const presence = options.presence;
  let resolvedPresence: ResolvedOptions<K>["presence"];
  if (presence !== undefined) {
    if (presence === null || typeof presence !== "object" || !Array.isArray(presence.keys)) {
      throw new TypeError("presence must be an object: { keys: string[], interval? }");
    }
    knownNames(presence, ["keys", "interval"], "presence");
    for (const key of presence.keys) {
      if (typeof key !== "string") throw new TypeError("presence.keys must be strings");
    }
    resolvedPresence = {
      keys: [...presence.keys],
      interval: timerOption(presence.interval, 50, "presence.interval", 0),
    };
  }
  return {
    maxMessageSize: sizeOption(options.maxMessageSize, 1 << 20, "maxMessageSize"),
    maxBufferedAmount: sizeOption(options.maxBufferedAmount, 4 << 20, "maxBufferedAmount"),
    closeOnBufferFull: onBufferFull === "close",
    pingInterval: timerOption(options.pingInterval, 30_000, "pingInterval", 0),
    pongWait: timerOption(options.pongWait, 60_000, "pongWait", 0),
    concurrent: options.concurrentMessageHandling === true,
    checkOrigin,
    broker,
    logger: options.logger,
    history: resolvedHistory,
    resume: resume && {
      window: timerOption(resume.window, 120_000, "resume.window"),
      maxMessages: sizeOption(resume.maxMessages, 1000, "resume.maxMessages"),
      maxDetached: sizeOption(resume.maxDetached, 10_000, "resume.maxDetached"),
    },
    presence: resolvedPresence,
  };
}

/** The names `HubOptions` has. */
const HUB_OPTIONS: readonly string[] = [
  "maxMessageSize",
  "maxBufferedAmount",
  "onBufferFull",
  "pingInterval",
  "pongWait",
  "concurrentMessageHandling",
  "checkOrigin",
  "broker",
  "resume",
  "logger",
  "history",
  "presence",
];

/**
 * Refuses an option whose name the options do not have (a typo must not be ignored).
 *
 * @param given The options as given.
 * @param names The names they may have.
 * @param where What they are, for the error.
 * @throws {TypeError} Naming the first unknown option.
 */
export function knownNames(given: object, names: readonly string[], where: string): void {
  for (const name of Object.keys(given)) {
    if (!names.includes(name)) {
      throw new TypeError(`Unknown option ${JSON.stringify(name)} in ${where} (it has: ${names.join(", ")})`);
    }
  }
}

/**
 * Checks a delay a timer waits: a finite number of ms, at least `min`, at most what `setTimeout`
 * keeps ({@linkcode MAX_TIMER}), or the default when absent.
 *
 * @param value The option's value.
 * @param fallback Its default.
 * @param name Its name, for the error.
 * @param min The least value (1 unless 0 turns the timer off).
 * @returns The delay in ms.
 */
export function timerOption(value: number | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (!(value >= min) || value > MAX_TIMER) {
    throw new RangeError(`${name} must be a number of ms from ${min} to ${MAX_TIMER} (about 24.8 days), not ${value}`);
  }
  return value;
}

/**
 * Checks a size: a positive number, or the default when absent. `Infinity` is allowed and means
 * no limit (`maxMessageSize`, `maxBufferedAmount`, `resume.maxMessages`, `history.ttl`). The
 * broker's options are checked by `positive` (`brokers/_redis_util.ts`), which refuses it: each
 * of them becomes a timer, a Redis expiry or a bound on bytes waiting for Redis.
 *
 * @param value The option's value.
 * @param fallback Its default.
 * @param name Its name, for the error.
 * @returns The size.
 */
export function sizeOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || Number.isNaN(value)) throw new TypeError(`${name} must be a number`);
  if (value <= 0) throw new RangeError(`${name} must be positive, not ${value}`);
  return value;
}
