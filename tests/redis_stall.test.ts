// The stall fault, on a private redis-server this test starts on a spare port (never the shared
// one) and freezes with SIGSTOP: its connections stay open and nothing is answered, as when
// Redis hangs or the network drops packets without a reset.
import assert from "node:assert/strict";
import process from "node:process";
import { type ClusterNode, RedisServer, sparePort, startNode, text, uniquePrefix } from "./_cluster.ts";
import { type Client, closeAll, deadline, openClients, test } from "./_helpers.ts";

const SIZE = 32 * 1024;
const COUNT = 600;

/** Calls `fn(i)` for i = 0 … n-1, one call every `every` ms; resolves after the last. */
function every(ms: number, n: number, fn: (i: number) => void): Promise<void> {
  return new Promise((resolve) => {
    let i = 0;
    const timer = setInterval(() => {
      fn(i++);
      if (i === n) {
        clearInterval(timer);
        resolve();
      }
    }, ms);
  });
}

test("redis stall: broadcasts waiting for Redis stay bounded, the drop is reported once, delivery resumes", async () => {
  const redis = await RedisServer.start(await sparePort(16400, 16499));
  const maxPendingBytes = 1 << 20;
  // long heartbeats: the only thing this node sends Redis during the stall is broadcasts
  const options = {
    prefix: uniquePrefix("stall"),
    url: redis.url,
    maxPendingBytes,
    heartbeatInterval: 60_000,
    presenceTtl: 120_000,
  };
  const nodes: ClusterNode[] = [];
  const clients: Client[] = [];
  try {
    const a = await startNode(options);
    nodes.push(a);
    const b = await startNode(options);
    nodes.push(b);
    const [b1] = await openClients(b.wsUrl(), 1);
    clients.push(b1);
    a.hub.broadcast("before");
    assert.equal(await b1.next(), "before");

    redis.pause();
    const payload = "x".repeat(SIZE);
    const rssBefore = process.memoryUsage().rss;
    // 600 broadcasts of 32 KiB, one every 2 ms: 19 MiB that Redis cannot take
    await every(2, COUNT, (i) => a.hub.broadcast(`stall ${i} ${payload}`));
    const rssGrowth = process.memoryUsage().rss - rssBefore;
    await a.signal.until(() => a.brokerErrors.length > 0, "a to report the dropped broadcasts");
    assert.equal(a.brokerErrors.length, 1, `one report per outage: ${a.brokerErrors.map((e) => e.message)}`);
    assert.match(a.brokerErrors[0].message, /dropped/);

    redis.resume();
    // what reached Redis before the bound arrives at b, in order; then new broadcasts do
    let probes = 0;
    const timer = setInterval(() => a.hub.broadcast(`probe ${probes++}`), 50);
    const stalled: number[] = [];
    let first: string;
    try {
      while (true) {
        const m = text(await b1.next(10_000));
        const stall = m.match(/^stall (\d+) /);
        if (!stall) {
          first = m;
          break;
        }
        stalled.push(Number(stall[1]));
      }
    } finally {
      clearInterval(timer);
    }
    assert.match(first, /^probe \d+$/);
    const bound = Math.floor(maxPendingBytes / SIZE);
    assert.ok(
      stalled.length <= bound,
      `at most ${bound} broadcasts of the stall were in flight, not ${stalled.length} (rss grew ${rssGrowth} bytes)`,
    );
    assert.deepEqual(stalled, stalled.map((_, i) => i), "the first ones, in order");
    b.hub.broadcast("after");
    assert.equal(a.brokerErrors.length, 1, `nothing more reported: ${a.brokerErrors.map((e) => e.message)}`);
    assert.deepEqual(b.brokerErrors, []);
  } finally {
    await closeAll(clients);
    redis.resume();
    await Promise.all(nodes.map((n) => n.close()));
    await redis.stop();
  }
});

test("redis stall: count() rejects and hub.close() finishes in bounded time while Redis is frozen", async () => {
  const redis = await RedisServer.start(await sparePort(16400, 16499));
  const options = {
    prefix: uniquePrefix("stall-close"),
    url: redis.url,
    heartbeatInterval: 60_000,
    presenceTtl: 120_000,
  };
  let a: ClusterNode | undefined;
  const clients: Client[] = [];
  try {
    a = await startNode(options);
    const [a1] = await openClients(a.wsUrl(), 1);
    clients.push(a1);
    assert.equal(await a.hub.count(), 1);

    redis.pause();
    let start = Date.now();
    const err = await deadline(a.hub.count().then(() => undefined, (e: Error) => e), "count() to reject", 3000);
    assert.ok(err instanceof Error, "count() rejects");
    assert.match(err.message, /Redis/);
    const countTook = Date.now() - start;

    // broadcasts waiting for Redis, which a graceful close of the connection would wait for
    for (let i = 0; i < 5; i++) a.hub.broadcast(`during ${i}`);
    assert.deepEqual(await a1.take(5), [0, 1, 2, 3, 4].map((i) => `during ${i}`), "local delivery goes on");
    start = Date.now();
    await deadline(a.close(), "server.shutdown() (and hub.close()) while Redis is frozen", 3000);
    const closeTook = Date.now() - start;
    assert.ok(a.hub.isClosed());
    assert.equal((await a1.closed).code, 1001);
    assert.ok(countTook < 3000 && closeTook < 3000, `count rejected after ${countTook} ms, close took ${closeTook} ms`);
  } finally {
    await closeAll(clients);
    redis.resume();
    await a?.close();
    await redis.stop();
  }
});
