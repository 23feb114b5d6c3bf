// A seed's plan: its settings and its fault schedule, drawn from a seeded generator, so that a seed
// names one run and `npm run chaos -- --seed N` replays it. Printed with a failure.

import type { ClientSpec } from "./_events.ts";

/** A small, fast, seedable generator (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = (seed * 0x9e3779b9) >>> 0;
  }
  /** In [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

/** Every kind of fault the harness injects. */
export const FAULTS = [
  "cut",
  "cut-up",
  "cut-down",
  "delay",
  "welcome-lost",
  "redis-blip",
  "redis-restart",
  "redis-stall",
  "node-kill",
  "node-term",
  "replay",
  "used",
  "twice",
  "empty",
  "forged",
] as const;

/** A kind of fault. */
export type Fault = typeof FAULTS[number];

/** One timed step of a schedule. */
export interface Step {
  /** Milliseconds after the fault phase began. */
  at: number;
  kind: Fault | "producer";
  /** The client it hits (cuts, delays, lost welcomes, attacks' victim). */
  client?: string;
  /** The node slot it hits, or where a cut client or a producer goes (-1: the same node). */
  node?: number;
  /** How long it lasts (ms), or how long a killed node stays down. */
  ms?: number;
  /** A delay's size, or a burst's message count. */
  size?: number;
  /** The stream a producer step moves. */
  stream?: string;
}

/** A seed's settings and schedule. */
export interface Plan {
  seed: number;
  routing: "single" | "rooms";
  clients: ClientSpec[];
  /** Which clients are raw chorus.v1 peers (the rest use chorus-ws/client). */
  raw: string[];
  /** The node slot each client starts on. */
  start: Record<string, number>;
  /** The node slot each stream's producer starts on. */
  producers: Record<string, number>;
  /** How long the fault phase lasts. */
  phase: number;
  steps: Step[];
}

/** The clients of every run: four on chorus-ws/client, one raw chorus.v1 peer. */
export const CLIENTS: ClientSpec[] = [
  { name: "c0", rooms: ["a"] },
  { name: "c1", rooms: ["b"] },
  { name: "c2", rooms: ["a", "b"] },
  { name: "c3", rooms: [] },
  { name: "p0", rooms: ["a"] },
];

/** The broadcast streams. */
export const STREAMS = ["h", "r:a", "r:b"];

/**
 * Draws a seed's plan.
 *
 * @param seed The seed.
 * @param faults The kinds of fault it may draw (all by default).
 * @param nodes How many node slots there are.
 * @param cluster A Redis Cluster (no per-node Redis links: blips and stalls freeze a shard).
 */
export function plan(seed: number, kinds: readonly Fault[] = FAULTS, nodes = 3, cluster = false): Plan {
  const rng = new Rng(seed);
  // a Redis Cluster is not restarted empty (its shards stall or blip instead)
  const faults = kinds.filter((f) => !(cluster && f === "redis-restart"));
  const routing = cluster || rng.next() < 0.3 ? "rooms" : "single";
  const start: Record<string, number> = {};
  for (const c of CLIENTS) start[c.name] = rng.int(0, nodes - 1);
  const producers: Record<string, number> = {};
  for (const s of STREAMS) producers[s] = rng.int(0, nodes - 1);
  const phase = 6000;
  const steps: Step[] = [];
  const count = faults.length === 0 ? 0 : rng.int(3, 7);
  for (let i = 0; i < count; i++) {
    const kind = rng.pick(faults);
    const at = rng.int(0, phase - 1500);
    const client = rng.pick(CLIENTS).name;
    const other = rng.int(1, nodes - 1);
    switch (kind) {
      case "cut":
      case "cut-up":
      case "cut-down":
      case "welcome-lost":
        steps.push({ at, kind, client, node: rng.next() < 0.5 ? -1 : other });
        break;
      case "delay":
        steps.push({ at, kind, client, size: rng.int(30, 400), ms: rng.int(300, 2000) });
        break;
      case "redis-blip":
        steps.push({ at, kind, node: cluster ? rng.int(0, 2) : rng.int(0, nodes - 1), ms: rng.int(700, 1300) });
        break;
      case "redis-restart":
        steps.push({ at, kind, ms: rng.int(100, 800) });
        break;
      case "redis-stall":
        // node -1: all of Redis (SIGSTOP); else one node's Redis link (its proxy goes silent)
        steps.push({
          at,
          kind,
          node: cluster || rng.next() < 0.5 ? -1 : rng.int(0, nodes - 1),
          ms: rng.int(2000, 3000),
          size: rng.int(120, 200),
        });
        break;
      case "node-kill":
      case "node-term":
        steps.push({ at, kind, node: rng.int(0, nodes - 1), ms: rng.int(800, 2500) });
        break;
      default: // the attacks: a victim, and the node(s) the attackers go to
        steps.push({ at, kind, client, node: rng.int(0, nodes - 1) });
        // a replayed credential needs a resume first (a used one cuts its victim itself)
        if (kind === "replay") {
          steps.push({ at: Math.max(0, at - rng.int(100, 600)), kind: "cut", client, node: -1 });
        }
    }
  }
  for (let i = rng.int(1, 3); i > 0; i--) {
    steps.push({
      at: rng.int(0, phase - 500),
      kind: "producer",
      stream: rng.pick(STREAMS),
      node: rng.int(0, nodes - 1),
    });
  }
  steps.sort((a, b) => a.at - b.at);
  const raw = CLIENTS.filter((c) => c.name.startsWith("p")).map((c) => c.name);
  return { seed, routing, clients: CLIENTS, raw, start, producers, phase, steps };
}

const ATTACK_KINDS: readonly string[] = ["replay", "used", "twice", "empty", "forged"];

/** One line per step, for a failure's report. */
export function describe(p: Plan): string {
  const lines = [
    `seed ${p.seed}: routing ${p.routing}; clients on ${
      Object.entries(p.start).map(([c, n]) => `${c}→n${n}`).join(" ")
    }; producers ${Object.entries(p.producers).map(([s, n]) => `${s}→n${n}`).join(" ")}`,
  ];
  for (const s of p.steps) {
    const parts = [`  ${(s.at / 1000).toFixed(2)}s ${s.kind}`];
    if (s.client) parts.push(s.client);
    if (s.stream) parts.push(s.stream);
    if (s.kind === "redis-stall") parts.push(s.node === -1 ? "all of Redis" : `n${s.node}'s Redis link`);
    else if (s.kind === "redis-blip") parts.push(`n${s.node}'s Redis link`);
    else if (s.client && s.node !== undefined && !ATTACK_KINDS.includes(s.kind)) {
      parts.push(s.node === -1 ? "same node" : `to another node (+${s.node})`);
    } else if (s.node !== undefined) parts.push(`n${s.node}`);
    if (s.kind === "delay") parts.push(`${s.size} ms for ${s.ms} ms`);
    else if (s.ms !== undefined) parts.push(`${s.ms} ms`);
    if (s.kind === "redis-stall") parts.push(`burst ${s.size}`);
    lines.push(parts.join(" "));
  }
  return lines.join("\n");
}
