// `npm run chaos`: the fault-schedule harness from the command line (tests/chaos/). A seed names a
// run; a failing seed prints its schedule and first violations, and `--seed N` replays it.
//
//   npm run chaos -- --seed 17                  one seed
//   npm run chaos -- --seeds 200 [--from 1]     the long run, then its figures
//   --runtime deno|bun   the harness's runtime (default: deno); its nodes are a Deno, a Bun and one more of it
//   --cluster            on a Redis Cluster (3 shards) instead of one redis-server
//   --faults cut,delay   only these kinds of fault (default: every kind)
//   CHAOS_DEBUG=1        trace each seed's phases on stderr
//   --dump DIR           write each failing seed's event log (JSON lines), node logs and output to DIR

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";
import { runtime } from "../tests/_helpers.ts";
import { runtimePath } from "../tests/_examples.ts";
import { type Fault, FAULTS, plan } from "../tests/chaos/_schedule.ts";
import { CLIENTS } from "../tests/chaos/_schedule.ts";
import { World } from "../tests/chaos/_world.ts";
import { runSeed, type SeedResult } from "../tests/chaos/_run.ts";
import { figures, replay, report } from "../tests/chaos/_report.ts";

const argv = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const want = (opt("runtime") ?? "deno") as "deno" | "bun";
if (want !== "deno" && want !== "bun") throw new Error("--runtime is deno or bun");

if (want !== runtime) {
  // run again under the wanted runtime
  const exe = runtimePath(want)!;
  const script = new URL(import.meta.url).pathname;
  const args = want === "deno" ? ["run", "-A", script, ...argv] : ["run", script, ...argv];
  const child = spawn(exe, args, { stdio: "inherit" });
  child.on("exit", (code) => process.exit(code ?? 1));
} else {
  const cluster = argv.includes("--cluster");
  const only = opt("faults") === "none" ? [] : opt("faults")?.split(",") as Fault[] | undefined;
  for (const f of only ?? []) if (!FAULTS.includes(f)) throw new Error(`no such fault: ${f} (${FAULTS.join(", ")})`);
  const faults = (only ?? [...FAULTS]).filter((f) => !(cluster && f === "redis-restart"));
  const one = opt("seed");
  const from = Number(opt("from") ?? 1);
  const seeds = one !== undefined
    ? [Number(one)]
    : Array.from({ length: Number(opt("seeds") ?? 10) }, (_, i) => from + i);
  const dump = opt("dump");
  const runId = crypto.randomUUID().slice(0, 8);
  console.log(
    `chaos: ${seeds.length} seed(s) on ${runtime} (nodes deno, bun, ${runtime}${cluster ? ", Redis Cluster" : ""})`,
  );
  const world = await World.start(["deno", "bun", runtime], CLIENTS.map((c) => c.name), cluster);
  const results: SeedResult[] = [];
  let interrupted = false;
  let errors = 0;
  // Ctrl-C: stop after the seed that runs; again (or SIGTERM): stop now
  const now = async () => {
    await world.stop();
    process.exit(130);
  };
  process.on("SIGINT", () => {
    if (interrupted) now();
    interrupted = true;
  });
  process.on("SIGTERM", now);
  try {
    for (const seed of seeds) {
      if (interrupted) break;
      let r: SeedResult;
      try {
        r = await runSeed(world, plan(seed, faults, world.nodes.length, cluster), runId);
        errors = 0;
      } catch (err) {
        // the harness itself failed (a node that does not start, say): say so, go on with the next seed
        console.log(`seed ${seed}: HARNESS ERROR ${(err as Error).stack}`);
        if (++errors >= 3) break;
        continue;
      }
      results.push(r);
      const printed = world.output();
      const faultsText = [...r.injected].map(([k, n]) => `${k}${n > 1 ? `×${n}` : ""}`).join(" ") || "no faults";
      if (r.violations.length === 0) {
        console.log(
          `seed ${seed}: ok (${faultsText}; ${r.delivered} + ${r.handled} checked, ${(r.ms / 1000).toFixed(1)} s)`,
        );
      } else {
        console.log(`seed ${seed}: FAILED — replay: ${replay(seed, runtime, cluster, only?.join(","))}`);
        console.log(report(r));
        if (dump) {
          const base = `${dump}/seed-${seed}-${runtime}`;
          fs.mkdirSync(dump, { recursive: true });
          fs.writeFileSync(`${base}.jsonl`, r.events.map((e) => JSON.stringify(e)).join("\n"));
          fs.writeFileSync(`${base}-nodes.txt`, printed);
          for (const [path, hub] of world.logs) if (fs.existsSync(path)) fs.copyFileSync(path, `${base}-${hub}.log`);
        }
      }
    }
  } finally {
    await world.stop();
  }
  console.log(figures(results));
  process.exit(results.some((r) => r.violations.length > 0) ? 1 : 0);
}
