// Compiled by `tsc -p tsconfig.bun.json` with bun-types (never run): proves the Bun adapter's
// local interfaces accept Bun's real `Bun.serve`, `Server` and `ServerWebSocket` types.
import { Hub } from "../../mod.ts";
import { bunAdapter } from "../../src/adapters/bun.ts";

const hub = new Hub<{ uid: string }>();
const chorus = bunAdapter(hub);
Bun.serve({
  port: 0,
  fetch: (req, server) => chorus.upgrade(req, server, { uid: "u1" }),
  websocket: chorus.websocket,
});
// the function form: pick the subprotocol and add 101 headers, or refuse
Bun.serve({
  port: 0,
  fetch: (req, server) =>
    chorus.upgrade(req, server, (upgrade) => {
      if (!upgrade.protocols.includes("v1.chat")) return new Response("Speak v1.chat", { status: 400 });
      upgrade.protocol = "v1.chat";
      upgrade.headers.set("x-node", "a");
      return { uid: "u2" };
    }),
  websocket: chorus.websocket,
});
