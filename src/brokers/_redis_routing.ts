/**
 * The Redis broker's routing: which channel a broadcast goes on, and with `routing: "rooms"`
 * the subscriptions to the channels of the rooms this node has members in. Internal to
 * `chorus-ws/redis`.
 *
 * May import: `_redis_client.ts` (types), `_redis_keys.ts`, `../broker.ts` (types), `node:buffer` (types).
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { BrokerLink } from "../broker.ts";
import type { RedisClientLike } from "./_redis_client.ts";
import type { RedisKeys } from "./_redis_keys.ts";

/** What the broker gives its routing. */
export interface RoutingHost {
  /** `"single"`: every broadcast on the hub's channel; `"rooms"`: a room's on its own. */
  readonly mode: "single" | "rooms";
  /** The broker's key and channel names. */
  readonly keys: RedisKeys;
  /** The subscriber connection, once started. */
  sub(): RedisClientLike | undefined;
  /** The hub's link, once started; `undefined` after the broker stopped. */
  link(): BrokerLink | undefined;
  /** The listener of every channel. */
  readonly listener: (message: Buffer) => void;
  /**
   * Reports a failed SUBSCRIBE.
   * @param err What failed.
   */
  failed(err: Error): void;
}

/** The channels broadcasts go on, and this node's subscriptions to rooms' channels. */
export class Routing {
  /** `"single"` or `"rooms"` (see `RedisBrokerOptions.routing`). */
  readonly mode: "single" | "rooms";
  #host: RoutingHost;
  /**
   * Rooms whose channel this node subscribed to (`"rooms"` routing): a pending SUBSCRIBE's
   * promise, or `true` once Redis confirmed it.
   */
  #rooms = new Map<string, Promise<void> | true>();

  /**
   * The routing of one broker.
   * @param host The broker's side.
   */
  constructor(host: RoutingHost) {
    this.#host = host;
    this.mode = host.mode;
  }

  /**
   * The channel a broadcast goes on: its room's (with `"rooms"` routing), or the hub's.
   * @param room Its room, or `undefined` for a hub-wide one.
   * @returns The channel.
   */
  channelOf(room: string | undefined): string {
    const host = this.#host;
    if (room === undefined || host.mode === "single") return host.keys.channel;
    return host.keys.roomChannel(room);
  }

  /**
   * While this node's SUBSCRIBE to a room's channel is in flight, the promise of Redis's
   * confirmation.
   * @param room The room.
   * @returns The promise, or `undefined` when none is in flight.
   */
  subscribed(room: string): Promise<void> | undefined {
    const pending = this.#rooms.get(room);
    return pending === true ? undefined : pending;
  }

  /**
   * With `"rooms"` routing, subscribes to a room's channel when this node has members in it and
   * is not subscribed, or unsubscribes when it has none. Never blocks a join: the SUBSCRIBE goes
   * out in the background; a failed one is reported and tried again at the next heartbeat (or
   * the next join). Redis's confirmation resolves the returned promise.
   * @param room The room.
   * @returns The pending SUBSCRIBE, if one is in flight.
   */
  route(room: string): Promise<void> | undefined {
    const host = this.#host;
    const sub = host.sub();
    const link = host.link();
    if (host.mode === "single" || !sub || !link) return;
    const want = link.localCount(room) > 0;
    const had = this.#rooms.get(room);
    if (want === (had !== undefined)) return had === true ? undefined : had;
    const channel = this.channelOf(room);
    if (!want) {
      this.#rooms.delete(room);
      // after a SUBSCRIBE still in flight (node-redis adds the listener when Redis confirms), and
      // only if no member joined again meanwhile
      Promise.resolve(had).then(() => {
        if (this.#rooms.has(room) || !host.link()) return;
        return sub.unsubscribe(channel, host.listener, true);
      }).catch(() => {
        // the connection is gone: node-redis does not resubscribe a channel without listeners
      });
      return;
    }
    const subscribed: Promise<void> = sub.subscribe(channel, host.listener, true).then(
      () => {
        if (this.#rooms.get(room) === subscribed) this.#rooms.set(room, true);
      },
      (err) => {
        if (this.#rooms.get(room) === subscribed) this.#rooms.delete(room);
        host.failed(err);
      },
    );
    this.#rooms.set(room, subscribed);
    return subscribed;
  }

  /**
   * At stop: every channel this node subscribes to (the hub's and its rooms'), forgetting the rooms.
   * @returns The channels.
   */
  takeChannels(): string[] {
    const channels = [this.#host.keys.channel, ...[...this.#rooms.keys()].map((room) => this.channelOf(room))];
    this.#rooms.clear();
    return channels;
  }
}
