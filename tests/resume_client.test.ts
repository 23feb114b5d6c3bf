// chorus-ws/client against a resuming hub, connections cut by a TCP proxy as a network cuts them:
// every message counted, both ways. Deno and Bun.

import assert from "node:assert/strict";
import type { Session } from "../mod.ts";
import { Signal, startServer, test, type TestServer, Watched } from "./_helpers.ts";
import { Proxy } from "./_proxy.ts";

type Keys = { name: string };
/** This file's clients give up a connection attempt after 2 s. */
const fast = { connectTimeout: 2000 };

async function setup(resume = {}): Promise<{ t: TestServer<Keys>; proxy: Proxy; url: string }> {
  const t = await startServer<Keys>({ resume, pingInterval: 0 });
  t.hub.handleClose(() => t.signal.ping());
  t.hub.handleResume(() => t.signal.ping());
  const proxy = await Proxy.start(t.port);
  return { t, proxy, url: `ws://127.0.0.1:${proxy.port}/` };
}

function numbers(from: number, to: number, prefix = ""): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
}

test("resume with chorus-ws/client: cut twice; messages both ways, sent while away and in flight, arrive once, in order", async () => {
  const { t, proxy, url } = await setup();
  const fromClient: string[] = [];
  t.hub.handleMessage((s, m) => {
    fromClient.push(m);
    s.write(`echo ${m}`);
    t.signal.ping();
  });
  let connects = 0;
  let session: Session<Keys> | undefined;
  t.hub.handleConnect((s) => {
    connects++;
    session = s;
    t.signal.ping();
  });
  const w = new Watched(url, t.signal, fast);
  try {
    await t.signal.until(() => w.opens.length === 1 && session !== undefined, "open");
    for (const m of numbers(1, 5, "c")) w.c.send(m);
    t.hub.broadcast("b1");
    proxy.cut(); // some of the above are in flight
    await t.signal.until(() => !session!.connected, "detached");
    for (const m of numbers(6, 10, "c")) assert.equal(w.c.send(m), true, "queued while offline");
    t.hub.broadcast("b2");
    session!.write("direct");
    await t.signal.until(() => w.opens.length === 2, "resumed");
    assert.deepEqual(w.opens, [false, true]);
    await t.signal.until(() => fromClient.length === 10 && w.got.length === 13, "everything");
    proxy.cut();
    t.hub.broadcast("b3");
    await t.signal.until(() => w.opens.length === 3 && w.got.length === 14, "b3 after a second cut");
    assert.deepEqual(fromClient, numbers(1, 10, "c"));
    const echoes = w.got.filter((m) => m.startsWith("echo "));
    assert.deepEqual(echoes, numbers(1, 10, "echo c"));
    assert.deepEqual(w.got.filter((m) => !m.startsWith("echo ")), ["b1", "b2", "direct", "b3"]);
    assert.equal(connects, 1, "handleConnect once");
    assert.equal(t.hub.get(session!.id), session);
    assert.deepEqual(t.disconnects, []);
  } finally {
    await w.end();
    await proxy.close();
    await t.close();
  }
});

test("resume with chorus-ws/client: a burst of 2,000 broadcasts cut in the middle arrives whole: once each, in order", async () => {
  const { t, proxy, url } = await setup({ maxMessages: 5000 });
  const clients = Array.from({ length: 3 }, () => new Watched(url, t.signal, fast));
  try {
    await t.signal.until(() => clients.every((w) => w.opens.length === 1) && t.hub.size === 3, "3 clients");
    for (let i = 1; i <= 2000; i++) {
      t.hub.broadcast(`${i}`);
      if (i === 1000) proxy.cut();
      if (i % 250 === 0) await new Promise((r) => setTimeout(r, 0)); // let the sockets move
    }
    await t.signal.until(() => clients.every((w) => w.got.length >= 2000), "2,000 messages each", 20_000);
    for (const w of clients) {
      assert.equal(w.got.length, 2000, "no duplicate");
      assert.deepEqual(w.got, numbers(1, 2000));
      assert.deepEqual(w.opens, [false, true]);
    }
  } finally {
    for (const w of clients) await w.end();
    await proxy.close();
    await t.close();
  }
});

test("resume with chorus-ws/client: s.close() and c.close() end the session at once, and the client stops", async () => {
  const { t, proxy, url } = await setup();
  const a = new Watched(url, t.signal, fast);
  const b = new Watched(url, t.signal, fast);
  try {
    await t.signal.until(() => a.opens.length === 1 && b.opens.length === 1 && t.hub.size === 2, "2 sessions");
    const [sa] = t.hub.sessions();
    sa.close(1000, "bye");
    await t.signal.until(() => a.closed !== undefined, "a's client stops");
    b.c.close();
    await t.signal.until(() => t.hub.size === 0, "both sessions end at once");
    assert.equal(a.closed, 1000);
    assert.equal(a.c.state, "closed");
    assert.equal(t.disconnects.length, 2);
  } finally {
    await a.end();
    await b.end();
    await proxy.close();
    await t.close();
  }
});

test("resume with chorus-ws/client: 1,000 clients cut at once all resume, nothing lost", async () => {
  const n = 1000;
  const { t, proxy, url } = await setup();
  const signal = new Signal();
  const clients = Array.from({ length: n }, () => new Watched(url, signal, { ...fast, minDelay: 50, maxDelay: 1000 }));
  try {
    await signal.until(() => clients.every((w) => w.opens.length === 1), `${n} opens`, 30_000);
    t.hub.broadcast("before");
    const start = Date.now();
    proxy.cut();
    t.hub.broadcast("during");
    await signal.until(() => clients.every((w) => w.opens.length === 2), `${n} resumed`, 30_000);
    const took = Date.now() - start;
    t.hub.broadcast("after");
    await signal.until(() => clients.every((w) => w.got.length === 3), "3 messages each", 30_000);
    for (const w of clients) {
      assert.deepEqual(w.opens, [false, true]);
      assert.deepEqual(w.got, ["before", "during", "after"]);
    }
    assert.equal(t.hub.size, n);
    assert.deepEqual(t.disconnects, []);
    console.log(`  ${n} clients cut at once: all resumed in ${took} ms, 0 lost, 0 duplicated`);
  } finally {
    await Promise.all(clients.map((w) => w.end()));
    await proxy.close();
    await t.close();
  }
});
