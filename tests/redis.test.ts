// Hubs in this process, each with its own Redis connections and real WebSocket clients,
// against the shared Redis at 127.0.0.1:6379 (a unique prefix per test).
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { BrokerMessageError, Hub } from "../mod.ts";
import { redisBroker, type RedisClientLike } from "../src/brokers/redis.ts";
import {
  cleanup,
  type ClusterNode,
  eventually,
  freePort,
  rawRedis,
  startNode,
  text,
  uniquePrefix,
} from "./_cluster.ts";
import { Client, closeAll, deadline, openClients, startServer, test, utf8 } from "./_helpers.ts";
import { RedisCluster } from "./_redis_cluster.ts";

async function cluster(prefix: string, n: number, broker = {}): Promise<ClusterNode[]> {
  const nodes: ClusterNode[] = [];
  try {
    for (let i = 0; i < n; i++) nodes.push(await startNode({ prefix, ...broker }));
  } catch (err) {
    await Promise.all(nodes.map((t) => t.close()));
    throw err;
  }
  return nodes;
}

async function shutdown(nodes: ClusterNode[], clients: Client[], prefix: string): Promise<void> {
  await closeAll(clients);
  await Promise.all(nodes.map((t) => t.close()));
  await cleanup(prefix);
}

/** Each client's next message, as text. */
async function nextOf(clients: Client[]): Promise<string[]> {
  return (await Promise.all(clients.map((c) => c.next()))).map(text);
}

test("redis: broadcast, broadcastOthers and room broadcasts reach every node; text stays text, bytes stay bytes", async () => {
  const prefix = uniquePrefix("ops");
  const [a, b, c] = await cluster(prefix, 3);
  const clients: Client[] = [];
  try {
    const [a1, a2] = await openClients(a.wsUrl(), 2);
    const [b1] = await openClients(b.wsUrl(), 1);
    const [c1] = await openClients(c.wsUrl(), 1);
    clients.push(a1, a2, b1, c1);
    await a.signal.until(() => a.hub.size === 2, "two sessions on a");
    const [sa1, sa2] = a.hub.sessions();
    const all = [a1, a2, b1, c1];

    a.hub.broadcast("hello everyone ✓");
    assert.deepEqual(await nextOf(all), Array(4).fill("hello everyone ✓"));

    b.hub.broadcast(new Uint8Array([0, 1, 255]));
    for (const m of await Promise.all(all.map((x) => x.next()))) {
      assert.ok(m instanceof Uint8Array, "binary stays binary across nodes");
      assert.deepEqual(m, new Uint8Array([0, 1, 255]));
    }
    c.hub.broadcast(utf8("{}"));
    assert.ok((await b1.next()) instanceof Uint8Array, "UTF-8 bytes stay binary");
    c.hub.broadcast("{}");
    assert.equal(await b1.next(), "{}", "text stays text");
    await Promise.all([a1, a2, c1].map((x) => x.take(2)));

    // the sender's node skips the sender; other nodes deliver to all
    a.hub.broadcastOthers("not to a1", sa1);
    assert.deepEqual(await nextOf([a2, b1, c1]), Array(3).fill("not to a1"));

    // rooms: a2 and c1 join "blue"
    sa2.join("blue");
    const [sc1] = c.hub.sessions();
    sc1.join("blue");
    b.hub.room("blue").broadcast("to blue from b");
    assert.deepEqual(await nextOf([a2, c1]), ["to blue from b", "to blue from b"]);
    c.hub.room("blue").broadcastOthers("blue but c1", sc1);
    assert.equal(text(await a2.next()), "blue but c1");
    a.hub.room("blue").broadcast(new Uint8Array([7]));
    assert.deepEqual(await a2.next(), new Uint8Array([7]));
    assert.deepEqual(await c1.next(), new Uint8Array([7]));

    // node-local: broadcastFilter and broadcastMultiple stay on their node
    a.hub.broadcastFilter("local filter", () => true);
    a.hub.broadcastMultiple("local multiple", [sa1]);
    b.hub.broadcast("marker");
    assert.deepEqual((await a1.take(3)).map(text), ["local filter", "local multiple", "marker"]);
    assert.deepEqual((await a2.take(2)).map(text), ["local filter", "marker"]);
    assert.equal(text(await b1.next()), "marker", "b1 got no node-local message of a");
    assert.equal(text(await c1.next()), "marker", "c1 got no node-local message of a");
    assert.deepEqual(a.hub.sessions().length, 2, "sessions() is node-local");
    assert.equal(b1.pending + c1.pending + a1.pending + a2.pending, 0, "nothing delivered twice");
    for (const t of [a, b, c]) assert.deepEqual(t.brokerErrors, []);
  } finally {
    await shutdown([a, b, c], clients, prefix);
  }
});

