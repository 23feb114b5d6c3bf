// The fault-schedule harness's invariant checker (tests/chaos/_checker.ts) on hand-made event logs:
// each invariant, what it must flag and what it must let pass (the documented exceptions).

import assert from "node:assert/strict";
import { test } from "./_helpers.ts";
import { check, type CheckOptions, ranges, type Violation } from "./chaos/_checker.ts";
import type { Ev } from "./chaos/_events.ts";

const opts: CheckOptions = {
  clients: [{ name: "c0", rooms: ["a"] }, { name: "c1", rooms: [] }],
  window: 8000,
  headSlack: 1500,
  heapBound: 64 << 20,
};

/** An event without its time (distributed over the kinds). */
type Untimed = Ev extends infer E ? E extends Ev ? Omit<E, "t"> & { t?: number } : never : never;

/** A log builder: times go up by one per event unless given. */
class Log {
  events: Ev[] = [];
  t = 1000;
  add(e: Untimed): this {
    this.t = e.t ?? this.t + 1;
    this.events.push({ ...e, t: this.t } as Ev);
    return this;
  }
  open(c: string, resumed: boolean, sid?: string): this {
    this.add({ k: "open", c, resumed });
    return sid ? this.add({ k: "sid", c, sid }) : this;
  }
  bc(s: string, from: number, count = 1, node = "A", ok = true): this {
    return this.add({ k: "bc", s, from, count, node, ok });
  }
  msgs(c: string, s: string, ...ns: number[]): this {
    for (const n of ns) this.add({ k: "msg", c, s, n });
    return this;
  }
  /** Client `c` sends n, node `node` takes it in session `sid`, and c gets the echo. */
  echo(c: string, n: number, sid: string, node = "A", echoed = true): this {
    this.add({ k: "send", c, n, ok: true }).add({ k: "handled", node, c, sid, n });
    return echoed ? this.msgs(c, "e", n) : this;
  }
  end(finals: Record<string, number>, echoes: Record<string, number>): this {
    return this.add({ k: "end", finals, echoes });
  }
}

const kinds = (v: Violation[]) => v.map((x) => `${x.inv} ${x.kind}`);

/** Two clients, a clean run: c0 (room a) on session s0, c1 on s1, both to the end. */
function clean(): Log {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.bc("h", 1, 2).bc("r:a", 1).msgs("c0", "h", 1, 2).msgs("c0", "r:a", 1).msgs("c1", "h", 1, 2);
  log.echo("c0", 1, "s0").echo("c1", 1, "s1");
  log.bc("h", 3).bc("r:a", 2).msgs("c0", "h", 3).msgs("c0", "r:a", 2).msgs("c1", "h", 3);
  log.echo("c0", 2, "s0").echo("c1", 2, "s1");
  return log.end({ h: 3, "r:a": 2 }, { c0: 2, c1: 2 });
}

test("chaos checker: a clean run has no violation", () => {
  assert.deepEqual(check(clean().events, opts), []);
  assert.equal(ranges([1, 2, 3, 5, 7, 8]), "1–3, 5, 7–8");
});

test("chaos checker: a message missing inside a segment is a gap, and says a resumed:true open lied", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1").bc("h", 1, 4);
  log.msgs("c0", "h", 1).open("c0", true).msgs("c0", "h", 4).msgs("c1", "h", 1, 2, 3, 4);
  log.echo("c0", 1, "s0").echo("c1", 1, "s1").end({ h: 4 }, { c0: 1, c1: 1 });
  const v = check(log.events, opts);
  assert.deepEqual(kinds(v), ["1 gap"]);
  assert.match(v[0].text, /c0 hub H \(segment 0\): missing 2–3, after 1 resumed:true/);
});

test("chaos checker: a resumed:false open splits the history; the old segment's tail may be lost", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1").bc("h", 1, 4);
  log.msgs("c0", "h", 1).add({ k: "fault", kind: "redis-restart" }).open("c0", false, "s2").msgs("c0", "h", 4).msgs(
    "c1",
    "h",
    1,
    2,
    3,
    4,
  );
  log.echo("c0", 1, "s2").echo("c1", 1, "s1").end({ h: 4 }, { c0: 1, c1: 1 });
  assert.deepEqual(check(log.events, opts), []);
});

