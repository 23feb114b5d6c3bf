// Many chat rooms by URL: the page at `/room/:name`, its WebSocket at `/room/:name/ws`. Messages
// stay inside their room; everyone in a room sees who joins and leaves and how many are there,
// and a newcomer first gets the room's last chat messages (`history`), shown as earlier ones.
// The page runs on chorus-ws/client (served at `/chorus-client.js`); with `resume` a dropped
// connection comes back to the same session, in the same room, missing nothing.
// Server → page, JSON, in this order for a new session: {type: "hello", name} (who you are),
// {type: "history", messages} (the room's last chat messages, oldest first; maybe none), then
// {type: "join" | "leave", name, count, members, time} (members: the names in the room) and {type: "message", id, name, text, time}.
// The room keeps every room broadcast, notices included; only chat messages are sent as history
// (old join/leave notices and their counts say nothing to a newcomer), so the hub keeps 50 for 20.
// Run: `deno run -A examples/multichat/main.ts` or `bun run examples/multichat/main.ts`.
// Environment (see docs/examples.md): the port is the first argument, else PORT (default 8080; 0
// picks a free one); HOST is the address (default 127.0.0.1; HOST=0.0.0.0 for every interface).
import { Hono } from "hono";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

type Keys = { room: string; name: string };

// presence: who is in a room (`room.members()`), with the one key the others may see
const hub = new Hub<Keys>({ maxMessageSize: 4096, resume: {}, history: { size: 50 }, presence: { keys: ["name"] } });
let guests = 0;
const tell = (room: string, msg: Record<string, unknown>) =>
  hub.room(room).broadcast(JSON.stringify({ ...msg, time: new Date().toISOString() }));

/** The names of the room's members, sorted (with a broker, on every node). */
async function members(room: string): Promise<string[]> {
  return (await hub.room(room).members()).map((m) => String(m.keys.name)).sort();
}

/** The room's last `n` chat messages, oldest first (its history holds the notices too). */
async function lastMessages(room: string, n: number): Promise<unknown[]> {
  const kept = (await hub.room(room).history()).map((e) => JSON.parse(e.message as string));
  return kept.filter((m) => m.type === "message").slice(-n);
}

hub.handleConnect(async (s) => {
  const room = s.mustGet("room");
  s.write(JSON.stringify({ type: "hello", name: s.mustGet("name") }));
  // Joined first, then the history: nothing said meanwhile is missed. (A message could then come
  // both live and in the history: the ids let the page show it once.)
  s.join(room);
  s.write(JSON.stringify({ type: "history", messages: await lastMessages(room, 20) }));
  tell(room, { type: "join", name: s.mustGet("name"), count: hub.room(room).size, members: await members(room) });
});
hub.handleMessage((s, text) =>
  tell(s.mustGet("room"), { type: "message", id: crypto.randomUUID(), name: s.mustGet("name"), text })
);
hub.handleDisconnect(async (s) => {
  if (hub.isClosed()) return; // shutting down: nobody is left to tell
  const room = s.mustGet("room");
  const names = await members(room); // the session has left its rooms already
  if (!hub.isClosed()) {
    tell(room, { type: "leave", name: s.mustGet("name"), count: hub.room(room).size, members: names });
  }
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
