// What the example chat pages share, served at `/chat-view.js` (with `/chat.css`): the list of
// messages in the server's order with the user's pending ones last, the connection's state with a
// countdown to the next attempt, the error line, the send form, and a room's earlier messages
// (history) placed above what came live. The page has #messages, #status, #error, #form, #input.

/** The element with this id. */
export const $ = (id) => document.getElementById(id);

const list = $("messages");
const status = $("status");
let countdown;

/** An ISO time as hh:mm, local. */
export const hhmm = (iso) => new Date(iso).toTimeString().slice(0, 5);

/** Sets the connection's state line (`state` is its `data-state`). */
export function setStatus(text, state) {
  clearInterval(countdown);
  status.textContent = text;
  status.dataset.state = state;
}

/** Sets the error line ("" clears it). */
export const showError = (text) => $("error").textContent = text;

/** Adds an item above the pending ones (the list is in the server's order, pending last). */
export function add(li) {
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.insertBefore(li, list.querySelector(".pending"));
  if (atBottom || li.classList.contains("mine")) list.scrollTop = list.scrollHeight;
}

/** A chat message: its time (or --:-- while pending), who, and the text. */
export function item(name, text, time, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  const t = document.createElement("time");
  if (time) t.dateTime = time;
  t.textContent = time ? hhmm(time) : "--:--";
  const who = document.createElement("strong");
  who.className = "name";
  who.textContent = name;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(t, who, ": ", body);
  return li;
}

/** A notice (joins, leaves, answers), with its time when it has one. */
export function notice(text, time) {
  const li = document.createElement("li");
  li.className = "notice";
  if (time) {
    const t = document.createElement("time");
    t.dateTime = time;
    t.textContent = hhmm(time);
    li.append(t);
  }
  li.append(text);
  add(li);
}

/** The user's oldest pending message came back from the server: it is shown as it came. */
export const confirmOldest = () => list.querySelector(".pending")?.remove();

/** The state line of a closed client. */
export const closedText = (e) => `disconnected (${e.code})${e.code === 1009 ? ": message too long" : ""}`;

/**
 * Shows a chorus-ws/client client's state: connected; reconnected with nothing lost, or as a new
 * session; the countdown to the next attempt; closed (`closed(e)` gives the line, `undefined`
 * leaves it).
 */
export function showState(c, closed = closedText) {
  let opened = false;
  c.addEventListener("open", (e) => {
    if (!opened) setStatus("connected", "open");
    else if (e.resumed) setStatus("reconnected — nothing lost", "open");
    else {
      setStatus("reconnected — new session", "open");
      notice("The server started a new session: messages sent to you while away are not shown.");
    }
    opened = true;
  });
  c.addEventListener("reconnecting", (e) => {
    let left = Math.ceil(e.delay / 1000);
    setStatus(`reconnecting in ${left}s…`, "reconnecting");
    countdown = setInterval(() => {
      status.textContent = --left > 0 ? `reconnecting in ${left}s…` : "reconnecting…";
      if (left <= 0) clearInterval(countdown);
    }, 1000);
  });
  c.addEventListener("close", (e) => {
    const text = closed(e);
    if (text !== undefined) setStatus(text, "closed");
  });
}

/** Sends through `c`: "" when sent or queued, else why not. */
export const sendWith = (c) => (text) =>
  c.send(text) ? "" : c.state === "closed" ? "Disconnected: reload the page." : "Too many messages waiting to be sent.";

/** Checks a message's UTF-8 size: "" when it fits in `max` bytes, else the error. */
export const atMostBytes = (max) => (text) => {
  const bytes = new TextEncoder().encode(text).length;
  return bytes > max ? `Message too long: ${bytes} bytes, at most ${max}.` : "";
};

/**
 * The send form: the text is checked (`check`: "" or the error), sent (`send`: "" or the error),
 * then shown as pending under `me()` until it comes back, unless `quiet(text)` (a command whose
 * answer is a notice).
 */
export function sendForm({ check, send, me, quiet = () => false }) {
  const input = $("input");
  $("form").onsubmit = (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    const problem = check(text) || send(text);
    if (problem) return showError(problem);
    showError("");
    input.value = "";
    if (quiet(text)) return;
    list.append(item(me() || "you", text, "", "mine pending"));
    list.scrollTop = list.scrollHeight;
  };
}

/**
 * A room's earlier messages and the live ones, each shown once (by id): `hello()` marks where a
 * session's history goes (after what was on the page then), `earlier(messages, cls)` puts it
 * there under "earlier messages", `fresh(id)` tells whether a live message is new.
 */
export class History {
  #shown = new Set();
  #at = 0;

  hello() {
    this.#at = list.querySelectorAll("li:not(.pending)").length;
  }

  earlier(messages, cls) {
    const earlier = messages.filter((h) => !this.#shown.has(h.id));
    if (earlier.length === 0) return;
    const at = list.children[this.#at] ?? null;
    const sep = document.createElement("li");
    sep.className = "separator";
    sep.textContent = "earlier messages";
    list.insertBefore(sep, at);
    for (const h of earlier) {
      this.#shown.add(h.id);
      list.insertBefore(item(h.name, h.text, h.time, cls(h)), at);
    }
    list.scrollTop = list.scrollHeight;
  }

  fresh(id) {
    if (this.#shown.has(id)) return false;
    this.#shown.add(id);
    return true;
  }
}
