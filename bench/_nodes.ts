// Child-process hubs for the benches (bench/redis_node.ts), in the runtime running the bench, and
// the cleanup of a bench's keys in Redis.

import { spawn } from "node:child_process";
import process from "node:process";
import { createClient } from "redis";

/** A hub in a child process. */
export interface Node {
  port: number;
  stop(): Promise<void>;
  /** SIGKILL: the node is gone at once, its sockets reset by the system. */
  kill(): Promise<void>;
}

const nodeScript = new URL("./redis_node.ts", import.meta.url).pathname;

/** How to run a script in the runtime running this one. */
export const runtimeCmd = (script: string): [string, string[]] =>
  "Bun" in globalThis
    ? [process.execPath, ["run", script]]
    : [(globalThis as unknown as { Deno: { execPath(): string } }).Deno.execPath(), ["run", "-A", script]];

/** Starts bench/redis_node.ts with `env` (see its header) on a free port; resolves once it is ready. */
export function startNode(env: Record<string, string>): Promise<Node> {
  const [cmd, args] = runtimeCmd(nodeScript);
  const child = spawn(cmd, args, {
    env: { ...process.env, PORT: "0", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<void>((res) => child.on("exit", () => res()));
  return new Promise((resolve, reject) => {
    let out = "";
    child.on("exit", () => reject(new Error(`node exited early: ${out}`)));
    child.stdout!.on("data", (chunk: Uint8Array) => {
      out += new TextDecoder().decode(chunk);
      const m = out.match(/ready (\d+)/);
      if (m) {
        resolve({
          port: Number(m[1]),
          stop: () => {
            child.kill("SIGTERM");
            return exited;
          },
          kill: () => {
            child.kill("SIGKILL");
            return exited;
          },
        });
      }
    });
  });
}

/** Deletes every key under `prefix` (a bench's run), on the Redis at `url`. */
export async function dropKeys(url: string, prefix: string): Promise<void> {
  const client = createClient({ url });
  client.on("error", () => {});
  await client.connect();
  const keys = await client.keys(`${prefix}:*`);
  if (keys.length > 0) await client.del(keys);
  await client.close();
}
