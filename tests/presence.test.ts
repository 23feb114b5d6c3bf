// Presence (`presence: { keys }`, `room.members()`, `handlePresence`) in one process: hubs on a
// MemoryNetwork as a cluster, a hub without a broker, and a detached resumable session.
// The Redis side, with child nodes, is in redis_presence.test.ts.

import assert from "node:assert/strict";
import { Hub, type HubOptions, type Member, type PresenceEvent } from "../mod.ts";
import { MemoryNetwork } from "../src/brokers/memory.ts";
import { FakeSocket } from "./_fake.ts";
import { deadline, startServer, test } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { V1Peer } from "./_v1.ts";

type K = { name: string; secret: string; room: string };

/** A hub whose sessions join the room named by their `room` key, recording its presence events. */
function presenceHub(options: HubOptions<K> = {}) {
  const hub = new Hub<K>({ presence: { keys: ["name"] }, pingInterval: 0, ...options });
  const events: { room: string; change: PresenceEvent<K> }[] = [];
  let waiters: (() => void)[] = [];
  hub.handleConnect((s) => s.join(s.get("room") ?? "lobby"));
  hub.handlePresence((room, change) => {
    events.push({ room, change });
    for (const w of waiters) w();
  });
  const until = async (check: () => boolean, what: string, ms = 3000) => {
    const end = Date.now() + ms;
    while (!check()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await deadline(new Promise<void>((r) => waiters.push(r)), what, ms).catch(() => {});
      waiters = [];
    }
  };
  const joined = () => events.flatMap((e) => e.change.joins.map((m) => `${e.room}+${m.keys.name}@${m.node}`));
  const left = () => events.flatMap((e) => e.change.leaves.map((m) => `${e.room}-${m.keys.name}@${m.node}`));
  return { hub, events, until, joined, left };
}

/** An in-process session (a fake socket) with keys. */
function session(hub: Hub<K>, name: string, room = "lobby"): FakeSocket {
  const sock = new FakeSocket({ name });
  assert.ok(sock.attach(hub, undefined, { name, secret: `secret of ${name}`, room }));
  return sock;
}

const names = (members: Member<K>[]) => members.map((m) => `${m.keys.name}@${m.node}`).sort();

test("presence: members() and handlePresence across 3 hubs on a MemoryNetwork; only the named keys", async () => {
  const network = new MemoryNetwork();
  const nodes = [0, 1, 2].map(() => presenceHub({ broker: network.broker() }));
  const [a, b, c] = nodes;
  try {
    const sa = session(a.hub, "ann");
    const sb = session(b.hub, "bob");
    session(c.hub, "cy", "other");
    const all = [`lobby+ann@${a.hub.node}`, `lobby+bob@${b.hub.node}`, `other+cy@${c.hub.node}`].sort();
    for (const n of nodes) await n.until(() => n.joined().length === 3, "3 joins on every node");
    for (const n of nodes) assert.deepEqual(n.joined().sort(), all, "every node hears every join, its own too");

    for (const n of nodes) {
      const members = await n.hub.room("lobby").members();
      assert.deepEqual(names(members), [`ann@${a.hub.node}`, `bob@${b.hub.node}`].sort());
      for (const m of members) {
        assert.deepEqual(Object.keys(m.keys), ["name"], "only presence.keys leave the node");
        assert.match(m.id, /\S/);
      }
    }
    assert.deepEqual(names(await c.hub.room("other").members()), [`cy@${c.hub.node}`]);
    assert.deepEqual(await a.hub.room("nobody").members(), []);

    sa.closed(1000); // ann ends: leaves the lobby
    b.hub.sessions()[0].leave("lobby");
    for (const n of nodes) await n.until(() => n.left().length === 2, "2 leaves on every node");
    for (const n of nodes) {
      assert.deepEqual(n.left().sort(), [`lobby-ann@${a.hub.node}`, `lobby-bob@${b.hub.node}`].sort());
      assert.deepEqual(await n.hub.room("lobby").members(), []);
    }
    sb.closed(1000);
  } finally {
    await Promise.all(nodes.map((n) => n.hub.close()));
  }
});

test("presence: a join storm (1,000 joins on one node within a second) costs a bounded number of notices", async () => {
  const network = new MemoryNetwork();
  const a = presenceHub({ broker: network.broker(), presence: { keys: ["name"], interval: 50 } });
  const b = presenceHub({ broker: network.broker() });
  try {
    const start = Date.now();
    for (let i = 0; i < 1000; i++) {
      session(a.hub, `u${i}`);
      if (i % 100 === 99) await new Promise((r) => setTimeout(r, 20)); // spread over ~200 ms
    }
    await b.until(() => b.joined().length === 1000, "1,000 joins on the other node");
    const took = Date.now() - start;
    // one notice per room per interval: at most took/interval + 2 of them, whatever the joins
    assert.ok(b.events.length <= Math.ceil(took / 50) + 2, `${b.events.length} notices in ${took} ms`);
    assert.ok(b.events.length < 50, `${b.events.length} notices, not 1,000`);
    assert.equal((await b.hub.room("lobby").members()).length, 1000);
    assert.equal(new Set(b.joined()).size, 1000, "each join once");
  } finally {
    await Promise.all([a.hub.close(), b.hub.close()]);
  }
});

