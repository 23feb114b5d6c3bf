// Readable output of the fault-schedule harness: a failing seed (its schedule and first
// violations, and the command that replays it) and a long run's figures.

import type { SeedResult } from "./_run.ts";
import { describe } from "./_schedule.ts";

const INVARIANTS = {
  1: "hub→client once, in order",
  2: "client→hub once, in order",
  3: "credentials",
  4: "members",
  5: "memory and sessions bounded",
} as const;

/** How to replay a seed. */
export function replay(seed: number, runtime: string, cluster: boolean, faults?: string): string {
  return `npm run chaos -- --seed ${seed} --runtime ${runtime}${cluster ? " --cluster" : ""}${
    faults ? ` --faults ${faults}` : ""
  }`;
}

/** A failing (or any) seed: its schedule, then its first `max` violations. */
export function report(r: SeedResult, max = 12): string {
  const start = Math.min(...r.events.map((e) => e.t));
  const lines = [describe(r.plan)];
  if (r.skipped.length > 0) lines.push(`  skipped: ${r.skipped.join("; ")}`);
  lines.push(
    `  ${r.violations.length} violation(s); ${r.delivered} messages delivered and ${r.handled} taken, checked, in ${
      (r.ms / 1000).toFixed(1)
    } s`,
  );
  for (const v of r.violations.slice(0, max)) {
    lines.push(`  [${v.inv} ${INVARIANTS[v.inv]}: ${v.kind}] +${((v.t - start) / 1000).toFixed(2)}s ${v.text}`);
  }
  if (r.violations.length > max) lines.push(`  … and ${r.violations.length - max} more`);
  return lines.join("\n");
}

/** The figures of a run of seeds. */
export function figures(results: SeedResult[]): string {
  const faults = new Map<string, number>();
  const kinds = new Map<string, number[]>();
  for (const r of results) {
    for (const [k, n] of r.injected) faults.set(k, (faults.get(k) ?? 0) + n);
    for (const v of r.violations) {
      const key = `${v.inv} ${v.kind}`;
      const seeds = kinds.get(key) ?? [];
      if (!seeds.includes(r.plan.seed)) seeds.push(r.plan.seed);
      kinds.set(key, seeds);
    }
  }
  const failed = results.filter((r) => r.violations.length > 0);
  const lines = [
    `seeds: ${results.length}, failed: ${failed.length}${
      failed.length ? ` (${failed.map((r) => r.plan.seed).join(", ")})` : ""
    }`,
    `faults injected: ${[...faults].map(([k, n]) => `${k} ${n}`).join(", ") || "none"} (${
      [...faults.values()].reduce((a, b) => a + b, 0)
    } in all)`,
    `messages checked: ${results.reduce((a, r) => a + r.delivered, 0)} delivered, ${
      results.reduce((a, r) => a + r.handled, 0)
    } taken by handlers`,
    `violations: ${results.reduce((a, r) => a + r.violations.length, 0)}`,
  ];
  for (const [key, seeds] of [...kinds].sort()) {
    const [inv, kind] = key.split(" ");
    lines.push(
      `  [${inv} ${INVARIANTS[Number(inv) as 1]}: ${kind}] in ${seeds.length} seed(s): ${
        seeds.slice(0, 12).join(", ")
      }`,
    );
  }
  return lines.join("\n");
}
