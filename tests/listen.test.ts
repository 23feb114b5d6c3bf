// Where serve() listens, said honestly: the default binds every interface, and server.url and
// server.hostname say so (localhost to browse to, the wildcard as bound); an explicit address is
// used as given.
import assert from "node:assert/strict";
import { Hub } from "../mod.ts";
import { serve } from "../src/serve.ts";
import { runtime, test } from "./_helpers.ts";

test(`listen (${runtime}): the default hostname is every interface; url says localhost, hostname 0.0.0.0`, async () => {
  const server = await serve(new Hub(), { port: 0 });
  try {
    assert.equal(server.hostname, "0.0.0.0");
    assert.equal(server.url.href, `http://localhost:${server.port}/`);
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    await res.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

test(`listen (${runtime}): an explicit address is the one in url and hostname`, async () => {
  const server = await serve(new Hub(), { port: 0, hostname: "127.0.0.1" });
  try {
    assert.equal(server.hostname, "127.0.0.1");
    assert.equal(server.url.href, `http://127.0.0.1:${server.port}/`);
  } finally {
    await server.shutdown();
  }
});
