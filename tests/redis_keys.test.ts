// The Redis broker's key and channel names and hash slots, without Redis: the names the docs
// promise (RedisBrokerOptions.prefix, .cluster), safe key parts, and CRC16 slots as Redis computes them.
import assert from "node:assert/strict";
import { RedisKeys, safeKey } from "../src/brokers/_redis_keys.ts";
import { keySlot } from "../src/brokers/_redis_cluster.ts";
import { test } from "./_helpers.ts";

test("redis keys: one server: every name under <prefix>, a room's channel <prefix>:room:<room>", () => {
  const keys = new RedisKeys("app", false);
  assert.equal(keys.home, "app");
  assert.equal(keys.channel, "app:broadcast");
  assert.equal(keys.nodes, "app:nodes");
  assert.equal(keys.nodePrefix, "app:node:");
  assert.equal(keys.roomChannel("blue room"), "app:room:blue room");
  assert.equal(keys.streamBase("h"), "app");
  assert.equal(keys.streamBase("r:blue"), "app");
  assert.equal(keys.streamBase("s:id"), "app");
});

test("redis keys: a Redis Cluster: {<prefix>} for the hub's names, a room's own slot for its names", () => {
  const keys = new RedisKeys("app", true);
  assert.equal(keys.home, "{app}");
  assert.equal(keys.channel, "{app}:broadcast");
  assert.equal(keys.nodes, "{app}:nodes");
  assert.equal(keys.nodePrefix, "{app}:node:");
  assert.equal(keys.roomSlot("blue room"), "{app:r:blue%20room}");
  assert.equal(keys.roomChannel("blue room"), "{app:r:blue%20room}:ch");
  assert.equal(keys.roomCounts("blue"), "{app:r:blue}:cn");
  assert.equal(keys.roomMembers("blue"), "{app:r:blue}:pr");
  assert.equal(keys.streamBase("r:blue"), "{app:r:blue}");
  assert.equal(keys.streamBase("h"), "{app}");
  assert.equal(keys.streamBase("s:r:blue"), "{app}", "a session's own stream stays on {prefix}");
  // a room named like a hash tag cannot move its keys to another slot
  assert.equal(keySlot(keys.roomChannel("}{x")), keySlot(keys.roomCounts("}{x")));
  assert.equal(keys.roomSlot("}{x"), "{app:r:%7d%7bx}");
});

test("redis keys: safeKey escapes what globs, hash tags and tools treat specially, and lone surrogates; names stay apart", () => {
  assert.equal(safeKey("plain-name_1.2:3"), "plain-name_1.2:3");
  assert.equal(safeKey("a b*c?d[e]f\\g{h}i%j"), "a%20b%2ac%3fd%5be%5df%5cg%7bh%7di%25j");
  assert.equal(safeKey("\u0000\u007f"), "%00%7f");
  assert.equal(safeKey("é🎉"), "é🎉", "a valid pair stays");
  assert.equal(safeKey("\ud800x\udfff"), "%ud800x%udfff");
  const names = ["a b", "a%20b", "a%2520b", "%", "%25", "{", "%7b", "\ud800", "%ud800"];
  assert.equal(new Set(names.map(safeKey)).size, names.length, "different names, different keys");
});

test("redis keys: keySlot is Redis's CRC16 slot, of the hash tag when there is one", () => {
  assert.equal(keySlot("123456789"), 12739, "CRC16/XMODEM of the check string is 0x31C3");
  assert.equal(keySlot("foo"), 12182);
  assert.equal(keySlot(""), 0);
  assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
  assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
  assert.equal(keySlot("foo{}{bar}"), keySlot("foo{}{bar}"), "an empty tag: the whole key");
  assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
  assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"), "the tag ends at the first } after the first {");
  assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
  for (let i = 0; i < 1000; i++) {
    const slot = keySlot(`k${i}`);
    assert.ok(Number.isInteger(slot) && slot >= 0 && slot < 16384);
  }
});
