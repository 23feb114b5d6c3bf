// A refused upgrade ends chorus-ws/client for good with close code 4000 + the HTTP status and the
// answer's text: chorus's own refusals (serve()'s onUpgrade, Hono keys, the Bun adapter's decide,
// a refused origin, hub.handleRequest) reach a chorus.v1 client as an upgrade closed at once; a
// refusal by Hono middleware before chorus is found by the client's HTTP probe. A server that is
// down, or answers 429 or 503, is retried. Deno and Bun (Chromium: tests/browser.test.ts).
import assert from "node:assert/strict";
import { Hono } from "hono";
import { Hub } from "../mod.ts";
import { upgrade } from "../src/hono.ts";
import { serve } from "../src/serve.ts";
import { bunAdapter } from "../src/adapters/bun.ts";
import type { ClientOptions } from "../src/client.ts";
import { RawPeer, runtime, startServer, test } from "./_helpers.ts";
import { serveApp } from "../src/hono.ts";
import { watch, type Watched } from "./_scripted.ts";

/** Watches a client until it stops for good; returns it (ended) with what it did. */
async function untilClosed(url: string, options: ClientOptions = {}, ms = 5000): Promise<Watched> {
  const w = watch(url, { minDelay: 10, maxDelay: 50, ...options });
  try {
    await w.signal.until(() => w.closes.length === 1, "the final close", ms);
  } finally {
    await w.end();
  }
  return w;
}

/** A WebSocket that sends an Origin header, as a page of another site would (Deno and Bun take `headers`). */
function fromOrigin(origin: string): ClientOptions["WebSocket"] {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      // deno-lint-ignore no-explicit-any
      super(url, { protocols, headers: { origin } } as any);
    }
  };
}

test("refused: serve()'s onUpgrade answering 401: close 4401 with the text, at once; no session, counted", async () => {
  let asked = 0;
  const t = await startServer({ resume: {} }, {
    onUpgrade(req) {
      asked++;
      if (new URL(req.url).searchParams.get("token") !== "good") {
        return new Response("Sign in first: the token is missing or expired", { status: 401 });
      }
    },
  });
  let connects = 0;
  t.hub.handleConnect(() => connects++);
  try {
    const w = await untilClosed(t.wsUrl("/ws?token=bad"));
    assert.equal(w.closes[0].code, 4401);
    assert.equal(w.closes[0].reason, "Sign in first: the token is missing or expired");
    assert.equal(w.c.state, "closed");
    assert.equal(w.reconnecting.length, 0, "no retry: a chorus hub says so on the first connection");
    assert.equal(w.opens.length, 0, "no open event");
    assert.equal(asked, 1);
    assert.equal(connects, 0, "no session, no connect hook");
    assert.equal(t.hub.size, 0);
    assert.equal(t.hub.metrics().refused, 1);
    // A plain WebSocket (no chorus.v1) still gets the HTTP answer.
    const raw = await RawPeer.upgrade(t.port, "/ws?token=bad");
    assert.equal(raw.status, 401);
    await raw.destroy();
    // A good token: a session as before.
    const ok = watch(t.wsUrl("/ws?token=good"));
    await ok.signal.until(() => ok.opens.length === 1, "open");
    await ok.end();
  } finally {
    await t.close();
  }
});

test("refused: a reason past 123 bytes is cut on a character boundary; a refused origin is 4403", async () => {
  const text = "é".repeat(100); // 200 bytes of UTF-8
  const t = await startServer({ resume: {} }, { onUpgrade: () => new Response(text, { status: 400 }) });
  try {
    const w = await untilClosed(t.wsUrl());
    assert.equal(w.closes[0].code, 4400);
    assert.equal(w.closes[0].reason, "é".repeat(61), "122 bytes: the 62nd character would not fit whole");
    const o = await untilClosed(t.wsUrl(), { WebSocket: fromOrigin("http://evil.example") });
    assert.equal(o.closes[0].code, 4403);
    assert.equal(o.closes[0].reason, "Origin not allowed");
    assert.equal(t.hub.metrics().refused, 2);
  } finally {
    await t.close();
  }
});

