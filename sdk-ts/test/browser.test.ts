// The demo page in a real browser (Debian's Chromium, headless, driven by playwright-core): two pages chat
// through the generated client, list who is in their rooms, see each other typing, a room isolates a third, another user's question
// is answered in the page, and screenshots are kept as artifacts. Then the React page (`/react`,
// examples/chat/web/react/app.tsx): two pages join a room through `useRequest`, list each other through
// `usePresence`, chat through `useMessage` (own lines marked, the newest kept in sight), ask the server who
// they are, leave, and carry on after the server restarts (`useConnection` shows it, the page joins again);
// a line the server refuses is explained next to the field (`useLastError`), a refused handshake shows its
// status and reason without a reconnect loop, and an outdated page is told to reload; screenshot
// target/browser/chat-react.png.
// The page's socket negotiates permessage-deflate (the handshake as Chromium's DevTools saw it). The
// assistant's answer (a typed stream) fills the plain and the React page word by word, across a
// server-side cut of each page's socket, with no word lost or repeated.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { WsRequestError } from "../src/index.js";
import {
  startExample,
  chatClient,
  invalidInPages,
  joinRoomInPage,
  launchChromium,
  openChatPage,
  root,
  startChat,
  watchInvalid,
  type Chat,
} from "./support.js";

let chat: Chat;
let browser: Browser;

before(async () => {
  chat = await startChat();
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await chat?.stop();
});

const open = (name: string): Promise<Page> => openChatPage(browser, chat, name);
const joinRoom = joinRoomInPage;

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("#send button");
}

test("two pages chat, and a room keeps its messages to its members", async () => {
  const ann = await open("ann");
  const bob = await open("bob");
  const cid = await open("cid");
  await joinRoom(ann, "rust");
  await joinRoom(bob, "rust");
  await joinRoom(cid, "go");

  // Each page lists who is in its rooms, from the server's presence frames.
  await ann.waitForSelector('#rooms span[data-room="rust"]:text-is("#rust: ann, bob")');
  await bob.waitForSelector('#rooms span[data-room="rust"]:text-is("#rust: ann, bob")');
  await cid.waitForSelector('#rooms span[data-room="go"]:text-is("#go: cid")');

  // Typing in the room shows on the other member's page (a volatile message), not on one's own.
  await ann.fill("#text", "hel");
  await bob.waitForSelector("text=ann in #rust is typing…");
  assert.equal(await ann.textContent("#typing"), "");

  await say(ann, "hello rust room");
  await bob.waitForSelector("text=hello rust room");
  await ann.waitForSelector("text=hello rust room");

  await bob.selectOption("#target", "");
  await say(bob, "hello everyone");
  for (const page of [ann, bob, cid]) await page.waitForSelector("text=hello everyone");

  await say(cid, "only for go");
  await cid.waitForSelector("text=only for go");
  // By now cid has seen everyone-chat sent after the room message, so the room message would have
  // arrived before it if it had been sent to cid at all.
  assert.equal(await cid.locator("text=hello rust room").count(), 0);
  assert.equal(await ann.locator("text=only for go").count(), 0);

  const dir = join(root, "target", "browser");
  mkdirSync(dir, { recursive: true });
  await ann.screenshot({ path: join(dir, "chat-ann.png") });
  await cid.screenshot({ path: join(dir, "chat-cid.png") });
});

