/**
 * `chorus-ws/adapter`: the contract between the core and a runtime adapter. An adapter hands the
 * core a socket ({@linkcode HubSocket}, a subset of the WHATWG `WebSocket`) with what it kept
 * of the upgrade request ({@linkcode SessionInit}), and reports the socket's events through the
 * handle {@linkcode attach} returns ({@linkcode SocketEvents}). The core knows no runtime; an
 * adapter needs this module and its runtime. (chorus's own Deno and Bun adapters, being in the
 * package, also share private helpers with `serve()` and `chorus-ws/hono`: how an upgrade is
 * checked, answered and refused, Deno's socket wiring, and the check of their options.)
 *
 * @example An adapter for any WHATWG-style server socket
 * ```ts
 * import { Hub } from "chorus-ws";
 * import { attach, copyRequest } from "chorus-ws/adapter";
 *
 * function onAccepted(hub: Hub, socket: WebSocket, req: Request): void {
 *   const init = copyRequest(req, {}, ""); // before the upgrade: the request may be unusable after it
 *   socket.binaryType = "arraybuffer";
 *   socket.onopen = () => {
 *     const events = attach(hub, socket, init);
 *     if (!events) return; // the hub is closed: the socket was closed with 1001
 *     socket.onmessage = (e) => events.receive(e.data);
 *     socket.onclose = (e) => events.closed(e.code || 1006, e.reason);
 *     socket.onerror = () => events.errored(new Error("socket error"));
 *   };
 * }
 * ```
 *
 * @module
 */

// The public face of the adapter contract. May import: `hub.ts` (to reach a hub's core), the core's
// contracts (types, re-exported) and its request copy (`core/_request.ts`).

import { type Hub, hubCore } from "./hub.ts";
import type { HubLimits, HubSocket, Publisher, SessionInit, SocketEvents } from "./core/_contracts.ts";

export type { HubLimits, HubSocket, Publisher, SessionInit, SocketEvents } from "./core/_contracts.ts";
export { copyRequest } from "./core/_request.ts";

/**
 * Turns an open socket into a session of the hub and runs the connect hook. On a closed hub
 * the socket is closed with 1001 and nothing is returned.
 *
 * @param hub The hub.
 * @param socket The socket, in the core's contract.
 * @param init What the adapter kept of the upgrade request.
 * @param publisher The native fan-out of the socket's server, where the socket offers
 *   `subscribe`, `unsubscribe` and `publish`; without it the hub loops over this session.
 * @returns The handle the adapter reports the socket's events to, or `undefined`.
 */
export function attach<K extends object>(
  hub: Hub<K>,
  socket: HubSocket,
  init: SessionInit<K>,
  publisher?: Publisher,
): SocketEvents | undefined {
  return hubCore(hub).attach(socket, init, publisher);
}

/**
 * A hub's limits and keepalive settings, for the adapter to map onto its runtime's options.
 *
 * @param hub The hub.
 * @returns The resolved limits.
 */
export function hubLimits<K extends object>(hub: Hub<K>): HubLimits {
  return hubCore(hub).limits;
}

/**
 * Tells the hub that the adapter refused an upgrade itself (a malformed handshake, its own
 * policy), for `hub.metrics()` and the log hook. The hub's own checks count themselves.
 *
 * @param hub The hub.
 * @param status The HTTP status answered.
 * @param why What was wrong, for the log.
 */
export function refusedUpgrade<K extends object>(hub: Hub<K>, status: number, why: string): void {
  hubCore(hub).refusedUpgrade(status, why);
}

/**
 * Waits until every socket the hub closed has finished its closing handshake (its adapter
 * reported `closed`), or `ms` passed. For a server's shutdown after `hub.close()`: a runtime
 * that stops listening may close the sockets it still holds with a code of its own (Deno's
 * `Deno.serve` sends 1001 "Server shutting down"), so without this wait a client could get the
 * runtime's code and reason instead of those given to `hub.close()`.
 *
 * @param hub The hub.
 * @param ms The longest wait (for peers that never answer a close frame).
 * @returns A promise that resolves when no closing handshake is pending, or the time is up.
 */
export function socketsClosed<K extends object>(hub: Hub<K>, ms: number): Promise<void> {
  return hubCore(hub).socketsClosed(ms);
}
