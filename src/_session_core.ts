// What a session is behind the `Session` users hold: its keys and rooms, the order in which
// its messages reach the handlers, its current connection, what a resumable session keeps for
// its client, and its one end. Internal.

import type { SessionInit } from "./adapter.ts";
import type { Connection } from "./_connection.ts";
import type { Registry, Stream } from "./_registry.ts";
import type { SessionState, StreamEntry } from "./broker.ts";
import { MessageBufferFullError, SessionClosedError } from "./errors.ts";
import { dataOverhead, decodeFrame, encodeAck, encodeControl, encodeData, PING, type Position } from "./protocol.ts";
import { Session } from "./session.ts";
import { byteLength, checkClose, checkRoom, isThenable, type Message, toPayload } from "./_util.ts";

let counter = 0;
const idPrefix = crypto.randomUUID().slice(0, 8);

/** How long a handover waits for a busy handler (ms). */
const HANDOVER_WAIT = 2000;

/** Acknowledge the client's messages after this many, or this long after the first (ms). */
const ACK_EVERY = 32;
const ACK_WITHIN = 100;

export class SessionCore<K extends object> {
  readonly session: Session<K>;
  readonly id: string;
  readonly init: SessionInit<K>;
  readonly registry: Registry<K>;
  keys: Partial<K> | undefined;
  /** The rooms the session is in; kept as they were at its end, for the disconnect hook. */
  rooms: Set<string> | undefined;
  /** The connection that carries it; `undefined` while a resumable session is detached. */
  conn: Connection<K> | undefined;
  ended = false;
  /** It moves between nodes (claimed from the broker, or leaving for another node): no presence join or leave. */
  moved = false;
  /** A resumable session: numbered frames, kept until acknowledged; it outlives a lost connection. */
  framed = false;
  #busy = false;
  #queue: (string | Uint8Array)[] | undefined;
  #queuedBytes = 0;
  /** A resumable session's state (a plain session pays nothing for it). */
  #r: Resumable | undefined;

  constructor(registry: Registry<K>, init: SessionInit<K>, id?: string) {
    this.id = id ?? `${idPrefix}-${(++counter).toString(36)}`;
    this.registry = registry;
    this.init = init;
    if (init.keys) this.keys = Object.assign(Object.create(null), init.keys);
    this.session = new Session(this);
  }

  /** Makes a new session resumable (before it is registered). */
  makeResumable(fresh = false): void {
    this.framed = true;
    const r = this.#r = new Resumable();
    const registry = this.registry;
    if (fresh && registry.streams) {
      // Where a new session starts following the shared streams, for any node to continue it.
      const hub = registry.hubStream;
      r.from = { h: [hub.epoch, hub.offset, registry.lastSeq], [`s:${this.id}`]: ["", 0, 0] };
    }
  }

  /** A session claimed from the broker takes its state (`#recover` in the registry then joins its rooms). */
  restore(state: SessionState): void {
    const r = this.#r!;
    r.received = state.received;
    r.claimed = true;
    r.from = { ...state.from };
    try {
      const keys = JSON.parse(state.keys);
      if (keys && typeof keys === "object") this.keys = Object.assign(Object.create(null), keys);
    } catch {
      // keys that were not JSON stay behind
    }
  }

