/**
 * Starts a server on Deno or on Bun around one request handler, with the hub's websocket
 * handlers on Bun. The one place `serve()` and the Hono integration listen. Internal.
 *
 * @module
 */

import { HubClosedError } from "./errors.ts";
import { type Hub, sessionInit } from "./hub.ts";
import type { Keys } from "./session.ts";
import { socketsClosed, upgradeDeno } from "./adapters/deno.ts";
import { bunAdapter, type BunServer, type BunWebSocketHandler, upgradeBun } from "./adapters/bun.ts";

/** A running server. */
export interface Server {
  /** The port it listens on. */
  readonly port: number;
  /** Its base URL (`http://host:port/`). */
  readonly url: URL;
  /**
   * Closes the hub (every session, awaiting disconnect hooks), lets the closing handshakes
   * finish (on Deno at most 1 s), then stops listening.
   */
  shutdown(): Promise<void>;
}

/** Where a request came in: the peer's address, and the runtime's own second `fetch` argument. */
export interface Incoming {
  /** The peer's address, `""` where not known. */
  remoteAddr: string;
  /** The Bun server (on Bun). */
  bun?: BunServer;
  /** What the runtime passed beside the request: Bun's server or Deno's connection info. */
  env: unknown;
}

/** A request handler; `undefined` after a Bun upgrade. */
export type Handler = (req: Request, incoming: Incoming) => Response | undefined | Promise<Response | undefined>;

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
 * Listens with `Bun.serve` (and the hub's websocket handlers) or `Deno.serve`.
 *
 * @param hub The hub whose sessions the server carries; `shutdown` closes it.
 * @param port Port; `0` picks a free one.
 * @param hostname Address to listen on.
 * @param nativeFanout On Bun, broadcast through Bun's pub/sub (see `bunAdapter`).
 * @param handler Every request.
 * @returns The running server.
 */
export function listen<K extends Keys>(
  hub: Hub<K>,
  port: number,
  hostname: string,
  nativeFanout: boolean,
  handler: Handler,
): Server {
  const host = hostname === "0.0.0.0" || hostname === "::"
    ? "127.0.0.1"
    : hostname.includes(":")
    ? `[${hostname}]`
    : hostname;
  const bun = (globalThis as { Bun?: BunServeRuntime }).Bun;
  if (bun) {
    const server = bun.serve({
      port,
      hostname,
      fetch: (req, server) => handler(req, { remoteAddr: "", bun: server, env: server }),
      websocket: bunAdapter(hub, { nativeFanout }).websocket as BunWebSocketHandler<never>,
    });
    return {
      port: server.port,
      url: new URL(`http://${host}:${server.port}/`),
      async shutdown() {
        await hub.close();
        await server.stop(true);
      },
    };
  }
  const deno = (globalThis as { Deno?: Partial<DenoServeRuntime> }).Deno;
  if (!deno?.serve) throw new Error("chorus serves on Deno or Bun");
  const server = deno.serve({ port, hostname, onListen() {} }, async (req, info) => {
    const res = await handler(req, { remoteAddr: info.remoteAddr.hostname ?? "", env: info });
    return res ?? new Response("Not found", { status: 404 });
  });
  return {
    port: server.addr.port,
    url: new URL(`http://${host}:${server.addr.port}/`),
    async shutdown() {
      await hub.close();
      // Let the hub's close frames go out before Deno.serve sends its own (1001) to every socket.
      await socketsClosed(hub, CLOSE_WAIT);
      await server.shutdown();
    },
  };
}

/** How long a Deno server's shutdown waits for closing handshakes (peers that never answer). */
const CLOSE_WAIT = 1000;

/**
 * Accepts an upgrade request: the hub's checks (426, 403; 503 once closed), then `decide`
 * (a Response refuses, an object becomes the initial keys), then the runtime's upgrade.
 *
 * @param hub The hub.
 * @param req The request.
 * @param incoming Where it came in.
 * @param decide The caller's verdict: `onUpgrade` of `serve()`, `keys` of the Hono handler.
 * @returns The response, or `undefined` after a Bun upgrade.
 */
export async function accept<K extends Keys>(
  hub: Hub<K>,
  req: Request,
  incoming: Incoming,
  decide?: () => Partial<K> | Response | void | undefined | Promise<Partial<K> | Response | void | undefined>,
): Promise<Response | undefined> {
  let refused: Response | undefined;
  try {
    refused = hub.checkRequest(req);
  } catch (err) {
    if (err instanceof HubClosedError) return shuttingDown();
    throw err;
  }
  if (refused) return refused;
  const verdict = decide ? await decide() : undefined;
  if (verdict instanceof Response) return verdict;
  if (hub.isClosed()) return shuttingDown();
  const init = sessionInit(req, verdict ?? undefined, incoming.remoteAddr);
  return incoming.bun ? upgradeBun(incoming.bun, req, init) : upgradeDeno(hub, req, init);
}

function shuttingDown(): Response {
  return new Response("Server is shutting down", { status: 503 });
}
