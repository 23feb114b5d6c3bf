// The Redis broker on a Redis Cluster (`redisBroker({ cluster })`): a real cluster of 3 primaries
// with a replica each, that each test starts on spare loopback ports (tests/_redis_cluster.ts) and
// stops. Hubs in this process, real WebSocket clients, a TCP proxy as the load balancer.

import assert from "node:assert/strict";
import {
  type ClusterNode,
  eventually,
  roomChannel,
  shardSubscribers,
  startNode,
  text,
  uniquePrefix,
} from "./_cluster.ts";
import { type Client, closeAll, deadline, openClients, Signal, test, Watched } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { RedisCluster } from "./_redis_cluster.ts";
import { redisBroker, type RedisClusterLike } from "../src/brokers/redis.ts";
import { createCluster } from "redis";

test("redis cluster: rooms spread over the shards; each node receives only its rooms' broadcasts, every member its rooms' messages once; counts, presence, history", async () => {
  const cluster = await RedisCluster.start();
  const prefix = uniquePrefix("cluster");
  const nodes: ClusterNode[] = [];
  const clients: Client[] = [];
  try {
    const options = { presence: { keys: ["n"] }, history: { size: 10 } };
    for (let i = 0; i < 3; i++) nodes.push(await startNode({ cluster: cluster.urls, prefix }, options));
    // room r has members on nodes r % 3 and (r + 1) % 3: 20 rooms per node, 5 per client
    const names = Array.from({ length: 30 }, (_, r) => `room-${r}`);
    const roomsOf = (n: number) => names.filter((_, r) => r % 3 === n || (r + 1) % 3 === n);
    const clientRooms = new Map<Client, string[]>();
    for (const [n, t] of nodes.entries()) {
      t.hub.handleMessage((s, msg) => {
        s.set("n", `${n}`);
        for (const room of String(msg).split(",")) s.join(room);
        s.write("joined");
      });
      const opened = await openClients(t.wsUrl(), 4);
      clients.push(...opened);
      for (const [j, c] of opened.entries()) {
        const rooms = roomsOf(n).filter((_, k) => k % 4 === j);
        clientRooms.set(c, rooms);
        c.send(rooms.join(","));
      }
      for (const c of opened) assert.equal(text(await c.next()), "joined");
    }
    await eventually(
      () => shardSubscribers(cluster, prefix, names),
      (counts) => counts.every((n) => n === 2),
      "2 nodes per room channel",
    );
    const shards = new Set(await Promise.all(names.map((room) => cluster.primaryOf(roomChannel(prefix, room)))));
    assert.equal(shards.size, 3, "the rooms' channels and streams are on every shard");

    // every node broadcasts once to every room: 90 broadcasts
    for (const [n, t] of nodes.entries()) for (const room of names) t.hub.room(room).broadcast(`${room} from ${n}`);
    nodes[0].hub.broadcast("end"); // hub-wide: every node, on the {prefix} shard
    for (const [c, rooms] of clientRooms) {
      const got = (await c.take(rooms.length * 3 + 1)).map(text);
      assert.ok(got.includes("end"), "the hub-wide broadcast arrives");
      const want = rooms.flatMap((room) => nodes.map((_, n) => `${room} from ${n}`));
      assert.deepEqual(got.filter((m) => m !== "end").sort(), want.sort(), "exactly its rooms' messages, once each");
    }
    // each node: the 2 other nodes' broadcasts to its 20 rooms, none of the 10 others (60 with one channel)
    for (const [n, t] of nodes.entries()) {
      const want = 40 + (n === 0 ? 0 : 1);
      await t.signal.until(() => t.hub.metrics().brokerIn >= want, `node ${n}'s traffic`);
      assert.equal(t.hub.metrics().brokerIn, want, `node ${n} receives only its rooms' traffic`);
    }

    // counts, presence and history across the nodes (node 2 has no member in room-0)
    assert.equal(await nodes[2].hub.room("room-0").count(), 2);
    assert.equal(await nodes[2].hub.count(), 12);
    const members = await nodes[2].hub.room("room-0").members();
    assert.deepEqual(members.map((m) => m.keys.n).sort(), ["0", "1"]);
    // a room's members and counts (one entry per node with members) live on the room's slot (its
    // shard), with its channel and its stream
    for (const room of ["room-0", "room-1", "room-2"]) {
      for (const [kind, what] of [["pr", "members"], ["cn", "counts"]]) {
        const key = `{${prefix}:r:${room}}:${kind}`;
        assert.equal(await cluster.onPrimary(roomChannel(prefix, room), ["HLEN", key]), 2, `${room}'s ${what}`);
      }
    }
    const history = await nodes[2].hub.room("room-0").history();
    assert.deepEqual(history.map((e) => e.message).sort(), ["room-0 from 0", "room-0 from 1", "room-0 from 2"]);
    for (const t of nodes) assert.deepEqual(t.brokerErrors, []);

    await closeAll(clients);
    clients.length = 0;
    await eventually(
      () => shardSubscribers(cluster, prefix, names),
      (counts) => counts.every((n) => n === 0),
      "every room channel left",
    );
  } finally {
    await closeAll(clients);
    await Promise.all(nodes.map((t) => t.close()));
    await cluster.stop();
  }
});

