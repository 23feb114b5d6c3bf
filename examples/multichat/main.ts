// Many chat rooms by URL: the page at `/room/:name`, its WebSocket at `/room/:name/ws`. Messages
// stay inside their room; everyone in a room sees who joins and leaves and how many are there.
// Server → page, JSON: {type: "join" | "leave", name, count} and {type: "message", name, text}.
// Run: `deno run -A examples/multichat/main.ts` or `bun run examples/multichat/main.ts`.
import { Hono } from "hono";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

type Keys = { room: string; name: string };

const hub = new Hub<Keys>({ maxMessageSize: 4096 });
let guests = 0;

hub.handleConnect((s) => {
  const room = hub.room(s.mustGet("room"));
  s.join(room.name);
  room.broadcast(JSON.stringify({ type: "join", name: s.mustGet("name"), count: room.size }));
});
hub.handleMessage((s, text) => {
  hub.room(s.mustGet("room")).broadcast(JSON.stringify({ type: "message", name: s.mustGet("name"), text }));
});
hub.handleDisconnect((s) => {
  if (hub.isClosed()) return; // shutting down: nobody is left to tell
  const room = hub.room(s.mustGet("room"));
  room.broadcast(JSON.stringify({ type: "leave", name: s.mustGet("name"), count: room.size }));
});

const validName = /^[\w-]{1,32}$/;
const html = page(import.meta.url, "index.html");
const app = new Hono();
app.get("/", (c) => c.redirect("/room/lobby"));
app.get("/room/:name", (c) => validName.test(c.req.param("name")) ? c.html(html) : c.text("Bad room name", 400));
app.get(
  "/room/:name/ws",
  async (c, next) => {
    if (!validName.test(c.req.param("name"))) return c.text("Bad room name", 400);
    await next();
  },
  upgrade(hub, {
    keys: (c) => {
      const asked = c.req.query("name") ?? "";
      return { room: c.req.param("name"), name: validName.test(asked) ? asked : `guest-${++guests}` };
    },
  }),
);

await runExample("multichat", hub, app);
