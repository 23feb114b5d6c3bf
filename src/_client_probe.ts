/**
 * Whether a failed WebSocket handshake was a refusal: a browser never shows the client the status
 * of a handshake the server answered with an error, so after a connection fails before it opens,
 * the client asks the same URL once over HTTP(S). Internal to `chorus-ws/client`.
 *
 * @module
 */

import { closeReason, refusalCode } from "./protocol.ts";

/** A refused upgrade, as the client reports it: close code 4000 + `status`, and the answer's text. */
export interface Refusal {
  /** The HTTP status. */
  status: number;
  /** The answer's text (or its status text), cut to a close reason's 123 bytes. */
  reason: string;
}

/** The most bytes of the answer read for its text. */
const READ = 512;

/**
 * Asks the WebSocket URL over HTTP(S) (same path and query, with the page's credentials) whether
 * the server refuses it. Anything but a readable refusal is `undefined`: no answer (the server is
 * down or unreachable), a timeout, a cross-origin answer without CORS headers, a redirect, a 2xx,
 * a 5xx, 408, 426 (a server that takes only upgrades there) and 429.
 *
 * @param url The WebSocket URL (`ws:`, `wss:`, or relative to the page).
 * @param ms The most the probe may take.
 * @param signal Aborts it (the client closed).
 * @returns The refusal, if the server refuses.
 */
export async function probe(url: string | URL, ms: number, signal: AbortSignal): Promise<Refusal | undefined> {
  const fetch = globalThis.fetch;
  if (typeof fetch !== "function") return undefined;
  const abort = new AbortController();
  const stop = () => abort.abort();
  const timer = setTimeout(stop, ms);
  signal.addEventListener("abort", stop);
  try {
    const target = new URL(url, (globalThis as { location?: { href?: string } }).location?.href);
    if (target.protocol === "ws:") target.protocol = "http:";
    else if (target.protocol === "wss:") target.protocol = "https:";
    const res = await fetch(target, { credentials: "include", redirect: "manual", signal: abort.signal });
    if (refusalCode(res.status) === undefined) {
      await res.body?.cancel();
      return undefined;
    }
    return { status: res.status, reason: closeReason((await head(res)) || res.statusText) };
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", stop);
  }
}

/** The first bytes of a response's body, as text. */
async function head(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (length < READ) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      length += value.byteLength;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) bytes.set(c, (at += c.byteLength) - c.byteLength);
  return new TextDecoder().decode(bytes.subarray(0, READ)).trim();
}
