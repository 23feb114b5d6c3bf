/**
 * The contract between the core and a runtime adapter: what the core needs of a socket,
 * and the entry points through which an adapter reports the socket's events.
 *
 * The core speaks only this contract, a subset of the WHATWG `WebSocket`, so it knows no
 * runtime. A Deno `WebSocket` satisfies it as it is; the Bun adapter wraps `ServerWebSocket`.
 *
 * @module
 */

/** The outbound side of a socket, as the core uses it. */
export interface HubSocket {
  /** Bytes queued by `send` and not yet written to the network. */
  readonly bufferedAmount: number;
  /**
   * Sends a text (string) or binary frame. May return a status: `0` means the runtime
   * dropped the message; any other value or `undefined` means it was queued.
   */
  send(data: string | Uint8Array): number | void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /**
   * Sends a ping. Present where the runtime lets a server ping and reports pongs; the hub
   * then runs its own keepalive (`pingInterval`, `pongWait`).
   */
  ping?(): void;
  /**
   * Native fan-out, where the runtime has it (Bun): subscribes the socket to a topic of the
   * runtime's pub/sub. A socket that offers `subscribe` must offer `unsubscribe` and `publish`
   * too; the hub then subscribes it to its hub-wide topic and to one topic per room it joins.
   */
  subscribe?(topic: string): void;
  /** Native fan-out: unsubscribes the socket from a topic. */
  unsubscribe?(topic: string): void;
  /**
   * Native fan-out: sends a frame to every subscriber of `topic` but this socket. Returns the
   * runtime's status: `0` when the message was dropped for some subscriber (or there was none),
   * `-1` when some subscriber is under backpressure, else the bytes sent.
   */
  publish?(topic: string, data: string | Uint8Array): number;
}

/**
 * A runtime's native fan-out for a whole server, installed on a hub by its adapter with
 * `hub.usePublisher`. The hub then sends hub-wide and room broadcasts as one `publish` each,
 * as long as every session's socket offers `subscribe` and nothing per session forbids it.
 */
export interface Publisher {
  /**
   * Sends a frame (text for a string, binary for bytes) to every socket subscribed to `topic`.
   * Returns `0` when the message was dropped for some subscriber (or there was none), `-1`
   * when some subscriber is under backpressure, else the bytes sent.
   */
  publish(topic: string, data: string | Uint8Array): number;
}

/** What an adapter knows about a connection before it becomes a session. */
export interface SessionInit<K> {
  /** A copy of the upgrade request (url and headers stay usable after the upgrade). */
  request: Request;
  /** The peer's address, `""` where the runtime does not tell. */
  remoteAddr: string;
  /** Initial session keys (from `onUpgrade` or `handleRequest`'s `keys`). */
  keys?: Partial<K>;
}

/** Adapter entry point: a frame arrived (text as string, binary as bytes). */
export const RECEIVE: unique symbol = Symbol("chorus.receive");
/** Adapter entry point: the runtime closed the socket with this code and reason. */
export const CLOSED: unique symbol = Symbol("chorus.closed");
/** Adapter entry point: the runtime reported a socket error. */
export const ERRORED: unique symbol = Symbol("chorus.errored");
/** Adapter entry point: a pong arrived. */
export const PONGED: unique symbol = Symbol("chorus.ponged");
