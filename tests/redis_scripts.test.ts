// The Redis broker's Lua scripts without Redis: each script's one-server and Redis Cluster texts
// differ exactly where they should, and a script never runs where it has no text.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { type Script, SCRIPTS } from "../src/brokers/_redis_scripts.ts";
import { test } from "./_helpers.ts";

/** The lines only in `a` and the lines only in `b`, by a longest common subsequence of lines. */
function lineDiff(a: string, b: string): { removed: string[]; added: string[] } {
  const x = a.split("\n");
  const y = b.split("\n");
  const lcs = Array.from({ length: x.length + 1 }, () => new Array<number>(y.length + 1).fill(0));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const removed: string[] = [];
  const added: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      i++;
      j++;
    } else if (j < y.length && (i === x.length || lcs[i][j + 1] >= lcs[i + 1][j])) added.push(y[j++]);
    else removed.push(x[i++]);
  }
  return { removed, added };
}

const all = Object.entries(SCRIPTS) as [string, Script][];

/** Where each script runs: both (the same text or not), one server only, a Redis Cluster only. */
const SINGLE_ONLY = ["update", "beat", "list"];
const CLUSTER_ONLY = [
  "writeRoomCount",
  "sumRoomCounts",
  "roomUpdate",
  "nodeUpdate",
  "claimDead",
  "sweepRoom",
  "forgetDead",
  "live",
];
const DIFFERENT = ["append", "claim"];

test("redis scripts: each has its texts where it runs, none where it does not; each SHA-1 is its text's", () => {
  for (const [name, script] of all) {
    assert.equal(script.name, name);
    assert.equal(script.single === undefined, CLUSTER_ONLY.includes(name), `${name}: a one-server text or not`);
    assert.equal(script.cluster === undefined, SINGLE_ONLY.includes(name), `${name}: a cluster text or not`);
    for (const text of [script.single, script.cluster]) {
      if (!text) continue;
      assert.equal(text.sha, createHash("sha1").update(text.src).digest("hex"), `${name}: its SHA-1`);
      assert.ok(text.src.includes("redis.call("), `${name}: a Lua script`);
    }
    if (!script.single) assert.throws(() => script.text(false), /does not run on one server/);
    if (!script.cluster) assert.throws(() => script.text(true), /does not run on a Redis Cluster/);
  }
});

test("redis scripts: a Redis Cluster text never publishes on a plain channel; a one-server text never uses a cluster command", () => {
  for (const [name, script] of all) {
    if (script.cluster) {
      assert.doesNotMatch(script.cluster.src, /'PUBLISH'/, `${name}: SPUBLISH on a cluster, never PUBLISH`);
    }
    if (script.single) {
      assert.doesNotMatch(script.single.src, /'SPUBLISH'|'CLUSTER'/, `${name}: nothing of a cluster on one server`);
    }
  }
});

test("redis scripts: the scripts that run on both run the same text, but append and claim", () => {
  for (const [name, script] of all) {
    if (!script.single || !script.cluster) continue;
    if (DIFFERENT.includes(name)) assert.notEqual(script.single.src, script.cluster.src, name);
    else assert.equal(script.cluster.src, script.single.src, `${name}: the same text on a cluster`);
  }
});

test("redis scripts: claim on a cluster differs only in SPUBLISH for PUBLISH", () => {
  const { single, cluster } = SCRIPTS.claim;
  assert.deepEqual(lineDiff(single!.src, cluster!.src), {
    removed: ["  redis.call('PUBLISH', ARGV[3], ARGV[4] .. varint(#s.node) .. s.node .. s.id)"],
    added: ["  redis.call('SPUBLISH', ARGV[3], ARGV[4] .. varint(#s.node) .. s.node .. s.id)"],
  });
});

test("redis scripts: append on a cluster differs only in its writer check, its clocked seq and SPUBLISH", () => {
  const { single, cluster } = SCRIPTS.append;
  assert.deepEqual(lineDiff(single!.src, cluster!.src), {
    removed: [
      "-- (a cluster's writer check)",
      "local seq = redis.call('INCR', KEYS[3])",
      "  redis.call('PUBLISH', ARGV[10],",
    ],
    added: [
      // a stream last written by another primary continues in a new epoch
      "local me = redis.call('CLUSTER', 'MYID')",
      "if redis.call('HGET', KEYS[1], 'w') ~= me then",
      "  if offset > 1 and epoch ~= ARGV[1] then",
      "    epoch = ARGV[1]",
      "    redis.call('HSET', KEYS[1], 'e', epoch)",
      "  end",
      "  redis.call('HSET', KEYS[1], 'w', me)",
      "end",
      // the seq follows the shard's clock (µs), never going back
      "local seq = math.max(tonumber(redis.call('GET', KEYS[3]) or '0') + 1,",
      "  tonumber(now[1]) * 1000000 + tonumber(now[2]))",
      "redis.call('SET', KEYS[3], string.format('%d', seq))",
      "  redis.call('SPUBLISH', ARGV[10],",
    ],
  });
  // the seq is taken after the clock is read, in both
  for (const text of [single!.src, cluster!.src]) {
    assert.ok(text.indexOf("local now = redis.call('TIME')") < text.indexOf("local seq ="));
  }
});
