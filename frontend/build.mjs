// Bundle the viewer (src/viewer.js + NiiVue) into the Python package's static folder.
// Run by `npm run build`, which the package build runs (setup.py); the output is git-ignored.
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, "..", "src", "ioplan", "web", "static");

await esbuild.build({
  entryPoints: [resolve(here, "src", "viewer.js")],
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: false,
  target: "es2020",
  outfile: resolve(outdir, "viewer.js"),
  legalComments: "linked",
  logLevel: "warning",
});
console.log(`viewer built into ${outdir}`);
