/**
 * One connection of `chorus-ws/client`: its socket, the `chorus.v1` handshake (hello, request,
 * welcome and its confirmation), the frames both ways, position acknowledgements, the heartbeat
 * watchdog and the connect timeout. What outlives a connection (what the server is, the credential,
 * the inbox and the outbox) is the client's, shared here; reconnecting is the client's job.
 * Internal.
 *
 * @module
 */

import { decodeFrame, encodeControl, PROTOCOL, type WelcomeMessage } from "./protocol.ts";
import { type ClientSettings, MAX_TIMER_DELAY } from "./_client_options.ts";
import type { Inbox } from "./_client_inbox.ts";
import type { Outbox, Payload } from "./_client_outbox.ts";

/** Data frames received before the client acknowledges at once. */
const ACK_EVERY = 32;
/** How long the client may hold back an acknowledgement, in milliseconds. */
const ACK_DELAY = 100;

/** What outlives a connection. */
export interface Shared {
  /** What the server turned out to be; fixed by the first connection that opens. */
  kind: "unknown" | "chorus" | "plain";
  /** The credential of the last welcome. */
  token: string | undefined;
  /** Whether the last welcome's frames are numbered (false: a hub that keeps nothing). */
  framed: boolean;
  readonly inbox: Inbox;
  readonly outbox: Outbox;
}

/** What a connection tells the client. */
export interface ConnectionEvents {
  /** It may carry messages; `dropped`: queued messages larger than the hub takes, left out. */
  open(resumed: boolean, dropped: { data: Payload; size: number }[]): void;
  /** A message. */
  message(data: string | ArrayBuffer): void;
  /**
   * It ended. `how`: `"handshake"`, the socket never opened (and was not given up on); `"late"`,
   * a connection taken for a plain server's said hello after all (a slow chorus hub): connect
   * again at once, offering `chorus.v1`; `"lost"`, anything else.
   */
  lost(e: CloseEvent, how: "handshake" | "late" | "lost"): void;
}

/** One socket and its handshake. */
export class Connection {
  readonly ws: WebSocket;
  /** Whether this connection offered `chorus.v1`. */
  readonly offeredChorus: boolean;
  readonly #shared: Shared;
  readonly #on: ConnectionEvents;
  /** Where the connection is: socket opening, waiting for hello, for welcome, or ready. */
  #phase: "opening" | "hello" | "welcome" | "open" = "opening";
  #connectTimer: ReturnType<typeof setTimeout> | undefined;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #deadAfter = 0;
  #seenAt = 0;
  #done = false;
  readonly #connectTimeout: number;
  readonly #maxQueued: number;
  /**
   * Taken for a plain server because no hello came in time: what was sent on it since, kept until
   * its first frame tells (a late hello: they go back to the queue for the next connection).
   */
  #guessed: Payload[] | undefined;

  /**
   * Opens a socket.
   *
   * @param url The server's URL.
   * @param chorus Whether to offer `chorus.v1`.
   * @param o The client's settings.
   * @param shared What outlives the connection.
   * @param on Where its events go.
   */
  constructor(url: string | URL, chorus: boolean, o: ClientSettings, shared: Shared, on: ConnectionEvents) {
    this.offeredChorus = chorus;
    this.#shared = shared;
    this.#on = on;
    shared.inbox.connection();
    shared.framed = true;
    const ws = this.ws = new o.WebSocket(url, chorus ? [PROTOCOL, ...o.protocols] : o.protocols);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => this.#socketOpened();
    ws.onmessage = (e) => this.#received(e.data);
    ws.onclose = (e) => this.#lost(e, false);
    ws.onerror = () => {}; // a close event follows
    this.#connectTimeout = o.connectTimeout;
    this.#maxQueued = o.maxQueued;
    this.#connectTimer = setTimeout(() => this.#handshakeTimedOut(), o.connectTimeout);
  }

  /** Whether it may carry messages. */
  get open(): boolean {
    return this.#phase === "open";
  }

