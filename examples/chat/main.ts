// melody's README chat on Hono + chorus: a page at `/`, a WebSocket at `/ws`, every message
// broadcast to everyone. The page runs on chorus-ws/client (served at `/chorus-client.js`) and the hub
// keeps sessions across dropped connections (`resume`), so nothing is lost in either direction.
// Names: `/?name=ann`, else the server picks a guest name. Server → page, JSON:
// {type: "hello", name} (once per session: who you are) and {type: "message", name, text, time}.
// Run: `deno run -A examples/chat/main.ts` or `bun run examples/chat/main.ts`.
// Environment (see docs/examples.md): the port is the first argument, else PORT (default 8080; 0
// picks a free one); HOST is the address (default 127.0.0.1; HOST=0.0.0.0 for every interface).
import { Hono } from "hono";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

const hub = new Hub<{ name: string }>({ maxMessageSize: 4096, resume: {} });
hub.handleConnect((s) => s.write(JSON.stringify({ type: "hello", name: s.mustGet("name") })));
hub.handleMessage((s, text) => {
  hub.broadcast(JSON.stringify({ type: "message", name: s.mustGet("name"), text, time: new Date().toISOString() }));
});

const validName = /^[\w-]{1,32}$/;
let guests = 0;

const html = page(import.meta.url, "index.html");
const app = new Hono();
app.get("/", (c) => c.html(html));
app.get(
  "/ws",
  upgrade(hub, {
    keys: (c) => {
      const asked = c.req.query("name") ?? "";
      return { name: validName.test(asked) ? asked : `guest-${++guests}` };
    },
  }),
);

await runExample("chat", hub, app);
