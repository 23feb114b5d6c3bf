/**
 * The few error classes chorus users catch.
 *
 * @module
 */

// A leaf. May import: nothing.

/** Thrown by a broadcast or `handleRequest` on a hub that has been closed. */
export class HubClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was refused. */
  constructor(message = "Hub is closed") {
    super(message);
    this.name = "HubClosedError";
  }
}

/** Thrown by `write` or `close` on a session that is already closed. */
export class SessionClosedError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was refused. */
  constructor(message = "Session is closed") {
    super(message);
    this.name = "SessionClosedError";
  }
}

/**
 * Passed to `handleError` when a write is refused because the session's outbound
 * buffer would exceed `maxBufferedAmount` (or the runtime dropped it for backpressure).
 */
export class MessageBufferFullError extends Error {
  /**
   * Creates the error.
   *
   * @param message What was dropped. */
  constructor(message = "Message buffer is full") {
    super(message);
    this.name = "MessageBufferFullError";
  }
}

/**
 * Passed to the hub's broker error hook (`handleBrokerError`) when a message from the broker is
 * refused: larger than the broker's limit, not in chorus' wire format, or of an unknown version.
 */
export class BrokerMessageError extends Error {
  /**
   * Creates the error.
   *
   * @param message Why the message was refused. */
  constructor(message = "Malformed broker message") {
    super(message);
    this.name = "BrokerMessageError";
  }
}
