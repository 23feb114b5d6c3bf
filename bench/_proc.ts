/**
 * The benches' child processes: a process that speaks JSON lines on stdout and takes commands on
 * stdin (servers and load generators), and the CPU time a process has used, from /proc.
 *
 * @module
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import * as fs from "node:fs";

const root = new URL("..", import.meta.url).pathname;

/** A child process that speaks JSON lines. */
export class Proc {
  readonly child: ChildProcess;
  #lines: unknown[] = [];
  #wait: (() => void) | undefined;
  #exited = false;
  readonly exited: Promise<void>;
  #stderr = "";

  constructor(cmd: string, args: string[]) {
    this.child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], cwd: root });
    this.exited = new Promise((resolve) =>
      this.child.on("exit", () => {
        this.#exited = true;
        this.#wait?.();
        resolve();
      })
    );
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      try {
        this.#lines.push(JSON.parse(line));
      } catch {
        return; // not ours
      }
      this.#wait?.();
    });
    this.child.stderr!.on("data", (d) => this.#stderr = (this.#stderr + d).slice(-2000));
  }

  /** The next JSON line, within `ms`. */
  async next<T>(what: string, ms = 120_000): Promise<T> {
    const until = Date.now() + ms;
    while (this.#lines.length === 0) {
      if (this.#exited) throw new Error(`${what}: process exited. ${this.#stderr}`);
      const left = until - Date.now();
      if (left <= 0) throw new Error(`${what}: timed out. ${this.#stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wait = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wait = undefined;
    }
    return this.#lines.shift() as T;
  }

  send(line: string): void {
    this.child.stdin!.write(line + "\n");
  }

  async stop(): Promise<void> {
    if (this.#exited) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (NaN where there is none). */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in ticks of 1/100 s
  } catch {
    return NaN;
  }
}
