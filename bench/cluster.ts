// The Redis broker on a Redis Cluster against one Redis server: `npm run bench:cluster` (Deno, then
// Bun), or `deno run -A bench/cluster.ts` / `bun run bench/cluster.ts`. Starts its own cluster (3
// primaries with a replica each, tests/_redis_cluster.ts, on spare ports) and uses the Redis at
// REDIS_URL for the other side. SCENARIOS (appends,failover) picks what runs.
//
// 1. `appends`: NODES (3) hubs in this process with `resume` on (every room broadcast is appended
//    to its room's stream by a Lua script, and published with its position); ROOMS (60) rooms, room
//    r with one member (a WebSocket client here) on node r % NODES; every node sends MESSAGES (50)
//    broadcasts of SIZE (64) bytes to every room. The time runs until every client has all of its
//    room's; once on one Redis server (`routing: "rooms"`), once on the cluster, on fresh hubs.
//    Prints room broadcasts delivered per second and the ratio cluster / one server.
// 2. `failover`: 2 hubs on the cluster, a member of room "f" on the second, the first broadcasting
//    to "f" every 5 ms; the primary of the room's shard is SIGKILLed. Prints how long until the
//    cluster had promoted its replica, how long the member got nothing (from the last broadcast
//    before the outage to the first after it), and how many broadcasts were lost (sent, never
//    delivered: dropped while the shard was away, and reported).

import process from "node:process";
import { Hub } from "../mod.ts";
import { redisBroker, type RedisBrokerOptions } from "../src/brokers/redis.ts";
import { serve, type Server } from "../src/serve.ts";
import { safeKey } from "../src/brokers/_redis_keys.ts";
import { RedisCluster } from "../tests/_redis_cluster.ts";
import { dropKeys } from "./_nodes.ts";

const env = process.env;
const NODES = Number(env.NODES ?? 3);
const ROOMS = Number(env.ROOMS ?? 60);
const MESSAGES = Number(env.MESSAGES ?? 50);
const SIZE = Number(env.SIZE ?? 64);
const REDIS_URL = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const SCENARIOS = (env.SCENARIOS ?? "appends,failover").split(",");
const runtime = "Bun" in globalThis ? "bun" : "deno";

/** Hubs with resumable sessions on `broker`'s Redis, each served on 127.0.0.1. */
async function hubs(count: number, broker: RedisBrokerOptions): Promise<{ hubs: Hub[]; servers: Server[] }> {
  const out: Hub[] = [];
  const servers: Server[] = [];
  for (let n = 0; n < count; n++) {
    const hub = new Hub({ broker: redisBroker(broker), resume: {} });
    hub.handleBrokerError(() => {});
    hub.handleMessage((s, msg) => {
      s.join(String(msg));
      s.write("joined");
    });
    await hub.ready();
    out.push(hub);
    servers.push(await serve(hub, { port: 0, hostname: "127.0.0.1" }));
  }
  return { hubs: out, servers };
}

/** A client of `port` in `room`, giving `got` what it gets after "joined". */
async function member(port: number, room: string, got: (data: string) => void): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  let joined = false;
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => ws.send(room);
    ws.onerror = () => reject(new Error(`no connection to ${port}`));
    ws.onmessage = (e) => {
      if (joined) got(String(e.data));
      else if (e.data === "joined") {
        joined = true;
        resolve();
      }
    };
  });
  return ws;
}

/** Waits until `check` holds, polling every 10 ms (a room's SUBSCRIBE follows its first join). */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 10));
}

