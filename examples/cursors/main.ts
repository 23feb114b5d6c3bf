// Everyone's mouse cursor, live, to everyone else (melody's "gophers"): each move goes to the
// others with broadcastOthers; a newcomer gets the cursors already there; a leaving user's
// cursor disappears. Client → server: {x, y} (fractions of the page). Server → page, JSON:
// {type: "hello", id, color}, {type: "move", id, color, x, y}, {type: "leave", id}.
// Run: `deno run -A examples/cursors/main.ts` or `bun run examples/cursors/main.ts`.
// Environment (see docs/examples.md): the port is the first argument, else PORT (default 8080; 0
// picks a free one); HOST is the address (default 127.0.0.1; HOST=0.0.0.0 for every interface).
import { Hono } from "hono";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

type Keys = { color: string; x: number; y: number };

const hub = new Hub<Keys>({ maxMessageSize: 256 });
let hue = 0;

hub.handleConnect((s) => {
  const color = `hsl(${(hue += 137) % 360} 70% 45%)`;
  s.set("color", color);
  s.write(JSON.stringify({ type: "hello", id: s.id, color }));
  for (const o of hub.sessions()) {
    if (o !== s && o.has("x")) {
      s.write(JSON.stringify({ type: "move", id: o.id, color: o.get("color"), x: o.get("x"), y: o.get("y") }));
    }
  }
});
hub.handleMessage((s, msg) => {
  let p: { x?: unknown; y?: unknown };
  try {
    p = JSON.parse(msg);
  } catch {
    return;
  }
  const { x, y } = p;
  if (typeof x !== "number" || typeof y !== "number" || !Number.isFinite(x) || !Number.isFinite(y)) return;
  s.set("x", x);
  s.set("y", y);
  hub.broadcastOthers(JSON.stringify({ type: "move", id: s.id, color: s.get("color"), x, y }), s);
});
hub.handleDisconnect((s) => {
  if (!hub.isClosed()) hub.broadcast(JSON.stringify({ type: "leave", id: s.id }));
});

const html = page(import.meta.url, "index.html");
const app = new Hono();
app.get("/", (c) => c.html(html));
app.get("/ws", upgrade(hub));

await runExample("cursors", hub, app);