test("chaos checker: duplicates and reorders within a segment, each reported once with its numbers", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1").bc("h", 1, 5);
  log.msgs("c0", "h", 1, 2, 2, 4, 3, 5).msgs("c1", "h", 1, 2, 3, 4, 5);
  log.echo("c0", 1, "s0").echo("c1", 1, "s1").end({ h: 5 }, { c0: 1, c1: 1 });
  const v = check(log.events, opts);
  assert.deepEqual(kinds(v).sort(), ["1 duplicate", "1 reorder"]);
  assert.match(v.find((x) => x.kind === "reorder")!.text, /3 after later ones \(first: 3 after 4\)/);
});

test("chaos checker: a message nobody got is excused only when its node was SIGKILLed after taking it", () => {
  const build = (killed: boolean) => {
    const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
    log.bc("h", 1).bc("h", 2, 1, "B").bc("h", 3);
    if (killed) log.add({ k: "kill", node: "B", signal: "SIGKILL" });
    log.msgs("c0", "h", 1, 3).msgs("c1", "h", 1, 3);
    return log.echo("c0", 1, "s0").echo("c1", 1, "s1").end({ h: 3 }, { c0: 1, c1: 1 }).events;
  };
  assert.deepEqual(check(build(true), opts), []);
  assert.deepEqual(kinds(check(build(false), opts)), ["1 lost-for-all", "1 lost-for-all"]);
});

test("chaos checker: a new session must get what was broadcast well after it opened, and the final marker", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.bc("h", 1, 1, "A", true).msgs("c1", "h", 1);
  log.add({ k: "bc", s: "h", from: 2, count: 1, node: "A", ok: true, t: 5000 }).msgs("c1", "h", 2);
  log.bc("h", 3).msgs("c0", "h", 3).msgs("c1", "h", 3).bc("h", 4).msgs("c1", "h", 4);
  log.echo("c0", 1, "s0").echo("c1", 1, "s1").end({ h: 4 }, { c0: 1, c1: 1 });
  const v = check(log.events, opts);
  assert.deepEqual(kinds(v), ["1 gap", "1 no-final"]);
  assert.match(v[0].text, /missing 2$/);
});

test("chaos checker: echoes once, in order; a second copy only where the message was taken twice", () => {
  const build = (killed: boolean) => {
    const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
    log.echo("c0", 1, "s0", "A").add({ k: "handled", node: "A", c: "c0", sid: "s0", n: 2 });
    if (killed) log.add({ k: "kill", node: "A", signal: "SIGKILL" });
    log.msgs("c0", "e", 2).add({ k: "handled", node: "B", c: "c0", sid: "s0", n: 2 }).msgs("c0", "e", 2);
    log.add({ k: "send", c: "c0", n: 2, ok: true });
    return log.echo("c1", 1, "s1").end({}, { c0: 2, c1: 1 }).events;
  };
  assert.deepEqual(check(build(true), opts), []);
  assert.deepEqual(kinds(check(build(false), opts)), ["2 duplicate"]);
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.echo("c0", 1, "s0").echo("c0", 2, "s0", "A", false).echo("c0", 3, "s0").echo("c1", 1, "s1");
  const v = check(log.end({}, { c0: 3, c1: 1 }).events, opts);
  assert.deepEqual(kinds(v), ["1 gap"]);
  assert.match(v[0].text, /missing echoes 2/);
});

test("chaos checker: client→hub twice in one session is flagged; across a new session or a killed node it is not", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.echo("c0", 1, "s0", "A").add({ k: "handled", node: "B", c: "c0", sid: "s0", n: 1 });
  log.echo("c1", 1, "s1", "A").add({ k: "fault", kind: "redis-restart" }).open("c1", false, "s2").add({
    k: "handled",
    node: "B",
    c: "c1",
    sid: "s2",
    n: 1,
  });
  log.msgs("c1", "e", 1).add({ k: "send", c: "c0", n: 2, ok: true }).add({ k: "send", c: "c1", n: 2, ok: true });
  log.add({ k: "handled", node: "B", c: "c1", sid: "s2", n: 2 }).msgs("c1", "e", 2);
  const v = check(log.end({}, { c0: 2, c1: 2 }).events, opts);
  assert.deepEqual(kinds(v), ["2 duplicate", "1 no-final", "2 lost"]);
  assert.match(v[0].text, /c0 → hub: 1 taken again in session s0 on B \(before on A\)/);
  assert.match(v[2].text, /never taken: 2/);
});

