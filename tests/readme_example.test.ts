// The README's example is examples/hello/main.ts: run it as a user would, on this runtime.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Client, test } from "./_helpers.ts";
import { startExample } from "./_examples.ts";

test("the README example runs and chats", async () => {
  const ex = await startExample("hello");
  const clients: Client[] = [];
  try {
    clients.push(await Client.open(ex.wsUrl("/?name=ann")), await Client.open(ex.wsUrl("/?name=bob")));
    clients[0].send("hello");
    for (const c of clients) assert.equal(await c.next(), "ann: hello");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await ex.stop("SIGINT");
  }
  assert.match(ex.output(), /ann left/, "the disconnect hook ran");
});

test("the README shows the example file verbatim", () => {
  const readme = readFileSync("README.md", "utf8");
  const example = readFileSync("examples/hello/main.ts", "utf8").split("\n").slice(1).join("\n").trim();
  assert.ok(readme.includes(example), "README.md's example differs from examples/hello/main.ts");
});
