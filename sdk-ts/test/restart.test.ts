// The chat page survives its server's restart without losing a message: two chat processes share a Redis
// with `--history`; the page is on the first, which is killed (SIGKILL) and started again on the same port
// while a user on the second writes to the room. The page reconnects, joins its room again, and shows
// every message once, in order. Screenshot: target/browser/chat-restart.png.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import {
  chatClient,
  joinRoomInPage,
  launchChromium,
  next,
  openChatPage,
  root,
  startExample,
  startRedis,
  type Chat,
  type Redis,
} from "./support.js";

let redis: Redis;
let one: Chat;
let two: Chat;
let browser: Browser;
const flags = () => ["--redis", redis.url, "--history", "1000"];

before(async () => {
  redis = await startRedis();
  one = await startExample("chat", 0, flags());
  two = await startExample("chat", 0, flags());
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await one?.stop();
  await two?.stop();
  await redis?.stop();
});

test("the chat page gets every message sent while its server was restarted", async () => {
  const page = await openChatPage(browser, one, "ann");
  await joinRoomInPage(page, "rust");
  const bob = chatClient(two.url("bob"));
  try {
    await bob.ready();
    await bob.request("join", { room: "rust" });
    bob.send("chat", { text: "before the restart", room: "rust" });
    await page.waitForSelector("text=before the restart");

    const port = one.port;
    await one.kill();
    await page.waitForFunction(() => !document.getElementById("status")?.textContent?.startsWith("connected"));
    const sent = Array.from({ length: 20 }, (_, i) => `while down ${i + 1}`);
    const heard = next<unknown>((l) => bob.on("chat", (d) => d.text === sent.at(-1) && l(d)));
    for (const text of sent) bob.send("chat", { text, room: "rust" });
    await heard;

    one = await startExample("chat", port, flags());
    await page.waitForSelector(`text=${sent.at(-1)}`, { timeout: 15_000 });
    bob.send("chat", { text: "after the restart", room: "rust" });
    await page.waitForSelector("text=after the restart");
    const lines = await page.$$eval("#log li", (items) => items.map((li) => li.textContent ?? ""));
    const chat = lines.filter((line) => line.startsWith("bob#rust: ")).map((line) => line.slice("bob#rust: ".length));
    assert.deepEqual(chat, ["before the restart", ...sent, "after the restart"]);
    assert.equal(lines.filter((line) => line.includes("are lost")).length, 0, lines.join("\n"));

    // The restarted process learns the other's members at its first heartbeat: the list heals.
    await page.waitForSelector('#rooms span[data-room="rust"]:text-is("#rust: ann, bob")');
    const dir = join(root, "target", "browser");
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, "chat-restart.png") });
  } finally {
    bob.close();
    await page.close();
  }
});
