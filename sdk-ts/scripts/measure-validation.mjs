// What run-time validation costs a frontend, on the chat and whiteboard protocols: the client's bundle
// (minified, then gzip) with the generated validators and without them, and how many frames a second the
// checks pass in Node. `npm run measure:validation`; figures go to BENCHMARKS.md.
import { gzipSync } from "node:zlib";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const sdk = join(root, "sdk-ts/src/index.ts");

async function size(contents) {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: "ts" },
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2020",
    write: false,
    legalComments: "none",
    alias: { "ws-core-client": sdk },
  });
  const text = result.outputFiles[0].contents;
  return { minified: text.length, gzip: gzipSync(text, { level: 9 }).length };
}

async function load(example) {
  const result = await build({
    entryPoints: [join(root, `examples/${example}/sdk/validate.ts`)],
    bundle: true,
    format: "esm",
    write: false,
    alias: { "ws-core-client": sdk },
  });
  const url = `data:text/javascript;base64,${Buffer.from(result.outputFiles[0].text).toString("base64")}`;
  return (await import(url)).validators;
}

function rate(check, data, seconds = 1) {
  let frames = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) if (check(data, "data")) throw new Error("does not fit");
    frames += 1000;
  }
  return frames / seconds;
}

const row = (...cells) => console.log(`| ${cells.join(" | ")} |`);
console.log("| example | client bundle | minified bytes | gzip bytes |");
console.log("|---|---|---|---|");
for (const example of ["chat", "whiteboard"]) {
  const client = `examples/${example}/sdk/client.ts`;
  const checked = await size(`import { createClient } from "./${client}"; createClient("ws://h/ws");`);
  const trusted = await size(
    `import { createClient } from "ws-core-client"; createClient("ws://h/ws");`,
  );
  row(example, "with validation (generated `createClient`)", checked.minified, checked.gzip);
  row(example, "without (`createClient` of `ws-core-client`)", trusted.minified, trusted.gzip);
}

const chat = await load("chat");
const whiteboard = await load("whiteboard");
const points = Array.from({ length: 32 }, (_, i) => ({ x: i, y: 2 * i }));
const cases = [
  ["chat `chat`", chat.server.chat, { text: "hello, everyone in the room", user: "ann", room: "lobby" }],
  ["whiteboard `cursor`", whiteboard.server.cursor, { id: "c1", user: "ann", color: "#336699", x: 120, y: 80 }],
  ["whiteboard `stroke`, 32 points", whiteboard.server.stroke, { id: 7, user: "ann", color: "#336699", width: 3, points }],
];
console.log("\n| frame | checks per second | ns per frame | `JSON.parse` of the frame, ns |");
console.log("|---|---|---|---|");
for (const [name, check, data] of cases) {
  const text = JSON.stringify({ type: "x", data });
  const parses = rate(() => (JSON.parse(text), undefined), null);
  const checks = rate(check, data);
  row(name, Math.round(checks).toLocaleString("en"), (1e9 / checks).toFixed(0), (1e9 / parses).toFixed(0));
}
