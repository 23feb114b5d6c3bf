// The chat as a cluster: run it twice on two ports, sharing one Redis, and a user on one
// process sees the messages of users on the other.
//
//   deno run -A examples/cluster/main.ts 8001      bun run examples/cluster/main.ts 8002
//
// Port: first argument or PORT (0 picks a free one; default 8001). Redis: REDIS_URL
// (default redis://127.0.0.1:6379), PREFIX names the cluster. Open http://localhost:8001/ and http://localhost:8002/.
// Each process serves its metrics at /metrics, in the Prometheus text format.

import { readFile } from "node:fs/promises";
import process from "node:process";
import { Hub, prometheusText } from "chorus-ws";
import { redisBroker } from "chorus-ws/redis";
import { serve } from "chorus-ws/serve";

const port = Number(process.argv[2] ?? process.env.PORT ?? 8001);
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const prefix = process.env.PREFIX ?? "chorus-cluster-example"; // the processes that share it are one cluster
const page = await readFile(new URL("./index.html", import.meta.url), "utf8");

const hub = new Hub<{ name: string }>({ broker: redisBroker({ url: redisUrl, prefix }) });
let guests = 0;

hub.handleBrokerError((err) => console.error(`redis: ${err.message}`));
hub.handleConnect(async (s) => {
  s.set("name", `guest-${++guests}@${server.port}`);
  s.write(`you are ${s.get("name")}`);
  hub.broadcast(`${s.get("name")} joined (${await hub.count()} online across the cluster)`);
});
hub.handleMessage(async (s, msg) => {
  if (msg === "/who") {
    s.write(`${await hub.count()} online across the cluster, ${hub.size} on this process`);
    return;
  }
  hub.broadcast(`${s.get("name")}: ${msg.slice(0, 500)}`);
});
hub.handleDisconnect((s) => {
  if (!hub.isClosed()) hub.broadcast(`${s.get("name")} left`);
});

const server = await serve(hub, {
  port,
  fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/") return new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } });
    if (path === "/metrics") {
      return new Response(prometheusText(hub.metrics()), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    return new Response("Not found", { status: 404 });
  },
});
await hub.ready();
console.log(`chat node listening on http://localhost:${server.port}/ (node ${hub.node}, redis ${redisUrl})`);

process.on("SIGINT", async () => {
  await server.shutdown();
  process.exit(0);
});
