// Server-side events pushed to subscribers: a device-status board. A timer reports a status for
// one device every NOTIFY_INTERVAL ms (default 2000), and `POST /publish/:topic` pushes any event
// (a webhook, an approval) with its body as the status. Each subscriber picks topics, which are
// rooms: `/ws?topics=door,pump` at connect, then {"subscribe": t} / {"unsubscribe": t}.
// Server → page, JSON: {type: "event", topic, status, at} and {type: "topics", topics}.
// Run: `deno run -A examples/notify/main.ts` or `bun run examples/notify/main.ts`.
// Environment (see docs/examples.md): the port is the first argument, else PORT (default 8080; 0
// picks a free one); HOST is the address (default 127.0.0.1; HOST=0.0.0.0 for every interface);
// NOTIFY_INTERVAL is the timer's period in ms (default 2000).
import process from "node:process";
import { Hono } from "hono";
import { Hub, type Session } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

const devices = ["door", "boiler", "pump", "fridge"];
const statuses: Record<string, string[]> = {
  door: ["open", "closed", "locked"],
  boiler: ["heating", "idle", "fault"],
  pump: ["running", "stopped"],
  fridge: ["4°C", "5°C", "door ajar"],
};
const validTopic = /^[\w-]{1,32}$/;

const hub = new Hub({ maxMessageSize: 1024 });

function publish(topic: string, status: string): void {
  hub.room(topic).broadcast(JSON.stringify({ type: "event", topic, status, at: new Date().toISOString() }));
}

function topicsOf(s: Session): void {
  s.write(JSON.stringify({ type: "topics", topics: [...s.rooms].sort() }));
}

hub.handleConnect((s) => {
  const asked = new URL(s.request.url).searchParams.get("topics") ?? "";
  for (const t of asked.split(",")) if (validTopic.test(t)) s.join(t);
  topicsOf(s);
});
hub.handleMessage((s, msg) => {
  let req: { subscribe?: unknown; unsubscribe?: unknown };
  try {
    req = JSON.parse(msg);
  } catch {
    return s.write(JSON.stringify({ type: "error", text: "Send JSON: {subscribe: topic} or {unsubscribe: topic}" }));
  }
  if (typeof req.subscribe === "string" && validTopic.test(req.subscribe)) s.join(req.subscribe);
  if (typeof req.unsubscribe === "string" && validTopic.test(req.unsubscribe)) s.leave(req.unsubscribe);
  topicsOf(s);
});

const interval = Number(process.env.NOTIFY_INTERVAL ?? 2000);
const timer = setInterval(() => {
  const device = devices[Math.floor(Math.random() * devices.length)];
  const options = statuses[device];
  publish(device, options[Math.floor(Math.random() * options.length)]);
}, interval > 0 ? interval : 2000);

const html = page(import.meta.url, "index.html");
const app = new Hono();
app.get("/", (c) => c.html(html));
app.post("/publish/:topic", async (c) => {
  const topic = c.req.param("topic");
  if (!validTopic.test(topic)) return c.text("Bad topic", 400);
  const status = (await c.req.text()).slice(0, 200) || "event";
  publish(topic, status);
  return c.json({ topic, delivered: hub.room(topic).size });
});
app.get("/ws", upgrade(hub));

await runExample("notify", hub, app, { onShutdown: () => clearInterval(timer) });
