import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";

// tsx bench/profile-summary.ts FILE.cpuprofile|DIR [--top 25]
// Given a folder (node --cpu-prof-dir), it reads its main thread's profile: CPU.<date>.<time>.<pid>.0.<n>
// (thread 0; the others are worker threads such as tsx's module loader).
// A .cpuprofile (node --cpu-prof) as text: the top functions by self and by total time, the same by folder
// (this repository's folders, node_modules/<package>, node: internals, V8's (garbage collector) ...), and
// where a sample's time goes by part of the write path: each sample is charged to the innermost frame on its
// stack that belongs to a named part (so JSON.stringify called from the journal is the journal's).
// Only the main thread is sampled: LevelDB's fsync and InfluxDB's own work run elsewhere and show as idle.

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { top: { type: "string", default: "25" }, help: { type: "boolean", short: "h" } },
});
if (values.help || positionals.length === 0) {
  process.stdout.write("Usage: tsx bench/profile-summary.ts FILE.cpuprofile|DIR [--top 25]\n");
  process.exit(values.help ? 0 : 1);
}
const top = Number(values.top);

type CallFrame = { functionName: string; url: string; lineNumber: number; columnNumber: number };
type ProfileNode = { id: number; callFrame: CallFrame; children?: number[] };
type Profile = {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
};

const root = process.cwd();

/** A frame's file, relative to the repository when it is in it. */
function fileOf(url: string): string {
  if (url === "") return "";
  let path = url.startsWith("file://") ? decodeURIComponent(new URL(url).pathname) : url;
  if (path.startsWith(`${root}/`)) path = path.slice(root.length + 1);
  return path;
}

/** A file's folder: node_modules/<package>, the repository's top folder, node:<module>, or V8's name. */
function folderOf(frame: CallFrame): string {
  const file = fileOf(frame.url);
  if (file === "") return frame.functionName.startsWith("(") ? frame.functionName : "(native)";
  if (file.startsWith("node:")) return file.startsWith("node:internal") ? "node:internal" : file;
  const nm = file.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const rest = file.slice(nm + "node_modules/".length).split("/");
    return `node_modules/${rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const slash = file.indexOf("/");
  return slash < 0 ? file : `${file.slice(0, slash)}/`;
}

const nameOf = (frame: CallFrame) => {
  const file = fileOf(frame.url);
  // Code tsx compiled reports line 0 for every function: then the file alone.
  const line = frame.lineNumber > 0 ? `:${frame.lineNumber + 1}` : "";
  const where = file === "" ? "" : ` ${file.replace(/^.*node_modules\//, "")}${line}`;
  return `${frame.functionName || "(anonymous)"}${where}`;
};

/** The write path's parts, matched on a frame's file (and V8's own names); first match wins. */
const PARTS: [part: string, test: (file: string, frame: CallFrame) => boolean][] = [
  ["GC", (_f, fr) => fr.functionName === "(garbage collector)"],
  ["idle (waiting: fsync, network, InfluxDB)", (_f, fr) => fr.functionName === "(idle)"],
  ["line protocol (storage/line-protocol.ts)", (f) => f.endsWith("storage/line-protocol.ts")],
  [
    "InfluxDB HTTP (storage/influx.ts, fetch/undici)",
    (f) => f.endsWith("storage/influx.ts") || /undici|node:internal\/deps\/undici/.test(f),
  ],
  ["writer batching (ingest/writer.ts)", (f) => f.endsWith("ingest/writer.ts")],
  ["journal (ingest/journal.ts)", (f) => f.endsWith("ingest/journal.ts")],
  [
    "LevelDB (classic-level, abstract-level)",
    (f) => /node_modules\/(classic-level|abstract-level|level-|module-error|maybe-combine)/.test(f),
  ],
  [
    "decode + zod (ingest/decode.ts, zod)",
    (f) => f.endsWith("ingest/decode.ts") || f.includes("node_modules/zod/"),
  ],
  ["points (ingest/to-points.ts)", (f) => f.endsWith("ingest/to-points.ts")],
  ["device state (ingest/device-state*.ts)", (f) => /ingest\/device-state/.test(f)],
  ["cardinality guard", (f) => f.endsWith("ingest/cardinality.ts")],
  ["ingest step (ingest/ingest.ts)", (f) => f.endsWith("ingest/ingest.ts")],
  ["metrics (prom-client)", (f) => f.includes("node_modules/prom-client/") || f.startsWith("observe/")],
  ["rollups (rollup/)", (f) => f.startsWith("rollup/")],
  ["fieldq broker (broker/)", (f) => f.startsWith("broker/")],
  ["mqtt parsing/writing (mqtt-packet)", (f) => f.includes("node_modules/mqtt-packet/")],
  [
    "aedes (+ mqemitter, persistence)",
    (f) => /node_modules\/(aedes|mqemitter|qlobber|fastfall|fastparallel|fastseries|reusify)/.test(f),
  ],
  ["streams and sockets (node:)", (f) => /^node:(internal\/)?(streams?|net|stream_base|buffer)/.test(f)],
];

function partOf(stack: CallFrame[]): string {
  for (const frame of stack) {
    const file = fileOf(frame.url);
    for (const [part, test] of PARTS) if (test(file, frame)) return part;
  }
  const leaf = stack[0];
  return leaf ? `other: ${folderOf(leaf)}` : "other";
}

/** The file, or the folder's main-thread profile (thread id 0 in node's default name). */
async function profileFile(path: string): Promise<string> {
  if (!(await stat(path)).isDirectory()) return path;
  const names = (await readdir(path)).filter((n) => n.endsWith(".cpuprofile"));
  const main = names.find((n) => n.split(".").at(-3) === "0");
  if (main === undefined) throw new Error(`no main-thread .cpuprofile in ${path}`);
  return join(path, main);
}

const file = await profileFile(positionals[0] as string);
const profile = JSON.parse(await readFile(file, "utf8")) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** Frames of the node's stack, innermost first. */
const stacks = new Map<number, CallFrame[]>();
function stackOf(id: number): CallFrame[] {
  const known = stacks.get(id);
  if (known) return known;
  const frames: CallFrame[] = [];
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at)?.callFrame;
    if (frame && frame.functionName !== "(root)") frames.push(frame);
  }
  stacks.set(id, frames);
  return frames;
}

