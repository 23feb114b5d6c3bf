// The invariant checker of the fault-schedule harness: pure code over an event log (_events.ts),
// unit-tested on hand-made logs (tests/chaos_checker.test.ts). Invariants:
//   1. per client and stream, what arrived is what was sent to it, in order, once — within each
//      segment of its history (a `resumed: false` open starts a new one);
//   2. client→hub: every message reaches handleMessage once, in order (at least once where a node
//      was SIGKILLed after taking it, or across a `resumed: false` boundary);
//   3. nobody gets a session whose current credential it did not present;
//   4. room.members() converges to the live sessions; 5. memory and detached sessions stay bounded.

import type { Ev } from "./_events.ts";
import { type CheckOptions, type Of, ranges, type Segment, segments, type Violation } from "./_segments.ts";
import { checkMembers, checkStats } from "./_sessions.ts";

export { type CheckOptions, ranges, type Segment, segments, type Violation } from "./_segments.ts";
export { expected, membersMismatch, statsMismatch } from "./_sessions.ts";

const label = (s: string): string => s === "h" ? "hub H" : s === "e" ? "own E" : `room ${s.slice(2)} R`;

/** "last 98, then 4 resumed:true opens and nothing": what a segment's stream got last, and what followed. */
function since(seg: Segment, last: Of<"msg"> | undefined): string {
  const after = seg.resumes.filter((t) => t > (last?.t ?? -Infinity)).length;
  return `last ${last?.n ?? "none"}${after > 0 ? `, then ${after} resumed:true open(s) and nothing` : ""}`;
}

/** How long after a Redis fault a node's connection may still be coming back (its reconnect backoff, ms). */
const RECONNECT_SLACK = 1000;

/** How close to a Redis restart a broadcast that reached no client may be lost with it (ms). */
const RESTART_SLACK = 1500;

/** Every violation the log shows, oldest first. */
export function check(events: readonly Ev[], opts: CheckOptions): Violation[] {
  const log = [...events].sort((a, b) => a.t - b.t);
  const out: Violation[] = [];
  const killedAt = new Map<string, number>();
  for (const e of log) if (e.k === "kill" && e.signal === "SIGKILL") killedAt.set(e.node, e.t);
  const end = log.find((e): e is Of<"end"> => e.k === "end");
  const stopped = new Set(log.filter((e) => e.k === "stop").map((e) => (e as Of<"stop">).c));
  const segs = new Map(opts.clients.map((c) => [c.name, segments(log, c.name)]));
  // per node: how many broadcasts and writes its broker's streams did not take (dropped for every
  // resumable session, counted and reported: not a lie, but not delivered either)
  const dropped = new Map<string, number>();
  for (const e of log) if (e.k === "dropped") dropped.set(e.node, Math.max(dropped.get(e.node) ?? 0, e.total));
  for (const e of log) {
    if (e.k === "stop") {
      out.push({ inv: 1, kind: "stopped", t: e.t, text: `${e.c} stopped for good (close ${e.code})` });
    }
    if (e.k === "stuck") out.push({ inv: 1, kind: "stuck", t: e.t, text: `the end phase gave up: ${e.what}` });
  }
  out.push(...checkSessionsKept(log, opts, segs));
  out.push(...checkBroadcasts(log, opts, segs, killedAt, end, stopped, dropped));
  out.push(...checkOwn(log, opts, segs, killedAt, end, stopped, dropped));
  out.push(...agreed(log, opts, segs));
  out.push(...checkInbound(log, opts, segs, killedAt, end, stopped));
  out.push(...checkCredentials(log));
  out.push(...checkMembers(log, opts, segs, stopped));
  out.push(...checkStats(log, opts, segs, stopped));
  return out.sort((a, b) => a.t - b.t);
}

/**
 * A session may end under a client only for a reason: Redis lost its state (restarted empty), or
 * someone presented its current credential and got it (a theft the checker allows), or the client
 * was away longer than the window. Any other `resumed: false` after the first open lost a session.
 */
