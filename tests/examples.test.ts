// Each example started as a child process of the runtime running the suite (PORT=0), driven
// by real WebSocket clients: what each one promises, and that a refusal or a room stays put.
import assert from "node:assert/strict";
import { Client, closeAll, deadline, openClients, RawPeer, runtime, test } from "./_helpers.ts";
import { json, startExample, stopCleanly } from "./_examples.ts";

/** Takes messages until one satisfies `match` (others, e.g. notices, are skipped). */
async function until(c: Client, match: (m: Record<string, unknown>) => boolean, what: string) {
  return await deadline(
    (async () => {
      for (;;) {
        const m = json(await c.next(5000));
        if (match(m)) return m;
      }
    })(),
    what,
  );
}

test(`example chat (${runtime}): the page is served, a message reaches everyone, SIGTERM closes sessions with 1001`, async () => {
  const ex = await startExample("chat");
  let clients: Client[] = [];
  try {
    const res = await fetch(ex.url);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<input id="input"/);
    clients = await openClients(ex.wsUrl("/ws"), 3);
    clients[0].send("hello from 0");
    clients[2].send("héllo from 2 🎉");
    for (const c of clients) {
      const got = await c.take(2);
      assert.deepEqual(got.sort(), ["hello from 0", "héllo from 2 🎉"].sort());
    }
    const plain = await fetch(new URL("/ws", ex.url));
    assert.equal(plain.status, 426);
    await plain.body?.cancel();

    // SIGTERM while clients are connected: the hub closes each session with 1001 ("going away")
    await ex.stop();
    for (const c of clients) assert.equal((await deadline(c.closed, "close on shutdown")).code, 1001);
  } finally {
    await closeAll(clients);
    await stopCleanly(ex);
  }
});

test(`example multichat (${runtime}): rooms by URL, join/leave notices with counts, messages stay in their room`, async () => {
  const ex = await startExample("multichat");
  const clients: Client[] = [];
  const open = async (path: string) => {
    const c = await Client.open(ex.wsUrl(path));
    clients.push(c);
    return c;
  };
  try {
    const page = await fetch(new URL("/room/blue", ex.url));
    assert.equal(page.status, 200);
    await page.body?.cancel();

    const ann = await open("/room/blue/ws?name=ann");
    assert.deepEqual(json(await ann.next()), { type: "join", name: "ann", count: 1 });
    const bob = await open("/room/blue/ws?name=bob");
    assert.deepEqual(json(await ann.next()), { type: "join", name: "bob", count: 2 });
    assert.deepEqual(json(await bob.next()), { type: "join", name: "bob", count: 2 });
    const cid = await open("/room/red/ws?name=cid");
    assert.deepEqual(json(await cid.next()), { type: "join", name: "cid", count: 1 });

    ann.send("hi blue");
    assert.deepEqual(json(await ann.next()), { type: "message", name: "ann", text: "hi blue" });
    assert.deepEqual(json(await bob.next()), { type: "message", name: "ann", text: "hi blue" });
    // cid's next message is its own: nothing from blue came before it
    cid.send("hi red");
    assert.deepEqual(json(await cid.next()), { type: "message", name: "cid", text: "hi red" });
    bob.send("still blue");
    assert.deepEqual(json(await ann.next()), { type: "message", name: "bob", text: "still blue" });
    assert.deepEqual(json(await bob.next()), { type: "message", name: "bob", text: "still blue" });

    await bob.close();
    assert.deepEqual(json(await ann.next()), { type: "leave", name: "bob", count: 1 });
    assert.equal(cid.pending, 0, "red never hears of blue's comings and goings");

    const bad = await fetch(new URL("/room/no%20spaces/ws", ex.url), { headers: { upgrade: "websocket" } });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await closeAll(clients);
    await stopCleanly(ex);
  }
});

