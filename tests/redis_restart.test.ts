// The restart fault, on a private redis-server this test starts on a spare port (never the
// shared one): killed while two nodes run, then started again on the same port.
import assert from "node:assert/strict";
import { eventually, RedisServer, startNode, text, uniquePrefix } from "./_cluster.ts";
import { type Client, closeAll, openClients, test } from "./_helpers.ts";

test("redis restart: local delivery goes on, the error is reported, cross-node delivery and counts come back", async () => {
  const redis = await RedisServer.start();
  const prefix = uniquePrefix("restart");
  const options = { prefix, url: redis.url, heartbeatInterval: 200, presenceTtl: 1000 };
  const a = await startNode(options);
  const b = await startNode(options);
  const clients: Client[] = [];
  try {
    const [a1, b1] = [...await openClients(a.wsUrl(), 1), ...await openClients(b.wsUrl(), 1)];
    clients.push(a1, b1);
    await eventually(() => a.hub.count(), (n) => n === 2, "both sessions counted");
    a.hub.broadcast("before");
    assert.deepEqual([await a1.next(), await b1.next()], ["before", "before"]);

    await redis.stop();
    await a.signal.until(() => a.brokerErrors.length > 0, "a to report the lost connection");
    await b.signal.until(() => b.brokerErrors.length > 0, "b to report the lost connection");
    assert.ok(
      a.brokerErrors.some((e) => /Redis (publish|subscribe) connection/.test(e.message)),
      String(a.brokerErrors),
    );

    // the outage: local delivery never stops; cross-node broadcasts are dropped, counts refuse
    for (let i = 0; i < 3; i++) a.hub.broadcast(`during ${i}`);
    assert.deepEqual(await a1.take(3), ["during 0", "during 1", "during 2"]);
    b.hub.room("nobody").broadcast("x");
    b.hub.broadcast("b during");
    assert.equal(await b1.next(), "b during");
    await assert.rejects(a.hub.count());
    assert.equal(a.hub.size, 1);

    await redis.restart();
    // cross-node delivery resumes once both nodes have reconnected and resubscribed
    let probes = 0;
    const timer = setInterval(() => a.hub.broadcast(`probe ${probes++}`), 50);
    let first: string;
    try {
      first = text(await b1.next(15_000));
    } finally {
      clearInterval(timer);
    }
    assert.match(first, /^probe \d+$/, "nothing from the outage is replayed");
    assert.deepEqual((await a1.take(probes)).map(text), Array.from({ length: probes }, (_, i) => `probe ${i}`));
    b.hub.broadcast("after");
    assert.equal(await a1.next(), "after");
    // counts are rewritten into the fresh Redis by the reconnect or the next heartbeat
    await eventually(() => a.hub.count(), (n) => n === 2, "both sessions counted again", 5000);
    await eventually(() => b.hub.count(), (n) => n === 2, "both sessions counted again on b", 5000);
    assert.equal(a1.pending, 0);
  } finally {
    await closeAll(clients);
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
  }
});