test("redis cluster: a session cut mid-stream resumes on another node; its rooms on two shards, the hub and its own stream: every message once, each stream in order; an app's own cluster client stays open", async () => {
  const cluster = await RedisCluster.start();
  const prefix = uniquePrefix("cluster-resume");
  // two rooms on different shards
  const x = "x";
  let y = "y0";
  for (
    let i = 1;
    await cluster.primaryOf(roomChannel(prefix, y)) === await cluster.primaryOf(roomChannel(prefix, x));
    i++
  ) {
    y = `y${i}`;
  }
  const resume = { resume: { window: 10_000, maxMessages: 5000 } };
  const nodes: ClusterNode[] = [];
  const lb = await Proxy.start(0);
  const signal = new Signal();
  let w: Watched | undefined;
  let appCluster: ReturnType<typeof createCluster> | undefined;
  try {
    // the sender with the app's own node-redis cluster client, which closing its hub leaves open
    appCluster = createCluster({ rootNodes: cluster.urls.map((url) => ({ url })) });
    appCluster.on("error", () => {});
    for (let i = 0; i < 2; i++) nodes.push(await startNode({ cluster: cluster.urls, prefix }, resume));
    nodes.push(await startNode({ cluster: appCluster as unknown as RedisClusterLike, prefix }, resume));
    const [a, b, c] = nodes;
    for (const t of [a, b]) {
      t.hub.handleConnect((s) => {
        s.join(x);
        s.join(y);
      });
    }
    lb.retarget(a.port);
    w = new Watched(`ws://127.0.0.1:${lb.port}/`, signal);
    await signal.until(() => w!.opens.length === 1, "open on a");
    await eventually(() => shardSubscribers(cluster, prefix, [x, y]), (n) => n.every((k) => k === 1), "a subscribed");
    const N = 300;
    for (let i = 1; i <= N; i++) {
      c.hub.room(x).broadcast(`x${i}`);
      c.hub.room(y).broadcast(`y${i}`);
      c.hub.broadcast(`h${i}`);
      // its own stream: written on a before the cut, on b once b has the session (one node's copy
      // only: writing to both the old node's and the new node's object would write it twice)
      (i <= N / 2 ? a : b).hub.sessions()[0]?.write(`s${i}`);
      if (i === N / 2) {
        lb.retarget(b.port);
        lb.cut();
      }
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await signal.until(() => ["x", "y", "h"].every((p) => w!.only(p).length >= N), "the broadcasts", 20_000);
    const numbers = Array.from({ length: N }, (_, i) => String(i + 1));
    assert.deepEqual(w.only("x"), numbers, "room x: once, in order");
    assert.deepEqual(w.only("y"), numbers, "room y: once, in order");
    assert.deepEqual(w.only("h"), numbers, "the hub's stream: once, in order");
    const own = w.only("s").map(Number);
    assert.deepEqual(own, [...new Set(own)].sort((p, q) => p - q), "its own stream: once, in order");
    assert.deepEqual(w.opens, [false, true], "resumed on b");
    assert.equal(b.hub.size, 1);
    await c.close();
    assert.ok(appCluster.isOpen, "the app's cluster client is still open");
    assert.equal(await appCluster.sendCommand(undefined, true, ["PING"]), "PONG");
  } finally {
    await w?.end();
    await Promise.all(nodes.map((t) => t.close()));
    await appCluster?.close();
    await lb.close();
    await cluster.stop();
  }
});

test("redis cluster: the primary of a room's shard is killed mid-traffic, with writes its replica never got: the error is reported, nothing crashes, delivery resumes after the failover in a new epoch, nothing taken for a copy", async () => {
  const cluster = await RedisCluster.start();
  const prefix = uniquePrefix("cluster-failover");
  const nodes: ClusterNode[] = [];
  const signal = new Signal();
  const watched: Watched[] = [];
  let plain: Client | undefined;
  try {
    const options = { resume: { window: 10_000 }, history: { size: 10 } };
    for (let i = 0; i < 2; i++) {
      nodes.push(await startNode({ cluster: cluster.urls, prefix, commandTimeout: 1000 }, options));
    }
    const [a, b] = nodes;
    b.hub.handleConnect((s) => s.join("f"));
    // a resumable client and a plain one on b, in room "f"
    watched.push(new Watched(b.wsUrl(), signal));
    plain = (await openClients(b.wsUrl(), 1))[0];
    await signal.until(() => watched[0].opens.length === 1 && b.hub.room("f").size === 2, "2 members on b");
    await eventually(() => shardSubscribers(cluster, prefix, ["f"]), ([n]) => n === 1, "b subscribed to f");

    // a broadcast every 10 ms from a, through the shard of room "f", while its primary is killed
    let sent = 0;
    let sending = true;
    const loop = (async () => {
      while (sending) {
        a.hub.room("f").broadcast(`${++sent}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const plainGot: number[] = [];
    const reading = (async () => {
      while (true) {
        const m = text(await plain!.next(30_000));
        if (m === "end") return;
        plainGot.push(Number(m));
      }
    })();
    await signal.until(() => watched[0].got.length >= 20, "traffic before the kill");
    // the replica stops taking the primary's writes (frozen, its link cut), which the primary still
    // acknowledges and publishes: the clients get messages that the replica, once primary, will not have
    const channel = roomChannel(prefix, "f");
    const meta = `{${prefix}:r:f}:sm:r:f`;
    const stream = `{${prefix}:r:f}:st:r:f`;
    const epochBefore = await cluster.onPrimary(channel, ["HGET", meta, "e"]);
    for (const port of await cluster.replicasOf(channel)) cluster.pause(port);
    // and its link is cut, so that what follows does not wait in its socket either
    await cluster.onPrimary(channel, ["CLIENT", "KILL", "TYPE", "replica"]);
    const frozenAt = watched[0].got.length;
    await signal.until(() => watched[0].got.length >= frozenAt + 30, "30 broadcasts the replica does not take");
    const killed = await cluster.killPrimaryOf(channel);
    const failedOver = sent;
    // delivery resumes by itself: a broadcast sent after the failover reaches both clients
    await signal.until(
      () => watched[0].got.some((m) => Number(m) > failedOver),
      "a broadcast after the failover, on the resumable client",
      20_000,
    );
    sending = false;
    await loop;
    assert.notEqual(await cluster.primaryOf(roomChannel(prefix, "f")), killed, "a replica is primary now");
    assert.ok([...a.brokerErrors, ...b.brokerErrors].length > 0, "the lost shard was reported");
    // from then on, nothing is lost: 50 more broadcasts, all of them on both clients, in order
    const from = sent;
    for (let i = 1; i <= 50; i++) a.hub.room("f").broadcast(`${from + i}`);
    a.hub.room("f").broadcast("end");
    await reading;
    await signal.until(() => watched[0].got.includes("end"), "the end on the resumable client");
    const tail = Array.from({ length: 50 }, (_, i) => from + i + 1);
    assert.deepEqual(plainGot.filter((n) => n > from), tail, "the plain client: all 50 after the failover");
    const got = watched[0].got.filter((m) => m !== "end").map(Number);
    // the resumable client got each of them too: none of those that came after the failover was
    // taken for a copy of a lost one (the new primary gave their offsets again)
    assert.deepEqual(got, plainGot, "the resumable client got what the plain one got");
    // before: what was sent during the outage is lost (and reported), but nothing twice or out of order
    for (const list of [got, plainGot]) {
      for (let i = 1; i < list.length; i++) {
        assert.ok(list[i] > list[i - 1], `in order: ${list[i - 1]} then ${list[i]}`);
      }
    }
    assert.deepEqual(watched[0].opens, [false], "one session throughout");
    // the scenario happened: the new primary lacks messages the clients got from the old one;
    // its stream goes on in a new epoch (so the offsets of those are not taken for copies), with
    // the entries it had kept
    const kept = (await cluster.onPrimary(channel, ["XRANGE", stream, "-", "+"]) as [string, string[]][])
      .map(([, fields]) => fields[fields.indexOf("d") + 1]);
    assert.ok(
      got.some((n) => n <= failedOver && !kept.includes(String(n))),
      "some messages were lost with the old primary",
    );
    assert.ok(kept.includes("1"), "the entries from before are kept");
    assert.notEqual(await cluster.onPrimary(channel, ["HGET", meta, "e"]), epochBefore, "a new epoch");
    // the hub goes on: counts and history answer from the new primary
    assert.equal(await a.hub.room("f").count(), 2);
    assert.equal((await a.hub.room("f").history()).at(-1)?.message, "end");
  } finally {
    for (const w of watched) await w.end();
    plain?.close();
    await Promise.all(nodes.map((t) => t.close()));
    await cluster.stop();
  }
});

test("redis cluster: shards frozen (SIGSTOP): count() rejects, local delivery goes on, hub.close() finishes in bounded time", async () => {
  const cluster = await RedisCluster.start();
  const prefix = uniquePrefix("cluster-stall");
  let a: ClusterNode | undefined;
  const clients: Client[] = [];
  const frozen = new Set<number>();
  try {
    a = await startNode(
      { cluster: cluster.urls, prefix, commandTimeout: 1000, heartbeatInterval: 60_000, presenceTtl: 120_000 },
      { resume: {}, history: { size: 10 } },
    );
    a.hub.handleConnect((s) => s.join("f"));
    const [c] = await openClients(a.wsUrl(), 1);
    clients.push(c);
    assert.equal(await a.hub.count(), 1);
    // the shard of the hub's keys and the shard of room "f"
    for (const key of [`{${prefix}}`, roomChannel(prefix, "f")]) frozen.add(await cluster.primaryOf(key));
    for (const port of frozen) cluster.pause(port);

    const err = await deadline(a.hub.count().then(() => undefined, (e: Error) => e), "count() to reject", 3000);
    assert.ok(err instanceof Error && /Redis/.test(err.message), "count() rejects");
    // room broadcasts wait for the frozen shard; this node's plain members get them at once
    for (let i = 0; i < 5; i++) a.hub.room("f").broadcast(`during ${i}`);
    assert.deepEqual((await c.take(5)).map(text), [0, 1, 2, 3, 4].map((i) => `during ${i}`), "local delivery goes on");
    await deadline(a.close(), "server.shutdown() (and hub.close()) with the shards frozen", 4000);
    assert.ok(a.hub.isClosed());
    assert.equal((await c.closed).code, 1001);
  } finally {
    await closeAll(clients);
    for (const port of frozen) cluster.resume(port);
    await a?.close();
    await cluster.stop();
  }
});

test("redisBroker refuses a cluster with no node or a prefix with braces", () => {
  assert.throws(() => redisBroker({ cluster: [] }), /cluster must be a non-empty array/);
  assert.throws(() => redisBroker({ cluster: ["redis://127.0.0.1:7000"], prefix: "a{b}" }), /may not contain/);
  assert.throws(
    () => redisBroker({ url: "redis://127.0.0.1:6379", cluster: ["redis://127.0.0.1:7000"] }),
    /one of url, client and cluster/,
  );
});
