// The README's example is examples/hello/main.ts: run it as a user would, on this runtime.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { Client, deadline, deferred, runtime, test } from "./_helpers.ts";

test("the README example runs and chats", async () => {
  const args = runtime === "deno" ? ["run", "-A", "examples/hello/main.ts"] : ["run", "examples/hello/main.ts"];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  const url = deferred<string>();
  let out = "";
  child.stdout!.on("data", (chunk) => {
    out += chunk;
    const m = out.match(/listening on (ws:\/\/\S+)/);
    if (m) url.resolve(m[1].replace(/\?.*$/, ""));
  });
  child.stderr!.on("data", (chunk) => (out += chunk));
  const clients: Client[] = [];
  try {
    const base = await deadline(url.promise, "the example to listen", 15_000);
    clients.push(await Client.open(`${base}?name=ann`), await Client.open(`${base}?name=bob`));
    clients[0].send("hello");
    for (const c of clients) assert.equal(await c.next(), "ann: hello");
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    child.kill("SIGINT");
    await deadline(exited, "the example to exit", 10_000);
  }
  assert.match(out, /ann left/, "the disconnect hook ran on shutdown or close");
});

test("the README shows the example file verbatim", () => {
  const readme = readFileSync("README.md", "utf8");
  const example = readFileSync("examples/hello/main.ts", "utf8").split("\n").slice(1).join("\n").trim();
  assert.ok(readme.includes(example), "README.md's example differs from examples/hello/main.ts");
});
