// Wiring a socket of `Deno.upgradeWebSocket` to a hub: the upgrade itself (with the hub's
// keepalive as Deno's `idleTimeout`), the handshake checks Deno needs, and the socket's events
// passed to the core through shared handlers (nothing allocated per session). Shared by
// `hub.handleRequest` and the Deno adapter; knows Deno only through a small local interface.
// Imports the contracts and the upgrade answer.

import type { AdapterHost, SessionInit, SocketEvents } from "./_contracts.ts";
import { resolveUpgrade, type UpgradeAnswer } from "./_upgrade.ts";

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
export function upgradeDeno<K extends object>(
  hub: AdapterHost<K>,
  req: Request,
  init: SessionInit<K>,
  answer: UpgradeAnswer = resolveUpgrade(req),
): Response {
  const deno = runtime();
  if (!deno) {
    throw new Error(
      "hub.handleRequest and upgradeDeno upgrade with Deno.upgradeWebSocket; on Bun use serve(), chorus-ws/hono or bunAdapter (Bun's upgrade needs its server)",
    );
  }
  const refused = checkHandshake(req.headers);
  if (refused) {
    hub.refusedUpgrade(refused.status, "a malformed WebSocket handshake");
    return refused;
  }
  const { pingInterval, pongWait } = hub.limits;
  const idleTimeout = pingInterval > 0 ? Math.max(1, Math.ceil(pongWait / 1000)) : 0;
  const { socket, response } = deno.upgradeWebSocket(req, { idleTimeout, protocol: answer.protocol });
  init.protocol = answer.protocol ?? "";
  answer.headers?.forEach((value, name) => response.headers.append(name, value));
  socket.binaryType = "arraybuffer";
  socket.onopen = () => {
    socket.onopen = null; // the only per-socket closure: gone once the session exists
    const events = hub.attach(socket, init, undefined);
    if (!events) return;
    // Shared handlers that find the events handle on the socket: nothing allocated per session.
    (socket as TaggedSocket)[EVENTS] = events;
    socket.onmessage = onMessage;
    socket.onclose = onClose;
    socket.onerror = onError;
  };
  return response;
}

/**
 * The handshake headers `Deno.upgradeWebSocket` needs (it throws without them, and `Deno.serve`
 * then logs a stack trace and answers 500: a log flood any client can start) and those Bun
 * checks. Refused as Bun refuses them: 400, or 426 for a version other than 13.
 */
function checkHandshake(headers: Headers): Response | undefined {
  const connection = headers.get("connection")?.toLowerCase().split(",").map((t) => t.trim());
  const key = headers.get("sec-websocket-key");
  if (!connection?.includes("upgrade") || key === null || !/^[A-Za-z0-9+/]{22}==$/.test(key.trim())) {
    return new Response("WebSocket upgrade failed", { status: 400 });
  }
  if (headers.get("sec-websocket-version")?.trim() !== "13") {
    return new Response("Unsupported WebSocket version", { status: 426, headers: { "sec-websocket-version": "13" } });
  }
  return undefined;
}

const EVENTS: unique symbol = Symbol("chorus.events");
type TaggedSocket = DenoSocket & { [EVENTS]: SocketEvents };

function onMessage(this: DenoSocket, e: MessageEvent): void {
  (this as TaggedSocket)[EVENTS].receive(e.data);
}

function onClose(this: DenoSocket, e: CloseEvent): void {
  // Deno reports a lost connection as code 0, and a peer that left its ping unanswered
  // (`idleTimeout`) as 1001 "No response from ping frame.": both are lost connections, 1006 (a
  // resumable session waits for its client rather than end as if the client had left).
  const lost = !e.code || (e.code === 1001 && /^No response from ping frame/.test(e.reason));
  (this as TaggedSocket)[EVENTS].closed(lost ? 1006 : e.code, lost ? "" : e.reason);
}

/**
 * How Deno words a connection that ended without a closing handshake (the peer vanished, or
 * reset it), or a peer that left its ping unanswered (`idleTimeout`). That is a close (which
 * follows), not an error: Bun reports only the close.
 */
const LOST =
  /^(Unexpected EOF|Connection is closed|No response from ping frame\.)$|\(os error (32|54|103|104|110|10053|10054|10060)\)$/;

function onError(this: DenoSocket, e: Event): void {
  const message = (e as ErrorEvent).message ?? "";
  if (LOST.test(message)) return;
  const err = (e as ErrorEvent).error ?? new Error(message || "WebSocket error");
  (this as TaggedSocket)[EVENTS].errored(err);
}
