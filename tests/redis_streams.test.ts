// The Redis broker's streams and session states, driven directly with fake links (no hub),
// against the shared Redis (a unique prefix per test) and, for the stall, a private redis-server
// on a spare port (16500-16599) that the test freezes with SIGSTOP.
import assert from "node:assert/strict";
import type { Broker, BrokerStreams } from "../mod.ts";
import { redisBroker, type RedisBrokerOptions } from "../src/brokers/redis.ts";
import { safeKey } from "../src/brokers/_redis_keys.ts";
import { cleanup, rawRedis, REDIS_URL, RedisServer, sparePort, uniquePrefix } from "./_cluster.ts";
import { deadline, test } from "./_helpers.ts";
import { type FakeLink, fakeLink, state, until } from "./_streams.ts";

async function nodes(
  prefix: string,
  n: number,
  options: RedisBrokerOptions = {},
): Promise<{ brokers: Broker[]; links: FakeLink[]; streams: BrokerStreams[]; stop: () => Promise<void> }> {
  const brokers: Broker[] = [];
  const links: FakeLink[] = [];
  for (let i = 0; i < n; i++) {
    const broker = redisBroker({ url: REDIS_URL, prefix, ...options });
    const link = fakeLink(`node-${i}`);
    brokers.push(broker);
    links.push(link);
    await broker.start(link);
  }
  return {
    brokers,
    links,
    streams: brokers.map((b) => b.streams!),
    stop: async () => {
      await Promise.all(brokers.map((b) => b.stop()));
      await cleanup(prefix);
    },
  };
}

