// examples/cluster/main.ts as a user runs it: a Deno process and a Bun process sharing Redis.
import assert from "node:assert/strict";
import { Child, cleanup, REDIS_URL, uniquePrefix } from "./_cluster.ts";
import { runtimeCommand } from "./_examples.ts";
import { Client, closeAll, test } from "./_helpers.ts";

/** The samples of a Prometheus text exposition; each HELP and TYPE line must precede its sample. */
function parsePrometheus(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.trim().split("\n")) {
    const type = line.match(/^# TYPE (\w+) (counter|gauge)$/);
    if (type) typed.add(type[1]);
    if (line.startsWith("#")) continue;
    const [name, value] = line.split(" ");
    assert.ok(typed.has(name), `${name} has a TYPE line`);
    samples.set(name, Number(value));
  }
  return samples;
}

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
    // each process serves its metrics for Prometheus to scrape
    const scraped = await fetch(`http://127.0.0.1:${ports[0]}/metrics`);
    assert.match(scraped.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const metrics = parsePrometheus(await scraped.text());
    assert.equal(metrics.get("chorus_sessions"), 1);
    assert.equal(metrics.get("chorus_connects_total"), 1);
    assert.equal(metrics.get("chorus_messages_in_total"), 1, "a's one message");
    assert.ok(metrics.get("chorus_messages_out_total")! >= 3, "you are, joined, the message");
    assert.ok(metrics.get("chorus_broker_latency_seconds")! > 0, "publishes were timed");
  } finally {
    await closeAll(clients);
    await Promise.all(nodes.map((n) => n.kill()));
    await cleanup(prefix);
  }
});
