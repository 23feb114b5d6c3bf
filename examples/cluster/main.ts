// The chat as a cluster: run it twice on two ports, sharing one Redis, and a user on one
// process sees the messages of users on the other. Sessions are resumable across the cluster:
// when a process dies, its pages come back on another one (behind a load balancer) with nothing
// lost; a newcomer first gets the last messages said in the cluster (history kept in Redis).
//
//   deno run -A examples/cluster/main.ts 8001      bun run examples/cluster/main.ts 8002
//
// Environment (see docs/examples.md): the port is the first argument, else PORT (default 8001; 0
// picks a free one); HOST is the address (default 127.0.0.1, this machine only; HOST=0.0.0.0 for
// every interface); REDIS_URL is the Redis (default redis://127.0.0.1:6379), or REDIS_CLUSTER the
// comma-separated URLs of some nodes of a Redis Cluster; PREFIX (default chorus-cluster-example)
// names the cluster: the processes that share it are one. Open http://localhost:8001/ and :8002/,
// or put both behind nginx with examples/cluster/nginx.conf (see docs/scaling.md).
// Each process serves its metrics at /metrics, in the Prometheus text format, and chorus-ws/client
// and the chat view for its page (/chorus-client.js, /chat-view.js, /chat.css). SIGINT or SIGTERM hands its sessions over to the other nodes.
//
// Server → page, JSON: {type: "hello", name, node} (a new session: who you are, on which node —
// its port), {type: "history", messages} (the last chat messages, oldest first), {type: "resumed",
// node} (the session continues on this node), {type: "join", name, online}, {type: "leave", name},
// {type: "members", members} (the names in the lobby on every node, after each change anywhere),
// {type: "message", id, name, text, time}, and {type: "who", online, here, node} for "/who".

import { readFile } from "node:fs/promises";
import process from "node:process";
import { Hub, prometheusText } from "chorus-ws";
import { redisBroker } from "chorus-ws/redis";
import { serve } from "chorus-ws/serve";
import { asset } from "../_assets.ts";

const rawPort = process.argv[2] ?? process.env.PORT ?? "8001";
const port = Number(rawPort);
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`Not a port: ${rawPort}`);
const hostname = process.env.HOST ?? "127.0.0.1";
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const redisCluster = process.env.REDIS_CLUSTER?.split(","); // a Redis Cluster instead, by some of its nodes
const prefix = process.env.PREFIX ?? "chorus-cluster-example"; // the processes that share it are one cluster
const page = await readFile(new URL("./index.html", import.meta.url), "utf8");

const hub = new Hub<{ name: string }>({
  broker: redisBroker(redisCluster ? { cluster: redisCluster, prefix } : { url: redisUrl, prefix }),
  resume: {}, // a session outlives its connection, and its process: its state is kept in Redis
  history: { size: 50 }, // the room's last messages, in Redis: every node reads the same
  presence: { keys: ["name"] }, // who is in a room, on every node: only the name leaves its node
});
const room = hub.room("lobby"); // a room broadcast reaches every node, and goes into the history
let guests = 0;
const json = (msg: Record<string, unknown>) => JSON.stringify(msg);

hub.handleBrokerError((err) => console.error(`redis: ${err.message}`));
hub.handleConnect(async (s) => {
  s.set("name", `guest-${++guests}@${server.port}`);
  s.write(json({ type: "hello", name: s.get("name"), node: server.port }));
  // Joined first, then the history: nothing said meanwhile is missed (the page shows a message
  // that came both live and in the history once, by its id). Only chat messages: old notices
  // say nothing to a newcomer.
  s.join("lobby");
  const kept = (await room.history()).map((e) => JSON.parse(e.message as string));
  s.write(json({ type: "history", messages: kept.filter((m) => m.type === "message").slice(-20) }));
  room.broadcast(json({ type: "join", name: s.get("name"), online: await hub.count() }));
});
// Who is online, live: a join or leave anywhere in the cluster reaches handlePresence on every
// node (batched), and each node tells its own pages (broadcastFilter is node-local: one copy each).
hub.handlePresence(async (name) => {
  if (name !== "lobby") return;
  const members = (await room.members()).map((m) => String(m.keys.name)).sort();
  hub.broadcastFilter(json({ type: "members", members }), (s) => s.rooms.has("lobby"));
});
// Its client came back after a lost connection, maybe to another node: the same session, nothing lost.
hub.handleResume((s) => s.write(json({ type: "resumed", node: server.port })));
hub.handleMessage(async (s, msg) => {
  if (msg === "/who") {
    s.write(json({ type: "who", online: await hub.count(), here: hub.size, node: server.port }));
    return;
  }
  const time = new Date().toISOString();
  room.broadcast(
    json({ type: "message", id: crypto.randomUUID(), name: s.get("name"), text: msg.slice(0, 500), time }),
  );
});
hub.handleDisconnect((s) => {
  if (!hub.isClosed()) room.broadcast(json({ type: "leave", name: s.get("name") }));
});

const server = await serve(hub, {
  port,
  hostname,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
    const shared = asset(path); // chorus-ws/client and the chat view, for the page
    if (shared) return shared;
    if (path === "/metrics") {
      return new Response(prometheusText(hub.metrics()), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    return new Response("Not found", { status: 404 });
  },
});
await hub.ready();
const everywhere = hostname === "0.0.0.0" || hostname === "::" ? " (all interfaces)" : "";
const redis = redisCluster ? `redis cluster ${redisCluster.join(",")}` : `redis ${redisUrl}`;
console.log(`chat node listening on ${server.url}${everywhere} (node ${hub.node}, ${redis}, prefix ${prefix})`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, async () => {
    await server.shutdown(); // resumable sessions are handed over: their pages reconnect elsewhere (1012)
    process.exit(0);
  });
}
