/**
 * What every example shares: the port (first argument, else `PORT`, else 8080; `0` picks a free
 * one), the address (`HOST`, else 127.0.0.1: this machine only; `HOST=0.0.0.0` for every
 * interface), chorus-ws/client for the pages at `/chorus-client.js`, one line with the URL once
 * listening (saying "all interfaces" when it is so), and a clean shutdown on SIGINT/SIGTERM. Runs
 * unchanged on Deno and on Bun.
 *
 * @module
 */

import process from "node:process";
import { readFileSync } from "node:fs";
import type { Hub, Keys } from "chorus-ws";
import { type FetchApp, serveApp, type Server } from "chorus-ws/hono";

/** Options of {@linkcode runExample}. */
export interface RunOptions {
  /** Runs on SIGINT/SIGTERM before the hub closes (stop timers, watchers). */
  onShutdown?: () => void | Promise<void>;
}

/** chorus/client as one browser module, built by `scripts/build_client.ts`; read once. */
const clientModule = readFileSync(new URL("_static/chorus-client.js", import.meta.url), "utf8");

/**
 * The browser build of chorus/client, for a page's `import { connect } from "/chorus-client.js"`.
 *
 * @returns The module, as `text/javascript`.
 */
export function clientScript(): Response {
  return new Response(clientModule, { headers: { "content-type": "text/javascript; charset=utf-8" } });
}

/**
 * Serves an example's app and hub, with chorus/client at `/chorus-client.js` (see
 * {@linkcode clientScript}), prints `<name> listening on <url>`, and shuts down cleanly
 * on SIGINT or SIGTERM: every session is closed with 1001, then the process exits.
 *
 * @param name The example's name, for the log line.
 * @param hub The hub.
 * @param app The Hono app.
 * @param options Shutdown work.
 * @returns The running server.
 */
export async function runExample<K extends Keys>(
  name: string,
  hub: Hub<K>,
  app: FetchApp,
  options: RunOptions = {},
): Promise<Server> {
  const raw = process.argv[2] ?? process.env.PORT ?? "8080";
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`Not a port: ${raw}`);
  const withClient: FetchApp = {
    fetch: (req, env) => new URL(req.url).pathname === "/chorus-client.js" ? clientScript() : app.fetch(req, env),
  };
  const server = await serveApp(hub, withClient, { port, hostname: process.env.HOST ?? "127.0.0.1" });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${name}: ${signal}, shutting down`);
    await options.onShutdown?.();
    await server.shutdown();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  const everywhere = server.hostname === "0.0.0.0" || server.hostname === "::";
  console.log(`${name} listening on ${server.url}${everywhere ? " (all interfaces)" : ""}`);
  return server;
}

/**
 * Reads a file next to the calling module (an example's page).
 *
 * @param base The caller's `import.meta.url`.
 * @param file The file's name.
 * @returns Its text.
 */
export function page(base: string, file: string): string {
  return readFileSync(new URL(file, base), "utf8");
}
