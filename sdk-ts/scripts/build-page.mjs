// Bundles the chat page (examples/chat/web/app.ts, with the SDK and the generated protocol) into
// examples/chat/static/app.js, which the chat binary embeds. `--check` fails when the committed bundle is
// not what the sources build to.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const entry = join(root, "examples/chat/web/app.ts");
const out = join(root, "examples/chat/static/app.js");
const header = "// Built from examples/chat/web/app.ts by sdk-ts/scripts/build-page.mjs. Do not edit.\n";

const result = await build({
  entryPoints: [entry],
  bundle: true,
  format: "esm",
  target: "es2020",
  write: false,
  legalComments: "none",
  logLevel: "warning",
  absWorkingDir: root,
});
const bundled = header + result.outputFiles[0].text;

if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(out, "utf8");
  } catch {
    // Missing counts as stale.
  }
  if (current !== bundled) {
    console.error(`${out} is out of date: run \`npm run build:page\` in sdk-ts`);
    process.exit(1);
  }
  console.log("page bundle is up to date");
} else {
  writeFileSync(out, bundled);
  console.log(`wrote ${out} (${bundled.length} bytes)`);
}
