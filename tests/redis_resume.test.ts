// Resume on any node, through Redis: child-process nodes (tests/fixtures/resume_node.ts) and
// in-process ones, a TCP proxy as the load balancer, chorus-ws/client as the user's client. Every
// message is counted: nothing lost, nothing twice, in order.

import assert from "node:assert/strict";
import { Hub } from "../mod.ts";
import { redisBroker } from "../src/brokers/redis.ts";
import {
  type ChildNode,
  cleanup,
  eventually,
  rawRedis,
  REDIS_URL,
  RedisServer,
  shardSubscribers,
  sparePort,
  startChildNode,
  subscribers,
  uniquePrefix,
} from "./_cluster.ts";
import { deadline, deferred, runtime, Signal, test, Watched } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { RedisCluster } from "./_redis_cluster.ts";

const numbers = (n: number): string[] => Array.from({ length: n }, (_, i) => String(i + 1));

/**
 * An in-process node on the same Redis, for broadcasting from "a third node" (with the same
 * stream settings as the fixture's nodes: the nodes of a cluster share them).
 */
async function sender(
  prefix: string,
  url = REDIS_URL,
  routing: "single" | "rooms" = "single",
  cluster?: string[],
): Promise<Hub> {
  const hub = new Hub({
    broker: redisBroker(cluster ? { cluster, prefix } : { url, prefix, routing }),
    resume: { maxMessages: 20_000 },
    history: { size: 100 },
  });
  hub.handleBrokerError(() => {});
  await deadline(hub.ready(), "the sender to subscribe", 10_000);
  return hub;
}

/** Broadcasts `n` numbered messages to room "r", `every` ms apart, calling `at(i)` after each. */
async function stream(hub: Hub, n: number, tag: string, at: (i: number) => void | Promise<void>): Promise<void> {
  for (let i = 1; i <= n; i++) {
    hub.room("r").broadcast(`${tag}${i}`);
    await at(i);
    await new Promise((r) => setTimeout(r, 2));
  }
}

// then with per-room channels (the heir subscribes to room "r" as the session arrives), and on a
// Redis Cluster (room "r" on its own shard)
const other = runtime === "deno" ? "bun" : "deno";
for (
  const [victim, heir, routing] of [
    ["deno", "bun", "single"],
    ["bun", "deno", "single"],
    [runtime, other, "rooms"],
    [runtime, other, "cluster"],
  ] as const
) {
  const how = routing === "rooms" ? ' (routing "rooms")' : routing === "cluster" ? " on a Redis Cluster" : "";
  test(`redis resume${how}: a ${victim} node is SIGKILLed mid-stream; its client resumes on a ${heir} node, every message once, in order`, async () => {
    const prefix = uniquePrefix("resume-kill");
    const nodes: ChildNode[] = [];
    const signal = new Signal();
    let c3: Hub | undefined;
    let w: Watched | undefined;
    const lb = await Proxy.start(0);
    const cluster = routing === "cluster" ? await RedisCluster.start() : undefined;
    try {
      const env = cluster ? { PREFIX: prefix, CLUSTER: cluster.urls.join(",") } : { PREFIX: prefix, ROUTING: routing };
      nodes.push(await startChildNode(victim, env, "resume_node.ts"));
      nodes.push(await startChildNode(heir, env, "resume_node.ts"));
      lb.retarget(nodes[0].port);
      c3 = await sender(prefix, REDIS_URL, routing === "cluster" ? "rooms" : routing, cluster?.urls);
      w = new Watched(`ws://127.0.0.1:${lb.port}/`, signal);
      await signal.until(() => w!.opens.length === 1, "open on the first node");
      // a node receives a room's broadcasts of other nodes once its SUBSCRIBE is confirmed
      if (cluster) {
        await eventually(
          () => shardSubscribers(cluster, prefix, ["r"]),
          ([n]) => n === 1,
          "the first node's SSUBSCRIBE",
        );
      } else if (routing === "rooms") {
        await eventually(() => subscribers(prefix, ["r"]), ([n]) => n === 1, "the first node to subscribe to room r");
      }
      await stream(c3, 400, "n", async (i) => {
        if (i === 150) {
          await nodes[0].child.kill("SIGKILL"); // the load balancer sends the client elsewhere
          lb.retarget(nodes[1].port);
        }
      });
      await signal.until(() => w!.only("n").length >= 400, "400 messages", 20_000);
      assert.deepEqual(w.only("n"), numbers(400));
      assert.deepEqual(w.opens, [false, true], "resumed on the other node");
    } finally {
      await w?.end();
      await c3?.close();
      for (const n of nodes) await n.child.kill();
      await lb.close();
      if (cluster) await cluster.stop();
      else await cleanup(prefix);
    }
  });
}

