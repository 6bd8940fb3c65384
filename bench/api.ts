import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { InfluxConfig } from "../config/env.js";
import { WARM_UP_LIMIT_MS } from "../stack/start-stack.js";
import { createInflux, createPointWriter } from "../storage/influx.js";
import { findIds, type Target, targetKey, targets } from "./api-targets.js";
import { fleetDataSet } from "./harness.js";

// npm run bench:api -- [--devices 10000] [--days 30] [--requests 30]
// Builds a fleet's history in InfluxDB (once: the database is kept and reused while its size and the
// history's version match), computes its rollups (once, as the ingest's rollup runner would have while the
// history arrived), then asks the API in-process for every support and quality read of issue 10 and reports
// p50, p95 and the first request of each (on an app started as the API process starts it), then one JSON line.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "10000" },
    days: { type: "string", default: "30" },
    requests: { type: "string", default: "30" },
    warmup: { type: "string", default: "2" },
    rebuild: { type: "boolean", default: false },
    rollups: { type: "boolean", default: false },
    "build-only": { type: "boolean", default: false },
    "skip-cold": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
const out = (line: string) => process.stdout.write(`${line}\n`);
if (values.help) {
  out("Usage: npm run bench:api -- [--devices 10000] [--days 30] [--requests 30] [--warmup 2]");
  out("                             [--rebuild] [--rollups] [--build-only] [--skip-cold]");
  out("");
  out("  --devices, --days  size of the fleet history (database bench_api_<devices>x<days>d)");
  out("  --requests         measured rounds over every endpoint (after --warmup rounds)");
  out("  --rebuild          drop and build the data set even when a matching one exists");
  out("  --rollups          compute the rollups again (after the rollup code changed)");
  out("  --build-only       build the data set and its rollups, measure nothing");
  out("  --skip-cold        no cold first requests (each needs an app of its own: slow at 100,000 devices)");
  out("");
  out("Uses FIELDQ_BENCH_INFLUX_URL, or starts its own influxd with data in .fieldq/bench-influxdb (kept");
  out("between runs). Prints a table, the API process's memory, then one JSON line:");
  out('{"devices": N, "days": D, "endpoints": {"GET /api/v1/…": {"p50": ms, "p95": ms, "first": ms}}}');
  out("The 2 cores may be shared: compare figures within one run.");
  process.exit(0);
}
const devices = Number(values.devices);
const days = Number(values.days);
const requests = Number(values.requests);
const warmup = Number(values.warmup);
const TOKEN = "bench-viewer-token";

// ---- The API as its process composes it --------------------------------------------------------------
// As stack/start-stack.ts does (startFieldq, parts.api): the read services over one InfluxDB, warming in the
// background from the start, and the app over them. The clock is pinned to the history's end, so statuses
// and default windows mean what they meant then.

type BenchApp = {
  request(path: string, init?: RequestInit): Response | Promise<Response>;
  /** Resolves when the app's background warm-up is done. */
  ready?: Promise<unknown>;
  close?: () => Promise<void> | void;
};

async function createBenchApp(config: InfluxConfig, endMs: number): Promise<BenchApp> {
  const [{ createApp }, { silentLogger }, { createMetrics }, { createReadServices }] = await Promise.all([
    import("../api/app.js"),
    import("../observe/logger.js"),
    import("../observe/metrics.js"),
    import("../services/read-services.js"),
  ]);
  const influx = createInflux(config);
  const now = () => endMs;
  const read = createReadServices(influx, { write: createPointWriter(config), logger: silentLogger, now });
  const app = createApp({
    devices: read.devices,
    faults: read.faults,
    issues: read.issues,
    health: read.health,
    firmware: read.firmware,
    tokens: new Map([[TOKEN, "viewer"]]),
    logger: silentLogger,
    metrics: createMetrics(),
    now,
  });
  return { request: (path, init) => app.request(path, init), ready: read.warmed, close: read.close };
}
// -------------------------------------------------------------------------------------------------------

type Answer = { status: number; ms: number; bytes: number; items?: number; total?: number };

async function ask(app: BenchApp, path: string): Promise<Answer> {
  const started = performance.now();
  const response = await app.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await response.arrayBuffer();
  const ms = performance.now() - started;
  const answer: Answer = { status: response.status, ms, bytes: body.byteLength };
  try {
    const json = JSON.parse(Buffer.from(body).toString("utf8")) as { items?: unknown[]; total?: unknown };
    if (Array.isArray(json.items)) answer.items = json.items.length;
    if (typeof json.total === "number") answer.total = json.total;
  } catch {
    // Not JSON: status and size say enough.
  }
  return answer;
}

function percentiles(samples: readonly number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
  return { p50: at(0.5), p95: at(0.95), max: sorted.at(-1) ?? 0 };
}

/** The collector, reached without --expose-gc, so the memory figures are what the app keeps. */
function collectGarbage() {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as (() => void) | undefined;
  gc?.();
}