  /**
   * Continues a claimed session: reads what it missed from the broker's streams (from the
   * client's position, else from where it started following each stream), then, with its client
   * still there, the welcome, the missed messages in order (with those that arrived meanwhile,
   * each once), and `handleResume`. What cannot be read — another epoch, trimmed, too many —
   * ends the session here, and the client gets a new one (`resumed: false`, never a gap).
   */
  async recover(conn: Connection<K> | undefined, pos: Position, state: SessionState): Promise<void> {
    const registry = this.registry;
    const streams = registry.streams!;
    const limit = registry.resume!.maxMessages;
    const keys = new Set([...Object.keys(state.from), "h", `s:${this.id}`, ...state.rooms.map((r) => `r:${r}`)]);
    let reads: { key: string; epoch: string; top: number; entries: StreamEntry[] }[];
    try {
      reads = await Promise.all([...keys].map(async (key) => {
        const clientKey = key.startsWith("s:") ? "s" : key;
        const had = Object.hasOwn(pos, clientKey) ? pos[clientKey] : state.from[key];
        if (!had) throw new RangeError(`no position in stream ${key}`);
        const [epoch, after] = had;
        if (epoch === "") {
          // Its node had seen none of the stream when the session began following it: what came
          // after the `seq` that node had seen is the session's, in whatever epoch.
          const seen = (had as [string, number, number?])[2] ?? 0;
          const { top } = await streams.read(key, Number.MAX_SAFE_INTEGER, 0);
          const read = await streams.read(key, Math.max(0, top - limit - 1), limit + 1);
          const entries = read.entries.filter((e) => e.seq > seen);
          if (entries.length > limit) throw new RangeError(`more than resume.maxMessages missed in ${key}`);
          // complete: the oldest entry read is older than `seen`, or is the stream's first
          const oldest = read.entries[0];
          const complete = oldest ? oldest.seq <= seen || oldest.offset === 1 : read.top === 0;
          if (!complete) throw new RangeError(`stream ${key} was trimmed`);
          return { key, epoch: read.epoch, top: read.top, entries };
        }
        const read = await streams.read(key, after, limit + 1);
        if (read.epoch !== epoch && !(read.top === 0 && after === 0)) {
          throw new RangeError(`stream ${key} is in another epoch`);
        }
        if (read.entries.length > limit) throw new RangeError(`more than resume.maxMessages missed in ${key}`);
        const first = read.entries[0]?.offset;
        if (first !== undefined ? first !== after + 1 : read.top > after) {
          throw new RangeError(`stream ${key} was trimmed`);
        }
        return { key, ...read };
      }));
    } catch (err) {
      if (this.ended) return;
      registry.report(
        this,
        new Error(`Session ${this.id} could not be resumed here: ${errorText(err)}`, { cause: err }),
      );
      this.end(1000, "Could not be resumed", false); // its disconnect hook runs here
      if (conn) registry.openFresh(conn, this.init);
      return;
    }
    if (this.ended) {
      if (conn) registry.openFresh(conn, this.init);
      return;
    }
    const r = this.#r!;
    // What was missed, in the order it was written, then what arrived while reading, each once.
    const missed: { stream: Stream; entry: StreamEntry }[] = [];
    const last = new Map<string, number>();
    const replayed = new Map<string, [string, number]>();
    for (const { key, epoch, top, entries } of reads) {
      const stream = key.startsWith("s:")
        ? (r.own = { id: 1, key: "s", epoch, offset: top })
        : registry.streamAt(key, epoch, top);
      for (const entry of entries) if (entry.except !== this.id) missed.push({ stream, entry });
      last.set(stream.key, top);
      replayed.set(stream.key, [epoch, top]);
    }
    missed.sort((a, b) => a.entry.seq - b.entry.seq);
    const kept = new Kept();
    for (const { stream, entry } of missed) {
      const size = byteLength(entry.payload);
      kept.push(
        stream,
        entry.offset,
        encodeData(stream.id, entry.offset, entry.payload),
        size + dataOverhead(stream.id, entry.offset),
      );
    }
    const meanwhile = r.kept;
    if (meanwhile) {
      for (let i = meanwhile.head; i < meanwhile.offsets.length; i++) {
        const stream = meanwhile.streams[i]!;
        if (meanwhile.offsets[i] <= (last.get(stream.key) ?? 0)) continue;
        kept.push(stream, meanwhile.offsets[i], meanwhile.frames[i]!, meanwhile.sizes[i]);
      }
    }
    r.kept = kept.length ? kept : undefined;
    r.replayed = replayed;
    registry.counters.resumes++;
    if (!conn) {
      this.#startWindow();
      this.#saveSoon();
      return;
    }
    this.conn = conn;
    conn.core = this;
    registry.adopt(conn);
    this.welcome(true);
    for (let i = kept.head; i < kept.offsets.length; i++) {
      if (!conn.send(kept.frames[i]!, kept.sizes[i])) {
        this.lost(conn, "Message buffer full");
        return;
      }
    }
    this.#saveSoon();
    const onResume = registry.hooks.resume;
    if (onResume) this.call(onResume, undefined);
  }

