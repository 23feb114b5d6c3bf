/**
 * Starts a server on Deno or on Bun around one request handler, with the hub's websocket
 * handlers on Bun. The one place `serve()` and the Hono integration listen. Internal.
 *
 * May import: `hub.ts`, `adapter.ts`, the adapters, `core/_upgrade.ts`, `core/_refuse.ts`.
 *
 * @module
 */

import { type Hub, hubCore } from "./hub.ts";
import { copyRequest, refusedUpgrade, socketsClosed } from "./adapter.ts";
import { upgradeDeno } from "./adapters/deno.ts";
import { bunAdapter, type BunServer, type BunWebSocketHandler, upgradeBun } from "./adapters/bun.ts";
import { checkUpgrade, resolveUpgrade, shuttingDown, type Upgrade, upgradeFor } from "./core/_upgrade.ts";
import { refuse } from "./core/_refuse.ts";

/** A running server. */
export interface Server {
  /** The port it listens on. */
  readonly port: number;
  /**
   * The address it listens on, as the runtime bound it: `0.0.0.0` (or `::`) means every
   * interface, so other machines can connect too, not only this one.
   */
  readonly hostname: string;
  /**
   * Its base URL: `http://<hostname>:<port>/`, or `http://localhost:<port>/` when it listens on
   * every interface (an address to browse to, not the only one that reaches it).
   */
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
  /**
   * The Bun server (on Bun), asked for only once the hub's checks passed: a request that
   * cannot be upgraded gets the same answer whether or not a server is at hand.
   */
  bun?: () => BunServer;
  /** What the runtime passed beside the request: Bun's server or Deno's connection info. */
  env: unknown;
}

/** A request handler; `undefined` after a Bun upgrade. */
export type Handler = (req: Request, incoming: Incoming) => Response | undefined | Promise<Response | undefined>;

interface DenoServeRuntime {
  serve(
    options: { port: number; hostname: string; onListen: () => void },
    handler: (req: Request, info: { remoteAddr: { hostname?: string } }) => Response | Promise<Response>,
  ): { addr: { port: number; hostname: string }; shutdown(): Promise<void> };
}

interface BunServeRuntime {
  serve(options: {
    port: number;
    hostname: string;
    fetch: (req: Request, server: BunServer) => Response | undefined | Promise<Response | undefined>;
    websocket: BunWebSocketHandler<never>;
  }): BunServer & { port: number; hostname?: string; stop(closeActiveConnections?: boolean): Promise<void> | void };
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
export function listen<K extends object>(
  hub: Hub<K>,
  port: number,
  hostname: string,
  nativeFanout: boolean,
  handler: Handler,
): Server {
  const bun = (globalThis as { Bun?: BunServeRuntime }).Bun;
  if (bun) {
    const server = bun.serve({
      port,
      hostname,
      fetch: (req, server) => handler(req, { remoteAddr: "", bun: () => server, env: server }),
      websocket: bunAdapter(hub, { nativeFanout }).websocket as BunWebSocketHandler<never>,
    });
    const bound = server.hostname || hostname;
    return {
      port: server.port,
      hostname: bound,
      url: baseUrl(bound, server.port),
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
  const bound = server.addr.hostname || hostname;
  return {
    port: server.addr.port,
    hostname: bound,
    url: baseUrl(bound, server.addr.port),
    async shutdown() {
      await hub.close();
      // Let the hub's closing handshakes finish before Deno.serve sends its own close frame
      // (1001 "Server shutting down") to every socket it still holds.
      await socketsClosed(hub, CLOSE_WAIT);
      await server.shutdown();
    },
  };
}

/** Whether an address is the wildcard: listening on every interface. */
function everyInterface(hostname: string): boolean {
  return hostname === "0.0.0.0" || hostname === "::" || hostname === "[::]" || hostname === "";
}

/** The URL of a server bound to `hostname`: `localhost` for the wildcard, brackets for IPv6. */
function baseUrl(hostname: string, port: number): URL {
  const host = everyInterface(hostname)
    ? "localhost"
    : hostname.includes(":") && !hostname.startsWith("[")
    ? `[${hostname}]`
    : hostname;
  return new URL(`http://${host}:${port}/`);
}

/** How long a Deno server's shutdown waits for closing handshakes (peers that never answer). */
const CLOSE_WAIT = 1000;

/**
 * Accepts an upgrade request: the hub's checks (426, 403; 503 once closed), then `decide`
 * (a Response refuses, an object becomes the initial keys; it may pick the subprotocol and
 * add headers on the {@linkcode Upgrade} it gets), then the runtime's upgrade. A refusal goes to
 * a `chorus.v1` client as a close code (4000 + status) on an upgrade closed at once.
 *
 * @param hub The hub.
 * @param req The request.
 * @param incoming Where it came in.
 * @param decide The caller's verdict: `onUpgrade` of `serve()`, `keys` of the Hono handler.
 * @returns The response, or `undefined` after a Bun upgrade.
 * @throws {TypeError} If `decide` chose a subprotocol the client did not offer.
 */
export async function accept<K extends object>(
  hub: Hub<K>,
  req: Request,
  incoming: Incoming,
  decide?: (
    upgrade: Upgrade,
  ) => Partial<K> | Response | void | undefined | Promise<Partial<K> | Response | void | undefined>,
): Promise<Response | undefined> {
  const refused = checkUpgrade(hubCore(hub), req);
  // A chorus.v1 client is told a refusal by a close code (see core/_refuse.ts).
  if (refused) return refuse(req, refused, incoming.bun);
  const upgrade = upgradeFor(req);
  const verdict = decide ? await decide(upgrade) : undefined;
  if (verdict instanceof Response) {
    refusedUpgrade(hub, verdict.status, "onUpgrade (or the route's keys) answered with a response");
    return refuse(req, verdict, incoming.bun);
  }
  if (hub.isClosed()) return shuttingDown();
  const answer = resolveUpgrade(req, upgrade);
  const init = copyRequest(req, verdict ?? undefined, incoming.remoteAddr);
  return incoming.bun ? upgradeBun(incoming.bun(), req, init, answer) : upgradeDeno(hub, req, init, answer);
}
