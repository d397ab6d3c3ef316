// The whiteboard page in a real browser (Debian's Chromium, headless, driven by playwright-core): several
// pages on one board see each other in the member list, get each other's strokes (drawn on their canvas),
// cursors and "drawing…" activity; another board is isolated; a late joiner gets the board's strokes; a
// page that leaves leaves the list. A screenshot is kept as an artifact.
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { invalidInPages, launchChromium, root, startExample, watchInvalid, type Chat } from "./support.js";

let app: Chat;
let browser: Browser;

before(async () => {
  app = await startExample("whiteboard");
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await app?.stop();
});

async function open(name: string, board: string): Promise<Page> {
  const page = watchInvalid(await browser.newPage({ viewport: { width: 900, height: 760 } }));
  await page.goto(`http://${app.host}:${app.port}/`);
  await page.fill("#name", name);
  await page.fill("#board-name", board);
  await page.click("#login button");
  await page.waitForSelector(`text=${name} on board ${board}`);
  return page;
}

/** The names in the page's member list. */
async function members(page: Page): Promise<string[]> {
  return page.locator("#members li").allTextContents();
}

async function waitForMembers(page: Page, expected: string[]): Promise<void> {
  await page.waitForFunction(
    (want) => JSON.stringify(Array.from(document.querySelectorAll("#members li"), (li) => li.textContent)) === want,
    JSON.stringify(expected),
  );
}

async function strokes(page: Page): Promise<number> {
  return Number(await page.getAttribute("#board", "data-strokes"));
}

/** The canvas pixel at (x, y), as [r, g, b, a]. */
async function pixel(page: Page, x: number, y: number): Promise<number[]> {
  return page.evaluate(
    ([px, py]) => {
      const canvas = document.getElementById("board") as HTMLCanvasElement;
      return Array.from(canvas.getContext("2d")!.getImageData(px!, py!, 1, 1).data);
    },
    [x, y],
  );
}

/** Drags the mouse across the canvas from (x1, y) to (x2, y), in canvas coordinates. */
async function draw(page: Page, x1: number, x2: number, y: number): Promise<void> {
  const box = (await page.locator("#board").boundingBox())!;
  await page.mouse.move(box.x + x1, box.y + y);
  await page.mouse.down();
  for (let x = x1; x <= x2; x += 20) await page.mouse.move(box.x + x, box.y + y);
  return page.mouse.up();
}

test("pages on one board share presence, strokes, cursors and activity; another board is isolated", async () => {
  const ann = await open("ann", "design");
  const bob = await open("bob", "design");
  const cid = await open("cid", "other");
  await waitForMembers(ann, ["ann (you)", "bob"]);
  await waitForMembers(bob, ["ann", "bob (you)"]);
  assert.deepEqual(await members(cid), ["cid (you)"]);

  // Ann's pen is pure red; her stroke is drawn on bob's canvas, not on cid's.
  await ann.fill("#color", "#ff0000");
  const box = (await ann.locator("#board").boundingBox())!;
  await ann.mouse.move(box.x + 100, box.y + 200);
  await ann.mouse.down();
  await ann.mouse.move(box.x + 150, box.y + 200);
  // While ann's button is down, bob sees her drawing (volatile) and her cursor (latest).
  await bob.waitForSelector("text=ann is drawing…");
  await bob.waitForSelector('.cursor[data-user="ann"]');
  for (let x = 170; x <= 300; x += 20) await ann.mouse.move(box.x + x, box.y + 200);
  await ann.mouse.up();
  await bob.waitForFunction(() => document.getElementById("board")!.dataset["strokes"] === "1");
  const [r, g, b, a] = await pixel(bob, 200, 200);
  assert.ok(r! > 200 && g! < 60 && b! < 60 && a! > 200, `a red pixel on bob's canvas: ${[r, g, b, a]}`);
  await bob.waitForFunction(() => document.getElementById("activity")!.textContent === "");
  const cursor = bob.locator('.cursor[data-user="ann"]');
  const left = await cursor.evaluate((el) => parseInt((el as HTMLElement).style.left, 10));
  assert.ok(Math.abs(left - 300) <= 20, `ann's cursor near x=300 on bob's page: ${left}`);

  await draw(bob, 100, 400, 300);
  await ann.waitForFunction(() => document.getElementById("board")!.dataset["strokes"] === "2");
  assert.equal(await strokes(cid), 0);
  assert.deepEqual(await pixel(cid, 200, 200), [0, 0, 0, 0]);
  assert.equal(await cid.locator(".cursor").count(), 0);

  // A late joiner gets the board's strokes with its join.
  const dee = await open("dee", "design");
  assert.equal(await strokes(dee), 2);
  const [dr] = await pixel(dee, 200, 200);
  assert.ok(dr! > 200, "ann's red stroke on the late joiner's canvas");
  await waitForMembers(ann, ["ann (you)", "bob", "dee"]);

  const dir = join(root, "target", "browser");
  mkdirSync(dir, { recursive: true });
  await bob.screenshot({ path: join(dir, "whiteboard-bob.png") });

  // A page that goes leaves the others' member list, and its cursor with it.
  await ann.close();
  await waitForMembers(bob, ["bob (you)", "dee"]);
  assert.equal(await bob.locator('.cursor[data-user="ann"]').count(), 0);

  // Clearing the board clears every member's canvas.
  await bob.click("#clear");
  await dee.waitForFunction(() => document.getElementById("board")!.dataset["strokes"] === "0");
  assert.deepEqual(await pixel(dee, 200, 200), [0, 0, 0, 0]);
  await Promise.all([bob.close(), cid.close(), dee.close()]);
});

test("every frame the server sent the pages fit the protocol's generated validators", () => {
  assert.deepEqual(invalidInPages, []);
});
