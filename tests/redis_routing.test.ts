// Per-room routing (`redisBroker({ routing: "rooms" })`): hubs in this process against the shared
// Redis (a unique prefix per test), real WebSocket clients. Each node's subscriber traffic is
// counted (`hub.metrics().brokerIn`), and Redis's own PUBSUB NUMSUB shows the subscriptions.
import assert from "node:assert/strict";
import { connect } from "../src/client.ts";
import {
  cleanup,
  type ClusterNode,
  eventually,
  REDIS_URL,
  startNode,
  subscribers,
  text,
  uniquePrefix,
} from "./_cluster.ts";
import { type Client, closeAll, deadline, deferred, openClients, Signal, test, Watched } from "./_helpers.ts";
import { redisBroker, type RedisClientLike } from "../src/brokers/redis.ts";
import { Proxy } from "./_proxy.ts";
import { createClient } from "redis";

const NODES = 4;
const ROOMS = 200;
const PER_NODE = 10; // clients per node

/**
 * A node-redis client for `redisBroker({ client })` whose subscriber (its `duplicate()`) holds
 * every room SUBSCRIBE until `gate` resolves: the window between a node's first member of a room
 * and its subscription, made as long as a test needs.
 */
function gatedClient(gate: Promise<void>) {
  const client = createClient({ url: REDIS_URL });
  client.on("error", () => {});
  const duplicate = client.duplicate.bind(client);
  client.duplicate = ((...args: Parameters<typeof duplicate>) => {
    const sub = duplicate(...args);
    const subscribe = sub.subscribe.bind(sub) as RedisClientLike["subscribe"];
    (sub as unknown as RedisClientLike).subscribe = async (channel, listener, bufferMode) => {
      if (channel.includes(":room:")) await gate;
      return subscribe(channel, listener, bufferMode);
    };
    return sub;
  }) as typeof client.duplicate;
  return client;
}

test("redis routing \"rooms\": 4 nodes × 200 rooms, each node receives only its rooms' broadcasts, every member gets its rooms' messages and no other", async () => {
  const prefix = uniquePrefix("routing");
  const nodes: ClusterNode[] = [];
  const clients: Client[] = [];
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await startNode({ prefix, routing: "rooms" }));
    const names = Array.from({ length: ROOMS }, (_, r) => `room-${r}`);
    // room r has members on nodes r % 4 and (r + 1) % 4: 100 rooms per node, 10 per client
    const roomsOf = (n: number) => names.filter((_, r) => r % NODES === n || (r + 1) % NODES === n);
    const clientRooms = new Map<Client, string[]>();
    for (const [n, t] of nodes.entries()) {
      t.hub.handleMessage((s, msg) => {
        for (const room of String(msg).split(",")) s.join(room);
        s.write("joined");
      });
      const mine = roomsOf(n);
      const opened = await openClients(t.wsUrl(), PER_NODE);
      clients.push(...opened);
      for (const [j, c] of opened.entries()) {
        const rooms = mine.filter((_, k) => k % PER_NODE === j);
        clientRooms.set(c, rooms);
        c.send(rooms.join(","));
      }
      for (const c of opened) assert.equal(text(await c.next()), "joined");
    }
    // the joins never waited for Redis; the SUBSCRIBEs follow within a round trip
    await eventually(() => subscribers(prefix, names), (counts) => counts.every((n) => n === 2), "2 nodes per room");

    // every node broadcasts once to every room: 800 broadcasts, 600 of them from another node
    for (const [n, t] of nodes.entries()) for (const room of names) t.hub.room(room).broadcast(`${room} from ${n}`);
    nodes[0].hub.broadcast("end"); // hub-wide: every node, after its room traffic from node 0
    for (const [c, rooms] of clientRooms) {
      const got = (await c.take(rooms.length * NODES + 1)).map(text);
      const end = got.indexOf("end");
      assert.ok(end >= 0, "the hub-wide marker arrives");
      got.splice(end, 1);
      const want = rooms.flatMap((room) => nodes.map((_, n) => `${room} from ${n}`));
      assert.deepEqual(got.sort(), want.sort(), "exactly its rooms' messages, once each");
    }
    // each node: the 3 other nodes' broadcasts to its 100 rooms, and nothing of the others' rooms
    // (the single channel would bring it all 600 room broadcasts of the other nodes)
    for (const [n, t] of nodes.entries()) {
      await t.signal.until(() => t.hub.metrics().brokerIn >= 300 + (n === 0 ? 0 : 1), `node ${n}'s traffic`);
      assert.equal(t.hub.metrics().brokerIn, 300 + (n === 0 ? 0 : 1), `node ${n} receives only its rooms' traffic`);
    }

    // node 0's members leave: it unsubscribes, and receives nothing more of those rooms
    for (const s of nodes[0].hub.sessions()) for (const room of [...s.rooms]) s.leave(room);
    const left = roomsOf(0);
    await eventually(
      () => subscribers(prefix, left),
      (counts) => counts.every((n) => n === 1),
      "node 0 to unsubscribe",
    );
    const before = nodes[0].hub.metrics().brokerIn;
    for (const room of left) nodes[1].hub.room(room).broadcast("after");
    nodes[1].hub.broadcast("end2");
    for (const c of clients.slice(0, PER_NODE)) {
      assert.equal(text(await c.next()), "end2", "no room traffic after leaving");
    }
    assert.equal(nodes[0].hub.metrics().brokerIn, before + 1, "only the hub-wide broadcast reached node 0");
    for (const t of nodes) assert.deepEqual(t.brokerErrors, []);
    await closeAll(clients);
    clients.length = 0;
    // sessions gone: every room channel is left
    await eventually(() => subscribers(prefix, names), (counts) => counts.every((n) => n === 0), "no subscriber left");
  } finally {
    await closeAll(clients);
    await Promise.all(nodes.map((t) => t.close()));
    await cleanup(prefix);
  }
});