test("redis streams: append reaches every node, the publisher too, with offsets in one epoch; read pages; trimming", async () => {
  const prefix = uniquePrefix("streams");
  const { links, streams, stop } = await nodes(prefix, 2);
  const [a, b] = links;
  try {
    for (let i = 1; i <= 5; i++) await streams[0].append({ node: "node-0", kind: "all", payload: `m${i}` }, 100);
    await streams[1].append({ node: "node-1", kind: "others", payload: new Uint8Array([0, 255]), except: "s-1" }, 100);
    await until(() => a.got.length === 6 && b.got.length === 6, "six messages on each node");
    for (const link of [a, b]) {
      assert.deepEqual(link.got.map((m) => m.position!.offset), [1, 2, 3, 4, 5, 6]);
      assert.equal(new Set(link.got.map((m) => m.position!.epoch)).size, 1, "one epoch");
      assert.ok(link.got.every((m) => m.position!.key === "h"));
      assert.deepEqual(link.got.slice(0, 5).map((m) => m.payload), ["m1", "m2", "m3", "m4", "m5"]);
      const last = link.got[5];
      assert.deepEqual(last.payload, new Uint8Array([0, 255]));
      assert.equal(last.except, "s-1");
      assert.equal(last.kind, "others");
      assert.equal(last.node, "node-1");
    }
    const epoch = a.got[0].position!.epoch;
    assert.ok(epoch.length >= 8, `epoch ${epoch}`);
    const seqs = a.got.map((m) => m.position!.seq);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
    assert.ok(Math.abs(a.got[0].position!.time - Date.now()) < 10_000, "time in ms");

    let page = await streams[1].read("h", 0, 100);
    assert.equal(page.epoch, epoch);
    assert.equal(page.top, 6);
    assert.deepEqual(page.entries.map((e) => e.offset), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(page.entries[0], { ...a.got[0].position!, kind: "all", payload: "m1" });
    assert.deepEqual(page.entries[5], {
      ...a.got[5].position!,
      kind: "others",
      except: "s-1",
      payload: new Uint8Array([0, 255]),
    });
    page = await streams[0].read("h", 2, 2);
    assert.deepEqual(page.entries.map((e) => e.payload), ["m3", "m4"]);
    assert.deepEqual((await streams[0].read("h", 6, 10)).entries, []);
    assert.deepEqual(await streams[0].read("h", 0, 0), { epoch, top: 6, entries: [] });
    assert.deepEqual(await streams[0].read("r:none", 0, 10), { epoch: "", top: 0, entries: [] });

    // trimming: the stream keeps the last `limit`
    await streams[0].append({ node: "node-0", kind: "all", payload: "m7" }, 3);
    page = await streams[0].read("h", 0, 100);
    assert.equal(page.top, 7);
    assert.deepEqual(page.entries.map((e) => e.offset), [5, 6, 7]);

    // rooms: one stream per room, any name; seq increases across streams
    const room = "blue {x} *? ü %41 \u0000 \ud800";
    await streams[1].append({ node: "node-1", kind: "room", room, payload: "to room" }, 10);
    await streams[0].append(
      { node: "node-0", kind: "room-others", room: "blue", except: "s-2", payload: "to blue" },
      10,
    );
    await until(() => a.got.length === 9 && b.got.length === 9, "the room messages");
    const [odd, blue] = b.got.slice(7);
    assert.equal(odd.position!.key, "r:" + new TextDecoder().decode(new TextEncoder().encode(room)));
    assert.equal(odd.position!.offset, 1);
    assert.equal(blue.position!.key, "r:blue");
    assert.equal(blue.position!.offset, 1);
    assert.notEqual(odd.position!.epoch, blue.position!.epoch);
    const all = b.got.map((m) => m.position!.seq);
    assert.deepEqual(all, [...all].sort((x, y) => x - y), "seq increases across streams");
    assert.equal(new Set(all).size, all.length);
    assert.deepEqual((await streams[0].read("r:" + room, 0, 10)).entries.map((e) => e.payload), ["to room"]);
    assert.deepEqual((await streams[0].read("r:blue", 0, 10)).entries[0].except, "s-2");

    const redis = await rawRedis();
    try {
      const keys = (await redis.keys(`${prefix}:*`)).sort();
      assert.ok(keys.includes(`${prefix}:st:r:blue`) && keys.includes(`${prefix}:sm:r:blue`), keys.join(" "));
      assert.ok(keys.includes(`${prefix}:st:${safeKey("r:" + room)}`));
      assert.ok(!keys.some((k) => /[{}*?\s]/.test(k.slice(prefix.length))), `safe keys: ${keys.join(" ")}`);
      const streamTtl = await redis.pTTL(`${prefix}:st:h`);
      const metaTtl = await redis.pTTL(`${prefix}:sm:h`);
      assert.ok(streamTtl > 23 * 3600_000 && streamTtl <= 24 * 3600_000, `stream ttl ${streamTtl}`);
      assert.ok(metaTtl > 29 * 24 * 3600_000, `meta ttl ${metaTtl}`);
      // a lost stream (its meta gone): offsets restart in a new epoch, old entries are gone
      await redis.del(`${prefix}:sm:h`);
    } finally {
      await redis.close();
    }
    await streams[0].append({ node: "node-0", kind: "all", payload: "anew" }, 10);
    await until(() => b.got.length === 10, "the message after the loss");
    const anew = b.got[9].position!;
    assert.equal(anew.offset, 1);
    assert.notEqual(anew.epoch, epoch);
    page = await streams[1].read("h", 0, 10);
    assert.deepEqual([page.epoch, page.top, page.entries.map((e) => e.payload)], [anew.epoch, 1, ["anew"]]);
    assert.deepEqual([...a.errors, ...b.errors], []);
  } finally {
    await stop();
  }
});

test("redis streams: plain publishes keep dropping their own echo; appends are bounded by maxMessageSize", async () => {
  const prefix = uniquePrefix("streams-echo");
  const { brokers, links, streams, stop } = await nodes(prefix, 2, { maxMessageSize: 1000 });
  const [a, b] = links;
  try {
    brokers[0].publish({ node: "node-0", kind: "all", payload: "plain" });
    await streams[0].append({ node: "node-0", kind: "all", payload: "streamed" }, 10);
    await until(() => b.got.length === 2 && a.got.length === 1, "both on b, the streamed one on a");
    assert.deepEqual(a.got.map((m) => m.payload), ["streamed"]);
    // thrown before anything is sent, as a publish does
    assert.throws(() => streams[0].append({ node: "node-0", kind: "all", payload: "x".repeat(1000) }, 10), RangeError);
    assert.throws(() => streams[0].append({ node: "node-0", kind: "all", payload: "x" }, 0), RangeError);
  } finally {
    await stop();
  }
});

test("redis streams: appendOwn keeps a session's messages without publishing them", async () => {
  const prefix = uniquePrefix("streams-own");
  const { links, streams, stop } = await nodes(prefix, 2);
  try {
    const p1 = await streams[0].appendOwn("sess-1", "one", 2);
    const p2 = await streams[0].appendOwn("sess-1", new Uint8Array([1, 2]), 2);
    const p3 = await streams[0].appendOwn("sess-1", "three", 2);
    assert.equal(p1.key, "s:sess-1");
    assert.deepEqual([p1.offset, p2.offset, p3.offset], [1, 2, 3]);
    assert.equal(new Set([p1.epoch, p2.epoch, p3.epoch]).size, 1);
    assert.ok(p1.seq < p2.seq && p2.seq < p3.seq);
    const page = await streams[1].read("s:sess-1", 0, 10);
    assert.equal(page.top, 3);
    assert.deepEqual(page.entries, [{ ...p2, kind: "own", payload: new Uint8Array([1, 2]) }, {
      ...p3,
      kind: "own",
      payload: "three",
    }]);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(links.flatMap((l) => l.got), [], "nothing published");
  } finally {
    await stop();
  }
});

test("redis sessions: save, claim once on another node (the old node gets released), drop", async () => {
  const prefix = uniquePrefix("sessions");
  const { links, streams, stop } = await nodes(prefix, 3);
  const [a, b, c] = links;
  const redis = await rawRedis();
  try {
    const s1 = state("sess-1", "tok-1");
    await streams[0].saveSession(s1, 60_000);
    assert.deepEqual(await redis.sMembers(`${prefix}:ns:node-0`), ["sess-1"]);
    assert.equal(await redis.get(`${prefix}:tk:tok-1`), "sess-1");
    // a new credential replaces the old one's index entry
    const s2 = { ...s1, token: "tok-2", received: 9 };
    await streams[0].saveSession(s2, 60_000);
    assert.equal(await redis.exists(`${prefix}:tk:tok-1`), 0);
    assert.equal(await streams[1].claimSession("tok-1"), undefined, "an old credential claims nothing");

    assert.deepEqual(await streams[1].claimSession("tok-2"), s2);
    await until(() => a.freed.length === 1, "node-0 to be told");
    assert.deepEqual(a.freed, ["sess-1"]);
    assert.deepEqual([b.freed, c.freed], [[], []], "only the old node");
    assert.equal(await streams[2].claimSession("tok-2"), undefined, "single use");
    assert.deepEqual(await redis.sMembers(`${prefix}:ns:node-0`), []);
    assert.deepEqual(await redis.sMembers(`${prefix}:ns:node-1`), ["sess-1"]);
    assert.equal(await redis.hGet(`${prefix}:ss:sess-1`, "node"), "node-1");

    // the old node, not told yet, saves or drops: ignored, the session is node-1's now
    await streams[0].saveSession({ ...s2, token: "tok-stale" }, 60_000);
    await streams[0].dropSession("sess-1");
    assert.equal(await redis.hGet(`${prefix}:ss:sess-1`, "node"), "node-1");
    assert.equal(await redis.exists(`${prefix}:tk:tok-stale`), 0);

    // the new node saves with a new credential, a third node claims it
    const s3 = { ...s2, token: "tok-3", rooms: ["blue", "red ✓"] };
    await streams[1].saveSession(s3, 60_000);
    await streams[1].appendOwn("sess-1", "kept", 10);
    assert.deepEqual(await streams[2].claimSession("tok-3"), s3);
    await until(() => b.freed.length === 1, "node-1 to be told");
    // dropSession forgets the state, its credential, its set membership and its own stream
    await streams[2].saveSession({ ...s3, token: "tok-4" }, 60_000);
    await streams[2].dropSession("sess-1");
    assert.deepEqual(await redis.keys(`${prefix}:ss:*`), []);
    assert.deepEqual(await redis.keys(`${prefix}:tk:*`), []);
    assert.deepEqual(await redis.sMembers(`${prefix}:ns:node-2`), []);
    assert.deepEqual(await redis.keys(`${prefix}:st:s:*`), []);
    assert.equal(await streams[0].claimSession("tok-4"), undefined);
    assert.equal(await streams[0].claimSession("never"), undefined);

    // ids and credentials of any text
    const odd = state("id {with} * spaces ✓", "tok {x} ?");
    await streams[0].saveSession(odd, 60_000);
    assert.deepEqual(await streams[1].claimSession(odd.token), odd);
    assert.deepEqual([...a.errors, ...b.errors, ...c.errors], []);
  } finally {
    await redis.close();
    await stop();
  }
});

test("redis sessions: the heartbeat refreshes their TTLs; stop() keeps them; they expire after the node dies", async () => {
  const prefix = uniquePrefix("sessions-ttl");
  const { brokers, streams, stop } = await nodes(prefix, 2, { heartbeatInterval: 100, presenceTtl: 1000 });
  const redis = await rawRedis();
  try {
    await streams[0].saveSession(state("sess-1", "tok-1"), 1000);
    await streams[0].appendOwn("sess-1", "own", 10);
    await new Promise((r) => setTimeout(r, 600));
    for (const key of ["ss:sess-1", "tk:tok-1", "ns:node-0"]) {
      const ttl = await redis.pTTL(`${prefix}:${key}`);
      assert.ok(ttl > 700 && ttl <= 1000, `${key} refreshed: ${ttl}`);
    }
    assert.ok(await redis.pTTL(`${prefix}:st:s:sess-1`) > 23 * 3600_000);
    await brokers[0].stop();
    assert.equal(await redis.exists(`${prefix}:ss:sess-1`), 1, "stop() keeps the states");
    assert.equal(await redis.exists(`${prefix}:tk:tok-1`), 1);
    await new Promise((r) => setTimeout(r, 1200));
    assert.equal(await redis.exists(`${prefix}:ss:sess-1`), 0, "expired after its node stopped");
    assert.equal(await streams[1].claimSession("tok-1"), undefined);
    await assert.rejects(streams[0].append({ node: "node-0", kind: "all", payload: "x" }, 10), /not running/);
  } finally {
    await redis.close();
    await stop();
  }
});

test("redis streams: while Redis is frozen reads, claims and saves reject within commandTimeout; appends wait, bounded by maxPendingBytes, and are taken once it answers", async () => {
  const server = await RedisServer.start(await sparePort(16500, 16599));
  const prefix = uniquePrefix("streams-stall");
  const options = { url: server.url, commandTimeout: 500, heartbeatInterval: 60_000, presenceTtl: 120_000 };
  const { brokers, links, streams } = await nodes(prefix, 1, options);
  try {
    await streams[0].append({ node: "node-0", kind: "all", payload: "before" }, 10);
    await until(() => links[0].got.length === 1, "the message before");
    server.pause();
    const start = Date.now();
    // an append is not failed for being slow: failing it would have the hub deliver it twice
    const during = streams[0].append({ node: "node-0", kind: "all", payload: "during" }, 10);
    const own = streams[0].appendOwn("s", "during", 10);
    const results = await deadline(
      Promise.allSettled([
        streams[0].read("h", 0, 10),
        streams[0].claimSession("tok"),
        streams[0].saveSession(state("s", "tok"), 1000),
        streams[0].dropSession("s"),
      ]),
      "every call but the appends to settle",
      3000,
    );
    const took = Date.now() - start;
    for (const r of results) {
      assert.equal(r.status, "rejected");
      assert.match((r as PromiseRejectedResult).reason.message, /Redis did not answer/);
    }
    assert.ok(took < 1500, `rejected after ${took} ms`);
    // appends wait in maxPendingBytes like broadcasts: past it they fail at once
    const big = "x".repeat(3 << 20);
    const first = streams[0].append({ node: "node-0", kind: "all", payload: big }, 10);
    await assert.rejects(streams[0].append({ node: "node-0", kind: "all", payload: big }, 10), /maxPendingBytes/);
    server.resume();
    await deadline(Promise.all([during, own, first]), "the waiting appends, once Redis answers", 5000);
    await until(() => links[0].got.length === 3, "before, during and the big one, each once");
  } finally {
    server.resume();
    await Promise.all(brokers.map((b) => b.stop()));
    await server.stop();
  }
});

test("redis sessions: a claim that timed out behind a frozen Redis still runs: the next claim of its credential gets its answer, or the state is saved again", async () => {
  const server = await RedisServer.start(await sparePort(16500, 16599));
  const prefix = uniquePrefix("claim-late");
  const options = { url: server.url, commandTimeout: 300, heartbeatInterval: 60_000, presenceTtl: 120_000 };
  const { brokers, streams } = await nodes(prefix, 2, options);
  try {
    await streams[0].saveSession(state("s1", "tok-1"), 60_000);
    await streams[0].saveSession(state("s2", "tok-2"), 60_000);
    server.pause();
    await assert.rejects(streams[1].claimSession("tok-1"), /Redis did not answer/);
    await assert.rejects(streams[1].claimSession("tok-2"), /Redis did not answer/);
    // the client tries tok-1 again on the same node while Redis is still frozen
    const again = streams[1].claimSession("tok-1");
    server.resume();
    assert.equal((await again)?.id, "s1", "the late claim's answer");
    // nobody came back for tok-2 here: its state is saved again, claimable on any node
    let s2: unknown;
    for (let i = 0; i < 50 && !s2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      s2 = await streams[0].claimSession("tok-2");
    }
    assert.equal((s2 as { id: string } | undefined)?.id, "s2");
  } finally {
    server.resume();
    await Promise.all(brokers.map((b) => b.stop()));
    await server.stop();
  }
});

test("redis streams: on a Redis without the scripts (new, restarted, or a promoted replica), a burst of appends takes offsets in the order it was sent", async () => {
  const prefix = uniquePrefix("streams-order");
  for (let round = 0; round < 2; round++) {
    // a fresh server each round: no script cached
    const server = await RedisServer.start();
    const broker = redisBroker({ url: server.url, prefix });
    try {
      await broker.start(fakeLink("node-0"));
      // calls spread over several turns, so that some are sent while the first is answered
      const sent: Promise<{ offset: number }>[] = [];
      for (let i = 0; i < 400; i++) {
        sent.push(broker.streams!.appendOwn("s-1", `m${i}`, 1000));
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 0));
      }
      const offsets = (await Promise.all(sent)).map((p) => p.offset);
      assert.deepEqual(offsets, offsets.map((_, i) => i + 1), "offsets in the order of the calls");
    } finally {
      await broker.stop();
      await server.stop();
    }
  }
});
