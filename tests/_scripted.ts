// The server's side of chorus.v1 played by hand, for the chorus-ws/client tests: a bare server
// (tests/_raw_server.ts) that answers chorus.v1 and records what the client sends, and a client
// whose events are recorded and whose sockets are tracked until closed.
import { type ChorusClient, type ClientOptions, connect } from "../src/client.ts";
import {
  decodeFrame,
  encodeControl,
  encodeReceived,
  type Frame,
  type RequestMessage,
  type WelcomeMessage,
} from "../src/protocol.ts";
import { deadline, deferred, Signal } from "./_helpers.ts";
import { type RawServer, rawServer, type RawSession } from "./_raw_server.ts";

export const HELLO = '{"t":"hello","v":1}';
/** Reconnects fast. */
export const fast = { minDelay: 10, maxDelay: 50, connectTimeout: 2000 };

/** A bare server that answers chorus.v1 and lets the test play the server's side of the protocol. */
export interface Scripted {
  srv: RawServer;
  signal: Signal;
  /** Connections in order. */
  sessions: RawSession[];
  /** Requests (new/resume) in order. */
  requests: RequestMessage[];
  /** Data frames from the client, in order, with the connection they came on. */
  data: { s: number; n: number; payload: string | Uint8Array }[];
  /** Position acknowledgements (`r` frames) from the client, in order, as sent. */
  acks: string[];
  /** Close codes of connections, in order. */
  closes: number[];
  /** Answers a request; `undefined`: no answer (the test sends one itself, or never). */
  welcome: (req: RequestMessage, index: number) => WelcomeMessage | undefined;
}

/** Starts a scripted server. */
export function scripted(): Scripted {
  const signal = new Signal();
  const sc: Scripted = {
    srv: undefined as unknown as RawServer,
    signal,
    sessions: [],
    requests: [],
    data: [],
    acks: [],
    closes: [],
    welcome: (req, i) => ({ t: "welcome", resumed: req.t === "resume", token: `T${i + 1}`, recv: 0, hb: 0 }),
  };
  const frame = (s: RawSession, f: Frame | undefined) => {
    const index = sc.sessions.indexOf(s);
    if (f?.kind === "control" && (f.message.t === "new" || f.message.t === "resume")) {
      sc.requests.push(f.message);
      const w = sc.welcome(f.message, sc.requests.length - 1);
      if (w) s.write(encodeControl(w));
      // the server's own stream (id 1), declared on every connection
      if (w?.token) s.write(encodeControl({ t: "stream", id: 1, key: "s", epoch: "E" }));
    } else if (f?.kind === "data") sc.data.push({ s: index, n: f.n, payload: f.payload });
    else if (f?.kind === "received") sc.acks.push(encodeReceived(f.at));
    else throw new Error(`unexpected frame from the client on connection ${index}`);
    signal.ping();
  };
  sc.srv = rawServer({
    open(s) {
      sc.sessions.push(s);
      s.write(HELLO);
      signal.ping();
    },
    message: (s, msg) => frame(s, decodeFrame(msg)),
    close(_s, code) {
      sc.closes.push(code);
      signal.ping();
    },
  }, "chorus.v1");
  return sc;
}

/** A client with its events recorded, and sockets tracked so the test can wait for them to close. */
export interface Watched {
  c: ChorusClient;
  signal: Signal;
  opens: boolean[];
  messages: (string | ArrayBuffer)[];
  reconnecting: { attempt: number; delay: number; state: string }[];
  closes: CloseEvent[];
  sockets: WebSocket[];
  /** Closes the client (if not closed) and waits until every socket it made has closed. */
  end(): Promise<void>;
}

/** Starts a client with its events recorded. */
export function watch(url: string, options: ClientOptions = {}, signal: Signal = new Signal()): Watched {
  const sockets: WebSocket[] = [];
  const closed: Promise<void>[] = [];
  class Tracked extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      sockets.push(this);
      const d = deferred();
      this.addEventListener("close", () => d.resolve());
      closed.push(d.promise);
      signal.ping();
    }
  }
  const c = connect(url, { ...fast, WebSocket: Tracked, ...options });
  const w: Watched = {
    c,
    signal,
    opens: [],
    messages: [],
    reconnecting: [],
    closes: [],
    sockets,
    async end() {
      if (c.state !== "closed") c.close();
      await deadline(Promise.all(closed), "the client's sockets to close");
    },
  };
  c.addEventListener("open", (e) => {
    w.opens.push(e.resumed);
    signal.ping();
  });
  c.addEventListener("message", (e) => {
    w.messages.push(e.data);
    signal.ping();
  });
  c.addEventListener("reconnecting", (e) => {
    w.reconnecting.push({ attempt: e.attempt, delay: e.delay, state: c.state });
    signal.ping();
  });
  c.addEventListener("close", (e) => {
    w.closes.push(e);
    signal.ping();
  });
  return w;
}

/** Runs `fn` with a scripted server and cleans both up. */
export async function withScripted(fn: (sc: Scripted, clients: Watched[]) => Promise<void>): Promise<void> {
  const sc = scripted();
  const clients: Watched[] = [];
  try {
    await fn(sc, clients);
  } finally {
    for (const w of clients) await w.end();
    await sc.srv.close();
  }
}

/** Waits until `check` holds; re-checked on the server's and the client's events. */
export function until(sc: Scripted, _w: Watched, check: () => boolean, what: string, ms = 5000): Promise<void> {
  return sc.signal.until(check, what, ms);
}

/** The messages received, bytes as `<1,2,3>`. */
export const texts = (w: Watched) =>
  w.messages.map((m) => typeof m === "string" ? m : `<${new Uint8Array(m).join(",")}>`);