test("another user's question shows in the page, attributed, and the typed answer goes back", async () => {
  const bob = await open("bob");
  const status = (await bob.textContent("#status")) ?? "";
  const bobId = /\(([^)]+)\)/.exec(status)?.[1];
  assert.ok(bobId, status);
  const ann = chatClient(chat.url("ann"));
  try {
    await ann.ready();
    const answered = ann.request("ask", { to: bobId, question: "tea or coffee?" });
    await bob.waitForSelector("text=ann asks you: tea or coffee?");
    const dir = join(root, "target", "browser");
    mkdirSync(dir, { recursive: true });
    await bob.screenshot({ path: join(dir, "chat-question.png") });
    await bob.fill("form.question input", "tea");
    await bob.click("form.question button:not(.secondary)");
    assert.deepEqual(await answered, { answer: "tea" });
    assert.equal(await bob.locator("form.question").count(), 0);

    // Declining answers with an error the asker sees.
    const declined = assert.rejects(
      ann.request("ask", { to: bobId, question: "pie?" }),
      (e: unknown) => e instanceof WsRequestError && e.code === "declined",
    );
    await bob.waitForSelector("text=ann asks you: pie?");
    await bob.click("form.question button.secondary");
    await declined;
  } finally {
    ann.close();
    await bob.close();
  }
});

test("the page's socket negotiates permessage-deflate, and a long room message arrives compressed", async () => {
  // The handshake as Chromium saw it, from the DevTools protocol: the page's own socket, made by the SDK.
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const answers: Record<string, string>[] = [];
  const frames: { opcode: number; payloadData: string }[] = [];
  cdp.on("Network.webSocketHandshakeResponseReceived", (event) => answers.push(event.response.headers));
  cdp.on("Network.webSocketFrameReceived", (event) => frames.push(event.response));
  await page.goto(`http://${chat.host}:${chat.port}/`);
  await page.fill("#name", "dee");
  await page.click("#login button");
  await page.waitForSelector("text=connected as dee (");
  const extensions = answers.map((h) => h["Sec-WebSocket-Extensions"] ?? h["sec-websocket-extensions"]);
  assert.deepEqual(extensions, ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"]);
  await joinRoom(page, "deflate");

  const before = await stats();
  const long = `a long line that compresses well ${"la ".repeat(200)}`.trim();
  const eve = await open("eve");
  await joinRoom(eve, "deflate");
  await say(eve, long);
  await page.waitForSelector(`text=${long.slice(0, 60)}`);
  // DevTools shows frames inflated; the server's counters show they were compressed on the way.
  assert.ok(frames.some((f) => f.payloadData.includes(long)));
  const after = await stats();
  assert.ok(after.frames_compressed > before.frames_compressed, JSON.stringify(after));
  assert.ok(after.compressed_connections >= 2);
  await page.close();
  await eve.close();
});

async function stats(): Promise<{ frames_compressed: number; compressed_connections: number }> {
  const response = await fetch(`http://${chat.host}:${chat.port}/stats`);
  return (await response.json()) as { frames_compressed: number; compressed_connections: number };
}

/** The React page (`/react`), logging in as `name`; `connected` waits until it says so. */
async function openReact(name: string, connected = true): Promise<Page> {
  const page = watchInvalid(await browser.newPage({ viewport: { width: 820, height: 640 } }));
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => message.type() === "error" && errors.push(message.text()));
  await page.goto(`http://${chat.host}:${chat.port}/react`);
  await page.fill("#login input", name);
  await page.click("#login button");
  if (connected) {
    await page.waitForSelector(`text=connected as ${name}`);
    assert.deepEqual(errors, [], "no errors in the console (no favicon 404 either)");
  }
  return page;
}

async function joinInReact(page: Page, room: string): Promise<void> {
  await page.fill("#join input", room);
  await page.click("#join button");
  await page.waitForSelector(`#rooms li[data-room="${room}"]`);
}

/** The member list the page shows for `room`. */
const membersOf = (room: string) => `#rooms li[data-room="${room}"] .members`;

async function sayInReact(page: Page, text: string): Promise<void> {
  await page.fill("#send input", text);
  await page.click("#send button");
}

