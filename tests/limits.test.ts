import assert from "node:assert/strict";
import { MessageBufferFullError, type Session } from "../mod.ts";
import { Client, deadline, deferred, RawPeer, runtime, startServer, test } from "./_helpers.ts";

test("a cross-origin upgrade is refused with 403 by default; same origin and no origin pass", async () => {
  const t = await startServer();
  const peers: RawPeer[] = [];
  try {
    const evil = await RawPeer.upgrade(t.port, "/", { Origin: "https://evil.example" });
    peers.push(evil);
    assert.equal(evil.status, 403);
    const garbage = await RawPeer.upgrade(t.port, "/", { Origin: "not a url" });
    peers.push(garbage);
    assert.equal(garbage.status, 403);
    const same = await RawPeer.upgrade(t.port, "/", { Origin: `http://127.0.0.1:${t.port}` });
    peers.push(same);
    assert.equal(same.status, 101);
    const none = await RawPeer.upgrade(t.port, "/");
    peers.push(none);
    assert.equal(none.status, 101);
    await t.signal.until(() => t.hub.size === 2, "the two accepted sessions");
  } finally {
    await Promise.all(peers.map((p) => p.destroy()));
    await t.close();
  }
});

test("checkOrigin opens cross-origin upgrades and sees the origin and request", async () => {
  const asked: [string, string][] = [];
  const t = await startServer({
    checkOrigin: (origin, req) => {
      asked.push([origin, new URL(req.url).pathname]);
      return origin === "https://app.example";
    },
  });
  const peers: RawPeer[] = [];
  try {
    const app = await RawPeer.upgrade(t.port, "/ws", { Origin: "https://app.example" });
    peers.push(app);
    assert.equal(app.status, 101);
    const other = await RawPeer.upgrade(t.port, "/ws", { Origin: `http://127.0.0.1:${t.port}` });
    peers.push(other);
    assert.equal(other.status, 403, "a custom check replaces the same-origin default");
    assert.deepEqual(asked, [["https://app.example", "/ws"], [`http://127.0.0.1:${t.port}`, "/ws"]]);
  } finally {
    await Promise.all(peers.map((p) => p.destroy()));
    await t.close();
  }
});

test("a peer that never answers pings is dropped within pongWait; a live one stays", async () => {
  // Deno pings by itself (idleTimeout = pongWait, whole seconds); on Bun the hub pings.
  const pongWait = 1000;
  const t = await startServer({ pingInterval: 300, pongWait });
  let pongs = 0;
  t.hub.handlePong(() => {
    pongs++;
    t.signal.ping();
  });
  t.hub.handleMessage((s, m) => s.write(m));
  const silent = await RawPeer.upgrade(t.port);
  const live = await Client.open(t.wsUrl());
  try {
    await t.signal.until(() => t.hub.size === 2, "2 sessions");
    const [silentSession] = t.hub.sessions();
    const opened = Date.now();
    // bounded by pongWait, one ping interval and the runtime's timer granularity
    await t.signal.until(() => silentSession.isClosed(), "the silent peer dropped", pongWait * 4);
    const took = Date.now() - opened;
    assert.ok(took <= pongWait * 3, `dropped after ${took} ms`);
    await deadline(silent.ended, "the server ends the silent connection", 10_000);
    if (runtime === "bun") {
      await t.signal.until(() => pongs > 0, "pongs from the live client");
    }
    live.send("still here");
    assert.equal(await live.next(), "still here");
    assert.equal(live.ws.readyState, WebSocket.OPEN);
    assert.equal(t.hub.size, 1);
  } finally {
    await silent.destroy();
    await live.close();
    await t.close();
  }
});

/**
 * Connects a raw peer that never reads, then writes 64 KiB messages until `count` writes were
 * made; returns the session and the highest bufferedAmount seen.
 */
async function flood(
  onBufferFull: "drop" | "close",
): Promise<{ errors: Error[]; maxSeen: number; session: Session; disconnected: boolean; writes: number }> {
  const limit = 1 << 20;
  const t = await startServer({ maxBufferedAmount: limit, onBufferFull });
  const connected = deferred<Session>();
  t.hub.handleConnect((s) => connected.resolve(s));
  const peer = await RawPeer.upgrade(t.port);
  peer.pause();
  try {
    const session = await connected.promise;
    const chunk = new Uint8Array(64 * 1024);
    let maxSeen = 0;
    let writes = 0;
    // 500 × 64 KiB = 32 MiB: far more than the kernel's socket buffers hold
    for (; writes < 500 && !session.isClosed(); writes++) {
      session.write(chunk);
      maxSeen = Math.max(maxSeen, session.bufferedAmount);
      // let the runtime flush to the kernel now and then, as a real server would
      if (writes % 50 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    return {
      errors: [...t.errors],
      maxSeen,
      session,
      disconnected: t.disconnects.includes(session.id),
      writes,
    };
  } finally {
    await peer.destroy();
    await t.close();
  }
}

test("a client that never reads: outbound memory stays bounded and MessageBufferFullError is reported", async () => {
  const { errors, maxSeen, session, writes } = await flood("drop");
  assert.equal(writes, 500, "the session stayed open");
  assert.ok(maxSeen <= 1 << 20, `bufferedAmount peaked at ${maxSeen}`);
  assert.ok(errors.length > 0, "dropped writes are reported");
  assert.ok(errors.every((e) => e instanceof MessageBufferFullError), errors.map((e) => e.name).join());
  assert.match(errors[0].message, /Dropped a message of 65536 bytes/);
  assert.equal(session.isClosed(), true, "closed by the hub at the end");
});

test('onBufferFull: "close" closes a client that never reads', async () => {
  const { errors, maxSeen, session, disconnected, writes } = await flood("close");
  assert.ok(writes < 500, "the session was closed before the writes ran out");
  assert.ok(maxSeen <= 1 << 20, `bufferedAmount peaked at ${maxSeen}`);
  assert.ok(session.isClosed());
  assert.ok(disconnected, "the disconnect hook ran");
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof MessageBufferFullError);
});
