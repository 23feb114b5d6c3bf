/**
 * Deno adapter: `Deno.upgradeWebSocket` → the core. A Deno `WebSocket` already is the core's
 * socket contract, so this only forwards events. Importing it on Deno makes
 * `hub.handleRequest` work inside `Deno.serve`.
 *
 * @example
 * ```ts ignore
 * import { Hub } from "@chorus/chorus";
 * import "@chorus/chorus/deno";
 * const hub = new Hub();
 * Deno.serve((req, info) => hub.handleRequest(req, { remoteAddr: info.remoteAddr.hostname }));
 * ```
 *
 * @module
 */

import { type Hub, setDefaultUpgrader } from "../hub.ts";
import type { Keys, Session } from "../session.ts";
import { CLOSED, ERRORED, RECEIVE, type SessionInit } from "../socket.ts";

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
  upgradeWebSocket(req: Request, options?: { idleTimeout?: number }): { socket: DenoSocket; response: Response };
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
 * @returns The 101 response.
 */
export function upgradeDeno<K extends Keys>(hub: Hub<K>, req: Request, init: SessionInit<K>): Response {
  const deno = runtime();
  if (!deno) throw new Error("The Deno adapter needs Deno");
  const refused = checkHandshake(req.headers);
  if (refused) return refused;
  const { pingInterval, pongWait } = hub.options;
  const idleTimeout = pingInterval > 0 ? Math.max(1, Math.ceil(pongWait / 1000)) : 0;
  const { socket, response } = deno.upgradeWebSocket(req, { idleTimeout });
  socket.binaryType = "arraybuffer";
  let open = live.get(hub);
  if (!open) live.set(hub, open = { sockets: new Set() });
  open.sockets.add(socket);
  (socket as TaggedSocket)[LIVE] = open;
  socket.onclose = onClose;
  socket.onerror = onError;
  socket.onopen = () => {
    socket.onopen = null; // the only per-socket closure: gone once the session exists
    const session = hub.attach(socket, init);
    if (!session) return;
    // Shared handlers that find the session on the socket: nothing allocated per session.
    (socket as TaggedSocket)[SESSION] = session;
    socket.onmessage = onMessage;
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

/** A hub's sockets whose close event has not fired yet, and who waits for there to be none. */
interface LiveSockets {
  sockets: Set<DenoSocket>;
  emptied?: () => void;
}

const live = new WeakMap<object, LiveSockets>();

/**
 * Waits until every socket this adapter upgraded for `hub` has closed, or `ms` passed. For a
 * server's shutdown after `hub.close()`: `Deno.serve`'s own shutdown sends every socket it
 * still holds a close frame of its own (1001 "Server shutting down"), and `socket.close()`
 * only claims the socket once Deno's event loop runs its op, so without this wait the
 * client would get Deno's code and reason instead of the hub's. Internal.
 *
 * @param hub The hub.
 * @param ms The longest wait (for peers that never answer a close frame).
 * @returns A promise that resolves when the sockets are closed or the time is up.
 */
export function socketsClosed<K extends Keys>(hub: Hub<K>, ms: number): Promise<void> {
  const open = live.get(hub);
  if (!open || open.sockets.size === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      open!.emptied = undefined;
      resolve();
    }
    open.emptied = done;
  });
}

const SESSION: unique symbol = Symbol("chorus.session");
const LIVE: unique symbol = Symbol("chorus.live");
/** What the shared handlers need of a session. */
type Events = Pick<Session, typeof RECEIVE | typeof CLOSED | typeof ERRORED>;
type TaggedSocket = DenoSocket & { [SESSION]?: Events; [LIVE]: LiveSockets };

function forget(socket: DenoSocket): void {
  const open = (socket as TaggedSocket)[LIVE];
  if (open.sockets.delete(socket) && open.sockets.size === 0) open.emptied?.();
}

function onMessage(this: DenoSocket, e: MessageEvent): void {
  (this as TaggedSocket)[SESSION]?.[RECEIVE](e.data);
}

function onClose(this: DenoSocket, e: CloseEvent): void {
  forget(this);
  // Deno reports a lost connection as code 0; the protocol's name for it is 1006.
  (this as TaggedSocket)[SESSION]?.[CLOSED](e.code || 1006, e.reason);
}

/**
 * How Deno words a connection that ended without a closing handshake (the peer vanished, or
 * reset it), or a peer that left its ping unanswered (`idleTimeout`). That is a close (which
 * follows), not an error: Bun reports only the close.
 */
const LOST =
  /^(Unexpected EOF|Connection is closed|No response from ping frame\.)$|\(os error (32|54|103|104|110|10053|10054|10060)\)$/;

function onError(this: DenoSocket, e: Event): void {
  const session = (this as TaggedSocket)[SESSION];
  // Before it opened (the upgrade failed) no close event follows, and there is no session.
  if (!session) return forget(this);
  const message = (e as ErrorEvent).message ?? "";
  if (LOST.test(message)) return;
  const err = (e as ErrorEvent).error ?? new Error(message || "WebSocket error");
  session[ERRORED](err);
}

if (runtime()) setDefaultUpgrader(upgradeDeno);
