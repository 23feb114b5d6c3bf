// chorus-ws/client against servers that do not speak chorus.v1: a hub answering another
// subprotocol, a bare server answering none (browsers and Bun fail that handshake, so the client
// tries again at once without chorus.v1), the runtimes' own plain servers, and a chorus hub too slow
// to say hello in time. Deno and Bun.
import assert from "node:assert/strict";
import * as net from "node:net";
import { createHash } from "node:crypto";
import { decodeFrame, encodeControl } from "../src/protocol.ts";
import { runtime, Signal, startServer, test } from "./_helpers.ts";
import { rawServer } from "./_raw_server.ts";
import { HELLO, watch } from "./_scripted.ts";

test("client: a hub answering another subprotocol is plain: raw frames, resumed false, queue flushed", async () => {
  const srv = await startServer({}, {
    onUpgrade(_req, upgrade) {
      upgrade.protocol = "app";
    },
  });
  const got: string[] = [];
  srv.hub.handleConnect((s) => {
    s.write("raw hello");
    srv.signal.ping();
  });
  srv.hub.handleMessage((_s, m) => {
    got.push(m);
    srv.signal.ping();
  });
  const w = watch(srv.wsUrl(), { protocols: ["app"] });
  try {
    w.c.send("q1");
    await w.signal.until(() => w.messages.length === 1, "raw hello");
    assert.deepEqual(w.opens, [false]);
    assert.deepEqual(w.messages, ["raw hello"]);
    assert.equal(w.sockets[0].protocol, "app");
    w.c.send("q2");
    await srv.signal.until(() => got.length === 2, "two raw messages");
    assert.deepEqual(got, ["q1", "q2"]);
    for (const s of srv.hub.sessions()) s.close(1012);
    await w.signal.until(() => w.opens.length === 2, "reopen");
    assert.deepEqual(w.opens, [false, false]);
  } finally {
    await w.end();
    await srv.close();
  }
});

/** A WebSocket server on node:net that answers no subprotocol (like `Deno.upgradeWebSocket(req)`). */
async function noProtocolServer() {
  const offers: string[] = [];
  const texts: string[] = [];
  let probes = 0;
  const sockets = new Set<net.Socket>();
  const signal = new Signal();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    let buf = new Uint8Array(0);
    let upgraded = false;
    sock.on("data", (chunk: Uint8Array) => {
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
      if (!upgraded) {
        const head = new TextDecoder().decode(buf);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1];
        if (!key) {
          // not an upgrade (the client's refusal probe): what a WebSocket-only server answers
          probes++;
          sock.end("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          return;
        }
        offers.push(/sec-websocket-protocol:\s*([^\r]*)/i.exec(head)?.[1] ?? "");
        const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
        sock.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
        );
        const hi = new TextEncoder().encode("plain hi");
        sock.write(new Uint8Array([0x81, hi.length, ...hi]));
        upgraded = true;
        buf = buf.subarray(end + 4);
        signal.ping();
      }
      while (buf.length >= 6) {
        const op = buf[0] & 0x0f;
        const len = buf[1] & 0x7f; // tests send short frames only
        if (len >= 126 || buf.length < 6 + len) return;
        const mask = buf.subarray(2, 6);
        const payload = buf.slice(6, 6 + len).map((b, i) => b ^ mask[i % 4]);
        buf = buf.subarray(6 + len);
        if (op === 1) texts.push(new TextDecoder().decode(payload));
        if (op === 8) {
          sock.end(new Uint8Array([0x88, 2, 0x03, 0xe8]));
          return;
        }
        signal.ping();
      }
    });
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", () => res()));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/`,
    offers,
    get probes() {
      return probes;
    },
    texts,
    signal,
    drop: () => {
      for (const s of sockets) s.destroy();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((res) => server.close(() => res()));
    },
  };
}

test("client: a server that answers no subprotocol is plain (browsers and Bun refuse the first offer)", async () => {
  const srv = await noProtocolServer();
  const w = watch(srv.url);
  try {
    await w.signal.until(() => w.messages.length === 1, "the server's first frame");
    assert.deepEqual(w.opens, [false]);
    assert.deepEqual(w.messages, ["plain hi"]);
    assert.equal(w.reconnecting.length, 0, "the retry without chorus.v1 is part of the same attempt");
    // Deno's client accepts an answer that names none of the offered subprotocols; Bun's fails
    // the handshake (as browsers do), and the client tries again at once without chorus.v1.
    assert.deepEqual(srv.offers, runtime === "bun" ? ["chorus.v1", ""] : ["chorus.v1"]);
    assert.equal(srv.probes, runtime === "bun" ? 1 : 0, "a failed handshake is probed once; a 426 is no refusal");
    w.c.send("up");
    await srv.signal.until(() => srv.texts.length === 1, "a raw message");
    assert.deepEqual(srv.texts, ["up"]);
    srv.drop();
    await w.signal.until(() => w.opens.length === 2, "reopen");
    assert.equal(srv.offers.at(-1), "", "once plain, always plain");
  } finally {
    await w.end();
    await srv.close();
  }
});

