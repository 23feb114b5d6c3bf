// The hub's side of resumable sessions, at the frame level (chorus.v1), with connections cut by
// a TCP proxy as a network cuts them. chorus-ws/client's side is in client tests.

import assert from "node:assert/strict";
import type { Session } from "../mod.ts";
import { Client, deferred, startServer, test, type TestServer } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { V1Peer } from "./_v1.ts";

type Keys = { name: string };

/** A resuming hub behind a proxy; sessions named by `?name=`. */
async function resumingHub(resume = {}): Promise<{ t: TestServer<Keys>; proxy: Proxy; url: (name: string) => string }> {
  const t = await startServer<Keys>({ resume, pingInterval: 0 });
  t.hub.handleConnect((s) => {
    s.set("name", new URL(s.request.url).searchParams.get("name") ?? "");
    t.signal.ping();
  });
  t.hub.handleClose(() => t.signal.ping());
  const proxy = await Proxy.start(t.port);
  return { t, proxy, url: (name) => `ws://127.0.0.1:${proxy.port}/?name=${name}` };
}

function named(t: TestServer<Keys>, name: string): Session<Keys> | undefined {
  return t.hub.sessions().find((s) => s.get("name") === name);
}

test("resume: a chorus.v1 client gets a welcome and numbered messages; a plain one on the same hub gets plain payloads", async () => {
  const { t, proxy, url } = await resumingHub();
  const { peer, welcome } = await V1Peer.open(url("a"));
  const plain = await Client.open(url("b"));
  try {
    assert.equal(welcome.resumed, false);
    assert.match(welcome.token, /^[A-Za-z0-9_-]{22}$/, "128 random bits");
    assert.equal(welcome.recv, 0);
    await t.signal.until(() => t.hub.size === 2, "2 sessions");
    assert.notEqual(welcome.token, named(t, "a")!.id, "the credential is not the session id");
    t.hub.broadcast("hello");
    t.hub.broadcast(new Uint8Array([1, 2]));
    named(t, "a")!.write("direct");
    await peer.until(() => peer.got.length === 3, "3 messages");
    assert.deepEqual(peer.texts, ["hello", [1, 2], "direct"]);
    assert.deepEqual(peer.got.map((m) => `${m.key}${m.n}`), ["h1", "h2", "s1"], "offsets per stream");
    assert.deepEqual(await plain.take(2), ["hello", new Uint8Array([1, 2])]);
    assert.equal(named(t, "a")!.connected, true);
  } finally {
    await peer.close();
    await plain.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: cut, then resume: the same Session with its keys and rooms; what it missed (in flight too) arrives once, in order", async () => {
  const { t, proxy, url } = await resumingHub();
  const events: string[] = [];
  t.hub.handleResume((s) => {
    events.push(`resume ${s.get("name")}`);
    t.signal.ping();
  });
  t.hub.handleClose((s, code) => {
    events.push(`close ${s.get("name")} ${code}`);
    t.signal.ping();
  });
  const { peer, welcome } = await V1Peer.open(url("a"));
  let again: V1Peer | undefined;
  try {
    await t.signal.until(() => t.hub.size === 1, "a session");
    const s = named(t, "a")!;
    s.join("room");
    s.set("name", "a");
    t.hub.broadcast("1");
    t.hub.broadcast("2");
    await peer.until(() => peer.got.length === 2, "2 messages");
    peer.ack(1); // "2" is in flight: received, not acknowledged
    proxy.cut();
    await t.signal.until(() => !s.connected, "detached");
    assert.equal(t.hub.size, 1, "a detached session stays in the hub");
    assert.deepEqual(events, ["close a 1006"]);
    t.hub.broadcast("3");
    t.hub.room("room").broadcast("4");
    s.write("5");
    t.hub.room("other").broadcast("not for a");
    const resumed = await V1Peer.resume(url("a"), welcome.token, peer.position(1)); // as if "2" was lost
    again = resumed.peer;
    assert.equal(resumed.welcome.resumed, true);
    assert.notEqual(resumed.welcome.token, welcome.token, "a new credential each time");
    await again.until(() => again!.got.length === 4, "the missed messages");
    t.hub.broadcast("6");
    await again.until(() => again!.got.length === 5, "a new message");
    assert.deepEqual(again.texts, ["2", "3", "4", "5", "6"]);
    assert.equal(t.hub.get(s.id), s, "the same Session object");
    assert.equal(s.connected, true);
    assert.deepEqual([...s.rooms], ["room"]);
    assert.deepEqual(events, ["close a 1006", "resume a"]);
    assert.deepEqual(t.disconnects, []);
  } finally {
    await again?.close();
    await peer.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: the client's messages reach the handler once, in order, across a resume; the hub acknowledges them", async () => {
  const { t, proxy, url } = await resumingHub();
  const got: string[] = [];
  t.hub.handleMessage((_s, m) => {
    got.push(m);
    t.signal.ping();
  });
  const { peer, welcome } = await V1Peer.open(url("a"));
  let again: V1Peer | undefined;
  try {
    for (let i = 1; i <= 40; i++) peer.send(`m${i}`);
    await t.signal.until(() => got.length === 40, "40 messages");
    await peer.until(() => peer.acks.includes(32), "an ack after 32 messages");
    await peer.until(() => peer.acks.includes(40), "an ack soon after the rest");
    proxy.cut();
    await t.signal.until(() => !named(t, "a")!.connected, "detached");
    const resumed = await V1Peer.resume(url("a"), welcome.token, {});
    again = resumed.peer;
    assert.equal(resumed.welcome.recv, 40, "the hub says what it has");
    // a client sends again what it is not sure of: the hub drops what it had
    for (let i = 38; i <= 42; i++) again.send(`m${i}`, i);
    await t.signal.until(() => got.length === 42, "42 messages");
    assert.deepEqual(got, Array.from({ length: 42 }, (_, i) => `m${i + 1}`));
    // a gap is a protocol error
    again.send("m44", 44);
    assert.equal((await again.closed).code, 1002);
  } finally {
    await again?.close();
    await peer.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: the window passes: the session ends once and its credential gets a fresh session", async () => {
  const { t, proxy, url } = await resumingHub({ window: 300 });
  const { peer, welcome } = await V1Peer.open(url("a"));
  let fresh: V1Peer | undefined;
  try {
    await t.signal.until(() => t.hub.size === 1, "a session");
    const s = named(t, "a")!;
    proxy.cut();
    await t.signal.until(() => t.disconnects.length === 1, "the session ends", 5000);
    assert.deepEqual(t.disconnects, [s.id]);
    assert.equal(s.isClosed(), true);
    assert.equal(t.hub.size, 0);
    const again = await V1Peer.resume(url("a"), welcome.token, {});
    fresh = again.peer;
    assert.equal(again.welcome.resumed, false, "a new session: the app reloads its state");
    await t.signal.until(() => t.hub.size === 1, "the new session");
    assert.notEqual(t.hub.sessions()[0], s);
  } finally {
    await fresh?.close();
    await peer.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: more than maxMessages kept while away ends the session", async () => {
  const { t, proxy, url } = await resumingHub({ maxMessages: 5 });
  const { peer } = await V1Peer.open(url("a"));
  try {
    await t.signal.until(() => t.hub.size === 1, "a session");
    const s = named(t, "a")!;
    proxy.cut();
    await t.signal.until(() => !s.connected, "detached");
    for (let i = 0; i < 5; i++) t.hub.broadcast(`${i}`);
    assert.equal(s.isClosed(), false, "5 are kept");
    t.hub.broadcast("one too many");
    assert.equal(s.isClosed(), true);
    assert.deepEqual(t.disconnects, [s.id]);
    assert.match(t.errors.at(-1)?.message ?? "", /resume\.maxMessages/);
  } finally {
    await peer.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: a clean close by the client, or s.close(), ends the session at once", async () => {
  const { t, proxy, url } = await resumingHub();
  const a = await V1Peer.open(url("a"));
  const b = await V1Peer.open(url("b"));
  try {
    await t.signal.until(() => t.hub.size === 2, "2 sessions");
    const sa = named(t, "a")!;
    const sb = named(t, "b")!;
    await a.peer.close(1000);
    await t.signal.until(() => sa.isClosed(), "a ended");
    sb.close(4001, "bye");
    assert.equal((await b.peer.closed).code, 4001);
    assert.deepEqual(t.disconnects.sort(), [sa.id, sb.id].sort());
    assert.equal(t.hub.size, 0);
  } finally {
    await proxy.close();
    await t.close();
  }
});

test("resume: a forged credential, or one used and confirmed, gets a fresh session, never someone else's", async () => {
  const { t, proxy, url } = await resumingHub();
  const first = await V1Peer.open(url("a"));
  const peers: V1Peer[] = [first.peer];
  try {
    await t.signal.until(() => t.hub.size === 1, "a session");
    const s = named(t, "a")!;
    const forged = await V1Peer.resume(url("x"), "A".repeat(22), {});
    peers.push(forged.peer);
    assert.equal(forged.welcome.resumed, false);
    proxy.cut();
    await t.signal.until(() => !s.connected, "detached");
    const resumed = await V1Peer.resume(url("a"), first.welcome.token, {});
    peers.push(resumed.peer);
    assert.equal(resumed.welcome.resumed, true);
    resumed.peer.ack(); // the client speaks: it has the new credential
    await t.signal.until(() => t.hub.size === 2, "x and a");
    resumed.peer.send("confirm");
    const replayed = await V1Peer.resume(url("y"), first.welcome.token, {});
    peers.push(replayed.peer);
    assert.equal(replayed.welcome.resumed, false, "a used credential does not resume");
    await t.signal.until(() => t.hub.size === 3, "x, a and y");
    assert.equal(s.connected, true, "the session stays with its client");
  } finally {
    for (const p of peers) await p.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: a reconnect the app refuses (onUpgrade answers 401) never resumes", async () => {
  let allow = true;
  const t = await startServer<Keys>({ resume: { window: 400 }, pingInterval: 0 }, {
    onUpgrade: () => allow ? { name: "a" } : new Response("Unauthorized", { status: 401 }),
  });
  t.hub.handleClose(() => t.signal.ping());
  const proxy = await Proxy.start(t.port);
  const url = `ws://127.0.0.1:${proxy.port}/`;
  const { peer, welcome } = await V1Peer.open(url);
  try {
    await t.signal.until(() => t.hub.size === 1, "a session");
    const s = t.hub.sessions()[0];
    proxy.cut();
    await t.signal.until(() => !s.connected, "detached");
    allow = false;
    const refused = new V1Peer(url, { t: "resume", token: welcome.token, pos: {} });
    const closed = await refused.closed;
    assert.notEqual(closed.code, 1000, `the upgrade was refused (${closed.code})`);
    assert.equal(s.connected, false);
    await t.signal.until(() => s.isClosed(), "the window passes", 5000);
    assert.deepEqual(t.disconnects, [s.id]);
  } finally {
    await peer.close();
    await proxy.close();
    await t.close();
  }
});

test("resume: a hub without resume speaks chorus.v1 without keeping anything (empty credential, plain frames)", async () => {
  const t = await startServer();
  const seen = deferred<Session>();
  t.hub.handleConnect((s) => seen.resolve(s));
  t.hub.handleMessage((s, m) => s.write(`echo ${m}`));
  const ws = new WebSocket(`ws://127.0.0.1:${t.port}/`, ["chorus.v1"]);
  const frames: string[] = [];
  const echoed = deferred();
  ws.onmessage = (e) => {
    frames.push(e.data as string);
    if (frames.length === 1) ws.send('{"t":"new"}');
    if (frames.length === 2) ws.send("hi");
    if (frames.length === 3) echoed.resolve();
  };
  try {
    await echoed.promise;
    assert.equal(ws.protocol, "chorus.v1");
    assert.deepEqual(frames.map((f) => f.startsWith("{") ? JSON.parse(f).t : f), ["hello", "welcome", "echo hi"]);
    assert.equal(JSON.parse(frames[1]).token, "");
    ws.close();
    await t.signal.until(() => t.disconnects.length === 1, "a plain session ends");
  } finally {
    await t.close();
  }
});

test("resume: a plain WebSocket on a resuming hub is never detached: its session ends when its connection is cut", async () => {
  const { t, proxy, url } = await resumingHub();
  const plain = new Client(url("p"));
  try {
    await plain.opened;
    await t.signal.until(() => t.hub.size === 1, "a session");
    const s = named(t, "p")!;
    proxy.cut();
    await t.signal.until(() => t.disconnects.length === 1, "the plain session ends");
    assert.deepEqual(t.disconnects, [s.id]);
    assert.equal(t.hub.size, 0);
    assert.equal(t.hub.metrics().detached, 0);
  } finally {
    await plain.closed;
    await proxy.close();
    await t.close();
  }
});

test("resume: the hub acknowledges only what a handler took, never a message still queued behind a busy one", async () => {
  const { t, proxy, url } = await resumingHub();
  const gate = deferred();
  const took: string[] = [];
  t.hub.handleMessage(async (_s, msg) => {
    took.push(msg);
    if (msg === "1") await gate.promise; // the first message holds the handler: the others queue
  });
  const { peer } = await V1Peer.open(url("a"));
  try {
    for (let i = 1; i <= 40; i++) peer.send(String(i)); // the 32nd asks for an acknowledgement at once
    await peer.until(() => peer.acks.length > 0, "an acknowledgement", 2000);
    assert.deepEqual(took, ["1"]);
    assert.equal(Math.max(...peer.acks), 1, "only message 1 was taken: the rest wait in the queue");
    gate.resolve();
    await peer.until(() => peer.acks.includes(40), "every message acknowledged once taken");
    assert.deepEqual(took, Array.from({ length: 40 }, (_, i) => String(i + 1)));
  } finally {
    gate.resolve();
    await peer.close();
    await proxy.close();
    await t.close();
  }
});
