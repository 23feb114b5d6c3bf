/**
 * `chorus-ws/adapter`: the contract between the core and a runtime adapter. An adapter hands the
 * core a socket ({@linkcode HubSocket}, a subset of the WHATWG `WebSocket`) with what it kept
 * of the upgrade request ({@linkcode SessionInit}), and reports the socket's events through the
 * handle {@linkcode attach} returns ({@linkcode SocketEvents}). The core knows no runtime: the
 * Deno and Bun adapters use this module and nothing else of it, and so can a third party's.
 *
 * @example An adapter for any WHATWG-style server socket
 * ```ts
 * import { Hub } from "chorus-ws";
 * import { attach, copyRequest } from "chorus-ws/adapter";
 *
 * function onAccepted(hub: Hub, socket: WebSocket, req: Request): void {
 *   const init = copyRequest(req, {}, ""); // before the upgrade: the request may be unusable after it
 *   socket.binaryType = "arraybuffer";
 *   socket.onopen = () => {
 *     const events = attach(hub, socket, init);
 *     if (!events) return; // the hub is closed: the socket was closed with 1001
 *     socket.onmessage = (e) => events.receive(e.data);
 *     socket.onclose = (e) => events.closed(e.code || 1006, e.reason);
 *     socket.onerror = () => events.errored(new Error("socket error"));
 *   };
 * }
 * ```
 *
 * @module
 */

import type { Hub } from "./hub.ts";

import { registryOf } from "./_registry.ts";

/** The outbound side of a socket, as the core uses it. */
export interface HubSocket {
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /**
   * Sends a text (string) or binary frame. May return a status: `0` means the runtime
   * dropped the message; any other value or `undefined` means it was queued. (Typed as a WHATWG
   * `WebSocket.send` takes it, so a `WebSocket` is a `HubSocket`.)
   */
  send(data: string | Uint8Array<ArrayBuffer>): number | void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /**
   * Sends a ping. Present where the runtime lets a server ping and reports pongs; the hub
   * then runs its own keepalive (`pingInterval`, `pongWait`). Without it, the hub ends a
   * session whose outbound queue has not drained at all for `pongWait` (a peer that stopped
   * reading), and the runtime's own keepalive does the rest.
   */
  ping?(): void;
  /**
   * Native fan-out, where the runtime has it (Bun): subscribes the socket to a topic of the
   * runtime's pub/sub. A socket that offers `subscribe` must offer `unsubscribe` and `publish`
   * too, and be attached with its server's {@linkcode Publisher}; the hub then subscribes it
   * to its hub-wide topic and to one topic per room it joins.
   */
  subscribe?(topic: string): void;
  /** Native fan-out: unsubscribes the socket from a topic. */
  unsubscribe?(topic: string): void;
  /**
   * Native fan-out: sends a frame to every subscriber of `topic` on the socket's server but
   * this socket. Returns the runtime's status: `0` when the message was dropped for some
   * subscriber (or there was none), `-1` when some subscriber is under backpressure, else the
   * bytes sent.
   */
  publish?(topic: string, data: string | Uint8Array): number;
}

/**
 * A server's native fan-out (Bun's `server.publish`), given to {@linkcode attach} with each of
 * the server's sockets. While every session's socket has native fan-out, the hub sends a
 * hub-wide or room broadcast as one `publish` per server instead of a loop over sessions.
 */
export interface Publisher {
  /**
   * Sends a frame (text for a string, binary for bytes) to every socket of the server that is
   * subscribed to `topic`. Returns `0` when the message was dropped for some subscriber (or
   * there was none), `-1` when some subscriber is under backpressure, else the bytes sent.
   */
  publish(topic: string, data: string | Uint8Array): number;
}

/** What an adapter kept of a connection's upgrade request; make one with {@linkcode copyRequest}. */
export interface SessionInit<K> {
  /** A copy of the upgrade request (url and headers stay usable after the upgrade). */
  readonly request: Request;
  /** The peer's address, `""` where the runtime does not tell. */
  remoteAddr: string;
  /** Initial session keys (from `onUpgrade` or `handleRequest`'s `keys`). */
  readonly keys?: Partial<K>;
  /**
   * The subprotocol the upgrade answered, `""` for none. The adapter sets it: with `"chorus.v1"`
   * the hub speaks the resumable-session protocol on the socket (see `chorus-ws/client`).
   */
  protocol: string;
}

/** The handle an adapter reports a socket's events to, returned by {@linkcode attach}. */
export interface SocketEvents {
  /** A frame arrived: text as a string, binary as bytes. */
  receive(data: string | ArrayBuffer | Uint8Array): void;
  /** The socket closed: the peer's close code and reason, 1006 for a lost connection. */
  closed(code: number, reason: string): void;
  /** The runtime reported an error on the socket (not a lost connection: that is `closed`). */
  errored(err: unknown): void;
  /** A pong arrived. */
  ponged(): void;
}

