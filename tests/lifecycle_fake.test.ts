// The lifecycle on fake sockets (tests/_fake.ts): the exact order of hooks and socket calls,
// without a network. Each test encodes a fix of issue 8.

import assert from "node:assert/strict";
import { Hub, type HubOptions, type Session, SessionClosedError } from "../mod.ts";
import { FakePublisher, FakeSocket, type FakeSocketOptions } from "./_fake.ts";
import { deadline, deferred, Signal, test } from "./_helpers.ts";

/** A hub with every hook recording into `log` (`"<hook> <session's socket name> …"`). */
function setup(options: HubOptions = {}) {
  const hub = new Hub({ pingInterval: 0, ...options });
  const log: string[] = [];
  const signal = new Signal();
  const note = (line: string) => {
    log.push(line);
    signal.ping();
  };
  hub.handleConnect((s) => note(`connect ${s.remoteAddr}`));
  hub.handleMessage((s, msg) => note(`message ${s.remoteAddr} ${msg}`));
  hub.handleMessageBinary((s, msg) => note(`binary ${s.remoteAddr} ${msg.byteLength}`));
  hub.handleClose((s, code, reason) => note(`close ${s.remoteAddr} ${code} ${reason}`));
  hub.handleDisconnect((s) => note(`disconnect ${s.remoteAddr}`));
  hub.handleError((s, err) => note(`error ${s.remoteAddr} ${err.message}`));
  hub.handlePong((s) => note(`pong ${s.remoteAddr}`));
  /** A fake socket attached to the hub, its calls in the same log. */
  const socket = (name: string, opts: FakeSocketOptions = {}, publisher?: FakePublisher) => {
    const sock = new FakeSocket({ name, log, ...opts });
    assert.ok(sock.attach(hub, publisher));
    return sock;
  };
  const session = (name: string): Session => hub.sessions().find((s) => s.remoteAddr === name)!;
  return { hub, log, signal, note, socket, session };
}

