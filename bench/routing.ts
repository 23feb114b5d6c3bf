// Per-room routing against the single channel: `npm run bench:routing` (Deno, then Bun), or
// `deno run -A bench/routing.ts` / `bun run bench/routing.ts`. Needs Redis at REDIS_URL.
// SCENARIOS (received,throughput) picks what runs.
//
// 1. `received`: NODES (4) hubs in this process, each with its own Redis connections and a server on
// 127.0.0.1; ROOMS (200) rooms, room r with one member (a WebSocket client here) on node
// r % NODES, so each node holds ROOMS / NODES rooms. Every node broadcasts MESSAGES (20) messages
// of SIZE (64) bytes to every room. Once with `routing: "single"`, once with `routing: "rooms"`,
// on fresh nodes; prints per node the broadcasts the broker brought it from other nodes
// (`hub.metrics().brokerIn`), the ratio rooms/single (goal about 1 / NODES), and the time until
// every client had all its messages.
// 2. `throughput`: room broadcasts delivered per second, one node against NODES nodes, each in a
//    child process (bench/redis_node.ts): ROOMS rooms of MEMBERS (5) clients each (WebSocket clients
//    in this process); on one node (no broker) every client is there; on NODES nodes (`routing:
//    "rooms"`) room r's members are on node r % NODES and its broadcasts are sent from node
//    (r + 1) % NODES, so each crosses Redis. Every room gets BURST (100) broadcasts of SIZE bytes
//    at once; the time runs until every client has all of its room's.

import process from "node:process";
import { Hub } from "../mod.ts";
import { redisBroker } from "../src/brokers/redis.ts";
import { serve, type Server } from "../src/serve.ts";
import { dropKeys, type Node, startNode } from "./_nodes.ts";
import { createClient } from "redis";

const env = process.env;
const NODES = Number(env.NODES ?? 4);
const ROOMS = Number(env.ROOMS ?? 200);
const MESSAGES = Number(env.MESSAGES ?? 20);
const SIZE = Number(env.SIZE ?? 64);
const REDIS_URL = env.REDIS_URL ?? "redis://127.0.0.1:6379";
const MEMBERS = Number(env.MEMBERS ?? 5);
const BURST = Number(env.BURST ?? 100);
const SCENARIOS = (env.SCENARIOS ?? "received,throughput").split(",");
const runtime = "Bun" in globalThis ? "bun" : "deno";

interface Run {
  received: number[];
  ms: number;
}

async function run(routing: "single" | "rooms"): Promise<Run> {
  const prefix = `chorus-bench:routing:${crypto.randomUUID().slice(0, 8)}`;
  const hubs: Hub[] = [];
  const servers: Server[] = [];
  const sockets: WebSocket[] = [];
  try {
    for (let n = 0; n < NODES; n++) {
      const hub = new Hub({ broker: redisBroker({ url: REDIS_URL, prefix, routing }) });
      hub.handleMessage((s, msg) => {
        s.join(String(msg));
        s.write("joined");
      });
      await hub.ready();
      hubs.push(hub);
      servers.push(await serve(hub, { port: 0, hostname: "127.0.0.1" }));
    }
    const expected = NODES * MESSAGES;
    let done = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => finished = resolve);
    const joined: Promise<void>[] = [];
    for (let r = 0; r < ROOMS; r++) {
      const ws = new WebSocket(`ws://127.0.0.1:${servers[r % NODES].port}/`);
      sockets.push(ws);
      let got = -1; // "joined" first
      joined.push(
        new Promise((resolve, reject) => {
          ws.onopen = () => ws.send(`room-${r}`);
          ws.onerror = () => reject(new Error(`client ${r} failed`));
          ws.onmessage = () => {
            if (++got === 0) resolve();
            else if (got === expected && ++done === ROOMS) finished();
          };
        }),
      );
    }
    await Promise.all(joined);
    // every room channel has its subscriber (routing "rooms"), so nothing is missed
    if (routing === "rooms") await subscribed(prefix);
    const payload = "x".repeat(SIZE);
    const start = performance.now();
    for (let m = 0; m < MESSAGES; m++) {
      for (const hub of hubs) for (let r = 0; r < ROOMS; r++) hub.room(`room-${r}`).broadcast(payload);
      await new Promise((r) => setTimeout(r, 0));
    }
    await all;
    const ms = performance.now() - start;
    // the last broadcasts may still be arriving at nodes without members (routing "single")
    const want = routing === "single" ? (NODES - 1) * MESSAGES * ROOMS : (NODES - 1) * MESSAGES * (ROOMS / NODES);
    for (let i = 0; i < 500 && hubs.some((h) => h.metrics().brokerIn < want); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return { received: hubs.map((h) => h.metrics().brokerIn), ms };
  } finally {
    for (const ws of sockets) ws.close();
    await Promise.all(hubs.map((h) => h.close()));
    await Promise.all(servers.map((s) => s.shutdown()));
    await dropKeys(REDIS_URL, prefix);
  }
}

