/**
 * Bun adapter: `Bun.serve`'s websocket handlers → the core. Bun's `ServerWebSocket` is not a
 * WHATWG socket, so each one is wrapped in the core's socket contract; sessions are keyed on
 * the socket itself (`ws.data`), never on a per-event object.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "chorus-ws";
 * import { bunAdapter } from "chorus-ws/bun";
 * const hub = new Hub();
 * const chorus = bunAdapter(hub);
 * Bun.serve({
 *   fetch: (req, server) => chorus.upgrade(req, server),
 *   websocket: chorus.websocket,
 * });
 * ```
 *
 * @module
 */

// Thin: Bun's socket in the core's contract, Bun's options from the hub's limits. May import:
// `adapter.ts`, `hub.ts`, `types.ts`, the upgrade answer and refusal (`core/_upgrade.ts`, `core/_refuse.ts`),
// `_options_check.ts`.

import {
  attach,
  copyRequest,
  hubLimits,
  type HubSocket,
  type Publisher,
  refusedUpgrade,
  type SessionInit,
  type SocketEvents,
} from "../adapter.ts";
import { type Hub, hubCore } from "../hub.ts";
import type { Keys } from "../types.ts";
import { checkUpgrade, resolveUpgrade, type Upgrade, type UpgradeAnswer, upgradeFor } from "../core/_upgrade.ts";
import { refuse, Refused } from "../core/_refuse.ts";
import { checkOptions } from "../_options_check.ts";

export type { Upgrade, UpgradeAnswer } from "../core/_upgrade.ts";

/** The parts of Bun's `ServerWebSocket` the adapter uses. */
export interface BunWebSocket<K extends object> {
  /** Per-connection data given to `server.upgrade`. */
  data: BunSocketData<K>;
  /** The peer's address. */
  readonly remoteAddress: string;
  /** Sends a frame; returns bytes sent, -1 for backpressure, 0 when dropped. */
  send(data: string | Uint8Array): number;
  /** Closes the connection. */
  close(code?: number, reason?: string): void;
  /** Sends a ping. */
  ping(data?: string | Uint8Array): number;
  /** Bytes queued and not yet sent. */
  getBufferedAmount(): number;
  /** Subscribes to a topic. */
  subscribe(topic: string): boolean;
  /** Unsubscribes from a topic. */
  unsubscribe(topic: string): boolean;
  /** Sends to every subscriber of a topic but this socket; 0 when dropped for some, -1 for backpressure. */
  publish(topic: string, data: string | Uint8Array, compress?: boolean): number;
}

/** What the adapter keeps on `ws.data`: one object per socket, made at the upgrade. */
export interface BunSocketData<K extends object> {
  /** What the session keeps of the upgrade request; cleared once the socket is open. */
  init: SessionInit<K> | undefined;
  /** The server that upgraded the socket; cleared once the socket is open. */
  server: BunServer | undefined;
  /** The handle the socket's events go to, once it is open. */
  events: SocketEvents | undefined;
}

/** The parts of Bun's `Server` the adapter uses. */
export interface BunServer {
  /** Upgrades a request, with extra 101 headers (Bun's `HeadersInit`; chorus passes a `Headers`); true on success. */
  upgrade(req: Request, options: { data: unknown; headers?: object }): boolean;
  /** The peer's address of a request. */
  requestIP(req: Request): { address: string } | null;
  /** Sends to every subscriber of a topic; 0 when dropped for some (or none), -1 for backpressure. */
  publish(topic: string, data: string | Uint8Array, compress?: boolean): number;
}

/** Options of {@linkcode bunAdapter}. */
export interface BunAdapterOptions {
  /**
   * Send hub-wide and room broadcasts through Bun's native pub/sub (`server.publish`,
   * `ws.publish`) where nothing per session forbids it. Turn it off to have every broadcast
   * loop over the sessions in JavaScript, so that every message refused by the outbound limit
   * is reported exactly (at about a tenth of the throughput).
   * @default {true}
   */
  nativeFanout?: boolean;
}