test("presence: without a broker, the same API on this node, batched; a join and leave within one interval is no event", async () => {
  const { hub, events, until, joined, left } = presenceHub({ presence: { keys: ["name", "room"], interval: 30 } });
  try {
    session(hub, "a");
    session(hub, "b");
    const c = session(hub, "c");
    c.closed(1000); // joined and gone within the interval
    await until(() => events.length === 1, "one batch");
    assert.deepEqual(joined().sort(), [`lobby+a@${hub.node}`, `lobby+b@${hub.node}`]);
    assert.deepEqual(events[0].change.joins[0].keys, { name: "a", room: "lobby" });
    const members = await hub.room("lobby").members();
    assert.deepEqual(names(members), [`a@${hub.node}`, `b@${hub.node}`]);
    hub.sessions()[0].leave("lobby");
    await until(() => left().length === 1, "a leave");
  } finally {
    await hub.close();
  }
  assert.equal(left().length, 2, "the last member leaves at close");
});

test("presence: options are validated; members() rejects when presence is off or the hub is closed", async () => {
  assert.throws(() => new Hub({ presence: {} as never }), TypeError);
  assert.throws(() => new Hub({ presence: { keys: [1 as never] } }), TypeError);
  assert.throws(() => new Hub({ presence: { keys: [], interval: -1 } }), RangeError);
  const off = new Hub();
  await assert.rejects(off.room("x").members(), TypeError);
  await off.close();
  const on = new Hub({ presence: { keys: [] } });
  await on.close();
  await assert.rejects(on.room("x").members(), /closed/);
});

test("presence: a detached resumable session stays a member (on every node) and leaves when it ends", async () => {
  const network = new MemoryNetwork();
  const t = await startServer<K>({
    broker: network.broker(),
    resume: { window: 1500 },
    presence: { keys: ["name"] },
    pingInterval: 0,
  });
  const other = presenceHub({ broker: network.broker() });
  t.hub.handleConnect((s) => {
    s.set("name", "dee");
    s.join("lobby");
  });
  t.hub.handleClose(() => t.signal.ping());
  const proxy = await Proxy.start(t.port);
  const { peer } = await V1Peer.open(`ws://127.0.0.1:${proxy.port}/`);
  try {
    await other.until(() => other.joined().length === 1, "the join");
    const s = t.hub.sessions()[0];
    proxy.cut();
    await t.signal.until(() => !s.connected, "detached");
    assert.deepEqual(names(await t.hub.room("lobby").members()), [`dee@${t.hub.node}`]);
    assert.deepEqual(names(await other.hub.room("lobby").members()), [`dee@${t.hub.node}`]);
    assert.equal(other.left().length, 0, "no leave while detached");
    await other.until(() => other.left().length === 1, "the leave once the window passed", 5000);
    assert.deepEqual(await other.hub.room("lobby").members(), []);
  } finally {
    await peer.close().catch(() => {});
    await proxy.close();
    await t.close();
    await other.hub.close();
  }
});

test("presence: a session that resumes on another node moves there: no leave and no join, members() shows its new node", async () => {
  const network = new MemoryNetwork();
  const start = () =>
    startServer<K>({
      broker: network.broker(),
      resume: { window: 3000 },
      presence: { keys: ["name"] },
      pingInterval: 0,
    });
  const [a, b] = [await start(), await start()];
  const events: string[] = [];
  for (const t of [a, b]) {
    t.hub.handleConnect((s) => {
      s.set("name", "mo");
      s.join("lobby");
    });
    t.hub.handleClose(() => t.signal.ping());
    t.hub.handlePresence((room, { joins, leaves }) => {
      for (const m of joins) events.push(`${t.hub.node === a.hub.node ? "a" : "b"} ${room}+${m.keys.name}`);
      for (const m of leaves) events.push(`${t.hub.node === a.hub.node ? "a" : "b"} ${room}-${m.keys.name}`);
      t.signal.ping();
    });
  }
  const proxy = await Proxy.start(a.port);
  const { peer, welcome } = await V1Peer.open(`ws://127.0.0.1:${proxy.port}/`);
  let moved: V1Peer | undefined;
  try {
    await b.signal.until(() => events.length === 2, "the join on both nodes");
    const s = a.hub.sessions()[0];
    proxy.cut();
    await a.signal.until(() => !s.connected, "detached");
    moved = (await V1Peer.resume(b.wsUrl(), welcome.token, {})).peer;
    await b.signal.until(() => b.hub.size === 1 && a.hub.size === 0, "moved to b");
    await new Promise((r) => setTimeout(r, 200)); // several batching intervals
    assert.deepEqual(events.sort(), ["a lobby+mo", "b lobby+mo"], "no leave, no second join");
    for (const t of [a, b]) assert.deepEqual(names(await t.hub.room("lobby").members()), [`mo@${b.hub.node}`]);
  } finally {
    await peer.close().catch(() => {});
    await moved?.close().catch(() => {});
    await proxy.close();
    await a.close();
    await b.close();
  }
});
