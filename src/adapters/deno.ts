/**
 * Deno adapter: `Deno.upgradeWebSocket` → the core. A Deno `WebSocket` already is the core's
 * socket contract (`chorus/adapter`), so this only forwards events. `hub.handleRequest` uses it.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "@chorus/chorus";
 * import { copyRequest } from "@chorus/chorus/adapter";
 * import { upgradeDeno } from "@chorus/chorus/deno";
 * const hub = new Hub();
 * Deno.serve((req, info) =>
 *   hub.checkRequest(req) ?? upgradeDeno(hub, req, copyRequest(req, {}, info.remoteAddr.hostname))
 * );
 * ```
 *
 * @module
 */

import { attach, hubLimits, type SessionInit, type SocketEvents } from "../adapter.ts";
import type { Hub } from "../hub.ts";
import type { Keys } from "../session.ts";
import { resolveUpgrade, type UpgradeAnswer } from "../_upgrade.ts";

export type { Upgrade, UpgradeAnswer } from "../_upgrade.ts";

interface DenoSocket extends EventTarget {
  binaryType: string;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((e: Event) => void) | null;
  onmessage: ((e: MessageEvent) => void) | null;
  onclose: ((e: CloseEvent) => void) | null;
  onerror: ((e: Event) => void) | null;
}

interface DenoRuntime {
  upgradeWebSocket(
    req: Request,
    options?: { idleTimeout?: number; protocol?: string },
  ): { socket: DenoSocket; response: Response };
}

function runtime(): DenoRuntime | undefined {
  const deno = (globalThis as { Deno?: Partial<DenoRuntime> }).Deno;
  return typeof deno?.upgradeWebSocket === "function" ? deno as DenoRuntime : undefined;
}

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
  const deno = runtime();
  if (!deno) {
    throw new Error(
      "hub.handleRequest and upgradeDeno upgrade with Deno.upgradeWebSocket; on Bun use serve(), chorus/hono or bunAdapter (Bun's upgrade needs its server)",
    );
  }
  const { pingInterval, pongWait } = hubLimits(hub);
  const idleTimeout = pingInterval > 0 ? Math.max(1, Math.ceil(pongWait / 1000)) : 0;
  const { socket, response } = deno.upgradeWebSocket(req, { idleTimeout, protocol: answer.protocol });
  answer.headers?.forEach((value, name) => response.headers.append(name, value));
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    socket.onopen = null; // the only per-socket closure: gone once the session exists
    const events = attach(hub, socket, init);
    if (!events) return;
    // Shared handlers that find the events handle on the socket: nothing allocated per session.
    (socket as TaggedSocket)[EVENTS] = events;
    socket.onmessage = onMessage;
    socket.onclose = onClose;
    socket.onerror = onError;
  };
  return response;
}

const EVENTS: unique symbol = Symbol("chorus.events");
type TaggedSocket = DenoSocket & { [EVENTS]: SocketEvents };

function onMessage(this: DenoSocket, e: MessageEvent): void {
  (this as TaggedSocket)[EVENTS].receive(e.data);
}

function onClose(this: DenoSocket, e: CloseEvent): void {
  // Deno reports a lost connection as code 0; the protocol's name for it is 1006.
  (this as TaggedSocket)[EVENTS].closed(e.code || 1006, e.reason);
}

function onError(this: DenoSocket, e: Event): void {
  const err = (e as ErrorEvent).error ?? new Error((e as ErrorEvent).message ?? "WebSocket error");
  (this as TaggedSocket)[EVENTS].errored(err);
}
