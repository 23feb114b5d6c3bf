import assert from "node:assert/strict";
import { MessageBufferFullError, type Session } from "../mod.ts";
import * as net from "node:net";
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
    // a silent peer is a lost connection, not an error (Deno says "No response from ping frame.")
    assert.deepEqual(t.errors.map((e) => e.message), []);
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

/** Sends a raw HTTP request over TCP; resolves with the response head, then closes the connection. */
async function rawRequest(port: number, headers: string[]): Promise<string> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  const closed = new Promise<void>((res) => socket.once("close", () => res()));
  try {
    await deadline(new Promise<void>((res) => socket.once("connect", () => res())), "tcp connect");
    let buf = "";
    const head = new Promise<string>((res, rej) => {
      socket.on("data", (chunk: Uint8Array) => {
        buf += new TextDecoder().decode(chunk);
        const end = buf.indexOf("\r\n\r\n");
        if (end >= 0) res(buf.slice(0, end));
      });
      socket.once("close", () => rej(new Error("connection closed before a response")));
    });
    head.catch(() => {});
    socket.write([`GET / HTTP/1.1`, `Host: 127.0.0.1:${port}`, ...headers, "", ""].join("\r\n"));
    return await deadline(head, "response head");
  } finally {
    socket.destroy();
    await deadline(closed, "raw socket close");
  }
}

test("a malformed upgrade is refused with 400 (426 for a bad version), never 500, and nothing is logged", async () => {
  const t = await startServer();
  const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
  const cases: [string, string[], number][] = [
    ["no Sec-WebSocket-Key", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"], 400],
    ["a short key", [
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Key: abc",
      "Sec-WebSocket-Version: 13",
    ], 400],
    ["version 8", ["Upgrade: websocket", "Connection: Upgrade", key, "Sec-WebSocket-Version: 8"], 426],
    ["no version", ["Upgrade: websocket", "Connection: Upgrade", key], 426],
    // Bun upgrades this one (it does not look at Connection); Deno cannot
    [
      "Connection: keep-alive",
      ["Upgrade: websocket", "Connection: keep-alive", key, "Sec-WebSocket-Version: 13"],
      runtime === "bun" ? 101 : 400,
    ],
  ];
  const logged: unknown[][] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    for (let round = 0; round < 4; round++) {
      for (const [what, headers, status] of cases) {
        const head = await rawRequest(t.port, headers);
        assert.equal(Number(head.split(" ")[1]), status, `${what}: ${head.split("\r\n")[0]}`);
      }
    }
    // a 101 above (Bun, keep-alive) became a session that was then dropped
    await t.signal.until(() => t.hub.size === 0, "no session left");
  } finally {
    console.error = error;
    await t.close();
  }
  assert.deepEqual(logged, [], "nothing was logged");
  assert.deepEqual(t.errors, []);
});

/** A masked client frame (RFC 6455 §5.2). */
function clientFrame(opcode: number, fin: boolean, payload: Uint8Array): Uint8Array {
  const len = payload.byteLength;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const out = new Uint8Array(2 + ext + 4 + len);
  out[0] = (fin ? 0x80 : 0) | opcode;
  const view = new DataView(out.buffer);
  if (ext === 0) out[1] = 0x80 | len;
  else if (ext === 2) {
    out[1] = 0x80 | 126;
    view.setUint16(2, len);
  } else {
    out[1] = 0x80 | 127;
    view.setBigUint64(2, BigInt(len));
  }
  const mask = [1, 2, 3, 4];
  out.set(mask, 2 + ext);
  for (let i = 0; i < len; i++) out[2 + ext + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

test(
  "an oversized message sent in fragments closes the session with 1009",
  async () => {
    const limit = 64 * 1024;
    const t = await startServer({ maxMessageSize: limit });
    const peer = await RawPeer.upgrade(t.port);
    // the server's frames after the 101: the close frame is what we wait for
    let bytes = new Uint8Array(0);
    const closeFrame = deferred<{ code: number; reason: string }>();
    peer.socket.on("data", (chunk: Uint8Array) => {
      const next = new Uint8Array(bytes.byteLength + chunk.byteLength);
      next.set(bytes);
      next.set(chunk, bytes.byteLength);
      bytes = next;
      // unmasked server frames; a close frame's payload is short (length < 126)
      if (bytes.byteLength >= 4 && (bytes[0] & 0x0f) === 8 && bytes.byteLength >= 2 + (bytes[1] & 0x7f)) {
        const view = new DataView(bytes.buffer, bytes.byteOffset);
        closeFrame.resolve({
          code: view.getUint16(2),
          reason: new TextDecoder().decode(bytes.subarray(4, 2 + (bytes[1] & 0x7f))),
        });
      }
    });
    try {
      assert.equal(peer.status, 101);
      await t.signal.until(() => t.hub.size === 1, "the session");
      const piece = new Uint8Array(16 * 1024);
      // 32 fragments of 16 KiB = 512 KiB, 8 times the limit, each frame well under it
      peer.socket.write(clientFrame(2, false, piece));
      for (let i = 0; i < 31 && !peer.socket.destroyed; i++) peer.socket.write(clientFrame(0, false, piece));
      const { code } = await deadline(closeFrame.promise, "a close frame from the server");
      assert.equal(code, 1009);
      await t.signal.until(() => t.disconnects.length === 1, "the disconnect");
    } finally {
      await peer.destroy();
      await t.close();
    }
  },
  {
    skip: runtime === "deno" &&
      "Deno 2.9.6 assembles a fragmented message before chorus sees it, with no size option (see docs/operations.md, Message size on Deno)",
  },
);

test("a peer that stops reading is dropped within about pongWait (on Deno: its queue stopped draining)", async () => {
  // Deno's own ping cannot get past a full send queue, so Deno never drops such a peer by itself.
  const pongWait = 1000;
  const t = await startServer({ pingInterval: 250, pongWait, maxBufferedAmount: 64 << 20 });
  const connected = deferred<Session>();
  t.hub.handleConnect((s) => connected.resolve(s));
  const peer = await RawPeer.upgrade(t.port);
  peer.pause();
  try {
    const session = await connected.promise;
    const chunk = new Uint8Array(1 << 20);
    for (let i = 0; i < 24 && !session.isClosed(); i++) session.write(chunk);
    await t.signal.until(() => t.disconnects.includes(session.id), "the stalled peer dropped", pongWait * 8);
    assert.equal(session.isClosed(), true);
    assert.equal(t.hub.size, 0);
  } finally {
    await peer.destroy();
    await t.close();
  }
});