const selfByFn = new Map<string, number>();
const totalByFn = new Map<string, number>();
const selfByFolder = new Map<string, number>();
const totalByFolder = new Map<string, number>();
const byPart = new Map<string, number>();
const add = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
let all = 0;
profile.samples.forEach((id, i) => {
  const us = profile.timeDeltas[i] ?? 0;
  const stack = stackOf(id);
  all += us;
  const leaf = stack[0];
  if (!leaf) return;
  add(selfByFn, nameOf(leaf), us);
  add(selfByFolder, folderOf(leaf), us);
  // Total time counts a function (or folder) once per sample however often it recurs on the stack.
  for (const name of new Set(stack.map(nameOf))) add(totalByFn, name, us);
  for (const folder of new Set(stack.map(folderOf))) add(totalByFolder, folder, us);
  add(byPart, partOf(stack), us);
});

const idle = byPart.get("idle (waiting: fsync, network, InfluxDB)") ?? 0;
const busy = all - idle;
const out = (line: string) => process.stdout.write(`${line}\n`);
process.stdout.on("error", () => process.exit(0)); // piped into head
const pct = (us: number, of: number) => `${((100 * us) / of).toFixed(1).padStart(5)}%`;
function table(title: string, map: Map<string, number>, n: number, of = busy) {
  out(`\n${title}`);
  for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n))
    out(`  ${(us / 1000).toFixed(0).padStart(8)} ms ${pct(us, of)}  ${key}`);
}

out(
  `${file}: ${(all / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (not idle), ${profile.samples.length} samples; percentages of busy time`,
);
table(
  "Where the time goes, by part (innermost named frame; % of all sampled time)",
  byPart,
  PARTS.length + 10,
  all,
);
table(`Top ${top} functions by self time`, selfByFn, top);
table(`Top ${top} functions by total time`, totalByFn, top);
table("Folders by self time", selfByFolder, top);
table("Folders by total time", totalByFolder, top);
