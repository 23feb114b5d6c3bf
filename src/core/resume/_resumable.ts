// A resumable session (`HubOptions.resume`, a `chorus.v1` client): a session that numbers what it
// sends in streams, keeps it until its client has it, outlives a lost connection for the resume
// window, and continues on the client's next connection. Imports the session core, the
// contracts, the protocol and the resume module's own pieces (state, kept frames, saves).

import type { Connection } from "../_connection.ts";
import type { SessionInit, Stream } from "../_contracts.ts";
import { SessionCore } from "../_session.ts";
import type { SessionState } from "../../broker.ts";
import {
  dataOverhead,
  decodeFrame,
  encodeControl,
  encodeData,
  isCredential,
  PING,
  type Position,
} from "../../protocol.ts";
import { randomString } from "../_util.ts";
import { clientHas, keepFrame } from "./_keep.ts";
import { ack, saveNow, saveSoon } from "./_saves.ts";
import { ACK_EVERY, ACK_WITHIN, HANDOVER_WAIT, type ResumeHost, ResumeState } from "./_state.ts";

/** A resumable session of this node. */
export class ResumableSession<K extends object> extends SessionCore<K> {
  readonly r: ResumeState = new ResumeState();
  readonly #host: ResumeHost<K>;

  /**
   * @param host The hub.
   * @param init What the session keeps of its first upgrade request.
   * @param fresh A new session (not one claimed from the broker): it starts following the shared streams now.
   * @param id A claimed session's id.
   */
  constructor(host: ResumeHost<K>, init: SessionInit<K>, fresh: boolean, id?: string) {
    super(host, init, id);
    this.#host = host;
    if (fresh && host.streams) {
      // Where a new session starts following the shared streams, for any node to continue it.
      const hub = host.book.hubStream;
      this.r.from = { h: [hub.epoch, hub.offset, host.book.lastSeq], [`s:${this.id}`]: ["", 0, 0] };
    }
  }

  override get framed(): boolean {
    return true;
  }

  /** A session claimed from the broker takes its state (the hub then joins its rooms). */
  restore(state: SessionState): void {
    const r = this.r;
    r.received = state.received;
    // The credential the client presented: valid until the client shows it has the next one
    // (a welcome lost on the way is tried again with it, here or on any node).
    if (isCredential(state.token)) r.token = r.usedToken = state.token;
    r.claimed = true;
    r.from = { ...state.from };
    try {
      const keys = JSON.parse(state.keys);
      if (keys && typeof keys === "object") this.keys = Object.assign(Object.create(null), keys);
    } catch {
      // keys that were not JSON stay behind
    }
  }

