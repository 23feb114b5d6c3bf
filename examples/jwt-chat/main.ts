// Chat with sign-in: `POST /login` with a name returns a JWT (hono/jwt); the WebSocket at
// `/ws?token=<jwt>` is refused with 401 before the upgrade unless the token verifies and is not
// revoked (browsers cannot set headers on a WebSocket, so the token travels in the query; an
// `Authorization: Bearer` header works too). Every reconnect passes the same check, so a revoked
// or expired token never resumes its session. `POST /logout` (with the token) revokes it and
// closes its sessions with 4001. The user id lives in the session's keys; `/msg <user> <text>`
// reaches only that user's sessions (and the sender's). The page runs on chorus-ws/client.
// Server → page, JSON: {type: "message" | "private" | "join" | "leave", name, to?, text?, time}
// and {type: "error", text}.
// Run: `deno run -A examples/jwt-chat/main.ts` or `bun run examples/jwt-chat/main.ts`
// (JWT_SECRET sets the signing secret; without it a random one is made per run).
// Environment (see docs/examples.md): the port is the first argument, else PORT (default 8080; 0
// picks a free one); HOST is the address (default 127.0.0.1; HOST=0.0.0.0 for every interface).
import process from "node:process";
import { Hono } from "hono";
import { sign, verify } from "hono/jwt";
import { Hub } from "chorus-ws";
import { upgrade, type UpgradeContext } from "chorus-ws/hono";
import { page, runExample } from "../_run.ts";

type Keys = { uid: string; jti: string };
type Env = { Variables: Keys };

const secret = process.env.JWT_SECRET ??
  Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, "0")).join("");
const validName = /^[\w-]{1,32}$/;
const revoked = new Set<string>(); // token ids (jti) signed out before they expired

/** The user and token id of a request's valid token (`?token=` or a bearer header), if any. */
async function signedIn(req: Request): Promise<Keys | undefined> {
  const bearer = req.headers.get("authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const token = new URL(req.url).searchParams.get("token") || bearer;
  if (!token) return undefined;
  try {
    const { sub, jti } = await verify(token, secret, "HS256");
    return typeof jti === "string" && !revoked.has(jti) ? { uid: String(sub), jti } : undefined;
  } catch {
    return undefined; // malformed, forged or expired
  }
}

const hub = new Hub<Keys>({ maxMessageSize: 4096, resume: {} });
const send = (to: (uid: string) => boolean, msg: Record<string, unknown>) =>
  hub.broadcastFilter(JSON.stringify({ ...msg, time: new Date().toISOString() }), (s) => to(s.mustGet("uid")));

hub.handleConnect((s) => send(() => true, { type: "join", name: s.mustGet("uid") }));
hub.handleDisconnect((s) => {
  if (!hub.isClosed()) send(() => true, { type: "leave", name: s.mustGet("uid") });
});
hub.handleMessage((s, text) => {
  const name = s.mustGet("uid");
  const dm = text.match(/^\/msg\s+(\S+)\s+([\s\S]+)$/);
  if (!dm) return send(() => true, { type: "message", name, text });
  const [, to, body] = dm;
  if (!hub.sessions().some((t) => t.get("uid") === to)) {
    return s.write(JSON.stringify({ type: "error", text: `${to} is not here` }));
  }
  send((uid) => uid === to || uid === name, { type: "private", name, to, text: body });
});

const html = page(import.meta.url, "index.html");
const app = new Hono<Env>();
app.get("/", (c) => c.html(html));
app.post("/login", async (c) => {
  const form = c.req.header("content-type")?.includes("json") ? await c.req.json() : await c.req.parseBody();
  const name = typeof form?.name === "string" ? form.name.trim() : "";
  if (!validName.test(name)) return c.json({ error: "A name is 1 to 32 letters, digits, _ or -" }, 400);
  const now = Math.floor(Date.now() / 1000);
  const jti = crypto.randomUUID();
  return c.json({ token: await sign({ sub: name, jti, iat: now, exp: now + 3600 }, secret, "HS256") });
});
app.post("/logout", async (c) => {
  const user = await signedIn(c.req.raw);
  if (!user) return c.text("Not signed in", 401);
  revoked.add(user.jti);
  for (const s of hub.sessions()) if (s.get("jti") === user.jti) s.close(4001, "signed out");
  return c.body(null, 204);
});
// The auth middleware: runs before the upgrade (a reconnect's too); a refusal never becomes a session.
app.use("/ws", async (c, next) => {
  const user = await signedIn(c.req.raw);
  if (!user) return c.text("Sign in first: POST /login (the token is missing, invalid, expired or revoked)", 401);
  c.set("uid", user.uid);
  c.set("jti", user.jti);
  await next();
});
app.get("/ws", upgrade(hub, { keys: (c: UpgradeContext<Env>) => ({ uid: c.get("uid"), jti: c.get("jti") }) }));

await runExample("jwt-chat", hub, app);
