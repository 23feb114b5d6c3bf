/**
 * Hono integration: a route handler that upgrades a request to a hub session on Deno or on Bun,
 * the `websocket` handlers Bun needs, and `serveApp` to run a Hono app with a hub on either runtime.
 *
 * Middleware registered before the handler (auth, logging) runs first; a middleware that returns
 * a response (a 401, say) ends the request before any session exists, so no connect hook runs.
 * Sessions are keyed on the socket, not on a per-event Hono context.
 *
 * @example
 * ```ts ignore
 * import { Hono } from "hono";
 * import { Hub } from "chorus-ws";
 * import { serveApp, upgrade, type UpgradeContext } from "chorus-ws/hono";
 *
 * type AppEnv = { Variables: { uid: string } };
 * const hub = new Hub<{ uid: string }>();
 * hub.handleMessage((s, msg) => hub.broadcast(`${s.get("uid")}: ${msg}`));
 * const app = new Hono<AppEnv>();
 * app.use("/ws", async (c, next) => {
 *   const uid = c.req.query("uid");
 *   if (!uid) return c.text("Unauthorized", 401);
 *   c.set("uid", uid);
 *   await next();
 * });
 * // `c: UpgradeContext<AppEnv>`: a typo such as c.get("usr") does not compile
 * app.get("/ws", upgrade(hub, { keys: (c: UpgradeContext<AppEnv>) => ({ uid: c.get("uid") }) }));
 * // Deno or Bun, unchanged:
 * const server = await serveApp(hub, app, { port: 8080 });
 * // or by hand: Deno.serve(app.fetch), or Bun.serve({ fetch: app.fetch, websocket: websocket(hub) })
 * ```
 *
 * @module
 */

// A server. May import: `hub.ts` (types), `listen.ts`, `adapters/bun.ts`, `core/_upgrade.ts` (types),
// `_options_check.ts`, `hono` (types).

import type { ContextVariableMap } from "hono";
import type { Hub } from "./hub.ts";
import { accept, type Incoming, listen, type Server } from "./listen.ts";
import { bunAdapter, type BunServer, type BunWebSocketHandler } from "./adapters/bun.ts";
import type { Upgrade } from "./core/_upgrade.ts";
import { checkOptions } from "./_options_check.ts";

export type { Server } from "./listen.ts";
export type { Upgrade } from "./core/_upgrade.ts";
/** Hono's interface of the variables every context has (`hono/jwt` adds `jwtPayload` to it). */
export type { ContextVariableMap } from "hono";

/**
 * What {@linkcode upgrade} reads of a Hono app's `Env` (the type given to `new Hono<Env>()`):
 * the variables its middleware sets (`c.set`) and reads (`c.get`).
 */
export interface HonoEnv {
  /** The variables, by name. */
  Variables?: object;
  /** The runtime's bindings. */
  Bindings?: object;
}

/** The app declares no variables (`new Hono()`). */
export type NoVariables = Record<never, never>;

/** The variables an `Env` declares: `{ Variables: { uid: string } }` → `{ uid: string }`. */
export type VariablesOf<E extends HonoEnv> = E extends { Variables: infer V extends object } ? V : NoVariables;

/**
 * What {@linkcode upgrade} and its `keys` read of a Hono context (Hono's `Context<E>` is one),
 * typed with the app's `Env` as Hono types it: `c.get` takes the variables `E` declares and those
 * every context has ({@linkcode ContextVariableMap}), and reading any other (`c.get("usr")`) is a
 * compile error. A small local interface, so chorus-ws/hono's types hold across Hono 4 versions.
 */
export interface UpgradeContext<E extends HonoEnv = NoVariables> {
  /** Hono's request. */
  readonly req: UpgradeRequest;
  /** What the runtime passed beside the request: Bun's server, or Deno's connection info. */
  readonly env: unknown;
  /**
   * A variable of the app's `Env` a middleware set on the context (`c.set`).
   *
   * @param key The variable's name.
   * @returns Its value.
   */
  get<Key extends keyof VariablesOf<E>>(key: Key): VariablesOf<E>[Key];
  /**
   * A variable every context has (`jwtPayload` after `hono/jwt`).
   *
   * @param key The variable's name.
   * @returns Its value.
   */
  get<Key extends keyof ContextVariableMap>(key: Key): ContextVariableMap[Key];
}

