/**
 * `chorus-ws/client`: a WebSocket client that reconnects by itself and, against a hub with `resume`
 * on, resumes its session so that nothing is lost, duplicated or reordered in either direction.
 * It has no dependencies and uses web APIs only (`WebSocket`, `EventTarget`, timers, `fetch`), so
 * it runs in browsers, Deno and Bun.
 *
 * **In a page.** With a bundler (Vite, esbuild, webpack, `deno bundle`, `bun build`), import
 * `chorus-ws/client` as here. Without one, serve the package's single-file build, an ES module with
 * no imports: `node_modules/chorus-ws/dist/chorus-client.js`, also exported as
 * `chorus-ws/chorus-client.js` (in this repository, `examples/_static/chorus-client.js`). Copy it
 * next to the page and import it by URL, or map the name so the same import line works:
 *
 * ```html
 * <script type="importmap">{ "imports": { "chorus-ws/client": "/static/chorus-client.js" } }</script>
 * <script type="module">
 *   import { connect } from "chorus-ws/client";
 *   const c = connect("/ws");
 * </script>
 * ```
 *
 * **Refused upgrades.** When the server refuses the upgrade (a 4xx other than 408, 426 and 429),
 * the client stops with one `close` event whose `code` is 4000 + the status (4401, 4403, …) and
 * whose `reason` is the answer's text (at most 123 bytes). A chorus hub says so at once: to a
 * client that offers `chorus.v1` it answers its own refusals (`onUpgrade`, Hono `keys`, the Bun
 * adapter's `decide`, a refused origin) by accepting the upgrade only to close it with that code
 * (no session is made). A refusal the hub never saw (Hono middleware, a proxy) is found by a probe,
 * as a browser does not show a failed handshake's status: after a connection fails before opening,
 * the client fetches the same URL over HTTP(S) once (`credentials: "include"`, at most
 * `connectTimeout`); when two such failures in a row are refusals, it stops (at most two more
 * connections). Cost: one HTTP request per failed connection. Limits: a cross-origin URL needs CORS
 * headers on the refusal (`Access-Control-Allow-Origin` with the page's origin,
 * `Access-Control-Allow-Credentials: true`), else the answer is unreadable and the client keeps
 * retrying; the probe is a plain GET, so a server that answers it unlike the upgrade (a `fetch`
 * handler's 404 for the WebSocket path) is taken at its word. No answer, a 5xx, 408, 426, 429 or a
 * timeout is no refusal: a server that is down or restarting is retried.
 *
 * @example
 * ```ts ignore
 * import { connect } from "chorus-ws/client";
 *
 * const c = connect("wss://example.com/ws");
 * c.addEventListener("open", (e) => console.log(e.resumed ? "resumed" : "new session: reload state"));
 * c.addEventListener("message", (e) => console.log("got", e.data));
 * c.addEventListener("close", (e) => console.log("stopped for good", e.code, e.reason));
 * c.send("hello"); // queued until the first connection is open
 * ```
 *
 * @module
 */

import { PROTOCOL } from "./protocol.ts";
import { type ClientOptions, type ClientSettings, clientSettings } from "./_client_options.ts";
import { Inbox } from "./_client_inbox.ts";
import { Outbox, tooLarge, toPayload } from "./_client_outbox.ts";
import { probe } from "./_client_probe.ts";
import { Connection, type Shared } from "./_client_connection.ts";
import {
  type ChorusClientEventMap,
  ChorusDroppedEvent,
  ChorusOpenEvent,
  ChorusReconnectingEvent,
  type ClientMessage,
  type ClientState,
} from "./_client_events.ts";

export type { ClientOptions } from "./_client_options.ts";
export type { ChorusClientEventMap, ClientMessage, ClientState } from "./_client_events.ts";
export { ChorusDroppedEvent, ChorusOpenEvent, ChorusReconnectingEvent } from "./_client_events.ts";

/** Close codes after which the client reconnects (without `shouldReconnect`). */
const RECONNECT_CODES: ReadonlySet<number> = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
/** Failed connections in a row, each probed as a refusal, after which the client stops. */
const REFUSALS = 2;

