// Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by playwright-core
// (never a downloaded browser). Each launch gets a fresh temporary profile from playwright.

import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

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
