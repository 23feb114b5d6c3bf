/**
 * The node-redis clients the Redis broker talks to, as the few methods it uses: one server
 * ({@linkcode RedisClientLike}) and a Redis Cluster ({@linkcode RedisClusterLike}). Types only;
 * `chorus-ws/redis` re-exports them. Internal to `chorus-ws/redis`.
 *
 * May import: `node:buffer` (types).
 *
 * @module
 */

import type { Buffer } from "node:buffer";

/**
 * The parts of a node-redis client (`createClient()` of the `redis` package, v5 or later)
 * the broker uses.
 */
export interface RedisClientLike {
  /** Whether the socket is open (connected or reconnecting). */
  readonly isOpen: boolean;
  /** Whether the client is connected and ready for commands. */
  readonly isReady: boolean;
  /** Connects. */
  connect(): Promise<unknown>;
  /** A new, unconnected client with the same options (the subscriber connection). */
  duplicate(): RedisClientLike;
  /**
   * Sends a command.
   * @param args The command and its arguments.
   * @param options With `typeMapping: { 36: Buffer }`, bulk strings arrive as bytes.
   */
  sendCommand(
    args: ReadonlyArray<string | Buffer>,
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<unknown>;
  /** Publishes a message on a channel. */
  publish(channel: string, message: Buffer): Promise<unknown>;
  /** Subscribes to a channel; with `bufferMode` true, messages arrive as bytes. */
  subscribe(channel: string, listener: (message: Buffer, channel: Buffer) => unknown, bufferMode: true): Promise<void>;
  /** Removes a subscription. */
  unsubscribe(
    channel: string | string[],
    listener: (message: Buffer, channel: Buffer) => unknown,
    bufferMode: true,
  ): Promise<void>;
  /** Listens for connection errors. */
  on(event: "error", listener: (err: Error) => void): unknown;
  /** Listens for the client being ready, after connecting or reconnecting. */
  on(event: "ready", listener: () => void): unknown;
  /** Stops listening for connection errors. */
  off(event: "error", listener: (err: Error) => void): unknown;
  /** Stops listening for readiness. */
  off(event: "ready", listener: () => void): unknown;
  /** Closes after pending commands. */
  close(): Promise<void>;
  /** Closes at once. */
  destroy(): void;
}

/**
 * The parts of a node-redis cluster client (`createCluster()` of the `redis` package, v5 or
 * later) the broker uses on a Redis Cluster.
 */
export interface RedisClusterLike {
  /** Whether its connections are open. */
  readonly isOpen: boolean;
  /** Whether it is connected and ready for commands. */
  readonly isReady: boolean;
  /** Connects (finds the shards from its root nodes). */
  connect(): Promise<unknown>;
  /** A new, unconnected cluster client with the same options (the subscriber side). */
  duplicate(): RedisClusterLike;
  /**
   * Sends a command to the shard of `firstKey`.
   * @param firstKey The key that picks the shard.
   * @param isReadonly Whether a replica may answer (the broker always sends `false`).
   * @param args The command and its arguments.
   * @param options With `typeMapping: { 36: Buffer }`, bulk strings arrive as bytes.
   */
  sendCommand(
    firstKey: string | Buffer | undefined,
    isReadonly: boolean | undefined,
    args: ReadonlyArray<string | Buffer>,
    options?: { typeMapping?: Record<number, unknown> },
  ): Promise<unknown>;
  /**
   * The primary serving a hash slot now, by its address (`host:port`).
   * @param slot The slot.
   */
  getSlotMaster(slot: number): { readonly address: string };
  /** Publishes on a shard channel (SPUBLISH). */
  sPublish(channel: string, message: Buffer): Promise<unknown>;
  /** Subscribes to a shard channel (SSUBSCRIBE); with `bufferMode` true, messages arrive as bytes. */
  sSubscribe(channel: string, listener: (message: Buffer, channel: Buffer) => unknown, bufferMode: true): Promise<void>;
  /** Removes a shard channel subscription. */
  sUnsubscribe(
    channel: string | string[],
    listener: (message: Buffer, channel: Buffer) => unknown,
    bufferMode: true,
  ): Promise<void>;
  /** Listens for errors. */
  on(event: "error", listener: (err: Error) => void): unknown;
  /** Listens for a shard's connection becoming ready (after a failover, among others). */
  on(event: "node-ready", listener: () => void): unknown;
  /** Stops listening for errors. */
  off(event: "error", listener: (err: Error) => void): unknown;
  /** Stops listening for readiness. */
  off(event: "node-ready", listener: () => void): unknown;
  /** Closes after pending commands. */
  close(): Promise<void>;
  /** Closes at once. */
  destroy(): void;
}
