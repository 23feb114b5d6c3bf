// The bottom layer of the core: types only. The socket contract a runtime adapter implements
// (HubSocket, Publisher, SessionInit, SocketEvents, HubLimits: `chorus-ws/adapter` re-exports it),
// the hooks, the counters, and the small interfaces each core piece needs from the others, so no
// piece imports another's class. May import types only, from the leaves below it: `session.ts`,
// `types.ts`, `metrics.ts`, `broker.ts`, `protocol.ts`.

import type { Session } from "../session.ts";
import type { HubMetrics } from "../metrics.ts";

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
 * A server's native fan-out (Bun's `server.publish`), given to `attach` (in `chorus-ws/adapter`) with each of
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

/** What an adapter kept of a connection's upgrade request; make one with `copyRequest` (in `chorus-ws/adapter`). */
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

/** The handle an adapter reports a socket's events to, returned by `attach` (in `chorus-ws/adapter`). */
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

/** The hub's handlers, as set by `handleConnect` and its siblings. */
export interface Hooks<K extends object> {
  connect?: (s: Session<K>) => unknown;
  disconnect?: (s: Session<K>) => unknown;
  resume?: (s: Session<K>) => unknown;
  message?: (s: Session<K>, msg: string) => unknown;
  messageBinary?: (s: Session<K>, msg: Uint8Array) => unknown;
  sentMessage?: (s: Session<K>, msg: string) => unknown;
  sentMessageBinary?: (s: Session<K>, msg: Uint8Array) => unknown;
  pong?: (s: Session<K>) => unknown;
  error?: (s: Session<K>, err: Error) => unknown;
  close?: (s: Session<K>, code: number, reason: string) => unknown;
}

/** The counters of `hub.metrics()` (the rest of it are gauges read when asked). */
export type Counters = Omit<HubMetrics, "sessions" | "detached" | "brokerLatency">;

/** Resumable sessions (`HubOptions.resume`), resolved with their defaults. */
export interface ResumeLimits {
  /** How long a detached session waits for its client (ms). */
  readonly window: number;
  /** Most messages kept for one session. */
  readonly maxMessages: number;
  /** Most sessions of a node waiting for their clients at once. */
  readonly maxDetached: number;
}

/**
 * A stream of numbered messages to resumable sessions (see `src/protocol.ts`): the hub-wide one,
 * one per room, and one per session. Offsets increase within an epoch.
 */
export interface Stream {
  /** The id data frames carry (1: the session's own, 2: the hub's, rooms from 3). */
  readonly id: number;
  /** `"s"`, `"h"` or `"r:" + room`. */
  readonly key: string;
  /** Offsets of another epoch are not comparable. */
  readonly epoch: string;
  /** The last offset given. */
  offset: number;
  /** With a broker's streams: when the last message this node saw of it was appended (ms, the broker's clock). */
  time?: number;
}

/** What a connection needs of its hub. */
export interface ConnectionHost {
  /** The limits every send and receive is held to. */
  readonly limits: HubLimits;
  /**
   * How many native publishes were made. A native publish queues bytes on sockets behind the
   * sessions' backs, so a connection re-reads `bufferedAmount` when this changed.
   */
  readonly publishes: number;
  /** A connection the hub closed: its closing handshake is under way. */
  closeStarted(conn: object): void;
  /** A connection's socket reported its close. */
  closeEnded(conn: object): void;
  /** A connection's socket refused a subscription: from now on the loop reaches it. */
  demote(conn: object): void;
}

/**
 * What a connection reports its socket's events to: the session it carries, or the `chorus.v1`
 * handshake before there is one. `C` is the connection's own type.
 */
export interface ConnectionOwner<C> {
  /** A frame arrived (within `maxMessageSize`, where the owner's `limited` says so). */
  received(conn: C, data: string | Uint8Array): void;
  /** Whether frames past `maxMessageSize` are refused (else they go to `received` too). */
  readonly limited: boolean;
  /** A frame past `maxMessageSize` arrived, or the runtime closed the socket with 1009 for one. */
  tooBig(conn: C, closing: boolean): void;
  /** The socket closed. */
  closed(conn: C, code: number, reason: string): void;
  /** A pong arrived. */
  ponged(conn: C): void;
  /** The hub gives the connection up: no pong, a peer that stopped reading. */
  lost(conn: C, reason: string): void;
  /** A native publish of `size` bytes was refused for this connection (`queued` bytes wait). */
  refused(conn: C, size: number, queued: number): void;
  /** Keepalive: a tick at `now`, for an owner that sends heartbeats of its own every `interval`. */
  beat(now: number, interval: number): void;
  /** The native topics the connection is subscribed to for this owner. */
  topics(): Iterable<string>;
  /** Reports an error of the socket. */
  report(err: unknown): void;
}

/** What a session needs of its hub. `S` is the session core's own type. */
export interface SessionHost<K extends object, S> {
  /** The limits every session is held to. */
  readonly limits: HubLimits;
  /** `concurrentMessageHandling`. */
  readonly concurrent: boolean;
  /** The hub's handlers. */
  readonly hooks: Hooks<K>;
  /** What `hub.metrics()` counts. */
  readonly counters: Counters;
  /** Set from the first moment of `hub.close()`. */
  readonly closing: boolean;
  /** The session joined a room (it is in the room's members from now on). */
  join(s: S, room: string): void;
  /** The session left a room. */
  leave(s: S, room: string): void;
  /** The session leaves this node: out of the sessions and its rooms, before any hook sees the hub. */
  unregister(s: S): void;
  /** The native topic of the hub, or of a room, for this session's kind. */
  topic(s: S, room?: string): string;
  /** Reports an error to `handleError`. */
  report(s: S, err: unknown): void;
  /** A client did not keep up: its session closed, or its connection given up. */
  slowClient(s: S, code: number, message: string): void;
  /** A message over `maxMessageSize` closed the session. */
  tooBig(s: S): void;
  /** Runs the disconnect hook; resolves when it is done. */
  disconnected(s: S): Promise<void> | undefined;
}

/** What a runtime adapter reaches of a hub (through `chorus-ws/adapter`). */
export interface AdapterHost<K> {
  /** The hub's limits, for the adapter to map onto its runtime. */
  readonly limits: HubLimits;
  /** An open socket becomes a session (or, with `chorus.v1`, starts its handshake). */
  attach(socket: HubSocket, init: SessionInit<K>, publisher: Publisher | undefined): SocketEvents | undefined;
  /** An upgrade was refused (by the hub's checks, `onUpgrade`, the Hono middleware or an adapter). */
  refusedUpgrade(status: number, why: string): void;
  /** Resolves when no closing handshake is pending, or after `ms`. */
  socketsClosed(ms: number): Promise<void>;
}
