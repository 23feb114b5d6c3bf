/**
 * An in-memory broker: hubs in one process that share a {@linkcode MemoryNetwork} behave as
 * the nodes of a cluster. Messages go through chorus' wire format and arrive asynchronously,
 * as they would through Redis. For tests and for trying cluster code without a server.
 *
 * @example
 * ```ts
 * import { Hub } from "../../mod.ts";
 * import { MemoryNetwork } from "./memory.ts";
 *
 * const network = new MemoryNetwork();
 * const a = new Hub({ broker: network.broker() });
 * const b = new Hub({ broker: network.broker() });
 * a.broadcast("reaches the sessions of a and of b");
 * await Promise.all([a.close(), b.close()]);
 * ```
 *
 * @module
 */

import type { Broker, BrokerLink, BrokerMessage } from "../broker.ts";
import { decodeMessage, encodeMessage } from "./wire.ts";

/** Options of {@linkcode MemoryNetwork}. */
export interface MemoryNetworkOptions {
  /**
   * Largest encoded message the network carries; a larger publish throws `RangeError`.
   * @default {4194304}
   */
  maxMessageSize?: number;
}

/** A process-local message bus that any number of {@linkcode MemoryNetwork.broker} brokers share. */
export class MemoryNetwork {
  readonly #links = new Set<BrokerLink>();
  readonly #max: number;

  /** @param options The size limit. */
  constructor(options: MemoryNetworkOptions = {}) {
    const max = options.maxMessageSize ?? 4 << 20;
    if (typeof max !== "number" || !(max > 0)) throw new RangeError("maxMessageSize must be a positive number");
    this.#max = max;
  }

  /** @returns A new broker on this network, for one hub. */
  broker(): Broker {
    return new MemoryBroker(this.#links, this.#max);
  }

  /**
   * Puts raw bytes on the network, as a foreign publisher could (for tests).
   *
   * @param bytes What every node receives.
   */
  inject(bytes: Uint8Array): void {
    const copy = bytes.slice();
    for (const link of this.#links) queueMicrotask(() => receive(link, copy, this.#max));
  }

  /** How many brokers are started and not stopped. */
  get size(): number {
    return this.#links.size;
  }
}

class MemoryBroker implements Broker {
  #links: Set<BrokerLink>;
  #max: number;
  #link: BrokerLink | undefined;

  constructor(links: Set<BrokerLink>, max: number) {
    this.#links = links;
    this.#max = max;
  }

  start(link: BrokerLink): Promise<void> {
    if (this.#link) return Promise.reject(new Error("A broker serves one hub: this one is already started"));
    this.#link = link;
    this.#links.add(link);
    return Promise.resolve();
  }

  publish(msg: BrokerMessage): void {
    const max = this.#max;
    const bytes = encodeMessage(msg, max);
    for (const link of this.#links) queueMicrotask(() => receive(link, bytes, max));
  }

  changed(): void {}

  count(room?: string): Promise<number> {
    let total = 0;
    for (const link of this.#links) total += link.localCount(room);
    return Promise.resolve(total);
  }

  stop(): Promise<void> {
    if (this.#link) this.#links.delete(this.#link);
    this.#link = undefined;
    return Promise.resolve();
  }
}

function receive(link: BrokerLink, bytes: Uint8Array, max: number): void {
  let msg: BrokerMessage;
  try {
    msg = decodeMessage(bytes, max);
  } catch (err) {
    link.report(err);
    return;
  }
  link.deliver(msg); // the hub drops its own echo
}
