// Builds `dist/`, the package's entry points, whenever npm prepares the package: `npm install` inside
// `sdk-ts`, `npm pack`, and `npm install <path to sdk-ts>` from another project, which runs this in a
// fresh clone where the compiler is not installed yet — so it installs the locked build tools first.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL("..", import.meta.url));
const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
if (!existsSync(tsc)) {
  // `--ignore-scripts`: this script is one of them. npm hands its own settings (`--offline`, the
  // registry) down through the environment.
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  execFileSync(npm, ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--silent"], { cwd: here, stdio: "inherit" });
}
execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: here, stdio: "inherit" });
