import assert from "node:assert/strict";
import { Hub, HubClosedError, type Session, SessionClosedError } from "../mod.ts";
import { hubLimits } from "../src/adapter.ts";
import { Client, closeAll, deferred, RawPeer, startServer, test } from "./_helpers.ts";

test("sessions, size and get follow connects and client-side closes", async () => {
  const t = await startServer();
  const clients: Client[] = [];
  try {
    assert.equal(t.hub.size, 0);
    assert.deepEqual(t.hub.sessions(), []);
    for (let i = 1; i <= 3; i++) {
      clients.push(await Client.open(t.wsUrl()));
      await t.signal.until(() => t.hub.size === i, `${i} sessions`);
    }
    const sessions = t.hub.sessions();
    assert.equal(new Set(sessions.map((s) => s.id)).size, 3, "ids are unique");
    for (const s of sessions) assert.equal(t.hub.get(s.id), s);
    assert.equal(t.hub.get("no-such-id"), undefined);

    const snapshot = t.hub.sessions();
    await clients[1].close();
    await t.signal.until(() => t.hub.size === 2, "2 sessions");
    assert.equal(snapshot.length, 3, "sessions() is a snapshot");
    const gone = snapshot.find((s) => s.isClosed())!;
    assert.equal(t.hub.get(gone.id), undefined);
    assert.deepEqual(t.disconnects, [gone.id]);
  } finally {
    await closeAll(clients);
    await t.close();
  }
});

test("keys: from onUpgrade, typed get/set/mustGet/unset/has and the live keys object", async () => {
  const t = await startServer<{ uid: string; role: string; visits: number }>({}, {
    onUpgrade: async (req) => {
      await Promise.resolve();
      return { uid: new URL(req.url).searchParams.get("uid") ?? "", role: "user" };
    },
  });
  const seen = deferred<Session<{ uid: string; role: string; visits: number }>>();
  t.hub.handleConnect((s) => seen.resolve(s));
  const c = await Client.open(t.wsUrl("/?uid=u42"));
  try {
    const s = await seen.promise;
    const uid: string | undefined = s.get("uid");
    assert.equal(uid, "u42");
    assert.equal(s.mustGet("role"), "user");
    assert.equal(s.has("visits"), false);
    assert.throws(() => s.mustGet("visits"), { name: "RangeError", message: 'Session key "visits" is not set' });
    s.set("visits", undefined as unknown as number);
    assert.equal(s.has("visits"), true);
    assert.throws(() => s.mustGet("visits"), RangeError, "present but undefined: not set for mustGet");
    s.set("visits", 1);
    assert.equal(s.mustGet("visits") + 1, 2);
    assert.deepEqual({ ...s.keys }, { uid: "u42", role: "user", visits: 1 });
    s.unset("role");
    assert.equal(s.has("role"), false);
    assert.equal(s.get("role"), undefined);
    s.keys.role = "admin"; // the keys object is live, like melody's Keys map
    assert.equal(s.get("role"), "admin");
  } finally {
    await c.close();
    await t.close();
  }
});

test("onUpgrade can refuse: no session, no connect hook, the client gets the response", async () => {
  let connects = 0;
  const t = await startServer({}, {
    onUpgrade: (req) => {
      if (!new URL(req.url).searchParams.has("token")) return new Response("no token", { status: 401 });
    },
  });
  t.hub.handleConnect(() => void connects++);
  let ok: Client | undefined;
  const peer = await RawPeer.upgrade(t.port, "/ws");
  try {
    assert.equal(peer.status, 401);
    const refused = new Client(t.wsUrl("/ws"));
    await assert.rejects(refused.opened, "a WebSocket client sees a failed connection");
    await refused.closed;
    ok = await Client.open(t.wsUrl("/ws?token=1"));
    await t.signal.until(() => t.hub.size === 1, "the allowed session");
    assert.equal(connects, 1, "only the allowed upgrade ran the connect hook");
  } finally {
    await peer.destroy();
    await ok?.close();
    await t.close();
  }
});

test("requests that are not upgrades go to fetch (426 without one, as on every path)", async () => {
  const t = await startServer({}, { fetch: (req) => new Response(`page ${new URL(req.url).pathname}`) });
  const bare = await startServer();
  try {
    const res = await fetch(new URL("/hello", t.server.url));
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "page /hello");
    const none = await fetch(bare.server.url);
    assert.equal(none.status, 426);
    assert.equal(none.headers.get("upgrade"), "websocket");
    await none.body?.cancel();
    assert.equal(t.hub.size, 0);
  } finally {
    await t.close();
    await bare.close();
  }
});

