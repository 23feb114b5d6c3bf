import assert from "node:assert/strict";
import { Client, deferred, runtime, startServer, test, utf8 } from "./_helpers.ts";

test("text and binary echo: unicode, empty, large", async () => {
  const t = await startServer({ maxMessageSize: 4 << 20 });
  t.hub.handleMessage((s, msg) => s.write(msg));
  t.hub.handleMessageBinary((s, msg) => s.write(msg));
  const c = await Client.open(t.wsUrl());
  try {
    const texts = ["hello", "", "héllo wörld ✓ 日本語 🎉🎶", "x".repeat(1 << 20)];
    for (const m of texts) c.send(m);
    for (const m of texts) assert.equal(await c.next(), m);

    const large = new Uint8Array(1 << 20).map((_, i) => i * 7);
    const binaries = [new Uint8Array([0, 1, 2, 255]), new Uint8Array(0), large, utf8("🎉")];
    for (const m of binaries) c.send(m);
    for (const m of binaries) {
      const got = await c.next();
      assert.ok(got instanceof Uint8Array, "binary stays binary");
      assert.deepEqual(got, m);
    }
  } finally {
    await c.close();
    await t.close();
  }
});

test("write accepts ArrayBuffer as binary and rejects other types with TypeError", async () => {
  const t = await startServer();
  const thrown = deferred<unknown>();
  t.hub.handleMessage((s) => {
    s.write(new Uint8Array([9, 8, 7]).buffer);
    try {
      s.write(42 as unknown as string);
    } catch (err) {
      thrown.resolve(err);
    }
  });
  const c = await Client.open(t.wsUrl());
  try {
    c.send("go");
    assert.deepEqual(await c.next(), new Uint8Array([9, 8, 7]));
    const err = await thrown.promise;
    assert.ok(err instanceof TypeError);
    assert.match((err as Error).message, /string, Uint8Array or ArrayBuffer/);
  } finally {
    await c.close();
    await t.close();
  }
});

test("sent-message hooks see each text and binary message handed to the runtime", async () => {
  const t = await startServer();
  const sentText: string[] = [];
  const sentBinary: number[][] = [];
  t.hub.handleSentMessage((_s, m) => void sentText.push(m));
  t.hub.handleSentMessageBinary((_s, m) => void sentBinary.push([...m]));
  t.hub.handleMessage((s, m) => {
    s.write(`re:${m}`);
    t.hub.broadcast(new Uint8Array([m.length]));
  });
  const c = await Client.open(t.wsUrl());
  try {
    c.send("ab");
    c.send("abc");
    assert.deepEqual(await c.take(4), ["re:ab", new Uint8Array([2]), "re:abc", new Uint8Array([3])]);
    assert.deepEqual(sentText, ["re:ab", "re:abc"]);
    assert.deepEqual(sentBinary, [[2], [3]]);
  } finally {
    await c.close();
    await t.close();
  }
});

test("a throwing or rejecting handler reaches handleError and the session lives on", async () => {
  const t = await startServer();
  t.hub.handleMessage(async (s, m) => {
    if (m === "throw") throw new Error("sync-ish boom");
    if (m === "reject") {
      await Promise.resolve();
      throw new Error("async boom");
    }
    s.write(`ok:${m}`);
  });
  t.hub.handleMessageBinary(() => {
    throw new RangeError("binary boom");
  });
  const c = await Client.open(t.wsUrl());
  try {
    c.send("throw");
    c.send("reject");
    c.send(new Uint8Array([1]));
    c.send("after");
    assert.equal(await c.next(), "ok:after");
    assert.deepEqual(t.errors.map((e) => e.message), ["sync-ish boom", "async boom", "binary boom"]);
    assert.ok(t.errors[2] instanceof RangeError);
    assert.equal(t.hub.size, 1);
  } finally {
    await c.close();
    await t.close();
  }
});

test("a throwing connect hook reaches handleError; messages still flow", async () => {
  const t = await startServer();
  t.hub.handleConnect(() => {
    throw new Error("connect boom");
  });
  t.hub.handleMessage((s, m) => s.write(m));
  const c = await Client.open(t.wsUrl());
  try {
    c.send("still here");
    assert.equal(await c.next(), "still here");
    assert.equal(t.errors[0]?.message, "connect boom");
  } finally {
    await c.close();
    await t.close();
  }
});

