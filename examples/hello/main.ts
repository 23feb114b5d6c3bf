// The README's example, a chat hub in a dozen lines, unchanged on Deno and Bun; PORT: docs/examples.md.
import process from "node:process";
import { Hub } from "chorus-ws";
import { serve } from "chorus-ws/serve";

const hub = new Hub<{ name: string }>();
hub.handleConnect((s) => s.set("name", new URL(s.request.url).searchParams.get("name") ?? "guest"));
hub.handleMessage((s, msg) => hub.broadcast(`${s.get("name")}: ${msg}`));
hub.handleDisconnect((s) => console.log(`${s.get("name")} left`));

const server = await serve(hub, { port: Number(process.env.PORT ?? 8080) });
console.log(`listening on ${server.url} (try ws://${server.url.host}/?name=you)`);
process.on("SIGINT", () => server.shutdown().then(() => process.exit(0)));
