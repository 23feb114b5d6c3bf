// Runs one seed of the fault-schedule harness on a World: fresh hubs, the clients, a workload
// (numbered broadcasts on every stream from one producing node at a time, numbered client
// messages echoed by the session's handler), the seed's faults, then the end phase (heal, restart,
// reconnect, a final marker on every stream, members and memory polled), then the checker.

import * as fs from "node:fs";
import process from "node:process";
import { deadline, Signal } from "../_helpers.ts";
import {
  check,
  type CheckOptions,
  expected,
  membersMismatch,
  segments,
  statsMismatch,
  type Violation,
} from "./_checker.ts";
import { ObservedClient, type RunClient } from "./_clients.ts";
import { type Ev, now } from "./_events.ts";
import { type FaultContext, inject, otherSlot } from "./_faults.ts";
import { RawClient } from "./_raw.ts";
import { type Plan, STREAMS } from "./_schedule.ts";
import type { NodeSlot, World } from "./_world.ts";

/** The bounds the checker holds the nodes to (the window is the nodes' WINDOW default). */
export const BOUNDS: Omit<CheckOptions, "clients"> = { window: 8000, headSlack: 1500, heapBound: 64 << 20 };

/** What a seed did and found. */
export interface SeedResult {
  plan: Plan;
  violations: Violation[];
  /** Faults injected, per kind. */
  injected: Map<string, number>;
  /** Steps not injected, with why. */
  skipped: string[];
  /** Messages the clients received (each checked), and client messages the hubs took. */
  delivered: number;
  handled: number;
  ms: number;
  events: Ev[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const debug = (msg: string) =>
  process.env.CHAOS_DEBUG && console.error(`[chaos ${new Date().toISOString().slice(11, 23)}] ${msg}`);

/** Runs one seed's plan; `world` is left ready for the next seed. */
export async function runSeed(world: World, p: Plan, runId: string): Promise<SeedResult> {
  const started = Date.now();
  const events: Ev[] = [];
  const signal = new Signal();
  const seen = new Set<string>();
  const record = (e: Ev) => {
    events.push(e);
    if (e.k === "msg") seen.add(`${e.c} ${e.s} ${e.n}`);
    signal.ping();
  };
  debug(`seed ${p.seed}: begin`);
  await world.begin(p.seed, `chaos:${runId}:${p.seed}`, p.routing);
  const clients = new Map<string, RunClient>();
  for (const c of p.clients) {
    const proxy = world.clients.get(c.name)!;
    proxy.heal();
    proxy.retarget(world.nodes[p.start[c.name]].port);
    const url = `ws://127.0.0.1:${proxy.port}/?name=${c.name}&rooms=${c.rooms.join(",")}`;
    clients.set(
      c.name,
      p.raw.includes(c.name) ? new RawClient(c.name, url, record) : new ObservedClient(c.name, url, record),
    );
  }
  const injected = new Map<string, number>();
  const skipped: string[] = [];
  try {
    await signal.until(() => [...clients.values()].every((c) => c.open), "every client to open", 15_000).catch(() => {
      for (const c of clients.values()) if (!c.open) record({ k: "stuck", t: now(), what: `${c.name} never opened` });
    });
    debug("clients open");
    await sleep(300); // a node subscribes to a room's channel about a round trip after its first member joined

    // the workload
    let producing = true;
    const next = new Map(STREAMS.map((s) => [s, 1]));
    const producer = new Map(Object.entries(p.producers));
    const bursts = new Map<string, { slot: number; count: number }>();
    const broadcast = async (s: string, slot: number, count: number, pad = 0) => {
      const node = world.nodes[slot].alive ? world.nodes[slot] : otherSlot(world, slot);
      const from = next.get(s)!;
      next.set(s, from + count);
      const t = now();
      const hub = node.hub;
      const res = await world.control(node, `/bc?s=${s}&from=${from}&count=${count}&pad=${pad}`);
      await res?.body?.cancel();
      record({ k: "bc", t, s, from, count, node: hub, ok: res !== undefined });
      return res !== undefined ? from : undefined;
    };
    const produce = async (s: string) => {
      while (producing) {
        const b = bursts.get(s);
        bursts.delete(s);
        if (b) await broadcast(s, b.slot, b.count, 300);
        else await broadcast(s, producer.get(s)!, 1 + Math.floor(Math.random() * 2));
        await sleep(30 + Math.random() * 60);
      }
      debug(`producer ${s} stopped`);
    };
    const nextK = new Map(p.clients.map((c) => [c.name, 1]));
    const send = (c: RunClient) => {
      const n = nextK.get(c.name)!;
      nextK.set(c.name, n + 1);
      record({ k: "send", t: now(), c: c.name, n, ok: c.send(n) });
      return n;
    };
    const talk = async (c: RunClient) => {
      while (producing && !c.stopped) {
        if (!c.quiet) send(c);
        await sleep(40 + Math.random() * 80);
      }
      debug(`${c.name} stopped talking`);
    };
    const loops = [...STREAMS.map(produce), ...[...clients.values()].map(talk)];

    // the faults
    let active = true;
    const ctx: FaultContext = {
      world,
      clients,
      record,
      burst: (stream, slot, count) => bursts.set(stream, { slot, count }),
      produceOn: (stream, slot) => producer.set(stream, slot),
      injected,
      skipped,
      active: () => active,
    };
    const faults = p.steps.map((step) =>
      sleep(step.at).then(() => inject(ctx, step)).then(() => debug(`${step.kind} over`)).catch((err) =>
        skipped.push(`${(step.at / 1000).toFixed(2)}s ${step.kind} failed: ${(err as Error).message}`)
      )
    );
    await sleep(p.phase);
    for (const n of world.nodes) {
      const s = await stats(world, n);
      if (s) record({ k: "heap", t: now(), node: n.hub, heapUsed: s.heapUsed, base: s.base });
    }
    active = false;
    producing = false;
    debug("phase over");
    await deadline(Promise.all([...faults, ...loops]), "the faults to end", 30_000).catch((err) =>
      record({ k: "stuck", t: now(), what: (err as Error).message })
    );
    debug("faults over");

    // the end: everything healed, every node up, every client back
    await world.heal();
    for (const n of world.nodes) if (!n.alive) await world.startNode(n);
    debug("healed");
    const live = () => [...clients.values()].filter((c) => !c.stopped);
    await signal.until(() => live().every((c) => c.open), "every client to be open again", 20_000).catch(() => {
      for (const c of live()) if (!c.open) record({ k: "stuck", t: now(), what: `${c.name} never opened again` });
    });
    debug("clients back");
    // a final marker on every stream; again if a client started a new session meanwhile (a session
    // made after a marker does not get it)
    let finals: Record<string, number> = {};
    let echoes: Record<string, number> = {};
    const missing = (name: string) => {
      const spec = p.clients.find((c) => c.name === name)!;
      const want = Object.entries(finals).filter(([s]) => s === "h" || spec.rooms.includes(s.slice(2)));
      want.push(["e", echoes[name]]);
      return want.filter(([s, n]) => !seen.has(`${name} ${s} ${n}`)).map(([s, n]) => `${s} ${n}`);
    };
    const fresh = () => events.filter((e) => e.k === "open" && !e.resumed).length;
    for (let round = 0; round < 3; round++) {
      const sessions = fresh();
      finals = {};
      for (const s of STREAMS) {
        for (let attempt = 0; attempt < 3 && finals[s] === undefined; attempt++) {
          const n = await broadcast(s, (producer.get(s)! + attempt) % world.nodes.length, 1);
          if (n !== undefined) finals[s] = n;
        }
      }
      echoes = {};
      for (const c of live()) echoes[c.name] = send(c);
      const done = () => live().every((c) => missing(c.name).length === 0);
      const last = round === 2;
      try {
        await signal.until(() => done() || (!last && fresh() > sessions), "the final markers", 15_000);
      } catch {
        for (const c of live()) {
          const m = missing(c.name);
          if (m.length > 0) record({ k: "stuck", t: now(), what: `${c.name} has not got ${m.join(", ")}` });
        }
        break;
      }
      if (done() || last) break;
      await signal.until(() => live().every((c) => c.open), "every client to be open again", 10_000).catch(() => {});
    }
    debug("finals in");
    record({ k: "end", t: now(), finals, echoes });
    readLogs(world, record);
    await settle(world, p, events, clients, record);
    debug("settled");
  } finally {
    for (const c of clients.values()) c.close();
  }
  const violations = check(events, { clients: p.clients, ...BOUNDS });
  return {
    plan: p,
    violations,
    injected,
    skipped,
    delivered: events.filter((e) => e.k === "msg").length,
    handled: events.filter((e) => e.k === "handled").length,
    ms: Date.now() - started,
    events,
  };
}

/** A node's sessions and heap (after a GC), with its process's first heap reading. */
async function stats(
  world: World,
  n: NodeSlot,
): Promise<{ sessions: [string, boolean, string][]; heapUsed: number; base: number } | undefined> {
  const res = await world.control(n, "/stats", 5000);
  if (!res) return undefined;
  const s = await res.json() as { sessions: [string, boolean, string][]; heapUsed: number };
  const pid = n.child?.proc.pid ?? 0;
  if (!n.base.has(pid)) n.base.set(pid, s.heapUsed);
  return { sessions: s.sessions, heapUsed: s.heapUsed, base: n.base.get(pid)! };
}

/** What every node's handleMessage took, from the log files of this seed's hubs. */
function readLogs(world: World, record: (e: Ev) => void): void {
  for (const [path, node] of world.logs) {
    if (!fs.existsSync(path)) continue;
    for (const line of fs.readFileSync(path, "utf8").split("\n")) {
      const [t, kind, c, sid, n] = line.split(" ");
      if (kind === "h") record({ k: "handled", t: Number(t), node, c, sid, n: Number(n) });
      if (kind === "D") record({ k: "dropped", t: Number(t), node, total: Number(n) });
    }
  }
}

/**
 * Polls every node's members and sessions until they match the live sessions (or a bound passes:
 * presence's interval, plus presenceTtl and a heartbeat for a dead node's members), then records them.
 */
async function settle(
  world: World,
  p: Plan,
  events: Ev[],
  clients: Map<string, RunClient>,
  record: (e: Ev) => void,
): Promise<void> {
  const opts = { clients: p.clients, ...BOUNDS };
  const sorted = [...events].sort((a, b) => a.t - b.t);
  const segs = new Map(p.clients.map((c) => [c.name, segments(sorted, c.name)]));
  const stopped = new Set([...clients.values()].filter((c) => c.stopped).map((c) => c.name));
  const rooms = [...new Set(p.clients.flatMap((c) => c.rooms))];
  const until = Date.now() + 50 + 2000 + 500 + 1500;
  while (true) {
    const t = now();
    const sessions = expected(sorted, opts, segs, stopped, t);
    const members: Extract<Ev, { k: "members" }>[] = [];
    const round: Extract<Ev, { k: "stats" }>[] = [];
    for (const n of world.nodes) {
      for (const room of rooms) {
        const res = await world.control(n, `/members?room=${room}`);
        if (!res) continue;
        const list = await res.json() as { id: string; name: string }[];
        members.push({
          k: "members",
          t,
          node: n.hub,
          room,
          ids: list.map((m) => m.id),
          names: list.map((m) => m.name),
        });
      }
      const s = await stats(world, n);
      if (s) round.push({ k: "stats", t, node: n.hub, ...s });
    }
    const ok = members.every((m) => {
      const { ghosts, missing } = membersMismatch(m, sessions);
      return ghosts.length === 0 && missing.length === 0;
    }) && statsMismatch(round, sessions).length === 0;
    if (ok || Date.now() > until) {
      for (const e of [...members, ...round]) record(e);
      return;
    }
    await sleep(250);
  }
}
