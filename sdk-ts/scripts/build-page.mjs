// Bundles each example's page (examples/NAME/web/app.ts, with the SDK and the generated protocol) into
// examples/NAME/static/app.js, and the chat's React page (web/react/app.tsx) into static/react.js, which
// the examples' binaries embed. `--check` fails when a committed bundle
// is not what the sources build to.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const check = process.argv.includes("--check");
let stale = false;

const pages = [
  { source: "examples/chat/web/app.ts", out: "examples/chat/static/app.js" },
  { source: "examples/whiteboard/web/app.ts", out: "examples/whiteboard/static/app.js" },
  // React and ReactDOM come along: minified, in their production build.
  { source: "examples/chat/web/react/app.tsx", out: "examples/chat/static/react.js", react: true },
];

for (const page of pages) {
  const entry = join(root, page.source);
  const out = join(root, page.out);
  const header = `// Built from ${page.source} by sdk-ts/scripts/build-page.mjs. Do not edit.\n`;
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
    alias: {
      "ws-core-client/react": join(root, "sdk-ts/src/react.ts"),
      "ws-core-client": join(root, "sdk-ts/src/index.ts"),
    },
    // The pages live outside sdk-ts: React is found in its node_modules.
    nodePaths: [join(root, "sdk-ts/node_modules")],
    ...(page.react
      ? { jsx: "automatic", minify: true, define: { "process.env.NODE_ENV": '"production"' } }
      : {}),
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
