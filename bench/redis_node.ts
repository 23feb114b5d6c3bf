// A hub for bench/redis.ts, in its own process: with a Redis broker (REDIS_URL, PREFIX) or,
// with NO_BROKER=1, alone. Prints "ready <port>" once listening (and subscribed).
// RESUME (JSON, e.g. "{}") gives the hub `resume` options (recoverable broadcasts through Redis
// streams, chorus.v1 sessions that resume on any node); MAX_PENDING sets the broker's
// maxPendingBytes; ROUTING ("single" or "rooms") the broker's routing.
// Text commands: "size" answers "size <sessions on this node>"; "burst <n> <size>" broadcasts n messages of about size bytes ("<i> xxx…");
// "room <name> <n> <size>" does the same to a room; "join <name>" joins the sender to a room and
// answers "joined"; anything else is broadcast as it is.

import process from "node:process";
import { Hub } from "chorus-ws";
import { redisBroker } from "chorus-ws/redis";
import { serve } from "chorus-ws/serve";

const env = process.env;
const hub = new Hub({
  maxBufferedAmount: 64 << 20,
  broker: env.NO_BROKER ? undefined : redisBroker({
    url: env.REDIS_URL,
    prefix: env.PREFIX ?? "chorus-bench",
    ...(env.MAX_PENDING ? { maxPendingBytes: Number(env.MAX_PENDING) } : {}),
    ...(env.ROUTING === "rooms" ? { routing: "rooms" as const } : {}),
  }),
  ...(env.RESUME ? { resume: JSON.parse(env.RESUME) } : {}),
});
hub.handleBrokerError((err) => console.error(`broker error: ${err.message}`));
hub.handleError((_s, err) => console.error(`session error: ${err.message}`));
hub.handleMessage((s, msg) => {
  if (msg === "size") return s.write(`size ${hub.size}`);
  if (msg.startsWith("join ")) {
    s.join(msg.slice(5));
    return s.write("joined");
  }
  if (msg.startsWith("burst ")) {
    const [, n, size] = msg.split(" ").map(Number);
    const pad = "x".repeat(Math.max(0, size - 8));
    for (let i = 0; i < n; i++) hub.broadcast(`${i} ${pad}`);
    return;
  }
  if (msg.startsWith("room ")) {
    const [, name, n, size] = msg.split(" ");
    const pad = "x".repeat(Math.max(0, Number(size) - 8));
    const room = hub.room(name);
    for (let i = 0; i < Number(n); i++) room.broadcast(`${String(i).padStart(7, "0")} ${pad}`);
    return;
  }
  hub.broadcast(msg);
});
const server = await serve(hub, { port: Number(env.PORT ?? 0), hostname: "127.0.0.1" });
await hub.ready();
console.log(`ready ${server.port}`);
process.on("SIGTERM", async () => {
  await server.shutdown();
  process.exit(0);
});
