/**
 * The Redis broker's session states (the session half of {@linkcode BrokerStreams}): saves (one
 * unanswered save per session; while it stalls, the latest state waits instead of queueing),
 * claims, drops, checks and the heartbeat's refresh. Keys (`ss:`, `tk:`, `ns:`) are described in
 * `_redis_streams.ts`; the scripts' texts are in `_lua/streams.ts`. Internal to `chorus-ws/redis`.
 *
 * May import: `_redis_scripts.ts`, `_redis_keys.ts`, `_redis_client.ts` (types), `wire.ts`,
 * `../broker.ts` (types), `node:*`.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { SessionState } from "../broker.ts";
import { safeKey } from "./_redis_keys.ts";
import { type Script, SCRIPTS, type Scripts } from "./_redis_scripts.ts";
import type { RedisClientLike } from "./_redis_client.ts";
import type { RedisKeys } from "./_redis_keys.ts";
import { encodeReleasedHead } from "./wire.ts";

/** A session's state waiting behind its stalled save, and the callers' promise of its own save. */
interface WaitingSave {
  state: SessionState;
  ttl: number;
  readonly promise: Promise<unknown>;
  readonly resolve: (save: Promise<unknown>) => void;
  readonly reject: (err: unknown) => void;
}

/** A session's save that Redis has not answered. */
interface SaveFlight {
  /** The SAVE sent. */
  readonly command: Promise<unknown>;
  /** It went unanswered past the command timeout: later saves wait (`next`) instead of queueing. */
  stalled: boolean;
  /** The latest state asked for since it stalled. */
  next?: WaitingSave;
}

function deferred(): Pick<WaitingSave, "promise" | "resolve" | "reject"> {
  let resolve!: (save: Promise<unknown>) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<unknown>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // its callers each wait with a timeout; none may be left
  return { promise, resolve, reject };
}

/** What the Redis broker gives its session states (a part of what it gives its streams). */
export interface SessionsHost {
  /** The broker's key and channel names. */
  readonly keys: RedisKeys;
  /** The broker's scripts. */
  readonly scripts: Scripts;
  /** How long a stream outlives its last append, in ms (a node's refresh of its sessions' own streams). */
  readonly streamTtl: number;
  /** This node's id; throws when the broker is not running. */
  node(): string;
  /** The connection for commands. */
  client(): RedisClientLike;
  /**
   * Runs a command within the command timeout.
   * @param promise The command.
   * @param what What it is, for the error.
   */
  within<T>(promise: Promise<T>, what: string): Promise<T>;
}

/** A claim's answer as a state (`undefined`: no live session had the credential). */
function claimed(reply: unknown): SessionState | undefined {
  if (!reply) return undefined;
  const [id, keys, from, rooms, received, token] = (reply as unknown[]).map(String);
  return { id, keys, from: JSON.parse(from), rooms: JSON.parse(rooms), received: Number(received), token };
}

/** How long a state a late claim gave back is kept (ms), when the state does not say. */
const LATE_TTL = 60_000;

/** Session states on Redis. */
export class RedisSessions {
  #host: SessionsHost;
  /** Sessions with a save Redis has not answered. */
  #saves = new Map<string, SaveFlight>();
  /** Claims that timed out and may still be answered, by credential (see `claimSession`). */
  #late = new Map<string, Promise<SessionState | undefined>>();

  /**
   * The session states of one broker.
   * @param host The broker's side.
   */
  constructor(host: SessionsHost) {
    this.#host = host;
  }

  /**
   * Saves a session's state (ignored when another node claimed it meanwhile). Once a save of the
   * session has gone unanswered past the command timeout (Redis stalls), later saves of it are
   * not sent behind it: the latest state waits, and goes once that save is answered (or before
   * a claim or a drop, which keep their order after it). So what a stall holds for a session
   * stops growing once its first save there times out; each call still settles within the
   * command timeout.
   * @param state The state.
   * @param ttl How long it outlives this node's last heartbeat.
   */
  async saveSession(state: SessionState, ttl: number): Promise<boolean> {
    const host = this.#host;
    if (!(ttl > 0) || !Number.isFinite(ttl)) {
      throw new RangeError(`A session ttl must be a positive number, not ${ttl}`);
    }
    host.node();
    const flight = this.#saves.get(state.id);
    if (flight?.stalled) {
      const next = flight.next ??= { state, ttl, ...deferred() };
      next.state = state;
      next.ttl = ttl;
      return Number(await host.within(next.promise, "a session save")) !== 0;
    }
    const command = this.#save(state, ttl);
    try {
      return Number(await host.within(command, "a session save")) !== 0; // 0: another node has it
    } catch (err) {
      const unanswered = this.#saves.get(state.id);
      if (unanswered?.command === command) unanswered.stalled = true; // timed out, not failed
      throw err;
    }
  }