test("client: a plain runtime server (Deno.upgradeWebSocket / Bun.serve)", async () => {
  const received: string[] = [];
  const signal = new Signal();
  let url: string;
  let stop: () => Promise<void>;
  let drop: () => void;
  if (runtime === "deno") {
    const live = new Set<WebSocket>();
    const s = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      live.add(socket);
      socket.onclose = () => live.delete(socket);
      socket.onmessage = (e) => {
        received.push(e.data);
        signal.ping();
      };
      return response;
    });
    url = `ws://127.0.0.1:${s.addr.port}/`;
    drop = () => live.forEach((ws) => ws.close(1011));
    stop = () => s.shutdown();
  } else {
    // deno-lint-ignore no-explicit-any
    const Bun = (globalThis as any).Bun;
    // deno-lint-ignore no-explicit-any
    const live = new Set<any>();
    const s = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      // deno-lint-ignore no-explicit-any
      fetch: (req: Request, server: any) => server.upgrade(req) ? undefined : new Response("no", { status: 400 }),
      websocket: {
        // deno-lint-ignore no-explicit-any
        open: (ws: any) => live.add(ws),
        // deno-lint-ignore no-explicit-any
        close: (ws: any) => live.delete(ws),
        // deno-lint-ignore no-explicit-any
        message: (_ws: any, m: string) => {
          received.push(m);
          signal.ping();
        },
      },
    });
    url = `ws://127.0.0.1:${s.port}/`;
    drop = () => live.forEach((ws) => ws.close(1011));
    stop = async () => void await s.stop(true);
  }
  // Deno's server answers none (Deno's client accepts it); Bun's answers chorus.v1 and never
  // says hello, so the client waits connectTimeout before it takes the server for a plain one.
  const w = watch(url, { connectTimeout: 300 });
  try {
    w.c.send("first");
    await w.signal.until(() => w.opens.length === 1, "open");
    assert.deepEqual(w.opens, [false]);
    await signal.until(() => received.length === 1, "the queued message, raw");
    assert.deepEqual(received, ["first"]);
    drop();
    await w.signal.until(() => w.opens.length === 2, "reopen after 1011");
    w.c.send("second");
    await signal.until(() => received.length === 2, "a raw message on the second connection");
    assert.deepEqual(received, ["first", "second"]);
  } finally {
    await w.end();
    await stop();
  }
});

test("client: a chorus hub whose hello comes after connectTimeout is not taken for plain for good", async () => {
  const signal = new Signal();
  const raw: string[] = [];
  const requests: string[] = [];
  const data: string[] = [];
  let connections = 0;
  const srv = rawServer({
    open(s) {
      // the first connection's hello is late (a loaded hub); the next one's is on time
      if (connections++ === 0) setTimeout(() => s.write(HELLO), 400);
      else s.write(HELLO);
    },
    message(s, msg) {
      const f = decodeFrame(msg);
      if (f?.kind === "control" && (f.message.t === "new" || f.message.t === "resume")) {
        requests.push(f.message.t);
        s.write(encodeControl({ t: "welcome", resumed: false, token: "T", recv: 0, hb: 0 }));
      } else if (f?.kind === "data") data.push(f.payload as string);
      else if (f?.kind !== "received") raw.push(String(msg));
      signal.ping();
    },
  }, "chorus.v1");
  const w = watch(srv.wsUrl(), { connectTimeout: 200 }, signal);
  try {
    w.c.send("queued");
    await signal.until(() => w.opens.length === 1, "taken for plain after 200 ms of silence");
    await signal.until(() => raw.includes("queued"), "the queue, sent as plain");
    w.c.send("on the guess");
    await signal.until(() => w.opens.length === 2 && data.length === 2, "the late hello: again, with chorus.v1");
    assert.deepEqual(requests, ["new"]);
    assert.deepEqual(data, ["queued", "on the guess"], "what went out as plain goes again, numbered");
    assert.equal(w.sockets.length, 2);
    assert.deepEqual(w.messages, [], "the hello is no message");
    w.c.send("now");
    await signal.until(() => data.length === 3, "chorus from now on");
  } finally {
    await w.end();
    await srv.close();
  }
});

test("client: a chorus hub without resume keeps an idle client's connection past twice its heartbeat: no reconnect, one session", async () => {
  const srv = await startServer({ pingInterval: 200 });
  let connects = 0;
  srv.hub.handleConnect(() => {
    connects++;
    srv.signal.ping();
  });
  const w = watch(srv.wsUrl());
  try {
    await w.signal.until(() => w.opens.length === 1, "open");
    // a client watching for heartbeats would give up after 2 × 200 + 1000 ms: wait past that
    await new Promise((r) => setTimeout(r, 2000));
    assert.deepEqual(w.opens, [false]);
    assert.equal(connects, 1);
    assert.equal(srv.hub.size, 1);
  } finally {
    await w.end();
    await srv.close();
  }
});
