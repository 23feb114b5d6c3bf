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

/** A message without its `time`, which must be an ISO timestamp of the last minute. */
function untimed(m: Record<string, unknown>): Record<string, unknown> {
  const { time, ...rest } = m;
  assert.equal(typeof time, "string", `no time in ${JSON.stringify(m)}`);
  assert.ok(Math.abs(Date.now() - Date.parse(time as string)) < 60_000, `time ${time}`);
  return rest;
}

/** A chat message without its `time` and `id` (a string each: the page shows each id once). */
function said(m: Record<string, unknown>): Record<string, unknown> {
  const { id, ...rest } = untimed(m);
  assert.equal(typeof id, "string", `no id in ${JSON.stringify(m)}`);
  return rest;
}

test(`example chat (${runtime}): the page is served, a message reaches everyone, SIGTERM closes sessions with 1001`, async () => {
  const ex = await startExample("chat");
  let clients: Client[] = [];
  try {
    const res = await fetch(ex.url);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<input id="input"/);
    const js = await fetch(new URL("/chorus-client.js", ex.url));
    assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
    assert.match(await js.text(), /export function connect/);
    clients = await openClients(ex.wsUrl("/ws"), 2);
    const ann = await Client.open(ex.wsUrl("/ws?name=ann"));
    clients.push(ann);
    // each session is told its name first: a guest name, or the one asked for
    const names: string[] = [];
    for (const c of clients) {
      const hello = json(await c.next());
      assert.equal(hello.type, "hello");
      names.push(String(hello.name));
    }
    assert.match(names[0], /^guest-\d+$/);
    assert.notEqual(names[0], names[1]);
    assert.equal(names[2], "ann");
    clients[0].send("hello from 0");
    await until(ann, (m) => m.text === "hello from 0", "the first message at ann");
    ann.send("héllo from ann 🎉");
    for (const c of clients) {
      const got = (await c.take(c === ann ? 1 : 2)).map((m) => untimed(json(m)));
      const mine = { type: "message", name: "ann", text: "héllo from ann 🎉" };
      assert.deepEqual(got, c === ann ? [mine] : [{ type: "message", name: names[0], text: "hello from 0" }, mine]);
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

test(`example multichat (${runtime}): rooms by URL, join/leave notices with counts, messages stay in their room, a newcomer gets the last 20 messages first`, async () => {
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

    const next = async (c: Client) => untimed(json(await c.next()));
    const message = async (c: Client) => said(json(await c.next()));
    const history = async (c: Client) => {
      const m = json(await c.next());
      assert.equal(m.type, "history", JSON.stringify(m));
      return (m.messages as Record<string, unknown>[]).map(said);
    };
    const ann = await open("/room/blue/ws?name=ann");
    assert.deepEqual(json(await ann.next()), { type: "hello", name: "ann" });
    assert.deepEqual(await history(ann), [], "nothing said in blue yet");
    assert.deepEqual(await next(ann), { type: "join", name: "ann", count: 1, members: ["ann"] });
    const bob = await open("/room/blue/ws?name=bob");
    assert.deepEqual(await next(ann), { type: "join", name: "bob", count: 2, members: ["ann", "bob"] });
    assert.deepEqual(json(await bob.next()), { type: "hello", name: "bob" });
    assert.deepEqual(await history(bob), [], "ann's join notice is no chat message");
    assert.deepEqual(await next(bob), { type: "join", name: "bob", count: 2, members: ["ann", "bob"] });
    const cid = await open("/room/red/ws");
    const guest = json(await cid.next()).name as string;
    assert.match(guest, /^guest-\d+$/);
    assert.deepEqual(await history(cid), []);
    assert.deepEqual(await next(cid), { type: "join", name: guest, count: 1, members: [guest] });

    ann.send("hi blue");
    assert.deepEqual(await message(ann), { type: "message", name: "ann", text: "hi blue" });
    assert.deepEqual(await message(bob), { type: "message", name: "ann", text: "hi blue" });
    // cid's next message is its own: nothing from blue came before it
    cid.send("hi red");
    assert.deepEqual(await message(cid), { type: "message", name: guest, text: "hi red" });
    bob.send("still blue");
    assert.deepEqual(await message(ann), { type: "message", name: "bob", text: "still blue" });
    assert.deepEqual(await message(bob), { type: "message", name: "bob", text: "still blue" });

    // 21 chat messages in blue now: a newcomer gets the last 20 first, oldest first, without the
    // join notices between them, then its own join notice
    const more = Array.from({ length: 19 }, (_, i) => `m${i + 1}`);
    for (const text of more) ann.send(text);
    for (const c of [ann, bob]) {
      for (const text of more) assert.deepEqual(await message(c), { type: "message", name: "ann", text });
    }
    const dan = await open("/room/blue/ws?name=dan");
    assert.deepEqual(json(await dan.next()), { type: "hello", name: "dan" });
    assert.deepEqual(await history(dan), [
      { type: "message", name: "bob", text: "still blue" },
      ...more.map((text) => ({ type: "message", name: "ann", text })),
    ]);
    assert.deepEqual(await next(dan), { type: "join", name: "dan", count: 3, members: ["ann", "bob", "dan"] });
    assert.deepEqual(await next(ann), { type: "join", name: "dan", count: 3, members: ["ann", "bob", "dan"] });
    const newcomer = await open("/room/red/ws?name=eve");
    assert.deepEqual(json(await newcomer.next()), { type: "hello", name: "eve" });
    assert.deepEqual(await history(newcomer), [{ type: "message", name: guest, text: "hi red" }], "red's own");
    assert.deepEqual(await next(cid), { type: "join", name: "eve", count: 2, members: [guest, "eve"].sort() });

    await bob.close();
    assert.deepEqual(await next(ann), { type: "leave", name: "bob", count: 2, members: ["ann", "dan"] });
    assert.deepEqual(await next(dan), { type: "leave", name: "bob", count: 2, members: ["ann", "dan"] });
    assert.equal(cid.pending, 0, "red never hears of blue's comings and goings");

    const bad = await fetch(new URL("/room/no%20spaces/ws", ex.url), { headers: { upgrade: "websocket" } });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  } finally {
    await closeAll(clients);
    await stopCleanly(ex);
  }
});

test(`example jwt-chat (${runtime}): 401 without a valid token, keys from the token, /msg reaches only its target, logout revokes`, async () => {
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
    await until(ann, (m) => m.type === "join" && m.name === "ann", "ann's own join");
    const bob = await Client.open(ex.wsUrl(`/ws?token=${bobToken}`));
    clients.push(bob);
    await until(bob, (m) => m.type === "join" && m.name === "bob", "bob's own join");
    const cid = await Client.open(ex.wsUrl(`/ws?token=${cidToken}`));
    clients.push(cid);
    await until(cid, (m) => m.type === "join" && m.name === "cid", "cid's own join");
    await until(ann, (m) => m.type === "join" && m.name === "cid", "ann sees cid join");
    await until(bob, (m) => m.type === "join" && m.name === "cid", "bob sees cid join");

    ann.send("/msg bob psst, bob");
    // the target and the sender get it (the sender's copy confirms it was delivered)
    for (const c of [bob, ann]) {
      assert.deepEqual(untimed(json(await c.next())), { type: "private", name: "ann", to: "bob", text: "psst, bob" });
    }
    ann.send("hello all");
    for (const c of [ann, bob, cid]) {
      assert.deepEqual(untimed(json(await c.next())), { type: "message", name: "ann", text: "hello all" });
    }
    // cid's first message after the join was the public one: the private one never reached cid
    ann.send("/msg nobody hello?");
    assert.deepEqual(json(await ann.next()), { type: "error", text: "nobody is not here" });
    assert.equal(cid.pending, 0);
    assert.equal(bob.pending, 0);

    // logout revokes the token: its session is closed with 4001, and the token is refused from then on
    const out = await fetch(new URL("/logout", ex.url), {
      method: "POST",
      headers: { authorization: `Bearer ${annToken}` },
    });
    assert.equal(out.status, 204);
    assert.equal((await deadline(ann.closed, "ann's close on logout")).code, 4001);
    await until(bob, (m) => m.type === "leave" && m.name === "ann", "bob sees ann leave");
    const again = await RawPeer.upgrade(ex.port, `/ws?token=${annToken}`);
    assert.equal(again.status, 401, "a revoked token is refused");
    await again.destroy();
    const twice = await fetch(new URL("/logout", ex.url), {
      method: "POST",
      headers: { authorization: `Bearer ${annToken}` },
    });
    assert.equal(twice.status, 401);
    await twice.body?.cancel();
    assert.deepEqual(untimed(json(await cid.next())), { type: "leave", name: "ann" }, "the others stay");
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
