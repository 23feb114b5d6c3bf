// A stream that starts a new epoch (Redis restarted empty) while a resumable session holds frames
// of the old one: the new epoch is a new stream id, so the client tells the two apart, and a
// resume forgets what the client's position in the newer epoch covers. A redis-server of its own.

import assert from "node:assert/strict";
import { Hub } from "../mod.ts";
import { redisBroker } from "../src/brokers/redis.ts";
import { cleanup, eventually, rawRedis, RedisServer, uniquePrefix } from "./_cluster.ts";
import { deadline, test } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { V1Peer } from "./_v1.ts";

test("redis resume: frames of two epochs of one stream are two streams; a resume on the same node sends none the client has", async () => {
  const redis = await RedisServer.start();
  const hub = new Hub({ broker: redisBroker({ url: redis.url, prefix: uniquePrefix("epochs") }), resume: {} });
  hub.handleBrokerError(() => {});
  hub.handleConnect((s) => s.join("r"));
  const { serve } = await import("../src/serve.ts");
  const server = await serve(hub, { port: 0, hostname: "127.0.0.1" });
  const proxy = await Proxy.start(server.port);
  let again: V1Peer | undefined;
  const { peer, welcome } = await V1Peer.open(`ws://127.0.0.1:${proxy.port}/`);
  try {
    await deadline(hub.ready(), "ready");
    hub.room("r").broadcast("1");
    hub.room("r").broadcast("2");
    await peer.until(() => peer.got.length === 2, "1 and 2");
    await redis.stop();
    await redis.restart(); // empty: room r's stream starts a new epoch
    await deadline(hub.ready(), "reconnected");
    hub.room("r").broadcast("3");
    hub.room("r").broadcast("4");
    await peer.until(() => peer.got.length === 4, "3 and 4");
    assert.deepEqual(peer.texts, ["1", "2", "3", "4"]);
    // each epoch of room r (the first one unknown until a message brought it) under an id of its own
    const rooms = [...peer.streams].filter(([, s]) => s.key === "r:r" && s.epoch !== "");
    assert.equal(new Set(rooms.map(([, s]) => s.epoch)).size, 2, "two epochs");
    assert.equal(new Set(rooms.map(([id]) => id)).size, 2, "two ids");
    const pos = peer.position(); // r:r in the new epoch, at 2
    proxy.cut(); // nothing acknowledged: all four are still kept
    again = (await V1Peer.resume(`ws://127.0.0.1:${proxy.port}/`, welcome.token, pos)).peer;
    hub.room("r").broadcast("5");
    await again.until(() => again!.texts.includes("5"), "5");
    assert.deepEqual(again.texts, ["5"], "nothing the client had is sent again");
  } finally {
    await again?.close();
    await peer.close().catch(() => {});
    await server.shutdown();
    await proxy.close();
    await redis.stop();
  }
});

test("redis resume: after Redis restarted, a room a session joins on its node is followed from the join: a resume on another node gets all of it", async () => {
  const redis = await RedisServer.start();
  const prefix = uniquePrefix("epochs-seq");
  const { serve } = await import("../src/serve.ts");
  const node = async () => {
    const hub = new Hub({ broker: redisBroker({ url: redis.url, prefix }), resume: {} });
    hub.handleBrokerError(() => {});
    const server = await serve(hub, { port: 0, hostname: "127.0.0.1" });
    await deadline(hub.ready(), "ready");
    return { hub, server };
  };
  const a = await node();
  const b = await node();
  const proxy = await Proxy.start(a.server.port);
  let again: V1Peer | undefined;
  const { peer, welcome } = await V1Peer.open(`ws://127.0.0.1:${proxy.port}/`);
  try {
    for (let i = 1; i <= 50; i++) b.hub.broadcast(`h${i}`); // the nodes' sequence grows to 50
    await peer.until(() => peer.got.length === 50, "50 hub-wide");
    await redis.stop();
    await redis.restart(); // empty: the sequence starts over at 1
    await deadline(Promise.all([a.hub.ready(), b.hub.ready()]), "reconnected");
    // once both nodes are back (a broadcast before that is dropped, and counted), one arrives
    let probes = 0;
    const timer = setInterval(() => b.hub.broadcast(`after${probes++}`), 50);
    try {
      await peer.until(() => peer.texts.some((m) => String(m).startsWith("after")), "one after the restart", 10_000);
    } finally {
      clearInterval(timer);
    }
    const s = a.hub.sessions()[0];
    s.join("x"); // a room new to node a
    const raw = await rawRedis(redis.url);
    try {
      await eventually(
        () => raw.hGet(`${prefix}:ss:${s.id}`, "rooms"),
        (r) => r === '["x"]',
        "its state saved with the room",
      );
    } finally {
      await raw.close();
    }
    const pos = peer.position();
    proxy.cut();
    for (let i = 1; i <= 5; i++) b.hub.room("x").broadcast(`x${i}`);
    proxy.retarget(b.server.port);
    again = (await V1Peer.resume(`ws://127.0.0.1:${proxy.port}/`, welcome.token, pos)).peer;
    assert.equal((await again.welcome).resumed, true);
    await again.until(() => again!.texts.filter((m) => String(m).startsWith("x")).length === 5, "x1..x5");
    assert.deepEqual(again.texts.filter((m) => String(m).startsWith("x")), ["x1", "x2", "x3", "x4", "x5"]);
  } finally {
    await again?.close();
    await peer.close().catch(() => {});
    await a.server.shutdown();
    await b.server.shutdown();
    await proxy.close();
    await cleanup(prefix, redis.url).catch(() => {});
    await redis.stop();
  }
});
