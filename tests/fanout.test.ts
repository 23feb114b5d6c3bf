// Broadcast forms on both runtimes: on Bun they go through native pub/sub (asserted through an
// internal counter), on Deno through the JavaScript loop; the recipients must be the same.

import assert from "node:assert/strict";
import { Hub, MessageBufferFullError } from "../mod.ts";
import { serve } from "../src/serve.ts";
import { hubCore } from "../src/hub.ts";
import { Client, closeAll, RawPeer, Signal, startServer, test } from "./_helpers.ts";
import { nameSessions, nativePublishes, nativeRuntime, openNamed, sessionNamed, until } from "./_fanout.ts";

test("every broadcast form reaches exactly the right sessions", async () => {
  const t = await startServer();
  nameSessions(t);
  const names = ["a", "b", "c", "d"];
  const clients = await openNamed(t, names);
  try {
    const [a, b, c, d] = names.map((n) => sessionNamed(t.hub, n)!);
    a.join("r1");
    b.join("r1");
    c.join("r2");
    d.join("all"); // a room named like the hub-wide topic's suffix
    const before = nativePublishes(t.hub);
    t.hub.broadcast("everyone");
    t.hub.broadcastOthers("not a", a);
    t.hub.room("r1").broadcast("r1");
    t.hub.room("r1").broadcastOthers("r1 not a", a);
    t.hub.room("r2").broadcast(new Uint8Array([2, 2]));
    t.hub.room("all").broadcast("room all");
    t.hub.room("nobody").broadcast("lost");
    t.hub.broadcastFilter("b or d", (s) => s === b || s === d);
    t.hub.broadcastMultiple("c and d", [c, d]);
    t.hub.broadcast(new Uint8Array([1]).buffer);
    t.hub.broadcast("end");
    const got = await Promise.all(names.map((n) => until(clients.get(n)!, "end")));
    assert.deepEqual(got, [
      ["everyone", "r1", [1]],
      ["everyone", "not a", "r1", "r1 not a", "b or d", [1]],
      ["everyone", "not a", [2, 2], "c and d", [1]],
      ["everyone", "not a", "room all", "b or d", "c and d", [1]],
    ]);
    // native: everyone, not a, r1, r1 not a, r2, room all, [1], end (the empty room publishes nothing)
    assert.equal(nativePublishes(t.hub) - before, nativeRuntime ? 8 : 0);
    assert.deepEqual(t.errors, []);
  } finally {
    await closeAll([...clients.values()]);
    await t.close();
  }
});

test("a sent-message hook sends that kind of broadcast through the loop, and sees every recipient", async () => {
  const t = await startServer();
  nameSessions(t);
  const clients = await openNamed(t, ["a", "b", "c"]);
  const sentText: string[] = [];
  try {
    t.hub.handleSentMessage((s, m) => void sentText.push(`${s.get("name")}:${m}`));
    const a = sessionNamed(t.hub, "a")!;
    a.join("r");
    sessionNamed(t.hub, "b")!.join("r");
    const before = nativePublishes(t.hub);
    t.hub.broadcast("hi");
    t.hub.broadcastOthers("others", a);
    t.hub.room("r").broadcastOthers("room", a);
    assert.equal(nativePublishes(t.hub), before, "text broadcasts loop while a text hook is set");
    t.hub.broadcast(new Uint8Array([7])); // no binary hook: native where there is one
    assert.equal(nativePublishes(t.hub) - before, nativeRuntime ? 1 : 0);
    t.hub.broadcast("end");
    const got = await Promise.all(["a", "b", "c"].map((n) => until(clients.get(n)!, "end")));
    assert.deepEqual(got, [["hi", [7]], ["hi", "others", "room", [7]], ["hi", "others", [7]]]);
    assert.deepEqual(sentText.filter((x) => !x.endsWith(":end")).sort(), [
      "a:hi",
      "b:hi",
      "b:others",
      "b:room",
      "c:hi",
      "c:others",
    ]);
  } finally {
    await closeAll([...clients.values()]);
    await t.close();
  }
});

