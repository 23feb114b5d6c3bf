// The Hono integration in-process, on whichever runtime runs the suite: middleware order,
// refusals that never become sessions, keys from the context, hono/jwt before the upgrade.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { jwt, sign } from "hono/jwt";
import { Hub } from "../mod.ts";
import { serveApp, upgrade, type UpgradeContext, websocket } from "../src/hono.ts";
import { Client, RawPeer, runtime, Signal, test } from "./_helpers.ts";
import { nativePublishes } from "./_fanout.ts";

interface Recorded<K extends Record<string, unknown>> {
  hub: Hub<K>;
  signal: Signal;
  connects: string[];
  disconnects: string[];
}

function recordedHub<K extends Record<string, unknown>>(): Recorded<K> {
  const hub = new Hub<K>();
  const signal = new Signal();
  const connects: string[] = [];
  const disconnects: string[] = [];
  hub.handleConnect((s) => {
    connects.push(s.id);
    signal.ping();
  });
  hub.handleDisconnect((s) => {
    disconnects.push(s.id);
    signal.ping();
  });
  // a raw peer that drops its connection is an error on Deno ("Unexpected EOF"); expected here
  hub.handleError(() => {});
  return { hub, signal, connects, disconnects };
}

test("hono: middleware runs before the upgrade and keys from the context reach the session", async () => {
  const { hub, signal, connects } = recordedHub<{ uid: string; via: string }>();
  const log: string[] = [];
  const app = new Hono<{ Variables: { uid: string } }>();
  app.use("*", async (c, next) => {
    log.push(`before ${c.req.path}`);
    await next();
    log.push(`after ${c.req.path} ${c.res.status}`);
  });
  app.use("/ws", async (c, next) => {
    c.set("uid", c.req.query("uid") ?? "nobody");
    await next();
  });
  app.get(
    "/ws",
    upgrade(hub, { keys: (c: UpgradeContext<{ Variables: { uid: string } }>) => ({ uid: c.get("uid"), via: "hono" }) }),
  );
  app.get("/", (c) => c.text("page"));
  hub.handleConnect((s) => {
    connects.push(s.id);
    s.write(`hello ${s.get("uid")} via ${s.get("via")} at ${new URL(s.request.url).pathname}`);
    signal.ping();
  });
  hub.handleMessage((s, msg) => s.write(`${s.mustGet("uid")}: ${msg}`));
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  const c = await Client.open(`ws://127.0.0.1:${server.port}/ws?uid=ann`);
  try {
    assert.equal(await c.next(), "hello ann via hono at /ws");
    c.send("hi");
    assert.equal(await c.next(), "ann: hi");
    hub.broadcast("to all");
    assert.equal(await c.next(), "to all");
    assert.equal(nativePublishes(hub) === 1, runtime === "bun", "on Bun a broadcast is one native publish");
    assert.equal(hub.size, 1);
    assert.equal(connects.length, 1);
    assert.ok(hub.sessions()[0].remoteAddr.length > 0, "the peer's address is known");
    assert.equal(log[0], "before /ws");
    const page = await fetch(server.url);
    assert.equal(await page.text(), "page");
    assert.equal(log.at(-1), "after / 200");
  } finally {
    await c.close();
    await server.shutdown();
  }
});

test("hono: a middleware that answers 401 makes no session and runs no connect hook", async () => {
  const { hub, signal, connects, disconnects } = recordedHub();
  const app = new Hono();
  app.use("/ws", async (c, next) => {
    if (c.req.query("token") !== "secret") return c.text("Unauthorized", 401);
    await next();
  });
  app.get("/ws", upgrade(hub));
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  try {
    const refused = await RawPeer.upgrade(server.port, "/ws");
    assert.equal(refused.status, 401);
    await refused.destroy();
    const wrong = new Client(`ws://127.0.0.1:${server.port}/ws?token=nope`);
    await assert.rejects(wrong.opened);
    await wrong.closed;
    assert.equal(hub.size, 0);
    assert.deepEqual(connects, []);

    // the same route with the token: the refusals above were the middleware's, not the route's
    const ok = await Client.open(`ws://127.0.0.1:${server.port}/ws?token=secret`);
    await signal.until(() => connects.length === 1, "the accepted session's connect hook");
    await ok.close();
    await signal.until(() => disconnects.length === 1, "the accepted session's disconnect hook");
    assert.equal(hub.size, 0);
  } finally {
    await server.shutdown();
  }
});

test("hono: hono/jwt before the upgrade; the token's subject becomes the session's uid", async () => {
  const { hub, signal, connects } = recordedHub<{ uid: string }>();
  const secret = "test-secret";
  const app = new Hono();
  app.use("/ws", jwt({ secret, alg: "HS256" }));
  app.get("/ws", upgrade(hub, { keys: (c) => ({ uid: String((c.get("jwtPayload") as { sub: string }).sub) }) }));
  hub.handleConnect((s) => {
    connects.push(s.mustGet("uid"));
    s.write(`welcome ${s.mustGet("uid")}`);
    signal.ping();
  });
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  try {
    const anonymous = await RawPeer.upgrade(server.port, "/ws");
    assert.equal(anonymous.status, 401);
    await anonymous.destroy();
    const forged = await sign({ sub: "mallory" }, "another-secret", "HS256");
    const bad = await RawPeer.upgrade(server.port, "/ws", { Authorization: `Bearer ${forged}` });
    assert.equal(bad.status, 401);
    await bad.destroy();
    assert.deepEqual(connects, []);

    const token = await sign({ sub: "u42" }, secret, "HS256");
    const good = await RawPeer.upgrade(server.port, "/ws", { Authorization: `Bearer ${token}` });
    assert.equal(good.status, 101);
    await signal.until(() => connects.length === 1, "the connect hook");
    assert.deepEqual(connects, ["u42"]);
    assert.equal(hub.sessions()[0].get("uid"), "u42");
    await good.destroy();
    await signal.until(() => hub.size === 0, "the session to end");
  } finally {
    await server.shutdown();
  }
});

