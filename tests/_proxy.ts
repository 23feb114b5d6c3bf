// A TCP proxy for the tests: clients connect to it instead of the server, and the test cuts
// the connections the way a network does (a reset on both sides), or lets them go silent.

import * as net from "node:net";
import { deadline, deferred } from "./_helpers.ts";

/** A TCP proxy on 127.0.0.1 in front of `target`; `port` is where clients connect. */
export class Proxy {
  readonly server: net.Server;
  port = 0;
  #target: number;
  #pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  #refusing = false;
  #silent = false;
  /** How many connections it accepted. */
  accepted = 0;

  private constructor(target: number) {
    this.#target = target;
    this.server = net.createServer((client) => this.#accept(client));
  }

  /** Starts a proxy to `target` (a port on 127.0.0.1). */
  static async start(target: number): Promise<Proxy> {
    const proxy = new Proxy(target);
    const listening = deferred();
    proxy.server.listen(0, "127.0.0.1", () => listening.resolve());
    await deadline(listening.promise, "proxy listening");
    proxy.port = (proxy.server.address() as net.AddressInfo).port;
    return proxy;
  }

  /** Points new connections at another port (a load balancer moving a client to another node). */
  retarget(port: number): void {
    this.#target = port;
  }

  /** How many connections are open through it. */
  get size(): number {
    return this.#pairs.size;
  }

  /**
   * Cuts every open connection: both sides get a reset, nothing in flight arrives. With
   * `refuse`, new connections are reset too until `heal()`.
   */
  cut(refuse = false): void {
    this.#refusing = refuse;
    for (const pair of this.#pairs) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
    }
    this.#pairs.clear();
  }

  /** Stops forwarding without closing anything: the connections go silent, as behind a dead link. */
  silence(): void {
    this.#silent = true;
    for (const pair of this.#pairs) {
      pair.client.pause();
      pair.upstream.pause();
    }
  }

  /** Lets new connections through again (after `cut(true)` or `silence()`). */
  heal(): void {
    this.#refusing = false;
    this.#silent = false;
  }

  /** Cuts everything and stops listening. */
  async close(): Promise<void> {
    this.cut();
    const closed = deferred();
    this.server.close(() => closed.resolve());
    await deadline(closed.promise, "proxy close");
  }

  #accept(client: net.Socket): void {
    client.on("error", () => {});
    if (this.#refusing || this.#silent) {
      client.resetAndDestroy();
      return;
    }
    this.accepted++;
    const upstream = net.connect({ port: this.#target, host: "127.0.0.1" });
    upstream.on("error", () => {});
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const drop = () => {
      if (!this.#pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    client.on("close", drop);
    upstream.on("close", drop);
    client.on("data", (chunk: Uint8Array) => {
      if (!this.#silent) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Uint8Array) => {
      if (!this.#silent) client.write(chunk);
    });
  }
}
