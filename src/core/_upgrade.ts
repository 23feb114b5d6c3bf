// How chorus answers an upgrade it accepts: the subprotocol and the extra 101 headers, decided
// once, the same way on every path (`serve()`, `chorus-ws/hono`, `bunAdapter`, `hub.handleRequest`)
// and on both runtimes, and the hub's checks answered the same on every path. A private helper
// shared by the adapters and the servers; the public type is `Upgrade`. Imports leaves only.

import { HubClosedError } from "../errors.ts";
import { PROTOCOL } from "../protocol.ts";

/**
 * The answer to an accepted WebSocket upgrade, handed to `onUpgrade` (of `serve()`), to `keys`
 * (of `upgrade()` in `chorus-ws/hono`) and to `bunAdapter(hub).upgrade`: the subprotocols the client
 * offered, the one to answer, and headers to add to the 101 response.
 *
 * Left alone, the answer is the first subprotocol the client offered (none when it offered
 * none), on Deno and on Bun alike. Why: a browser that offers subprotocols fails the handshake
 * when the answer names none (Chrome: "Sent non-empty 'Sec-WebSocket-Protocol' header but no
 * response was received"), after the server already made a session; Bun and Node's `ws` answer
 * the first offered one, so a client written against either works unchanged. A server that must
 * speak a given subprotocol sets `protocol`, or refuses the upgrade; one that must answer none
 * (as crossws may) sets it to `null`.
 *
 * @example
 * ```ts ignore
 * await serve(hub, {
 *   onUpgrade(req, upgrade) {
 *     if (!upgrade.protocols.includes("v1.chat")) return new Response("Speak v1.chat", { status: 400 });
 *     upgrade.protocol = "v1.chat";
 *     upgrade.headers.set("x-served-by", "node-1");
 *   },
 * });
 * ```
 */
export interface Upgrade {
  /** The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order; empty when none. */
  readonly protocols: readonly string[];
  /**
   * The subprotocol to answer: one of {@linkcode Upgrade.protocols}, else the upgrade fails with a
   * `TypeError` (a 500, no session). Left `undefined`: `chorus.v1` when the client offered it (the
   * hub speaks it: see `chorus-ws/client`), else the first one the client offered. `null`: none,
   * whatever the client offered (RFC 6455 allows it; `session.protocol` is then `""` and the
   * session is a plain one). A browser that offered subprotocols fails such a handshake
   * (`chorus-ws/client` then tries again without `chorus.v1`); Deno's and Bun's clients differ.
   * @default {undefined}
   */
  protocol: string | null | undefined;
  /**
   * Headers added to the 101 response (a `Set-Cookie`, say). The handshake's own (`Upgrade`,
   * `Connection`, `Sec-WebSocket-*`) are not allowed here: the upgrade fails with a `TypeError`.
   */
  readonly headers: Headers;
}

/** What an adapter sends: the resolved subprotocol (if any) and the extra headers (if any). */
export interface UpgradeAnswer {
  /** The subprotocol to answer; `undefined`: no `Sec-WebSocket-Protocol` header. */
  protocol: string | undefined;
  /** Extra headers for the 101 response, checked. */
  headers: Headers | undefined;
}

/**
 * The subprotocols a request offers, in its order.
 *
 * @param req The upgrade request.
 * @returns The offered subprotocols; empty when none.
 */
export function offeredProtocols(req: Request): string[] {
  const header = req.headers.get("sec-websocket-protocol");
  if (!header) return [];
  return header.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * A fresh, undecided answer for a request, for the caller's hook to fill in.
 *
 * @param req The upgrade request.
 * @returns The answer object the hook receives.
 */
export function upgradeFor(req: Request): Upgrade {
  return { protocols: Object.freeze(offeredProtocols(req)), protocol: undefined, headers: new Headers() };
}

const RESERVED = new Set(["upgrade", "connection"]);

/**
 * Resolves the answer to an upgrade: the one place that decides which subprotocol the server
 * speaks. The order: the caller's choice (which must be one the client offered), else the hub's
 * own `chorus.v1` when the client offers it (`chorus-ws/client` does), else the first one offered.
 *
 * @param req The upgrade request.
 * @param upgrade What the caller's hook decided, if there was a hook.
 * @returns The subprotocol and headers to send.
 * @throws {TypeError} If the chosen subprotocol was not offered, or a header is the handshake's own.
 */
export function resolveUpgrade(req: Request, upgrade: Upgrade = upgradeFor(req)): UpgradeAnswer {
  const offered = upgrade.protocols;
  const chosen = upgrade.protocol;
  if (chosen !== undefined && chosen !== null && !offered.includes(chosen)) {
    throw new TypeError(
      `Subprotocol ${JSON.stringify(chosen)} was not offered by the client (offered: ${
        offered.length ? offered.map((p) => JSON.stringify(p)).join(", ") : "none"
      })`,
    );
  }
  let headers: Headers | undefined;
  upgrade.headers.forEach((_value, name) => {
    if (RESERVED.has(name) || name.startsWith("sec-websocket-")) {
      throw new TypeError(
        `The ${name} header belongs to the WebSocket handshake${
          name === "sec-websocket-protocol" ? ": set upgrade.protocol instead" : ""
        }`,
      );
    }
    headers = upgrade.headers;
  });
  if (chosen === null) return { protocol: undefined, headers };
  return { protocol: chosen ?? (offered.includes(PROTOCOL) ? PROTOCOL : offered[0]), headers };
}

/** What {@linkcode checkUpgrade} needs of a hub. */
export interface UpgradeChecks {
  /** The hub's checks: a refusal (426, 403), `undefined`, or a `HubClosedError` once it is closed. */
  checkRequest(req: Request): Response | undefined;
  /** Counts and logs a refused upgrade. */
  refusedUpgrade(status: number, why: string): void;
}

/**
 * The hub's checks, answered the same on every path: 426 for a request that is not an upgrade,
 * 403 for a refused origin, 503 once the hub is closed.
 *
 * @param hub The hub.
 * @param req The request.
 * @returns The refusal, or `undefined` when the upgrade may go on.
 */
export function checkUpgrade(hub: UpgradeChecks, req: Request): Response | undefined {
  let refused: Response | undefined;
  try {
    refused = hub.checkRequest(req);
  } catch (err) {
    if (!(err instanceof HubClosedError)) throw err;
    refused = shuttingDown();
  }
  if (refused) {
    const why = refused.status === 426
      ? "not a WebSocket upgrade"
      : refused.status === 403
      ? `origin ${req.headers.get("origin")} not allowed`
      : "the hub is closed";
    hub.refusedUpgrade(refused.status, why);
  }
  return refused;
}

/**
 * The answer to an upgrade that reaches a closed hub.
 *
 * @returns A 503.
 */
export function shuttingDown(): Response {
  return new Response("Server is shutting down", { status: 503 });
}
