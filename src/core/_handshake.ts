// The `chorus.v1` handshake: a connection that answered the subprotocol says whether it starts a
// new session or resumes one (with its credential and position) before there is a session. Owns
// such connections until then: the hello, the deadline, the request, and a claim from the broker
// when the credential is not of this node. Imports the contracts, the connection's type, the
// protocol and the resume module's types.

import type { Connection } from "./_connection.ts";
import type { ConnectionOwner, ResumeLimits, SessionInit } from "./_contracts.ts";
import type { BrokerStreams, SessionState } from "../broker.ts";
import { decodeFrame, encodeControl, isCredential, type Position } from "../protocol.ts";
import type { ResumableSession } from "./resume/_resumable.ts";

/** How long a `chorus.v1` connection may take to say whether it is new or resumes (ms). */
const HANDSHAKE_WAIT = 10_000;
const HELLO = encodeControl({ t: "hello", v: 1 });

/** What the handshake needs of its hub. */
export interface HandshakeHost<K extends object> {
  /** Whether resumable sessions are on. */
  readonly resumable: boolean;
  /** The broker's streams, when the hub shares them with other nodes. */
  readonly streams: BrokerStreams | undefined;
  /** Set from the first moment of `hub.close()`. */
  readonly closing: boolean;
  /** `resume`, resolved (read only with `resume` on). */
  readonly resume: ResumeLimits;
  /** Resume credentials, each naming its session. */
  readonly tokens: Map<string, ResumableSession<K>>;
  /** This node's live resumable session of an id, if any. */
  held(id: string): ResumableSession<K> | undefined;
  /** A connection becomes a new session. */
  open(conn: Connection, init: SessionInit<K>, v1: boolean): void;
  /** A session claimed from the broker: registered here at once, continued once its streams are read. */
  recoverClaimed(conn: Connection | undefined, init: SessionInit<K>, state: SessionState, pos: Position): void;
  /** The broker's streams failed. */
  failed(err: unknown): void;
}

/**
 * The welcome of a hub that keeps nothing (no `resume`): an empty credential, no heartbeat frames
 * (the runtime's pings keep the connection), plain data frames from here on.
 */
export function plainWelcome(max: number): string {
  const limit = Number.isFinite(max) ? { max } : {};
  return encodeControl({ t: "welcome", resumed: false, token: "", recv: 0, hb: 0, ...limit });
}

/** The `chorus.v1` connections of one hub that have no session yet. */
export class Handshakes<K extends object> implements ConnectionOwner<Connection> {
  /** The handshake's frames are held to `maxMessageSize` too (Deno has no limit of its own). */
  readonly limited = true;
  readonly #host: HandshakeHost<K>;
  /** Connections that have not said yet whether they are new or resume. */
  readonly #pending = new Map<Connection, { init: SessionInit<K>; timer: ReturnType<typeof setTimeout> }>();
  /** Connections whose session is being claimed from the broker. */
  readonly #claiming = new Set<Connection>();
  /** Credentials being claimed from the broker (bounded by the connections claiming). */
  readonly #tokens = new Set<string>();

  /** @param host The hub. */
  constructor(host: HandshakeHost<K>) {
    this.#host = host;
  }

