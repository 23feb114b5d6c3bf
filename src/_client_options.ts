/**
 * The options of `connect()` (`chorus-ws/client`): their type, their defaults and their checks,
 * in one place. Internal; `ClientOptions` is re-exported by `src/client.ts`.
 *
 * @module
 */

/**
 * Options of `connect()`. Times are in milliseconds, at most 2147483647 each (`setTimeout`'s limit:
 * a longer delay would fire at once; past it, a `RangeError`).
 */
export interface ClientOptions {
  /**
   * Subprotocols to offer besides `chorus.v1` (which is offered first while the server may speak
   * it). A server that answers one of these, or none, is a plain server: every frame is a message.
   * @default {[]}
   */
  protocols?: string[];
  /**
   * The shortest wait before a reconnect.
   * @default {500}
   */
  minDelay?: number;
  /**
   * The longest wait before a reconnect.
   * @default {20000}
   */
  maxDelay?: number;
  /**
   * How long a connection may take to open, and then to finish the `chorus.v1` handshake (how
   * long to wait for a `hello` before taking the server for a plain one, and for the welcome),
   * before it counts as lost. Also the most a refusal probe (see `connect()`) may take.
   * @default {5000}
   */
  connectTimeout?: number;
  /**
   * How long a connection must stay open to be **healthy**: only then does the backoff start
   * over (the next `reconnecting` event has `attempt` 1 and the shortest delays). A server that
   * accepts and then drops connections sooner keeps the client backing off up to `maxDelay`.
   * @default {5000}
   */
  minUptime?: number;
  /**
   * The most messages kept for sending: those queued while not connected plus those sent and not
   * yet acknowledged by the server. Past it `send()` returns `false`.
   * @default {1000}
   */
  maxQueued?: number;
  /**
   * Decides whether to reconnect after the server closed the connection, it was lost, or the
   * upgrade was refused (the event's code is 1006 for a lost connection, a connect timeout or a
   * dead heartbeat; 4000 + the HTTP status for a refused upgrade). Without it the client
   * reconnects after 1001, 1006, 1011, 1012, 1013 and 1014, and stops for good on any other code.
   * @default {undefined}
   */
  shouldReconnect?: (e: CloseEvent) => boolean;
  /**
   * The `WebSocket` constructor to use (a polyfill, or a wrapper that observes the sockets).
   * @default {globalThis.WebSocket}
   */
  WebSocket?: new (url: string | URL, protocols?: string | string[]) => WebSocket;
}

/** The options after their checks, with their defaults. */
export interface ClientSettings {
  protocols: string[];
  minDelay: number;
  maxDelay: number;
  connectTimeout: number;
  minUptime: number;
  maxQueued: number;
  shouldReconnect: ((e: CloseEvent) => boolean) | undefined;
  WebSocket: new (url: string | URL, protocols?: string | string[]) => WebSocket;
}

/** The longest delay `setTimeout` takes: a longer one fires at once. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1;

const NAMES: ReadonlySet<string> = new Set([
  "protocols",
  "minDelay",
  "maxDelay",
  "connectTimeout",
  "minUptime",
  "maxQueued",
  "shouldReconnect",
  "WebSocket",
]);

/**
 * Checks the options of `connect()` and fills in the defaults.
 *
 * @param options What the caller passed.
 * @param subprotocol The client's own subprotocol, never offered twice.
 * @returns The settings.
 * @throws {TypeError} For an unknown option name or a value of the wrong type.
 * @throws {RangeError} For a number out of range (a delay past `setTimeout`'s limit too).
 */
export function clientSettings(options: ClientOptions | undefined, subprotocol: string): ClientSettings {
  if (options === undefined) options = {};
  if (options === null || typeof options !== "object") throw new TypeError("connect() options must be an object");
  for (const name of Object.keys(options)) {
    if (!NAMES.has(name)) throw new TypeError(`Unknown option ${JSON.stringify(name)} of connect()`);
  }
  const {
    protocols = [],
    minDelay = 500,
    maxDelay = 20000,
    connectTimeout = 5000,
    minUptime = 5000,
    maxQueued = 1000,
    shouldReconnect,
    WebSocket = globalThis.WebSocket,
  } = options;
  if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== "string")) {
    throw new TypeError("protocols must be an array of strings");
  }
  const settings: ClientSettings = {
    protocols: protocols.filter((p) => p !== subprotocol),
    minDelay: delay("minDelay", minDelay, 0),
    maxDelay: delay("maxDelay", maxDelay, 0),
    connectTimeout: delay("connectTimeout", connectTimeout, 1),
    minUptime: delay("minUptime", minUptime, 0),
    maxQueued: number("maxQueued", maxQueued, 1),
    shouldReconnect,
    WebSocket,
  };
  if (settings.maxDelay < settings.minDelay) throw new RangeError("maxDelay must not be less than minDelay");
  if (!Number.isSafeInteger(settings.maxQueued)) throw new RangeError("maxQueued must be an integer");
  if (shouldReconnect !== undefined && typeof shouldReconnect !== "function") {
    throw new TypeError("shouldReconnect must be a function");
  }
  if (typeof WebSocket !== "function") throw new TypeError("no WebSocket constructor: pass options.WebSocket");
  return settings;
}

function number(name: string, value: unknown, min: number): number {
  if (typeof value !== "number") throw new TypeError(`${name} must be a number`);
  if (!(value >= min) || !Number.isFinite(value)) throw new RangeError(`${name} must be a finite number >= ${min}`);
  return value;
}

/** A time option: a number of milliseconds `setTimeout` takes as it is. */
function delay(name: string, value: unknown, min: number): number {
  const ms = number(name, value, min);
  if (ms > MAX_TIMER_DELAY) {
    throw new RangeError(`${name} must be at most ${MAX_TIMER_DELAY} ms (setTimeout fires a longer delay at once)`);
  }
  return ms;
}
