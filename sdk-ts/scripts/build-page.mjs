// Bundles each example's page (examples/NAME/web/app.ts, with the SDK and the generated protocol) into
// examples/NAME/static/app.js, which the example's binary embeds. `--check` fails when a committed bundle
// is not what the sources build to.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const check = process.argv.includes("--check");
let stale = false;

for (const example of ["chat", "whiteboard"]) {
  const entry = join(root, `examples/${example}/web/app.ts`);
  const out = join(root, `examples/${example}/static/app.js`);
  const header = `// Built from examples/${example}/web/app.ts by sdk-ts/scripts/build-page.mjs. Do not edit.\n`;
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    target: "es2020",
    write: false,
    legalComments: "none",
    logLevel: "warning",
    absWorkingDir: root,
    // The generated client imports the SDK by its package name; here it is the sibling source.
    alias: { "ws-core-client": join(root, "sdk-ts/src/index.ts") },
  });
  const bundled = header + result.outputFiles[0].text;
  if (!check) {
    writeFileSync(out, bundled);
    console.log(`wrote ${out} (${bundled.length} bytes)`);
    continue;
  }
  let current = "";
  try {
    current = readFileSync(out, "utf8");
  } catch {
    // Missing counts as stale.
  }
  if (current === bundled) {
    console.log(`${out} is up to date`);
  } else {
    console.error(`${out} is out of date: run \`npm run build:page\` in sdk-ts`);
    stale = true;
  }
}
if (stale) process.exit(1);