  /** Sends a save, the session's one unanswered save from now on. */
  #save(state: SessionState, ttl: number): Promise<unknown> {
    const host = this.#host;
    const node = host.node();
    const p = host.keys.home;
    const sid = safeKey(state.id);
    const keys = [`${p}:ss:${sid}`, `${p}:tk:${safeKey(state.token)}`, `${p}:ns:${safeKey(node)}`];
    const args = [
      String(Math.ceil(ttl)),
      sid,
      node,
      state.id,
      state.keys,
      JSON.stringify(state.from),
      JSON.stringify(state.rooms),
      String(state.received),
      state.token,
      `${p}:st:${safeKey("s:" + state.id)}`,
    ];
    const command = this.#run(SCRIPTS.save, keys, args);
    const flight: SaveFlight = { command, stalled: false };
    this.#saves.set(state.id, flight);
    const answered = () => {
      if (this.#saves.get(state.id) !== flight) return;
      this.#saves.delete(state.id);
      if (flight.next) this.#sendWaiting(flight.next);
    };
    command.then(answered, answered);
    return command;
  }

  /** Sends a state that waited behind a stalled save; its callers get that save's answer. */
  #sendWaiting(next: WaitingSave): void {
    try {
      next.resolve(this.#save(next.state, next.ttl));
    } catch (err) {
      next.reject(err); // the broker stopped
    }
  }

  /** Before a claim or a drop: the states waiting behind stalled saves go first, as they were asked first. */
  #flushSaves(id?: string): void {
    for (const [sid, flight] of this.#saves) {
      if (!flight.next || (id !== undefined && sid !== id)) continue;
      const next = flight.next;
      flight.next = undefined;
      this.#sendWaiting(next);
    }
  }

  /**
   * Moves the session a credential names to this node.
   * @param token The credential.
   * @returns The state, or `undefined`.
   */
  async claimSession(token: string): Promise<SessionState | undefined> {
    if (token === "") return undefined; // an empty credential names no session
    const host = this.#host;
    const late = this.#late.get(token);
    if (late) {
      // An earlier claim of this credential here timed out behind a stalled Redis and may still
      // run: its answer is this one's (a second claim would find the credential gone).
      this.#late.delete(token);
      try {
        return await host.within(late, "a session claim");
      } catch (err) {
        this.#late.set(token, late);
        throw err;
      }
    }
    const node = host.node();
    const p = host.keys.home;
    const head = encodeReleasedHead(node);
    this.#flushSaves();
    const run = this.#run(SCRIPTS.claim, [`${p}:tk:${safeKey(token)}`, `${p}:ns:${safeKey(node)}`], [
      `${p}:ss:`,
      node,
      host.keys.channel,
      Buffer.from(head.buffer, head.byteOffset, head.byteLength),
    ]);
    try {
      return claimed(await host.within(run, "a session claim"));
    } catch (err) {
      // Timed out, not failed: Redis may still run it, moving the session here. Its answer goes
      // to the next claim of the credential here; if none comes for it, the state is saved
      // again (here, with its credential) for the client's next try on any node.
      const answer = run.then(claimed, () => undefined);
      this.#late.set(token, answer);
      run.then((reply) => {
        if (this.#late.get(token) !== answer) return;
        this.#late.delete(token);
        const state = claimed(reply);
        if (state) this.saveSession(state, Number((reply as unknown[])[6]) || LATE_TTL).catch(() => {});
      }, () => this.#late.get(token) === answer && this.#late.delete(token));
      throw err;
    }
  }

  /**
   * Whether Redis keeps a state for a session id.
   * @param id The session's id.
   */
  async hasSession(id: string): Promise<boolean> {
    const host = this.#host;
    host.node();
    const key = `${host.keys.home}:ss:${safeKey(id)}`;
    return Number(await host.within(host.client().sendCommand(["EXISTS", key]), "a session check")) === 1;
  }

  /**
   * Forgets a session of this node, with its credential and its own stream.
   * @param id The session's id.
   */
  async dropSession(id: string): Promise<void> {
    const host = this.#host;
    const node = host.node();
    const p = host.keys.home;
    const own = safeKey("s:" + id);
    const keys = [`${p}:ss:${safeKey(id)}`, `${p}:st:${own}`, `${p}:sm:${own}`, `${p}:ns:${safeKey(node)}`];
    this.#flushSaves(id);
    await host.within(this.#run(SCRIPTS.drop, keys, [node, safeKey(id)]), "a session drop");
  }

  /**
   * Refreshes the TTLs of this node's sessions (the heartbeat's). No time limit: the promise is
   * the command's, unanswered as long as Redis stalls (the heartbeat sends no other meanwhile).
   * @returns How many sessions this node has in Redis.
   */
  async refresh(): Promise<number> {
    const host = this.#host;
    const p = host.keys.home;
    return Number(
      await this.#run(SCRIPTS.refresh, [`${p}:ns:${safeKey(host.node())}`], [
        `${p}:ss:`,
        String(Math.ceil(host.streamTtl)),
      ]),
    );
  }

  #run(script: Script, keys: string[], args: (string | Buffer)[]): Promise<unknown> {
    return this.#host.scripts.run(script, keys, args);
  }
}
