/**
 * What a person running chorus watches: `hub.metrics()` and its Prometheus text form, and the
 * entries of the optional log hook (`HubOptions.logger`).
 *
 * @module
 */

// A leaf. May import: nothing.

/**
 * A hub's gauges (now) and counters (since the hub was made), on this node. Bytes are UTF-8
 * bytes for text and the payload's size for binary, without frame headers.
 */
export interface HubMetrics {
  /** Gauge: sessions on this node, detached resumable ones included. */
  sessions: number;
  /** Gauge: resumable sessions whose client is away (within `resume.window`). */
  detached: number;
  /** Counter: sessions begun (`handleConnect` ran). */
  connects: number;
  /** Counter: sessions ended (`handleDisconnect` ran). */
  disconnects: number;
  /** Counter: resumable sessions continued on a new connection (`handleResume` ran). */
  resumes: number;
  /** Counter: upgrades refused, whatever the status (426, 403, 400, 401 from `onUpgrade`, 503…). */
  refused: number;
  /** Counter: messages received from clients, and their bytes. */
  messagesIn: number;
  /** Counter: bytes of the messages received. */
  bytesIn: number;
  /** Counter: messages handed to the runtime for a client (one per recipient), and their bytes. */
  messagesOut: number;
  /** Counter: bytes of the messages handed to the runtime. */
  bytesOut: number;
  /** Counter: messages dropped by the outbound limit (each a `MessageBufferFullError`). */
  dropped: number;
  /** Counter: sessions closed, or connections given up, because a client did not keep up. */
  slowClients: number;
  /** Counter: sessions closed with 1009 (a message larger than `maxMessageSize`). */
  tooBig: number;
  /** Counter: broker errors (the broker's connection lost, a message refused, a publish failed). */
  brokerErrors: number;
  /**
   * Counter: broadcasts from other nodes that the broker brought to this node (with
   * `redisBroker({ routing: "rooms" })`, only those of hub-wide broadcasts and of this node's rooms).
   */
  brokerIn: number;
  /**
   * Counter: broadcasts and `write`s for resumable sessions that the broker's streams did not take
   * (Redis unreachable past `commandTimeout`, or past `maxPendingBytes`): no resumable session on
   * any node gets them. Each outage is also reported to `handleBrokerError`.
   */
  brokerDropped: number;
  /** Gauge: the broker's recent publish round trip in ms, where the broker measures it. */
  brokerLatency: number | undefined;
}

/** An entry of the log hook: what happened, how bad it is, and where. */
export interface LogEntry {
  /** `"info"` (a refusal the server meant), `"warn"` (a client misbehaved), `"error"` (a fault). */
  level: "info" | "warn" | "error";
  /** What happened: `"refused"`, `"too-big"`, `"slow-client"`, `"broker"`. */
  event: "refused" | "too-big" | "slow-client" | "broker";
  /** A sentence for people. */
  message: string;
  /** The session, where there is one. */
  session?: string;
  /** The HTTP status of a refused upgrade. */
  status?: number;
  /** The close code, for a closed session. */
  code?: number;
}

const HELP: Record<keyof HubMetrics, [type: "gauge" | "counter", help: string]> = {
  sessions: ["gauge", "Sessions on this node, detached resumable ones included."],
  detached: ["gauge", "Resumable sessions whose client is away."],
  connects: ["counter", "Sessions begun."],
  disconnects: ["counter", "Sessions ended."],
  resumes: ["counter", "Resumable sessions continued on a new connection."],
  refused: ["counter", "Upgrades refused."],
  messagesIn: ["counter", "Messages received from clients."],
  bytesIn: ["counter", "Bytes of the messages received from clients."],
  messagesOut: ["counter", "Messages handed to the runtime for clients, one per recipient."],
  bytesOut: ["counter", "Bytes of the messages handed to the runtime for clients."],
  dropped: ["counter", "Messages dropped by the outbound limit."],
  slowClients: ["counter", "Sessions closed or connections given up because a client did not keep up."],
  tooBig: ["counter", "Sessions closed because a message was larger than maxMessageSize."],
  brokerErrors: ["counter", "Broker errors."],
  brokerIn: ["counter", "Broadcasts from other nodes received through the broker."],
  brokerDropped: ["counter", "Broadcasts and writes for resumable sessions the broker's streams did not take."],
  brokerLatency: ["gauge", "The broker's recent publish round trip in seconds."],
};

/**
 * Formats metrics in the Prometheus text exposition format (version 0.0.4): counters end in
 * `_total`, names are snake case after `prefix`, the broker latency is in seconds.
 *
 * @example
 * ```ts
 * import { Hub, prometheusText } from "chorus-ws";
 * const hub = new Hub();
 * const body = prometheusText(hub.metrics()); // serve it at /metrics, as text/plain; version=0.0.4
 * ```
 *
 * @param metrics A snapshot from `hub.metrics()`.
 * @param prefix The metric names' prefix.
 * @returns The text, ending with a newline.
 */
export function prometheusText(metrics: HubMetrics, prefix = "chorus"): string {
  let out = "";
  for (const key of Object.keys(HELP) as (keyof HubMetrics)[]) {
    const [type, help] = HELP[key];
    let value = metrics[key];
    if (value === undefined) continue;
    if (key === "brokerLatency") value /= 1000;
    const name = `${prefix}_${key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}${
      type === "counter" ? "_total" : key === "brokerLatency" ? "_seconds" : ""
    }`;
    out += `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`;
  }
  return out;
}