  /** `hub.close()` with a broker's streams: the state goes to the broker, the client to another node (1012). */
  async handOver(): Promise<void> {
    const r = this.#r!;
    // From now on the client's messages are left to the next node (unacknowledged, it sends them
    // again there), and so are those still queued; the one a handler is taking is finished here.
    r.handingOver = true;
    if (this.#busy) await new Promise<void>((resolve) => (r.whenIdle = resolve, setTimeout(resolve, HANDOVER_WAIT)));
    r.received = this.#taken();
    this.#queue = undefined;
    this.#queuedBytes = 0;
    try {
      await this.#saveNow();
    } catch (err) {
      this.registry.streamFailed(err); // a broker fault: its client gets a new session elsewhere
    }
    this.leaveNode("Server restarting", 1012);
  }

  /** The last of the client's numbers a handler took (those queued behind a busy handler are not). */
  #taken(): number {
    return this.#r!.received - (this.#queue?.length ?? 0);
  }

  /** The keys changed (`set`, `unset`): a resumable session's state is saved again. */
  keysChanged(): void {
    if (this.#r) this.#saveSoon();
  }

  /** Keepalive of a resumable session: a heartbeat frame every `interval`, for its client to tell a dead connection. */
  heartbeat(now: number, interval: number): void {
    const r = this.#r!;
    if (now - r.beatAt < interval) return;
    r.beatAt = now;
    this.conn?.sendControl(PING);
  }

  /** Sends a payload of known size to a plain session (from a broadcast or `write`). */
  deliver(payload: string | Uint8Array, size: number): void {
    const conn = this.conn;
    if (!conn) return;
    if (conn.send(payload, size)) this.#sent(payload, size);
    else this.refused(conn, size, conn.socket.bufferedAmount);
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
    if (conn.send(frame, frameSize)) this.#sent(payload, frameSize - dataOverhead(stream.id, offset));
    else this.lost(conn, "Message buffer full");
  }

  /**
   * Keeps a numbered frame until the client acknowledges it. Past `maxMessages` or
   * `maxBufferedAmount` kept, the session ends: its client could not be given everything.
   */
  keep(stream: Stream, offset: number, frame: string | Uint8Array, frameSize: number): boolean {
    if (this.ended) return false;
    const r = this.#r!;
    const replayed = r.replayed?.get(stream.key);
    // A live copy of a message a resume on this node already read from the broker and sent.
    if (replayed && replayed[0] === stream.epoch && offset <= replayed[1]) return false;
    const kept = r.kept ??= new Kept();
    kept.push(stream, offset, frame, frameSize);
    const registry = this.registry;
    if (kept.length <= registry.resume!.maxMessages && kept.bytes <= registry.limits.maxBufferedAmount) return true;
    registry.report(
      this,
      new MessageBufferFullError(
        `Ended the session: ${kept.length} messages (${kept.bytes} bytes) wait for its client, more than resume.maxMessages (${
          registry.resume!.maxMessages
        }) or maxBufferedAmount (${registry.limits.maxBufferedAmount}) allow`,
      ),
    );
    registry.slowClient(this, 1008, `Ended session ${this.id}: too many messages kept for its client`);
    this.end(1008, "Too many messages kept for the session", false);
    return false;
  }

  write(msg: Message): void {
    if (this.ended) throw new SessionClosedError("Cannot write to a closed session");
    const payload = toPayload(msg);
    const size = byteLength(payload);
    if (this.framed) this.deliverOwn(payload, size);
    else this.deliver(payload, size);
  }

  /** A message of the session's own stream. */
  deliverOwn(payload: string | Uint8Array, size: number): void {
    const streams = this.registry.streams;
    if (streams) {
      // Kept by the broker first, so any node can give it to the client; replies come in order.
      streams.appendOwn(this.id, payload, this.registry.resume!.maxMessages).then(
        (at) => this.#deliverOwnAt(this.#ownAt(at.epoch), at.offset, payload, size),
        (err) => {
          this.registry.streamFailed(err);
          const own = this.#ownAt(this.registry.localEpoch(this.#r!.own?.epoch));
          this.#deliverOwnAt(own, own.offset + 1, payload, size);
        },
      );
      return;
    }
    const own = this.#own();
    const offset = ++own.offset;
    this.deliverFrame(own, offset, encodeData(own.id, offset, payload), size + dataOverhead(own.id, offset), payload);
  }

  close(code: number, reason: string): void {
    if (this.ended) throw new SessionClosedError("Session is already closed");
    checkClose(code, reason);
    this.end(code, reason, false);
  }

  join(room: string): void {
    checkRoom(room);
    if (this.ended) throw new SessionClosedError("A closed session cannot join a room");
    if ((this.rooms ??= new Set()).has(room)) return;
    this.rooms.add(room);
    this.registry.join(this, room);
    if (this.framed) {
      const stream = this.registry.roomStream(room);
      this.#declare(stream, stream.offset); // its messages from now on are the session's
      const r = this.#r!;
      if (r.from) {
        r.from[`r:${room}`] = [stream.epoch, stream.offset, this.registry.lastSeq];
        this.#saveSoon();
      }
    }
    this.conn?.subscribe(this.registry.topic(this, room));
  }

  leave(room: string): void {
    checkRoom(room);
    if (!this.rooms?.delete(room)) return;
    this.registry.leave(this, room);
    const r = this.#r;
    if (r?.from && !this.ended) {
      delete r.from[`r:${room}`];
      this.#saveSoon();
    }
    if (!this.ended) {
      this.conn?.unsubscribe(this.registry.topic(this, room));
      if (this.framed) this.conn?.sendControl(encodeControl({ t: "end", key: `r:${room}` }));
    }
  }

  /** Runs the connect hook; messages wait until it has finished. */
  start(): void {
    const connect = this.registry.hooks.connect;
    if (connect) this.#run(connect, undefined);
  }

  /**
   * Answers a `chorus.v1` request: a new credential, the client's last number, the heartbeat;
   * then declares the session's streams.
   */
  welcome(resumed: boolean): void {
    const registry = this.registry;
    const conn = this.conn!;
    const r = this.#r;
    let token = "";
    if (r) {
      if (r.token !== undefined && r.token !== r.usedToken) registry.tokens.delete(r.token);
      token = r.token = randomToken();
      registry.tokens.set(token, this);
    }
    conn.sendControl(
      encodeControl({
        t: "welcome",
        resumed,
        token,
        recv: r?.received ?? 0,
        hb: registry.limits.pingInterval,
        ...(Number.isFinite(registry.limits.maxMessageSize) ? { max: registry.limits.maxMessageSize } : {}),
      }),
    );
    if (!r) return;
    r.ackedFrames = 0;
    this.#saveSoon(); // the new credential, for any node
    // A new session follows the hub's stream from now on.
    this.#declare(this.#own(), resumed ? undefined : 0);
    this.#declare(registry.hubStream, resumed ? undefined : registry.hubStream.offset);
    if (this.rooms) { for (const room of this.rooms) this.#declare(registry.roomStream(room)); }
  }

  /**
   * The client came back with a credential of this session: the session continues on `conn`.
   * The welcome goes first, then every kept message past the client's position, in order, then
   * `handleResume`.
   */
  resumeOn(conn: Connection<K>, token: string, pos: Position): void {
    const registry = this.registry;
    const old = this.conn;
    if (old) {
      // The client left a connection the hub still thought alive: let it go quietly.
      registry.release(old);
      old.close(1000, "Resumed on another connection");
      old.core = undefined;
    }
    const r = this.#r!;
    if (r.expiry !== undefined) registry.detached--;
    registry.counters.resumes++;
    clearTimeout(r.expiry);
    r.expiry = undefined;
    if (r.usedToken !== undefined && r.usedToken !== token) registry.tokens.delete(r.usedToken);
    r.usedToken = token;
    this.conn = conn;
    conn.core = this;
    registry.adopt(conn);
    this.welcome(true);
    const kept = r.kept;
    if (kept) {
      kept.forget(pos);
      for (let i = kept.head; i < kept.offsets.length; i++) {
        if (!conn.send(kept.frames[i]!, kept.sizes[i])) {
          this.lost(conn, "Message buffer full");
          return;
        }
      }
    }
    const onResume = registry.hooks.resume;
    if (onResume) this.call(onResume, undefined);
  }

  /** A message passed the connection's checks: dispatch it, or queue it behind a busy handler. */
  receive(msg: string | Uint8Array): void {
    const counters = this.registry.counters;
    counters.messagesIn++;
    counters.bytesIn += byteLength(msg);
    if (!this.#busy) {
      this.#dispatch(msg);
      return;
    }
    const registry = this.registry;
    const max = registry.limits.maxBufferedAmount;
    const size = byteLength(msg);
    if (this.#queuedBytes + size > max) {
      registry.report(
        this,
        new RangeError(
          `Closed the session: ${
            this.#queuedBytes + size
          } bytes of messages are waiting for a handler and maxBufferedAmount is ${max}`,
        ),
      );
      this.end(1008, "Too many pending messages", false);
      return;
    }
    this.#queuedBytes += size;
    (this.#queue ??= []).push(msg);
  }

  /** A frame from the client of a resumable session. */
  receiveFrame(data: string | Uint8Array): void {
    const frame = decodeFrame(data);
    if (!frame || frame.kind === "control" || frame.kind === "ping" || (frame.kind === "data" && frame.id !== 0)) {
      this.end(1002, "Malformed chorus.v1 frame", false);
      return;
    }
    const r = this.#r!;
    if (r.handingOver && frame.kind === "data") return; // for the next node
    if (r.usedToken !== undefined) {
      // The client spoke on its new connection: it has the new credential, the used one is dead.
      this.registry.tokens.delete(r.usedToken);
      r.usedToken = undefined;
    }
    if (frame.kind === "ack") {
      // The client received `n` data frames on this connection: the oldest kept ones.
      if (frame.n > r.ackedFrames) {
        r.kept?.drop(frame.n - r.ackedFrames);
        if (r.kept?.length === 0) r.kept = undefined;
        r.ackedFrames = frame.n;
      }
      return;
    }
    if (frame.kind === "received") {
      // What the client has, per stream: the kept frames it covers are forgotten.
      for (const [id, offset] of frame.at) r.kept?.have(id, offset);
      if (r.kept?.length === 0) r.kept = undefined;
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
    if (++r.unacked >= ACK_EVERY) this.#ack();
    else r.ackTimer ??= setTimeout(() => this.#ack(), ACK_WITHIN);
    this.receive(frame.payload);
  }

  /** The runtime closed `conn`. A resumable session whose connection was lost waits for its client. */
  connectionClosed(conn: Connection<K>, code: number, reason: string): void {
    if (this.ended || conn !== this.conn) return;
    // 1006: the connection was lost; 1005: chorus-ws/client gave up a dead socket (a final close
    // carries a code).
    if (this.framed && (code === 1006 || code === 1005) && !this.registry.closing) {
      this.#detach(conn);
      const onClose = this.registry.hooks.close;
      if (onClose) this.call(onClose, code, reason);
      return;
    }
    this.end(code, reason, true);
  }

  /**
   * The hub gives up `conn` (no pong, a peer that stopped reading, a full buffer). A resumable
   * session keeps waiting for its client; any other ends.
   */
  lost(conn: Connection<K>, reason: string): void {
    if (this.ended || conn !== this.conn) return;
    if (reason !== "Pong timeout") {
      this.registry.slowClient(this, 1001, `Gave up session ${this.id}'s connection: ${reason}`);
    }
    if (!this.framed || this.registry.closing) {
      this.end(1001, reason, false);
      return;
    }
    conn.close(1001, reason);
    this.#detach(conn);
    const onClose = this.registry.hooks.close;
    if (onClose) this.call(onClose, 1006, reason);
  }

  /** A write or a native publish was refused by the outbound limit. */
  refused(conn: Connection<K>, size: number, queued: number): void {
    if (this.ended || conn !== this.conn) return;
    if (this.framed) {
      // What was refused is kept: the client gets it once it comes back.
      this.lost(conn, "Message buffer full");
      return;
    }
    const registry = this.registry;
    const max = registry.limits.maxBufferedAmount;
    registry.counters.dropped++;
    registry.report(
      this,
      new MessageBufferFullError(
        `Dropped a message of ${size} bytes: ${queued} bytes are queued and maxBufferedAmount is ${max}`,
      ),
    );
    if (!registry.limits.closeOnBufferFull) return;
    registry.slowClient(this, 1008, `Closed session ${this.id} with 1008: its outbound buffer is full`);
    this.end(1008, "Message buffer full", false);
  }

  /**
   * The session goes on elsewhere (its client resumed on another node, or this node hands it
   * over): it leaves this node without ending — no hook runs, its credentials stay valid.
   */
  leaveNode(reason: string, code = 1000): void {
    if (this.ended) return;
    this.moved = true; // its rooms' presence goes with it: no leave
    this.#stop();
    this.conn?.close(code, reason);
  }

  /**
   * Whatever way the session leaves this node: nothing more is dispatched, kept or timed, its
   * credentials are forgotten here, and it leaves the registry (before any hook sees the hub).
   */
  #stop(): void {
    this.ended = true;
    this.#queue = undefined;
    this.#queuedBytes = 0;
    const registry = this.registry;
    const r = this.#r;
    if (r) {
      r.kept = undefined;
      if (r.expiry !== undefined) registry.detached--;
      clearTimeout(r.ackTimer);
      clearTimeout(r.expiry);
      clearTimeout(r.saveTimer);
      if (r.token !== undefined) registry.tokens.delete(r.token);
      if (r.usedToken !== undefined) registry.tokens.delete(r.usedToken);
    }
    registry.unregister(this);
  }

  /**
   * The session's one end. It leaves the registry first, so hooks (and broadcasts from them)
   * see the hub without it; its queued and kept messages are dropped; `handleClose` runs when
   * the peer ended it; then `handleDisconnect`, whose completion the returned promise tracks.
   */
  end(code: number, reason: string, byPeer: boolean): Promise<void> | undefined {
    if (this.ended) return undefined;
    this.#stop();
    const registry = this.registry;
    // Ended for good: no node may continue it.
    if (this.#r?.from) registry.streams?.dropSession(this.id).catch((err) => registry.streamFailed(err));
    const conn = this.conn;
    if (conn) {
      if (byPeer) conn.unsubscribeAll();
      else conn.close(code, reason);
    }
    if (byPeer) {
      const onClose = registry.hooks.close;
      if (onClose) this.call(onClose, code, reason);
    }
    return registry.disconnected(this);
  }

  /** Calls a hook whose result is not awaited; failures go to handleError. */
  call<A, B>(fn: (s: Session<K>, a: A, b: B) => unknown, a: A, b?: B): void {
    try {
      const result = fn(this.session, a, b as B);
      if (isThenable(result)) result.then(undefined, (err) => this.registry.report(this, err));
    } catch (err) {
      this.registry.report(this, err);
    }
  }

  #detach(conn: Connection<K>): void {
    const r = this.#r!;
    this.registry.release(conn);
    conn.core = undefined;
    this.conn = undefined;
    clearTimeout(r.ackTimer);
    r.ackTimer = undefined;
    r.unacked = 0;
    this.#startWindow();
  }

  /** The session's own stream (`write`, `broadcastFilter`, `broadcastMultiple`). */
  #own(): Stream {
    return this.#r!.own ??= { id: 1, key: "s", epoch: this.id, offset: 0 };
  }

  /** The session's own stream in an epoch the broker gave (a new epoch: a new stream, declared again). */
  #ownAt(epoch: string): Stream {
    const r = this.#r!;
    let own = r.own;
    if (!own || own.epoch !== epoch) {
      own = r.own = { id: 1, key: "s", epoch, offset: 0 };
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
    if (this.framed) this.#declare(stream);
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

  #ack(): void {
    const r = this.#r!;
    clearTimeout(r.ackTimer);
    r.ackTimer = undefined;
    r.unacked = 0;
    // Only what a handler took: what waits in the queue is sent again if this node goes away.
    const received = this.#taken();
    if (!this.registry.streams) {
      this.conn?.sendControl(encodeAck(received));
      return;
    }
    // With a broker's streams the state is saved before the client may forget its messages.
    this.#saveNow().then(
      () => this.conn?.sendControl(encodeAck(received)),
      (err) => this.registry.streamFailed(err),
    );
  }

  /** Saves the state in the broker soon (once per turn, however many changes). */
  #saveSoon(): void {
    const r = this.#r;
    if (!r?.from || r.saveTimer !== undefined || !this.registry.streams) return;
    r.saveTimer = setTimeout(() => {
      r.saveTimer = undefined;
      this.#saveNow().catch((err) => this.registry.streamFailed(err));
    }, 0);
  }

  /** Saves the state in the broker now. */
  #saveNow(): Promise<void> {
    const r = this.#r;
    const streams = this.registry.streams;
    if (!r?.from || !streams || this.ended) return Promise.resolve();
    clearTimeout(r.saveTimer);
    r.saveTimer = undefined;
    let keys = "{}";
    try {
      keys = JSON.stringify(this.keys ?? {});
    } catch {
      // keys JSON cannot hold (a cycle, a BigInt) stay on this node
    }
    const state: SessionState = {
      id: this.id,
      keys,
      from: r.from,
      rooms: this.rooms ? [...this.rooms] : [],
      received: this.#taken(),
      token: r.token ?? "",
    };
    return streams.saveSession(state, this.registry.resume!.window);
  }

