// Real browser tests: headless Chromium pages on the chat, multichat and jwt-chat examples, each
// example served by a Deno child and by a Bun child, under whichever runner runs the suite.
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { runtime, test } from "./_helpers.ts";
import { type Example, runtimePath, startExample, stopCleanly } from "./_examples.ts";
import { browserSkip, launchBrowser } from "./_browser.ts";

const wait = { timeout: 10_000 };

/** Runs `fn` with a fresh browser and the example served by `server`; closes both after. */
async function withBrowser(
  name: string,
  server: "deno" | "bun",
  fn: (browser: Browser, ex: Example) => Promise<void>,
): Promise<void> {
  const ex = await startExample(name, { runtime: server });
  let browser: Browser | undefined;
  try {
    browser = await launchBrowser();
    await fn(browser, ex);
  } finally {
    await browser?.close();
    await stopCleanly(ex);
  }
}

/** The texts of the list items of `#messages`. */
function items(page: Page): Promise<string[]> {
  return page.locator("#messages li").allTextContents();
}

for (const server of ["deno", "bun"] as const) {
  const skip = browserSkip || (runtimePath(server) ? false : `no ${server} executable to serve the examples`);
  const tag = `${server} server, ${runtime} runner`;

  test(`browser chat (${tag}): a message typed in one page appears in both`, async () => {
    await withBrowser("chat", server, async (browser, ex) => {
      const [one, two] = [await browser.newPage(), await browser.newPage()];
      for (const p of [one, two]) {
        await p.goto(ex.url.href);
        await p.locator("#status", { hasText: /^connected$/ }).waitFor(wait);
      }
      await one.locator("#input").fill("hello from page one");
      await one.locator("#input").press("Enter");
      for (const p of [one, two]) {
        await p.locator("#messages li", { hasText: "hello from page one" }).waitFor(wait);
        assert.deepEqual(await items(p), ["hello from page one"]);
      }
      assert.equal(await one.locator("#input").inputValue(), "", "the input is cleared after sending");
    });
  }, { skip });

  test(`browser multichat (${tag}): a message stays inside its room`, async () => {
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
      assert.equal(await ann.locator("#count").textContent(), "2");
      assert.equal(await cid.locator("#count").textContent(), "1");
      assert.equal(await ann.locator("#room").textContent(), "blue");

      await ann.locator("#input").fill("hi blue");
      await ann.locator("#input").press("Enter");
      for (const p of [ann, bob]) await p.locator("#messages li", { hasText: "ann: hi blue" }).waitFor(wait);
      // red hears its own message, and nothing of blue's before or after
      await cid.locator("#input").fill("hi red");
      await cid.locator("#input").press("Enter");
      await cid.locator("#messages li", { hasText: "cid: hi red" }).waitFor(wait);
      assert.deepEqual(await items(cid), ["cid joined", "cid: hi red"]);
      await bob.close();
      await ann.locator("#messages li", { hasText: "bob left" }).waitFor(wait);
      assert.equal(await ann.locator("#count").textContent(), "1");
      assert.ok(!(await items(ann)).includes("cid: hi red"));
    });
  }, { skip });

  test(`browser jwt-chat (${tag}): refused without a token, accepted with one`, async () => {
    await withBrowser("jwt-chat", server, async (browser, ex) => {
      const ann = await browser.newPage();
      const bob = await browser.newPage();
      await ann.goto(ex.url.href);
      await ann.locator("#anonymous").click();
      // the upgrade got 401: the browser reports a failed connection (1006) and no session began
      await ann.locator("#status", { hasText: "disconnected (1006)" }).waitFor(wait);
      assert.deepEqual(await items(ann), []);

      await ann.locator("#name").fill("ann");
      await ann.locator("#login button").first().click();
      await ann.locator("#status", { hasText: /^connected$/ }).waitFor(wait);
      await ann.locator("#messages li", { hasText: "ann joined" }).waitFor(wait);

      await bob.goto(ex.url.href);
      await bob.locator("#name").fill("bob");
      await bob.locator("#name").press("Enter");
      await bob.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);
      await ann.locator("#messages li", { hasText: "bob joined" }).waitFor(wait);

      await ann.locator("#input").fill("/msg bob just for you");
      await ann.locator("#input").press("Enter");
      await bob.locator("#messages li", { hasText: "ann (private): just for you" }).waitFor(wait);
      await ann.locator("#input").fill("hello everyone");
      await ann.locator("#input").press("Enter");
      for (const p of [ann, bob]) await p.locator("#messages li", { hasText: "ann: hello everyone" }).waitFor(wait);
      assert.deepEqual(await items(ann), [
        "ann joined",
        "bob joined",
        "to bob (private): just for you",
        "ann: hello everyone",
      ]);
    });
  }, { skip });
}