test("chaos checker: client→hub out of order", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.add({ k: "send", c: "c0", n: 1, ok: true }).add({ k: "send", c: "c0", n: 2, ok: true });
  log.add({ k: "handled", node: "A", c: "c0", sid: "s0", n: 2 }).add({
    k: "handled",
    node: "A",
    c: "c0",
    sid: "s0",
    n: 1,
  });
  log.msgs("c0", "e", 1, 2).echo("c1", 1, "s1");
  const v = check(log.end({}, { c0: 2, c1: 1 }).events, opts);
  assert.deepEqual(kinds(v), ["2 reorder"]);
});

test("chaos checker: credentials — forged, empty or reused ones never resume; a lost welcome's retry may", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.add({ k: "present", conn: "c0#2", who: "c0", kind: "client", token: "T1" }); // its welcome is lost
  log.add({ k: "present", conn: "c0#3", who: "c0", kind: "client", token: "T1" });
  log.add({ k: "welcome", conn: "c0#3", resumed: true, token: "T2" }).open("c0", true);
  log.add({ k: "present", conn: "a1#1", who: "a1", kind: "replay", token: "T1" });
  log.add({ k: "welcome", conn: "a1#1", resumed: true, token: "T3" });
  log.add({ k: "who", conn: "a1#1", sid: "s0", name: "c0" });
  log.add({ k: "present", conn: "a2#1", who: "a2", kind: "forged", token: "xyz" });
  log.add({ k: "welcome", conn: "a2#1", resumed: true, token: "T4" });
  log.add({ k: "present", conn: "a3#1", who: "a3", kind: "empty", token: "" });
  log.add({ k: "welcome", conn: "a3#1", resumed: false, token: "T5" });
  log.echo("c0", 1, "s0").echo("c1", 1, "s1");
  const v = check(log.end({}, { c0: 1, c1: 1 }).events, opts);
  assert.deepEqual(kinds(v), ["3 resumed-replay", "3 resumed-forged"]);
  assert.match(
    v[0].text,
    /a1 \(replay\) got resumed:true on credential T1… that c0 had already resumed with \(session s0 of c0\)/,
  );
});

test("chaos checker: a session lost with no Redis restart, no theft of its credential and within the window", () => {
  const build = (how: "nothing" | "theft" | "away") => {
    const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
    log.add({ k: "present", conn: "c0#1", who: "c0", kind: "new", token: "" });
    log.add({ k: "welcome", conn: "c0#1", resumed: false, token: "T1" });
    if (how === "theft") {
      log.add({ k: "present", conn: "a1#1", who: "a1", kind: "twice", token: "T1" });
      log.add({ k: "welcome", conn: "a1#1", resumed: true, token: "T2" });
    }
    log.add({ k: "open", c: "c0", resumed: false, t: log.t + (how === "away" ? 9000 : 1) }).add({
      k: "sid",
      c: "c0",
      sid: "s2",
    });
    return log.echo("c0", 1, "s2").echo("c1", 1, "s1").end({}, { c0: 1, c1: 1 }).events;
  };
  assert.deepEqual(kinds(check(build("nothing"), opts)), ["1 session-lost"]);
  assert.deepEqual(check(build("theft"), opts), []);
  assert.deepEqual(check(build("away"), opts), []);
});

test("chaos checker: a segment on two sessions without a resumed:false; a client that stopped by itself", () => {
  const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
  log.open("c0", true, "s9").add({ k: "stop", c: "c1", code: 1000 });
  const v = check(log.echo("c0", 1, "s9").end({}, { c0: 1 }).events, opts);
  assert.deepEqual(kinds(v).sort(), ["1 stopped", "3 swapped"]);
});

