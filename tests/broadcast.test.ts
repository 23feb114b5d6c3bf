import assert from "node:assert/strict";
import { Hub, type Session } from "../mod.ts";
import { Client, closeAll, openClients, startServer, test, type TestServer } from "./_helpers.ts";

type K = { name: string };

/** A server whose sessions are named by `?name=` and clients a, b, c, d. */
async function fourClients(): Promise<
  { t: TestServer<K>; c: Record<string, Client>; s: (name: string) => Session<K> }
> {
  const t = await startServer<K>({}, {
    onUpgrade: (req) => ({ name: new URL(req.url).searchParams.get("name") ?? "" }),
  });
  const c: Record<string, Client> = {};
  for (const name of ["a", "b", "c", "d"]) c[name] = await Client.open(t.wsUrl(`/?name=${name}`));
  await t.signal.until(() => t.hub.size === 4, "4 sessions");
  const s = (name: string) => t.hub.sessions().find((x) => x.get("name") === name)!;
  return { t, c, s };
}

/**
 * The negative check: broadcast a marker to everyone after the message under test; a client
 * that was excluded sees the marker first (messages of one connection arrive in order).
 */
async function received(t: TestServer<K>, c: Record<string, Client>, expected: string): Promise<string[]> {
  t.hub.broadcast("marker");
  const got: string[] = [];
  for (const [name, client] of Object.entries(c)) {
    const first = await client.next();
    if (first === "marker") continue;
    assert.equal(first, expected, `${name} got an unexpected message`);
    assert.equal(await client.next(), "marker");
    got.push(name);
  }
  return got.sort();
}

test("broadcast reaches every session, text and binary", async () => {
  const { t, c } = await fourClients();
  try {
    t.hub.broadcast("to all");
    t.hub.broadcast(new Uint8Array([1, 2]));
    for (const client of Object.values(c)) {
      assert.deepEqual(await client.take(2), ["to all", new Uint8Array([1, 2])]);
    }
  } finally {
    await closeAll(Object.values(c));
    await t.close();
  }
});

test("broadcastFilter reaches exactly the sessions the filter picks", async () => {
  const { t, c } = await fourClients();
  try {
    const asked: string[] = [];
    t.hub.broadcastFilter("filtered", (s) => {
      asked.push(s.get("name")!);
      return s.get("name") === "a" || s.get("name") === "c";
    });
    assert.deepEqual(asked.sort(), ["a", "b", "c", "d"]);
    assert.deepEqual(await received(t, c, "filtered"), ["a", "c"]);
  } finally {
    await closeAll(Object.values(c));
    await t.close();
  }
});

test("broadcastOthers skips the sender only", async () => {
  const { t, c, s } = await fourClients();
  try {
    t.hub.broadcastOthers("not for b", s("b"));
    assert.deepEqual(await received(t, c, "not for b"), ["a", "c", "d"]);
  } finally {
    await closeAll(Object.values(c));
    await t.close();
  }
});

test("broadcastMultiple reaches the listed sessions and skips closed ones", async () => {
  const { t, c, s } = await fourClients();
  try {
    const d = s("d");
    d.close(4000, "gone");
    assert.equal((await c.d.closed).code, 4000);
    delete c.d;
    t.hub.broadcastMultiple("some", [s("a"), s("b"), d]);
    assert.deepEqual(await received(t, c, "some"), ["a", "b"]);
    t.hub.broadcastMultiple("none", []);
    assert.deepEqual(await received(t, c, "none"), []);
  } finally {
    await closeAll(Object.values(c));
    await t.close();
  }
});

