// The chat page, on the typed client generated from the Rust enums: a wrong message name or payload here
// is a type error. Bundled into ../static/app.js by sdk-ts/scripts/build-page.mjs.
import { type Client, createClient, WsRequestError } from "../sdk/client.js";
import { socketUrl, tokenFor } from "./token.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
// The rooms the user joined: joined again after a lost connection, which gets what was missed meanwhile
// when the server keeps history.
const joined = new Set<string>();
let client: Client | undefined;
// Who is typing, and when that line goes away; `typing` frames are volatile, so this is best effort.
const typists = new Map<string, number>();
let lastTyping = 0;

function renderTyping(): void {
  const now = Date.now();
  for (const [who, until] of typists) if (until <= now) typists.delete(who);
  const names = [...typists.keys()];
  $("typing").textContent =
    names.length === 0 ? "" : `${names.join(", ")} ${names.length === 1 ? "is" : "are"} typing…`;
}

function log(html: string, cls?: string): void {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  li.innerHTML = html;
  $("log").append(li);
  $("log").scrollTop = $("log").scrollHeight;
}

/** Each joined room with who is in it, from the server's presence frames. */
function renderRooms(): void {
  $("rooms").innerHTML = [...joined]
    .map((r) => {
      const view = client?.presence(r);
      const names = view ? view.members.map((m) => m.meta.user).sort() : [];
      return `<span data-room="${esc(r)}">#${esc(r)}: ${esc(names.join(", "))}</span>`;
    })
    .join("");
  const target = $<HTMLSelectElement>("target");
  const current = target.value;
  target.innerHTML =
    `<option value="">everyone</option>` + [...joined].map((r) => `<option value="${esc(r)}">#${esc(r)}</option>`).join("");
  target.value = joined.has(current) ? current : "";
}

/** Questions shown at once; more are refused with `busy` until one is answered. */
const MAX_OPEN_QUESTIONS = 3;
/** The server gives up on an answer after 10 s; the question leaves the page then. */
const QUESTION_SHOWN_MS = 10_000;
let openQuestions = 0;

/** Shows another user's question in the page (never a modal dialog), attributed to its sender, and
 * resolves with what this user types, or fails if they decline. */
function askInPage(user: string, question: string): Promise<{ answer: string }> {
  if (openQuestions >= MAX_OPEN_QUESTIONS) {
    return Promise.reject(Object.assign(new Error("too many open questions"), { code: "busy" }));
  }
  openQuestions += 1;
  const item = document.createElement("form");
  item.className = "question";
  item.innerHTML =
    `<span><span class="who">${esc(user)}</span> asks you: ${esc(question)}</span>` +
    `<input name="answer" autocomplete="off" maxlength="2000" placeholder="your answer">` +
    `<button>Answer</button><button type="button" class="secondary">Decline</button>`;
  $("questions").append(item);
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(expiry);
      item.remove();
      openQuestions -= 1;
    };
    const expiry = setTimeout(() => {
      done();
      reject(new Error("not answered in time"));
    }, QUESTION_SHOWN_MS);
    item.addEventListener("submit", (e) => {
      e.preventDefault();
      done();
      resolve({ answer: (item.elements.namedItem("answer") as HTMLInputElement).value });
    });
    item.querySelector("button.secondary")!.addEventListener("click", () => {
      done();
      reject(Object.assign(new Error(`${user}'s question was declined`), { code: "declined" }));
    });
  });
}

function connect(name: string): Client {
  const next = createClient(socketUrl(), { getToken: () => tokenFor(name) });
  next.onState((state, close) => {
    $("status").textContent = state === "open" ? `connected as ${name}` : `${state}${close ? ` (${close.code})` : ""}`;
    renderRooms();
    if (state === "open") for (const room of joined) void rejoin(next, room);
  });
  next.onRecovery((r) => {
    if (r.recovered === false) log(`#${esc(r.group)}: messages sent while away are lost (${esc(r.reason)})`, "error");
  });
  next.on("welcome", (data) => {
    $("status").textContent = `connected as ${name} (${data.client_id})`;
    log("connected", "system");
  });
  next.on("chat", (data) => {
    const room = data.room ? `<span class="room">#${esc(data.room)}</span>` : "";
    log(`<span class="who">${esc(data.user)}</span>${room}: ${esc(data.text)}`);
  });
  next.on("typing", (data) => {
    const key = data.room ? `${data.user} in #${data.room}` : data.user;
    typists.set(key, Date.now() + 3000);
    renderTyping();
    setTimeout(renderTyping, 3100);
  });
  next.on("dm", (data) => log(`<span class="who">${esc(data.user)}</span> (direct): ${esc(data.text)}`));
  next.handle("ask", (data) => askInPage(data.user, data.question));
  next.onError((error) => log(`error ${esc(error.code)}: ${esc(error.message)}`, "error"));
  return next;
}

async function rejoin(to: Client, room: string): Promise<void> {
  try {
    await to.request("join", { room });
  } catch (error) {
    joined.delete(room);
    renderRooms();
    const message = error instanceof WsRequestError ? `${error.code}: ${error.message}` : String(error);
    log(`cannot join #${esc(room)} again: ${esc(message)}`, "error");
  }
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  client?.close();
  joined.clear();
  client = connect($<HTMLInputElement>("name").value);
});

$("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  const room = $<HTMLInputElement>("room").value.trim();
  try {
    if (!client) return;
    await client.request("join", { room });
    if (!joined.has(room)) client.presence(room).onChange(renderRooms);
    joined.add(room);
    renderRooms();
    $<HTMLSelectElement>("target").value = room;
    log(`joined #${esc(room)}`, "system");
  } catch (error) {
    const message = error instanceof WsRequestError ? `${error.code}: ${error.message}` : String(error);
    log(`cannot join: ${esc(message)}`, "error");
  }
});

$("leave").addEventListener("click", async () => {
  const room = $<HTMLInputElement>("room").value.trim();
  await client?.request("leave", { room });
  joined.delete(room);
  renderRooms();
  log(`left #${esc(room)}`, "system");
});

// The assistant's answer streams in word by word; a lost connection is resumed by the client, so the
// answer goes on where it broke. Asking again, or Stop, cancels the answer on the server.
let asking: AbortController | undefined;

$("assistant").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!client) return;
  asking?.abort();
  const controller = new AbortController();
  asking = controller;
  const answer = $("answer");
  answer.textContent = "";
  answer.dataset["state"] = "streaming";
  answer.dataset["words"] = "0";
  try {
    const prompt = $<HTMLInputElement>("prompt").value;
    for await (const word of client.stream("assistant", { prompt }, { signal: controller.signal })) {
      answer.textContent += word.text;
      answer.dataset["words"] = String(word.index + 1);
    }
    answer.dataset["state"] = "done";
  } catch (error) {
    if (controller.signal.aborted) {
      answer.dataset["state"] = "stopped";
      return;
    }
    answer.dataset["state"] = "failed";
    const message = error instanceof WsRequestError ? `${error.code}: ${error.message}` : String(error);
    log(`the assistant could not answer: ${esc(message)}`, "error");
  }
});

$("stop").addEventListener("click", () => asking?.abort());

$("text").addEventListener("input", () => {
  // At most one `typing` every 2 s while the user types.
  if (Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  const room = $<HTMLSelectElement>("target").value;
  client?.send("typing", room ? { room } : {});
});

$("send").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $<HTMLSelectElement>("target").value;
  const text = $<HTMLInputElement>("text").value;
  client?.send("chat", room ? { text, room } : { text });
  $<HTMLInputElement>("text").value = "";
  lastTyping = 0;
});