  #startWindow(): void {
    const r = this.#r!;
    this.registry.detached++;
    r.expiry = setTimeout(() => this.end(1001, "Resume window passed", false), this.registry.resume!.window);
  }

  #sent(payload: string | Uint8Array, size: number): void {
    const counters = this.registry.counters;
    counters.messagesOut++;
    counters.bytesOut += size;
    const hooks = this.registry.hooks;
    if (typeof payload === "string") {
      if (hooks.sentMessage) this.call(hooks.sentMessage, payload);
    } else if (hooks.sentMessageBinary) this.call(hooks.sentMessageBinary, payload);
  }

  #dispatch(msg: string | Uint8Array): void {
    const hooks = this.registry.hooks;
    if (typeof msg === "string") {
      if (hooks.message) this.#run(hooks.message, msg);
    } else if (hooks.messageBinary) this.#run(hooks.messageBinary, msg);
  }

  /** Runs a connect or message handler; an async one holds the queue unless concurrent. */
  #run<A>(fn: (s: Session<K>, a: A) => unknown, arg: A): void {
    let result: unknown;
    try {
      result = fn(this.session, arg);
    } catch (err) {
      this.registry.report(this, err);
      return;
    }
    if (!isThenable(result)) return;
    if (this.registry.concurrent) {
      result.then(undefined, (err) => this.registry.report(this, err));
      return;
    }
    this.#busy = true;
    result.then(
      () => this.#resume(),
      (err) => {
        this.registry.report(this, err);
        this.#resume();
      },
    );
  }

  #resume(): void {
    this.#busy = false;
    const r = this.#r;
    if (r?.handingOver) {
      r.whenIdle?.();
      return;
    }
    // Nothing reaches a handler once the session ended: `end` dropped the queue.
    while (!this.ended && !this.#busy && this.#queue && this.#queue.length > 0) {
      const msg = this.#queue.shift()!;
      this.#queuedBytes -= byteLength(msg);
      this.#dispatch(msg);
    }
  }
}

