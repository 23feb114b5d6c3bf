// A private Redis Cluster for tests: redis-server nodes on spare ports in 17000–17999 (their
// cluster bus on port+10000), formed with `redis-cli --cluster create`, each node in one temp
// directory. Never the shared Redis. A primary can be killed to make its replica take over.

import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import { createClient } from "redis";
import { Child, sparePort } from "./_cluster.ts";
import { deadline } from "./_helpers.ts";

/** A RESP reply: simple/bulk string, integer, nil or array (errors reject). */
type Reply = string | number | null | Reply[];

/** One line of CLUSTER NODES. */
interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  /** The master's id for a replica, else "-". */
  master: string;
  link: string;
  /** Slot ranges served (inclusive), for a master. */
  slots: [number, number][];
}

/** How often the bounded waits poll. */
const POLL_MS = 50;

export class RedisCluster {
  /** Every node's port (killed ones included). */
  readonly ports: number[];
  readonly #dir: string;
  readonly #children = new Map<number, Child>();
  readonly #primaries: number;
  readonly #replicas: number;

  private constructor(dir: string, ports: number[], primaries: number, replicas: number) {
    this.#dir = dir;
    this.ports = ports;
    this.#primaries = primaries;
    this.#replicas = replicas;
  }

  /** Starts `primaries` (default 3) masters with `replicas` (default 1) replicas each and waits until it serves. */
  static async start(opts: { primaries?: number; replicas?: number } = {}): Promise<RedisCluster> {
    const primaries = opts.primaries ?? 3;
    const replicas = opts.replicas ?? 1;
    if (primaries < 3) throw new Error("redis-cli --cluster create needs at least 3 primaries");
    const dir = fs.mkdtempSync(os.tmpdir() + "/chorus-cluster-");
    const cluster = new RedisCluster(dir, [], primaries, replicas);
    try {
      const total = primaries * (1 + replicas);
      for (let i = 0; i < total; i++) cluster.ports.push(await busPort(cluster.ports));
      // all settled before any cleanup, so that no retry starts a node after stop()
      const started = await Promise.allSettled(cluster.ports.map((_, i) => cluster.#startNodeAt(i)));
      const failed = started.find((r) => r.status === "rejected");
      if (failed) throw failed.reason;
      await cluster.#create(replicas);
      await cluster.#settled("the cluster to form", 20_000);
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** `redis://127.0.0.1:<port>` of every live node. */
  get urls(): string[] {
    return this.#live().map((p) => `redis://127.0.0.1:${p}`);
  }

  /** The port of the node the cluster now names primary for the key's slot (asked of a live node). */
  async primaryOf(key: string): Promise<number> {
    const port = this.#live()[0];
    if (port === undefined) throw new Error("no live node");
    const slot = await ask(port, ["CLUSTER", "KEYSLOT", key]) as number;
    const owner = ownerOf(await nodes(port), slot);
    if (!owner) throw new Error(`no primary for slot ${slot} (key ${key})`);
    return owner.port;
  }

  /** Runs a command on the primary of the key's slot now, and returns its reply. */
  async onPrimary(key: string, args: string[]): Promise<Reply> {
    return await ask(await this.primaryOf(key), args);
  }

  /** The ports of the replicas of the key's slot's primary. */
  async replicasOf(key: string): Promise<number[]> {
    const port = this.#live()[0];
    if (port === undefined) throw new Error("no live node");
    const slot = await ask(port, ["CLUSTER", "KEYSLOT", key]) as number;
    const view = await nodes(port);
    const primary = ownerOf(view, slot);
    return view.filter((n) => n.master === primary?.id).map((n) => n.port);
  }

  /**
   * Freezes a node (SIGSTOP): a replica frozen this way stops taking its primary's writes, which
   * its primary still acknowledges (Redis replicates asynchronously).
   */
  pause(port: number): void {
    const pid = this.#children.get(port)?.proc.pid;
    if (pid !== undefined) process.kill(pid, "SIGSTOP");
  }

  /** Lets a frozen node go on (SIGCONT). */
  resume(port: number): void {
    const pid = this.#children.get(port)?.proc.pid;
    if (pid !== undefined) process.kill(pid, "SIGCONT");
  }

  /**
   * Kills (SIGKILL) the primary of the key's slot and waits until one of its replicas is primary
   * for the slot, as every live node sees it, and every live node says `cluster_state:ok`. Frozen
   * replicas go on right after the kill (so that one can take over, with what it had).
   * Returns the killed node's port.
   */
  async killPrimaryOf(key: string, ms = 20_000): Promise<number> {
    const asked = this.#live()[0];
    if (asked === undefined) throw new Error("no live node");
    const slot = await ask(asked, ["CLUSTER", "KEYSLOT", key]) as number;
    const view = await nodes(asked);
    const primary = ownerOf(view, slot);
    if (!primary) throw new Error(`no primary for slot ${slot} (key ${key})`);
    const replicaPorts = view.filter((n) => n.master === primary.id).map((n) => n.port);
    if (replicaPorts.length === 0) throw new Error(`the primary ${primary.port} of slot ${slot} has no replica`);
    const child = this.#children.get(primary.port);
    if (!child) throw new Error(`the primary ${primary.port} of slot ${slot} is not running`);
    this.#children.delete(primary.port);
    await child.kill("SIGKILL");
    for (const port of replicaPorts) this.resume(port);
    await until(
      async () => {
        for (const port of this.#live()) {
          if (!/cluster_state:ok/.test(await ask(port, ["CLUSTER", "INFO"]) as string)) return false;
          const owner = ownerOf(await nodes(port), slot);
          if (!owner || !replicaPorts.includes(owner.port)) return false;
        }
        return true;
      },
      `a replica (${replicaPorts.join(", ")}) of ${primary.port} to take slot ${slot} over`,
      ms,
    );
    return primary.port;
  }

  /** Kills every node and removes the temp directory; safe to call twice. */
  async stop(): Promise<void> {
    for (const port of this.#children.keys()) this.resume(port);
    const children = [...this.#children.values()];
    this.#children.clear();
    await Promise.allSettled(children.map((c) => c.kill("SIGKILL")));
    fs.rmSync(this.#dir, { recursive: true, force: true });
  }

  #live(): number[] {
    return this.ports.filter((p) => this.#children.has(p));
  }

  /**
   * Starts the node `this.ports[i]`; when it exits at once (its port or bus port was taken in the
   * meantime, e.g. by a concurrent test), tries again on another spare port.
   */
  async #startNodeAt(i: number): Promise<void> {
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#startNode(this.ports[i]);
      } catch (err) {
        if (!(err instanceof NodeStartError && err.exited) || attempt >= 5) throw err;
        this.ports[i] = await busPort(this.ports);
      }
    }
  }

  async #startNode(port: number): Promise<void> {
    const child = new Child("redis-server", [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--cluster-enabled",
      "yes",
      "--cluster-config-file",
      `${this.#dir}/nodes-${port}.conf`,
      "--cluster-node-timeout",
      "1000",
      "--dir",
      this.#dir,
      "--save",
      "",
      "--appendonly",
      "no",
      // a replica's first full sync starts at once (the default waits 5 s for more replicas), and
      // its replication offset is non-zero (so CLUSTER SLOTS lists it) within 1 s, not 10 s
      "--repl-diskless-sync-delay",
      "0",
      "--repl-ping-replica-period",
      "1",
    ], {});
    this.#children.set(port, child); // registered first: stop() kills it whatever happens next
    // polled (not Child.line) so that an early exit ends the wait without leaving its timer behind
    const end = Date.now() + 10_000;
    while (!child.output.some((l) => /Ready to accept connections/.test(l))) {
      const exited = child.proc.exitCode !== null || child.proc.signalCode !== null;
      const spawnFailed = child.output.some((l) => l.startsWith("spawn error"));
      if (exited || spawnFailed || Date.now() > end) {
        this.#children.delete(port);
        await child.kill();
        const why = spawnFailed
          ? "could not be spawned"
          : exited
          ? "exited before it was ready"
          : "was not ready after 10 s";
        throw new NodeStartError(
          `redis-server on ${port} ${why}; output:\n${child.output.join("\n")}`,
          exited && !spawnFailed,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async #create(replicas: number): Promise<void> {
    const child = new Child("redis-cli", [
      "--cluster",
      "create",
      ...this.ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ], {});
    let code: number | null;
    try {
      code = await deadline(child.exited, "redis-cli --cluster create", 20_000);
    } finally {
      await child.kill();
    }
    if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}:\n${child.output.join("\n")}`);
  }

  /**
   * Waits until every live node says `cluster_state:ok`, knows every node, sees the expected
   * number of masters owning all slots, and every replica is connected to its master (cluster
   * bus link and replication link up, and listed by CLUSTER SLOTS).
   */
  #settled(what: string, ms: number): Promise<void> {
    return until(
      async () => {
        const live = this.#live();
        for (const port of live) {
          const info = await ask(port, ["CLUSTER", "INFO"]) as string;
          if (!/cluster_state:ok/.test(info)) return false;
          if (!new RegExp(`cluster_known_nodes:${live.length}\\b`).test(info)) return false;
          const view = await nodes(port);
          const masters = view.filter((n) => n.flags.includes("master") && n.slots.length > 0);
          if (masters.length !== this.#primaries) return false;
          for (const n of view) {
            if (n.flags.some((f) => f === "fail" || f === "fail?" || f === "handshake" || f === "noaddr")) return false;
            if (n.link !== "connected") return false;
            if (n.flags.includes("slave") && !masters.some((m) => m.id === n.master)) return false;
          }
          // CLUSTER SLOTS (what clients read) lists a replica only once its replication offset is known
          const ranges = await ask(port, ["CLUSTER", "SLOTS"]) as Reply[][];
          if (ranges.some((r) => r.length - 3 !== this.#replicas)) return false;
          if (view.find((n) => n.flags.includes("myself"))?.flags.includes("slave")) {
            const repl = await ask(port, ["INFO", "replication"]) as string;
            if (!/master_link_status:up/.test(repl)) return false;
          }
        }
        return true;
      },
      what,
      ms,
    );
  }
}

/** A node that did not start (`exited`: it ended at once, as when its port is taken). */
class NodeStartError extends Error {
  constructor(message: string, readonly exited: boolean) {
    super(message);
  }
}

/** A spare port in 17000–17999, not in `taken`, whose cluster bus port (port+10000) is free too. */
async function busPort(taken: number[]): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await sparePort(17000, 17999);
    if (taken.includes(port)) continue;
    try {
      await sparePort(port + 10000, port + 10000);
      return port;
    } catch {
      // its bus port is taken: try another
    }
  }
  throw new Error("no spare port pair (p, p+10000) in 17000–17999");
}

/** Polls `check` every POLL_MS until it returns true (a thrown error counts as false) for at most `ms`. */
async function until(check: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown = "not yet";
  while (true) {
    try {
      if (await check()) return;
      last = "not yet";
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The node's CLUSTER NODES, parsed. */
async function nodes(port: number): Promise<NodeLine[]> {
  const text = await ask(port, ["CLUSTER", "NODES"]) as string;
  return text.split("\n").filter((l) => l.trim()).map((line) => {
    const [id, addr, flags, master, , , , link, ...slots] = line.trim().split(" ");
    return {
      id,
      port: Number(addr.split("@")[0].split(":").pop()),
      flags: flags.split(","),
      master,
      link,
      slots: slots.filter((s) => !s.startsWith("[")).map((s) => {
        const [a, b] = s.split("-").map(Number);
        return [a, b ?? a] as [number, number];
      }),
    };
  });
}

/** The master serving `slot` in a CLUSTER NODES view. */
function ownerOf(view: NodeLine[], slot: number): NodeLine | undefined {
  return view.find((n) => n.flags.includes("master") && n.slots.some(([a, b]) => a <= slot && slot <= b));
}

/** Sends one command on a fresh connection and returns the reply, within `ms`; the connection is closed. */
async function ask(port: number, args: string[], ms = 2000): Promise<Reply> {
  const client = createClient({ url: `redis://127.0.0.1:${port}`, socket: { reconnectStrategy: false } });
  client.on("error", () => {});
  try {
    await deadline(client.connect(), `a connection to ${port}`, ms);
    return await deadline(client.sendCommand(args) as Promise<Reply>, `${args.join(" ")} on ${port}`, ms);
  } finally {
    client.destroy();
  }
}