/** The handlers and settings to pass as `websocket` to `Bun.serve`. */
export interface BunWebSocketHandler<K extends object> {
  /** Inbound limit, from `maxMessageSize` (Bun closes with 1009 past it). */
  maxPayloadLength: number;
  /**
   * Outbound limit, from `maxBufferedAmount`. The hub refuses a write that would cross it
   * before Bun sees it; Bun itself applies it to native publishes, dropping a message for a
   * socket whose queue is already past it.
   */
  backpressureLimit: number;
  /**
   * From `onBufferFull: "close"`: Bun closes a socket whose queue a native publish found past
   * the limit, even where the drop went unreported.
   */
  closeOnBackpressureLimit: boolean;
  /** 0: the hub runs its own keepalive with `ws.ping()` and the pong handler. */
  idleTimeout: number;
  /** False: the hub sends the pings. */
  sendPings: boolean;
  /** A socket opened. */
  open(ws: BunWebSocket<K>): void;
  /** A frame arrived. */
  message(ws: BunWebSocket<K>, message: string | Uint8Array): void;
  /** The socket closed. */
  close(ws: BunWebSocket<K>, code: number, reason: string): void;
  /** A pong arrived. */
  pong(ws: BunWebSocket<K>): void;
}

/** What `bunAdapter` returns. */
export interface BunAdapter<K extends object> {
  /** Pass as `websocket` to `Bun.serve`. */
  websocket: BunWebSocketHandler<K>;
  /**
   * Checks and upgrades a request inside `fetch`, answering as `serve()` does: 426 for a request
   * that is not an upgrade, 403 for a refused origin, 503 once the hub is closed, 400 for a
   * malformed upgrade. Returns `undefined` once upgraded (return that from `fetch`), or the
   * refusal to send. A refusal (a 4xx other than 408, 426, 429) of a client that offered
   * `chorus.v1` is told by accepting the upgrade only to close it at once with 4000 + the status
   * and the answer's text, which a browser can read (no session; counted as refused).
   *
   * `decide` is the initial keys, or a function that gets the {@linkcode Upgrade} (offered
   * subprotocols; pick one, add headers) and returns the keys, or a Response to refuse.
   * Without a choice the answer is the first subprotocol the client offered.
   *
   * @throws {TypeError} If the chosen subprotocol was not offered (no session is made).
   */
  upgrade(
    req: Request,
    server: BunServer,
    decide?: Partial<K> | ((upgrade: Upgrade) => Partial<K> | Response | void),
  ): Response | undefined;
}

/** A Bun socket in the core's contract, and the `ws.data` that finds its events handle. */
class BunSocket<K extends object> implements HubSocket, BunSocketData<K> {
  init: SessionInit<K> | undefined;
  server: BunServer | undefined;
  events: SocketEvents | undefined;
  ws: BunWebSocket<K> | undefined;
  constructor(init: SessionInit<K>, server: BunServer) {
    this.init = init;
    this.server = server;
  }
  get bufferedAmount(): number {
    return this.ws!.getBufferedAmount();
  }
  /**
   * The first send binds Bun's own `ws.send` on this socket, so every later one goes straight to
   * the runtime (bound lazily: an idle session that only gets native publishes holds no bound function).
   */
  send(data: string | Uint8Array): number {
    const ws = this.ws!;
    this.send = ws.send.bind(ws);
    return ws.send(data);
  }
  close(code?: number, reason?: string): void {
    this.ws!.close(code, reason);
  }
  ping(): void {
    this.ws!.ping();
  }
  subscribe(topic: string): void {
    this.ws!.subscribe(topic);
  }
  unsubscribe(topic: string): void {
    this.ws!.unsubscribe(topic);
  }
  publish(topic: string, data: string | Uint8Array): number {
    return this.ws!.publish(topic, data, false);
  }
}

const publishers = new WeakMap<BunServer, Publisher>();
/** Bun's close reason for a message past `maxPayloadLength`. */
const TOO_BIG = "Received too big message";

/**
 * The native fan-out of a Bun server, for `attach` in `chorus-ws/adapter`: one per server, so a
 * hub served by several servers publishes once on each.
 *
 * @param server The Bun server.
 * @returns A publisher that sends uncompressed through `server.publish`.
 */