/** A hub's limits and keepalive, resolved with their defaults, for an adapter to map onto its runtime. */
export interface HubLimits {
  /** Largest inbound message in bytes. */
  readonly maxMessageSize: number;
  /** Most bytes queued for one session. */
  readonly maxBufferedAmount: number;
  /** Whether a session past `maxBufferedAmount` is closed (`onBufferFull: "close"`). */
  readonly closeOnBufferFull: boolean;
  /** How often the hub pings, `0` for no keepalive. */
  readonly pingInterval: number;
  /** How long a ping may go unanswered. */
  readonly pongWait: number;
}

/**
 * Turns an open socket into a session of the hub and runs the connect hook. On a closed hub
 * the socket is closed with 1001 and nothing is returned.
 *
 * @param hub The hub.
 * @param socket The socket, in the core's contract.
 * @param init What the adapter kept of the upgrade request.
 * @param publisher The native fan-out of the socket's server, where the socket offers
 *   `subscribe`, `unsubscribe` and `publish`; without it the hub loops over this session.
 * @returns The handle the adapter reports the socket's events to, or `undefined`.
 */
export function attach<K extends object>(
  hub: Hub<K>,
  socket: HubSocket,
  init: SessionInit<K>,
  publisher?: Publisher,
): SocketEvents | undefined {
  return registryOf(hub).attach(socket, init, publisher);
}

/**
 * A hub's limits and keepalive settings, for the adapter to map onto its runtime's options.
 *
 * @param hub The hub.
 * @returns The resolved limits.
 */
export function hubLimits<K extends object>(hub: Hub<K>): HubLimits {
  return registryOf(hub).limits;
}

/**
 * Tells the hub that the adapter refused an upgrade itself (a malformed handshake, its own
 * policy), for `hub.metrics()` and the log hook. The hub's own checks count themselves.
 *
 * @param hub The hub.
 * @param status The HTTP status answered.
 * @param why What was wrong, for the log.
 */
export function refusedUpgrade<K extends object>(hub: Hub<K>, status: number, why: string): void {
  registryOf(hub).refusedUpgrade(status, why);
}

/**
 * Waits until every socket the hub closed has finished its closing handshake (its adapter
 * reported `closed`), or `ms` passed. For a server's shutdown after `hub.close()`: a runtime
 * that stops listening may close the sockets it still holds with a code of its own (Deno's
 * `Deno.serve` sends 1001 "Server shutting down"), so without this wait a client could get the
 * runtime's code and reason instead of those given to `hub.close()`.
 *
 * @param hub The hub.
 * @param ms The longest wait (for peers that never answer a close frame).
 * @returns A promise that resolves when no closing handshake is pending, or the time is up.
 */
export function socketsClosed<K extends object>(hub: Hub<K>, ms: number): Promise<void> {
  return registryOf(hub).socketsClosed(ms);
}

/**
 * Copies what a session keeps of its upgrade request: call it before the upgrade (on Deno the
 * request is unusable after it). The copy keeps url, method and headers as strings and builds
 * the `Request` on first use: an idle session costs a fraction of what a `Request` does.
 *
 * @param req The upgrade request.
 * @param keys Initial session keys.
 * @param remoteAddr The peer's address, `""` where not known yet.
 * @returns The session's init record.
 */
export function copyRequest<K>(req: Request, keys: Partial<K> | undefined, remoteAddr: string): SessionInit<K> {
  return new RequestCopy(req, keys, remoteAddr);
}

/** Headers of the handshake itself, meaningless once it is done: not kept. */
const HANDSHAKE_ONLY = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"]);

/**
 * Headers are kept as one string of `name:value` lines (a header can hold neither a newline
 * nor, in its name, a colon). Reading them all has a cost on Deno that no copy avoids: Deno
 * keeps the upgraded request alive as long as its socket, with the full header list the read
 * fetched (about 2 KB per session).
 */
class RequestCopy<K> implements SessionInit<K> {
  remoteAddr: string;
  keys: Partial<K> | undefined;
  protocol = "";
  #url: string;
  #headers: string | undefined;
  #request: Request | undefined;

  constructor(req: Request, keys: Partial<K> | undefined, remoteAddr: string) {
    this.remoteAddr = remoteAddr;
    this.keys = keys;
    this.#url = req.url;
    const lines: string[] = [];
    req.headers.forEach((value, name) => {
      if (!HANDSHAKE_ONLY.has(name)) lines.push(`${name}:${value}`);
    });
    this.#headers = lines.join("\n"); // one flat string, not a rope of concatenations
  }

  get request(): Request {
    if (this.#request) return this.#request;
    const headers = new Headers();
    for (const line of this.#headers!.split("\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon), line.slice(colon + 1));
    }
    this.#headers = undefined;
    return this.#request = new Request(this.#url, { headers }); // an upgrade is a GET
  }
}
