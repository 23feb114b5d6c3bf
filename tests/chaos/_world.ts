// What a run of seeds shares: a redis-server of its own (or a Redis Cluster), a proxy per node's
// Redis link, the node processes (kept across seeds: each seed swaps in fresh hubs on a fresh key
// prefix; only what a seed killed is started again) and a proxy per client.

import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import { Child, type NodeRuntime, RedisServer, sparePort } from "../_cluster.ts";
import { runtimePath } from "../_examples.ts";
import { deadline } from "../_helpers.ts";
import { RedisCluster } from "../_redis_cluster.ts";
import { ChaosProxy } from "./_proxy.ts";

const script = new URL("./_node.ts", import.meta.url).pathname;
const LISTENING = /^listening (\d+) node (\w+) prefix (\S+)$/;

/** A node slot: one process at a time, with its Redis link. */
export interface NodeSlot {
  slot: number;
  runtime: NodeRuntime;
  child: Child | undefined;
  port: number;
  /** The current hub's node id (each seed's hub, each restart, has a new one). */
  hub: string;
  alive: boolean;
  /** The proxy between this node and Redis (none on a Redis Cluster). */
  redis: ChaosProxy | undefined;
  /** Baseline heap per process (its first reading), by pid. */
  base: Map<number, number>;
}

/** The shared setup of a run of seeds. */
export class World {
  readonly nodes: NodeSlot[];
  readonly clients = new Map<string, ChaosProxy>();
  readonly dir: string;
  redis: RedisServer | undefined;
  cluster: RedisCluster | undefined;
  /** The current seed's prefix, routing and log files (path → hub id). */
  prefix = "";
  routing = "single";
  seed = 0;
  logs = new Map<string, string>();
  #logCount = 0;
  /** What the processes killed since the last `output()` printed. */
  #printed: string[] = [];

  private constructor(runtimes: NodeRuntime[], dir: string) {
    this.dir = dir;
    this.nodes = runtimes.map((runtime, slot) => ({
      slot,
      runtime,
      child: undefined,
      port: 0,
      hub: "",
      alive: false,
      redis: undefined,
      base: new Map(),
    }));
  }

  /** Starts Redis (or a Redis Cluster) and the proxies; nodes start with the first seed. */
  static async start(runtimes: NodeRuntime[], clients: string[], cluster = false): Promise<World> {
    const world = new World(runtimes, fs.mkdtempSync(`${os.tmpdir()}/chorus-chaos-`));
    try {
      if (cluster) world.cluster = await RedisCluster.start({ primaries: 3, replicas: 0 });
      else {
        world.redis = await RedisServer.start(await sparePort(16700, 16799));
        for (const n of world.nodes) n.redis = await ChaosProxy.start(world.redis.port);
      }
      for (const c of clients) world.clients.set(c, await ChaosProxy.start(0, true));
      return world;
    } catch (err) {
      await world.stop();
      throw err;
    }
  }

  /** Fresh hubs for a seed on every node (a swap on a live process, a start on a dead one). */
  async begin(seed: number, prefix: string, routing: string): Promise<void> {
    this.seed = seed;
    this.prefix = prefix;
    this.routing = routing;
    this.logs.clear();
    await this.heal(); // whatever a seed that failed half-way left behind
    await Promise.all(this.nodes.map(async (n) => {
      if (n.alive && n.child) {
        const log = this.#logPath(n);
        const listening = n.child.line(LISTENING, `n${n.slot} to swap its hub`, 15_000);
        const res = await this.control(n, `/seed?prefix=${encodeURIComponent(prefix)}&log=${log}&routing=${routing}`);
        if (res !== undefined) {
          const m = await listening.catch(() => undefined);
          if (m && m[3] === prefix) {
            n.hub = m[2];
            this.logs.set(log, n.hub);
            return;
          }
        }
        await this.kill(n, "SIGKILL");
      }
      await this.startNode(n);
    }));
  }

