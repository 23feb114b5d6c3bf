// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser). Each launch gets a fresh temporary profile from playwright.
// ConsoleErrors watches pages for console errors, uncaught exceptions and failed loads.

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { type Browser, chromium, type Page } from "playwright-core";

/** Where the browser is expected. */
export const chromiumPath = "/usr/bin/chromium";

/** Why browser tests cannot run here, or `false` when they can. */
export const browserSkip: string | false = existsSync(chromiumPath) ? false : `${chromiumPath} is not installed`;

/** Launches headless Chromium with the flags that keep it quiet and offline. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    timeout: 20_000,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** The part of a browser the tests open pages with. */
export interface Pages {
  newPage(): Promise<Page>;
}

/**
 * Every console error, uncaught exception and failed load (an HTTP status of 400 or more, a 404
 * favicon included) of the pages opened through it, for a test to assert there were none beyond
 * those it provoked on purpose.
 */
export class ConsoleErrors implements Pages {
  /** What went wrong, one line each, with the page's URL. */
  readonly seen: string[] = [];
  readonly #browser: Browser;

  constructor(browser: Browser) {
    this.#browser = browser;
  }

  /** Opens a page and watches it. */
  async newPage(): Promise<Page> {
    return this.watch(await this.#browser.newPage());
  }

  /** Watches a page opened elsewhere. */
  watch(page: Page): Page {
    page.on("console", (m) => {
      if (m.type() === "error") this.seen.push(`console error on ${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (err) => this.seen.push(`uncaught on ${page.url()}: ${err.message}`));
    page.on("response", (r) => {
      if (r.status() >= 400) this.seen.push(`${r.status()} for ${r.url()}`);
    });
    return page;
  }

  /** Fails unless every line seen matches one of `allowed` (what the test provoked). */
  assertNone(allowed: RegExp[] = []): void {
    const left = this.seen.filter((line) => !allowed.some((a) => a.test(line)));
    assert.deepEqual(left, [], "no console error, uncaught exception or failed load on the pages");
  }
}
