/**
 * The files every example page loads, from `examples/_static/`: chorus-ws/client as one browser
 * module (`/chorus-client.js`, built by `scripts/build_client.ts`), the chat pages' shared
 * view (`/chat-view.js`) and style (`/chat.css`), and the pages' icon (`/favicon.svg`). Read once.
 * Runs unchanged on Deno and on Bun.
 *
 * @module
 */

import { readFileSync } from "node:fs";

const types: Record<string, string> = {
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};
const files = new Map<string, { body: string; type: string }>(
  ["chorus-client.js", "chat-view.js", "chat.css", "favicon.svg"].map((name) => {
    const body = readFileSync(new URL(`_static/${name}`, import.meta.url), "utf8");
    return [`/${name}`, { body, type: types[name.slice(name.lastIndexOf(".") + 1)] }] as const;
  }),
);

/**
 * One of the shared files, by the request's path.
 *
 * @param path A URL's pathname.
 * @returns The file's response, or `undefined` when `path` names none of them.
 */
export function asset(path: string): Response | undefined {
  const file = files.get(path);
  return file && new Response(file.body, { headers: { "content-type": file.type } });
}
