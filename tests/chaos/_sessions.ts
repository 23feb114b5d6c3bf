// The checker's view of sessions at the end of a seed: who may hold one (live clients, sessions their
// clients left, sessions made for a lost welcome), and what members() and each node's sessions say
// beyond that (invariants 4 and 5). The matching is pure, so the harness waits on the same test.

import type { ClientSpec, Ev } from "./_events.ts";
import type { CheckOptions, Of, Segment, Violation } from "./_segments.ts";

/** Who may have sessions at `at`: live clients, sessions clients left, and clients whose welcome was lost. */
export interface Expected {
  /** The current session of each live client. */
  live: Map<string, ClientSpec>;
  /** Sessions of earlier segments (their clients went on elsewhere): they may wait out the window. */
  left: Set<string>;
  /**
   * Clients that presented a credential and never saw the welcome (lost on the way): the hub may
   * have made or moved a session for them that nobody knows; it may wait out the window.
   */
  unseen: Set<string>;
}

/** Who may have sessions at `at`. */
export function expected(
  log: readonly Ev[],
  opts: CheckOptions,
  segs: Map<string, Segment[]>,
  stopped: Set<string>,
  at: number,
): Expected {
  const live = new Map<string, ClientSpec>();
  const left = new Set<string>();
  for (const c of opts.clients) {
    const list = segs.get(c.name) ?? [];
    for (const seg of list) {
      const sid = seg.sids[0];
      if (sid === undefined) continue;
      if (seg.last && !stopped.has(c.name)) live.set(sid, c);
      else if (seg.end + opts.window >= at) left.add(sid);
    }
  }
  const welcomed = new Set<string>();
  for (const e of log) if (e.k === "welcome") welcomed.add(e.conn);
  // such a session may have been made any time until the client's next connection (or now)
  const unseen = new Set<string>();
  const presents = log.filter((e): e is Of<"present"> => e.k === "present");
  presents.forEach((e, i) => {
    const next = presents.slice(i + 1).find((p) => p.who === e.who)?.t ?? at;
    if (!welcomed.has(e.conn) && next + opts.window >= at) unseen.add(e.who);
  });
  return { live, left, unseen };
}

/** What `members` says that it should not (ghosts), and what it misses; pure, also used to wait. */
export function membersMismatch(
  m: { ids: readonly string[]; names: readonly string[]; room: string },
  sessions: Expected,
): { ghosts: string[]; missing: string[] } {
  const want = [...sessions.live].filter(([, c]) => c.rooms.includes(m.room)).map(([sid]) => sid);
  return {
    ghosts: m.ids.filter((id, i) => !want.includes(id) && !sessions.left.has(id) && !sessions.unseen.has(m.names[i])),
    missing: want.filter((id) => !m.ids.includes(id)),
  };
}

export function checkMembers(
  log: Ev[],
  opts: CheckOptions,
  segs: Map<string, Segment[]>,
  stopped: Set<string>,
): Violation[] {
  const out: Violation[] = [];
  for (const e of log) {
    if (e.k !== "members") continue;
    const { ghosts, missing } = membersMismatch(e, expected(log, opts, segs, stopped, e.t));
    if (ghosts.length > 0) {
      out.push({ inv: 4, kind: "ghost", t: e.t, text: `${e.node} room ${e.room} lists ended ${ghosts.join(", ")}` });
    }
    if (missing.length > 0) {
      out.push({ inv: 4, kind: "absent", t: e.t, text: `${e.node} room ${e.room} misses live ${missing.join(", ")}` });
    }
  }
  return out;
}

/** What a round of every node's sessions says that it should not; pure, also used to wait. */
export function statsMismatch(
  round: readonly { node: string; sessions: [string, boolean, string][] }[],
  sessions: Expected,
): string[] {
  const out: string[] = [];
  const where = new Map<string, string[]>();
  for (const { node, sessions: list } of round) {
    for (const [id, connected, name] of list) {
      where.set(id, [...where.get(id) ?? [], node]);
      const c = sessions.live.get(id);
      if (!c && !sessions.left.has(id) && !(sessions.unseen.has(name) && !connected)) {
        out.push(
          `${node} holds ${id} (${name || "no name"}, ${connected ? "connected" : "detached"}) that no client has`,
        );
      }
    }
  }
  for (const [id, nodes] of where) {
    if (nodes.length > 1 && sessions.live.has(id)) out.push(`${id} is held by ${nodes.join(" and ")}`);
  }
  return out;
}

export function checkStats(
  log: Ev[],
  opts: CheckOptions,
  segs: Map<string, Segment[]>,
  stopped: Set<string>,
): Violation[] {
  const out: Violation[] = [];
  const rounds = new Map<number, Of<"stats">[]>();
  for (const e of log) if (e.k === "stats") rounds.set(e.t, [...rounds.get(e.t) ?? [], e]);
  for (const [t, round] of rounds) {
    for (const text of statsMismatch(round, expected(log, opts, segs, stopped, t))) {
      out.push({ inv: 5, kind: "held", t, text });
    }
  }
  for (const e of log) {
    if ((e.k !== "stats" && e.k !== "heap") || e.heapUsed - e.base <= opts.heapBound) continue;
    const mib = (b: number) => (b / 2 ** 20).toFixed(1);
    out.push({
      inv: 5,
      kind: "heap",
      t: e.t,
      text: `${e.node} heap ${mib(e.heapUsed)} MiB, ${mib(e.heapUsed - e.base)} MiB over its process's first reading${
        e.k === "heap" ? " (during the faults)" : ""
      }`,
    });
  }
  return out;
}
