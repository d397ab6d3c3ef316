// The demo page in a real browser (Debian's Chromium, headless, driven by playwright-core): two pages chat
// through the generated client, list who is in their rooms, see each other typing, a room isolates a third, another user's question
// is answered in the page, and screenshots are kept as artifacts.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { WsRequestError } from "../src/index.js";
import {
  chatClient,
  joinRoomInPage,
  launchChromium,
  openChatPage,
  root,
  startChat,
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
