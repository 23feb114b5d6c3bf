// The Redis Cluster fixture itself: a private 3-primary, 3-replica cluster on spare ports
// (never the shared Redis) forms, serves every slot, and fails a killed primary over to its replica.
import assert from "node:assert/strict";
import { rawRedis } from "./_cluster.ts";
import { RedisCluster } from "./_redis_cluster.ts";
import { test } from "./_helpers.ts";

/** CLUSTER SLOTS of one node: each range with its primary's port and its replicas' ports. */
async function slots(url: string): Promise<{ from: number; to: number; primary: number; replicas: number[] }[]> {
  const client = await rawRedis(url);
  try {
    const reply = await client.sendCommand(["CLUSTER", "SLOTS"]) as [number, number, ...[string, number][]][];
    return reply.map(([from, to, primary, ...replicas]) => ({
      from,
      to,
      primary: Number(primary[1]),
      replicas: replicas.map((r) => Number(r[1])),
    }));
  } finally {
    await client.close();
  }
}

test("redis cluster fixture: 3 primaries own every slot; a killed primary's replica takes over", async () => {
  const cluster = await RedisCluster.start();
  try {
    assert.equal(cluster.ports.length, 6);
    assert.equal(new Set(cluster.ports).size, 6);
    assert.equal(cluster.urls.length, 6);

    const ranges = await slots(cluster.urls[0]);
    assert.equal(new Set(ranges.map((r) => r.primary)).size, 3);
    assert.equal(ranges.reduce((n, r) => n + r.to - r.from + 1, 0), 16384);
    for (const r of ranges) assert.equal(r.replicas.length, 1, `replicas of ${r.primary}`);

    const before = await cluster.primaryOf("x");
    const replicas = ranges.filter((r) => r.primary === before).flatMap((r) => r.replicas);
    assert.ok(replicas.length > 0);
    const killed = await cluster.killPrimaryOf("x");
    assert.equal(killed, before);
    const after = await cluster.primaryOf("x");
    assert.notEqual(after, killed);
    assert.ok(replicas.includes(after), `${after} was a replica of ${killed} (${replicas})`);
    assert.equal(cluster.urls.length, 5);
    assert.ok(!cluster.urls.includes(`redis://127.0.0.1:${killed}`));
  } finally {
    await cluster.stop();
    await cluster.stop(); // safe twice
  }
});
