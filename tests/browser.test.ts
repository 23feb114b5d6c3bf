// Real browser tests: headless Chromium pages on the chat, multichat and jwt-chat examples, each
// example served by a Deno child and by a Bun child, under whichever runner runs the suite. The
// pages run on chorus/client; the cut test puts a TCP proxy (tests/_proxy.ts) in front of each
// page's whole origin and cuts it mid-conversation. The notify and cursors pages load with their
// icon. Last, a page on the client's browser build meets refused upgrades (served in-process, by
// the runner's runtime). Every test fails on a console error, uncaught exception or failed load of
// its pages (a missing favicon too) other than the ones it provokes (a cut or refused WebSocket).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { Hono } from "hono";
import type { Page } from "playwright-core";
import { Hub } from "../mod.ts";
import { serveApp, upgrade } from "../src/hono.ts";
import { RawPeer, runtime, test } from "./_helpers.ts";
import { type Example, runtimePath, startExample, stopCleanly } from "./_examples.ts";
import { browserSkip, ConsoleErrors, launchBrowser, type Pages } from "./_browser.ts";
import { Proxy } from "./_proxy.ts";

const wait = { timeout: 10_000 };
/** Long enough for a reconnect after a few refused attempts (backoff up to ~5 s). */
const reconnect = { timeout: 25_000 };

/**
 * Runs `fn` with a fresh browser and the example served by `server`; closes both after. Fails on any
 * console error, uncaught exception or failed load of its pages that `allowed` does not match.
 */
async function withBrowser(
  name: string,
  server: "deno" | "bun",
  fn: (browser: Pages, ex: Example) => Promise<void>,
  allowed: RegExp[] = [],
): Promise<void> {
  const ex = await startExample(name, { runtime: server });
  const browser = await launchBrowser().catch(async (err) => {
    await stopCleanly(ex);
    throw err;
  });
  try {
    const errors = new ConsoleErrors(browser);
    await fn(errors, ex);
    errors.assertNone(allowed);
  } finally {
    await browser.close();
    await stopCleanly(ex);
  }
}

/** Each item of `#messages` as the user reads it, without its time: `ann: hi`, `ann joined`. */
function lines(page: Page): Promise<string[]> {
  return page.locator("#messages li").evaluateAll((lis) =>
    lis.map((li) => [...li.childNodes].filter((n) => n.nodeName !== "TIME").map((n) => n.textContent).join(""))
  );
}

/** The texts of the messages the server sent back (not pending, not notices), in page order. */
function texts(page: Page): Promise<string[]> {
  return page.locator("#messages li:not(.pending):not(.notice) .text").allTextContents();
}

/** A pattern that matches exactly `text`. */
function exactly(text: string): RegExp {
  return new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
}

/** Waits until `text` is on the page as a message that came back from the server. */
function arrived(page: Page, text: string, opts = wait): Promise<void> {
  return page.locator("#messages li:not(.pending) .text", { hasText: exactly(text) }).waitFor(opts);
}

/** Every shown time of the page's delivered messages is hh:mm. */
async function assertTimes(page: Page): Promise<void> {
  const times = await page.locator("#messages li:not(.pending) time").allTextContents();
  assert.ok(times.length > 0);
  for (const t of times) assert.match(t, /^\d\d:\d\d$/);
}

/** Types `text` and sends it with the Send button, or with Enter. */
async function say(page: Page, text: string, how: "button" | "enter" = "button"): Promise<void> {
  await page.locator("#input").fill(text);
  if (how === "button") await page.getByRole("button", { name: "Send" }).click();
  else await page.locator("#input").press("Enter");
}

