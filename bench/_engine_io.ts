/**
 * Socket.IO for the load generator: the least of engine.io v4 over a WebSocket that a Socket.IO 4
 * server accepts (`/socket.io/?EIO=4&transport=websocket`, no polling), behind the part of the
 * `WebSocket` interface that bench/client.ts uses. The server's open packet (`0{…}`) is answered
 * with a connect to the main namespace (`40`); its `40{…}` is this socket's `open`. A ping (`2`)
 * gets a pong (`3`). `send(text)` emits the event `m` with `text` (`42["m","text"]`), and each
 * `m` event from the server is a `message` whose data is its text.
 *
 * @module
 */

type Handler<E> = ((e: E) => void) | null;

/** Frames of an `m` event, as the server writes them for a text without characters JSON escapes. */
const HEAD = '42["m","';
const TAIL = '"]';

/** A Socket.IO connection that looks like a `WebSocket` to the load generator. */
export class EngineIoSocket {
  onopen: Handler<Event> = null;
  onmessage: Handler<{ data: string }> = null;
  onerror: Handler<Event> = null;
  onclose: Handler<CloseEvent> = null;
  readonly #ws: WebSocket;

  /** @param base The server's `ws://host:port/` URL. */
  constructor(base: string) {
    const url = new URL("/socket.io/?EIO=4&transport=websocket", base);
    const ws = this.#ws = new WebSocket(url);
    ws.onmessage = (e) => this.#packet(e.data as string);
    ws.onerror = (e) => this.onerror?.(e);
    ws.onclose = (e) => this.onclose?.(e);
  }

  #packet(p: string): void {
    const type = p.charCodeAt(0);
    if (type === 52) { // 4: a Socket.IO packet
      const kind = p.charCodeAt(1);
      if (kind === 50) { // 2: an event
        const plain = p.startsWith(HEAD) && p.endsWith(TAIL) && !p.includes("\\", HEAD.length);
        const data = plain ? p.slice(HEAD.length, -TAIL.length) : String((JSON.parse(p.slice(1)) as unknown[])[1]);
        this.onmessage?.({ data });
      } else if (kind === 48) this.onopen?.(new Event("open")); // 0: connected to the namespace
      else if (kind === 52) this.#ws.close(); // 4: connect error
    } else if (type === 50) this.#ws.send("3"); // 2: ping
    else if (type === 48) this.#ws.send("40"); // 0: engine.io open
    else if (type === 49) this.#ws.close(); // 1: close
  }

  /** Emits the event `m` with `text`. */
  send(text: string): void {
    this.#ws.send(`42["m",${JSON.stringify(text)}]`);
  }

  /** Closes the connection. */
  close(): void {
    this.#ws.close();
  }
}
