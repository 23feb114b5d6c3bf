/**
 * What every example shares: the port (first argument, else `PORT`, else 8080; `0` picks a free
 * one), the address (`HOST`, else 127.0.0.1: this machine only; `HOST=0.0.0.0` for every
 * interface), the pages' shared files (`/chorus-client.js`, `/chat-view.js`, `/chat.css`: see
 * `_assets.ts`), one line with the URL once
 * listening (saying "all interfaces" when it is so), and a clean shutdown on SIGINT/SIGTERM. Runs
 * unchanged on Deno and on Bun.
 *
 * @module
 */

import process from "node:process";
import { readFileSync } from "node:fs";
import type { Hub, Keys } from "chorus-ws";
import { type FetchApp, serveApp, type Server } from "chorus-ws/hono";
import { asset } from "./_assets.ts";

/** Options of {@linkcode runExample}. */
export interface RunOptions {
  /** Runs on SIGINT/SIGTERM before the hub closes (stop timers, watchers). */
  onShutdown?: () => void | Promise<void>;
}

/**
 * Serves an example's app and hub, with the pages' shared files (see `_assets.ts`), prints `<name> listening on <url>`, and shuts down cleanly
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
  const withAssets: FetchApp = {
    fetch: (req, env) => asset(new URL(req.url).pathname) ?? app.fetch(req, env),
  };
  const server = await serveApp(hub, withAssets, { port, hostname: process.env.HOST ?? "127.0.0.1" });
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
