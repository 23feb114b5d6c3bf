// examples/cluster behind a real nginx, with the checked-in examples/cluster/nginx.conf (its ports
// replaced by spare ones, run from a temporary folder): a Deno node and a Bun node sharing Redis,
// WebSockets balanced over both, and the page's node SIGKILLed mid-stream: the page (headless
// Chromium) resumes through nginx on the other node, every message once, in order.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { Child, cleanup, eventually, freePort, REDIS_URL, uniquePrefix } from "./_cluster.ts";
import { root, runtimeCommand, runtimePath } from "./_examples.ts";
import { Client, closeAll, deadline, deferred, runtime, Signal, test, Watched } from "./_helpers.ts";
import { browserSkip, ConsoleErrors, launchBrowser } from "./_browser.ts";

/** Debian's nginx, where it is. */
const nginxBin = ["/usr/sbin/nginx", "/usr/bin/nginx"].find(existsSync) ??
  (spawnSync("nginx", ["-v"]).status === 0 ? "nginx" : undefined);

/** nginx in the foreground, from a temporary folder, with the example's configuration on our ports. */
class Nginx {
  readonly dir: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  readonly port: number;
  #log = "";

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.proc = spawn(nginxBin!, ["-p", `${dir}/`, "-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = deferred();
    this.exited = exited.promise;
    this.proc.on("close", () => exited.resolve());
    this.proc.on("error", (err) => {
      this.#log += String(err);
      exited.resolve();
    });
    this.proc.stdout!.on("data", (d) => this.#log += d);
    this.proc.stderr!.on("data", (d) => this.#log += d);
  }

  /** Renders examples/cluster/nginx.conf for `upstreams` on a spare port, starts nginx, waits until it answers. */
  static async start(upstreams: number[]): Promise<Nginx> {
    let conf = readFileSync(join(root, "examples/cluster/nginx.conf"), "utf8");
    const swap = (from: string, to: string) => {
      assert.equal(conf.split(from).length, 2, `nginx.conf names ${from} once`);
      conf = conf.replace(from, to);
    };
    const port = await freePort();
    swap("listen 127.0.0.1:8000;", `listen 127.0.0.1:${port};`);
    swap("server 127.0.0.1:8001;", `server 127.0.0.1:${upstreams[0]};`);
    swap("server 127.0.0.1:8002;", `server 127.0.0.1:${upstreams[1]};`);
    const dir = mkdtempSync(join(tmpdir(), "chorus-nginx-"));
    writeFileSync(join(dir, "nginx.conf"), conf);
    const nginx = new Nginx(dir, port);
    try {
      const status = () =>
        fetch(`http://127.0.0.1:${port}/`).then(async (r) => (await r.arrayBuffer(), r.status), () => 0);
      await eventually(status, (s) => s === 200, "nginx to answer", 10_000);
    } catch (err) {
      await nginx.stop();
      throw new Error(`nginx did not answer: ${err}\n${nginx.output()}`);
    }
    return nginx;
  }

  /** What nginx printed and logged as errors. */
  output(): string {
    const log = join(this.dir, "error.log");
    return this.#log + (existsSync(log) ? readFileSync(log, "utf8") : "");
  }

  /** Stops nginx by its pid (the master; its workers follow) and removes its folder. */
  async stop(): Promise<void> {
    const pidFile = join(this.dir, "nginx.pid");
    if (existsSync(pidFile)) assert.equal(Number(readFileSync(pidFile, "utf8")), this.proc.pid, "nginx's own pid file");
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGTERM");
    await deadline(this.exited, "nginx to exit", 10_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

type Msg = Record<string, unknown>;
const script = join(root, "examples/cluster/main.ts");
const numbered = (n: number): string[] => Array.from({ length: n }, (_, i) => `n${i + 1}`);
const skip = browserSkip || (!nginxBin ? "nginx is not installed" : false) ||
  (runtimePath("deno") && runtimePath("bun") ? false : "needs both runtimes");

test(
  `examples/cluster behind nginx, in Chromium (${runtime} runner): the page's node is SIGKILLed mid-stream; it resumes through nginx on the other, every message once`,
  async () => {
    const prefix = uniquePrefix("example-nginx");
    const nodes = (["deno", "bun"] as const).map((r) => {
      const [cmd, args] = runtimeCommand(r, script);
      return new Child(cmd, [...args, "0"], { REDIS_URL, PREFIX: prefix, HOST: "127.0.0.1" });
    });
    let nginx: Nginx | undefined;
    let browser: Browser | undefined;
    let b: Watched | undefined;
    const signal = new Signal();
    try {
      const ports: number[] = [];
      for (const n of nodes) ports.push(Number((await n.line(/listening on http:\/\/[^/]+:(\d+)\//, "a node"))[1]));
      nginx = await Nginx.start(ports);
      const lb = `127.0.0.1:${nginx.port}`;

      // two upstreams, no stickiness: two connections in a row land on the two nodes
      const plain = [await Client.open(`ws://${lb}/ws`), await Client.open(`ws://${lb}/ws`)];
      const hellos = await Promise.all(plain.map(async (c) => JSON.parse(String(await c.next())) as Msg));
      await closeAll(plain);
      assert.deepEqual(hellos.map((h) => h.node).sort(), [...ports].sort(), "round robin over both nodes");

      browser = await launchBrowser();
      const errors = new ConsoleErrors(browser);
      const page = await errors.newPage();
      const wait = { timeout: 10_000 };
      await page.goto(`http://${lb}/`);
      await page.locator("#status", { hasText: /^connected$/ }).waitFor(wait);
      await page.locator("#node", { hasText: /^on node \d+$/ }).waitFor(wait);
      const first = Number((await page.locator("#node").textContent())!.replace("on node ", ""));
      const victim = ports.indexOf(first);
      assert.ok(victim >= 0, `the page is on one of the nodes (${first})`);
      const survivor = ports[1 - victim];

      // a talker on the other node, straight to it; each message sent once the last came back
      b = new Watched(`ws://127.0.0.1:${survivor}/ws`, signal);
      const texts = () =>
        b!.got.map((m) => JSON.parse(m) as Msg).filter((m) => m.type === "message").map((m) => String(m.text));
      await signal.until(() => b!.got.some((m) => JSON.parse(m).type === "hello"), "b's hello");
      for (let i = 1; i <= 20; i++) {
        b.c.send(`n${i}`);
        await signal.until(() => texts().length >= i, `n${i} back at b`, 10_000);
        if (i === 8) await nodes[victim].kill("SIGKILL");
      }
      await page.locator("#status", { hasText: "reconnected — nothing lost" }).waitFor({ timeout: 25_000 });
      await page.locator("#node", { hasText: `on node ${survivor}` }).waitFor(wait);
      await page.locator("#messages li .text", { hasText: /^n20$/ }).waitFor(wait);
      assert.deepEqual(
        await page.locator("#messages li:not(.pending) .text").allTextContents(),
        numbered(20),
        "every message once, in order",
      );
      assert.equal(await page.locator("#messages li.separator").count(), 0, "the same session: no history again");
      // and the page talks on through nginx, from the other node
      await page.locator("#input").fill("back");
      await page.locator("#input").press("Enter");
      await signal.until(() => texts().includes("back"), "the page's message at b");
      await page.locator("#messages li:not(.pending) .text", { hasText: /^back$/ }).waitFor(wait);
      assert.deepEqual(texts(), [...numbered(20), "back"], "b got each once");
      assert.deepEqual(await page.locator("#messages li:not(.pending) .text").allTextContents(), [
        ...numbered(20),
        "back",
      ]);
      errors.assertNone();
    } catch (err) {
      if (nginx) console.error(`nginx output:\n${nginx.output()}`);
      throw err;
    } finally {
      await browser?.close();
      await b?.end();
      await nginx?.stop();
      await Promise.all(nodes.map((n) => n.kill()));
      await cleanup(prefix);
    }
  },
  { skip },
);