test("refused: Hono keys returning a Response, and Hono middleware before chorus (the client's probe)", async () => {
  const hub = new Hub<{ uid: string }>({ resume: {} });
  const app = new Hono<{ Variables: { uid: string } }>();
  let probes = 0;
  app.use("*", async (c, next) => {
    if (c.req.header("upgrade") !== "websocket") probes++;
    await next();
  });
  app.use("/mw", (c) => Promise.resolve(c.text("Sign in first (middleware)", 401)));
  app.get("/keys", upgrade(hub, { keys: () => new Response("Not in this room", { status: 403 }) }));
  app.use("/busy", (c) => Promise.resolve(c.text("Slow down", 429)));
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  const url = (path: string) => `ws://127.0.0.1:${server.port}${path}`;
  try {
    const k = await untilClosed(url("/keys"));
    assert.deepEqual([k.closes[0].code, k.closes[0].reason, k.sockets.length], [4403, "Not in this room", 1]);
    assert.equal(probes, 0, "a refusal chorus made needs no probe");
    const m = await untilClosed(url("/mw"));
    assert.deepEqual([m.closes[0].code, m.closes[0].reason], [4401, "Sign in first (middleware)"]);
    assert.ok(m.sockets.length <= 3, `at most 2 retries: ${m.sockets.length} connections`);
    assert.equal(probes, m.sockets.length, "one probe per failed connection");
    assert.equal(hub.size, 0);
    // 429 is no refusal: the client keeps trying.
    const busy = watch(url("/busy"), { minDelay: 10, maxDelay: 20 });
    await busy.signal.until(() => busy.reconnecting.length >= 4, "4 reconnects");
    assert.equal(busy.closes.length, 0);
    await busy.end();
  } finally {
    await server.shutdown();
  }
});

test("refused: a server that is down, or a hub that is closing (503), is retried", async () => {
  const t = await startServer({ resume: {} });
  const port = t.port;
  await t.close(); // nothing listens on the port now
  const down = watch(`ws://127.0.0.1:${port}/`, { minDelay: 5, maxDelay: 20 });
  try {
    await down.signal.until(() => down.reconnecting.length >= 5, "5 reconnects");
    assert.equal(down.closes.length, 0);
    assert.equal(down.c.state, "reconnecting");
  } finally {
    await down.end();
  }
  const closing = await startServer({ resume: {} }, { fetch: () => new Response("", { status: 503 }) });
  const w = watch(closing.wsUrl(), { minDelay: 5, maxDelay: 20 });
  try {
    await w.signal.until(() => w.opens.length === 1, "open");
    await closing.hub.close(); // upgrades now get 503, the probe too
    await w.signal.until(() => w.reconnecting.length >= 4, "4 reconnects against the closed hub");
    assert.equal(w.closes.length, 0);
  } finally {
    await w.end();
    await closing.close();
  }
});

test(`refused: the Bun adapter's decide answering 403 (${runtime})`, async () => {
  const hub = new Hub({ resume: {} });
  // deno-lint-ignore no-explicit-any
  const Bun = (globalThis as any).Bun;
  const chorus = bunAdapter(hub);
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req: Request, srv: never) =>
      chorus.upgrade(req, srv, () => new Response("Banned", { status: 403, statusText: "Forbidden" })),
    websocket: chorus.websocket,
  });
  try {
    const w = await untilClosed(`ws://127.0.0.1:${server.port}/`);
    assert.deepEqual([w.closes[0].code, w.closes[0].reason, w.sockets.length], [4403, "Banned", 1]);
    assert.equal(hub.size, 0);
    assert.equal(hub.metrics().refused, 1);
  } finally {
    await hub.close();
    await server.stop(true);
  }
}, { skip: runtime === "bun" ? false : "the Bun adapter runs on Bun" });

test(`refused: hub.handleRequest's refused origin (${runtime})`, async () => {
  const hub = new Hub({ resume: {} });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => hub.handleRequest(req));
  try {
    const w = await untilClosed(`ws://127.0.0.1:${server.addr.port}/`, {
      WebSocket: fromOrigin("http://evil.example"),
    });
    assert.deepEqual([w.closes[0].code, w.closes[0].reason], [4403, "Origin not allowed"]);
    assert.equal(hub.metrics().refused, 1);
  } finally {
    await hub.close();
    await server.shutdown();
  }
}, { skip: runtime === "deno" ? false : "hub.handleRequest upgrades with Deno.upgradeWebSocket" });

test("refused: serve() on the other paths: a refusal to a client that offers no chorus.v1 stays HTTP", async () => {
  const hub = new Hub({ resume: {} });
  const server = await serve(hub, {
    port: 0,
    hostname: "127.0.0.1",
    onUpgrade: () => new Response("no", { status: 404 }),
  });
  try {
    const plain = await RawPeer.upgrade(server.port, "/", { "Sec-WebSocket-Protocol": "app" });
    assert.equal(plain.status, 404);
    await plain.destroy();
    const chorus = await RawPeer.upgrade(server.port, "/", { "Sec-WebSocket-Protocol": "chorus.v1" });
    assert.equal(chorus.status, 101);
    assert.match(chorus.head, /sec-websocket-protocol: chorus\.v1/i);
    await chorus.destroy();
    assert.equal(hub.size, 0);
    assert.equal(hub.metrics().refused, 2);
  } finally {
    await server.shutdown();
  }
});
