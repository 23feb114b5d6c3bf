/**
 * The Redis broker's command connection: the one it opens for a `url` or a `cluster` of URLs
 * (with the reconnect and offline-queue settings a broker needs), or the user's own client or
 * cluster client. Internal to `chorus-ws/redis`.
 *
 * May import: `redis` (node-redis), `_redis_client.ts` (types), `_redis_cluster.ts`.
 *
 * @module
 */

import { createClient, createCluster } from "redis";
import type { RedisClientLike, RedisClusterLike } from "./_redis_client.ts";
import { ClusterClient } from "./_redis_cluster.ts";

/** Where the broker's connection comes from (the `url`, `client` and `cluster` of `RedisBrokerOptions`). */
export interface ConnectionOptions {
  /** A server's URL. */
  readonly url?: string;
  /** The user's own client. */
  readonly client?: RedisClientLike;
  /** A Redis Cluster: some of its nodes' URLs, or the user's own cluster client. */
  readonly cluster?: readonly string[] | RedisClusterLike;
}

/**
 * The broker's command connection (not connected yet; its `duplicate()` subscribes).
 *
 * @param options The `url`, `client` or `cluster` (at most one, checked by the caller).
 * @returns The connection, and whether the broker owns it (and closes it when it stops).
 * @throws {TypeError} If `client` or `cluster` is not a node-redis client.
 */
export function connect(options: ConnectionOptions): { client: RedisClientLike; owned: boolean } {
  const cluster = options.cluster;
  if (cluster !== undefined) {
    if (Array.isArray(cluster)) {
      if (cluster.length === 0 || cluster.some((url) => typeof url !== "string")) {
        throw new TypeError("cluster must be a non-empty array of URLs, or a node-redis cluster client");
      }
      const client = new ClusterClient(createCluster({
        rootNodes: cluster.map((url) => ({ url })),
        defaults: {
          disableOfflineQueue: true,
          socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 500) },
        },
        // after a primary died, ask the cluster who serves its slots half a second after the
        // first failed reconnect (node-redis waits 5 s by default): a failover is followed
        // within about a second of the replica taking over
        topologyRefreshOnReconnectionAttemptStrategy: 500,
      }) as unknown as RedisClusterLike);
      return { client, owned: true };
    }
    const given = cluster as RedisClusterLike;
    if (typeof given.sSubscribe !== "function") {
      throw new TypeError("cluster must be an array of URLs, or a node-redis cluster client");
    }
    return { client: new ClusterClient(given), owned: false };
  }
  if (options.client) {
    if (typeof options.client.duplicate !== "function") throw new TypeError("client must be a node-redis client");
    return { client: options.client, owned: false };
  }
  const client = createClient({
    url: options.url ?? "redis://127.0.0.1:6379",
    // Broadcasts while Redis is away are dropped (and reported), not piled up in memory.
    disableOfflineQueue: true,
    socket: { reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000) },
  });
  return { client, owned: true };
}