  /** A `chorus.v1` connection opened: the hub says hello and waits for the client's request. */
  start(conn: Connection, init: SessionInit<K>): void {
    const timer = setTimeout(() => this.#refuse(conn, "No chorus.v1 request"), HANDSHAKE_WAIT);
    this.#pending.set(conn, { init, timer });
    conn.owner = this;
    conn.sendControl(HELLO);
  }

  /** A frame of a connection in its handshake: the client's request. */
  received(conn: Connection, data: string | Uint8Array): void {
    const init = this.#pending.get(conn)?.init;
    if (!init) return;
    const frame = typeof data === "string" ? decodeFrame(data) : undefined;
    const request = frame?.kind === "control" ? frame.message : undefined;
    if (request?.t !== "new" && request?.t !== "resume") {
      this.#refuse(conn, "Expected a chorus.v1 request");
      return;
    }
    this.#end(conn);
    const host = this.#host;
    // An empty or malformed credential names no session: a fresh one, never someone else's.
    if (request.t === "resume" && host.resumable && isCredential(request.token)) {
      // With a broker's streams every resume is a claim in the broker, this node's sessions too:
      // one holder at a time across nodes, a credential presented twice wins once.
      if (host.streams) {
        this.#claim(host.streams, conn, init, request.token, request.pos);
        return;
      }
      // A forged, used or expired credential gets a fresh session, never someone else's.
      if (this.#resumeHere(conn, request.token, request.pos)) return;
    }
    host.open(conn, init, true);
  }

  /** A handshake frame past `maxMessageSize`: the connection closes with 1009, as a session's would. */
  tooBig(conn: Connection): void {
    this.#end(conn);
    conn.close(1009, "Message too big");
  }

  /** A connection closed during its handshake. */
  closed(conn: Connection): void {
    this.#end(conn);
    this.#claiming.delete(conn);
  }

  ponged(): void {}

  lost(): void {}

  refused(): void {}

  beat(): void {}

  topics(): Iterable<string> {
    return [];
  }

  report(err: unknown): void {
    console.error("chorus: socket:", err);
  }

  /** Whether this node is claiming the session `token` names (its saves wait for the answer). */
  claiming(token: string): boolean {
    return this.#tokens.has(token);
  }

  /** Closes the connections still in their handshake (`hub.close()`). */
  closeAll(code: number, reason: string): void {
    for (const conn of [...this.#pending.keys()]) {
      this.#end(conn);
      conn.close(code, reason);
    }
    for (const conn of [...this.#claiming]) {
      this.#claiming.delete(conn);
      conn.close(this.#host.streams ? 1012 : code, reason);
    }
  }

  /** Claims the session a credential names from the broker, and recovers it here. */
  #claim(streams: BrokerStreams, conn: Connection, init: SessionInit<K>, token: string, pos: Position): void {
    const host = this.#host;
    this.#claiming.add(conn);
    if (this.#tokens.has(token)) {
      // Presented twice at once: the first presentation decides; this one tries again later.
      this.#claiming.delete(conn);
      conn.close(1013, "Try again later");
      return;
    }
    this.#tokens.add(token);
    streams.claimSession(token).then(
      (state) => {
        const open = this.#claiming.delete(conn); // false: the client left meanwhile
        this.#tokens.delete(token);
        if (host.closing) {
          if (open) conn.close(1012, "Server restarting");
          if (state) streams.saveSession(state, host.resume.window).catch(() => {}); // give it back
          return;
        }
        if (!state) {
          if (open) this.#unclaimed(streams, conn, init, token, pos);
          return;
        }
        // The session is this node's: it continues here if the credential is still its (never a
        // second core for one id); a stale one (used here meanwhile) gets a fresh session.
        const here = host.held(state.id);
        if (here) {
          here.saveSoon(); // the claim took its credential's index: written again
          if (host.tokens.get(token) !== here) {
            if (open) host.open(conn, init, true);
          } else if (open) this.#continue(here, conn, token, pos);
          return;
        }
        host.recoverClaimed(open ? conn : undefined, init, state, pos);
      },
      (err) => {
        const open = this.#claiming.delete(conn);
        this.#tokens.delete(token);
        host.failed(err);
        // The broker failed: a session of this node continues here; for any other the client
        // tries again later with the same credential (1013), its session kept for it.
        if (open && !host.closing && !this.#resumeHere(conn, token, pos)) conn.close(1013, "Try again later");
      },
    );
  }

  /**
   * A claim found nothing. A session this node still holds under that credential goes on here
   * if the broker keeps no state for it at all (the broker lost it: a restart); any state means
   * another node took it, and the connection gets a fresh session.
   */
  #unclaimed(streams: BrokerStreams, conn: Connection, init: SessionInit<K>, token: string, pos: Position): void {
    const host = this.#host;
    const here = host.tokens.get(token);
    if (!here || here.ended || !streams.hasSession) {
      host.open(conn, init, true);
      return;
    }
    this.#claiming.add(conn);
    streams.hasSession(here.id).then(
      (kept) => {
        if (!this.#claiming.delete(conn) || host.closing) return;
        if (kept || here.ended || !this.#resumeHere(conn, token, pos)) host.open(conn, init, true);
      },
      (err) => {
        if (!this.#claiming.delete(conn) || host.closing) return;
        host.failed(err);
        conn.close(1013, "Try again later");
      },
    );
  }

  /** Resumes a session of this node its credential names; false when it names none here. */
  #resumeHere(conn: Connection, token: string, pos: Position): boolean {
    const s = this.#host.tokens.get(token);
    if (!s || s.ended) return false;
    this.#continue(s, conn, token, pos);
    return true;
  }

  /**
   * Continues `s` on `conn`; but a credential just used on a connection that is still open (its
   * client has not confirmed the new one) is not taken from it: try again later (1013). A client
   * whose welcome was lost gets it once the hub has let that connection go.
   */
  #continue(s: ResumableSession<K>, conn: Connection, token: string, pos: Position): void {
    if (s.conn && token === s.r.usedToken && token !== s.r.token) conn.close(1013, "Try again later");
    else s.resumeOn(conn, token, pos);
  }

  #refuse(conn: Connection, reason: string): void {
    if (!this.#pending.has(conn)) return;
    this.#end(conn);
    conn.close(1002, reason);
  }

  #end(conn: Connection): void {
    clearTimeout(this.#pending.get(conn)?.timer);
    this.#pending.delete(conn);
  }
}
