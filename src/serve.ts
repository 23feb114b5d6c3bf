/**
 * `serve(hub, options)`: one call that serves a hub on Deno or on Bun.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "@chorus/chorus";
 * import { serve } from "@chorus/chorus/serve";
 * const hub = new Hub();
 * hub.handleMessage((_s, msg) => hub.broadcast(msg));
 * const server = await serve(hub, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 *
 * @module
 */

import { HubClosedError } from "./errors.ts";
import { type Hub, sessionInit } from "./hub.ts";
import type { Keys } from "./session.ts";
import { upgradeDeno } from "./adapters/deno.ts";
import { bunAdapter, bunPublisher, type BunServer, type BunWebSocketHandler, upgradeBun } from "./adapters/bun.ts";

/** Options of {@linkcode serve}. */
export interface ServeOptions<K> {
  /** Port to listen on; `0` picks a free one. @default {8080} */
  port?: number;
  /** Address to listen on. @default {"0.0.0.0"} */
  hostname?: string;
  /**
   * Runs before an upgrade (after the origin check): return a Response to refuse it (no
   * session is made), or an object of initial session keys. The place for auth.
   */
  onUpgrade?: (req: Request) => Partial<K> | Response | void | Promise<Partial<K> | Response | void>;
  /** Answers every request that is not a WebSocket upgrade. @default {404} */
  fetch?: (req: Request) => Response | Promise<Response>;
  /**
   * On Bun, send hub-wide and room broadcasts through Bun's native pub/sub where nothing per
   * session forbids it (see `hub.usePublisher`). No effect on Deno, which has none.
   * @default {true}
   */
  nativeFanout?: boolean;
}

/** A running server. */
export interface Server {
  /** The port it listens on. */
  readonly port: number;
  /** Its base URL (`http://host:port/`). */
  readonly url: URL;
  /** Closes the hub (every session, awaiting disconnect hooks), then stops listening. */
  shutdown(): Promise<void>;
}

interface DenoServeRuntime {
  serve(
    options: { port: number; hostname: string; onListen: () => void },
    handler: (req: Request, info: { remoteAddr: { hostname?: string } }) => Response | Promise<Response>,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

interface BunServeRuntime {
  serve(options: {
    port: number;
    hostname: string;
    fetch: (req: Request, server: BunServer) => Response | undefined | Promise<Response | undefined>;
    websocket: BunWebSocketHandler<never>;
  }): BunServer & { port: number; stop(closeActiveConnections?: boolean): Promise<void> | void };
}

/**
 * Serves a hub on Deno or on Bun: WebSocket upgrades become sessions (after the origin check
 * and `onUpgrade`), every other request goes to `fetch`.
 *
 * @param hub The hub.
 * @param options Port, hostname, upgrade policy and the handler for ordinary requests.
 * @returns The running server.
 */
export function serve<K extends Keys>(hub: Hub<K>, options: ServeOptions<K> = {}): Promise<Server> {
  try {
    return Promise.resolve(listen(hub, options));
  } catch (err) {
    return Promise.reject(err);
  }
}

function listen<K extends Keys>(hub: Hub<K>, options: ServeOptions<K>): Server {
  const port = options.port ?? 8080;
  const hostname = options.hostname ?? "0.0.0.0";
  const upgradeRoute = async (
    req: Request,
    upgrade: (req: Request, keys: Partial<K> | undefined) => Response | undefined,
  ): Promise<Response | undefined> => {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return options.fetch ? await options.fetch(req) : new Response("Not found", { status: 404 });
    }
    let refused: Response | undefined;
    try {
      refused = hub.checkRequest(req);
    } catch (err) {
      if (err instanceof HubClosedError) return new Response("Server is shutting down", { status: 503 });
      throw err;
    }
    if (refused) return refused;
    const verdict = options.onUpgrade ? await options.onUpgrade(req) : undefined;
    if (verdict instanceof Response) return verdict;
    if (hub.isClosed()) return new Response("Server is shutting down", { status: 503 });
    return upgrade(req, verdict ?? undefined);
  };
  const host = hostname === "0.0.0.0" || hostname === "::" ? "127.0.0.1" : hostname;
  const bun = (globalThis as { Bun?: BunServeRuntime }).Bun;
  if (bun) {
    const native = options.nativeFanout !== false;
    const adapter = bunAdapter(hub, { nativeFanout: native });
    const server = bun.serve({
      port,
      hostname,
      fetch: (req, server) => upgradeRoute(req, (r, keys) => upgradeBun(server, r, sessionInit(r, keys, ""))),
      websocket: adapter.websocket as BunWebSocketHandler<never>,
    });
    hub.useUpgrader((_hub, req, init) => upgradeBun(server, req, init) ?? new Response(null, { status: 101 }));
    if (native) hub.usePublisher(bunPublisher(server));
    return {
      port: server.port,
      url: new URL(`http://${formatHost(host)}:${server.port}/`),
      async shutdown() {
        await hub.close();
        await server.stop(true);
      },
    };
  }
  const deno = (globalThis as { Deno?: DenoServeRuntime }).Deno;
  if (!deno?.serve) throw new Error("serve() runs on Deno or Bun");
  const server = deno.serve(
    { port, hostname, onListen() {} },
    async (req, info) => {
      const remoteAddr = info.remoteAddr.hostname ?? "";
      return (await upgradeRoute(req, (r, keys) => upgradeDeno(hub, r, sessionInit(r, keys, remoteAddr))))!;
    },
  );
  return {
    port: server.addr.port,
    url: new URL(`http://${formatHost(host)}:${server.addr.port}/`),
    async shutdown() {
      await hub.close();
      await server.shutdown();
    },
  };
}

function formatHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}