test("leaving a room and closing a session stop native deliveries to it", async () => {
  const t = await startServer();
  nameSessions(t);
  const clients = await openNamed(t, ["a", "b", "c"]);
  try {
    const [a, b, c] = ["a", "b", "c"].map((n) => sessionNamed(t.hub, n)!);
    for (const s of [a, b, c]) s.join("r");
    a.leave("r");
    t.hub.room("r").broadcast("after a left");
    c.close(4000, "bye");
    assert.equal((await clients.get("c")!.closed).code, 4000);
    t.hub.room("r").broadcast("after c closed");
    t.hub.broadcastOthers("others", c); // c is gone: everyone left gets it
    t.hub.broadcast("end");
    assert.deepEqual(await until(clients.get("a")!, "end"), ["others"]);
    assert.deepEqual(await until(clients.get("b")!, "end"), ["after a left", "after c closed", "others"]);
    assert.equal(t.hub.room("r").size, 1);
    assert.deepEqual(t.errors, []);
  } finally {
    await closeAll([...clients.values()]);
    await t.close();
  }
});

test("writes and broadcasts to one session keep their order", async () => {
  const t = await startServer();
  t.hub.handleMessage((s) => {
    s.join("r");
    s.write("1");
    t.hub.broadcast("2");
    s.write("3");
    t.hub.room("r").broadcast("4");
    s.write("5");
  });
  const c = await Client.open(t.wsUrl());
  try {
    c.send("go");
    assert.deepEqual(await c.take(5), ["1", "2", "3", "4", "5"]);
  } finally {
    await c.close();
    await t.close();
  }
});

for (const onBufferFull of ["drop", "close"] as const) {
  test(`a never-reading client stays bounded under broadcast (onBufferFull: "${onBufferFull}")`, async () => {
    const limit = 1 << 20;
    const t = await startServer({ maxBufferedAmount: limit, onBufferFull, maxMessageSize: 1 << 20 });
    nameSessions(t);
    const reader = await Client.open(t.wsUrl("/?name=reader"));
    const slow = await RawPeer.upgrade(t.port, "/?name=slow");
    slow.pause();
    try {
      await t.signal.until(() => !!sessionNamed(t.hub, "slow") && !!sessionNamed(t.hub, "reader"), "both sessions");
      const session = sessionNamed(t.hub, "slow")!;
      const before = nativePublishes(t.hub);
      const chunk = "x".repeat(64 * 1024);
      let sent = 0;
      let maxQueued = 0;
      const refused = () => t.errors.some((e) => e instanceof MessageBufferFullError);
      // Broadcast in batches (each within the limit) that the reading client takes in full,
      // until the slow one is refused: the kernel's socket buffers take some megabytes first.
      // At most 128 MiB in all.
      while (!refused() && sent < 2048) {
        for (let i = 0; i < 8; i++) {
          t.hub.broadcast(chunk);
          maxQueued = Math.max(maxQueued, session.isClosed() ? 0 : session.bufferedAmount);
        }
        sent += 8;
        const got = await reader.take(8);
        assert.ok(got.every((m) => m === chunk), "the reading client gets every message");
      }
      assert.ok(refused(), "the slow session's writes were refused");
      assert.ok(t.errors.every((e) => e instanceof MessageBufferFullError), String(t.errors));
      assert.ok(maxQueued <= limit + chunk.length + 64, `queue bounded: ${maxQueued} bytes`);
      assert.equal(nativePublishes(t.hub) - before, nativeRuntime ? sent : 0);
      if (onBufferFull === "close") {
        await t.signal.until(() => session.isClosed() && t.hub.size === 1, "the slow session closed");
        t.hub.broadcast("still here");
        assert.equal(await reader.next(), "still here");
      } else {
        assert.equal(session.isClosed(), false);
        assert.equal(t.hub.size, 2);
      }
    } finally {
      await slow.destroy();
      await reader.close();
      await t.close();
    }
  });
}