test("redis routing \"rooms\" with resumable sessions: a room's first member gets the room's broadcast sent right after its join; a node without members is not subscribed", async () => {
  const prefix = uniquePrefix("routing-resume");
  const resume = { resume: { window: 10_000 } };
  // a's subscriber holds the room's SUBSCRIBE until the broadcast's append would have run
  const gate = deferred();
  const client = gatedClient(gate.promise);
  const a = await startNode({ url: undefined, client, prefix, routing: "rooms" }, resume);
  const b = await startNode({ prefix, routing: "rooms" }, resume);
  const got: string[] = [];
  const received = deferred();
  const c = connect(a.wsUrl(), { minDelay: 20, maxDelay: 200 });
  try {
    a.hub.handleMessage((s, msg) => {
      // the join and the broadcast in one turn: the append waits for the room's SUBSCRIBE, so
      // the echo that numbers it for resumable members reaches this node
      s.join("fresh");
      a.hub.room("fresh").broadcast(`echo ${msg}`);
    });
    c.addEventListener("message", (e) => {
      got.push(e.data as string);
      if (got.length === 1) received.resolve();
    });
    c.addEventListener("open", () => c.send("one"), { once: true });
    await eventually(() => Promise.resolve(a.hub.room("fresh").size), (n) => n === 1, "the join on a");
    // a's commands run in order: once count() is answered, an append sent before it has run (and
    // its echo gone to a channel a is not subscribed to yet)
    await a.hub.count();
    gate.resolve();
    await deadline(received.promise, "the echo of the room's broadcast");
    assert.deepEqual(got, ["echo one"]);
    // the session lives in room "fresh"; b has no member there, so it is not subscribed
    assert.deepEqual(await subscribers(prefix, ["fresh"]), [1]);
    b.hub.room("fresh").broadcast("from b");
    await eventually(() => Promise.resolve(got.length), (n) => n === 2, "b's broadcast to reach the member on a");
    assert.deepEqual(got, ["echo one", "from b"]);
    assert.deepEqual([...a.brokerErrors, ...b.brokerErrors], []);
  } finally {
    gate.resolve();
    c.close();
    await Promise.all([a.close(), b.close()]);
    await client.close();
    await cleanup(prefix);
  }
});

test('redis routing "rooms": a session resumed on a node new to its room reads the room\'s stream only once that node is subscribed: a broadcast in between arrives once', async () => {
  const prefix = uniquePrefix("routing-recover");
  const resume = { resume: { window: 10_000 }, history: { size: 10 } }; // history: to see what is in the stream
  // b's subscriber holds every room SUBSCRIBE until the test lets it through
  const gate = deferred();
  const client = gatedClient(gate.promise);
  const a = await startNode({ prefix, routing: "rooms" }, resume);
  const b = await startNode({ url: undefined, client, prefix, routing: "rooms" }, resume);
  const c = await startNode({ prefix, routing: "rooms" }, resume);
  const lb = await Proxy.start(a.port);
  const w = new Watched(`ws://127.0.0.1:${lb.port}/`, new Signal());
  try {
    a.hub.handleConnect((s) => s.join("r"));
    await w.signal.until(() => w.opens.length === 1, "open on a");
    // a subscribes to room "r" as its session joins: a broadcast before that would not reach it
    await eventually(() => subscribers(prefix, ["r"]), ([n]) => n === 1, "a subscribed to r");
    c.hub.room("r").broadcast("before");
    await w.signal.until(() => w.got.length === 1, "the first broadcast");
    // the load balancer moves the client to b, which claims the session and joins room "r"
    lb.retarget(b.port);
    lb.cut();
    await eventually(() => Promise.resolve(b.hub.room("r").size), (n) => n === 1, "the session back in room r, on b");
    // b is not subscribed yet: this broadcast reaches it only through the stream it reads next
    c.hub.room("r").broadcast("while b subscribes");
    await eventually(
      async () => (await c.hub.room("r").history()).length,
      (n) => n === 2,
      "the broadcast in the room's stream",
    );
    gate.resolve();
    await w.signal.until(() => w.got.length === 2, "the broadcast made while b subscribed");
    c.hub.room("r").broadcast("after");
    await w.signal.until(() => w.got.length === 3, "a live one");
    assert.deepEqual(w.got, ["before", "while b subscribes", "after"]);
    assert.deepEqual(w.opens, [false, true], "resumed on b");
  } finally {
    gate.resolve();
    await w.end();
    await Promise.all([a.close(), b.close(), c.close()]);
    await lb.close();
    await client.close();
    await cleanup(prefix);
  }
});

test("redisBroker refuses an unknown routing", () => {
  // deno-lint-ignore no-explicit-any
  assert.throws(() => redisBroker({ routing: "room" as any }), /routing must be "single" or "rooms"/);
});
