// Example servers as child processes: `deno run -A examples/<name>/main.ts` or
// `bun run examples/<name>/main.ts` with PORT=0; the real URL is read from the line the example
// prints once listening. Stopping sends SIGTERM and awaits the exit.

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { deadline, deferred, runtime } from "./_helpers.ts";

/** The repository root. */
export const root: string = fileURLToPath(new URL("../", import.meta.url));

/**
 * The executable of a runtime: the one running the suite for itself, else the npm-installed
 * binary in node_modules/.bin (`undefined` when it is not there).
 */
export function runtimePath(which: "deno" | "bun"): string | undefined {
  if (which === runtime) return process.execPath;
  const bin = fileURLToPath(new URL(`../node_modules/.bin/${which}`, import.meta.url));
  return existsSync(bin) ? bin : undefined;
}

/** The command that runs a script with a runtime: `deno run -A script` or `bun run script`. */
export function runtimeCommand(which: "deno" | "bun", script: string): [string, string[]] {
  const exe = runtimePath(which);
  if (!exe) throw new Error(`no ${which} executable to run ${script}`);
  return [exe, which === "deno" ? ["run", "-A", script] : ["run", script]];
}

/** How a child ended. */
export interface Exit {
  code: number | null;
  signal: string | null;
}

/** A child process that printed its "listening on <url>" line. */
export interface Listening {
  /** Its base URL, as printed (`http://127.0.0.1:port/`). */
  url: URL;
  port: number;
  /** `ws://127.0.0.1:port` + path. */
  wsUrl(path: string): string;
  /** What it printed so far (stdout and stderr), for failure messages. */
  output(): string;
  /** Sends SIGTERM (or `signal`) and waits for the process to exit and its output to close. */
  stop(signal?: "SIGTERM" | "SIGINT"): Promise<Exit>;
}

/** A running example. */
export interface Example extends Listening {
  /** The runtime serving it. */
  runtime: "deno" | "bun";
}

/**
 * Starts `examples/<name>/main.ts` on a free loopback port with the given runtime (by default
 * the one running the suite) and waits for its "listening on" line.
 */
export async function startExample(
  name: string,
  opts: { runtime?: "deno" | "bun"; env?: Record<string, string> } = {},
): Promise<Example> {
  const which = opts.runtime ?? runtime;
  const script = `examples/${name}/main.ts`;
  const [exe, args] = runtimeCommand(which, script);
  const env = { PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1", ...opts.env };
  return { runtime: which, ...await startListening(`${which} ${script}`, exe, args, { cwd: root, env }) };
}

/**
 * Spawns `exe args` in `cwd` with `env` added to this process's, and waits (20 s at most) for
 * its "listening on <url>" line on stdout or stderr.
 * @param what Names the process in errors.
 */
export async function startListening(
  what: string,
  exe: string,
  args: string[],
  opts: { cwd: string; env: Record<string, string> },
): Promise<Listening> {
  const child: ChildProcess = spawn(exe, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const listening = deferred<URL>();
  const exited = deferred<Exit>();
  child.on("exit", (code, signal) => {
    exited.resolve({ code, signal });
    listening.reject(new Error(`${what} exited (${code}) before listening:\n${out}`));
  });
  child.on("error", (err) => listening.reject(err));
  const onData = (chunk: Uint8Array | string) => {
    out += chunk.toString();
    const m = out.match(/listening on (http:\/\/\S+)/);
    if (m) listening.resolve(new URL(m[1]));
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  listening.promise.catch(() => {});
  // every stream must have ended too before the process counts as gone (Deno's leak checks)
  const streamsClosed = new Promise<void>((resolve) => child.on("close", () => resolve()));
  let stopped: Promise<Exit> | undefined;
  const stop = (signal: "SIGTERM" | "SIGINT" = "SIGTERM"): Promise<Exit> =>
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const exit = await deadline(exited.promise, `${what} to exit`, 10_000);
      await deadline(streamsClosed, `${what} output to close`, 10_000);
      return exit;
    })();
  let url: URL;
  try {
    url = await deadline(listening.promise, `${what} to listen`, 20_000);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  return {
    url,
    port: Number(url.port),
    wsUrl: (path) => `ws://127.0.0.1:${url.port}${path}`,
    output: () => out,
    stop,
  };
}

/**
 * Stops an example with a signal and checks that it shut down by its own handler and exited with 0.
 * Deno's `node:child_process` (2.9.6) reports a child it sent a signal to as killed by that
 * signal (code null) even when the child exited with 0, so there the handler's log line is
 * the evidence; Bun reports the real exit code.
 */
export async function stopCleanly(ex: Example, signal: "SIGTERM" | "SIGINT" = "SIGTERM"): Promise<void> {
  const exit = await ex.stop(signal);
  assert.match(ex.output(), new RegExp(`${signal}, shutting down`), ex.output());
  if (exit.code === null && runtime === "deno") assert.equal(exit.signal, signal, ex.output());
  else assert.equal(exit.code, 0, ex.output());
}

/** Parses a JSON text message. */
export function json(m: string | Uint8Array): Record<string, unknown> {
  if (typeof m !== "string") throw new TypeError("expected a text message");
  return JSON.parse(m);
}
