// examples/_static/chorus-client.js is generated from src/client.ts and src/protocol.ts: it must
// not drift from them, and it must run in a browser (Chromium, against a resuming hub).
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { buildClient, outputUrl } from "../scripts/build_client.ts";
import { browserSkip, launchBrowser } from "./_browser.ts";
import { startServer, test } from "./_helpers.ts";

test("client build: the committed examples/_static/chorus-client.js is what scripts/build_client.ts makes", async () => {
  const built = await buildClient();
  const committed = await readFile(outputUrl, "utf8");
  assert.ok(
    built === committed,
    "examples/_static/chorus-client.js is stale: run `deno run -A scripts/build_client.ts` and commit it",
  );
  assert.doesNotMatch(built, /^import /m, "one module, no imports");
  assert.doesNotMatch(built, /^[^*/]*(\bimport\(|\bfrom ")/m, "no dynamic import, no re-export, outside comments");
});

test("client build: the module exports exactly what chorus-ws/client exports, and they work", async () => {
  const built = await import(outputUrl.href);
  const source = await import("../src/client.ts");
  assert.deepEqual(Object.keys(built).sort(), Object.keys(source).sort());
  assert.deepEqual(Object.keys(built).sort(), [
    "ChorusClient",
    "ChorusDroppedEvent",
    "ChorusOpenEvent",
    "ChorusReconnectingEvent",
    "connect",
  ]);
  assert.throws(() => built.connect("ws://127.0.0.1:1/", { minDelai: 5 }), TypeError, "the options are checked");
  assert.equal(new built.ChorusOpenEvent(true).resumed, true);
});

test("client build: the module runs in Chromium against a resuming hub: handshake, a message each way", async () => {
  const js = await readFile(outputUrl, "utf8");
  const page = `<!doctype html><script type="module">
    import { connect } from "/chorus-client.js";
    window.result = new Promise((resolve, reject) => {
      const c = connect("ws://" + location.host + "/ws", { minDelay: 10, maxDelay: 50 });
      const seen = [];
      c.addEventListener("open", (e) => { seen.push("open:" + e.resumed); c.send("from page"); });
      c.addEventListener("message", (e) => { seen.push("message:" + e.data); c.close(); resolve(seen); });
      c.addEventListener("close", (e) => seen.push("close:" + e.code));
      setTimeout(() => reject(new Error("no answer: " + seen.join(" "))), 5000);
    });
  </script>`;
  const srv = await startServer({ resume: {} }, {
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/chorus-client.js") return new Response(js, { headers: { "content-type": "text/javascript" } });
      return new Response(page, { headers: { "content-type": "text/html" } });
    },
  });
  const got: string[] = [];
  srv.hub.handleMessage((s, msg) => {
    got.push(msg);
    s.write("from server");
  });
  const browser = await launchBrowser();
  try {
    const tab = await browser.newPage();
    await tab.goto(`http://127.0.0.1:${srv.port}/`);
    const seen = await tab.evaluate(() => (globalThis as unknown as { result: Promise<string[]> }).result);
    assert.deepEqual(seen, ["open:false", "message:from server", "close:1000"]);
    assert.deepEqual(got, ["from page"]);
  } finally {
    await browser.close();
    await srv.close();
  }
}, { skip: browserSkip });
