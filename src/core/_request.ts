// The copy of an upgrade request a session keeps: url, headers and address, taken before the
// upgrade (on Deno the request is unusable after it), built into a `Request` only when read.
// Shared by every adapter (`copyRequest` in `chorus-ws/adapter`). Imports only the contracts.

import type { SessionInit } from "./_contracts.ts";

/**
 * Copies what a session keeps of its upgrade request: call it before the upgrade (on Deno the
 * request is unusable after it). The copy keeps url, method and headers as strings and builds
 * the `Request` on first use: an idle session costs a fraction of what a `Request` does.
 *
 * @param req The upgrade request.
 * @param keys Initial session keys.
 * @param remoteAddr The peer's address, `""` where not known yet.
 * @returns The session's init record.
 */
export function copyRequest<K>(req: Request, keys: Partial<K> | undefined, remoteAddr: string): SessionInit<K> {
  return new RequestCopy(req, keys, remoteAddr);
}

/** Headers of the handshake itself, meaningless once it is done: not kept. */
const HANDSHAKE_ONLY = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions"]);

/**
 * Headers are kept as one string of `name:value` lines (a header can hold neither a newline
 * nor, in its name, a colon). Reading them all has a cost on Deno that no copy avoids: Deno
 * keeps the upgraded request alive as long as its socket, with the full header list the read
 * fetched (about 2 KB per session).
 */
class RequestCopy<K> implements SessionInit<K> {
  remoteAddr: string;
  keys: Partial<K> | undefined;
  protocol = "";
  #url: string;
  #headers: string | undefined;
  #request: Request | undefined;

  constructor(req: Request, keys: Partial<K> | undefined, remoteAddr: string) {
    this.remoteAddr = remoteAddr;
    this.keys = keys;
    this.#url = req.url;
    const lines: string[] = [];
    req.headers.forEach((value, name) => {
      if (!HANDSHAKE_ONLY.has(name)) lines.push(`${name}:${value}`);
    });
    this.#headers = lines.join("\n"); // one flat string, not a rope of concatenations
  }

  get request(): Request {
    if (this.#request) return this.#request;
    const headers = new Headers();
    for (const line of this.#headers!.split("\n")) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon), line.slice(colon + 1));
    }
    this.#headers = undefined;
    return this.#request = new Request(this.#url, { headers }); // an upgrade is a GET
  }
}
