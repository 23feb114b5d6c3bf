/**
 * chorus: a WebSocket session hub for Deno and Bun — melody's hooks, broadcast, sessions and
 * keys, plus rooms and bounded memory, over the standard `WebSocket`.
 *
 * @example
 * ```ts
 * import { Hub } from "chorus-ws";
 *
 * const hub = new Hub<{ name: string }>();
 * hub.handleConnect((s) => s.set("name", `guest-${hub.size}`));
 * hub.handleMessage((s, msg) => hub.broadcast(`${s.get("name")}: ${msg}`));
 * // serve it: `await serve(hub, { port: 8080 })` from "chorus-ws/serve"
 * ```
 *
 * @module
 */

export { type HandleRequestOptions, Hub } from "./src/hub.ts";
export {
  type HistoryOptions,
  type HubOptions,
  type PresenceOptions,
  type ResumeOptions,
  sameOrigin,
} from "./src/options.ts";
export type { HistoryEntry, Keys, Member, Message, PresenceEvent } from "./src/types.ts";
export { Room } from "./src/room.ts";
export { Session } from "./src/session.ts";
export { BrokerMessageError, HubClosedError, MessageBufferFullError, SessionClosedError } from "./src/errors.ts";
export type {
  BroadcastKind,
  Broker,
  BrokerLink,
  BrokerMessage,
  BrokerPresence,
  BrokerStreams,
  PresenceChange,
  PresenceEntry,
  PresenceUpdate,
  SessionState,
  StreamEntry,
  StreamPosition,
} from "./src/broker.ts";
export { type HubMetrics, type LogEntry, prometheusText } from "./src/metrics.ts";
