// Runs one step of a fault schedule against the world: each fault, and its end (a heal, a restart)
// after its time. Returns when the fault is over, so that a run can wait for every fault to end.

import { deferred } from "../_helpers.ts";
import type { RunClient } from "./_clients.ts";
import { type Ev, now, type Presented } from "./_events.ts";
import { attack } from "./_raw.ts";
import type { Step } from "./_schedule.ts";
import type { NodeSlot, World } from "./_world.ts";

/** What a fault needs of the run. */
export interface FaultContext {
  world: World;
  clients: Map<string, RunClient>;
  record: (e: Ev) => void;
  /** Asks the producer of `stream` for a burst of `count` padded messages on node `slot`. */
  burst(stream: string, slot: number, count: number): void;
  /** Moves a stream's producer to a node slot. */
  produceOn(stream: string, slot: number): void;
  /** Faults injected, per kind; and those skipped, with why. */
  injected: Map<string, number>;
  skipped: string[];
  /** Whether the fault phase is still on (a pending "used" attack is given up after it). */
  active(): boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let attackers = 0;

/** The next live slot after `from`, `offset` slots on (`from` itself when none other lives). */
export function otherSlot(world: World, from: number, offset = 1): NodeSlot {
  const n = world.nodes.length;
  for (let i = 0; i < n; i++) {
    const s = world.nodes[(from + offset + i) % n];
    if (s.slot !== from && s.alive) return s;
  }
  return world.nodes[from];
}

/** A random credential of the hub's shape (22 base64url characters). */
function forged(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Runs `step`; resolves once it is over (healed, restarted). */
export async function inject(ctx: FaultContext, step: Step): Promise<void> {
  const { world } = ctx;
  const count = (): void => {
    ctx.injected.set(step.kind, (ctx.injected.get(step.kind) ?? 0) + 1);
    // a Redis fault: which node's link (none: all of Redis), and for how long
    const redis = step.kind.startsWith("redis-");
    const hub = redis && step.node !== undefined && step.node >= 0 ? world.nodes[step.node]?.hub : undefined;
    ctx.record({
      k: "fault",
      t: now(),
      kind: step.kind,
      ...(hub ? { node: hub } : {}),
      ...(redis ? { ms: step.ms } : {}),
    });
  };
  const skip = (why: string): void => void ctx.skipped.push(`${(step.at / 1000).toFixed(2)}s ${step.kind}: ${why}`);
  const proxy = step.client ? world.clients.get(step.client) : undefined;
  const here = proxy ? world.slotOf(proxy.target) : undefined;
  const move = () => {
    if (proxy && here && step.node !== undefined && step.node >= 0) {
      proxy.retarget(otherSlot(world, here.slot, step.node).port);
    }
  };
  switch (step.kind) {
    case "producer":
      ctx.produceOn(step.stream!, step.node!);
      return;
    case "cut":
      move();
      proxy!.cut();
      return count();
    case "cut-up":
    case "cut-down":
      move();
      proxy!.cutOne(step.kind === "cut-up" ? "up" : "down");
      return count();
    case "delay":
      proxy!.delay(step.size!);
      count();
      await sleep(step.ms!);
      proxy!.delay(0);
      return;
    case "welcome-lost":
      proxy!.loseWelcome();
      move();
      proxy!.cut();
      return count();
    case "redis-blip": {
      const link = world.nodes[step.node!].redis;
      const shard = world.cluster?.ports[step.node!];
      if (link) link.cut(true);
      else if (shard !== undefined) world.cluster!.pause(shard);
      else return skip("no Redis link");
      count();
      await sleep(step.ms!);
      if (link) link.heal();
      else world.cluster!.resume(shard!);
      return;
    }
    case "redis-restart":
      if (!world.redis) return skip("not on a Redis Cluster");
      count();
      await world.redis.stop();
      await sleep(step.ms!);
      await world.redis.restart();
      return;
    case "redis-stall": {
      const all = step.node === -1;
      const node = all ? undefined : world.nodes[step.node!];
      if (all && world.redis) world.redis.pause();
      else if (all) { for (const port of world.cluster!.ports) world.cluster!.pause(port); }
      else node!.redis!.stall();
      count();
      // load past maxPendingBytes while it stalls, from the stalled node
      const from = node?.alive ? node.slot : world.nodes.find((n) => n.alive)?.slot;
      if (from !== undefined) ctx.burst("h", from, step.size!);
      await sleep(step.ms!);
      if (all && world.redis) world.redis.resume();
      else if (all) { for (const port of world.cluster!.ports) world.cluster!.resume(port); }
      else node!.redis!.heal();
      return;
    }
    case "node-kill":
    case "node-term": {
      const node = world.nodes[step.node!];
      if (!node.alive) return skip(`n${node.slot} is down`);
      if (!world.nodes.some((n) => n.alive && n !== node)) return skip("the last live node");
      // the load balancer sends its clients elsewhere
      const next = otherSlot(world, node.slot);
      for (const p of world.clients.values()) if (p.target === node.port) p.retarget(next.port);
      const signal = step.kind === "node-kill" ? "SIGKILL" : "SIGTERM";
      ctx.record({ k: "kill", t: now(), node: node.hub, signal });
      count();
      await world.kill(node, signal);
      await sleep(step.ms!);
      await world.startNode(node);
      return;
    }
  }
  // the attacks
  const victim = ctx.clients.get(step.client!)!;
  const node = world.nodes[step.node!].alive ? world.nodes[step.node!] : otherSlot(world, step.node!);
  const go = (kind: Presented, token: string, at = node) => attack(at.port, `a${++attackers}`, kind, token, ctx.record);
  switch (step.kind) {
    case "empty":
      count();
      return await go("empty", "");
    case "forged":
      count();
      return await go("forged", forged());
    case "replay": {
      const token = victim.used[0];
      if (!token) return skip(`${victim.name} has not used a credential yet`);
      count();
      return await go("replay", token);
    }
    case "twice": {
      const token = victim.current;
      if (!token) return skip(`${victim.name} has no credential`);
      count();
      await Promise.all([go("twice", token), go("twice", token, otherSlot(world, node.slot))]);
      return;
    }
    case "used": {
      // the victim goes idle, is cut, and at its resume an attacker presents the credential it just used
      if (victim.onResumed) return skip(`a used-credential attack on ${victim.name} is pending`);
      const done = deferred();
      let fired = false;
      const hook = (token: string) => {
        fired = true;
        count();
        go("used", token).finally(() => done.resolve());
      };
      victim.quiet = true;
      victim.onResumed = hook;
      world.clients.get(victim.name)!.cut();
      while (ctx.active() && victim.onResumed === hook) await sleep(50);
      if (fired) await done.promise;
      else {
        if (victim.onResumed === hook) victim.onResumed = undefined;
        skip(`${victim.name} did not resume during the fault phase`);
      }
      victim.quiet = false;
    }
  }
}
