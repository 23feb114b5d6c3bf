// The bounded in-memory stream (src/core/_memstream.ts) alone: offsets, the size limit, reads
// after an offset, ttl (with explicit clocks: no timers), drop.
import assert from "node:assert/strict";
import { MemStream } from "../src/core/_memstream.ts";
import { test } from "./_helpers.ts";

const offsets = <T>(stream: MemStream<T>, after: number, limit?: number, now?: number) =>
  stream.read(after, limit, now).map((e) => e.offset);

test("memstream: offsets from 1 in the stream's epoch; reads after an offset, oldest first", () => {
  const stream = new MemStream<string>("ep1");
  assert.equal(stream.epoch, "ep1");
  assert.equal(stream.top, 0);
  assert.equal(stream.size, 0);
  assert.equal(stream.first, 1);
  assert.deepEqual(stream.read(0), []);
  for (const [i, v] of ["a", "b", "c", "d"].entries()) assert.equal(stream.append(v, 10, Infinity, 1000 + i), i + 1);
  assert.equal(stream.top, 4);
  assert.equal(stream.size, 4);
  assert.equal(stream.first, 1);
  assert.deepEqual(stream.read(0).map((e) => [e.offset, e.value, e.time, e.expires]), [
    [1, "a", 1000, Infinity],
    [2, "b", 1001, Infinity],
    [3, "c", 1002, Infinity],
    [4, "d", 1003, Infinity],
  ]);
  assert.deepEqual(offsets(stream, 2), [3, 4]);
  assert.deepEqual(offsets(stream, 3), [4]);
  assert.deepEqual(offsets(stream, 4), [], "nothing after the top");
  assert.deepEqual(offsets(stream, 99), []);
  assert.deepEqual(offsets(stream, 0, 2), [1, 2], "at most limit");
  assert.deepEqual(offsets(stream, 1, 2), [2, 3]);
  assert.deepEqual(offsets(stream, 0, 0), [], "limit 0");
  const value = { n: 1 };
  const objects = new MemStream<{ n: number }>("ep2");
  objects.append(value, 1);
  assert.equal(objects.read(0)[0].value, value, "values are kept as appended, not copied");
});

test("memstream: keeps at most limit entries, the newest; offsets stay contiguous from first to top", () => {
  const stream = new MemStream<number>("ep");
  for (let i = 1; i <= 5; i++) stream.append(i, 3);
  assert.equal(stream.size, 3);
  assert.equal(stream.first, 3);
  assert.equal(stream.top, 5);
  assert.deepEqual(offsets(stream, 0), [3, 4, 5], "a read from before the oldest starts at the oldest");
  assert.deepEqual(offsets(stream, 3), [4, 5]);
  // a smaller limit on a later append trims more; a larger one keeps more from then on
  stream.append(6, 1);
  assert.deepEqual(stream.read(0).map((e) => e.value), [6]);
  stream.append(7, 5);
  stream.append(8, 5);
  assert.deepEqual(offsets(stream, 0), [6, 7, 8]);
  // many appends through a small window: the same answers as a plain array would give
  const many = new MemStream<number>("many");
  const model: number[] = [];
  for (let i = 1; i <= 20_000; i++) {
    const limit = 1 + (i % 7);
    assert.equal(many.append(i, limit), i);
    model.push(i);
    model.splice(0, Math.max(0, model.length - limit));
    if (i % 997 === 0 || i > 19_990) {
      assert.deepEqual(many.read(0).map((e) => e.value), model);
      assert.deepEqual(many.read(i - 2).map((e) => e.value), model.filter((v) => v > i - 2));
    }
  }
  assert.ok(many.size <= 7);
});

test("memstream: with a ttl, reads leave expired entries out and prune drops them, oldest first", () => {
  const stream = new MemStream<string>("ep");
  stream.append("a", 10, 100, 1000); // lives until 1100
  stream.append("b", 10, 100, 1050); // until 1150
  stream.append("c", 10, 100, 1100); // until 1200
  assert.deepEqual(offsets(stream, 0, Infinity, 1100), [1, 2, 3], "alive at its expiry time");
  assert.deepEqual(offsets(stream, 0, Infinity, 1101), [2, 3], "expired past it");
  assert.deepEqual(offsets(stream, 0, 1, 1101), [2], "the limit counts live entries");
  assert.equal(stream.size, 3, "reads do not drop");
  assert.equal(stream.prune(1100), 0);
  assert.equal(stream.prune(1151), 2);
  assert.equal(stream.size, 1);
  assert.equal(stream.first, 3);
  assert.equal(stream.top, 3);
  assert.equal(stream.prune(5000), 1);
  assert.equal(stream.size, 0);
  assert.equal(stream.first, 4, "empty: first is top + 1");
  assert.equal(stream.append("d", 10, 100, 6000), 4, "offsets go on after a prune");
  // prune stops at the first live entry; reads still leave out a later one that expired sooner
  const mixed = new MemStream<string>("mixed");
  mixed.append("long", 10, 1000, 0);
  mixed.append("short", 10, 10, 0);
  mixed.append("forever", 10, Infinity, 0);
  assert.equal(mixed.prune(500), 0);
  assert.deepEqual(mixed.read(0, Infinity, 500).map((e) => e.value), ["long", "forever"]);
  assert.equal(mixed.prune(2000), 2, "the short one goes with the long one");
  assert.deepEqual(mixed.read(0, Infinity, 2000).map((e) => e.value), ["forever"]);
});

test("memstream: drop forgets every entry, and the epoch and offsets go on", () => {
  const stream = new MemStream<string>("ep");
  stream.append("a", 10);
  stream.append("b", 10);
  stream.drop();
  assert.equal(stream.size, 0);
  assert.equal(stream.top, 2);
  assert.equal(stream.first, 3);
  assert.deepEqual(stream.read(0), []);
  assert.equal(stream.append("c", 10), 3);
  assert.equal(stream.epoch, "ep");
  assert.deepEqual(offsets(stream, 0), [3]);
});

test("memstream: a bad limit or ttl throws RangeError, and nothing is appended", () => {
  const stream = new MemStream<string>("ep");
  for (const limit of [0, -1, 1.5, NaN, Infinity]) {
    assert.throws(() => stream.append("x", limit), RangeError, `limit ${limit}`);
  }
  for (const ttl of [0, -5, NaN]) assert.throws(() => stream.append("x", 1, ttl), RangeError, `ttl ${ttl}`);
  assert.equal(stream.top, 0);
  assert.equal(stream.size, 0);
});
