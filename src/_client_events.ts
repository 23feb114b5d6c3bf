/**
 * The events and the small public types of `chorus-ws/client`, re-exported by `src/client.ts`.
 * Internal file; the public names are those of `chorus-ws/client`.
 *
 * @module
 */

/** What a `ChorusClient` is doing. */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

/** A message for `ChorusClient.send`: a string goes as a text frame, bytes as binary. */
export type ClientMessage = string | ArrayBuffer | ArrayBufferView;

/** The `open` event: fired on every connection, once it may carry messages. */
export class ChorusOpenEvent extends Event {
  /**
   * Whether the session continued (nothing was lost either way). `false` on the first connection,
   * when the server started a new session (the app should reload its state), and always against
   * a plain server.
   */
  readonly resumed: boolean;

  /**
   * Makes an `open` event.
   *
   * @param resumed Whether the session continued.
   */
  constructor(resumed: boolean) {
    super("open");
    this.resumed = resumed;
  }
}

/** The `reconnecting` event: fired before each wait for a new connection. */
export class ChorusReconnectingEvent extends Event {
  /**
   * How many attempts in a row this is: 1 for the first since the last healthy connection (one
   * that stayed open `minUptime` ms), so the backoff grows while connections fail or drop at once.
   */
  readonly attempt: number;
  /** How long the client waits before the attempt, in milliseconds. */
  readonly delay: number;

  /**
   * Makes a `reconnecting` event.
   *
   * @param attempt The attempt's number.
   * @param delay The wait before it.
   */
  constructor(attempt: number, delay: number) {
    super("reconnecting");
    this.attempt = attempt;
    this.delay = delay;
  }
}

/**
 * The `dropped` event: a message `send()` had queued could not be sent because it is larger than
 * the hub takes, which the client learns from the hub's welcome. `send()` throws a `RangeError` for
 * such a message once the limit is known; this event tells of one queued before the first welcome
 * (or kept for a hub that then took less). The connection is not affected.
 */
export class ChorusDroppedEvent extends Event {
  /** The message: a string, or an `ArrayBuffer` for bytes. */
  readonly data: string | ArrayBuffer;
  /** Why: a `RangeError` naming the frame's size and the hub's limit. */
  readonly error: RangeError;

  /**
   * Makes a `dropped` event.
   *
   * @param data The message left out.
   * @param error Why.
   */
  constructor(data: string | ArrayBuffer, error: RangeError) {
    super("dropped");
    this.data = data;
    this.error = error;
  }
}

/** The events of a `ChorusClient`, by name. */
export interface ChorusClientEventMap {
  /** A connection is ready (after the handshake, when the server speaks `chorus.v1`). */
  open: ChorusOpenEvent;
  /** A message: a string, or an `ArrayBuffer` for a binary one. */
  message: MessageEvent<string | ArrayBuffer>;
  /** The connection is gone and the client waits `delay` ms before its next attempt. */
  reconnecting: ChorusReconnectingEvent;
  /** A queued message was larger than the hub takes: left out, the connection goes on. */
  dropped: ChorusDroppedEvent;
  /**
   * The client stopped for good (fired once): `close()`, a final close code from the server, or a
   * refused upgrade (code 4000 + the HTTP status, the answer's text as `reason`).
   */
  close: CloseEvent;
}