function checkSessionsKept(log: Ev[], opts: CheckOptions, segs: Map<string, Segment[]>): Violation[] {
  const out: Violation[] = [];
  const restarted = log.find((e) => e.k === "fault" && e.kind === "redis-restart")?.t ?? Infinity;
  const presented = new Map<string, Of<"present">>();
  const taken = new Map<string, number>(); // client → when an attacker resumed its session
  const tokens = new Map<string, string>(); // credential → the client it was issued to
  const conns = new Map<string, string>(); // a client's connection → the client
  for (const e of log) {
    if (e.k === "present") {
      presented.set(e.conn, e);
      if (opts.clients.some((c) => c.name === e.who)) conns.set(e.conn, e.who);
    } else if (e.k === "welcome") {
      const owner = conns.get(e.conn);
      if (owner) tokens.set(e.token, owner);
      const p = presented.get(e.conn);
      const victim = p && !owner && e.resumed ? tokens.get(p.token) : undefined;
      if (victim && !taken.has(victim)) taken.set(victim, e.t);
    }
  }
  for (const [c, list] of segs) {
    for (const seg of list.slice(1)) {
      const before = list[seg.index - 1];
      const away = seg.start - Math.max(before.start, ...before.resumes);
      if (seg.start >= restarted || (taken.get(c) ?? Infinity) <= seg.start || away > opts.window) continue;
      out.push({
        inv: 1,
        kind: "session-lost",
        t: seg.start,
        text: `${c} got resumed:false (segment ${seg.index}) with no Redis restart, theft or window passed`,
      });
    }
  }
  return out;
}

/** Duplicates and reorders in one list of numbers (one violation of each kind, with a count); `allowed(n)` copies of n may repeat. */
function onceInOrder(
  list: readonly { n: number; t: number }[],
  what: string,
  inv: 1 | 2,
  allowed: (n: number) => number = () => 0,
  source: (n: number) => string = () => "",
): Violation[] {
  const seen = new Map<number, number>();
  const dups: { n: number; t: number }[] = [];
  const late: { n: number; t: number; top: number }[] = [];
  // in order per source: two nodes' broadcasts have no order between them but the stream's
  // (which every client must agree on: see `agreed`)
  const tops = new Map<string, number>();
  for (const m of list) {
    const copies = seen.get(m.n) ?? 0;
    seen.set(m.n, copies + 1);
    if (copies > 0) {
      if (copies > allowed(m.n)) dups.push(m);
      continue;
    }
    const from = source(m.n);
    const top = tops.get(from) ?? -Infinity;
    if (m.n < top) late.push({ ...m, top });
    tops.set(from, Math.max(top, m.n));
  }
  const out: Violation[] = [];
  if (dups.length > 0) {
    out.push({ inv, kind: "duplicate", t: dups[0].t, text: `${what}: ${ranges(dups.map((d) => d.n))} again` });
  }
  if (late.length > 0) {
    out.push({
      inv,
      kind: "reorder",
      t: late[0].t,
      text: `${what}: ${ranges(late.map((l) => l.n))} after later ones (first: ${late[0].n} after ${late[0].top})`,
    });
  }
  return out;
}

/** The broadcast streams the clients follow: the hub's and each of their rooms'. */
function broadcastStreams(opts: CheckOptions): string[] {
  return ["h", ...new Set(opts.clients.flatMap((c) => c.rooms.map((r) => `r:${r}`)))];
}

/** Each number broadcast in stream `s`, with the broadcast that sent it. */
function broadcastsOf(log: Ev[], s: string): Map<number, Of<"bc">> {
  const sent = new Map<number, Of<"bc">>();
  for (const e of log) {
    if (e.k === "bc" && e.s === s) { for (let n = e.from; n < e.from + e.count; n++) sent.set(n, e); }
  }
  return sent;
}

/** The numbers of stream `s` that some client got. */
function gotAnywhere(log: Ev[], s: string): Set<number> {
  return new Set(log.filter((e) => e.k === "msg" && e.s === s).map((e) => (e as Of<"msg">).n));
}