/** What {@linkcode UpgradeContext} reads of Hono's request. */
export interface UpgradeRequest {
  /** The raw request: the one upgraded. */
  readonly raw: Request;
  /**
   * A path parameter (`/room/:name`).
   *
   * @param name Its name.
   * @returns Its value.
   */
  param(name: string): string | undefined;
  /**
   * A query parameter.
   *
   * @param name Its name.
   * @returns Its first value.
   */
  query(name: string): string | undefined;
  /**
   * A request header.
   *
   * @param name Its name.
   * @returns Its value.
   */
  header(name: string): string | undefined;
}

/**
 * Options of {@linkcode upgrade}. `E` is the Hono app's `Env`: `keys` reads the context with its
 * variables, so one the app never declared (`c.get("usr")`) is a compile error, as in Hono's own
 * handlers.
 */
export interface UpgradeOptions<K extends object, E extends HonoEnv = NoVariables> {
  /**
   * Initial session keys, read from the context once the request passed every middleware
   * (e.g. `(c) => ({ uid: c.get("jwtPayload").sub })` after `hono/jwt`), or a Response to refuse
   * the upgrade (no session is made; a `chorus.v1` client gets close code 4000 + its status).
   *
   * Its `c` is typed with the app's `Env` given by an annotation
   * (`keys: (c: UpgradeContext<AppEnv>) => …`) or by the type arguments
   * (`upgrade<Keys, AppEnv>(hub, …)`). Written inline in `app.get(path, upgrade(hub, { keys }))`
   * without either, TypeScript cannot take the app's `Env` (the handler is made before `app.get`
   * knows it): then `c` has no variables (as in `new Hono()`) but those every context has
   * ({@linkcode ContextVariableMap}), and reading any other is a compile error, never an `any`.
   *
   * The second argument answers the upgrade, as in `serve()`'s `onUpgrade`: `upgrade.protocols`
   * are the subprotocols the client offered; set `upgrade.protocol` to one of them (another
   * fails the request with a `TypeError`, to `app.onError`, and makes no session), or to `null`
   * to answer none, and add 101 headers to `upgrade.headers`. Left alone, the answer is the first
   * subprotocol offered, on Deno and on Bun (see {@linkcode Upgrade}).
   */
  keys?: (
    c: UpgradeContext<E>,
    upgrade: Upgrade,
  ) => Partial<K> | Response | undefined | Promise<Partial<K> | Response | undefined>;
}

/**
 * A Hono handler that upgrades the request to a session of `hub`, on Deno or on Bun. It runs
 * the hub's checks first, and answers as `serve()` does: a request that is not a WebSocket
 * upgrade gets 426, a refused origin 403, a closed hub 503, a malformed upgrade 400 (also from
 * `app.request()`, where no server is at hand). A refusal (a 4xx other than 408, 426, 429, from
 * the hub's checks or `keys`) reaches a client that offered `chorus.v1` as an upgrade closed at
 * once with 4000 + the status, which a browser can read. On Bun the app must be served with
 * {@linkcode websocket}`(hub)` as `Bun.serve`'s `websocket` and `app.fetch` as its `fetch` (Hono
 * then finds the server in `c.env`).
 *
 * @param hub The hub the sessions join.
 * @param options Where the initial keys (and the subprotocol, and extra 101 headers) come from.
 * @returns The handler, for `app.get(path, ...)`.
 * @throws {TypeError} For an unknown option name, or a `keys` that is not a function.
 *
 * @example
 * ```ts ignore
 * type AppEnv = { Variables: { uid: string } }; // new Hono<AppEnv>()
 * app.use("/ws", jwt({ secret, alg: "HS256" })); // from "hono/jwt": 401 before any session
 * app.use("/ws", async (c, next) => { c.set("uid", c.get("jwtPayload").sub); await next(); });
 * app.get("/ws", upgrade(hub, { keys: (c: UpgradeContext<AppEnv>) => ({ uid: c.get("uid") }) }));
 * ```
 */