test("redis resume: SIGTERM hands the sessions over (1012); both directions once, in order, on the next node", async () => {
  const prefix = uniquePrefix("resume-term");
  const nodes: ChildNode[] = [];
  const signal = new Signal();
  let w: Watched | undefined;
  const lb = await Proxy.start(0);
  const redis = await rawRedis();
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startChildNode(runtime, { PREFIX: prefix }, "resume_node.ts"));
    lb.retarget(nodes[0].port);
    w = new Watched(`ws://127.0.0.1:${lb.port}/`, signal);
    await signal.until(() => w!.opens.length === 1, "open");
    for (let i = 1; i <= 300; i++) {
      w.c.send(`m ${i}`);
      if (i === 120) {
        lb.retarget(nodes[1].port);
        nodes[0].child.proc.kill("SIGTERM"); // a rolling restart
      }
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    await signal.until(() => w!.only("echo ").length >= 300, "300 echoes", 20_000);
    assert.deepEqual(w.only("echo "), numbers(300), "every echo once, in order");
    assert.deepEqual(w.opens, [false, true]);
    const got = await redis.lRange(`${prefix}:got`, 0, -1);
    assert.equal(new Set(got.map((g) => g.split(" ")[0])).size, 1, "one session throughout");
    assert.deepEqual(got.map((g) => g.split(" ")[1]), numbers(300), "the hubs took every message once, in order");
    await nodes[0].child.exited;
    assert.ok(nodes[0].child.output.includes("closed"), "the first node closed its hub, then exited");
  } finally {
    await w?.end();
    for (const n of nodes) await n.child.kill();
    await lb.close();
    await redis.close();
    await cleanup(prefix);
  }
});

test("redis resume: a detached session resumes on another node while a third broadcasts; history matches on every node", async () => {
  const prefix = uniquePrefix("resume-move");
  const nodes: ChildNode[] = [];
  const signal = new Signal();
  let c3: Hub | undefined;
  let w: Watched | undefined;
  const lb = await Proxy.start(0);
  try {
    nodes.push(await startChildNode("deno", { PREFIX: prefix }, "resume_node.ts"));
    nodes.push(await startChildNode("bun", { PREFIX: prefix }, "resume_node.ts"));
    lb.retarget(nodes[0].port);
    c3 = await sender(prefix);
    w = new Watched(`ws://127.0.0.1:${lb.port}/`, signal);
    await signal.until(() => w!.opens.length === 1, "open");
    c3.room("r").broadcast("x0");
    await signal.until(() => w!.only("x").length === 1, "x0");
    lb.cut(true); // the client is away; its session waits on the first node
    for (let i = 1; i <= 50; i++) c3.room("r").broadcast(`x${i}`);
    lb.retarget(nodes[1].port);
    lb.heal();
    await signal.until(() => w!.opens.length === 2, "back, on the other node");
    c3.room("r").broadcast("x51");
    await signal.until(() => w!.only("x").length >= 52, "52 messages");
    assert.deepEqual(w.only("x"), Array.from({ length: 52 }, (_, i) => String(i)));
    assert.deepEqual(w.opens, [false, true]);
    // every node reads the same room history
    const histories: string[] = [];
    for (const node of nodes) {
      const ws = new WebSocket(`ws://127.0.0.1:${node.port}/`);
      const answer = deferred<string>();
      ws.onopen = () => ws.send("history");
      ws.onmessage = (e) => String(e.data).startsWith("history ") && answer.resolve(String(e.data));
      histories.push(await deadline(answer.promise, "a history"));
      ws.close();
      await new Promise((r) => (ws.onclose = r));
    }
    const fromC3 = (await c3.room("r").history()).map((e) => e.message);
    assert.deepEqual(JSON.parse(histories[0].slice(8)), fromC3);
    assert.deepEqual(JSON.parse(histories[1].slice(8)), fromC3);
    assert.deepEqual(fromC3.slice(-52), Array.from({ length: 52 }, (_, i) => `x${i}`));
  } finally {
    await w?.end();
    await c3?.close();
    for (const n of nodes) await n.child.kill();
    await lb.close();
    await cleanup(prefix);
  }
});

