// Type-checked (never run): a node-redis client from `createClient()` is what `redisBroker({ client })` takes.
import { createClient } from "redis";
import { Hub } from "../../mod.ts";
import { redisBroker } from "../../src/brokers/redis.ts";

const client = createClient({ url: "redis://127.0.0.1:6379" });
export const hub: Hub = new Hub({ broker: redisBroker({ client, prefix: "typecheck" }) });
