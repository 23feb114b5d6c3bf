// hub.metrics(), its Prometheus text, and the log hook: every counter moved by the real thing.

import assert from "node:assert/strict";
import { Hub, type LogEntry, prometheusText, type Session } from "../mod.ts";
import { MemoryNetwork } from "../src/brokers/memory.ts";
import { Client, deferred, RawPeer, startServer, test } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";
import { V1Peer } from "./_v1.ts";

test("metrics: sessions, connects, disconnects, messages and bytes both ways, refusals, 1009 closes; and the log", async () => {
  const log: LogEntry[] = [];
  const t = await startServer({ maxMessageSize: 16, logger: (e) => log.push(e) });
  t.hub.handleMessage((s, m) => s.write(`echo ${m}`));
  const a = await Client.open(t.wsUrl());
  const b = await Client.open(t.wsUrl());
  try {
    await t.signal.until(() => t.hub.size === 2, "2 sessions");
    a.send("héllo"); // 6 bytes of UTF-8
    assert.equal(await a.next(), "echo héllo"); // 11 bytes
    t.hub.broadcast(new Uint8Array(3));
    await a.next();
    await b.next();
    const cross = await RawPeer.upgrade(t.port, "/", { Origin: "http://evil.example" });
    assert.equal(cross.status, 403);
    await cross.destroy();
    b.send("x".repeat(17));
    assert.equal((await b.closed).code, 1009);
    await t.signal.until(() => t.hub.size === 1, "b gone");
    const m = t.hub.metrics();
    assert.deepEqual(
      { ...m, brokerLatency: m.brokerLatency },
      {
        sessions: 1,
        detached: 0,
        connects: 2,
        disconnects: 1,
        resumes: 0,
        refused: 1,
        messagesIn: 1, // the oversized one is never received
        bytesIn: 6,
        messagesOut: 3,
        bytesOut: 11 + 3 + 3,
        dropped: 0,
        slowClients: 0,
        tooBig: 1,
        brokerErrors: 0,
        brokerIn: 0,
        brokerDropped: 0,
        brokerLatency: undefined,
      },
    );
    assert.deepEqual(log.map((e) => [e.level, e.event, e.status ?? e.code]), [
      ["info", "refused", 403],
      ["warn", "too-big", 1009],
    ]);
    assert.match(log[0].message, /origin http:\/\/evil\.example not allowed/);

    const text = prometheusText(m);
    assert.match(text, /^# HELP chorus_sessions .+\n# TYPE chorus_sessions gauge\nchorus_sessions 1\n/);
    assert.match(text, /\nchorus_connects_total 2\n/);
    assert.match(text, /\nchorus_bytes_out_total 17\n/);
    assert.match(text, /\n# TYPE chorus_too_big_total counter\nchorus_too_big_total 1\n/);
    assert.doesNotMatch(text, /broker_latency/, "no broker, no latency");
    assert.match(prometheusText(m, "app"), /\napp_refused_total 1\n/);
  } finally {
    await a.close();
    await t.close();
  }
});

test("metrics: a client that never reads is dropped for, then closed; the log says so", async () => {
  const log: LogEntry[] = [];
  const t = await startServer({ maxBufferedAmount: 64 << 10, onBufferFull: "close", logger: (e) => log.push(e) });
  t.hub.handleError(() => {});
  const connected = deferred<Session>();
  t.hub.handleConnect((s) => connected.resolve(s));
  const peer = await RawPeer.upgrade(t.port);
  peer.pause();
  try {
    const s = await connected.promise;
    const chunk = new Uint8Array(16 << 10);
    for (let i = 0; i < 2000 && !s.isClosed(); i++) {
      s.write(chunk);
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 0));
    }
    assert.equal(s.isClosed(), true);
    const m = t.hub.metrics();
    assert.equal(m.dropped, 1);
    assert.equal(m.slowClients, 1);
    assert.deepEqual(log.map((e) => [e.level, e.event, e.code]), [["warn", "slow-client", 1008]]);
  } finally {
    await peer.destroy();
    await t.close();
  }
});

test("metrics: resumable sessions: detached while away, resumes counted", async () => {
  const t = await startServer({ resume: {}, pingInterval: 0 });
  t.hub.handleClose(() => t.signal.ping());
  const proxy = await Proxy.start(t.port);
  const url = `ws://127.0.0.1:${proxy.port}/`;
  const { peer, welcome } = await V1Peer.open(url);
  let again: V1Peer | undefined;
  try {
    await t.signal.until(() => t.hub.size === 1, "a session");
    proxy.cut();
    await t.signal.until(() => t.hub.metrics().detached === 1, "detached");
    again = (await V1Peer.resume(url, welcome.token, {})).peer;
    const m = t.hub.metrics();
    assert.equal(m.detached, 0);
    assert.equal(m.resumes, 1);
    assert.equal(m.connects, 1, "a resume is no new session");
    assert.equal(m.sessions, 1);
  } finally {
    await again?.close();
    await peer.close();
    await proxy.close();
    await t.close();
  }
});

test("metrics: broker errors are counted and logged", async () => {
  const network = new MemoryNetwork();
  const log: LogEntry[] = [];
  const hub = new Hub({ broker: network.broker(), logger: (e) => log.push(e) });
  const reported = deferred();
  hub.handleBrokerError(() => reported.resolve());
  try {
    await hub.ready();
    network.inject(new TextEncoder().encode("not chorus"));
    await reported.promise;
    assert.equal(hub.metrics().brokerErrors, 1);
    assert.deepEqual(log.map((e) => [e.level, e.event]), [["error", "broker"]]);
    assert.match(log[0].message, /not in chorus' wire format/);
  } finally {
    await hub.close();
  }
});

test("metrics: a logger that throws is reported, never thrown; a logger that is not a function is refused", async () => {
  assert.throws(() => new Hub({ logger: "yes" as unknown as () => void }), TypeError);
  const errors: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void errors.push(args);
  const t = await startServer({
    logger: () => {
      throw new Error("logger broke");
    },
  });
  try {
    const cross = await RawPeer.upgrade(t.port, "/", { Origin: "http://evil.example" });
    assert.equal(cross.status, 403);
    await cross.destroy();
    assert.equal(errors.length, 1);
    assert.match(String(errors[0][0]), /logger failed/);
  } finally {
    console.error = original;
    await t.close();
  }
});