test("rooms: join, leave, size, sessions, broadcast and broadcastOthers stay inside the room", async () => {
  const { t, c, s } = await fourClients();
  try {
    const red = t.hub.room("red");
    assert.equal(red.name, "red");
    assert.equal(red.size, 0);
    assert.deepEqual(red.sessions(), []);
    s("a").join("red");
    s("b").join("red");
    s("b").join("red"); // joining twice changes nothing
    s("c").join("blue");
    assert.equal(red.size, 2);
    assert.deepEqual(red.sessions().map((x) => x.get("name")).sort(), ["a", "b"]);
    assert.deepEqual([...s("a").rooms], ["red"]);

    red.broadcast("red only");
    assert.deepEqual(await received(t, c, "red only"), ["a", "b"]);
    red.broadcastOthers("red but a", s("a"));
    assert.deepEqual(await received(t, c, "red but a"), ["b"]);
    t.hub.room("blue").broadcast(new Uint8Array([7]));
    assert.deepEqual(await c.c.next(), new Uint8Array([7]));
    assert.deepEqual(await received(t, c, "unused"), []);

    s("b").leave("red");
    s("b").leave("red"); // leaving twice changes nothing
    s("b").leave("never-joined");
    assert.equal(red.size, 1);
    assert.deepEqual([...s("b").rooms], []);
    red.broadcast("after leave");
    assert.deepEqual(await received(t, c, "after leave"), ["a"]);

    // a session that goes away leaves its rooms; `rooms` still names them (for the disconnect hook)
    const a = s("a");
    await c.a.close();
    await t.signal.until(() => a.isClosed(), "a gone");
    delete c.a;
    assert.equal(red.size, 0);
    assert.deepEqual(red.sessions(), []);
    assert.deepEqual([...a.rooms], ["red"]);
    assert.throws(() => a.join("red"), { name: "SessionClosedError" });
    assert.throws(() => s("c").join(""), TypeError);
    assert.throws(() => t.hub.room(""), TypeError);
  } finally {
    await closeAll(Object.values(c));
    await t.close();
  }
});

test("200 clients at once: every broadcast reaches every session", async () => {
  const t = await startServer();
  let clients: Client[] = [];
  try {
    clients = await openClients(t.wsUrl(), 200);
    await t.signal.until(() => t.hub.size === 200, "200 sessions");
    for (let i = 0; i < 5; i++) t.hub.broadcast(`round ${i}`);
    const expected = [0, 1, 2, 3, 4].map((i) => `round ${i}`);
    const got = await Promise.all(clients.map((c) => c.take(5)));
    for (const messages of got) assert.deepEqual(messages, expected);
    assert.ok(clients.every((c) => c.pending === 0), "no extra messages");
  } finally {
    await closeAll(clients);
    await t.close();
  }
});

test("broadcasts validate their message", async () => {
  const t = await startServer();
  try {
    assert.throws(() => t.hub.broadcast({} as unknown as string), TypeError);
    assert.throws(() => t.hub.broadcastFilter("x", "no" as unknown as () => boolean), TypeError);
  } finally {
    await t.close();
  }
});

test("room history in this process: the last `size` messages of each room, oldest first, with offsets; ttl", async () => {
  const hub = new Hub({ history: { size: 3 } });
  const none = new Hub();
  try {
    for (let i = 1; i <= 5; i++) hub.room("a").broadcast(`a${i}`);
    hub.room("b").broadcast(new Uint8Array([7]));
    hub.broadcast("not in a room");
    assert.deepEqual(await hub.room("a").history(), [
      { offset: 3, message: "a3" },
      { offset: 4, message: "a4" },
      { offset: 5, message: "a5" },
    ]);
    assert.deepEqual(await hub.room("a").history(2), [{ offset: 4, message: "a4" }, { offset: 5, message: "a5" }]);
    assert.deepEqual(await hub.room("a").history(0), []);
    assert.deepEqual(await hub.room("b").history(), [{ offset: 1, message: new Uint8Array([7]) }]);
    assert.deepEqual(await hub.room("c").history(), []);
    await assert.rejects(hub.room("a").history(-1), RangeError);
    assert.deepEqual(await none.room("a").history(), [], "history off: empty");
    assert.throws(() => new Hub({ history: { size: 0 } }), RangeError);
    assert.throws(() => new Hub({ history: { size: 2.5 } }), RangeError);
    const old = new Hub({ history: { size: 10, ttl: 1 } });
    old.room("a").broadcast("soon old");
    await new Promise((r) => setTimeout(r, 5)); // a message 1 ms old is past its ttl: time must pass
    assert.deepEqual(await old.room("a").history(), []);
    await old.close();
  } finally {
    await hub.close();
    await none.close();
  }
});
