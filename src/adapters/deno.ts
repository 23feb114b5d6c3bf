/**
 * Deno adapter: `Deno.upgradeWebSocket` → the core. A Deno `WebSocket` already is the core's
 * socket contract (`chorus-ws/adapter`), so this only forwards events (with the wiring
 * `hub.handleRequest` uses too).
 *
 * @example
 * ```ts ignore
 * import { Hub } from "chorus-ws";
 * import { copyRequest } from "chorus-ws/adapter";
 * import { upgradeDeno } from "chorus-ws/deno";
 * const hub = new Hub();
 * Deno.serve((req, info) =>
 *   hub.checkRequest(req) ?? upgradeDeno(hub, req, copyRequest(req, {}, info.remoteAddr.hostname))
 * );
 * ```
 *
 * @module
 */

// Thin: forwards to the Deno wiring the hub shares. May import: `adapter.ts` (types), `hub.ts`, `types.ts`,
// `core/_deno_socket.ts`, `core/_upgrade.ts`.

import type { SessionInit } from "../adapter.ts";
import { type Hub, hubCore } from "../hub.ts";
import type { Keys } from "../types.ts";
import { upgradeDeno as upgrade } from "../core/_deno_socket.ts";
import { resolveUpgrade, type UpgradeAnswer } from "../core/_upgrade.ts";

export type { Upgrade, UpgradeAnswer } from "../core/_upgrade.ts";

/**
 * Upgrades an accepted request with `Deno.upgradeWebSocket` and attaches the socket to the
 * hub when it opens. `pongWait` becomes Deno's `idleTimeout` (whole seconds).
 *
 * @param hub The hub.
 * @param req The upgrade request (already checked by `hub.checkRequest`).
 * @param init What the session keeps of the request.
 * @param answer The subprotocol and extra headers to answer; by default the first subprotocol
 * the client offered, as on every path (see `Upgrade`).
 * @returns The 101 response.
 */
export function upgradeDeno<K extends object = Keys>(
  hub: Hub<K>,
  req: Request,
  init: SessionInit<K>,
  answer: UpgradeAnswer = resolveUpgrade(req),
): Response {
  return upgrade(hubCore(hub), req, init, answer);
}