export function upgrade<K extends object, E extends HonoEnv = NoVariables>(
  hub: Hub<K>,
  options: UpgradeOptions<K, E> = {},
): (c: UpgradeContext<E>) => Promise<Response> {
  checkOptions("upgrade()", options, ["keys"], ["keys"]);
  return async (c) => {
    const env = c.env as unknown;
    // On Bun the server is looked for only after the hub's checks (see `Incoming.bun`).
    const incoming: Incoming = "Bun" in globalThis
      ? { remoteAddr: "", bun: () => bunServer(env), env }
      : { remoteAddr: (env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr?.hostname ?? "", env };
    const keys = options.keys;
    // Bun sends its own 101; the response returned after a successful upgrade is ignored.
    return (await accept(hub, c.req.raw, incoming, keys && ((upgrade) => keys(c, upgrade)))) ?? new Response(null);
  };
}

/**
 * The handlers to pass as `websocket` to `Bun.serve` when a Hono app upgrades with
 * {@linkcode upgrade}: the hub's limits mapped onto Bun's settings. Not needed on Deno.
 *
 * @param hub The hub.
 * @returns Bun's `websocket` option.
 *
 * @example
 * ```ts ignore
 * Bun.serve({ port: 8080, fetch: app.fetch, websocket: websocket(hub) });
 * ```
 */
export function websocket<K extends object>(hub: Hub<K>): BunWebSocketHandler<K> {
  return bunAdapter(hub).websocket;
}

/** What {@linkcode serveApp} needs of a Hono app (any object with Hono's `fetch`). */
export interface FetchApp {
  /** Hono's `app.fetch`: the request, and the runtime's second `fetch` argument as `env`. */
  fetch(req: Request, env?: unknown): Response | Promise<Response>;
}

/** Options of {@linkcode serveApp}. */
export interface ServeAppOptions {
  /** Port to listen on; `0` picks a free one. @default {8080} */
  port?: number;
  /**
   * Address to listen on. The default, `0.0.0.0`, is every IPv4 interface: other machines can
   * connect, not only this one; pass `"127.0.0.1"` (or `"localhost"`) for this machine only.
   * The server's `url` then says `localhost`, and its `hostname` the address bound.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
}

/**
 * Serves a Hono app whose routes upgrade with {@linkcode upgrade}, on Deno (`Deno.serve`) or on
 * Bun (`Bun.serve` with the hub's `websocket` handlers): one call, the same on both.
 *
 * @param hub The hub the app's upgrades go to.
 * @param app The Hono app (or anything with its `fetch`).
 * @param options Port and hostname.
 * @returns The running server; `shutdown()` closes the hub (every session, awaiting the
 * disconnect hooks), then stops listening. It rejects with a `TypeError` for an unknown option.
 *
 * @example
 * ```ts ignore
 * const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export function serveApp<K extends object>(hub: Hub<K>, app: FetchApp, options: ServeAppOptions = {}): Promise<Server> {
  try {
    return Promise.resolve(start(hub, app, options));
  } catch (err) {
    return Promise.reject(err);
  }
}

function start<K extends object>(hub: Hub<K>, app: FetchApp, options: ServeAppOptions): Server {
  checkOptions("serveApp()", options, ["port", "hostname"]);
  if (typeof app?.fetch !== "function") throw new TypeError("serveApp() needs a Hono app (an object with fetch)");
  return listen(
    hub,
    options.port ?? 8080,
    options.hostname ?? "0.0.0.0",
    true,
    (req, incoming) => app.fetch(req, incoming.env),
  );
}

function bunServer(env: unknown): BunServer {
  // Hono on Bun: `c.env` is the server (`Bun.serve({ fetch: app.fetch })`), or holds it as `server`.
  const candidate = env && typeof env === "object" && "server" in env ? (env as { server: unknown }).server : env;
  if (!candidate || typeof (candidate as BunServer).upgrade !== "function") {
    throw new TypeError(
      "upgrade() on Bun needs the server: serve with Bun.serve({ fetch: app.fetch, websocket: websocket(hub) })",
    );
  }
  return candidate as BunServer;
}