test(`example jwt-chat (${runtime}): 401 without a valid token, keys from the token, /msg reaches only its target`, async () => {
  const ex = await startExample("jwt-chat");
  const clients: Client[] = [];
  const login = async (name: string): Promise<string> => {
    const res = await fetch(new URL("/login", ex.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    assert.equal(res.status, 200);
    return (await res.json()).token;
  };
  try {
    for (const path of ["/ws", "/ws?token=", "/ws?token=not.a.jwt"]) {
      const peer = await RawPeer.upgrade(ex.port, path);
      assert.equal(peer.status, 401, path);
      await peer.destroy();
    }
    const refused = await fetch(new URL("/login", ex.url), { method: "POST", body: new URLSearchParams({ name: "" }) });
    assert.equal(refused.status, 400);
    await refused.body?.cancel();

    const [annToken, bobToken, cidToken] = await Promise.all(["ann", "bob", "cid"].map(login));
    const header = await RawPeer.upgrade(ex.port, "/ws", { Authorization: `Bearer ${annToken}` });
    assert.equal(header.status, 101, "a bearer header works too");
    await header.destroy();

    const ann = await Client.open(ex.wsUrl(`/ws?token=${annToken}`));
    clients.push(ann);
    await until(ann, (m) => m.type === "join" && m.from === "ann", "ann's own join");
    const bob = await Client.open(ex.wsUrl(`/ws?token=${bobToken}`));
    clients.push(bob);
    await until(bob, (m) => m.type === "join" && m.from === "bob", "bob's own join");
    const cid = await Client.open(ex.wsUrl(`/ws?token=${cidToken}`));
    clients.push(cid);
    await until(cid, (m) => m.type === "join" && m.from === "cid", "cid's own join");
    await until(ann, (m) => m.type === "join" && m.from === "cid", "ann sees cid join");
    await until(bob, (m) => m.type === "join" && m.from === "cid", "bob sees cid join");

    ann.send("/msg bob psst, bob");
    assert.deepEqual(json(await bob.next()), { type: "private", from: "ann", text: "psst, bob" });
    ann.send("hello all");
    for (const c of [ann, bob, cid]) {
      assert.deepEqual(json(await c.next()), { type: "message", from: "ann", text: "hello all" });
    }
    // cid's first message after the join was the public one: the private one never reached cid
    ann.send("/msg nobody hello?");
    assert.deepEqual(json(await ann.next()), { type: "error", text: "nobody is not here" });
    assert.equal(cid.pending, 0);
    assert.equal(bob.pending, 0);
  } finally {
    await closeAll(clients);
    await stopCleanly(ex);
  }
});

test(`example notify (${runtime}): subscribers get the events of their topics only`, async () => {
  const ex = await startExample("notify", { env: { NOTIFY_INTERVAL: "30" } });
  const clients: Client[] = [];
  const publish = async (topic: string, status: string) => {
    const res = await fetch(new URL(`/publish/${topic}`, ex.url), { method: "POST", body: status });
    assert.equal(res.status, 200);
    return (await res.json()).delivered as number;
  };
  try {
    const doors = await Client.open(ex.wsUrl("/ws?topics=door"));
    clients.push(doors);
    assert.deepEqual(json(await doors.next()), { type: "topics", topics: ["door"] });
    const approvals = await Client.open(ex.wsUrl("/ws?topics=approvals"));
    clients.push(approvals);
    assert.deepEqual(json(await approvals.next()), { type: "topics", topics: ["approvals"] });

    // the timer feed: many events go by, every one that reaches `doors` is a door's
    for (let i = 0; i < 5; i++) {
      const m = json(await doors.next());
      assert.equal(m.type, "event");
      assert.equal(m.topic, "door");
    }
    // a pushed event reaches the approvals subscriber, and only it
    assert.equal(await publish("approvals", "expense #7 approved"), 1);
    const ev = json(await approvals.next());
    assert.equal(ev.topic, "approvals");
    assert.equal(ev.status, "expense #7 approved");

    // subscribing at runtime: approvals picks up pump; it then sees pump events and no door ones
    approvals.send(JSON.stringify({ subscribe: "pump" }));
    assert.deepEqual(json(await approvals.next()), { type: "topics", topics: ["approvals", "pump"] });
    for (let seen = 0; seen < 3;) {
      const m = json(await approvals.next());
      assert.ok(m.topic === "pump" || m.topic === "approvals", `unexpected topic ${m.topic}`);
      if (m.topic === "pump") seen++;
    }
    approvals.send(JSON.stringify({ unsubscribe: "pump" }));
    await until(approvals, (m) => m.type === "topics", "the topics after unsubscribing");
    assert.equal(await publish("approvals", "after"), 1);
    // the unsubscribe was handled before the topics reply: from here on, approvals only
    const after = json(await approvals.next());
    assert.equal(after.topic, "approvals");
    assert.equal(after.status, "after");
  } finally {
    await closeAll(clients);
    await stopCleanly(ex);
  }
});

test(`example cursors (${runtime}): others see a cursor move, the mover does not, a leaver's cursor goes; SIGINT stops it`, async () => {
  const ex = await startExample("cursors");
  const clients: Client[] = [];
  const hello = async () => {
    const c = await Client.open(ex.wsUrl("/ws"));
    clients.push(c);
    const m = json(await c.next());
    assert.equal(m.type, "hello");
    return { c, id: m.id as string };
  };
  try {
    const a = await hello();
    const b = await hello();
    a.c.send(JSON.stringify({ x: 0.25, y: 0.5 }));
    const seen = json(await b.c.next());
    assert.deepEqual([seen.type, seen.id, seen.x, seen.y], ["move", a.id, 0.25, 0.5]);

    // a newcomer is told where the others' cursors are
    const c = await hello();
    const known = json(await c.c.next());
    assert.deepEqual([known.type, known.id, known.x, known.y], ["move", a.id, 0.25, 0.5]);

    b.c.send(JSON.stringify({ x: 0.9, y: 0.1 }));
    // a's next message is b's move: its own move never came back to it
    const toA = json(await a.c.next());
    assert.deepEqual([toA.type, toA.id], ["move", b.id]);
    const toC = json(await c.c.next());
    assert.deepEqual([toC.type, toC.id], ["move", b.id]);
    assert.equal(b.c.pending, 0);

    a.c.send("not json");
    a.c.send(JSON.stringify({ x: "left" }));
    await a.c.close();
    for (const o of [b, c]) assert.deepEqual(json(await o.c.next()), { type: "leave", id: a.id });
  } finally {
    await closeAll(clients);
    await stopCleanly(ex, "SIGINT");
  }
});