test("close codes both ways; handleClose sees the peer's code, disconnect runs once", async () => {
  const t = await startServer();
  const closes: [number, string][] = [];
  t.hub.handleClose((_s, code, reason) => void closes.push([code, reason]));
  const sessions: Session[] = [];
  t.hub.handleConnect((s) => {
    sessions.push(s);
    t.signal.ping();
  });
  const byClient = await Client.open(t.wsUrl());
  const byServer = await Client.open(t.wsUrl());
  try {
    await t.signal.until(() => sessions.length === 2, "2 sessions");
    const [first, second] = sessions;

    await byClient.close(4001, "bye");
    await t.signal.until(() => first.isClosed() && t.disconnects.length === 1, "client-side close seen");
    assert.deepEqual(closes, [[4001, "bye"]]);

    second.close(4002, "kicked");
    assert.ok(second.isClosed());
    assert.deepEqual(await byServer.closed, { code: 4002, reason: "kicked" });
    assert.deepEqual(t.disconnects, [first.id, second.id], "each session disconnected exactly once");
    assert.deepEqual(closes, [[4001, "bye"]], "a close we started is not a peer close");

    assert.throws(() => second.write("late"), SessionClosedError);
    assert.throws(() => second.close(), SessionClosedError);
    assert.throws(() => first.write(new Uint8Array(1)), SessionClosedError);
    assert.equal(second.bufferedAmount, 0);
  } finally {
    await closeAll([byClient, byServer]);
    await t.close();
  }
  assert.equal(t.disconnects.length, 2, "hub.close() does not disconnect a session twice");
});

test("close validates its code and reason", async () => {
  const t = await startServer();
  const seen = deferred<Session>();
  t.hub.handleConnect((s) => seen.resolve(s));
  const c = await Client.open(t.wsUrl());
  try {
    const s = await seen.promise;
    assert.throws(() => s.close(999), RangeError);
    assert.throws(() => s.close(1006), RangeError);
    assert.throws(() => s.close(5000), RangeError);
    assert.throws(() => s.close(1000, "x".repeat(124)), RangeError);
    assert.equal(s.isClosed(), false);
    await assert.rejects(t.hub.close(42), RangeError);
    assert.equal(t.hub.isClosed(), false);
  } finally {
    await c.close();
    await t.close();
  }
});

for (const how of ["vanishes (FIN, no close frame)", "resets the connection (TCP RST)"]) {
  test(`a client that ${how} is disconnected once, with code 1006, and is no error`, async () => {
    const t = await startServer();
    const closes: number[] = [];
    t.hub.handleClose((_s, code) => void closes.push(code));
    const peer = await RawPeer.upgrade(t.port);
    try {
      assert.equal(peer.status, 101);
      await t.signal.until(() => t.hub.size === 1, "raw session");
      await (how.includes("RST") ? peer.reset() : peer.destroy());
      await t.signal.until(() => t.disconnects.length === 1, "disconnect after the connection was lost");
      assert.equal(t.hub.size, 0);
      assert.deepEqual(closes, [1006]);
      // Deno reports "Unexpected EOF" / "Connection reset by peer" as an error event first
      assert.deepEqual(t.errors.map((e) => e.message), [], "a lost connection is a close, not an error");
    } finally {
      await t.close();
    }
    assert.equal(t.disconnects.length, 1);
  });
}

test("hub.close(code, reason) then server.shutdown(): clients get the hub's code and reason", async () => {
  const t = await startServer();
  const clients = [await Client.open(t.wsUrl()), await Client.open(t.wsUrl())];
  // a peer that never answers the close frame: shutdown waits for it, but not forever
  const mute = await RawPeer.upgrade(t.port);
  try {
    await t.signal.until(() => t.hub.size === 3, "3 sessions");
    await t.hub.close(4001, "custom reason");
    const started = Date.now();
    await t.close();
    const took = Date.now() - started;
    assert.ok(took < 3000, `shutdown took ${took} ms`);
    for (const c of clients) assert.deepEqual(await c.closed, { code: 4001, reason: "custom reason" });
  } finally {
    await mute.destroy();
    await closeAll(clients);
    await t.close();
  }
});

test("hub.close() closes everyone, awaits every disconnect hook, then refuses broadcasts and upgrades", async () => {
  const t = await startServer();
  const finished: string[] = [];
  t.hub.handleDisconnect(async (s) => {
    await new Promise((r) => setTimeout(r, 20));
    finished.push(s.id);
  });
  const clients = [await Client.open(t.wsUrl()), await Client.open(t.wsUrl()), await Client.open(t.wsUrl())];
  try {
    await t.signal.until(() => t.hub.size === 3, "3 sessions");
    const ids = t.hub.sessions().map((s) => s.id).sort();
    const closing = t.hub.close(1001, "maintenance");
    assert.equal(t.hub.isClosed(), true);
    assert.equal(t.hub.close(), closing, "a second close returns the same promise");
    await closing;
    assert.deepEqual(finished.sort(), ids, "resolved after every disconnect hook finished");
    assert.equal(t.hub.size, 0);
    for (const c of clients) assert.deepEqual(await c.closed, { code: 1001, reason: "maintenance" });

    assert.throws(() => t.hub.broadcast("x"), HubClosedError);
    assert.throws(() => t.hub.broadcastOthers("x", undefined as unknown as Session), HubClosedError);
    assert.throws(() => t.hub.room("r").broadcast("x"), HubClosedError);
    assert.throws(() => t.hub.broadcastFilter("x", () => true), HubClosedError);
    const refused = await t.hub.handleRequest(new Request(t.server.url, { headers: { upgrade: "websocket" } }));
    assert.equal(refused.status, 503); // as every other path answers
    await refused.body?.cancel();
    const late = await RawPeer.upgrade(t.port);
    assert.equal(late.status, 503, "serve() answers upgrades on a closed hub with 503");
    await late.destroy();
  } finally {
    await closeAll(clients);
    await t.close();
  }
});