async function measure(config: InfluxConfig, endMs: number) {
  const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
  // Ids come from an app of their own, so the measured apps start with empty caches.
  const scout = await createBenchApp(config, endMs);
  const ids = await findIds(
    async (path) => {
      const answer = await scout.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
      return { status: answer.status, body: await answer.json().catch(() => undefined) };
    },
    { devices, days, endMs },
  );
  await scout.close?.();
  const list = targets({ devices, days, endMs, ids });
  out(`ids: device ${ids.device} (serial ${ids.serial}), largest issue ${ids.issue}`);

  out(`first requests of ${list.length} endpoints, each on apps of their own`);
  // First requests: each on an app started as the API process starts it (it listens once warm, or after
  // WARM_UP_LIMIT_MS), and again on one asked at once, its warm-up still running ("cold"). Each app's warm-up
  // ends before the next app is made.
  const first = new Map<Target, Answer>();
  const coldFirst = new Map<Target, Answer>();
  for (const target of list) {
    const started = await createBenchApp(config, endMs);
    await Promise.race([
      started.ready,
      new Promise((resolve) => setTimeout(resolve, WARM_UP_LIMIT_MS).unref()),
    ]);
    first.set(target, await ask(started, target.path));
    await started.ready;
    await started.close?.();
    if (values["skip-cold"]) continue;
    const cold = await createBenchApp(config, endMs);
    coldFirst.set(target, await ask(cold, target.path));
    await cold.ready;
    await cold.close?.();
  }

  const createdAt = performance.now();
  const app = await createBenchApp(config, endMs);
  const createMs = performance.now() - createdAt;
  let readyMs: number | undefined;
  if (app.ready) {
    await app.ready;
    readyMs = performance.now() - createdAt;
  }
  out(
    `app created in ${createMs.toFixed(0)} ms${readyMs === undefined ? " (no ready promise)" : `, ready after ${readyMs.toFixed(0)} ms`}; ${warmup} warm-up and ${requests} measured rounds over ${list.length} endpoints, interleaved`,
  );
  for (let round = 0; round < warmup; round++) for (const target of list) await ask(app, target.path);
  const samples = new Map<Target, number[]>(list.map((t) => [t, []]));
  const last = new Map<Target, Answer>();
  const roundsStarted = performance.now();
  for (let round = 0; round < requests; round++) {
    if (round > 0 && round % 5 === 0)
      out(`  round ${round}/${requests}, ${((performance.now() - roundsStarted) / 1000).toFixed(0)} s`);
    for (const target of list) {
      const answer = await ask(app, target.path);
      samples.get(target)?.push(answer.ms);
      last.set(target, answer);
    }
  }

  const rows = list.map((target) => {
    const p = percentiles(samples.get(target) ?? []);
    return {
      target,
      ...p,
      first: first.get(target)?.ms ?? 0,
      coldFirst: coldFirst.get(target)?.ms,
      answer: last.get(target),
    };
  });
  const fixed = (n: number) => n.toFixed(n < 10 ? 1 : 0).padStart(6);
  out("");
  out(
    `${"endpoint".padEnd(18)} ${"HTTP".padStart(4)} ${"items/total".padStart(12)} ${"bytes".padStart(9)} ${"p50 ms".padStart(6)} ${"p95 ms".padStart(6)} ${"max ms".padStart(6)} ${"first".padStart(6)} ${"cold 1st".padStart(8)}`,
  );
  for (const row of rows) {
    const a = row.answer;
    const counted = a?.items === undefined ? "" : `${a.items}/${a.total ?? "-"}`;
    const miss = row.p95 >= 100 || row.first >= 1000 ? "  ✗" : "";
    out(
      `${row.target.name.padEnd(18)} ${String(a?.status ?? "").padStart(4)} ${counted.padStart(12)} ${String(a?.bytes ?? "").padStart(9)} ${fixed(row.p50)} ${fixed(row.p95)} ${fixed(row.max)} ${fixed(row.first)} ${(row.coldFirst === undefined ? "-" : fixed(row.coldFirst)).padStart(8)}${miss}`,
    );
  }
  out(
    "(first: on an app started as the API process starts it, after its warm-up; cold 1st: asked at once, the warm-up running; ✗: p95 ≥ 100 ms or first ≥ 1 s)",
  );
  for (const row of rows) out(`  ${row.target.name.padEnd(18)} ${targetKey(row.target)}`);
  collectGarbage();
  const memory = process.memoryUsage();
  out(
    `memory after the run: heap used ${mib(memory.heapUsed)}, heap total ${mib(memory.heapTotal)}, RSS ${mib(memory.rss)}, external ${mib(memory.external)} (this process: ${(values["skip-cold"] ? 1 : 2) * list.length + 2} apps made, one kept)`,
  );
  const round3 = (n: number) => Math.round(n * 1000) / 1000;
  const endpoints = Object.fromEntries(
    rows.map((row) => [
      targetKey(row.target),
      { p50: round3(row.p50), p95: round3(row.p95), first: round3(row.first) },
    ]),
  );
  out(JSON.stringify({ devices, days, endpoints }));
}

async function main() {
  const { config, endMs } = await fleetDataSet({
    devices,
    days,
    rebuild: values.rebuild,
    rollups: values.rollups,
  });
  if (values["build-only"]) return;
  await measure(config, endMs);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:api: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