  /** Starts the slot's process on the current seed's prefix (its port may change). */
  async startNode(n: NodeSlot): Promise<void> {
    const exe = runtimePath(n.runtime);
    if (!exe) throw new Error(`no ${n.runtime} executable`);
    const args = n.runtime === "deno" ? ["run", "-A", "--v8-flags=--expose-gc", script] : ["run", script];
    const log = this.#logPath(n);
    const env: Record<string, string> = { PORT: "0", PREFIX: this.prefix, LOG: log, ROUTING: this.routing };
    if (this.cluster) env.CLUSTER = this.cluster.urls.join(",");
    else env.REDIS_URL = `redis://127.0.0.1:${n.redis!.port}`;
    const child = new Child(exe, args, env);
    n.child = child;
    try {
      const m = await child.line(LISTENING, `${n.runtime} node n${n.slot} to listen`, 30_000);
      n.port = Number(m[1]);
      n.hub = m[2];
      n.alive = true;
      this.logs.set(log, n.hub);
    } catch (err) {
      await child.kill();
      n.child = undefined;
      throw err;
    }
  }

  /** Signals a node's process (SIGTERM: its hub hands its sessions over, then it exits) and waits for its exit. */
  async kill(n: NodeSlot, signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    n.alive = false;
    const child = n.child;
    if (!child) return;
    const pid = child.proc.pid;
    if (pid !== undefined && child.proc.exitCode === null && child.proc.signalCode === null) {
      try {
        process.kill(pid, signal);
      } catch {
        // already gone
      }
    }
    try {
      await deadline(child.exited, `n${n.slot} to exit on ${signal}`, 10_000);
    } catch {
      await child.kill("SIGKILL");
    }
    await child.kill().catch(() => {});
    n.child = undefined;
    this.#printed.push(`== n${n.slot} (${n.runtime}, pid ${pid}, ${signal}) ==\n${child.output.join("\n")}`);
  }

  /** What the node processes printed: those killed since the last call, then the live ones. */
  output(): string {
    const live = this.nodes.filter((n) => n.child).map((n) =>
      `== n${n.slot} (${n.runtime}, pid ${n.child!.proc.pid}, live) ==\n${n.child!.output.join("\n")}`
    );
    const out = [...this.#printed, ...live].join("\n");
    this.#printed = [];
    return out;
  }

  /** A GET on a node's control endpoint; `undefined` when it does not answer 200 in time. */
  async control(n: NodeSlot, path: string, ms = 2000): Promise<Response | undefined> {
    if (!n.alive) return undefined;
    try {
      const res = await fetch(`http://127.0.0.1:${n.port}${path}`, { signal: AbortSignal.timeout(ms) });
      if (res.ok) return res;
      await res.body?.cancel();
    } catch {
      // down, or too slow
    }
    return undefined;
  }

  /** The slot a port belongs to. */
  slotOf(port: number): NodeSlot | undefined {
    return this.nodes.find((n) => n.port === port);
  }

  /** Ends every fault of the shared parts: proxies healed, Redis running. */
  async heal(): Promise<void> {
    for (const p of this.clients.values()) p.heal();
    for (const n of this.nodes) n.redis?.heal();
    if (this.redis) {
      this.redis.resume();
      if (!(await this.#redisUp())) await this.redis.restart();
    }
    if (this.cluster) { for (const port of this.cluster.ports) this.cluster.resume(port); }
  }

  async #redisUp(): Promise<boolean> {
    const { createClient } = await import("redis");
    const client = createClient({ url: this.redis!.url, socket: { reconnectStrategy: false } });
    client.on("error", () => {});
    try {
      await deadline(client.connect(), "redis", 1000);
      await deadline(client.ping(), "redis ping", 1000);
      return true;
    } catch {
      return false;
    } finally {
      client.destroy();
    }
  }

  /** Stops every process and proxy it started and removes its files. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => this.kill(n, "SIGKILL")));
    for (const p of this.clients.values()) await p.close().catch(() => {});
    for (const n of this.nodes) await n.redis?.close().catch(() => {});
    await this.redis?.stop();
    await this.cluster?.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  #logPath(n: NodeSlot): string {
    return `${this.dir}/s${this.seed}-n${n.slot}-${++this.#logCount}.log`;
  }
}