test("redis resume: a burst of 10,000 broadcasts with clients moved to another node in the middle: 0 lost, 0 duplicated", async () => {
  const prefix = uniquePrefix("resume-burst");
  const signal = new Signal();
  const lb = await Proxy.start(0);
  const make = async () => {
    const hub = new Hub({ broker: redisBroker({ url: REDIS_URL, prefix }), resume: { maxMessages: 20_000 } });
    hub.handleBrokerError(() => {});
    hub.handleConnect((s) => s.join("r"));
    const { serve } = await import("../src/serve.ts");
    const server = await serve(hub, { port: 0, hostname: "127.0.0.1" });
    await hub.ready();
    return { hub, server };
  };
  const a = await make();
  const b = await make();
  const c3 = await sender(prefix);
  lb.retarget(a.server.port);
  const clients = Array.from({ length: 5 }, () => new Watched(`ws://127.0.0.1:${lb.port}/`, signal));
  try {
    await signal.until(() => clients.every((w) => w.opens.length === 1) && a.hub.size === 5, "5 clients");
    for (let i = 1; i <= 10_000; i++) {
      c3.room("r").broadcast(`${i}`);
      if (i === 5000) {
        lb.retarget(b.server.port);
        lb.cut();
      }
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await signal.until(() => clients.every((w) => w.got.length >= 10_000), "10,000 messages each", 30_000);
    for (const w of clients) {
      assert.equal(w.got.length, 10_000, "no duplicate");
      assert.deepEqual(w.got, numbers(10_000));
      assert.deepEqual(w.opens, [false, true]);
    }
    assert.equal(b.hub.size, 5, "every session moved");
  } finally {
    for (const w of clients) await w.end();
    await c3.close();
    await a.server.shutdown();
    await b.server.shutdown();
    await lb.close();
    await cleanup(prefix);
  }
});

test("redis resume: Redis restarted while a session is detached: it resumes on its node, which saves it again, so it resumes elsewhere next", async () => {
  const redis = await RedisServer.start(await sparePort(16600, 16699));
  const url = redis.url;
  const prefix = uniquePrefix("resume-restart");
  const signal = new Signal();
  const lb = await Proxy.start(0);
  const { serve } = await import("../src/serve.ts");
  const make = async () => {
    const hub = new Hub({ broker: redisBroker({ url, prefix }), resume: {} });
    hub.handleBrokerError(() => {});
    hub.handleConnect((s) => s.join("r"));
    const server = await serve(hub, { port: 0, hostname: "127.0.0.1" });
    await hub.ready();
    return { hub, server };
  };
  const a = await make();
  const b = await make();
  lb.retarget(a.server.port);
  const stay = new Watched(`ws://127.0.0.1:${lb.port}/`, signal);
  let moved: Watched | undefined;
  try {
    await signal.until(() => stay.opens.length === 1, "open");
    a.hub.room("r").broadcast("1");
    await signal.until(() => stay.got.length === 1, "1");
    lb.cut(true);
    await redis.stop();
    // Redis is down: the broadcast waits for the connection to come back (within commandTimeout),
    // or, sent before the node saw it go, fails and is dropped for every resumable session
    // (counted): either way nobody is given it out of the stream.
    a.hub.room("r").broadcast("2");
    await redis.restart(); // empty: every stream and session state is gone
    await deadline(a.hub.ready(), "a reconnected");
    a.hub.room("r").broadcast("3");
    lb.heal();
    await signal.until(() => stay.opens.length === 2 && stay.got.includes("3"), "resumed on its node");
    const dropped = a.hub.metrics().brokerDropped;
    assert.deepEqual(stay.got, dropped === 1 ? ["1", "3"] : ["1", "2", "3"], `brokerDropped ${dropped}`);
    assert.deepEqual(stay.opens, [false, true], "its node still holds it: Redis lost the state, nobody took it");
    // then the client comes back to the other node: its node saved the state again once Redis
    // was back, so the other node continues it, with what it missed
    lb.cut(true);
    a.hub.room("r").broadcast("4");
    lb.retarget(b.server.port);
    lb.heal();
    await signal.until(() => stay.opens.length === 3 && stay.got.includes("4"), "back, elsewhere");
    assert.equal(stay.opens[2], true);
    assert.deepEqual(stay.got.slice(-2), ["3", "4"]);
    moved = stay;
  } finally {
    await (moved ?? stay).end();
    await a.server.shutdown();
    await b.server.shutdown();
    await lb.close();
    await redis.stop();
  }
});

test("redis resume: a broadcast larger than the broker allows throws before anything is sent, also through a stream", async () => {
  const prefix = uniquePrefix("resume-big");
  const hub = new Hub({ broker: redisBroker({ url: REDIS_URL, prefix, maxMessageSize: 1024 }), resume: {} });
  hub.handleBrokerError(() => {});
  try {
    await deadline(hub.ready(), "ready", 10_000);
    assert.throws(() => hub.broadcast("x".repeat(2000)), RangeError);
    assert.throws(() => hub.room("r").broadcast(new Uint8Array(2000)), RangeError);
    assert.equal(hub.metrics().messagesOut, 0);
    assert.ok((hub.metrics().brokerLatency ?? 0) >= 0);
  } finally {
    await hub.close();
    await cleanup(prefix);
  }
});
