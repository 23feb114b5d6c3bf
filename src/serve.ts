/**
 * `serve(hub, options)`: one call that serves a hub on Deno or on Bun.
 *
 * @example
 * ```ts
 * import { Hub } from "chorus-ws";
 * import { serve } from "chorus-ws/serve";
 * const hub = new Hub();
 * hub.handleMessage((_s, msg) => hub.broadcast(msg));
 * const server = await serve(hub, { port: 8080 });
 * console.log(`listening on ${server.url}`);
 * ```
 *
 * @module
 */

// A server. May import: `hub.ts` (types), `listen.ts`, `core/_upgrade.ts` (types), `_options_check.ts`.

import type { Hub } from "./hub.ts";
import { accept, listen, type Server } from "./listen.ts";
import type { Upgrade } from "./core/_upgrade.ts";
import { checkOptions } from "./_options_check.ts";

export type { Server } from "./listen.ts";
export type { Upgrade } from "./core/_upgrade.ts";

/** Options of {@linkcode serve}. */
export interface ServeOptions<K> {
  /** Port to listen on; `0` picks a free one. @default {8080} */
  port?: number;
  /**
   * Address to listen on. The default, `0.0.0.0`, is every IPv4 interface: other machines can
   * connect, not only this one; pass `"127.0.0.1"` (or `"localhost"`) for this machine only.
   * The server's `url` then says `localhost`, and its `hostname` the address bound.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * Runs before an upgrade (after the origin check): return a Response to refuse it (no
   * session is made), or an object of initial session keys. The place for auth.
   *
   * The second argument answers the upgrade: `upgrade.protocols` are the subprotocols the
   * client offered; set `upgrade.protocol` to one of them and add 101 headers to
   * `upgrade.headers`. Left alone, the answer is the first subprotocol offered, on Deno and on
   * Bun (see {@linkcode Upgrade}).
   *
   * A hook that throws, or that chooses a subprotocol the client did not offer (a `TypeError`),
   * fails the request with 500 and makes no session; the error goes to `console.error`, on both
   * runtimes.
   */
  onUpgrade?: (
    req: Request,
    upgrade: Upgrade,
  ) => Partial<K> | Response | void | Promise<Partial<K> | Response | void>;
  /**
   * Answers every request that is not a WebSocket upgrade. Without it such a request gets the
   * hub's 426 ("Expected a WebSocket upgrade"), as on every other path.
   */
  fetch?: (req: Request) => Response | Promise<Response>;
  /**
   * On Bun, send hub-wide and room broadcasts through Bun's native pub/sub where nothing per
   * session forbids it (see `chorus-ws/bun`); off, every broadcast loops in JavaScript and every refused write
   * is reported exactly. No effect on Deno, which has no native fan-out.
   * @default {true}
   */
  nativeFanout?: boolean;
}

/**
 * Serves a hub on Deno or on Bun: WebSocket upgrades become sessions (after the origin check
 * and `onUpgrade`), every other request goes to `fetch`.
 *
 * A refusal from `onUpgrade` or the hub's checks (a 4xx other than 408, 426, 429) reaches a client
 * that offered `chorus.v1` (`chorus-ws/client`) as an upgrade closed at once with close code
 * 4000 + the status and the answer's text, which a browser can read; any other client gets the
 * HTTP answer.
 *
 * @param hub The hub.
 * @param options Port, hostname, upgrade policy and the handler for ordinary requests.
 * @returns The running server. It rejects with a `TypeError` for an unknown option name or a
 * callback that is not a function.
 */
export function serve<K extends object>(hub: Hub<K>, options: ServeOptions<K> = {}): Promise<Server> {
  try {
    return Promise.resolve(start(hub, options));
  } catch (err) {
    return Promise.reject(err);
  }
}

function start<K extends object>(hub: Hub<K>, options: ServeOptions<K>): Server {
  checkOptions("serve()", options, ["port", "hostname", "onUpgrade", "fetch", "nativeFanout"], ["onUpgrade", "fetch"]);
  const onUpgrade = options.onUpgrade;
  const { port = 8080, hostname = "0.0.0.0", nativeFanout = true } = options;
  return listen(hub, port, hostname, nativeFanout, async (req, incoming) => {
    // Without `fetch` a request that is not an upgrade goes to the hub too: 426, as on every path.
    if (options.fetch && req.headers.get("upgrade")?.toLowerCase() !== "websocket") return await options.fetch(req);
    try {
      return await accept(hub, req, incoming, onUpgrade && ((upgrade) => onUpgrade(req, upgrade)));
    } catch (err) {
      // What Deno.serve does with a throwing handler, done here so that Bun answers the same.
      console.error(err);
      return new Response("Internal Server Error", { status: 500 });
    }
  });
}
