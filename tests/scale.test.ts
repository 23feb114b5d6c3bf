// A test-sized scale check: 300 clients, broadcasts to all, nothing lost, order kept.

import assert from "node:assert/strict";
import { closeAll, deadline, openClients, startServer, test } from "./_helpers.ts";
import { nativePublishes, nativeRuntime } from "./_fanout.ts";

test("300 clients each receive every one of 20 broadcasts, in order", async () => {
  const t = await startServer();
  const clients = await openClients(t.wsUrl(), 300);
  try {
    await t.signal.until(() => t.hub.size === 300, "300 sessions");
    const before = nativePublishes(t.hub);
    for (let i = 0; i < 20; i++) t.hub.broadcast(`m${i}`);
    const expected = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const got = await deadline(Promise.all(clients.map((c) => c.take(20, 20_000))), "every broadcast", 30_000);
    for (const messages of got) assert.deepEqual(messages, expected);
    assert.equal(nativePublishes(t.hub) - before, nativeRuntime ? 20 : 0);
    assert.deepEqual(t.errors, []);
  } finally {
    await closeAll(clients);
    await t.close();
  }
});