export function bunPublisher(server: BunServer): Publisher {
  let publisher = publishers.get(server);
  // Bun's own `server.publish`, bound (uncompressed: its default): a publish goes straight to the runtime.
  if (!publisher) publishers.set(server, publisher = { publish: server.publish.bind(server) });
  return publisher;
}

/**
 * Upgrades an accepted request on a Bun server; the session starts in the `open` handler.
 *
 * @param server The Bun server.
 * @param req The request (already checked by `hub.checkRequest`).
 * @param init What the session keeps of the request.
 * @param answer The subprotocol and extra headers to answer; by default the first subprotocol
 * the client offered, as on every path (see `Upgrade`).
 * @returns `undefined` when upgraded, else a 400 response.
 */
export function upgradeBun<K extends object = Keys>(
  server: BunServer,
  req: Request,
  init: SessionInit<K>,
  answer: UpgradeAnswer = resolveUpgrade(req),
): Response | undefined {
  if (!init.remoteAddr) init.remoteAddr = server.requestIP(req)?.address ?? "";
  init.protocol = answer.protocol ?? "";
  const data = new BunSocket(init, server);
  // Always say it: left to itself, Bun answers the first offered subprotocol on its own (an
  // empty value makes it answer none).
  const headers = new Headers(answer.headers);
  headers.set("sec-websocket-protocol", answer.protocol ?? "");
  return server.upgrade(req, { data, headers }) ? undefined : new Response("WebSocket upgrade failed", { status: 400 });
}

/**
 * Builds the `websocket` handlers for `Bun.serve` and an `upgrade` helper for `fetch`, with
 * the hub's limits mapped onto Bun's settings. Unless `nativeFanout` is false, each socket is
 * attached with its server's `publish` (see {@linkcode bunPublisher}), so a hub served by
 * several servers reaches the sessions of every one.
 *
 * @param hub The hub.
 * @param options Whether broadcasts use Bun's native pub/sub.
 * @returns The handlers and the upgrade helper.
 * @throws {TypeError} For an unknown option name.
 */
export function bunAdapter<K extends object = Keys>(hub: Hub<K>, options: BunAdapterOptions = {}): BunAdapter<K> {
  checkOptions("bunAdapter()", options, ["nativeFanout"]);
  const { maxMessageSize, maxBufferedAmount, closeOnBufferFull } = hubLimits(hub);
  const native = options.nativeFanout !== false;
  return {
    websocket: {
      maxPayloadLength: Math.min(maxMessageSize, 0xffffffff),
      backpressureLimit: Math.min(maxBufferedAmount, 0xffffffff),
      closeOnBackpressureLimit: closeOnBufferFull,
      idleTimeout: 0,
      sendPings: false,
      open(ws) {
        // An upgrade accepted only to tell a chorus.v1 client its refusal (see `upgrade`).
        if ((ws.data as unknown) instanceof Refused) return (ws.data as unknown as Refused).close(ws);
        const socket = ws.data as BunSocket<K>;
        const { init, server } = socket;
        socket.init = socket.server = undefined;
        socket.ws = ws;
        socket.events = attach(hub, socket, init!, native && server ? bunPublisher(server) : undefined);
      },
      message(ws, message) {
        ws.data.events?.receive(message);
      },
      close(ws, code, reason) {
        // Bun closes a socket past maxPayloadLength with 1009 on the wire but reports 1006 here.
        if (code === 1006 && reason === TOO_BIG) ws.data.events?.closed(1009, "Message too big");
        else ws.data.events?.closed(code, reason);
      },
      pong(ws) {
        ws.data.events?.ponged();
      },
    },
    upgrade(req, server, decide) {
      const refused = checkUpgrade(hubCore(hub), req);
      if (refused) return refuse(req, refused, () => server);
      const upgrade = upgradeFor(req);
      const verdict = typeof decide === "function" ? decide(upgrade) : decide;
      if (verdict instanceof Response) {
        refusedUpgrade(hub, verdict.status, "the upgrade's decide function answered with a response");
        return refuse(req, verdict, () => server);
      }
      const answer = resolveUpgrade(req, upgrade);
      return upgradeBun(server, req, copyRequest(req, verdict ?? undefined, ""), answer);
    },
  };
}