const status = (page: Page, text: string | RegExp) => page.locator("#status", { hasText: text });
/** Chromium's console line for a WebSocket that could not connect (a test that cuts or refuses on purpose). */
const refusedSocket = /^console error on \S+: WebSocket connection to '[^']+' failed/;
/** The client's one HTTP probe after a connection failed before opening, met by a cut (not a refusal). */
const cutProbe =
  /^console error on \S+: Failed to load resource: net::ERR_(CONNECTION_RESET|SOCKET_NOT_CONNECTED|CONNECTION_REFUSED|EMPTY_RESPONSE)/;

/** The page's icon (its `<link rel="icon">`), fetched by the page: status and type. */
async function icon(page: Page): Promise<[number, string | null]> {
  const href = await page.locator("link[rel=icon]").getAttribute("href");
  assert.ok(href, "the page names its icon");
  return await page.evaluate(async (url) => {
    const res = await fetch(url);
    return [res.status, res.headers.get("content-type")] as [number, string | null];
  }, href);
}

for (const server of ["deno", "bun"] as const) {
  const skip = browserSkip || (runtimePath(server) ? false : `no ${server} executable to serve the examples`);
  const tag = `${server} server, ${runtime} runner`;

  test(`browser notify and cursors (${tag}): each page has its icon and runs without a console error`, async () => {
    await withBrowser("notify", server, async (browser, ex) => {
      const page = await browser.newPage();
      await page.goto(ex.url.href);
      await page.locator("#topic-door:checked").waitFor(wait); // the server's topics came
      assert.deepEqual(await icon(page), [200, "image/svg+xml"]);
    });
    await withBrowser("cursors", server, async (browser, ex) => {
      const page = await browser.newPage();
      await page.goto(ex.url.href);
      await status(page, "move the mouse: others see your cursor").waitFor(wait);
      assert.deepEqual(await icon(page), [200, "image/svg+xml"]);
    });
  }, { skip });

  test(`browser chat (${tag}): names, times, Send button and Enter; a guest name without ?name=`, async () => {
    await withBrowser("chat", server, async (browser, ex) => {
      const [ann, bob, guest] = [await browser.newPage(), await browser.newPage(), await browser.newPage()];
      await ann.goto(new URL("/?name=ann", ex.url).href);
      await bob.goto(new URL("/?name=bob", ex.url).href);
      await guest.goto(ex.url.href);
      for (const p of [ann, bob, guest]) await status(p, /^connected$/).waitFor(wait);
      await guest.locator("#me", { hasText: /^as guest-\d+$/ }).waitFor(wait);

      await say(ann, "hello from ann", "button");
      await say(bob, "hello from bob", "enter");
      for (const p of [ann, bob, guest]) {
        await arrived(p, "hello from bob");
        assert.deepEqual(await lines(p), ["ann: hello from ann", "bob: hello from bob"]);
        await assertTimes(p);
      }
      assert.equal(await ann.locator("#input").inputValue(), "", "the input is cleared after sending");
      assert.equal(await ann.locator("#messages li.mine").count(), 1, "ann's own message is marked");
      assert.equal(await ann.locator("#messages li.pending").count(), 0);
    });
  }, { skip });

  test(
    `browser chat (${tag}): the cut test — two pages behind cutting proxies lose nothing, duplicate nothing`,
    async () => {
      await withBrowser("chat", server, async (browser, ex) => {
        // a proxy in front of each page's whole origin (page, script and WebSocket)
        const proxies = [await Proxy.start(ex.port), await Proxy.start(ex.port)];
        try {
          const [pa, pb] = proxies;
          const ann = await browser.newPage();
          const bob = await browser.newPage();
          await ann.goto(`http://127.0.0.1:${pa.port}/?name=ann`);
          await bob.goto(`http://127.0.0.1:${pb.port}/?name=bob`);
          for (const p of [ann, bob]) await status(p, /^connected$/).waitFor(wait);
          await say(ann, "a1");
          await arrived(bob, "a1");
          await say(bob, "b1", "enter");
          await arrived(ann, "b1");

          // ann's connection is cut (and new ones refused): ann types while bob, still connected, talks
          pa.cut(true);
          await status(ann, /^reconnecting/).waitFor(wait);
          await say(ann, "a2");
          await ann.locator("#messages li.pending", { hasText: "a2" }).waitFor(wait);
          await say(bob, "b2");
          await say(bob, "b3");
          await arrived(bob, "b3");
          // now bob is cut too: both type while both are offline
          pb.cut(true);
          await status(bob, /^reconnecting/).waitFor(wait);
          await say(bob, "b4");
          await say(ann, "a3");
          assert.equal(await ann.locator("#messages li.pending").count(), 2, "a2 and a3 wait");
          assert.equal(await bob.locator("#messages li.pending").count(), 1, "b4 waits");

          // ann comes back (same session: what bob said meanwhile, then ann's own), and talks to an absent bob
          pa.heal();
          await status(ann, "reconnected — nothing lost").waitFor(reconnect);
          await arrived(ann, "a3");
          await say(ann, "a4");
          await arrived(ann, "a4");
          pb.heal();
          await status(bob, "reconnected — nothing lost").waitFor(reconnect);
          for (const p of [ann, bob]) await arrived(p, "b4");

          const expected = ["a1", "b1", "b2", "b3", "a2", "a3", "a4", "b4"];
          for (const p of [ann, bob]) {
            assert.deepEqual(await texts(p), expected, "every message once, in the server's order");
            assert.equal(await p.locator("#messages li.pending").count(), 0);
            assert.equal(await p.locator("#messages li.notice").count(), 0, "no new session");
            await assertTimes(p);
          }
          assert.deepEqual(await bob.locator("#messages .name").allTextContents(), [
            "ann",
            "bob",
            "bob",
            "bob",
            "ann",
            "ann",
            "ann",
            "bob",
          ]);
        } finally {
          for (const p of proxies) await p.close();
        }
      }, [refusedSocket, cutProbe]);
    },
    { skip },
  );

  test(
    `browser multichat (${tag}): a message stays inside its room; a newcomer sees the last ones as earlier messages`,
    async () => {
      await withBrowser("multichat", server, async (browser, ex) => {
        const ann = await browser.newPage();
        const bob = await browser.newPage();
        const cid = await browser.newPage();
        await ann.goto(new URL("/room/blue?name=ann", ex.url).href);
        await ann.locator("#messages li", { hasText: "ann joined" }).waitFor(wait);
        await bob.goto(new URL("/room/blue?name=bob", ex.url).href);
        await bob.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);
        await ann.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);
        await cid.goto(new URL("/room/red?name=cid", ex.url).href);
        await cid.locator("#messages li", { hasText: "cid joined" }).waitFor(wait);
        for (const p of [ann, bob, cid]) await status(p, /^connected$/).waitFor(wait);
        assert.equal(await ann.locator("#count").textContent(), "2");
        assert.equal(await cid.locator("#count").textContent(), "1");
        assert.equal(await ann.locator("#members").textContent(), "ann, bob");
        assert.equal(await cid.locator("#members").textContent(), "cid");
        assert.equal(await ann.locator("#room").textContent(), "blue");
        assert.equal(await ann.locator("#me").textContent(), "as ann");

        await say(ann, "hi blue", "button");
        for (const p of [ann, bob]) await arrived(p, "hi blue");
        // red hears its own message, and nothing of blue's before or after
        await say(cid, "hi red", "enter");
        await arrived(cid, "hi red");
        assert.deepEqual(await lines(cid), ["cid joined", "cid: hi red"]);
        await assertTimes(cid);
        // a newcomer to blue first sees what was said there, under "earlier messages", then its join
        await say(bob, "still blue");
        await arrived(ann, "still blue");
        const dan = await browser.newPage();
        await dan.goto(new URL("/room/blue?name=dan", ex.url).href);
        await dan.locator("#messages li", { hasText: "dan joined" }).waitFor(wait);
        assert.deepEqual(await lines(dan), ["earlier messages", "ann: hi blue", "bob: still blue", "dan joined"]);
        assert.equal(await dan.locator("#messages li.earlier").count(), 2);
        await assertTimes(dan);
        await say(dan, "hi all");
        await arrived(ann, "hi all");
        await bob.close();
        await ann.locator("#messages li", { hasText: "bob left" }).waitFor(wait);
        assert.equal(await ann.locator("#count").textContent(), "2");
        assert.equal(await ann.locator("#members").textContent(), "ann, dan");
        assert.deepEqual(await lines(ann), [
          "ann joined",
          "bob joined",
          "ann: hi blue",
          "bob: still blue",
          "dan joined",
          "dan: hi all",
          "bob left",
        ]);
        assert.equal(await ann.locator("#messages li.separator").count(), 0, "nothing earlier for the first");
      });
    },
    { skip },
  );

  test(`browser jwt-chat (${tag}): refused without a token, accepted with one; /msg; names and times`, async () => {
    await withBrowser("jwt-chat", server, async (browser, ex) => {
      const ann = await browser.newPage();
      const bob = await browser.newPage();
      await ann.goto(ex.url.href);
      await ann.locator("#anonymous").click();
      // the middleware answered 401: the client's probe reads it and stops with 4401, which the page shows
      await status(ann, "sign-in refused or expired").waitFor(wait);
      assert.deepEqual(await lines(ann), []);

      await ann.getByLabel("Name").fill("ann");
      await ann.getByRole("button", { name: "Sign in" }).click();
      await status(ann, /^connected$/).waitFor(wait);
      await ann.locator("#messages li", { hasText: "ann joined" }).waitFor(wait);
      assert.equal(await ann.locator("#me").textContent(), "ann");

      await bob.goto(ex.url.href);
      await bob.locator("#name").fill("bob");
      await bob.locator("#name").press("Enter");
      await bob.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);
      await ann.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);

      await say(ann, "/msg bob just for you", "enter");
      await arrived(bob, "just for you");
      await say(ann, "hello everyone");
      for (const p of [ann, bob]) await arrived(p, "hello everyone");
      assert.deepEqual(await lines(ann), [
        "ann joined",
        "bob joined",
        "ann → bob (private): just for you",
        "ann: hello everyone",
      ]);
      assert.deepEqual(await lines(bob), ["bob joined", "ann → bob (private): just for you", "ann: hello everyone"]);
      await assertTimes(bob);
    }, [refusedSocket, /HTTP Authentication failed/, /^401 for .*\/ws(\?token=)?$/, /status of 401 \(Unauthorized\)/]);
  }, { skip });

  test(
    `browser jwt-chat (${tag}): a too-long message is an error; sign-out revokes the token and the page stays out`,
    async () => {
      await withBrowser("jwt-chat", server, async (browser, ex) => {
        const ann = await browser.newPage();
        const bob = await browser.newPage();
        let sockets = 0;
        ann.on("websocket", () => sockets++);
        await ann.goto(ex.url.href);
        const login = ann.waitForResponse((r) => r.url().endsWith("/login"));
        await ann.locator("#name").fill("ann");
        await ann.locator("#name").press("Enter");
        const { token } = await (await login).json();
        await status(ann, /^connected$/).waitFor(wait);
        await bob.goto(ex.url.href);
        await bob.locator("#name").fill("bob");
        await bob.locator("#name").press("Enter");
        await ann.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);

        // too long: checked before sending, shown, nothing sent, the connection stays
        await say(ann, "x".repeat(5000));
        await ann.locator("#error", { hasText: "Message too long" }).waitFor(wait);
        assert.equal(await ann.locator("#messages li.pending").count(), 0);
        await say(ann, "short enough");
        await arrived(bob, "short enough");
        assert.equal(await ann.locator("#error").textContent(), "", "the error goes with the next send");
        assert.equal(await status(ann, /^connected$/).count(), 1);

        await ann.getByRole("button", { name: "Sign out" }).click();
        await status(ann, /^signed out$/).waitFor(wait);
        await bob.locator("#messages li", { hasText: "ann left" }).waitFor(wait);
        await ann.getByRole("button", { name: "Sign in" }).waitFor(wait); // the form is back
        // the token is revoked: an upgrade with it is refused, so no reconnect could resume
        const peer = await RawPeer.upgrade(ex.port, `/ws?token=${token}`);
        assert.equal(peer.status, 401);
        await peer.destroy();
        // a round trip later, ann's page made no new connection and still says signed out
        await say(bob, "still here?");
        await arrived(bob, "still here?");
        assert.equal(sockets, 1, "no reconnect after sign-out");
        assert.equal(await status(ann, /^signed out$/).count(), 1);
        assert.equal(await ann.locator("#messages .text", { hasText: "still here?" }).count(), 0);
      });
    },
    { skip },
  );
}

