// A hub node of the fault-schedule harness, run as a child process (`deno run -A` or `bun run`): a hub
// with a Redis broker, resumable sessions, presence and room history, plus a control endpoint
// (serve's `fetch`) through which the harness drives broadcasts and reads members and memory.
// Prints "listening <port> node <id> prefix <prefix>" each time a hub serves (at start, and after
// each /seed, which swaps in a fresh hub on a fresh key prefix on the same port, so that a seed
// reuses the process). SIGTERM closes the hub (handing resumable sessions over, 1012) and exits.
//
// Env: PORT (0 = free), REDIS_URL or CLUSTER (comma-separated URLs), PREFIX, LOG, ROUTING
// ("single" | "rooms"), MAX_PENDING (maxPendingBytes), WINDOW (resume window, ms).
//
// A session's keys come from its URL (`?name=<client>&rooms=a,b`); it joins its rooms on connect
// and writes "I <session id>" (its own stream). "e <k>" is logged (fs.appendFileSync, so the line
// survives a SIGKILL) and echoed with s.write("E <k>"); "who" answers "W <session id> <name>".
// Log lines: "<time> <h|c|r|d> <name> <session> [<k>]" (handled, connect, resume, disconnect).
//
// Control (GET): /bc?s=h|r:<room>&from=<n>&count=<c>&pad=<bytes> broadcasts "H <n>" or
// "R <room> <n>" for n in [from, from+count); /members?room=<room>; /stats (sessions, memory after
// a GC); /seed?prefix=&log=&routing= (a fresh hub).

import * as fs from "node:fs";
import process from "node:process";
import { Hub } from "../../mod.ts";
import { redisBroker } from "../../src/brokers/redis.ts";
import { serve, type Server } from "../../src/serve.ts";

interface Keys {
  name: string;
  rooms: string;
}

const env = process.env;
const cluster = env.CLUSTER ? env.CLUSTER.split(",") : undefined;
let port = Number(env.PORT ?? 0);
let hub: Hub<Keys>;
let server: Server;
let log = env.LOG ?? "";

/** Wall-clock milliseconds with sub-millisecond precision, comparable across the harness's processes. */
const now = (): number => performance.timeOrigin + performance.now();

function record(line: string): void {
  if (log) fs.appendFileSync(log, `${now().toFixed(3)} ${line}\n`);
}

function makeHub(prefix: string, routing: string): Hub<Keys> {
  const h = new Hub<Keys>({
    broker: redisBroker({
      ...(cluster ? { cluster } : { url: env.REDIS_URL }),
      prefix,
      heartbeatInterval: 500,
      presenceTtl: 2000,
      maxPendingBytes: Number(env.MAX_PENDING ?? 32 << 10),
      commandTimeout: 1500,
      routing: routing === "rooms" ? "rooms" : cluster ? undefined : "single",
    }),
    resume: { window: Number(env.WINDOW ?? 8000), maxMessages: 5000 },
    presence: { keys: ["name"] },
    history: { size: 50 },
    pingInterval: 1000,
    pongWait: 2000,
    maxBufferedAmount: 8 << 20,
  });
  h.handleBrokerError((err) => console.error(`broker error: ${err.message}`));
  h.handleError((_s, err) => console.error(`session error: ${err.message}`));
  h.handleConnect((s) => {
    record(`c ${s.get("name")} ${s.id}`);
    for (const room of (s.get("rooms") ?? "").split(",")) if (room) s.join(room);
    s.write(`I ${s.id}`);
  });
  h.handleResume((s) => record(`r ${s.get("name")} ${s.id}`));
  h.handleDisconnect((s) => record(`d ${s.get("name")} ${s.id}`));
  h.handleClose((s, code, reason) => record(`x ${s.get("name")} ${s.id} ${code} ${reason.replaceAll(" ", "_")}`));
  h.handleMessage((s, msg) => {
    if (msg.startsWith("e ")) {
      record(`h ${s.get("name")} ${s.id} ${msg.slice(2)}`);
      s.write(`E ${msg.slice(2)}`);
    } else if (msg === "who") s.write(`W ${s.id} ${s.get("name")}`);
  });
  return h;
}

async function control(req: Request): Promise<Response> {
  const url = new URL(req.url);
  const q = url.searchParams;
  switch (url.pathname) {
    case "/bc": {
      const stream = q.get("s") ?? "h";
      const from = Number(q.get("from"));
      const count = Number(q.get("count") ?? 1);
      const pad = Number(q.get("pad") ?? 0) > 0 ? " " + "x".repeat(Number(q.get("pad"))) : "";
      for (let n = from; n < from + count; n++) {
        if (stream === "h") hub.broadcast(`H ${n}${pad}`);
        else hub.room(stream.slice(2)).broadcast(`R ${stream.slice(2)} ${n}${pad}`);
      }
      return new Response("ok");
    }
    case "/members": {
      const members = await hub.room(q.get("room") ?? "").members();
      return Response.json(members.map((m) => ({ id: m.id, node: m.node, name: m.keys.name })));
    }
    case "/stats": {
      const g = globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } };
      if (g.Bun) g.Bun.gc(true);
      else g.gc?.();
      const mem = process.memoryUsage();
      const sessions = [...hub.sessions()].map((s) => [s.id, s.connected, s.get("name") ?? ""]);
      return Response.json({ node: hub.node, sessions, heapUsed: mem.heapUsed, rss: mem.rss });
    }
    case "/seed":
      setTimeout(() => swap(q.get("prefix")!, q.get("log") ?? "", q.get("routing") ?? "single"), 0);
      return new Response("swapping");
  }
  return new Response("not found", { status: 404 });
}

async function start(prefix: string, routing: string): Promise<void> {
  hub = makeHub(prefix, routing);
  dropped = 0;
  server = await serve(hub, {
    port,
    hostname: "127.0.0.1",
    fetch: control,
    onUpgrade: (req) => {
      const q = new URL(req.url).searchParams;
      return { name: q.get("name") ?? "", rooms: q.get("rooms") ?? "" };
    },
  });
  port = server.port;
  await hub.ready();
  console.log(`listening ${port} node ${hub.node} prefix ${prefix}`);
}

async function swap(prefix: string, nextLog: string, routing: string): Promise<void> {
  try {
    await server.shutdown();
    log = nextLog;
    await start(prefix, routing);
  } catch (err) {
    console.error(`swap failed: ${(err as Error).stack}`);
    process.exit(3);
  }
}

// what the broker's streams did not take (metrics.brokerDropped), for the checker: "D - - <total>"
let dropped = 0;
setInterval(() => {
  const total = hub?.metrics().brokerDropped ?? 0;
  if (total !== dropped) record(`D - - ${dropped = total}`);
}, 100);

// a harness that died without stopping it leaves it to the init process: it goes too
const parent = process.ppid;
setInterval(() => process.ppid !== parent && process.exit(4), 1000);

process.on("SIGTERM", async () => {
  await server.shutdown();
  console.log("closed");
  process.exit(0);
});

await start(env.PREFIX ?? "chorus-chaos", env.ROUTING ?? "single");