// on one Redis server, then on a Redis Cluster (a room's counts on the room's slot)
for (const on of ["", " on a Redis Cluster"]) {
  test(`redis${on}: counts across nodes follow connects, joins, leaves and disconnects; a closed node leaves at once`, async () => {
    const prefix = uniquePrefix("counts");
    const redisCluster = on ? await RedisCluster.start() : undefined;
    const [a, b] = await cluster(prefix, 2, redisCluster ? { cluster: redisCluster.urls } : {}).catch(async (err) => {
      await redisCluster?.stop();
      throw err;
    });
    const clients: Client[] = [];
    try {
      assert.equal(await a.hub.count(), 0);
      clients.push(...await openClients(a.wsUrl(), 2), ...await openClients(b.wsUrl(), 3));
      await a.signal.until(() => a.hub.size === 2, "two on a");
      await b.signal.until(() => b.hub.size === 3, "three on b");
      await eventually(() => a.hub.count(), (n) => n === 5, "a to count 5");
      await eventually(() => b.hub.count(), (n) => n === 5, "b to count 5");

      a.hub.sessions()[0].join("r");
      for (const s of b.hub.sessions().slice(0, 2)) s.join("r");
      assert.equal(a.hub.room("r").size, 1, "size is node-local");
      await eventually(() => a.hub.room("r").count(), (n) => n === 3, "room r to count 3 on a");
      await eventually(() => b.hub.room("r").count(), (n) => n === 3, "room r to count 3 on b");
      assert.equal(await a.hub.room("nobody").count(), 0);

      b.hub.sessions()[0].leave("r");
      await eventually(() => a.hub.room("r").count(), (n) => n === 2, "room r to count 2 after a leave");
      await clients[2].close(); // a client of b goes away
      await eventually(() => a.hub.count(), (n) => n === 4, "4 after a disconnect");

      await b.close(); // b's sessions leave the cluster's counts at once
      assert.equal(await a.hub.count(), 2);
      assert.equal(await a.hub.room("r").count(), 1);
      a.hub.broadcast("a lives on");
      assert.deepEqual(await nextOf(clients.slice(0, 2)), ["a lives on", "a lives on"]);
      await assert.rejects(b.hub.count(), /closed/);
      assert.deepEqual(a.brokerErrors, []);
    } finally {
      await shutdown([a, b], clients, prefix);
      await redisCluster?.stop();
    }
  });
}