function checkBroadcasts(
  log: Ev[],
  opts: CheckOptions,
  segs: Map<string, Segment[]>,
  killedAt: Map<string, number>,
  end: Of<"end"> | undefined,
  stopped: Set<string>,
  dropped: Map<string, number>,
): Violation[] {
  const out: Violation[] = [];
  const streams = broadcastStreams(opts);
  const got = new Map(streams.map((s) => [s, gotAnywhere(log, s)]));
  const sent = new Map(streams.map((s) => [s, broadcastsOf(log, s)]));
  // Broadcasts that reached no client, per node that sent them: excused when the node counted at
  // least as many as dropped by its broker's streams.
  const unreached = new Map<string, number>();
  for (const s of streams) {
    for (const [n, bc] of sent.get(s)!) {
      if (bc.ok && !got.get(s)!.has(n)) unreached.set(bc.node, (unreached.get(bc.node) ?? 0) + 1);
    }
  }
  const excused = (node: string) => (unreached.get(node) ?? 0) <= (dropped.get(node) ?? 0);
  // Redis restarted without persistence loses what it acknowledged in its last moments (appended
  // and published, never delivered, then the stream gone): a documented loss, for every client.
  const restarts = log.filter((e) => e.k === "fault" && e.kind === "redis-restart").map((e) => e.t);
  const aroundRestart = (t: number) => restarts.some((r) => t >= r - RESTART_SLACK && t <= r + RESTART_SLACK);
  for (const s of streams) {
    const anywhere = got.get(s)!;
    const asked = sent.get(s)!;
    // A message a killed node took may be lost for all; any other that some client got, all must get.
    const due = (n: number) => {
      if (anywhere.has(n)) return true;
      const bc = asked.get(n);
      return !!bc?.ok && !((killedAt.get(bc.node) ?? -Infinity) >= bc.t) && !excused(bc.node) &&
        !aroundRestart(bc.t);
    };
    for (const c of opts.clients) {
      if (s !== "h" && !c.rooms.includes(s.slice(2))) continue;
      for (const seg of segs.get(c.name) ?? []) {
        const got = seg.got.get(s) ?? [];
        const what = `${c.name} ${label(s)} (segment ${seg.index})`;
        out.push(...onceInOrder(got, what, 1, undefined, (n) => asked.get(n)?.node ?? ""));
        const ns = [...new Set(got.map((m) => m.n))].sort((a, b) => a - b);
        const missing: number[] = [];
        for (let i = 1; i < ns.length; i++) {
          for (let n = ns[i - 1] + 1; n < ns[i]; n++) if (due(n)) missing.push(n);
        }
        if (ns.length > 0) {
          // the start of a new session: what was broadcast well after it opened is its own
          for (let n = ns[0] - 1; n >= 1; n--) {
            const bc = asked.get(n);
            if (bc && bc.t > seg.start + opts.headSlack && bc.t < seg.end && due(n)) missing.push(n);
          }
        }
        if (missing.length > 0) {
          const lost = missing.filter((n) => !anywhere.has(n));
          const lie = seg.resumes.length > 0 ? `, after ${seg.resumes.length} resumed:true open(s)` : "";
          out.push({
            inv: 1,
            kind: lost.length === missing.length ? "lost-for-all" : "gap",
            t: got.find((m) => m.n > Math.min(...missing))?.t ?? seg.start,
            text: `${what}: missing ${ranges(missing)}${
              lost.length ? ` (${ranges(lost)} reached no client)` : ""
            }${lie}`,
          });
        }
        const final = end?.finals[s];
        if (seg.last && end && final !== undefined && !stopped.has(c.name) && !ns.includes(final)) {
          out.push({
            inv: 1,
            kind: "no-final",
            t: end.t,
            text: `${what}: never got the final ${final} (${since(seg, got.at(-1))})`,
          });
        }
      }
    }
  }
  return out;
}

/**
 * Every client sees a stream's messages in the same order (the stream's): the order of the
 * longest list that is in order by itself is the reference; another list that puts two of them
 * the other way round disagrees.
 */