/** What a resumable session has beyond a plain one. */
class Resumable {
  /** What it keeps for its client (until acknowledged, or while away); `undefined` when nothing. */
  kept: Kept | undefined;
  /** The credential for the next resume. */
  token: string | undefined;
  /** The credential just used to resume: valid until the client shows it got the new one. */
  usedToken: string | undefined;
  /** The session's own stream, once it has a message. */
  own: Stream | undefined;
  /** Data frames of the current connection the client acknowledged. */
  ackedFrames = 0;
  /** When the last heartbeat frame went. */
  beatAt = 0;
  /** With a broker's streams: where the session follows each stream from (for another node to continue it). */
  from: Record<string, [epoch: string, offset: number, seq?: number]> | undefined;
  /** Claimed from another node: its first message may skip numbers the node before took. */
  claimed = false;
  /** After a resume on this node: per stream, up to where the broker's messages were read and sent. */
  replayed: Map<string, [epoch: string, offset: number]> | undefined;
  /** Being handed over to another node (`hub.close()`): the client's messages are left to it. */
  handingOver = false;
  whenIdle: (() => void) | undefined;
  saveTimer: ReturnType<typeof setTimeout> | undefined;
  /** The client's last message number received, and how many are not acknowledged yet. */
  received = 0;
  unacked = 0;
  ackTimer: ReturnType<typeof setTimeout> | undefined;
  /** While detached: the end of the resume window. */
  expiry: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The numbered frames a resumable session keeps, in the order they were (or will be) sent,
 * until its client acknowledges them.
 */
class Kept {
  streams: (Stream | undefined)[] = [];
  offsets: number[] = [];
  frames: (string | Uint8Array | undefined)[] = [];
  sizes: number[] = [];
  head = 0;
  bytes = 0;

