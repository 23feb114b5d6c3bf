// Many chat rooms by URL: the page at `/room/:name`, its WebSocket at `/room/:name/ws`. Messages
// stay inside their room; everyone in a room sees who joins and leaves and how many are there.
// The page runs on chorus-ws/client (served at `/chorus-client.js`); with `resume` a dropped
// connection comes back to the same session, in the same room, missing nothing.
// Server → page, JSON: {type: "hello", name} (once per session: who you are),
// {type: "join" | "leave", name, count, time} and {type: "message", name, text, time}.
// Run: `deno run -A examples/multichat/main.ts` or `bun run examples/multichat/main.ts`.
import { Hono } from "hono";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

type Keys = { room: string; name: string };

const hub = new Hub<Keys>({ maxMessageSize: 4096, resume: {} });
let guests = 0;
const tell = (room: string, msg: Record<string, unknown>) =>
  hub.room(room).broadcast(JSON.stringify({ ...msg, time: new Date().toISOString() }));

hub.handleConnect((s) => {
  const room = s.mustGet("room");
  s.write(JSON.stringify({ type: "hello", name: s.mustGet("name") }));
  s.join(room);
  tell(room, { type: "join", name: s.mustGet("name"), count: hub.room(room).size });
});
hub.handleMessage((s, text) => tell(s.mustGet("room"), { type: "message", name: s.mustGet("name"), text }));
hub.handleDisconnect((s) => {
  if (hub.isClosed()) return; // shutting down: nobody is left to tell
  const room = s.mustGet("room");
  tell(room, { type: "leave", name: s.mustGet("name"), count: hub.room(room).size });
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