/** A page that runs chorus-ws/client's browser build against `path` and reports its events. */
function clientPage(path: string): string {
  return `<!doctype html><script type="module">
    import { connect } from "/chorus-client.js";
    window.events = [];
    window.done = new Promise((resolve) => {
      const c = connect(${JSON.stringify(path)}, { minDelay: 10, maxDelay: 50 });
      c.addEventListener("open", () => events.push("open"));
      c.addEventListener("reconnecting", (e) => events.push("reconnecting " + e.attempt));
      c.addEventListener("close", (e) => { events.push("close " + e.code + " " + e.reason); resolve(events); });
    });
  </script>`;
}

/** The refusals the page meets: where, the close event it ends with, the most connections it may make. */
const refusals = [
  ["/keys", "close 4403 Not in this room", 1], // chorus's own (Hono keys): an upgrade closed at once
  ["/mw", "close 4401 Sign in first", 3], // middleware before chorus: found by the client's probe
] as const;

test(
  `browser client (${runtime} server): a refused upgrade ends the client with 4000 + status and the text`,
  async () => {
    const js = await readFile(new URL("../examples/_static/chorus-client.js", import.meta.url), "utf8");
    const hub = new Hub({ resume: {} });
    const app = new Hono();
    app.get("/chorus-client.js", (c) => c.body(js, 200, { "content-type": "text/javascript" }));
    app.get("/page", (c) => c.html(clientPage(c.req.query("ws")!)));
    app.use("/mw", (c) => Promise.resolve(c.text("Sign in first", 401)));
    app.get("/keys", upgrade(hub, { keys: () => new Response("Not in this room", { status: 403 }) }));
    app.use("/busy", (c) => Promise.resolve(c.text("Slow down", 429)));
    const server = await serveApp(hub, app, { port: 0, hostname: "127.0.0.1" });
    const browser = await launchBrowser();
    try {
      for (const [path, expected, most] of refusals) {
        const page = await browser.newPage();
        let sockets = 0;
        page.on("websocket", () => sockets++);
        await page.goto(`http://127.0.0.1:${server.port}/page?ws=${path}`);
        const events = await page.evaluate(() => (globalThis as unknown as { done: Promise<string[]> }).done);
        assert.equal(events.at(-1), expected, path);
        assert.ok(!events.includes("open"), `${path}: ${events}`);
        assert.ok(sockets <= most, `${path}: ${sockets} connections`);
        await page.close();
      }
      // 429 is no refusal: retried
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${server.port}/page?ws=/busy`);
      await page.waitForFunction(() => (globalThis as unknown as { events: string[] }).events.length >= 3, null, wait);
      const events = await page.evaluate(() => (globalThis as unknown as { events: string[] }).events);
      assert.deepEqual(events.slice(0, 3), ["reconnecting 1", "reconnecting 2", "reconnecting 3"]);
      assert.equal(hub.size, 0);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
  { skip: browserSkip },
);