/** Waits until every room channel has one subscriber. */
async function subscribed(prefix: string): Promise<void> {
  const redis = createClient({ url: REDIS_URL });
  await redis.connect();
  const channels = Array.from({ length: ROOMS }, (_, r) => `${prefix}:room:room-${r}`);
  while (true) {
    const reply = await redis.sendCommand(["PUBSUB", "NUMSUB", ...channels]) as unknown[];
    if (channels.every((_, i) => Number(reply[2 * i + 1]) === 1)) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  await redis.close();
}

/** Opens a WebSocket to a node and waits for it to open. */
function socket(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  return new Promise((resolve, reject) => {
    ws.onopen = () => resolve(ws);
    ws.onerror = () => reject(new Error(`no connection to ${port}`));
  });
}

/** Deliveries per second of room broadcasts on `count` nodes (1: no broker). */
async function throughput(count: number): Promise<number> {
  const prefix = `chorus-bench:routing:${crypto.randomUUID().slice(0, 8)}`;
  const nodes: Node[] = [];
  const sockets: WebSocket[] = [];
  try {
    for (let n = 0; n < count; n++) {
      nodes.push(
        await startNode(count === 1 ? { NO_BROKER: "1" } : { REDIS_URL, PREFIX: prefix, ROUTING: "rooms" }),
      );
    }
    let done = 0;
    let finished!: () => void;
    const all = new Promise<void>((resolve) => finished = resolve);
    const joined: Promise<void>[] = [];
    for (let r = 0; r < ROOMS; r++) {
      for (let m = 0; m < MEMBERS; m++) {
        const ws = await socket(nodes[r % count].port);
        sockets.push(ws);
        let got = -1; // "joined" first
        joined.push(
          new Promise((resolve) => {
            ws.onmessage = () => {
              if (++got === 0) resolve();
              else if (got === BURST && ++done === ROOMS * MEMBERS) finished();
            };
          }),
        );
        ws.send(`join room-${r}`);
      }
    }
    await Promise.all(joined);
    if (count > 1) await subscribed(prefix);
    const control = await Promise.all(nodes.map((n) => socket(n.port)));
    sockets.push(...control);
    const start = performance.now();
    for (let r = 0; r < ROOMS; r++) control[(r + 1) % count].send(`room room-${r} ${BURST} ${SIZE}`);
    await all;
    return (ROOMS * MEMBERS * BURST) / ((performance.now() - start) / 1000);
  } finally {
    for (const ws of sockets) ws.close();
    await Promise.all(nodes.map((n) => n.stop()));
    if (count > 1) await dropKeys(REDIS_URL, prefix);
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
if (SCENARIOS.includes("received")) {
  const single = await run("single");
  const rooms = await run("rooms");
  console.log(
    `routing (${runtime}): ${NODES} nodes × ${ROOMS} rooms (1 member each), ${MESSAGES} broadcasts of ${SIZE} B ` +
      `per room per node`,
  );
  console.log(
    `  single channel: received per node ${single.received.join(" / ")}, all delivered in ${single.ms.toFixed(0)} ms`,
  );
  console.log(
    `  per-room:       received per node ${rooms.received.join(" / ")}, all delivered in ${rooms.ms.toFixed(0)} ms`,
  );
  console.log(
    `  per-room / single: received ${(sum(rooms.received) / sum(single.received)).toFixed(3)} ` +
      `(goal about ${(1 / NODES).toFixed(3)}), time ${(rooms.ms / single.ms).toFixed(2)}`,
  );
}
if (SCENARIOS.includes("throughput")) {
  const one = await throughput(1);
  const many = await throughput(NODES);
  console.log(
    `throughput (${runtime}): ${ROOMS} rooms × ${MEMBERS} members, ${BURST} broadcasts of ${SIZE} B per room; ` +
      `1 node ${Math.round(one)} deliveries/s, ${NODES} nodes (routing "rooms", sent across Redis) ` +
      `${Math.round(many)} deliveries/s: ${(many / one).toFixed(2)}x`,
  );
}
process.exit(0);