/**
 * A WebSocket client that reconnects with full-jitter exponential backoff and, against a hub
 * that speaks `chorus.v1` (one with `resume` on), resumes its session: every message arrives
 * exactly once and in order, both ways, across lost connections. Against a plain WebSocket server
 * it is a reconnecting WebSocket with an offline queue (messages sent on a connection that dies
 * may then be lost).
 *
 * Made by {@linkcode connect}. It connects at once; `send` works from the start (messages wait in
 * a bounded queue until a connection is open).
 *
 * When the server starts a new session instead of resuming (its window passed, say: `open` with
 * `resumed: false`), the messages the old session had not acknowledged are sent to the new one,
 * then the queue: delivery to the server is at least once across that boundary (a message that
 * arrived just before the connection died may arrive again), exactly once otherwise.
 *
 * @example
 * ```ts
 * import { connect } from "chorus-ws/client";
 *
 * const c = connect("ws://127.0.0.1:8080/ws", { minDelay: 250, maxDelay: 10_000 });
 * c.addEventListener("message", (e) => console.log(e.data));
 * c.addEventListener("reconnecting", (e) => console.log(`retry ${e.attempt} in ${e.delay} ms`));
 * if (!c.send("hi")) console.log("queue full");
 * c.close();
 * ```
 */
export class ChorusClient extends EventTarget {
  readonly #url: string | URL;
  readonly #o: ClientSettings;

  #state: ClientState = "connecting";
  readonly #shared: Shared;
  /** The immediate second half of a first attempt: the same, without `chorus.v1`. */
  #withoutChorus = false;
  /** The current connection, if any. */
  #conn: Connection | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #healthyTimer: ReturnType<typeof setTimeout> | undefined;
  #probing: AbortController | undefined;
  /** Attempts since the last healthy connection. */
  #attempt = 0;
  /** Failed connections in a row whose probe answered a refusal. */
  #refusals = 0;
  #onOnline: (() => void) | undefined;

