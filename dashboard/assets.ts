import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

// The browser's code and styles: client/main.ts (uPlot, the charts, live updates, local times) and
// client/app.css, bundled and minified by esbuild in memory when the server starts, so `npm start`, `npm ci`
// and `npm test` need no build step and nothing built is committed. Names carry a content hash: a browser
// keeps them for a year and a new build is a new name.

export type Asset = { name: string; body: Uint8Array; type: string; gzipBytes: number };
export type Assets = { script: Asset; style: Asset; byName: ReadonlyMap<string, Asset> };

const CLIENT = fileURLToPath(new URL("./client/", import.meta.url));

export async function buildAssets(): Promise<Assets> {
  const result = await build({
    entryPoints: { app: `${CLIENT}main.ts`, style: `${CLIENT}app.css` },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2020", "chrome100", "firefox100", "safari15"],
    write: false,
    outdir: "/assets",
    entryNames: "[name]-[hash]",
    legalComments: "none",
    logLevel: "silent",
  });
  const byName = new Map<string, Asset>();
  for (const file of result.outputFiles) {
    const name = file.path.slice(file.path.lastIndexOf("/") + 1);
    const type = name.endsWith(".css") ? "text/css; charset=utf-8" : "text/javascript; charset=utf-8";
    byName.set(name, { name, body: file.contents, type, gzipBytes: gzipSync(file.contents).length });
  }
  const find = (suffix: string) => {
    const asset = [...byName.values()].find((a) => a.name.endsWith(suffix));
    if (asset === undefined) throw new Error(`the dashboard's build made no ${suffix} file`);
    return asset;
  };
  return { script: find(".js"), style: find(".css"), byName };
}