/** Lets every pending promise callback run (a handler's resolution, the queue behind it). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test("fake 1: hub.close() runs each disconnect hook once, with isClosed() true and broadcasts refused", async () => {
  const { hub, log, note, socket } = setup();
  const a = socket("a");
  const b = socket("b");
  const again: Promise<void>[] = [];
  hub.handleDisconnect((s) => {
    let broadcast = "reached someone";
    try {
      hub.broadcast("late");
    } catch (err) {
      broadcast = (err as Error).name;
    }
    again.push(hub.close());
    note(`disconnect ${s.remoteAddr} isClosed=${hub.isClosed()} broadcast=${broadcast}`);
  });
  log.length = 0;
  const closing = hub.close(1001, "bye");
  assert.deepEqual(log, [
    "a close 1001 bye",
    "disconnect a isClosed=true broadcast=HubClosedError",
    "b close 1001 bye",
    "disconnect b isClosed=true broadcast=HubClosedError",
  ]);
  assert.equal(again.length, 2);
  for (const p of again) assert.equal(p, closing, "a close from a hook returns the same promise");
  await deadline(closing, "hub.close()");
  a.closed(1001, "bye"); // the closing handshakes end: no handleClose, no second disconnect
  b.closed(1001, "bye");
  assert.equal(log.length, 4);
  assert.deepEqual([a.sent, b.sent], [[], []]);
  assert.equal(hub.size, 0);
});

test("fake 2: messages queued behind a busy handler or connect hook are dropped when the session ends", async () => {
  const ends: [string, (hub: Hub, sock: FakeSocket, s: Session) => unknown, string[]][] = [
    ["the peer closes", (_hub, sock) => sock.closed(1001, "gone"), ["close a 1001 gone", "disconnect a"]],
    ["s.close()", (_hub, _sock, s) => s.close(), ["a close 1000 ", "disconnect a"]],
    ["hub.close()", (hub) => deadline(hub.close(), "hub.close()"), ["a close 1001 ", "disconnect a"]],
  ];
  for (const busy of ["handler", "connect"]) {
    for (const [how, end, ending] of ends) {
      const { hub, log, note, socket, session } = setup();
      const held = deferred();
      hub.handleConnect(busy === "connect" ? () => held.promise : () => {});
      hub.handleMessage((_s, msg) => {
        note(`handle ${msg}`);
        if (msg === "1") return held.promise;
      });
      const a = socket("a");
      for (const msg of ["1", "2", "3"]) a.receive(msg);
      const started = busy === "handler" ? ["handle 1"] : [];
      assert.deepEqual(log, started, `${busy} busy`);
      await end(hub, a, session("a"));
      held.resolve();
      await settle();
      assert.deepEqual(log, [...started, ...ending], `busy ${busy}, then ${how}: nothing dispatched after the end`);
      await hub.close();
    }
  }
});

test("fake 3: a broadcast from handleClose misses the departing session, which no count includes any more", async () => {
  // The loop: every socket is reached by `send`.
  {
    const { hub, log, note, socket } = setup();
    const room = hub.room("r");
    const counts = () => `hub.size=${hub.size} room.size=${room.size}`;
    hub.handleSentMessage((s, msg) => note(`sent ${s.remoteAddr} ${msg}`));
    hub.handleClose((s) => {
      note(`close ${s.remoteAddr} ${counts()}`);
      hub.broadcast("bye");
      room.broadcast("bye-room");
    });
    hub.handleDisconnect((s) => note(`disconnect ${s.remoteAddr} ${counts()}`));
    const a = socket("a");
    socket("b");
    for (const s of hub.sessions()) s.join("r");
    log.length = 0;
    a.closed(1000, "");
    assert.deepEqual(log, [
      "close a hub.size=1 room.size=1",
      "b send bye",
      "sent b bye",
      "b send bye-room",
      "sent b bye-room",
      "disconnect a hub.size=1 room.size=1",
    ]);
    assert.deepEqual(a.sent, []);
    await hub.close();
  }
  // Native fan-out: the departing socket left its topics before the hook ran.
  {
    const { hub, log, note, socket } = setup();
    const server = new FakePublisher("server", { log });
    const room = hub.room("r");
    const counts = () => `hub.size=${hub.size} room.size=${room.size}`;
    hub.handleClose((s) => {
      note(`close ${s.remoteAddr} ${counts()}`);
      hub.broadcast("bye");
      room.broadcast("bye-room");
    });
    hub.handleDisconnect((s) => note(`disconnect ${s.remoteAddr} ${counts()}`));
    const a = socket("a", { pubsub: true }, server);
    socket("b", { pubsub: true }, server);
    for (const s of hub.sessions()) s.join("r");
    log.length = 0;
    a.closed(1000, "");
    const topic = `chorus.${hub.node}`;
    assert.deepEqual(log, [
      `a unsubscribe ${topic}.all`,
      `a unsubscribe ${topic}.room.r`,
      "close a hub.size=1 room.size=1",
      `server publish ${topic}.all bye`,
      `server publish ${topic}.room.r bye-room`,
      "disconnect a hub.size=1 room.size=1",
    ]);
    await hub.close();
  }
});

test("fake 4: s.rooms still names the session's rooms in handleDisconnect, room.size excludes it", async () => {
  const { hub, log, note, socket, session } = setup();
  hub.handleDisconnect((s) => {
    note(`disconnect ${s.remoteAddr} rooms=${[...s.rooms]} r1=${hub.room("r1").size} r2=${hub.room("r2").size}`);
  });
  socket("a");
  socket("b");
  session("a").join("r1");
  session("a").join("r2");
  session("b").join("r1");
  log.length = 0;
  session("a").close();
  assert.deepEqual(log, ["a close 1000 ", "disconnect a rooms=r1,r2 r1=1 r2=0"]);
  await hub.close();
});

test("fake 5: a socket whose subscribe throws is reported, registered, connected and reached by the loop", () => {
  const { hub, log, socket, session } = setup();
  const server = new FakePublisher("server", { log });
  const a = socket("a", { pubsub: true, subscribeThrows: true }, server);
  const all = `chorus.${hub.node}.all`;
  assert.deepEqual(log, [
    `a subscribe ${all}`,
    `error a subscribe to ${all} refused`,
    `a unsubscribe ${all}`,
    "connect a",
  ]);
  assert.equal(hub.size, 1);
  log.length = 0;
  session("a").join("r"); // demoted: no native subscription any more
  hub.broadcast("hi");
  hub.room("r").broadcast("room hi");
  assert.deepEqual(log, ["a send hi", "a send room hi"]);
  assert.deepEqual(server.publishes, []);
  a.closed(1000, "");
  assert.equal(hub.size, 0);
  assert.deepEqual(log.slice(2), ["close a 1000 ", "disconnect a"]);
});

test("fake 6a: a ping without a pong closes within pongWait of the ping; a pong in time keeps the session", async () => {
  const { hub, signal, socket } = setup({ pingInterval: 100, pongWait: 150 });
  const onPing = () => signal.ping();
  const a = socket("a", { ping: true, onPing });
  const b = socket("b", { ping: true, onPing: (sock) => queueMicrotask(() => sock.ponged()) });
  try {
    await signal.until(() => a.callsOf("close").length > 0, "a closed for its missing pong", 5000);
    const [ping] = a.callsOf("ping");
    const [close] = a.callsOf("close");
    assert.deepEqual(close.args, [1001, "Pong timeout"]);
    assert.equal(a.callsOf("ping").length, 1);
    const waited = close.at - ping.at;
    assert.ok(waited >= 140 && waited < 150 + 40, `closed ${waited.toFixed(1)} ms after the ping`);
    // b answered each ping at once: it lives on past several pongWaits.
    await signal.until(() => b.callsOf("ping").length >= 4, "b pinged 4 times", 5000);
    assert.deepEqual(b.callsOf("close"), []);
    assert.equal(hub.size, 1);
  } finally {
    await hub.close();
  }
});

test("fake 6b: without ping, a queue that never drains closes after about pongWait; one that drains stays", async () => {
  const { hub, signal, socket } = setup({ pingInterval: 100, pongWait: 150 });
  let left = 1_000_000;
  const drains = socket("d", { bufferedAmount: () => left -= 10 });
  const reads: number[] = []; // the stuck socket sends nothing: every read is the keepalive's
  const stuck = socket("c", {
    bufferedAmount: () => {
      reads.push(performance.now());
      signal.ping();
      return 100;
    },
  });
  try {
    await signal.until(() => stuck.callsOf("close").length > 0, "the stuck socket closed", 5000);
    const [close] = stuck.callsOf("close");
    assert.deepEqual(close.args, [1001, "Peer stopped reading"]);
    const stalled = close.at - reads[0]; // from the first tick that saw the queue stuck
    assert.ok(stalled >= 145 && stalled < 150 + 100 + 40, `closed ${stalled.toFixed(1)} ms after the stall was seen`);
    assert.deepEqual(drains.callsOf("close"), [], "checked in the same ticks, the draining socket stays");
    assert.equal(hub.size, 1);
  } finally {
    await hub.close();
  }
});

test("fake 7: a normal life, in order", async () => {
  const { hub, log, socket, session } = setup({ maxMessageSize: 8 });
  // Peer close: messages wait for an async connect hook, then arrive in order.
  const connected = deferred();
  hub.handleConnect((s) => {
    log.push(`connect ${s.remoteAddr}`);
    return connected.promise;
  });
  const a = socket("a");
  const s = session("a");
  a.receive("m1");
  a.receive(new Uint8Array([1, 2]));
  a.receive("m3");
  assert.deepEqual(log, ["connect a"]);
  connected.resolve();
  await settle();
  a.closed(1000, "bye");
  a.closed(1000, "bye"); // reported twice: still one end
  a.receive("too late");
  assert.deepEqual(log, [
    "connect a",
    "message a m1",
    "binary a 2",
    "message a m3",
    "close a 1000 bye",
    "disconnect a",
  ]);
  assert.deepEqual(a.calls, [], "a peer close makes no socket call");
  assert.throws(() => s.write("x"), SessionClosedError);
  assert.throws(() => s.close(), SessionClosedError);
  // s.close(): the socket is closed, then disconnect; no handleClose, even when the socket reports its close.
  hub.handleConnect(() => {});
  const b = socket("b");
  log.length = 0;
  session("b").close(4000, "done");
  b.closed(4000, "done");
  b.receive("too late");
  assert.deepEqual(log, ["b close 4000 done", "disconnect b"]);
  // An oversized message closes with 1009 and is not dispatched.
  const c = socket("c");
  log.length = 0;
  c.receive("123456789");
  assert.deepEqual(log, ["c close 1009 Message too big", "disconnect c"]);
  assert.equal(hub.size, 0);
  await hub.close();
});

test("fake 8: two servers: one publish per server; broadcastOthers publishes from the sender's socket", async () => {
  const { hub, log, socket, session } = setup();
  const s1 = new FakePublisher("s1", { log });
  const s2 = new FakePublisher("s2", { log });
  socket("a1", { pubsub: true }, s1);
  socket("a2", { pubsub: true }, s1);
  socket("b", { pubsub: true }, s2);
  const all = `chorus.${hub.node}.all`;
  log.length = 0;
  hub.broadcast("to all");
  assert.deepEqual(log.splice(0), [`s1 publish ${all} to all`, `s2 publish ${all} to all`]);
  hub.broadcastOthers("x", session("a1"));
  assert.deepEqual(log.splice(0), [`a1 publish ${all} x`, `s2 publish ${all} x`]);
  hub.broadcastOthers("y", session("b"));
  assert.deepEqual(log.splice(0), [`s1 publish ${all} y`, `b publish ${all} y`]);
  // A session without pub/sub in the mix: broadcasts loop, until it is gone.
  const c = socket("c");
  log.length = 0;
  hub.broadcast("loop");
  assert.deepEqual(log.splice(0), ["a1 send loop", "a2 send loop", "b send loop", "c send loop"]);
  c.closed(1000, "");
  log.length = 0;
  hub.broadcast("native");
  assert.deepEqual(log, [`s1 publish ${all} native`, `s2 publish ${all} native`]);
  await hub.close();
});

test("fake 9: room names must be well-formed Unicode", async () => {
  const { hub, socket, session } = setup();
  socket("a");
  const s = session("a");
  assert.throws(() => hub.room("\ud800"), TypeError);
  assert.throws(() => s.join("team\ud83d"), TypeError);
  assert.throws(() => s.leave("\udc00team"), TypeError);
  s.join("team😀");
  assert.equal(hub.room("team😀").size, 1);
  assert.deepEqual([...s.rooms], ["team😀"]);
  await hub.close();
});

interface UserKeys {
  uid: string;
}
/** True when A and B are the same type (not merely assignable). */
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

test("fake 10: new Hub<UserKeys>() with an interface; s.get is typed", async () => {
  const hub = new Hub<UserKeys>({ pingInterval: 0 });
  const sock = new FakeSocket({ name: "a" });
  assert.ok(sock.attach(hub, undefined, { uid: "u1" }));
  const s: Session<UserKeys> = hub.sessions()[0];
  const uid = s.get("uid");
  const typed: Equals<typeof uid, string | undefined> = true;
  assert.ok(typed);
  assert.equal(uid, "u1");
  // @ts-expect-error: "nope" is not a key of UserKeys
  assert.equal(s.get("nope"), undefined);
  await hub.close();
});
