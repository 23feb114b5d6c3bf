// Room history kept in this process (no broker) is bounded: at most MAX_ROOMS rooms, the one
// written longest ago forgotten first, and messages older than `ttl` dropped as new ones come.

import assert from "node:assert/strict";
import { Hub } from "../mod.ts";
import { MAX_ROOMS } from "../src/core/_history.ts";
import { hubCore } from "../src/hub.ts";
import { test } from "./_helpers.ts";

test("history: at most MAX_ROOMS rooms keep a history in one process; the room written longest ago goes first", async () => {
  const hub = new Hub({ history: { size: 2 } });
  try {
    for (let i = 0; i < MAX_ROOMS + 500; i++) hub.room(`room-${i}`).broadcast(`m${i}`);
    hub.room("room-0").broadcast("again"); // room 0 was forgotten; written again, it is the newest
    assert.equal(hubCore(hub).history.rooms, MAX_ROOMS);
    assert.deepEqual((await hub.room("room-1").history()).map((e) => e.message), [], "forgotten");
    assert.deepEqual((await hub.room(`room-${MAX_ROOMS + 499}`).history()).map((e) => e.message), [
      `m${MAX_ROOMS + 499}`,
    ]);
    assert.deepEqual((await hub.room("room-0").history()).map((e) => e.message), ["again"]);
  } finally {
    await hub.close();
  }
});
