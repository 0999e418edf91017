// Bundle the pages' scripts (every src/*.js whose name does not start with "_", each with
// what it imports, NiiVue included) into the Python package's static folder, one file each
// (src/viewer.js -> static/viewer.js). Modules shared by pages are named src/_*.js.
// Run by `npm run build`, which the package build runs (setup.py); the output is git-ignored.
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, "..", "src", "ioplan", "web", "static");
const entries = readdirSync(resolve(here, "src"))
  .filter((f) => f.endsWith(".js") && !f.startsWith("_"))
  .map((f) => resolve(here, "src", f));

await esbuild.build({
  entryPoints: entries,
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: false,
  target: "es2020",
  outdir,
  legalComments: "linked",
  logLevel: "warning",
});
console.log(`${entries.length} page scripts built into ${outdir}`);
