/**
 * A node-redis cluster client seen as the one-server client the Redis broker talks to: commands
 * go to the shard of their first key, and pub/sub is sharded (SPUBLISH, SSUBSCRIBE) so that a
 * channel lives on its slot's shard only. Internal to `chorus-ws/redis`.
 *
 * May import: `_redis_client.ts` (types), `node:buffer` (types).
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { RedisClientLike, RedisClusterLike } from "./_redis_client.ts";

/** A pub/sub listener, with messages and channels as bytes. */
export type Listener = (message: Buffer, channel: Buffer) => unknown;

/** {@linkcode RedisClientLike} over a Redis Cluster. */
export class ClusterClient implements RedisClientLike {
  /** The node-redis cluster client. */
  readonly cluster: RedisClusterLike;

  /**
   * Wraps a cluster client.
   * @param cluster The node-redis cluster client.
   */
  constructor(cluster: RedisClusterLike) {
    this.cluster = cluster;
  }

  get isOpen(): boolean {
    return this.cluster.isOpen;
  }

  get isReady(): boolean {
    return this.cluster.isReady;
  }

  connect(): Promise<unknown> {
    return this.cluster.connect();
  }

  duplicate(): ClusterClient {
    return new ClusterClient(this.cluster.duplicate());
  }

  /**
   * The address of the primary serving a key now (`host:port`).
   * @param key The key.
   */
  serverOf(key: string | undefined): string {
    if (key === undefined) return "";
    try {
      return this.cluster.getSlotMaster(keySlot(key)).address;
    } catch {
      return ""; // not connected yet: the next call finds out
    }
  }

  sendCommand(
    args: ReadonlyArray<string | Buffer>,
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<unknown> {
    return this.cluster.sendCommand(firstKey(args), false, args, options);
  }

  publish(channel: string, message: Buffer): Promise<unknown> {
    return this.cluster.sPublish(channel, message);
  }

  subscribe(channel: string, listener: Listener, bufferMode: true): Promise<void> {
    return this.cluster.sSubscribe(channel, listener, bufferMode);
  }

  unsubscribe(channel: string | string[], listener: Listener, bufferMode: true): Promise<void> {
    // one at a time: node-redis sends a list to the shard of its first channel only
    if (!Array.isArray(channel)) return this.cluster.sUnsubscribe(channel, listener, bufferMode);
    return Promise.all(channel.map((c) => this.cluster.sUnsubscribe(c, listener, bufferMode))).then(() => {});
  }

  on(event: "error" | "ready", listener: (err: Error) => void): unknown {
    // "ready" is a shard's: after a failover, the promoted replica's connection
    return event === "ready" ? this.cluster.on("node-ready", listener as () => void) : this.cluster.on(event, listener);
  }

  off(event: "error" | "ready", listener: (err: Error) => void): unknown {
    return event === "ready"
      ? this.cluster.off("node-ready", listener as () => void)
      : this.cluster.off(event, listener);
  }

  close(): Promise<void> {
    return this.cluster.close();
  }

  destroy(): void {
    this.cluster.destroy();
  }
}

/** The key that picks a command's shard: a script's first key, else the first argument. */
function firstKey(args: ReadonlyArray<string | Buffer>): string | Buffer | undefined {
  const command = String(args[0]).toUpperCase();
  if (command === "EVAL" || command === "EVALSHA") return Number(args[2]) > 0 ? args[3] : undefined;
  return args[1];
}

/**
 * The hash slot of a key (CRC16/XMODEM of the key, or of its hash tag: the text between its
 * first `{` and the next `}`, if not empty; modulo 16384). Exported for its unit test
 * (`tests/redis_keys.test.ts`, against Redis's own values): a pure piece, checked alone.
 */
export function keySlot(key: string): number {
  let bytes = new TextEncoder().encode(key);
  const open = bytes.indexOf(0x7b);
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of bytes) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}
