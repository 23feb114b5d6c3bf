// Chat with sign-in: `POST /login` with a name returns a JWT (hono/jwt); the WebSocket at
// `/ws?token=<jwt>` is refused with 401 before the upgrade unless the token verifies (browsers
// cannot set headers on a WebSocket, so the token travels in the query; an
// `Authorization: Bearer` header works too). The user id lives in the session's keys;
// `/msg <user> <text>` reaches only that user's sessions.
// Server → page, JSON: {type: "message" | "private" | "join" | "leave" | "error", from?, text?}.
// Run: `deno run -A examples/jwt-chat/main.ts` or `bun run examples/jwt-chat/main.ts`
// (JWT_SECRET sets the signing secret; without it a random one is made per run).
import process from "node:process";
import { Hono } from "hono";
import { sign, verify } from "hono/jwt";
import { Hub } from "chorus-ws";
import { upgrade } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

type Keys = { uid: string };
type Env = { Variables: { uid: string } };

const secret = process.env.JWT_SECRET ??
  Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join("");
const validName = /^[\w-]{1,32}$/;

const hub = new Hub<Keys>({ maxMessageSize: 4096 });
const send = (to: (uid: string) => boolean, msg: Record<string, unknown>) =>
  hub.broadcastFilter(JSON.stringify(msg), (s) => to(s.mustGet("uid")));

hub.handleConnect((s) => send(() => true, { type: "join", from: s.mustGet("uid") }));
hub.handleDisconnect((s) => {
  if (!hub.isClosed()) send(() => true, { type: "leave", from: s.mustGet("uid") });
});
hub.handleMessage((s, text) => {
  const from = s.mustGet("uid");
  const dm = text.match(/^\/msg\s+(\S+)\s+([\s\S]+)$/);
  if (!dm) return send(() => true, { type: "message", from, text });
  const [, to, body] = dm;
  if (!hub.sessions().some((t) => t.get("uid") === to)) {
    return s.write(JSON.stringify({ type: "error", text: `${to} is not here` }));
  }
  send((uid) => uid === to, { type: "private", from, text: body });
});

const html = page(import.meta.url, "index.html");
const app = new Hono<Env>();
app.get("/", (c) => c.html(html));
app.post("/login", async (c) => {
  const form = c.req.header("content-type")?.includes("json") ? await c.req.json() : await c.req.parseBody();
  const name = typeof form?.name === "string" ? form.name.trim() : "";
  if (!validName.test(name)) return c.json({ error: "A name is 1 to 32 letters, digits, _ or -" }, 400);
  const now = Math.floor(Date.now() / 1000);
  return c.json({ token: await sign({ sub: name, iat: now, exp: now + 3600 }, secret, "HS256") });
});
// The auth middleware: runs before the upgrade; a refusal never becomes a session.
app.use("/ws", async (c, next) => {
  const bearer = c.req.header("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const token = c.req.query("token") ?? bearer;
  if (!token) return c.text("Sign in first: POST /login", 401);
  try {
    const payload = await verify(token, secret, "HS256");
    c.set("uid", String(payload.sub));
  } catch {
    return c.text("Invalid or expired token", 401);
  }
  await next();
});
app.get("/ws", upgrade(hub, { keys: (c) => ({ uid: c.get("uid") }) }));

await runExample("jwt-chat", hub, app);