test("chaos checker: members and held sessions — live ones listed, left ones tolerated for the window, others flagged", () => {
  const base = () => {
    const log = new Log().open("c0", false, "s0").add({ k: "fault", kind: "redis-restart" });
    log.open("c0", false, "s2").open("c1", false, "s1");
    return log.echo("c0", 1, "s2").echo("c1", 1, "s1").end({}, { c0: 1, c1: 1 });
  };
  const ok = base();
  ok.add({ k: "members", node: "A", room: "a", ids: ["s2", "s0"], names: ["c0", "c0"] });
  ok.add({ k: "stats", node: "A", sessions: [["s2", true, "c0"], ["s0", false, "c0"]], heapUsed: 10, base: 5 });
  assert.deepEqual(check(ok.events, opts), []);
  const late = base();
  late.add({ k: "members", node: "A", room: "a", ids: ["s0", "s7"], names: ["c0", "a1"], t: late.t + 9000 });
  late.add({ k: "stats", node: "A", sessions: [["s2", false, "c0"], ["s2", true, "c0"]], heapUsed: 80 << 20, base: 5 });
  assert.deepEqual(kinds(check(late.events, opts)), ["4 ghost", "4 absent", "5 held", "5 heap"]);
  // a session made for a connection whose welcome was lost is nobody's yet: tolerated for the window
  const unseen = base().add({ k: "present", conn: "c1#9", who: "c1", kind: "client", token: "T" });
  unseen.add({
    k: "stats",
    node: "A",
    sessions: [["s2", true, "c0"], ["s1", true, "c1"], ["s8", false, "c1"]],
    heapUsed: 1,
    base: 1,
  });
  assert.deepEqual(check(unseen.events, opts), []);
});

test("chaos checker: two nodes' broadcasts have no order between them, but every client must see the stream's one order", () => {
  const build = (c1: number[]) => {
    const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
    log.bc("h", 1, 2, "A").bc("h", 3, 2, "B");
    log.msgs("c0", "h", 3, 1, 4, 2).msgs("c1", "h", ...c1);
    return log.echo("c0", 1, "s0").echo("c1", 1, "s1").end({ h: 4 }, { c0: 1, c1: 1 }).events;
  };
  // B's 3 and 4 before A's 1 and 2 in the stream: in order per node, the same for both clients
  assert.deepEqual(check(build([3, 1, 4, 2]), opts), []);
  // c1 saw them in another order than c0: each in order per node, but not the stream's one order
  const v = check(build([1, 3, 2, 4]), opts);
  assert.deepEqual(kinds(v), ["1 disorder"]);
  assert.match(v[0].text, /in another order than/);
});

test("chaos checker: broadcasts and echoes nobody got are excused up to what their node counted as dropped by its broker", () => {
  const build = (dropped: number) => {
    const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
    log.bc("h", 1).bc("h", 2, 2, "B").bc("h", 4);
    if (dropped > 0) log.add({ k: "dropped", node: "B", total: dropped });
    log.msgs("c0", "h", 1, 4).msgs("c1", "h", 1, 4);
    return log.echo("c0", 1, "s0").echo("c1", 1, "s1").end({ h: 4 }, { c0: 1, c1: 1 }).events;
  };
  assert.deepEqual(check(build(2), opts), []);
  assert.deepEqual(kinds(check(build(1), opts)), ["1 lost-for-all", "1 lost-for-all"], "more missing than dropped");
  assert.deepEqual(kinds(check(build(0), opts)), ["1 lost-for-all", "1 lost-for-all"]);
});

test("chaos checker: client→hub taken again on another node is excused only when the first node's Redis link was down then", () => {
  const build = (fault: "A" | "B" | undefined) => {
    const log = new Log().open("c0", false, "s0").open("c1", false, "s1");
    log.echo("c0", 1, "s0", "A", false);
    if (fault) log.add({ k: "fault", kind: "redis-blip", node: fault, ms: 500 });
    log.add({ k: "handled", node: "B", c: "c0", sid: "s0", n: 1 }).msgs("c0", "e", 1);
    return log.echo("c1", 1, "s1").end({}, { c0: 1, c1: 1 }).events;
  };
  assert.deepEqual(kinds(check(build("A"), opts)), []);
  assert.deepEqual(kinds(check(build("B"), opts)), ["2 duplicate"], "another node's blip excuses nothing");
  assert.deepEqual(kinds(check(build(undefined), opts)), ["2 duplicate"]);
});
