// The Redis broker's helpers for a stalled Redis, without Redis: periodic work one run at a time
// (OneAtATime), and reads that share the answer of one that stalled (StalledReads).
import assert from "node:assert/strict";
import { OneAtATime, StalledReads, within } from "../src/brokers/_redis_util.ts";
import { deferred, test } from "./_helpers.ts";

test("OneAtATime: no run is issued while the previous is unanswered; those asked meanwhile go once, after it", async () => {
  const answers: ReturnType<typeof deferred<void>>[] = [];
  let done = 0;
  const work = new OneAtATime(() => {
    const answer = deferred();
    answers.push(answer);
    return { done: Promise.resolve().then(() => void done++), answered: answer.promise };
  });
  await work.run();
  assert.equal(answers.length, 1);
  assert.equal(work.busy, true);
  for (let i = 0; i < 100; i++) await work.run(); // put off: resolved at once, nothing issued
  assert.equal(answers.length, 1, "one run unanswered, however many were asked for");
  assert.equal(done, 1);
  answers[0].resolve();
  await answers[0].promise;
  await Promise.resolve();
  assert.equal(answers.length, 2, "the runs asked for meanwhile went, as one");
  answers[1].reject(new Error("failed")); // a failed run frees the way as an answered one does
  await answers[1].promise.catch(() => {});
  await Promise.resolve();
  assert.equal(work.busy, false);
  assert.equal(answers.length, 2, "nothing asked for meanwhile: nothing more");
  await work.run();
  assert.equal(answers.length, 3);
  answers[2].resolve();
});

test("OneAtATime: work that throws is not left busy", async () => {
  let fail = true;
  const work = new OneAtATime(() => {
    if (fail) throw new Error("not running");
    return { done: Promise.resolve(), answered: Promise.resolve() };
  });
  await assert.rejects(work.run(), /not running/);
  assert.equal(work.busy, false);
  fail = false;
  await work.run();
});

test("StalledReads: each read is sent until one times out; then the same read waits for its answer", async () => {
  const reads = new StalledReads((promise, what) => within(promise, 20, what));
  const sent: ReturnType<typeof deferred<number>>[] = [];
  const send = () => {
    const answer = deferred<number>();
    sent.push(answer);
    return answer.promise;
  };
  // answered in time: nothing shared
  const a = reads.read("k", send, "a read");
  sent[0].resolve(1);
  assert.equal(await a, 1);
  const b = reads.read("k", send, "a read");
  assert.equal(sent.length, 2);
  sent[1].reject(new Error("refused")); // a failure is no stall
  await assert.rejects(b, /refused/);
  // a read that times out: the same read waits for it, another key does not
  await assert.rejects(reads.read("k", send, "a read"), /did not answer a read within 20 ms/);
  assert.equal(sent.length, 3);
  const waiting = reads.read("k", send, "a read");
  const other = reads.read("other", send, "a read");
  assert.equal(sent.length, 4, "only the other key was sent");
  sent[3].resolve(7);
  assert.equal(await other, 7);
  sent[2].resolve(5); // the stalled one is answered, within the waiting read's own time
  assert.equal(await waiting, 5);
  reads.read("k", send, "a read").catch(() => {});
  assert.equal(sent.length, 5, "answered: the next read is sent again");
  sent[4].resolve(0);
});
