// The npm package as a user gets it: `npm pack` (with its README), installed into a fresh project, imported by name (and its
// `/react` entry, beside React), its types resolved by `tsc` (a misuse of the client or of a hook is a type
// error there too), and loaded by Node; and installed by path from a fresh clone, where nothing is built.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { root } from "./support.js";

const sdk = join(root, "sdk-ts");
const tsc = join(sdk, "node_modules", "typescript", "bin", "tsc");

test("the packed package installs into a fresh project, its types resolve and it loads", () => {
  const dir = mkdtempSync(join(tmpdir(), "ws-core-client-"));
  try {
    execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: sdk, stdio: "pipe" });
    const tarball = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    assert.ok(tarball, "npm pack wrote a tarball");
    const files = execFileSync("tar", ["-tzf", join(dir, tarball)], { encoding: "utf8" }).split("\n");
    for (const file of ["package/README.md", "package/dist/index.js", "package/dist/react.d.ts"]) {
      assert.ok(files.includes(file), `${file} in the package`);
    }
    const project = join(dir, "app");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    // React too, linked from the repository's own install (offline, npm cannot resolve a name whose
    // metadata it never fetched): the `/react` entry needs its peer.
    const modules = join(sdk, "node_modules");
    execFileSync(
      "npm",
      [
        "install", "--offline", "--no-audit", "--no-fund", "--silent", join(dir, tarball),
        join(modules, "react"), join(modules, "@types", "react"),
      ],
      { cwd: project, stdio: "pipe" },
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", strict: true, noEmit: true, lib: ["ES2022", "DOM"] },
        include: ["main.ts"],
      }),
    );
    writeFileSync(
      join(project, "main.ts"),
      `import { createClient, closeCodePolicy, WsRequestError, type WsClient } from "ws-core-client";
import { createWsReact } from "ws-core-client/react";
interface Protocol {
  client: { chat: { data: { text: string }; reply: never }; whoami: { data: null; reply: { user: string } } };
  server: { chat: { data: { text: string; user: string }; reply: never } };
}
export function start(url: string): WsClient<Protocol> {
  const client = createClient<Protocol>(url, { reconnect: { onClose: closeCodePolicy } });
  client.send("chat", { text: "hi" });
  // @ts-expect-error: not a message type of the protocol
  client.send("nope", {});
  // @ts-expect-error: wrong payload
  client.send("chat", { text: 1 });
  client.on("chat", (data) => data.user.toUpperCase());
  void client.request("whoami").then((me) => me.user.length);
  return client;
}
export const isRequestError = (e: unknown): boolean => e instanceof WsRequestError;
const hooks = createWsReact<Protocol>();
export function useLastChat(): string | undefined {
  // @ts-expect-error: not a server message of the protocol
  hooks.useLastMessage("whoami");
  return hooks.useLastMessage("chat")?.data.user;
}
`,
    );
    execFileSync(process.execPath, [tsc, "-p", project], { cwd: project, stdio: "pipe" });
    const loaded = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        'const m = await import("ws-core-client"); const r = await import("ws-core-client/react"); console.log(typeof m.createClient, typeof m.closeCodePolicy, typeof r.createWsReact);',
      ],
      { cwd: project, encoding: "utf8" },
    );
    assert.equal(loaded.trim(), "function function function");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("installed by path from a fresh clone, the package builds itself and loads", () => {
  const dir = mkdtempSync(join(tmpdir(), "ws-core-client-"));
  try {
    // What a clone holds of sdk-ts: no node_modules, no dist.
    const clone = join(dir, "sdk-ts");
    for (const entry of ["package.json", "package-lock.json", "tsconfig.json", "README.md", "src", "scripts"]) {
      cpSync(join(sdk, entry), join(clone, entry), { recursive: true });
    }
    const project = join(dir, "app");
    mkdirSync(project);
    writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    // Offline: the build tools come from npm's cache, filled by this repository's own install.
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", "--silent", clone], {
      cwd: project,
      stdio: "pipe",
    });
    assert.ok(existsSync(join(clone, "dist", "index.js")), "npm's prepare step built dist/");
    const loaded = execFileSync(
      process.execPath,
      ["--input-type=module", "-e", 'const m = await import("ws-core-client"); console.log(typeof m.createClient);'],
      { cwd: project, encoding: "utf8" },
    );
    assert.equal(loaded.trim(), "function");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