test("redis: foreign bytes, an unknown version and an oversized message are refused; the subscription lives on", async () => {
  const prefix = uniquePrefix("foreign");
  const [a, b] = await cluster(prefix, 2, { maxMessageSize: 1024 });
  const raw = await rawRedis();
  const clients: Client[] = [];
  try {
    const [b1] = await openClients(b.wsUrl(), 1);
    clients.push(b1);
    const channel = `${prefix}:broadcast`;
    await raw.publish(channel, "hello from a foreign publisher");
    await raw.publish(channel, Buffer.from([0xc7, 0x09, 0, 1, 0x41, 0x42]));
    await raw.publish(channel, Buffer.from([0xc7, 0x01, 0, 200, 0x41]));
    await raw.publish(channel, Buffer.alloc(2000, 1));
    await b.signal.until(() => b.brokerErrors.length >= 4, "four refusals on b");
    assert.ok(b.brokerErrors.every((e) => e instanceof BrokerMessageError), String(b.brokerErrors));
    assert.match(b.brokerErrors[0].message, /not in chorus' wire format/);
    assert.match(b.brokerErrors[1].message, /wire version 9/);
    assert.match(b.brokerErrors[3].message, /2000 bytes: the limit is 1024/);

    // the sender refuses an oversized broadcast before anything is sent, locally or remotely
    assert.throws(() => a.hub.broadcast("x".repeat(2000)), RangeError);
    a.hub.broadcast("still subscribed");
    assert.equal(await b1.next(), "still subscribed");
    assert.equal(b1.pending, 0);
  } finally {
    await raw.close();
    await shutdown([a, b], clients, prefix);
  }
});

test("redis: a burst of 10,000 broadcasts from two nodes arrives everywhere once, in order", async () => {
  const prefix = uniquePrefix("burst");
  const [a, b] = await cluster(prefix, 2);
  const clients: Client[] = [];
  try {
    const [a1] = await openClients(a.wsUrl(), 1);
    const [b1] = await openClients(b.wsUrl(), 1);
    clients.push(a1, b1);
    await a.signal.until(() => a.hub.size === 1, "a1 attached");
    await b.signal.until(() => b.hub.size === 1, "b1 attached");
    const n = 10_000;
    for (let i = 0; i < n / 2; i++) {
      a.hub.broadcast(`a ${i}`);
      b.hub.broadcast(`b ${i}`);
    }
    a.hub.broadcast("a end");
    b.hub.broadcast("b end");
    for (const client of [a1, b1]) {
      const next = { a: 0, b: 0 };
      let ends = 0;
      while (ends < 2) {
        const [from, seq] = text(await client.next(10_000)).split(" ") as ["a" | "b", string];
        if (seq === "end") {
          assert.equal(next[from], n / 2, `all of ${from} before its end`);
          ends++;
          continue;
        }
        assert.equal(Number(seq), next[from], `${from} in order, none lost or repeated`);
        next[from]++;
      }
      assert.deepEqual(next, { a: n / 2, b: n / 2 });
    }
    b.hub.broadcast("after");
    assert.equal(await a1.next(), "after");
    assert.equal(a1.pending, 0, "no duplicate after the burst");
    assert.deepEqual([...a.brokerErrors, ...b.brokerErrors], []);
  } finally {
    await shutdown([a, b], clients, prefix);
  }
});

test("redis: a broker on the user's own client leaves that client open when the hub closes", async () => {
  const prefix = uniquePrefix("own-client");
  const mine = await rawRedis();
  const hub = new Hub({ broker: redisBroker({ client: mine, prefix }) });
  const other = await startNode({ prefix });
  const clients: Client[] = [];
  try {
    await hub.ready();
    const [o1] = await openClients(other.wsUrl(), 1);
    clients.push(o1);
    hub.broadcast("from the hub on my client");
    assert.equal(await o1.next(), "from the hub on my client");
    await eventually(() => hub.count(), (n) => n === 1, "the other node's session counted");
    await hub.close();
    assert.equal(mine.isReady, true, "the user's client is still open");
    assert.equal(await mine.exists(`${prefix}:node:${hub.node}`), 0, "the closed node's counts are gone");
  } finally {
    await closeAll(clients);
    await hub.close();
    await other.close();
    await mine.close();
    await cleanup(prefix);
  }
});

test("redis: options are checked", () => {
  assert.throws(() => redisBroker({ url: "redis://x", client: {} as RedisClientLike }), TypeError);
  assert.throws(() => redisBroker({ prefix: "" }), TypeError);
  assert.throws(() => redisBroker({ heartbeatInterval: 1000, presenceTtl: 1000 }), RangeError);
  assert.throws(() => redisBroker({ maxMessageSize: -1 }), RangeError);
  assert.throws(() => redisBroker({ maxPendingBytes: 0 }), RangeError);
  assert.throws(() => redisBroker({ maxPendingBytes: "1" as unknown as number }), TypeError);
  assert.throws(() => redisBroker({ commandTimeout: Infinity }), RangeError);
});

test("redis: with Redis unreachable from the start, the hub serves locally, reports, and closes cleanly", async () => {
  const port = await freePort(); // nothing listens there
  const t = await startServer({
    broker: redisBroker({ url: `redis://127.0.0.1:${port}`, prefix: uniquePrefix("down") }),
  });
  const errors: Error[] = [];
  t.hub.handleBrokerError((err) => {
    errors.push(err);
    t.signal.ping();
  });
  const clients: Client[] = [];
  try {
    clients.push(await Client.open(t.wsUrl()));
    await t.signal.until(() => errors.length > 0, "the refused connection reported");
    assert.match(errors[0].message, /ECONNREFUSED/);
    t.hub.broadcast("local still works");
    assert.equal(await clients[0].next(), "local still works");
    await assert.rejects(t.hub.count());
  } finally {
    await closeAll(clients);
    await deadline(t.close(), "close while Redis is away");
  }
});
