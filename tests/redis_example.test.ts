// examples/cluster/main.ts as a user runs it: a Deno process and a Bun process sharing Redis;
// then the same two behind a TCP proxy as the load balancer, the first one killed mid-conversation:
// a chorus-ws/client client (and a Chromium page) comes back on the other with nothing lost.
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { Child, cleanup, freePort, REDIS_URL, uniquePrefix } from "./_cluster.ts";
import { runtimeCommand, runtimePath } from "./_examples.ts";
import { Client, closeAll, deadline, runtime, Signal, test, Watched } from "./_helpers.ts";
import { browserSkip, ConsoleErrors, launchBrowser } from "./_browser.ts";
import { Proxy } from "./_proxy.ts";
import { RedisCluster } from "./_redis_cluster.ts";

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

type Msg = Record<string, unknown>;
const script = new URL("../examples/cluster/main.ts", import.meta.url).pathname;

/** The example on a Deno process and on a Bun process (in this order), with their ports. */
async function startCluster(prefix: string, redisCluster?: RedisCluster): Promise<{ nodes: Child[]; ports: number[] }> {
  const redis: Record<string, string> = redisCluster ? { REDIS_CLUSTER: redisCluster.urls.join(",") } : { REDIS_URL };
  const nodes = (["deno", "bun"] as const).map((r) => {
    const [cmd, args] = runtimeCommand(r, script);
    return new Child(cmd, [...args, "0"], { ...redis, PREFIX: prefix });
  });
  const ports: number[] = [];
  try {
    for (const node of nodes) {
      ports.push(Number((await node.line(/listening on http:\/\/[^/]+:(\d+)\//, "the chat to listen"))[1]));
    }
  } catch (err) {
    await Promise.all(nodes.map((n) => n.kill()));
    throw err;
  }
  return { nodes, ports };
}

test(`examples/cluster honours PORT and HOST, on Deno and on Bun (${runtime} runner)`, async () => {
  const prefix = uniquePrefix("example-host");
  try {
    for (const r of ["deno", "bun"] as const) {
      // 127.0.0.2 is loopback too, but not 127.0.0.1: a node bound there answers on one and not the other
      const port = await freePort();
      const [cmd, args] = runtimeCommand(r, script);
      const node = new Child(cmd, args, { REDIS_URL, PREFIX: prefix, PORT: String(port), HOST: "127.0.0.2" });
      try {
        const m = await node.line(/listening on (http:\/\/\S+) .*prefix (\S+)\)$/, `${r} node to listen`);
        assert.deepEqual([m[1], m[2]], [`http://127.0.0.2:${port}/`, prefix]);
        const page = await fetch(`http://127.0.0.2:${port}/`);
        assert.match(await page.text(), /chorus cluster chat/);
        await assert.rejects(fetch(`http://127.0.0.1:${port}/`), `${r}: nothing on 127.0.0.1`);
      } finally {
        await node.kill();
      }
    }
  } finally {
    await cleanup(prefix);
  }
}, { skip: runtimePath("deno") && runtimePath("bun") ? false : "needs both runtimes" });

/** The next JSON message of a plain client that satisfies `match` (others are skipped). */
async function until(c: Client, match: (m: Msg) => boolean, what: string): Promise<Msg> {
  return await deadline(
    (async () => {
      for (;;) {
        const m = JSON.parse(String(await c.next(10_000)));
        if (match(m)) return m;
      }
    })(),
    what,
    10_000,
  );
}

for (const on of ["Redis", "a Redis Cluster (REDIS_CLUSTER)"]) {
  test(`examples/cluster on ${on}: a user on one process sees the messages of a user on the other; history on entry`, async () => {
    const prefix = uniquePrefix("example");
    const redisCluster = on === "Redis" ? undefined : await RedisCluster.start();
    const { nodes, ports } = await startCluster(prefix, redisCluster).catch(async (err) => {
      await redisCluster?.stop();
      throw err;
    });
    const clients: Client[] = [];
    try {
      const page = await fetch(`http://127.0.0.1:${ports[0]}/`);
      assert.match(await page.text(), /chorus cluster chat/);
      const js = await fetch(`http://127.0.0.1:${ports[1]}/chorus-client.js`);
      assert.match(js.headers.get("content-type") ?? "", /^text\/javascript/);
      assert.match(await js.text(), /export function connect/);
      const [a, b] = [
        await Client.open(`ws://127.0.0.1:${ports[0]}/ws`),
        await Client.open(`ws://127.0.0.1:${ports[1]}/ws`),
      ];
      clients.push(a, b);
      const hello = JSON.parse(String(await a.next()));
      assert.equal(hello.type, "hello");
      assert.equal(hello.node, ports[0]);
      const name = String(hello.name);
      assert.match(name, new RegExp(`^guest-1@${ports[0]}$`));
      assert.deepEqual(await until(a, (m) => m.type === "history", "a's history"), { type: "history", messages: [] });
      // live member lists: b joined on the other process; a's page hears it (presence in Redis)
      const nameB = String(JSON.parse(String(await b.next())).name);
      const members = await until(a, (m) => m.type === "members" && (m.members as string[]).length === 2, "2 members");
      assert.deepEqual(members.members, [name, nameB].sort());
      a.send("hello from the deno process");
      const got = await until(b, (m) => m.type === "message", "a's message on the bun process");
      assert.deepEqual([got.name, got.text], [name, "hello from the deno process"]);
      b.send("/who");
      const who = await until(b, (m) => m.type === "who", "the answer to /who");
      assert.deepEqual(who, { type: "who", online: 2, here: 1, node: ports[1] });
      // a newcomer on the other process first gets what was said (from Redis), not the notices
      const c = await Client.open(`ws://127.0.0.1:${ports[1]}/ws`);
      clients.push(c);
      assert.equal(JSON.parse(String(await c.next())).type, "hello");
      const history = await until(c, (m) => m.type === "history", "c's history");
      assert.equal(history.type, "history");
      assert.deepEqual((history.messages as Msg[]).map((m) => [m.name, m.text]), [[
        name,
        "hello from the deno process",
      ]]);
      // each process serves its metrics for Prometheus to scrape
      const scraped = await fetch(`http://127.0.0.1:${ports[0]}/metrics`);
      assert.match(scraped.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const metrics = parsePrometheus(await scraped.text());
      assert.equal(metrics.get("chorus_sessions"), 1);
      assert.equal(metrics.get("chorus_connects_total"), 1);
      assert.equal(metrics.get("chorus_messages_in_total"), 1, "a's one message");
      assert.ok(metrics.get("chorus_messages_out_total")! >= 3, "hello, history, the message");
      assert.ok(metrics.get("chorus_broker_latency_seconds")! > 0, "appends to the streams were timed");
    } finally {
      await closeAll(clients);
      await Promise.all(nodes.map((n) => n.kill()));
      if (redisCluster) await redisCluster.stop();
      else await cleanup(prefix);
    }
  });
}

/** A client of the chat: its messages are JSON. */
class Chatter extends Watched {
  /** The messages of a type. */
  of(type: string): Msg[] {
    return this.got.map((m) => JSON.parse(m) as Msg).filter((m) => m.type === type);
  }

  /** The texts of the chat messages from `name`. */
  texts(name: string): string[] {
    return this.of("message").filter((m) => m.name === name).map((m) => String(m.text));
  }
}

const numbered = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);

/**
 * Sends n1..n`count` from `sender`, each once the previous came back to it (a conversation, not a
 * burst); `at(i)` runs after each.
 */
async function talk(sender: Chatter, name: string, count: number, signal: Signal, at: (i: number) => Promise<void>) {
  for (let i = 1; i <= count; i++) {
    sender.c.send(`n${i}`);
    await signal.until(() => sender.texts(name).length >= i, `n${i} back at its sender`, 10_000);
    await at(i);
  }
}

test("examples/cluster: the Deno process is SIGKILLed mid-conversation; its client resumes on the Bun one through the load balancer, every message once, in order", async () => {
  const prefix = uniquePrefix("example-resume");
  const { nodes, ports } = await startCluster(prefix);
  const signal = new Signal();
  const lb = await Proxy.start(ports[0]);
  const watched: Chatter[] = [];
  try {
    const a = new Chatter(`ws://127.0.0.1:${lb.port}/ws`, signal);
    watched.push(a);
    await signal.until(() => a.of("history").length === 1, "a's hello and history");
    assert.deepEqual(a.of("hello").map((m) => m.node), [ports[0]]);
    const b = new Chatter(`ws://127.0.0.1:${ports[1]}/ws`, signal);
    watched.push(b);
    await signal.until(() => b.of("hello").length === 1, "b's hello");
    const bName = String(b.of("hello")[0].name);
    await talk(b, bName, 40, signal, async (i) => {
      if (i !== 15) return;
      lb.retarget(ports[1]); // the load balancer sends the next connections to the other node
      await nodes[0].kill("SIGKILL");
    });
    await signal.until(() => a.texts(bName).length >= 40, "all 40 at a", 20_000);
    await signal.until(() => a.of("resumed").length === 1, "a resumed");
    assert.deepEqual(a.texts(bName), numbered(40), "every message once, in order");
    assert.deepEqual(a.opens, [false, true], "resumed on the other node");
    assert.deepEqual(a.of("resumed"), [{ type: "resumed", node: ports[1] }]);
    assert.equal(a.of("hello").length, 1, "the same session: no second hello");
    assert.equal(a.c.state, "open");
    // and it talks on, from the other node
    a.c.send("back");
    await signal.until(() => b.texts(String(a.of("hello")[0].name)).includes("back"), "a's message at b");
  } finally {
    for (const w of watched) await w.end();
    await lb.close();
    await Promise.all(nodes.map((n) => n.kill()));
    await cleanup(prefix);
  }
});

test(
  `examples/cluster in Chromium (${runtime} runner): the page's node is SIGKILLed; it says "reconnected — nothing lost", on the other node, every message once`,
  async () => {
    const prefix = uniquePrefix("example-browser");
    const { nodes, ports } = await startCluster(prefix);
    const signal = new Signal();
    const lb = await Proxy.start(ports[0]); // the load balancer: page, script and WebSocket through one port
    let b: Chatter | undefined;
    let browser: Browser | undefined;
    try {
      b = new Chatter(`ws://127.0.0.1:${ports[1]}/ws`, signal);
      await signal.until(() => b!.of("hello").length === 1, "b's hello");
      const bName = String(b.of("hello")[0].name);
      b.c.send("before");
      await signal.until(() => b!.texts(bName).length === 1, "b's first message back");

      browser = await launchBrowser();
      const errors = new ConsoleErrors(browser);
      const page = await errors.newPage();
      await page.goto(`http://127.0.0.1:${lb.port}/`);
      const wait = { timeout: 10_000 };
      await page.locator("#status", { hasText: /^connected$/ }).waitFor(wait);
      await page.locator("#node", { hasText: `on node ${ports[0]}` }).waitFor(wait);
      await page.locator("#messages li.notice", { hasText: /joined \(2 online\)/ }).waitFor(wait);
      // the live member list: b (on the other process) and the page's own user
      const me = (await page.locator("#me").textContent())!.replace(/^as /, "");
      await page.locator("#members", { hasText: [bName, me].sort().join(", ") }).waitFor(wait);
      // what was said before it came, under "earlier messages"
      assert.deepEqual(await page.locator("#messages li.separator").allTextContents(), ["earlier messages"]);
      assert.deepEqual(await page.locator("#messages li.earlier .text").allTextContents(), ["before"]);

      await talk(b, bName, 20, signal, async (i) => {
        if (i !== 8) return;
        lb.retarget(ports[1]);
        await nodes[0].kill("SIGKILL");
      });
      await page.locator("#status", { hasText: "reconnected — nothing lost" }).waitFor({ timeout: 25_000 });
      await page.locator("#node", { hasText: `on node ${ports[1]}` }).waitFor(wait);
      await page.locator("#messages li .text", { hasText: /^n20$/ }).waitFor(wait);
      assert.deepEqual(
        await page.locator("#messages li:not(.pending) .text").allTextContents(),
        ["before", ...numbered(20)],
        "every message once, in order",
      );
      assert.equal(await page.locator("#messages li.separator").count(), 1, "no second history");
      // the page talks on, from the other node
      await page.locator("#input").fill("back");
      await page.locator("#input").press("Enter");
      await signal.until(() => b!.of("message").some((m) => m.text === "back"), "the page's message at b");
      errors.assertNone();
    } finally {
      await browser?.close();
      await b?.end();
      await lb.close();
      await Promise.all(nodes.map((n) => n.kill()));
      await cleanup(prefix);
    }
  },
  { skip: browserSkip || (runtimePath("deno") && runtimePath("bun") ? false : "needs both runtimes") },
);
