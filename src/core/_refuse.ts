/**
 * Tells a `chorus.v1` client why its upgrade was refused. A browser never shows a page the status
 * of a handshake the server answered with an error (it sees a lost connection, code 1006), so a
 * client that offered `chorus.v1` gets its refusal (a 4xx other than 408, 426 and 429) as an
 * accepted upgrade closed at once with close code 4000 + the status and the answer's text as the
 * reason: no session is made and no hook runs (the caller counts it as refused). Any other
 * refusal, or a request that cannot be upgraded, is answered as it is. Internal: every path that
 * refuses an upgrade goes through it (`serve()`, `chorus-ws/hono`, `bunAdapter`,
 * `hub.handleRequest`).
 *
 * May import: `../protocol.ts`, `_upgrade.ts` (the offered subprotocols).
 *
 * @module
 */

import { closeReason, PROTOCOL, refusalCode } from "../protocol.ts";
import { offeredProtocols } from "./_upgrade.ts";

/** The part of Bun's `Server` this needs. */
interface BunUpgrader {
  upgrade(req: Request, options: { data: unknown; headers?: object }): boolean;
}

interface DenoUpgrader {
  upgradeWebSocket(req: Request, options: { protocol: string }): {
    socket: { onopen: (() => void) | null; onerror: (() => void) | null; close(code: number, reason: string): void };
    response: Response;
  };
}

/** The most bytes of a refusal's body read for the close reason. */
const READ = 1024;

/**
 * `ws.data` of a Bun socket upgraded only to be closed: the Bun adapter's `open` handler closes
 * it (and the other handlers find no session on it).
 */
export class Refused {
  /** No session: the adapter's handlers find nothing to call. */
  readonly events: undefined = undefined;
  /** The close code: 4000 + the HTTP status. */
  readonly code: number;
  /** The close reason, once the refusal's text is read (Bun may open the socket inside `upgrade`). */
  readonly reason: Promise<string>;
  /** Gives the reason (once the upgrade succeeded: reading the body spends it). */
  readonly read: (reason: Promise<string>) => void;

  /**
   * Makes the data of a refused socket.
   *
   * @param code The close code.
   */
  constructor(code: number) {
    this.code = code;
    let read!: (reason: Promise<string>) => void;
    this.reason = new Promise<string>((resolve) => read = resolve);
    this.read = read;
  }

  /**
   * Closes the socket with the refusal's code and text.
   *
   * @param ws The socket, just opened.
   */
  close(ws: { close(code: number, reason: string): void }): void {
    this.reason.then((reason) => closeQuietly(ws, this.code, reason));
  }
}

/**
 * Answers a refused upgrade: when the client offered `chorus.v1` and the status refuses for good,
 * by upgrading and closing at once with 4000 + the status; else with the refusal itself.
 *
 * @param req The upgrade request.
 * @param res The refusal.
 * @param bun On Bun, the server (asked for only here); on Deno, `undefined`.
 * @returns The response to send (`undefined` after a Bun upgrade).
 */
export function refuse(req: Request, res: Response, bun?: () => BunUpgrader): Response | undefined {
  const code = refusalCode(res.status);
  if (code === undefined || !offeredProtocols(req).includes(PROTOCOL)) return res;
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return res;
  if (bun) {
    const data = new Refused(code);
    try {
      if (!bun().upgrade(req, { data, headers: { "sec-websocket-protocol": PROTOCOL } })) return res;
    } catch {
      return res; // no server at hand (Hono's app.request())
    }
    data.read(reasonOf(res));
    return undefined;
  }
  const deno = (globalThis as { Deno?: Partial<DenoUpgrader> }).Deno;
  if (typeof deno?.upgradeWebSocket !== "function") return res;
  let upgraded: ReturnType<DenoUpgrader["upgradeWebSocket"]>;
  try {
    upgraded = deno.upgradeWebSocket(req, { protocol: PROTOCOL });
  } catch {
    return res; // a malformed handshake, or a request Deno.serve did not make (app.request())
  }
  const { socket, response } = upgraded;
  const reason = reasonOf(res);
  socket.onerror = () => {};
  socket.onopen = () => {
    socket.onopen = null;
    reason.then((text) => closeQuietly(socket, code, text));
  };
  return response;
}

/** The refusal's text, cut to what a close reason carries. */
async function reasonOf(res: Response): Promise<string> {
  try {
    const reader = res.body?.getReader();
    if (!reader) return closeReason(res.statusText);
    let bytes = new Uint8Array(0);
    while (bytes.byteLength < READ) {
      const { done, value } = await reader.read();
      if (done) break;
      const next = new Uint8Array(bytes.byteLength + value.byteLength);
      next.set(bytes);
      next.set(value, bytes.byteLength);
      bytes = next;
    }
    reader.cancel().catch(() => {});
    const text = new TextDecoder().decode(bytes.subarray(0, READ)).trim();
    return closeReason(text || res.statusText);
  } catch {
    return closeReason(res.statusText);
  }
}

function closeQuietly(ws: { close(code: number, reason: string): void }, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // the client left first
  }
}