  get length(): number {
    return this.offsets.length - this.head;
  }

  push(stream: Stream, offset: number, frame: string | Uint8Array, size: number): void {
    this.streams.push(stream);
    this.offsets.push(offset);
    this.frames.push(frame);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Forgets the `count` oldest frames. */
  drop(count: number): void {
    const end = Math.min(this.head + count, this.offsets.length);
    for (let i = this.head; i < end; i++) {
      this.bytes -= this.sizes[i];
      this.frames[i] = this.streams[i] = undefined;
    }
    this.head = end;
    this.#compact();
  }

  /** Forgets the frames of stream `id` up to `offset`: the client has them. */
  have(id: number, offset: number): void {
    let w = this.head;
    for (let i = this.head; i < this.offsets.length; i++) {
      if (this.streams[i]!.id === id && this.offsets[i] <= offset) {
        this.bytes -= this.sizes[i];
        continue;
      }
      this.streams[w] = this.streams[i];
      this.offsets[w] = this.offsets[i];
      this.frames[w] = this.frames[i];
      this.sizes[w] = this.sizes[i];
      w++;
    }
    this.streams.length =
      this.offsets.length =
      this.frames.length =
      this.sizes.length =
        w;
    this.#compact();
  }

  /** Forgets the frames a client's position says it has (same stream epoch, offset not past it). */
  forget(pos: Position): void {
    let w = this.head;
    for (let i = this.head; i < this.offsets.length; i++) {
      const stream = this.streams[i]!;
      const has = Object.hasOwn(pos, stream.key) ? pos[stream.key] : undefined;
      if (has !== undefined && has[0] === stream.epoch && this.offsets[i] <= has[1]) {
        this.bytes -= this.sizes[i];
        continue;
      }
      this.streams[w] = stream;
      this.offsets[w] = this.offsets[i];
      this.frames[w] = this.frames[i];
      this.sizes[w] = this.sizes[i];
      w++;
    }
    this.streams.length =
      this.offsets.length =
      this.frames.length =
      this.sizes.length =
        w;
    this.#compact();
  }

  #compact(): void {
    const head = this.head;
    if (head === this.offsets.length) {
      this.streams = [];
      this.offsets = [];
      this.frames = [];
      this.sizes = [];
      this.head = 0;
    } else if (head > 64 && head * 2 > this.offsets.length) {
      this.streams = this.streams.slice(head);
      this.offsets = this.offsets.slice(head);
      this.frames = this.frames.slice(head);
      this.sizes = this.sizes.slice(head);
      this.head = 0;
    }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** 128 bits from the platform's CSPRNG, base64url. */
function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