test("two React pages chat, list each other, ask who they are, and carry on after a server restart", async () => {
  const ann = await openReact("ann");
  const bob = await openReact("bob");
  try {
    await joinInReact(ann, "react");
    await joinInReact(bob, "react");
    for (const page of [ann, bob]) await page.waitForSelector(`${membersOf("react")}:text-is('#react: ann, bob')`);

    await sayInReact(bob, "hello from React");
    await ann.waitForSelector("#log li.chat:text-is('bob#react: hello from React')");
    // One's own line is marked as such.
    await bob.waitForSelector("#log li.own:text-is('bob#react: hello from React')");

    await ann.click("#whoami");
    await ann.waitForSelector("#me:text-is('ann (react)')");

    // A line the server refuses (over 2 000 characters): the page says why, next to the field.
    await sayInReact(ann, "x".repeat(2001));
    await ann.waitForSelector("#refused:text-is('text longer than 2000 characters')");
    await sayInReact(ann, "shorter");
    await ann.waitForSelector("#log li:text-is('ann#react: shorter')");
    assert.equal(await ann.textContent("#refused"), "", "sending again clears the refusal");

    const port = chat.port;
    await chat.kill();
    for (const page of [ann, bob]) await page.waitForSelector("#status:text-matches('^(reconnecting|closed)')");
    chat = await startChat(port);
    for (const page of [ann, bob]) {
      await page.waitForSelector("text=connected as", { timeout: 15_000 });
      await page.waitForSelector(`${membersOf("react")}:text-is('#react: ann, bob')`, { timeout: 15_000 });
    }
    await sayInReact(ann, "still here");
    await bob.waitForSelector("#log li:text-is('ann#react: still here')");
    const lines = await bob.$$eval("#log li", (items) => items.map((li) => li.textContent ?? ""));
    assert.deepEqual(
      lines,
      ["bob#react: hello from React", "ann#react: shorter", "ann#react: still here"],
      "each message once",
    );

    const dir = join(root, "target", "browser");
    mkdirSync(dir, { recursive: true });
    await ann.screenshot({ path: join(dir, "chat-react.png") });

    // Leaving: the room goes from the page, and from the other member's list.
    await ann.click(`#rooms li[data-room="react"] button`);
    await ann.waitForSelector(`#rooms li[data-room="react"]`, { state: "detached" });
    await bob.waitForSelector(`${membersOf("react")}:text-is('#react: bob')`);
  } finally {
    await ann.close();
    await bob.close();
  }
});

test("the React page's log keeps its newest line in sight", async () => {
  const cay = await openReact("cay");
  try {
    for (let i = 1; i <= 40; i++) await sayInReact(cay, `line ${i}`);
    await cay.waitForSelector("#log li:text-is('cay: line 40')");
    const inSight = await cay.$eval("#log", (list) => {
      const last = list.lastElementChild?.getBoundingClientRect();
      const box = list.getBoundingClientRect();
      return { scrolled: list.scrollTop > 0, last: last !== undefined && last.bottom <= box.bottom + 1 && last.top >= box.top };
    });
    assert.deepEqual(inSight, { scrolled: true, last: true });
  } finally {
    await cay.close();
  }
});

test("a refused handshake shows its status and the server's reason, and is not retried", async () => {
  // A user name over 32 characters: the chat's authenticator refuses it (HTTP 400; 3400 for the SDK).
  const sockets: string[] = [];
  const page = await openReact("n".repeat(33), false);
  page.on("websocket", (socket) => sockets.push(socket.url()));
  try {
    await page.waitForSelector(
      "#status:text-is('closed: refused by the server (HTTP 400: the user name longer than 32 characters)')",
    );
    sockets.length = 0;
    await page.waitForTimeout(1_500);
    assert.deepEqual(sockets, [], "no reconnect loop");
    assert.equal(await page.textContent("#status"), "closed: refused by the server (HTTP 400: the user name longer than 32 characters)");
  } finally {
    await page.close();
  }
});

test("a page built for another protocol version is told to reload", async () => {
  const page = watchInvalid(await browser.newPage());
  // An outdated page: its client names a fingerprint the server does not speak.
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.WebSocket = class extends Native {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(String(url).replace(/ws_protocol=[0-9a-f]+/, "ws_protocol=0000000000000000"), protocols);
      }
    };
  });
  try {
    await page.goto(`http://${chat.host}:${chat.port}/react`);
    await page.fill("#login input", "old");
    await page.click("#login button");
    await page.waitForSelector("#status:text-is('a new version is available — reload the page')");
  } finally {
    await page.close();
  }
});

