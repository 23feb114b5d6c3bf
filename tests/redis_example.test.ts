// examples/cluster/main.ts as a user runs it: a Deno process and a Bun process sharing Redis.
import assert from "node:assert/strict";
import { Child, cleanup, REDIS_URL, uniquePrefix } from "./_cluster.ts";
import { runtimeCommand } from "./_examples.ts";
import { Client, closeAll, test } from "./_helpers.ts";

test("examples/cluster: a user on one process sees the messages of a user on the other", async () => {
  const prefix = uniquePrefix("example");
  const script = new URL("../examples/cluster/main.ts", import.meta.url).pathname;
  const nodes = (["deno", "bun"] as const).map((r) => {
    const [cmd, args] = runtimeCommand(r, script);
    return new Child(cmd, [...args, "0"], { REDIS_URL, PREFIX: prefix });
  });
  const clients: Client[] = [];
  try {
    const ports: number[] = [];
    for (const node of nodes) ports.push(Number((await node.line(/localhost:(\d+)\//, "the chat to listen"))[1]));
    const page = await fetch(`http://127.0.0.1:${ports[0]}/`);
    assert.match(await page.text(), /chorus cluster chat/);
    const [a, b] = [
      await Client.open(`ws://127.0.0.1:${ports[0]}/ws`),
      await Client.open(`ws://127.0.0.1:${ports[1]}/ws`),
    ];
    clients.push(a, b);
    const name = String(await a.next()).replace("you are ", "");
    assert.match(name, new RegExp(`^guest-1@${ports[0]}$`));
    a.send("hello from the deno process");
    const line = `${name}: hello from the deno process`;
    for (let m = await b.next(); m !== line; m = await b.next()) assert.match(String(m), /you are|joined/);
    b.send("/who");
    for (let m = await b.next(); !String(m).includes("on this process"); m = await b.next()) {
      assert.match(String(m), /joined/);
    }
  } finally {
    await closeAll(clients);
    await Promise.all(nodes.map((n) => n.kill()));
    await cleanup(prefix);
  }
});