  /** Starts the session on `conn` after its streams were read (see `recover`), or waits for its client. */
  continueOn(conn: Connection | undefined): void {
    const host = this.#host;
    host.counters.resumes++;
    if (!conn) {
      if (this.r.token !== undefined) host.tokens.set(this.r.token, this);
      this.#startWindow();
      this.saveSoon();
      return;
    }
    if (this.r.usedToken !== undefined) host.tokens.set(this.r.usedToken, this);
    this.conn = conn;
    conn.owner = this;
    host.adopt(conn, this);
    this.welcome(true);
    if (!this.#sendKept(conn)) return;
    this.saveSoon();
    const onResume = host.hooks.resume;
    if (onResume) this.call(onResume, undefined);
  }

  /** `hub.close()` with a broker's streams: the state goes to the broker, the client to another node (1012). */
  async handOver(): Promise<void> {
    const r = this.r;
    // From now on the client's messages are left to the next node (unacknowledged, it sends them
    // again there), and so are those still queued; the one a handler is taking is finished here.
    r.handingOver = true;
    if (this.busy) await new Promise<void>((resolve) => (r.whenIdle = resolve, setTimeout(resolve, HANDOVER_WAIT)));
    r.received = this.taken();
    this.dropQueue();
    try {
      await this.#saveNow();
    } catch (err) {
      this.#host.book.failed(err); // a broker fault: its client gets a new session elsewhere
    }
    this.leaveNode("Server restarting", 1012);
  }

  /** The last of the client's numbers a handler took (those queued behind a busy handler are not). */
  taken(): number {
    return this.r.received - this.queued;
  }

  override keysChanged(): void {
    this.saveSoon();
  }

  /** Keepalive: a heartbeat frame every `interval`, for its client to tell a dead connection. */
  override beat(now: number, interval: number): void {
    const r = this.r;
    if (now - r.beatAt < interval) return;
    r.beatAt = now;
    this.conn?.sendControl(PING);
  }

  /** Keeps a numbered frame for a resumable session and sends it if it is connected. */
  deliverFrame(
    stream: Stream,
    offset: number,
    frame: string | Uint8Array,
    frameSize: number,
    payload: string | Uint8Array,
  ): void {
    if (!this.keep(stream, offset, frame, frameSize)) return;
    const conn = this.conn;
    if (!conn) return;
    if (conn.send(frame, frameSize)) this.sent(payload, frameSize - dataOverhead(stream.id, offset));
    else this.lost(conn, "Message buffer full");
  }

  /** Keeps a numbered frame until the client has it (see `keepFrame`); false: not kept. */
  keep(stream: Stream, offset: number, frame: string | Uint8Array, frameSize: number): boolean {
    return keepFrame(this.#host, this, stream, offset, frame, frameSize);
  }

  /** A message of the session's own stream (`write`, `broadcastFilter`, `broadcastMultiple`). */
  protected override writeOwn(payload: string | Uint8Array, size: number): void {
    const host = this.#host;
    const streams = host.streams;
    if (streams) {
      // Kept by the broker first, so any node can give it to the client; replies come in order.
      streams.appendOwn(this.id, payload, host.resume.maxMessages).then(
        (at) => this.#deliverOwnAt(this.#ownAt(at.epoch), at.offset, payload, size),
        (err) => {
          // Not in the broker's stream: not sent (no node could give it again). Counted, reported.
          host.counters.brokerDropped++;
          host.book.failed(err);
        },
      );
      return;
    }
    const own = this.#own();
    const offset = ++own.offset;
    this.deliverFrame(own, offset, encodeData(own.id, offset, payload), size + dataOverhead(own.id, offset), payload);
  }

  /** Sends a message of the session's own stream (`broadcastFilter`, `broadcastMultiple`). */
  deliverOwn(payload: string | Uint8Array, size: number): void {
    this.writeOwn(payload, size);
  }

  protected override joined(room: string): void {
    const stream = this.#host.book.roomStream(room);
    this.#declare(stream, stream.offset); // its messages from now on are the session's
    const r = this.r;
    if (r.from) {
      r.from[`r:${room}`] = [stream.epoch, stream.offset, this.#host.book.lastSeq];
      this.saveSoon();
    }
  }

  protected override left(room: string): void {
    const r = this.r;
    if (r.from) {
      delete r.from[`r:${room}`];
      this.saveSoon();
    }
    this.conn?.sendControl(encodeControl({ t: "end", key: `r:${room}` }));
  }

  /**
   * Answers a `chorus.v1` request: a new credential, the client's last number, the heartbeat;
   * then declares the session's streams.
   */
  welcome(resumed: boolean): void {
    const host = this.#host;
    const conn = this.conn!;
    const r = this.r;
    if (r.token !== undefined && r.token !== r.usedToken) host.tokens.delete(r.token);
    const token = r.token = randomString(16);
    host.tokens.set(token, this);
    conn.sendControl(
      encodeControl({
        t: "welcome",
        resumed,
        token,
        recv: r.received,
        hb: host.limits.pingInterval,
        ...(Number.isFinite(host.limits.maxMessageSize) ? { max: host.limits.maxMessageSize } : {}),
      }),
    );
    r.ackedFrames = 0;
    this.saveSoon(); // the new credential, for any node
    // A new session follows the hub's stream from now on.
    const book = host.book;
    this.#declare(this.#own(), resumed ? undefined : 0);
    this.#declare(book.hubStream, resumed ? undefined : book.hubStream.offset);
    if (this.rooms) { for (const room of this.rooms) this.#declare(book.roomStream(room)); }
    // Streams of older epochs whose frames are still kept: their ids, for the frames that follow.
    const current = new Set([
      this.#own().id,
      book.hubStream.id,
      ...[...this.rooms ?? []].map((room) => book.roomStream(room).id),
    ]);
    for (const stream of r.kept?.streamsKept() ?? []) if (!current.has(stream.id)) this.#declare(stream);
  }

  /**
   * The client came back with a credential of this session: the session continues on `conn`.
   * The welcome goes first, then every kept message past the client's position, in order, then
   * `handleResume`.
   */
  resumeOn(conn: Connection, token: string, pos: Position): void {
    const host = this.#host;
    const old = this.conn;
    if (old) {
      // The credential came back on another connection while this one looked alive: the client
      // left it, or someone else presented its credential — 1001, so a client still there
      // reconnects and learns where its session went, rather than stopping for good.
      host.release(old);
      old.close(1001, "Resumed on another connection");
      old.owner = undefined;
    }
    const r = this.r;
    if (r.expiry !== undefined) host.detached(this, false);
    host.counters.resumes++;
    clearTimeout(r.expiry);
    r.expiry = undefined;
    if (r.usedToken !== undefined && r.usedToken !== token) host.tokens.delete(r.usedToken);
    r.usedToken = token;
    this.conn = conn;
    conn.owner = this;
    host.adopt(conn, this);
    r.kept?.forget(
      pos,
      (key, epoch) => key === "s" ? (r.own?.epoch === epoch ? r.own.id : undefined) : host.book.idOf(key, epoch),
    );
    this.welcome(true);
    if (!this.#sendKept(conn)) return;
    const onResume = host.hooks.resume;
    if (onResume) this.call(onResume, undefined);
  }

  /** A frame from the client of a resumable session. */
  override received(_conn: Connection, data: string | Uint8Array): void {
    if (this.ended) return;
    const frame = decodeFrame(data);
    if (!frame || frame.kind === "control" || frame.kind === "ping" || (frame.kind === "data" && frame.id !== 0)) {
      this.end(1002, "Malformed chorus.v1 frame", false);
      return;
    }
    const r = this.r;
    if (r.handingOver && frame.kind === "data") return; // for the next node
    if (r.usedToken !== undefined) {
      // The client spoke on its new connection: it has the new credential, the used one is dead
      // (here, and in the broker once the state is saved with the new one).
      if (r.usedToken !== r.token) this.#host.tokens.delete(r.usedToken);
      r.usedToken = undefined;
      this.saveSoon();
    }
    if (frame.kind === "ack" || frame.kind === "received") {
      clientHas(r, frame);
      return;
    }
    if (frame.n <= r.received) return; // sent again after a resume: it arrived before
    if (r.claimed) {
      // The first message on another node: the node before had taken (and acknowledged) those
      // before it, perhaps after it last saved the state.
      r.claimed = false;
      r.received = frame.n - 1;
    }
    if (frame.n !== r.received + 1) {
      this.end(1002, `chorus.v1: message ${frame.n} after ${r.received}`, false);
      return;
    }
    r.received = frame.n;
    // Taken or queued first: an acknowledgement counts only what a handler took.
    this.receive(frame.payload);
    if (this.ended) return;
    if (++r.unacked >= ACK_EVERY) ack(this.#host, this);
    else r.ackTimer ??= setTimeout(() => ack(this.#host, this), ACK_WITHIN);
  }

  /** The runtime closed `conn`. A resumable session whose connection was lost waits for its client. */
  override closed(conn: Connection, code: number, reason: string): void {
    if (this.ended || conn !== this.conn) return;
    // 1006: the connection was lost; 1005: chorus-ws/client gave up a dead socket (a final close
    // carries a code).
    if ((code === 1006 || code === 1005) && !this.#host.closing) {
      this.#detach(conn);
      const onClose = this.#host.hooks.close;
      if (onClose) this.call(onClose, code, reason);
      return;
    }
    this.end(code, reason, true);
  }

  /** The hub gave up the connection: a resumable session keeps waiting for its client. */
  protected override connectionLost(conn: Connection, reason: string): void {
    if (this.#host.closing) {
      this.end(1001, reason, false);
      return;
    }
    // Detached first: a runtime may report the close at once (Bun), and it is not the client's.
    this.#detach(conn);
    conn.close(1001, reason);
    const onClose = this.#host.hooks.close;
    if (onClose) this.call(onClose, 1006, reason);
  }

  /** A write or a native publish was refused: what was refused is kept, the client gets it once back. */
  override refused(conn: Connection, _size: number, _queued: number): void {
    if (this.ended || conn !== this.conn) return;
    this.lost(conn, "Message buffer full");
  }

  /**
   * The session goes on elsewhere (its client resumed on another node, or this node hands it
   * over): it leaves this node without ending — no hook runs, its credentials stay valid.
   */
  leaveNode(reason: string, code = 1000): void {
    if (this.ended) return;
    this.moved = true; // its rooms' presence goes with it: no leave
    this.stop();
    this.conn?.close(code, reason);
  }

  protected override released(): void {
    const r = this.r;
    const host = this.#host;
    r.kept = undefined;
    if (r.expiry !== undefined) host.detached(this, false);
    for (const timer of [r.ackTimer, r.expiry, r.saveTimer, r.retry]) clearTimeout(timer);
    if (r.token !== undefined) host.tokens.delete(r.token);
    if (r.usedToken !== undefined) host.tokens.delete(r.usedToken);
  }

  protected override endedForGood(): void {
    // Ended for good: no node may continue it.
    const host = this.#host;
    if (this.r.from) host.streams?.dropSession(this.id).catch((err) => host.book.failed(err));
  }

  protected override drained(): boolean {
    const r = this.r;
    // Detached: what the handlers took since is saved, so another node skips what the client sends again.
    if (!this.conn) this.saveSoon();
    if (!r.handingOver) return false;
    r.whenIdle?.();
    return true;
  }

  #detach(conn: Connection): void {
    const r = this.r;
    this.#host.release(conn);
    conn.owner = undefined;
    this.conn = undefined;
    clearTimeout(r.ackTimer);
    r.ackTimer = undefined;
    r.unacked = 0;
    this.#startWindow();
    // Saved now (not next turn): what the handlers took, for the node the client resumes on.
    this.#saveNow().catch((err) => this.#host.book.failed(err));
  }

  /** The session's own stream (`write`, `broadcastFilter`, `broadcastMultiple`). */
  #own(): Stream {
    return this.r.own ??= { id: 1, key: "s", epoch: this.id, offset: 0 };
  }

  /** The session's own stream in an epoch the broker gave (a new epoch: a new stream, declared again). */
  #ownAt(epoch: string): Stream {
    const r = this.r;
    let own = r.own;
    if (!own || own.epoch !== epoch) {
      // A new epoch is a new stream: a new id, never the one of another epoch.
      own = r.own = { id: own ? this.#host.book.newId() : 1, key: "s", epoch, offset: 0 };
      this.#declare(own);
    }
    return own;
  }

  #deliverOwnAt(own: Stream, offset: number, payload: string | Uint8Array, size: number): void {
    if (this.ended) return;
    if (offset > own.offset) own.offset = offset;
    this.deliverFrame(own, offset, encodeData(own.id, offset, payload), size + dataOverhead(own.id, offset), payload);
  }

  /** Tells the client a stream changed epoch (the broker's stream was lost and made anew). */
  redeclare(stream: Stream): void {
    this.#declare(stream);
  }

  /**
   * Tells the client a stream's id and epoch, before its first frame on this connection; with
   * `from`, also that the session follows it from that offset on.
   */
  #declare(stream: Stream, from?: number): void {
    const { id, key, epoch } = stream;
    if (epoch === "") from = undefined; // not known yet: the client learns it from the first message
    this.conn?.sendControl(
      encodeControl(from === undefined ? { t: "stream", id, key, epoch } : { t: "stream", id, key, epoch, from }),
    );
  }

  /** Saves the state in the broker soon (once per turn, however many changes). */
  saveSoon(): void {
    saveSoon(this.#host, this);
  }

  /** Saves the state in the broker now. */
  #saveNow(): Promise<void> {
    return saveNow(this.#host, this);
  }

  /** Sends every kept frame, in order; false when the connection was given up. */
  #sendKept(conn: Connection): boolean {
    const kept = this.r.kept;
    for (let i = kept?.head ?? 0; kept && i < kept.offsets.length; i++) {
      if (!conn.send(kept.frames[i]!, kept.sizes[i])) {
        this.lost(conn, "Message buffer full");
        return false;
      }
    }
    return true;
  }

  #startWindow(): void {
    const r = this.r;
    this.#host.detached(this, true);
    r.expiry = setTimeout(() => this.end(1001, "Resume window passed", false), this.#host.resume.window);
  }
}
