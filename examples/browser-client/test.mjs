// Runs the page of the browser example in headless Chromium against its server, and checks what the
// typed Rust client (compiled to wasm32) saw. Started by scripts/wasm-test, which builds both first:
//   node examples/browser-client/test.mjs SERVER_BINARY STATIC_DIR
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { once } from "node:events";
import assert from "node:assert/strict";

const [server, staticDir] = process.argv.slice(2);
const require = createRequire(new URL("../../sdk-ts/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const expected = {
  refused: "3401",
  connect: "open",
  joined: "lobby",
  shout: "ann: hello from wasm",
  asked: "true by wasm",
  error: "forbidden: not for you",
  reconnected: "new connection: true",
  streamed: "100 numbers, in order once each: true",
  closed: "closed",
};

const child = spawn(server, ["--port", "0", "--static", staticDir], { stdio: ["ignore", "pipe", "inherit"] });
let browser;
try {
  const [line] = await Promise.race([
    once(child.stdout, "data"),
    new Promise((_, reject) => setTimeout(() => reject(new Error("the server did not start in 10 s")), 10_000)),
  ]);
  const address = /listening on (http:\/\/\S+)/.exec(String(line))?.[1];
  assert.ok(address, `unexpected server output: ${line}`);

  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });
  await page.goto(`${address}/`);
  await page.waitForSelector("body[data-done]", { timeout: 30_000 });
  const seen = JSON.parse(await page.textContent("#result"));
  console.log(JSON.stringify(seen, null, 2));
  assert.deepEqual(seen, expected);
  // A refused connection is expected to show in the console as a failed WebSocket; nothing else may.
  const unexpected = problems.filter((p) => !/WebSocket/.test(p));
  assert.deepEqual(unexpected, []);
  console.log("browser-client: every check passed in Chromium");
} finally {
  await browser?.close();
  child.kill();
}
