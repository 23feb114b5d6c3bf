/**
 * crossws for `npm run bench:peers`, on Deno or Bun: crossws's own adapter for the runtime, each
 * text message that starts with `b` broadcast to every peer with the adapter's `publish` (on Bun one
 * native publish), the job `bench/server.ts hub` does in the fan-out. Prints `{"port":N}` when
 * ready; `GET /quit` exits, and so does the end of stdin (the orchestrator is gone).
 *
 *   deno run -A bench/crossws_server.ts      bun bench/crossws_server.ts
 *
 * @module
 */

import process from "node:process";
import bunAdapter from "crossws/adapters/bun";
import denoAdapter from "crossws/adapters/deno";

interface BunLike {
  serve(options: {
    port: number;
    hostname: string;
    fetch(req: Request, server: unknown): Response | undefined | Promise<Response | undefined>;
    websocket: unknown;
  }): { port: number };
}
interface DenoLike {
  serve(
    options: { port: number; hostname: string; onListen: (addr: { port: number }) => void },
    handler: (req: Request, info: unknown) => Response | Promise<Response>,
  ): unknown;
}

const bun = (globalThis as { Bun?: BunLike }).Bun;
const deno = (globalThis as { Deno?: DenoLike }).Deno;

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();

function quit(req: Request): Response | undefined {
  if (new URL(req.url).pathname !== "/quit") return undefined;
  setTimeout(() => process.exit(0), 20);
  return new Response("bye");
}

const hooks = {
  open(peer: { subscribe(topic: string): void }) {
    peer.subscribe("all");
  },
  message(_peer: unknown, message: { text(): string }) {
    const text = message.text();
    if (text.charCodeAt(0) === 98) ws.publish("all", text);
  },
};
const ws = bun ? bunAdapter({ hooks }) : denoAdapter({ hooks });
const ready = (port: number) => console.log(JSON.stringify({ port }));

if (bun) {
  const adapter = ws as ReturnType<typeof bunAdapter>;
  const server = bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req, server) =>
      quit(req) ?? adapter.handleUpgrade(req, server as Parameters<typeof adapter.handleUpgrade>[1]),
    websocket: adapter.websocket,
  });
  ready(server.port);
} else if (deno) {
  const adapter = ws as ReturnType<typeof denoAdapter>;
  deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: ({ port }) => ready(port) },
    (req, info) => quit(req) ?? adapter.handleUpgrade(req, info as Parameters<typeof adapter.handleUpgrade>[1]),
  );
} else throw new Error("bench/crossws_server.ts runs on Deno or Bun");
