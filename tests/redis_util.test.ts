// The Redis broker's helpers for a stalled Redis, without Redis: periodic work one run at a time
// (OneAtATime).
import assert from "node:assert/strict";
import { OneAtATime } from "../src/brokers/_redis_util.ts";
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