test("nativeFanout: false keeps every broadcast in the loop", async () => {
  const t = await startServer({}, { nativeFanout: false });
  nameSessions(t);
  const clients = await openNamed(t, ["a", "b"]);
  try {
    const a = sessionNamed(t.hub, "a")!;
    a.join("r");
    t.hub.broadcast("all");
    t.hub.broadcastOthers("others", a);
    t.hub.room("r").broadcast("room");
    t.hub.broadcast("end");
    assert.deepEqual(await until(clients.get("a")!, "end"), ["all", "room"]);
    assert.deepEqual(await until(clients.get("b")!, "end"), ["all", "others"]);
    assert.equal(nativePublishes(t.hub), 0);
  } finally {
    await closeAll([...clients.values()]);
    await t.close();
  }
});

interface BunServe {
  serve(options: unknown): { port: number; stop(force?: boolean): Promise<void> | void };
}

test("bunAdapter installs Bun's publish at the first upgrade", async () => {
  const bun = (globalThis as { Bun?: BunServe }).Bun!;
  const { Hub } = await import("../mod.ts");
  const { bunAdapter } = await import("../src/adapters/bun.ts");
  const hub = new Hub();
  const chorus = bunAdapter(hub);
  const server = bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: (req: Request, s: Parameters<typeof chorus.upgrade>[1]) => chorus.upgrade(req, s),
    websocket: chorus.websocket,
  });
  const clients = await Promise.all([0, 1].map(() => Client.open(`ws://127.0.0.1:${server.port}/`)));
  try {
    hub.broadcast("hello");
    assert.deepEqual(await Promise.all(clients.map((c) => c.next())), ["hello", "hello"]);
    assert.equal(nativePublishes(hub), 1);
  } finally {
    await closeAll(clients);
    await hub.close();
    await server.stop(true);
  }
}, { skip: nativeRuntime ? false : "Bun only" });

test("a hub served by two servers reaches the sessions of both (on Bun: one native publish per server)", async () => {
  const hub = new Hub<{ name: string }>();
  const names = new Signal();
  hub.handleConnect((s) => {
    s.set("name", new URL(s.request.url).searchParams.get("name") ?? "");
    s.join("room");
    names.ping();
  });
  const servers = [
    await serve(hub, { port: 0, hostname: "127.0.0.1" }),
    await serve(hub, { port: 0, hostname: "127.0.0.1" }),
  ];
  const clients = new Map<string, Client>();
  try {
    for (const [i, name] of ["a1", "a2", "b1", "b2"].entries()) {
      clients.set(name, await Client.open(`ws://127.0.0.1:${servers[i >> 1].port}/?name=${name}`));
    }
    await names.until(() => hub.size === 4, "4 sessions");
    const a1 = hub.sessions().find((s) => s.get("name") === "a1")!;
    const before = nativePublishes(hub);
    hub.broadcast("all");
    hub.room("room").broadcast("room");
    hub.broadcastOthers("others", a1);
    hub.room("room").broadcastOthers("room-others", a1);
    for (const [name, c] of clients) {
      const want = name === "a1" ? ["all", "room"] : ["all", "room", "others", "room-others"];
      hub.broadcastMultiple("end", [hub.sessions().find((s) => s.get("name") === name)!]);
      assert.deepEqual(await until(c, "end"), want, name);
    }
    assert.equal(nativePublishes(hub) - before, nativeRuntime ? 4 : 0);
  } finally {
    await closeAll([...clients.values()]);
    for (const server of servers) await server.shutdown();
  }
});

test("native topics are named after the hub's random node id, not a module-level counter", async () => {
  // Two copies of the module in one process (two bundles, two versions) each counted from 1,
  // so their first hubs shared topics. A node id is 64 random bits.
  const hubs = [new Hub(), new Hub()];
  try {
    const topics = hubs.map((hub) => hubCore(hub).fanout.allTopic);
    assert.deepEqual(topics, hubs.map((hub) => `chorus.${hub.node}.all`));
    assert.notEqual(topics[0], topics[1]);
    assert.equal(hubCore(hubs[0]).fanout.roomPrefix, `chorus.${hubs[0].node}.room.`);
  } finally {
    await Promise.all(hubs.map((h) => h.close()));
  }
});
