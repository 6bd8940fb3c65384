import { execFileSync } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createApp } from "../api/app.js";
import type { InfluxConfig } from "../config/env.js";
import { silentLogger } from "../observe/logger.js";
import { createMetrics } from "../observe/metrics.js";
import { rebuildRollups } from "../rollup/rebuild.js";
import { createInfluxFleetStore } from "../storage/fleet-store.js";
import { createInfluxHealthStore } from "../storage/health-store.js";
import { createInflux, createPointWriter, ensureSchema } from "../storage/influx.js";
import { createInfluxIssueStore } from "../storage/issue-store.js";
import { createRollupCache } from "../storage/rollup-cache.js";
import type { Point } from "../storage/schema.js";
import { fleetHistory } from "./fleet-history.js";

// npm run bench:api -- [--devices 10000] [--days 30] [--requests 40]
// Builds a fleet's history in InfluxDB (once: the database is kept and reused while its size matches),
// computes its rollups (once, as the ingest's rollup runner would have while the history arrived), then
// asks the API in-process for the issues list, the fleet summary and a few others and reports latency.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "10000" },
    days: { type: "string", default: "30" },
    requests: { type: "string", default: "40" },
    rebuild: { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
const out = (line: string) => process.stdout.write(`${line}\n`);
if (values.help) {
  out("Usage: npm run bench:api -- [--devices 10000] [--days 30] [--requests 40] [--rebuild]");
  out(
    "Uses FIELDQ_BENCH_INFLUX_URL, or starts its own influxd with data in .fieldq/bench-influxdb (kept between runs).",
  );
  process.exit(0);
}
const devices = Number(values.devices);
const days = Number(values.days);
const requests = Number(values.requests);
const TOKEN = "bench-viewer-token";

async function query(url: string, db: string, q: string) {
  const response = await fetch(`${url}/query?${new URLSearchParams({ db, q })}`);
  return (await response.json()) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
}

/** A field of the marker point written once the history (end_ms) and its rollups (rolled_up) were complete. */
async function marker(url: string, db: string, field: "end_ms" | "rolled_up"): Promise<number | undefined> {
  const result = await query(url, db, `SELECT last("${field}") FROM "long"."bench_meta"`).catch(
    () => undefined,
  );
  const value = result?.results[0]?.series?.[0]?.values[0]?.[1];
  return typeof value === "number" ? value : undefined;
}

const markerPoint = (endMs: number, fields: Point["fields"]): Point => ({
  measurement: "bench_meta",
  rp: "long",
  tags: {},
  fields,
  timeNs: `${endMs}000000`,
});

/** What the ingest's rollup runner would have done while the history arrived. */
async function rollUp(config: InfluxConfig, endMs: number) {
  const write = createPointWriter(config, 60_000);
  const started = performance.now();
  let last = 0;
  const result = await rebuildRollups(
    createInflux(config),
    write,
    { fromMs: endMs - (days + 1) * 86_400_000, toMs: endMs },
    (done, total) => {
      if (done === total || performance.now() - last > 10_000) {
        last = performance.now();
        out(`  rollups: ${done}/${total} hours, ${((performance.now() - started) / 1000).toFixed(0)} s`);
      }
    },
  );
  await write([markerPoint(endMs, { rolled_up: 1 })]);
  out(
    `  rolled up ${result.hours} hours (${result.points.toLocaleString("en")} points) in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

async function build(config: InfluxConfig, endMs: number) {
  const write = createPointWriter(config, 60_000);
  const started = performance.now();
  let written = 0;
  let hour = 0;
  let pending: Promise<void>[] = [];
  for (const points of fleetHistory({ devices, days, endMs, seed: 1 })) {
    for (let i = 0; i < points.length; i += 5000) {
      pending.push(write(points.slice(i, i + 5000)));
      if (pending.length >= 4) {
        await Promise.all(pending);
        pending = [];
      }
    }
    written += points.length;
    if (++hour % 24 === 0) {
      const seconds = (performance.now() - started) / 1000;
      out(
        `  day ${hour / 24}/${days}: ${written.toLocaleString("en")} points, ${Math.round(written / seconds).toLocaleString("en")} points/s`,
      );
    }
  }
  await Promise.all(pending);
  await write([markerPoint(endMs, { end_ms: endMs, devices })]);
  out(
    `  built ${written.toLocaleString("en")} points in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
  return { p50: at(0.5), p95: at(0.95), max: sorted.at(-1) ?? 0 };
}

async function main() {
  let url = process.env.FIELDQ_BENCH_INFLUX_URL;
  if (!url) {
    await mkdir(".fieldq", { recursive: true });
    url = execFileSync("bash", ["scripts/influxd.sh", "start", ".fieldq/bench-influxdb"]).toString().trim();
  }
  const config: InfluxConfig = { url, database: `bench_api_${devices}x${days}d`, rawRetention: "90d" };
  const influx = createInflux(config);
  let endMs = values.rebuild ? undefined : await marker(url, config.database, "end_ms");
  if (endMs === undefined) {
    out(`building ${devices.toLocaleString("en")} devices × ${days} days in ${config.database} on ${url}`);
    await influx.dropDatabase(config.database);
    await ensureSchema(influx, config);
    endMs = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    await build(config, endMs);
  } else {
    out(
      `reusing ${config.database} on ${url} (history until ${new Date(endMs).toISOString()}; --rebuild to make it anew)`,
    );
  }
  if ((await marker(url, config.database, "rolled_up")) === undefined) {
    out("computing the rollups");
    await rollUp(config, endMs);
  }
  const rollups = createRollupCache(influx);
  const app = createApp({
    store: createInfluxFleetStore(influx),
    issues: createInfluxIssueStore(influx, { now: () => endMs, rollups }),
    health: createInfluxHealthStore(influx, { rollups }),
    tokens: new Map([[TOKEN, "viewer"]]),
    logger: silentLogger,
    metrics: createMetrics(),
    now: () => endMs,
  });
  const from = new Date(endMs - days * 86_400_000).toISOString();
  const to = new Date(endMs).toISOString();
  const targets = [
    `/api/v1/issues?from=${from}&to=${to}&sort=devices`,
    `/api/v1/fleet/summary?from=${from}&to=${to}&groupBy=model`,
    `/api/v1/devices?limit=100`,
    `/api/v1/faults?from=${from}&to=${to}&limit=100`,
  ];
  out(
    `${requests} requests each, after 3 to warm up (the first, with empty caches, shown apart); window ${days} days`,
  );
  for (const path of targets) {
    const timings: number[] = [];
    let coldMs = 0;
    let status = 0;
    for (let i = 0; i < requests + 3; i++) {
      const started = performance.now();
      const response = await app.request(path, { headers: { authorization: `Bearer ${TOKEN}` } });
      await response.arrayBuffer();
      status = response.status;
      if (i === 0) coldMs = performance.now() - started;
      if (i >= 3) timings.push(performance.now() - started);
    }
    const p = percentiles(timings);
    out(
      `  ${path.split("?")[0]?.padEnd(24)} HTTP ${status}   p50 ${p.p50.toFixed(0).padStart(5)} ms   p95 ${p.p95.toFixed(0).padStart(5)} ms   max ${p.max.toFixed(0).padStart(5)} ms   first ${coldMs.toFixed(0).padStart(5)} ms`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:api: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