test("session.request and remoteAddr stay usable after the upgrade", async () => {
  const t = await startServer();
  const seen = deferred<Session>();
  t.hub.handleConnect((s) => seen.resolve(s));
  const peer = await RawPeer.upgrade(t.port, "/chat?room=lobby", { "X-Trace": "abc123" });
  try {
    const s = await seen.promise;
    const url = new URL(s.request.url);
    assert.equal(url.pathname, "/chat");
    assert.equal(url.searchParams.get("room"), "lobby");
    assert.equal(s.request.headers.get("x-trace"), "abc123");
    assert.equal(s.request.headers.get("upgrade")?.toLowerCase(), "websocket");
    assert.equal(s.remoteAddr, "127.0.0.1");
  } finally {
    await peer.destroy();
    await t.close();
  }
});

test("handleRequest answers a request that is not an upgrade with 426", async () => {
  const hub = new Hub();
  const res = await hub.handleRequest(new Request("http://127.0.0.1/ws"));
  assert.equal(res.status, 426);
  await res.body?.cancel();
  await hub.close();
});

test("options are validated", () => {
  assert.throws(() => new Hub({ maxMessageSize: 0 }), RangeError);
  assert.throws(() => new Hub({ maxBufferedAmount: -1 }), RangeError);
  assert.throws(() => new Hub({ pongWait: Infinity }), RangeError);
  assert.throws(() => new Hub({ pingInterval: "5" as unknown as number }), TypeError);
  assert.throws(() => new Hub({ onBufferFull: "block" as "drop" }), TypeError);
  assert.throws(() => new Hub({ checkOrigin: true as unknown as () => boolean }), TypeError);
  const hub = new Hub();
  assert.deepEqual(hubLimits(hub), {
    maxMessageSize: 1 << 20,
    maxBufferedAmount: 4 << 20,
    closeOnBufferFull: false,
    pingInterval: 30_000,
    pongWait: 60_000,
  });
});

test("options: an unknown name is a TypeError naming it, at every level; a hook that is not a function too", () => {
  const unknown = (options: object, name: string) =>
    assert.throws(() => new Hub(options as never), {
      name: "TypeError",
      message: new RegExp(`Unknown option "${name}"`),
    });
  unknown({ maxMesageSize: 10 }, "maxMesageSize");
  unknown({ resume: { windw: 1000 } }, "windw");
  unknown({ presence: { keys: [], intervall: 5 } }, "intervall");
  unknown({ history: { size: 5, ttl: 10, limit: 3 } }, "limit");
  const hub = new Hub();
  for (
    const name of ["handleConnect", "handleMessage", "handleDisconnect", "handleError", "handleBrokerError"] as const
  ) {
    assert.throws(() => (hub[name] as (fn: unknown) => void)("not a function"), {
      name: "TypeError",
      message: new RegExp(`${name} takes a function`),
    });
  }
  assert.throws(() => hub.handlePresence(undefined as never), TypeError);
});

test("options: a delay no timer can wait (setTimeout keeps at most 2^31 - 1 ms) is a RangeError, not a timer that fires at once", () => {
  for (
    const options of [{ resume: { window: 2 ** 31 } }, { resume: { window: Infinity } }, { pongWait: 2 ** 31 }, {
      pingInterval: 2 ** 40,
    }, { presence: { keys: [], interval: 2 ** 32 } }]
  ) {
    assert.throws(() => new Hub(options), { name: "RangeError", message: /2147483647/ }, JSON.stringify(options));
  }
  assert.doesNotThrow(() => new Hub({ resume: { window: 2 ** 31 - 1 }, pongWait: 2 ** 31 - 1 }));
});

test("hooks are replaced, not stacked (melody semantics)", async () => {
  const t = await startServer();
  const calls: string[] = [];
  t.hub.handleMessage(() => void calls.push("first"));
  t.hub.handleMessage((s, m) => {
    calls.push("second");
    s.write(m);
  });
  const c = await Client.open(t.wsUrl());
  try {
    c.send("x");
    assert.equal(await c.next(), "x");
    assert.deepEqual(calls, ["second"]);
  } finally {
    await c.close();
    await t.close();
  }
});