test("hono: the hub's checks still apply (426 without upgrade, 403 cross-origin, 503 once closed)", async () => {
  const { hub, connects } = recordedHub();
  const app = new Hono();
  app.get("/ws", upgrade(hub));
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  try {
    const plain = await fetch(new URL("/ws", server.url));
    assert.equal(plain.status, 426);
    await plain.body?.cancel();
    const foreign = await RawPeer.upgrade(server.port, "/ws", { Origin: "http://evil.example" });
    assert.equal(foreign.status, 403);
    await foreign.destroy();
    const same = await RawPeer.upgrade(server.port, "/ws", { Origin: `http://127.0.0.1:${server.port}` });
    assert.equal(same.status, 101);
    await same.destroy();
    await hub.close();
    const late = await RawPeer.upgrade(server.port, "/ws");
    assert.equal(late.status, 503);
    await late.destroy();
    assert.equal(connects.length, 1);
  } finally {
    await server.shutdown();
  }
});

test("hono: shutdown closes every session with 1001 and runs each disconnect hook once", async () => {
  const { hub, disconnects, connects, signal } = recordedHub();
  const app = new Hono();
  app.get("/ws", upgrade(hub));
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  const clients = await Promise.all([1, 2, 3].map(() => Client.open(`ws://127.0.0.1:${server.port}/ws`)));
  try {
    await signal.until(() => connects.length === 3, "three connects");
    await server.shutdown();
    for (const c of clients) assert.equal((await c.closed).code, 1001);
    assert.equal(disconnects.length, 3);
    assert.equal(new Set(disconnects).size, 3);
    assert.equal(hub.size, 0);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.shutdown();
  }
});

interface ByHand {
  port: number;
  stop(): Promise<void>;
}

/** Serves `app` the way the docs say to without serveApp: `Deno.serve(app.fetch)`, or on Bun `Bun.serve` with `websocket(hub)`. */
function serveByHand(hub: Hub, app: Hono, bunEnv: "server" | "{ server }"): ByHand {
  const g = globalThis as unknown as {
    Bun?: {
      serve(o: {
        port: number;
        hostname: string;
        fetch: (req: Request, server: unknown) => Response | Promise<Response>;
        websocket: unknown;
      }): { port: number; stop(force: boolean): Promise<void> | void };
    };
    Deno?: {
      serve(
        o: { port: number; hostname: string; onListen(): void },
        h: (req: Request, info: unknown) => Response | Promise<Response>,
      ): { addr: { port: number }; shutdown(): Promise<void> };
    };
  };
  if (g.Bun) {
    const server = g.Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: bunEnv === "server" ? app.fetch : (req, server) => app.fetch(req, { server }),
      websocket: websocket(hub),
    });
    return { port: server.port, stop: async () => void await server.stop(true) };
  }
  const server = g.Deno!.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  return { port: server.addr.port, stop: () => server.shutdown() };
}

// on Bun, Hono finds the server as `c.env` or as `c.env.server`; both shapes are served
for (const bunEnv of runtime === "bun" ? ["server", "{ server }"] as const : ["server"] as const) {
  test(
    `hono: served by hand (${runtime === "bun" ? `Bun.serve, c.env = ${bunEnv}` : "Deno.serve(app.fetch)"})`,
    async () => {
      const { hub, signal, connects } = recordedHub();
      const app = new Hono();
      app.get("/ws", upgrade(hub, { keys: (c) => ({ room: c.req.query("room") }) }));
      hub.handleConnect((s) => {
        connects.push(s.id);
        s.join(String(s.get("room")));
        signal.ping();
      });
      hub.handleMessage((s, m) => hub.room(String(s.get("room"))).broadcast(m));
      const server = serveByHand(hub, app, bunEnv);
      const url = (room: string) => `ws://127.0.0.1:${server.port}/ws?room=${room}`;
      const [a1, a2, b] = [await Client.open(url("a")), await Client.open(url("a")), await Client.open(url("b"))];
      try {
        await signal.until(() => connects.length === 3, "three sessions");
        a1.send("to a");
        b.send("to b");
        assert.equal(await a1.next(), "to a");
        assert.equal(await a2.next(), "to a");
        assert.equal(await b.next(), "to b");
        assert.equal(a2.pending + b.pending, 0);
      } finally {
        await Promise.all([a1.close(), a2.close(), b.close()]);
        await hub.close();
        await server.stop();
      }
    },
  );
}

test("hono: a keys function that throws fails the request (500) and makes no session", async () => {
  const { hub, connects } = recordedHub();
  const app = new Hono();
  app.get("/ws", upgrade(hub, { keys: () => Promise.reject(new Error("no keys today")) }));
  app.onError((err, c) => c.text(err.message, 500));
  const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
  try {
    const peer = await RawPeer.upgrade(server.port, "/ws");
    assert.equal(peer.status, 500);
    await peer.destroy();
    assert.equal(hub.size, 0);
    assert.deepEqual(connects, []);
  } finally {
    await server.shutdown();
  }
});
