// melody's README chat on Hono + chorus: a page at `/`, a WebSocket at `/ws`, and every message
// broadcast to everyone. Run: `deno run -A examples/chat/main.ts` or `bun run examples/chat/main.ts`.
import { Hono } from "hono";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

const hub = new Hub({ maxMessageSize: 4096 });
hub.handleMessage((_s, msg) => hub.broadcast(msg));

const html = page(import.meta.url, "index.html");
const app = new Hono();
app.get("/", (c) => c.html(html));
app.get("/ws", upgrade(hub));

await runExample("chat", hub, app);