test("with 5-second tokens a React page keeps its one socket for 30 s, and an admin's revocation closes it", async () => {
  const tokens = await startExample("chat", 0, ["--token-ttl", "5"]);
  const page = watchInvalid(await browser.newPage());
  const sockets: string[] = [];
  page.on("websocket", (socket) => sockets.push(socket.url()));
  const base = `http://${tokens.host}:${tokens.port}`;
  try {
    await page.goto(`${base}/react`);
    await page.fill("#login input", "tia");
    await page.click("#login button");
    await page.waitForSelector("text=connected as tia");
    await page.waitForTimeout(30_000);
    assert.equal(await page.textContent("#status"), "connected as tia");
    assert.equal(sockets.length, 1, "no reconnection");
    const stats = (await (await fetch(`${base}/stats`)).json()) as { sessions_refreshed: number; sessions_expired: number };
    // Refreshed halfway through each 5-second token.
    assert.ok(stats.sessions_refreshed >= 10, JSON.stringify(stats));
    assert.equal(stats.sessions_expired, 0);

    const admin = await (await fetch(`${base}/token?name=admin`)).text();
    const refused = await fetch(`${base}/admin/disconnect?user=tia`, { method: "POST", headers: { authorization: "Bearer nope" } });
    assert.equal(refused.status, 403);
    const revoked = await fetch(`${base}/admin/disconnect?user=tia`, { method: "POST", headers: { authorization: `Bearer ${admin}` } });
    assert.deepEqual(await revoked.json(), { closed: 1 });
    await page.waitForSelector("#status:text-is('closed (4003: revoked)')");
  } finally {
    await page.close();
    await tokens.stop();
  }
});

test("the assistant's answer streams into both pages and survives a server-side cut: no word lost or repeated", async () => {
  const words = 80;
  const assistant = await startExample("chat", 0, ["--assistant-words", String(words), "--assistant-delay-ms", "25"]);
  const base = `http://${assistant.host}:${assistant.port}`;
  const prompt = "what is a typed stream";
  const reference = chatClient(assistant.url("ref"));
  let expected = "";
  for await (const word of reference.stream("assistant", { prompt })) expected += word.text;
  reference.close();
  const cut = async (user: string) => {
    const response = await fetch(`${base}/admin/cut?user=${user}`, { method: "POST", headers: { authorization: "Bearer admin" } });
    assert.deepEqual(await response.json(), { closed: 1 });
  };
  const plain = await openChatPage(browser, assistant, "una");
  const react = watchInvalid(await browser.newPage({ viewport: { width: 820, height: 640 } }));
  try {
    await react.goto(`${base}/react`);
    await react.fill("#login input", "ula");
    await react.click("#login button");
    await react.waitForSelector("text=connected as ula");
    for (const [page, user] of [
      [plain, "una"],
      [react, "ula"],
    ] as const) {
      await page.fill("#prompt", prompt);
      await page.click("#assistant button:not(.secondary)");
      await page.waitForFunction(() => Number(document.querySelector<HTMLElement>("#answer")?.dataset["words"]) >= 20);
      await cut(user);
      await page.waitForSelector('#answer[data-state="done"]', { timeout: 15_000 });
      assert.equal(await page.textContent("#answer"), expected, `${user}'s page shows the whole answer once`);
      assert.equal(await page.getAttribute("#answer", "data-words"), String(words));
    }
    mkdirSync(join(root, "target", "browser"), { recursive: true });
    await react.screenshot({ path: join(root, "target", "browser", "chat-assistant.png") });
  } finally {
    await plain.close();
    await react.close();
    await assistant.stop();
  }
});

test("every frame the server sent the pages fit the protocol's generated validators", () => {
  assert.deepEqual(invalidInPages, []);
});