  /**
   * Starts a client; prefer {@linkcode connect}.
   *
   * @param url The server's `ws:`/`wss:` URL (in a browser, also one relative to the page).
   * @param options Options.
   * @throws {TypeError} If an option is unknown or has the wrong type.
   * @throws {RangeError} If a number is out of range.
   */
  constructor(url: string | URL, options: ClientOptions = {}) {
    super();
    if (typeof url !== "string" && !(url instanceof URL)) throw new TypeError("url must be a string or a URL");
    this.#o = clientSettings(options, PROTOCOL);
    this.#url = url;
    this.#shared = {
      kind: "unknown",
      token: undefined,
      framed: true,
      inbox: new Inbox(),
      outbox: new Outbox(this.#o.maxQueued),
    };
    const g = globalThis as unknown as Partial<EventTarget> & { navigator?: { onLine?: boolean } };
    if (typeof g.addEventListener === "function" && typeof g.navigator?.onLine === "boolean") {
      this.#onOnline = () => {
        if (this.#retryTimer === undefined) return;
        clearTimeout(this.#retryTimer);
        this.#retryTimer = undefined;
        this.#connect();
      };
      g.addEventListener("online", this.#onOnline);
    }
    try {
      this.#connect();
    } catch (err) {
      this.#stop();
      throw err;
    }
  }

  /**
   * `"connecting"` (the first attempt), `"open"`, `"reconnecting"` (the connection was lost or an
   * attempt failed; waiting, or trying again) or `"closed"` (for good).
   */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * Sends a message, or queues it until the next connection is ready. In `chorus.v1` mode a sent
   * message is kept until the server acknowledges it, and sent again after a reconnect if needed.
   *
   * A chorus hub's welcome tells the largest frame it takes (its `maxMessageSize`); from then on a
   * message whose frame would be larger is refused here with a `RangeError` (the hub would close
   * the connection with 1009): nothing is sent or queued, the connection goes on. One queued before
   * the first welcome and larger than it allows is left out when the queue is sent, with a
   * `dropped` event (see {@linkcode ChorusDroppedEvent}).
   *
   * @param data A string (a text frame) or bytes (a binary frame; copied).
   * @returns `true` if the message was sent or queued; `false` if the queue is full
   * (`maxQueued` messages queued or unacknowledged) or the client is closed; then nothing was
   * queued.
   * @throws {TypeError} If `data` is neither a string nor bytes.
   * @throws {RangeError} If the hub takes no message this large.
   */
  send(data: ClientMessage): boolean {
    const payload = toPayload(data);
    if (this.#state === "closed") return false;
    const { kind, framed, outbox } = this.#shared;
    const size = kind === "chorus" ? outbox.tooLarge(payload, framed) : 0;
    if (size) throw tooLarge(size, outbox.max!);
    const open = this.#conn?.open ? this.#conn.ws : undefined;
    if ((kind === "plain" || !framed) && open?.readyState === 1) {
      this.#conn!.sendPlain(payload);
      return true;
    }
    if (outbox.full) return false;
    if (kind === "chorus" && open) open.send(outbox.number(payload) as string | Uint8Array<ArrayBuffer>);
    else outbox.queue(payload);
    return true;
  }

  /**
   * Stops for good: closes the connection cleanly (a hub ends the session), cancels any
   * reconnect, and fires `close` with `code` at once; `state` is `"closed"` when this returns.
   * Queued and unacknowledged messages are discarded. Calling it again does nothing.
   *
   * @param code The close code: 1000 (the default), or 3000–4999.
   * @param reason The close reason (default empty), at most 123 bytes of UTF-8.
   * @throws {RangeError} If the code or the reason is not allowed.
   */
  close(code: number = 1000, reason: string = ""): void {
    if (code !== 1000 && !(Number.isInteger(code) && code >= 3000 && code <= 4999)) {
      throw new RangeError(`close code must be 1000 or 3000-4999, got ${code}`);
    }
    if (typeof reason !== "string" || new TextEncoder().encode(reason).byteLength > 123) {
      throw new RangeError("close reason must be a string of at most 123 bytes");
    }
    if (this.#state === "closed") return;
    const conn = this.#conn;
    this.#stop();
    conn?.drop(true, code, reason);
    this.dispatchEvent(new CloseEvent("close", { code, reason, wasClean: true }));
  }

  /**
   * Listens to `open`, `message`, `reconnecting`, `dropped` or `close` (see
   * {@linkcode ChorusClientEventMap}).
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override addEventListener<E extends keyof ChorusClientEventMap>(
    type: E,
    listener: (this: ChorusClient, ev: ChorusClientEventMap[E]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens to an event.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
  }

  /**
   * Stops listening.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override removeEventListener<E extends keyof ChorusClientEventMap>(
    type: E,
    listener: (this: ChorusClient, ev: ChorusClientEventMap[E]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Stops listening.
   *
   * @param type The event's name.
   * @param listener The listener.
   * @param options As for `EventTarget`.
   */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener, options);
  }

  #connect(): void {
    const { kind } = this.#shared;
    const chorus = kind === "chorus" || (kind === "unknown" && !this.#withoutChorus);
    this.#withoutChorus = false;
    const conn: Connection = this.#conn = new Connection(this.#url, chorus, this.#o, this.#shared, {
      open: (resumed, dropped) => {
        this.#connected();
        this.dispatchEvent(new ChorusOpenEvent(resumed));
        for (const { data, size } of dropped) {
          const message = typeof data === "string" ? data : data.slice().buffer as ArrayBuffer;
          this.dispatchEvent(new ChorusDroppedEvent(message, tooLarge(size, this.#shared.outbox.max!)));
        }
      },
      message: (data) => this.dispatchEvent(new MessageEvent("message", { data })),
      lost: (e, how) => this.#lost(conn, e, how),
    });
  }

  /** A connection is open: it becomes healthy (the backoff starts over) after `minUptime`. */
  #connected(): void {
    this.#state = "open";
    this.#refusals = 0;
    clearTimeout(this.#healthyTimer);
    this.#healthyTimer = setTimeout(() => {
      this.#healthyTimer = undefined;
      this.#attempt = 0;
    }, this.#o.minUptime);
  }

  #lost(conn: Connection, e: CloseEvent, how: "handshake" | "late" | "lost"): void {
    if (conn !== this.#conn) return;
    this.#conn = undefined;
    clearTimeout(this.#healthyTimer);
    this.#healthyTimer = undefined;
    if (this.#state === "closed") return;
    if (how === "late") {
      this.#state = "reconnecting"; // a slow chorus hub: again at once, with chorus.v1
      return this.#connect();
    }
    if (how === "lost") return this.#next(e, false);
    // A browser fails a handshake whose answer names none of the offered subprotocols, so a
    // server that answers none fails every attempt that offers chorus.v1. Until the server's
    // kind is known, a first attempt that fails before opening is tried again at once without.
    const plainNext = conn.offeredChorus && this.#shared.kind === "unknown";
    // The handshake failed: ask over HTTP whether the server refuses the upgrade.
    const probing = this.#probing = new AbortController();
    probe(this.#url, this.#o.connectTimeout, probing.signal).then((refusal) => {
      if (this.#probing !== probing) return; // closed meanwhile
      this.#probing = undefined;
      this.#refusals = refusal ? this.#refusals + 1 : 0;
      if (refusal && this.#refusals >= REFUSALS) {
        const code = 4000 + refusal.status;
        this.#next(new CloseEvent("close", { code, reason: refusal.reason, wasClean: false }), false);
      } else this.#next(e, plainNext);
    });
  }

  /** After a connection ended: at once without `chorus.v1`, after a backoff, or never again. */
  #next(e: CloseEvent, plainNext: boolean): void {
    if (plainNext) {
      this.#withoutChorus = true;
      this.#connect();
      return;
    }
    let again: boolean;
    try {
      again = this.#o.shouldReconnect ? this.#o.shouldReconnect(e) : RECONNECT_CODES.has(e.code);
    } catch (err) {
      this.#finish(e);
      throw err;
    }
    if ((this.#state as ClientState) === "closed") return; // shouldReconnect closed the client
    if (!again) return this.#finish(e);
    const attempt = ++this.#attempt;
    const { minDelay, maxDelay } = this.#o;
    const span = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt - 1, 30));
    const delay = Math.min(maxDelay, minDelay + Math.random() * span);
    this.#state = "reconnecting";
    this.dispatchEvent(new ChorusReconnectingEvent(attempt, delay));
    if ((this.#state as ClientState) !== "reconnecting") return; // a listener closed the client
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#connect();
    }, delay);
  }

  #finish(e: CloseEvent): void {
    this.#stop();
    this.dispatchEvent(new CloseEvent("close", { code: e.code, reason: e.reason, wasClean: e.wasClean }));
  }

  /** Ends everything: no socket, no timer, no listener, no probe; `state` is `"closed"`. */
  #stop(): void {
    this.#state = "closed";
    this.#conn?.drop(false);
    this.#conn = undefined;
    clearTimeout(this.#retryTimer);
    clearTimeout(this.#healthyTimer);
    this.#retryTimer = this.#healthyTimer = undefined;
    this.#probing?.abort();
    this.#probing = undefined;
    if (this.#onOnline) {
      (globalThis as unknown as EventTarget).removeEventListener("online", this.#onOnline);
      this.#onOnline = undefined;
    }
    this.#shared.outbox.clear();
  }
}

/**
 * Connects to a chorus hub (or any WebSocket server) and keeps connecting: see
 * {@linkcode ChorusClient}.
 *
 * Offers the `chorus.v1` subprotocol first. When the server answers it and says `hello`, the
 * client resumes its session on every reconnect (messages numbered, acknowledged by position, sent
 * again and deduplicated: exactly once, in order, both ways). When the server answers another
 * subprotocol or none, every frame is a message and `open` always has `resumed: false`. Which kind
 * the server is gets fixed by the first connection that opens (one that answered `chorus.v1` and
 * said nothing for `connectTimeout` is taken for plain, unless its first frame is a late `hello`:
 * then the client connects again at once and sends again what it sent there). Browsers fail a handshake whose
 * answer names none of the offered subprotocols, so until then an attempt that fails before
 * opening is repeated at once without `chorus.v1`.
 *
 * Reconnects after a lost connection (no close frame, a connect timeout, no frame at all for
 * twice the server's heartbeat interval plus a second) and after close codes 1001, 1011, 1012,
 * 1013 (also during the handshake: the hub cannot decide the resume yet; the credential is kept)
 * and 1014, waiting `min(maxDelay, minDelay + random() * min(maxDelay, minDelay * 2 ** (attempt -
 * 1)))` ms, drawn anew each time. The attempt count (and so the backoff) starts over only once a
 * connection was **healthy**: open for `minUptime` ms (5 s by default); a server that accepts and
 * drops at once sees the delays grow to `maxDelay`. Any other code from the server, a refused
 * upgrade (code 4000 + status, see the module's doc) or {@linkcode ChorusClient.close} is final,
 * unless `shouldReconnect` says otherwise. In a browser, going back online retries at once.
 *
 * @example
 * ```ts
 * import { connect } from "chorus-ws/client";
 *
 * const c = connect("ws://127.0.0.1:8080/ws", { maxQueued: 100 });
 * c.addEventListener("open", (e) => {
 *   if (!e.resumed) c.send(JSON.stringify({ type: "sync" })); // a new session: ask for the state
 * });
 * c.addEventListener("message", (e) => {
 *   if (typeof e.data === "string") console.log(JSON.parse(e.data));
 * });
 * c.addEventListener("close", (e) => {
 *   if (e.code === 4401) console.log("sign in again:", e.reason); // the upgrade was refused with 401
 * });
 * c.close(1000, "bye");
 * ```
 *
 * @param url The server's `ws:`/`wss:` URL (in a browser, also one relative to the page).
 * @param options Options.
 * @returns The client, already connecting.
 * @throws {TypeError} If an option is unknown or has the wrong type.
 * @throws {RangeError} If a number is out of range (a time past 2147483647 ms too).
 */
export function connect(url: string | URL, options?: ClientOptions): ChorusClient {
  return new ChorusClient(url, options);
}
