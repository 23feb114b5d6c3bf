// The event log of a fault-schedule run: what the harness, its clients and its nodes saw, with
// times comparable across processes. The invariant checker (_checker.ts) reads nothing else.

/** Wall-clock milliseconds with sub-millisecond precision (the same clock as the nodes' logs). */
export const now = (): number => performance.timeOrigin + performance.now();

/** Why a credential was presented: a client's own, or one of the attacks. */
export type Presented = "new" | "client" | "replay" | "used" | "twice" | "empty" | "forged";

/** The credential attacks of the fault vocabulary. */
export const ATTACKS: readonly Presented[] = ["replay", "used", "twice", "empty", "forged"];

/** One thing that happened. `t` is `now()` where it was seen. */
export type Ev =
  /** A client (c0…, p0…) had an `open`. */
  | { k: "open"; t: number; c: string; resumed: boolean }
  /** A client received message `n` of stream `s` ("h", "r:<room>", "e" for its echoes). */
  | { k: "msg"; t: number; c: string; s: string; n: number }
  /** A client learned the id of the session it is on ("I" on connect, "W" after each open). */
  | { k: "sid"; t: number; c: string; sid: string }
  /** A client sent "e <n>" (`ok`: send() took it). */
  | { k: "send"; t: number; c: string; n: number; ok: boolean }
  /** A client stopped for good without being asked to. */
  | { k: "stop"; t: number; c: string; code: number }
  /** The harness asked node instance `node` to broadcast [from, from+count) on stream `s`. */
  | { k: "bc"; t: number; s: string; from: number; count: number; node: string; ok: boolean }
  /** A node instance's handleMessage took client `c`'s message `n` in session `sid`. */
  | { k: "handled"; t: number; node: string; c: string; sid: string; n: number }
  /** A node instance was signalled. */
  | { k: "kill"; t: number; node: string; signal: "SIGKILL" | "SIGTERM" }
  /** A connection presented a credential (`token` "" for a new session with `kind` "new"). */
  | { k: "present"; t: number; conn: string; who: string; kind: Presented; token: string }
  /** A connection received its welcome. */
  | { k: "welcome"; t: number; conn: string; resumed: boolean; token: string }
  /** A connection that took a session over asked whose it is. */
  | { k: "who"; t: number; conn: string; sid: string; name: string }
  /** The members of `room` on node instance `node`, as its `room.members()` said: ids and names. */
  | { k: "members"; t: number; node: string; room: string; ids: string[]; names: string[] }
  /** A node instance's sessions ([id, connected, name]) and heap (bytes; `base`: its first reading). */
  | { k: "stats"; t: number; node: string; sessions: [string, boolean, string][]; heapUsed: number; base: number }
  /** A node instance's heap in the middle of the faults (bytes; `base`: its process's first reading). */
  | { k: "heap"; t: number; node: string; heapUsed: number; base: number }
  /** The end of the run: the final marker of each stream and of each live client's echoes. */
  | { k: "end"; t: number; finals: Record<string, number>; echoes: Record<string, number> }
  /** A fault was injected. */
  /** A fault; a Redis fault says whose link (`node`, a hub id; none: all of Redis) and for how long (`ms`). */
  | { k: "fault"; t: number; kind: string; node?: string; ms?: number }
  /** The end phase gave up waiting for something. */
  | { k: "stuck"; t: number; what: string }
  /** A node's broadcasts and writes its broker's streams did not take so far (metrics.brokerDropped). */
  | { k: "dropped"; t: number; node: string; total: number };

/** A client of the run: its name and the rooms it is in. */
export interface ClientSpec {
  name: string;
  rooms: string[];
}