function agreed(log: Ev[], opts: CheckOptions, segs: Map<string, Segment[]>): Violation[] {
  const out: Violation[] = [];
  for (const s of broadcastStreams(opts)) {
    const sent = broadcastsOf(log, s);
    // in order per source by itself (a list that is not was reported already, and is left out)
    const inOrder = (ns: number[]) => {
      const tops = new Map<string, number>();
      for (const n of ns) {
        const from = sent.get(n)?.node ?? "";
        if (n < (tops.get(from) ?? -Infinity)) return false;
        tops.set(from, n);
      }
      return true;
    };
    const lists: { what: string; ns: number[]; t: number[] }[] = [];
    for (const c of opts.clients) {
      if (s !== "h" && !c.rooms.includes(s.slice(2))) continue;
      for (const seg of segs.get(c.name) ?? []) {
        const firsts = new Map<number, number>();
        for (const m of seg.got.get(s) ?? []) if (!firsts.has(m.n)) firsts.set(m.n, m.t);
        lists.push({
          what: `${c.name} ${label(s)} (segment ${seg.index})`,
          ns: [...firsts.keys()],
          t: [...firsts.values()],
        });
      }
    }
    const ordered = lists.filter((l) => inOrder(l.ns));
    const ref = ordered.reduce<typeof lists[number] | undefined>(
      (a, b) => (!a || b.ns.length > a.ns.length ? b : a),
      undefined,
    );
    if (!ref) continue;
    const at = new Map(ref.ns.map((n, i) => [n, i]));
    for (const l of ordered) {
      if (l === ref) continue;
      let last = -1;
      for (let i = 0; i < l.ns.length; i++) {
        const p = at.get(l.ns[i]);
        if (p === undefined) continue;
        if (p < last) {
          out.push({
            inv: 1,
            kind: "disorder",
            t: l.t[i],
            text: `${l.what}: ${l.ns[i]} in another order than ${ref.what} has it`,
          });
          break;
        }
        last = p;
      }
    }
  }
  return out;
}

function checkOwn(
  log: Ev[],
  _opts: CheckOptions,
  segs: Map<string, Segment[]>,
  killedAt: Map<string, number>,
  end: Of<"end"> | undefined,
  stopped: Set<string>,
  dropped: Map<string, number>,
): Violation[] {
  const out: Violation[] = [];
  const handled = log.filter((e): e is Of<"handled"> => e.k === "handled");
  for (const [c, list] of segs) {
    for (const seg of list) {
      const what = `${c} ${label("e")} (segment ${seg.index})`;
      if (seg.sids.length > 1) {
        out.push({
          inv: 3,
          kind: "swapped",
          t: seg.start,
          text: `${c} (segment ${seg.index}) was on sessions ${seg.sids.join(", ")} without a resumed:false`,
        });
      }
      const sid = seg.sids[0];
      const mine = handled.filter((h) => h.c === c && seg.sids.includes(h.sid));
      const times = (n: number) => mine.filter((h) => h.n === n);
      const echoes = seg.got.get("e") ?? [];
      out.push(...onceInOrder(echoes, what, 1, (n) => Math.max(0, times(n).length - 1)));
      if (sid === undefined) continue;
      for (const m of echoes) {
        if (times(m.n).length === 0) {
          out.push({ inv: 1, kind: "foreign", t: m.t, text: `${what}: echo ${m.n} that session ${sid} never took` });
        }
      }
      const ns = [...new Set(echoes.map((m) => m.n))].sort((a, b) => a - b);
      const gotten = new Set(ns);
      const upTo = seg.last && end && !stopped.has(c) ? Infinity : ns.at(-1) ?? -Infinity;
      const missing = [...new Set(mine.map((h) => h.n))].filter((n) =>
        n > (ns[0] ?? Infinity) && n < upTo && !gotten.has(n) &&
        // taken only by nodes killed afterwards: its echo may have died with them
        !times(n).every((h) => (killedAt.get(h.node) ?? -Infinity) >= h.t)
      );
      // echoes a node's broker's streams did not take (counted by it): not sent, not a lie
      const byNode = new Map<string, number>();
      for (const n of missing) {
        const node = times(n).at(-1)?.node ?? "";
        byNode.set(node, (byNode.get(node) ?? 0) + 1);
      }
      if ([...byNode].every(([node, count]) => count <= (dropped.get(node) ?? 0))) missing.length = 0;
      if (missing.length > 0) {
        const lie = seg.resumes.length > 0 ? `, after ${seg.resumes.length} resumed:true open(s)` : "";
        out.push({ inv: 1, kind: "gap", t: seg.start, text: `${what}: missing echoes ${ranges(missing)}${lie}` });
      }
      const final = end?.echoes[c];
      if (seg.last && end && final !== undefined && !stopped.has(c) && !gotten.has(final)) {
        out.push({
          inv: 1,
          kind: "no-final",
          t: end.t,
          text: `${what}: never got the echo of the final ${final} (${since(seg, echoes.at(-1))})`,
        });
      }
    }
  }
  return out;
}