/** Room broadcasts delivered per second, every one appended and published, on `broker`'s Redis. */
async function appends(broker: RedisBrokerOptions): Promise<number> {
  const { hubs: nodes, servers } = await hubs(NODES, broker);
  const sockets: WebSocket[] = [];
  try {
    const expected = NODES * MESSAGES;
    let done = 0;
    let warm = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => finished = resolve);
    for (let r = 0; r < ROOMS; r++) {
      let got = 0;
      sockets.push(
        await member(servers[r % NODES].port, `room-${r}`, (data) => {
          if (data === "warm-up") warm++;
          else if (++got === expected && ++done === ROOMS) finished();
        }),
      );
    }
    // until every room's node hears the others (its room's SUBSCRIBE follows the first join)
    while (warm < ROOMS * NODES) {
      warm = 0;
      for (const hub of nodes) for (let r = 0; r < ROOMS; r++) hub.room(`room-${r}`).broadcast("warm-up");
      await new Promise((r) => setTimeout(r, 200));
    }
    const payload = "x".repeat(SIZE);
    const start = performance.now();
    for (let m = 0; m < MESSAGES; m++) {
      for (const hub of nodes) for (let r = 0; r < ROOMS; r++) hub.room(`room-${r}`).broadcast(payload);
      await new Promise((r) => setTimeout(r, 0));
    }
    await all;
    return (ROOMS * expected) / ((performance.now() - start) / 1000);
  } finally {
    for (const ws of sockets) ws.close();
    await Promise.all(nodes.map((h) => h.close()));
    await Promise.all(servers.map((s) => s.shutdown()));
  }
}

/** Failover timings on `cluster` (which loses a primary). */
async function failover(cluster: RedisCluster, prefix: string) {
  const { hubs: [a, b], servers } = await hubs(2, { cluster: cluster.urls, prefix });
  const got: { n: number; at: number }[] = [];
  const ws = await member(servers[1].port, "f", (n) => got.push({ n: Number(n), at: performance.now() }));
  try {
    await until(() => b.room("f").size === 1);
    await new Promise((r) => setTimeout(r, 500)); // b's SSUBSCRIBE
    let sent = 0;
    let sending = true;
    const loop = (async () => {
      while (sending) {
        a.room("f").broadcast(`${++sent}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await until(() => got.length >= 50);
    const channel = `{${prefix}:${safeKey("r:f")}}:ch`;
    const killedAt = performance.now();
    const atKill = sent;
    await cluster.killPrimaryOf(channel);
    const promoted = performance.now() - killedAt;
    await until(() => got.some((g) => g.n > atKill + 1 && g.at > killedAt));
    await new Promise((r) => setTimeout(r, 500));
    sending = false;
    await loop;
    await until(() => got.at(-1)!.n === sent);
    // the outage as the member saw it: from the last broadcast before the gap to the first after it
    const gap = got.findIndex((g, i) => i > 0 && g.n !== got[i - 1].n + 1);
    const outage = got[gap].at - got[gap - 1].at;
    const received = new Set(got.map((g) => g.n));
    let lost = 0;
    for (let i = 1; i <= sent; i++) if (!received.has(i)) lost++;
    return { promoted, outage, lost, sent };
  } finally {
    ws.close();
    await Promise.all([a.close(), b.close()]);
    await Promise.all(servers.map((s) => s.shutdown()));
  }
}

const cluster = await RedisCluster.start();
try {
  if (SCENARIOS.includes("appends")) {
    const prefix = `chorus-bench:cluster:${crypto.randomUUID().slice(0, 8)}`;
    const one = await appends({ url: REDIS_URL, prefix, routing: "rooms" });
    await dropKeys(REDIS_URL, prefix);
    const sharded = await appends({ cluster: cluster.urls, prefix });
    console.log(
      `appends (${runtime}): ${NODES} nodes, ${ROOMS} rooms (1 member each), ${MESSAGES} broadcasts of ${SIZE} B per ` +
        `room per node, each appended and published: one Redis ${Math.round(one)} deliveries/s, Redis Cluster ` +
        `(3 primaries, 3 replicas) ${Math.round(sharded)} deliveries/s: ${(sharded / one).toFixed(2)}x`,
    );
  }
  if (SCENARIOS.includes("failover")) {
    const prefix = `chorus-bench:failover:${crypto.randomUUID().slice(0, 8)}`;
    const f = await failover(cluster, prefix);
    console.log(
      `failover (${runtime}): a broadcast every 5 ms; primary killed: the replica was primary within ` +
        `${f.promoted.toFixed(0)} ms, the member got nothing for ${f.outage.toFixed(0)} ms; ` +
        `${f.lost} of ${f.sent} broadcasts lost (reported)`,
    );
  }
} finally {
  await cluster.stop();
}
process.exit(0);