test("async handlers keep per-session order; an async connect hook runs before any message", async () => {
  const t = await startServer();
  const log: string[] = [];
  t.hub.handleConnect(async (s) => {
    await new Promise((r) => setTimeout(r, 20));
    s.set("ready", true);
    log.push("connect");
  });
  t.hub.handleMessage(async (s, m) => {
    assert.equal(s.get("ready"), true);
    log.push(`start ${m}`);
    // later messages take less time: without ordering they would overtake
    await new Promise((r) => setTimeout(r, 10 - Number(m)));
    log.push(`end ${m}`);
    s.write(m);
  });
  const c = await Client.open(t.wsUrl());
  try {
    for (let i = 0; i < 5; i++) c.send(String(i));
    assert.deepEqual(await c.take(5), ["0", "1", "2", "3", "4"]);
    assert.deepEqual(log, [
      "connect",
      ...[0, 1, 2, 3, 4].flatMap((i) => [`start ${i}`, `end ${i}`]),
    ]);
  } finally {
    await c.close();
    await t.close();
  }
});

test("concurrentMessageHandling lets a slow handler be overtaken", async () => {
  const t = await startServer({ concurrentMessageHandling: true });
  const slowGate = deferred();
  t.hub.handleMessage(async (s, m) => {
    if (m === "slow") await slowGate.promise;
    s.write(m);
    if (m === "fast") slowGate.resolve();
  });
  const c = await Client.open(t.wsUrl());
  try {
    c.send("slow");
    c.send("fast");
    assert.deepEqual(await c.take(2), ["fast", "slow"]);
  } finally {
    await c.close();
    await t.close();
  }
});

test("an oversized message closes the session with 1009", async () => {
  const t = await startServer({ maxMessageSize: 1024 });
  const got: string[] = [];
  t.hub.handleMessage((s, m) => {
    got.push(m);
    s.write("ok");
  });
  const text = await Client.open(t.wsUrl());
  const binary = await Client.open(t.wsUrl());
  const multibyte = await Client.open(t.wsUrl());
  try {
    text.send("a".repeat(1024)); // exactly the limit passes
    assert.equal(await text.next(), "ok");
    text.send("a".repeat(1025));
    assert.equal((await text.closed).code, 1009);

    binary.send(new Uint8Array(1025));
    assert.equal((await binary.closed).code, 1009);

    multibyte.send("é".repeat(513)); // 513 characters, 1026 bytes
    assert.equal((await multibyte.closed).code, 1009);

    await t.signal.until(() => t.hub.size === 0, "every oversized session gone");
    assert.deepEqual(got, ["a".repeat(1024)]);
    assert.equal(t.disconnects.length, 3);
  } finally {
    await Promise.all([text.close(), binary.close(), multibyte.close()]);
    await t.close();
  }
});

test("messages waiting for a slow handler are bounded: past maxBufferedAmount the session closes with 1008", async () => {
  const t = await startServer({ maxBufferedAmount: 256 * 1024 });
  const gate = deferred();
  let handled = 0;
  t.hub.handleMessage(async () => {
    handled++;
    await gate.promise;
  });
  const c = await Client.open(t.wsUrl());
  try {
    const chunk = "x".repeat(64 * 1024);
    for (let i = 0; i < 8; i++) c.send(chunk); // 1 running + 7 waiting = 448 KiB > 256 KiB
    await t.signal.until(() => t.disconnects.length === 1 && t.errors.length === 1, "the session closed");
    // the client is still sending when the server closes: some runtimes then see a reset, not 1008
    await c.closed;
    assert.ok(t.errors[0] instanceof RangeError);
    assert.match(t.errors[0].message, /waiting for a handler/);
    gate.resolve();
    assert.equal(handled, 1);
  } finally {
    gate.resolve();
    await c.close();
    await t.close();
  }
});

test(`runtime under test is ${runtime}`, () => {
  assert.ok(runtime === "deno" || runtime === "bun");
});
