/**
 * The server side of the benchmark, on Deno or Bun: `hub` serves a chorus hub, `raw` does the
 * same job with the bare runtime (Bun: native `server.publish`; Deno: a `send` loop).
 *
 * Clients connect to `/?room=<name>` and send text whose first letter says what to do:
 * `b` broadcast to everyone, `r` broadcast to the sender's room, `e` echo to the sender.
 * `GET /mem` collects garbage and answers `{ rss, heap, sessions, publishes }` (publishes: the
 * hub's native publishes so far); `GET /quit` exits. Prints `{"port":N}` when ready.
 *
 * `--resume` (hub only) serves a hub with `resume: {}`: clients that offer `chorus.v1` get
 * resumable sessions, the others plain ones, on the same hub.
 *
 *   deno run -A --v8-flags=--expose-gc bench/server.ts [--resume] hub|raw
 *   bun bench/server.ts [--resume] hub|raw
 *
 * @module
 */

import process from "node:process";
// from the source, as hubCore (an internal counter) is: one copy of the hub on both runtimes
import { Hub } from "../mod.ts";
import { serve } from "../src/serve.ts";
import { hubCore } from "../src/hub.ts";

const mode = process.argv[process.argv.length - 1];
if (mode !== "hub" && mode !== "raw") throw new Error("usage: server.ts [--resume] hub|raw");
const resume = process.argv.includes("--resume");
if (resume && mode !== "hub") throw new Error("--resume needs hub mode");

interface BunLike {
  serve(options: unknown): { port: number; publish(topic: string, data: string, compress?: boolean): number };
  gc(force: boolean): void;
}
interface BunSocket {
  data: { topic: string | undefined };
  subscribe(topic: string): void;
  send(data: string): number;
}
interface DenoSocket {
  onopen: (() => void) | null;
  onmessage: ((e: MessageEvent) => void) | null;
  onclose: (() => void) | null;
  send(data: string): void;
}
interface DenoLike {
  serve(
    options: { port: number; hostname: string; onListen: (addr: { port: number }) => void },
    handler: (req: Request) => Response | Promise<Response>,
  ): unknown;
  upgradeWebSocket(req: Request): { socket: DenoSocket; response: Response };
}

const bun = (globalThis as { Bun?: BunLike }).Bun;
const deno = (globalThis as { Deno?: DenoLike }).Deno;
let sessions = (): number => 0;
let publishes = (): number => 0;

function quit(): Response {
  // a clean exit, so that `--cpu-prof` writes its profile
  setTimeout(() => process.exit(0), 20);
  return new Response("bye");
}

function control(req: Request): Response | Promise<Response> | undefined {
  const path = new URL(req.url).pathname;
  return path === "/mem" ? memory() : path === "/quit" ? quit() : undefined;
}

async function memory(): Promise<Response> {
  for (let i = 0; i < 3; i++) {
    if (bun) bun.gc(true);
    else (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  const m = process.memoryUsage();
  return Response.json({ rss: m.rss, heap: m.heapUsed, sessions: sessions(), publishes: publishes() });
}

function roomOf(url: string): string | undefined {
  const q = url.indexOf("?room=");
  return q < 0 ? undefined : url.slice(q + 6);
}

// The orchestrator holds our stdin: when it goes away, so do we.
process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

function ready(port: number): void {
  console.log(JSON.stringify({ port }));
}

if (mode === "hub") {
  const hub = new Hub<{ room: string }>({ checkOrigin: () => true, resume: resume ? {} : undefined });
  hub.handleConnect((s) => {
    const room = s.get("room");
    if (room !== undefined) s.join(room);
  });
  hub.handleMessage((s, msg) => {
    const kind = msg.charCodeAt(0);
    if (kind === 98) hub.broadcast(msg);
    else if (kind === 114) hub.room(s.get("room")!).broadcast(msg);
    else s.write(msg);
  });
  sessions = () => hub.size;
  // the bench reads an internal counter: whether broadcasts went out as native publishes (Bun)
  publishes = () => hubCore(hub).fanout.publishes;
  const server = await serve(hub, {
    port: 0,
    hostname: "127.0.0.1",
    // the room comes as an initial key: nothing reads `session.request`, which is built on demand
    onUpgrade: (req) => {
      const room = roomOf(req.url);
      return room === undefined ? undefined : { room };
    },
    fetch: (req) => control(req) ?? new Response("not found", { status: 404 }),
  });
  ready(server.port);
} else if (bun) {
  let count = 0;
  const server = bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req: Request, server: { upgrade(req: Request, o: { data: unknown }): boolean }) {
      const answer = control(req);
      if (answer) return answer;
      const room = roomOf(req.url);
      const data = { topic: room === undefined ? undefined : `room.${room}` };
      return server.upgrade(req, { data }) ? undefined : new Response("upgrade failed", { status: 400 });
    },
    websocket: {
      // the hub's defaults, so that both sides bound the same queue
      maxPayloadLength: 1 << 20,
      backpressureLimit: 4 << 20,
      open(ws: BunSocket) {
        count++;
        ws.subscribe("all");
        if (ws.data.topic !== undefined) ws.subscribe(ws.data.topic);
      },
      message(ws: BunSocket, msg: string) {
        const kind = msg.charCodeAt(0);
        if (kind === 98) server.publish("all", msg, false);
        else if (kind === 114) server.publish(ws.data.topic!, msg, false);
        else ws.send(msg);
      },
      close() {
        count--;
      },
    },
  });
  sessions = () => count;
  ready(server.port);
} else if (deno) {
  const all = new Set<DenoSocket>();
  const rooms = new Map<string, Set<DenoSocket>>();
  sessions = () => all.size;
  deno.serve({ port: 0, hostname: "127.0.0.1", onListen: ({ port }) => ready(port) }, (req) => {
    const answer = control(req);
    if (answer) return answer;
    const room = roomOf(req.url);
    const { socket, response } = deno.upgradeWebSocket(req);
    let members: Set<DenoSocket> | undefined;
    socket.onopen = () => {
      all.add(socket);
      if (room !== undefined) {
        members = rooms.get(room);
        if (!members) rooms.set(room, members = new Set());
        members.add(socket);
      }
    };
    socket.onmessage = (e) => {
      const msg = e.data as string;
      const kind = msg.charCodeAt(0);
      if (kind === 98) { for (const s of all) s.send(msg); }
      else if (kind === 114) { for (const s of members!) s.send(msg); }
      else socket.send(msg);
    };
    socket.onclose = () => {
      all.delete(socket);
      members?.delete(socket);
    };
    return response;
  });
} else throw new Error("bench/server.ts runs on Deno or Bun");