  /**
   * Forgets the socket and its timers; closes it if it is still up and `close` says so.
   *
   * @param close Close the socket (without a status code: a hub keeps the session).
   * @param code A close code to send instead (a final close).
   * @param reason Its reason.
   */
  drop(close: boolean, code?: number, reason?: string): void {
    this.#done = true;
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#ackTimer);
    clearTimeout(this.#watchdog);
    const ws = this.ws;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    if (!close || ws.readyState > 1) return;
    try {
      // Without a status code the server sees 1005: not a clean end, so a hub keeps the session
      // for the client's next connection; a final close always sends one.
      if (code === undefined) ws.close();
      else ws.close(code, reason);
    } catch {
      // already failing
    }
  }

  #socketOpened(): void {
    this.#seenAt = Date.now();
    if (this.offeredChorus && this.ws.protocol === PROTOCOL) {
      // The handshake gets its own connectTimeout: a slow open must not make a late hello look
      // like a plain server's silence.
      this.#phase = "hello";
      clearTimeout(this.#connectTimer);
      this.#connectTimer = setTimeout(() => this.#handshakeTimedOut(), this.#connectTimeout);
    } else if (this.#shared.kind === "chorus") this.#giveUp("the server no longer speaks chorus.v1");
    else this.#openPlain();
  }

  /**
   * Sends a message as it is (a plain server, or a hub that keeps nothing).
   *
   * @param data The message.
   */
  sendPlain(data: Payload): void {
    if (this.#guessed) {
      if (this.#guessed.length < this.#maxQueued) this.#guessed.push(data);
      else this.#guessed = undefined; // too long a guess: plain for good
    }
    this.ws.send(data as string | Uint8Array<ArrayBuffer>);
  }

  #received(data: unknown): void {
    this.#seenAt = Date.now();
    if (typeof data !== "string" && !(data instanceof ArrayBuffer)) return; // a Blob: binaryType was changed
    const shared = this.#shared;
    if (this.#guessed) {
      const sent = this.#guessed;
      this.#guessed = undefined;
      const frame = typeof data === "string" ? decodeFrame(data) : undefined;
      if (frame?.kind === "control" && frame.message.t === "hello") {
        // A chorus hub after all, only slow: what went out as plain frames goes again, numbered.
        shared.kind = "unknown";
        shared.outbox.requeue(sent);
        this.drop(true);
        this.#on.lost(new CloseEvent("close", { code: 1006, reason: "a late hello", wasClean: false }), "late");
        return;
      }
    }
    if ((shared.kind === "plain" || !shared.framed) && this.#phase === "open") {
      this.#on.message(typeof data === "string" ? data : data.slice(0));
      return;
    }
    const frame = decodeFrame(data);
    switch (this.#phase) {
      case "hello":
        if (frame?.kind === "control" && frame.message.t === "hello") {
          this.#phase = "welcome";
          // A position too long to present (more streams than a request may name): a new session.
          const pos = shared.token === undefined ? undefined : shared.inbox.position();
          this.ws.send(encodeControl(pos ? { t: "resume", token: shared.token!, pos } : { t: "new" }));
        } else if (shared.kind === "chorus") {
          this.#giveUp("no hello from the server");
        } else {
          // The server answered chorus.v1 without speaking it (Bun echoes the first offered).
          this.#openPlain();
          if (!this.#done) this.#on.message(typeof data === "string" ? data : data.slice(0));
        }
        return;
      case "welcome":
        if (frame?.kind === "control" && frame.message.t === "welcome") this.#welcomed(frame.message);
        else if (frame?.kind === "ping") this.ws.send(shared.inbox.ack());
        return; // nothing else may come before welcome
      case "open":
        if (!frame) return;
        if (frame.kind === "data") {
          const seen = shared.inbox.data(frame.id, frame.n);
          if (seen === "undeclared") return this.#giveUp(`a message of undeclared stream ${frame.id}`);
          if (shared.inbox.unacked >= ACK_EVERY) this.#ack();
          else this.#ackTimer ??= setTimeout(() => this.#ack(), ACK_DELAY);
          if (seen !== "new") return;
          const p = frame.payload;
          this.#on.message(typeof p === "string" ? p : p.slice().buffer as ArrayBuffer);
        } else if (frame.kind === "control" && frame.message.t === "stream") {
          if (!shared.inbox.declare(frame.message)) this.#giveUp("too many streams declared");
        } else if (frame.kind === "control" && frame.message.t === "end") {
          shared.inbox.end(frame.message.key);
          // At once: frames of a stream the session left cannot be told apart once sent again.
          if (shared.inbox.moved) this.#ack();
        } else if (frame.kind === "ack") {
          shared.outbox.acked(frame.n);
        } else if (frame.kind === "ping") {
          this.#ack();
        }
        return;
    }
  }

  #welcomed(w: WelcomeMessage): void {
    clearTimeout(this.#connectTimer);
    const shared = this.#shared;
    shared.kind = "chorus";
    this.#phase = "open";
    // An empty credential: the hub keeps nothing (no resume), and its frames are plain.
    const framed = shared.framed = w.token !== "";
    shared.token = framed ? w.token : undefined;
    shared.outbox.max = w.max;
    // A new session: offsets and numbers start over.
    if (!w.resumed) shared.inbox.forget();
    const { frames, dropped } = shared.outbox.restart(w.resumed, w.recv, framed);
    // Confirms the welcome at once: the hub retires the credential presented only on seeing it.
    if (framed) this.ws.send(shared.inbox.ack());
    // Heartbeat frames come only with numbered frames (a hub that keeps nothing sends none).
    if (framed && w.hb > 0) {
      this.#deadAfter = 2 * w.hb + 1000;
      this.#watch();
    }
    for (const f of frames) this.ws.send(f as string | Uint8Array<ArrayBuffer>);
    this.#on.open(w.resumed, dropped);
  }

  #openPlain(guess = false): void {
    clearTimeout(this.#connectTimer);
    this.#shared.kind = "plain";
    this.#phase = "open";
    if (guess) this.#guessed = [];
    for (const data of this.#shared.outbox.drain()) this.sendPlain(data);
    this.#on.open(false, []);
  }

  /** Acknowledges the positions that moved (`r` alone when none did, e.g. to a heartbeat). */
  #ack(): void {
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    if (!this.#done && this.ws.readyState === 1) this.ws.send(this.#shared.inbox.ack());
  }

  /** Gives up on the connection when no frame arrived for `2 * hb + 1000` ms. */
  #watch(): void {
    const left = this.#seenAt + this.#deadAfter - Date.now();
    // At most setTimeout's limit at a time: a longer delay would fire at once, over and over.
    if (left > 0) this.#watchdog = setTimeout(() => this.#watch(), Math.min(left, MAX_TIMER_DELAY));
    else this.#giveUp("heartbeat timeout");
  }

  #handshakeTimedOut(): void {
    // Opened, answered chorus.v1, said nothing: a plain server that echoes subprotocols.
    if (this.#phase === "hello" && this.#shared.kind === "unknown") this.#openPlain(true);
    else this.#giveUp("connect timeout");
  }

  /** Drops a socket that failed the client, as if the connection had been lost. */
  #giveUp(reason: string): void {
    this.#lost(new CloseEvent("close", { code: 1006, reason, wasClean: false }), true);
  }

  #lost(e: CloseEvent, givenUp: boolean): void {
    if (this.#done) return;
    // Deno reports a connection that ended without a close frame with code 0: that is a 1006.
    if (!(e.code >= 1000 && e.code <= 4999)) {
      e = new CloseEvent("close", { code: 1006, reason: e.reason, wasClean: false });
    }
    const failedHandshake = !givenUp && this.#phase === "opening";
    this.drop(givenUp);
    this.#on.lost(e, failedHandshake ? "handshake" : "lost");
  }
}