function checkInbound(
  log: Ev[],
  opts: CheckOptions,
  segs: Map<string, Segment[]>,
  killedAt: Map<string, number>,
  end: Of<"end"> | undefined,
  stopped: Set<string>,
): Violation[] {
  const out: Violation[] = [];
  // A node cut off from Redis cannot record what its handlers took: a client that moves to
  // another node meanwhile may have those messages taken again (at least once: documented).
  const redisFaults = log.filter((e): e is Of<"fault"> => e.k === "fault" && e.kind.startsWith("redis-"));
  const unrecorded = (b: Of<"handled">, h: Of<"handled">) =>
    redisFaults.some((f) =>
      (f.node === undefined || f.node === b.node) && f.t <= h.t && b.t <= f.t + (f.ms ?? 0) + RECONNECT_SLACK
    );
  for (const { name: c } of opts.clients) {
    const sent = log.filter((e): e is Of<"send"> => e.k === "send" && e.c === c && e.ok);
    const took = log.filter((e): e is Of<"handled"> => e.k === "handled" && e.c === c);
    const what = `${c} → hub`;
    // a copy may repeat in a new session (re-sent across resumed:false) or after a node that took it was killed
    const firsts: Of<"handled">[] = [];
    const byN = new Map<number, Of<"handled">[]>();
    const twice = new Map<string, Of<"handled">[]>();
    for (const h of took) {
      const before = byN.get(h.n) ?? [];
      if (before.length === 0) firsts.push(h);
      else if (
        !before.some((b) =>
          b.sid !== h.sid || (killedAt.get(b.node) ?? -Infinity) >= b.t || (b.node !== h.node && unrecorded(b, h))
        )
      ) {
        const key = `${h.sid} on ${h.node} (before on ${before.map((b) => b.node).join(", ")})`;
        twice.set(key, [...twice.get(key) ?? [], h]);
      }
      before.push(h);
      byN.set(h.n, before);
    }
    for (const [key, list] of twice) {
      out.push({
        inv: 2,
        kind: "duplicate",
        t: list[0].t,
        text: `${what}: ${ranges(list.map((h) => h.n))} taken again in session ${key}`,
      });
    }
    out.push(...onceInOrder(firsts, what, 2));
    const last = segs.get(c)?.at(-1);
    if (end && !stopped.has(c) && last) {
      const lost = sent.filter((s) => !byN.has(s.n)).map((s) => s.n);
      if (lost.length > 0) {
        out.push({ inv: 2, kind: "lost", t: end.t, text: `${what}: never taken: ${ranges(lost)}` });
      }
    }
  }
  return out;
}

function checkCredentials(log: Ev[]): Violation[] {
  const out: Violation[] = [];
  const presented = new Map<string, Of<"present">>();
  const resumedBy = new Map<string, Of<"present">[]>();
  const who = new Map<string, Of<"who">>();
  for (const e of log) if (e.k === "who") who.set(e.conn, e);
  for (const e of log) {
    if (e.k === "present") presented.set(e.conn, e);
    if (e.k !== "welcome" || !e.resumed) continue;
    const p = presented.get(e.conn);
    if (!p) continue;
    const w = who.get(e.conn);
    const whose = w ? ` (session ${w.sid} of ${w.name || "no one"})` : "";
    if (p.kind === "new" || p.token === "" || p.kind === "empty" || p.kind === "forged") {
      out.push({
        inv: 3,
        kind: `resumed-${p.kind}`,
        t: e.t,
        text: `${p.who} presented ${p.kind === "new" ? "no" : `a ${p.kind}`} credential and got resumed:true${whose}`,
      });
      continue;
    }
    const before = resumedBy.get(p.token) ?? [];
    if (before.length > 0) {
      out.push({
        inv: 3,
        kind: `resumed-${p.kind}`,
        t: e.t,
        text: `${p.who} (${p.kind}) got resumed:true on credential ${p.token.slice(0, 8)}… that ${
          before.map((b) => b.who).join(", ")
        } had already resumed with${whose}`,
      });
    }
    before.push(p);
    resumedBy.set(p.token, before);
  }
  return out;
}
