import { execFileSync, fork } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { startBroker } from "../broker/start-broker.js";
import { loadConfig } from "../config/env.js";

const defaultConfig = () => {
  const loaded = loadConfig({});
  if (!loaded.ok) throw new Error(loaded.problems.join("; "));
  return loaded.config;
};

import { runBackfill } from "../device-sim/backfill.js";
import { grouped } from "../device-sim/progress.js";
import { runSim } from "../device-sim/run-sim.js";
import { type FleetPlan, plainPlan } from "../device-sim/schedule.js";
import { decodeMessage } from "../ingest/decode.js";
import { silentLogger } from "../observe/logger.js";
import { createMetrics } from "../observe/metrics.js";
import { startIngestBroker } from "../stack/start-stack.js";

// npm run bench:sim -- [--devices 10000] [--seconds 30] [--backfill-devices 2000] [--backfill-hours 24]
// Live: a fleet of plain devices, each on its own MQTT connection, against fieldq's broker (auth and ACL,
// messages decoded and acknowledged but not stored) in a child process: the two ends of 10,000 connections
// would pass this machine's 20,000 open files in one process. Measures connect time, memory per device
// (RSS and heap, after a GC) and messages per second. Backfill: a fleet's history through a pool of
// connections, to the same broker (what the simulator can send) and to fieldq with its journal and
// InfluxDB (what the pipeline takes; FIELDQ_BENCH_INFLUX_URL, or a private influxd is started).

const SECRET = "bench-secret-0123456789abcdef";
const MAX_PAYLOAD = 65_536;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

type ChildStats = { connected: number; received: number };

/** The child: fieldq's broker on port 0 with an ingest that only decodes. */
async function brokerChild() {
  let received = 0;
  const broker = await startBroker({
    listen: { host: "127.0.0.1", port: 0 },
    // One address holds the whole fleet here; the per-device rate stays fieldq's default.
    limits: { ...defaultConfig().mqtt.limits, maxConnections: 20_000, maxConnectionsPerIp: 20_000 },
    deviceSecret: SECRET,
    maxPayloadBytes: MAX_PAYLOAD,
    logger: silentLogger,
    metrics: createMetrics(),
    receive: async (_deviceId, topic, payload) => {
      received += 1;
      const decoded = decodeMessage(topic, payload, MAX_PAYLOAD);
      return decoded.ok ? { kind: "accepted" } : { kind: "refused", ...decoded.refusal };
    },
    presence: async () => {},
  });
  process.send?.({ port: broker.port });
  process.on("message", async (message) => {
    if (message === "stats") {
      process.send?.({ connected: broker.connectedDevices(), received } satisfies ChildStats);
    } else if (message === "close") {
      await broker.close();
      process.exit(0);
    }
  });
}

function startChildBroker() {
  const child = fork(process.argv[1] ?? "bench/sim.ts", ["--broker-child"], {
    execArgv: process.execArgv,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const next = async <T>() => (await once(child, "message"))[0] as T;
  return {
    port: next<{ port: number }>().then((m) => m.port),
    async stats(): Promise<ChildStats> {
      const answer = next<ChildStats>();
      child.send("stats");
      return answer;
    },
    async close() {
      child.send("close");
      await once(child, "exit");
    },
  };
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();
const mb = (bytes: number) => (bytes / 1_048_576).toFixed(0);
const kb = (bytes: number) => (bytes / 1024).toFixed(1);
const out = (line: string) => process.stdout.write(`${line}\n`);
const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);

async function live(
  url: string,
  child: ReturnType<typeof startChildBroker>,
  devices: number,
  seconds: number,
) {
  // One-minute cadence at 12×: every device reports every 5 s; the scenario ends at the present.
  const speed = 12;
  const now = Date.now();
  const plan: FleetPlan = {
    ...plainPlan({ devices, seed: 1, startMs: now - 11 * HOUR, endMs: now + HOUR, cadenceMs: MINUTE }),
    deviceOptions: { offlineSpellsPerWeek: 0 },
  };
  gc();
  const before = process.memoryUsage();
  const started = performance.now();
  const sim = await runSim({
    brokerUrl: url,
    secret: SECRET,
    plan,
    seed: 1,
    speed,
    logger: silentLogger,
    concurrency: 100,
  });
  const connectS = (performance.now() - started) / 1000;
  const brokerSide = await child.stats();
  out(
    `live: ${grouped(devices)} devices connected in ${connectS.toFixed(1)} s (${grouped(devices / connectS)}/s, 100 at a time); the broker counts ${grouped(brokerSide.connected)}`,
  );

  const lag = monitorEventLoopDelay({ resolution: 10 });
  await new Promise((resolve) => setTimeout(resolve, 5_000));
  lag.enable();
  const from = { published: total(sim.stats().published), ticks: sim.stats().ticks, at: performance.now() };
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const stats = sim.stats();
  const windowS = (performance.now() - from.at) / 1000;
  lag.disable();
  gc();
  const after = process.memoryUsage();
  out(
    `      memory per device (connection and model): RSS ${kb((after.rss - before.rss) / devices)} KiB, heap ${kb((after.heapUsed - before.heapUsed) / devices)} KiB  (RSS ${mb(after.rss)} MiB in all)`,
  );
  out(
    `      over ${windowS.toFixed(0)} s: ${grouped((total(stats.published) - from.published) / windowS)} msg/s acknowledged, ${grouped((stats.ticks - from.ticks) / windowS)} ticks/s (expected ${grouped(devices / 5)}), event-loop delay p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms, failed ${stats.failed}`,
  );
  const stopping = performance.now();
  await sim.stop();
  out(`      stopped (a goodbye each) in ${((performance.now() - stopping) / 1000).toFixed(1)} s`);
}

async function backfill(url: string, label: string, devices: number, hours: number, pool: number) {
  const now = Date.now();
  const plan: FleetPlan = plainPlan({
    devices,
    seed: 2,
    startMs: now - hours * HOUR,
    endMs: now,
    cadenceMs: 5 * MINUTE,
  });
  let peakRss = 0;
  const watch = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 200);
  const started = performance.now();
  const stats = await runBackfill({
    brokerUrl: url,
    secret: SECRET,
    plan,
    seed: 2,
    logger: silentLogger,
    pool,
  }).finally(() => clearInterval(watch));
  const seconds = (performance.now() - started) / 1000;
  const messages = total(stats.published);
  out(
    `backfill ${label}: ${grouped(stats.flushed)} devices × ${hours} h in ${seconds.toFixed(1)} s: ${grouped(messages / seconds)} msg/s, ${grouped(stats.samples / seconds)} samples/s (${grouped(stats.samples)} samples in ${grouped(messages)} messages), pool ${pool}, peak RSS ${mb(peakRss)} MiB, failed ${stats.failed}`,
  );
  return { samples: stats.samples, seconds };
}

async function throughFieldq(devices: number, hours: number, pool: number) {
  const influxDir = await mkdtemp(join(tmpdir(), "fieldq-bench-influx-"));
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-bench-data-"));
  const influxUrl =
    process.env.FIELDQ_BENCH_INFLUX_URL ??
    execFileSync("bash", ["scripts/influxd.sh", "start", influxDir]).toString().trim();
  const database = `bench_sim_${Date.now()}`;
  try {
    const loaded = loadConfig({
      FIELDQ_MQTT_HOST: "127.0.0.1",
      FIELDQ_MQTT_PORT: "0",
      FIELDQ_INFLUX_URL: influxUrl,
      FIELDQ_INFLUX_DB: database,
      FIELDQ_DEVICE_SECRET: SECRET,
      FIELDQ_DATA_DIR: dataDir,
      FIELDQ_LOG_LEVEL: "silent",
      FIELDQ_LOG_FORMAT: "json",
    });
    if (!loaded.ok) throw new Error(loaded.problems.join("; "));
    const stack = await startIngestBroker(loaded.config, { logger: silentLogger });
    try {
      const url = `mqtt://127.0.0.1:${stack.mqttPort}`;
      const sent = await backfill(url, "into fieldq (validated, journaled)", devices, hours, pool);
      const draining = performance.now();
      while (stack.journal.backlog.entries > 0) await new Promise((resolve) => setTimeout(resolve, 50));
      const drainS = (performance.now() - draining) / 1000;
      out(
        `      into InfluxDB: journal drained ${drainS.toFixed(1)} s after the last PUBACK: ${grouped(sent.samples / (sent.seconds + drainS))} samples/s end to end`,
      );
    } finally {
      await stack.close();
    }
  } finally {
    await fetch(`${influxUrl}/query`, {
      method: "POST",
      body: new URLSearchParams({ q: `DROP DATABASE "${database}"` }),
    }).catch(() => {});
    if (!process.env.FIELDQ_BENCH_INFLUX_URL) execFileSync("bash", ["scripts/influxd.sh", "stop", influxDir]);
    await rm(influxDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      devices: { type: "string", default: "10000" },
      seconds: { type: "string", default: "30" },
      "backfill-devices": { type: "string", default: "2000" },
      "backfill-hours": { type: "string", default: "24" },
      pool: { type: "string", default: "50" },
      "broker-child": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values["broker-child"]) return brokerChild();
  if (values.help) {
    out(
      "Usage: npm run bench:sim -- [--devices 10000] [--seconds 30] [--backfill-devices 2000] [--backfill-hours 24] [--pool 50]",
    );
    return;
  }
  if (globalThis.gc === undefined) out("(no --expose-gc: memory figures include garbage)");
  const child = startChildBroker();
  const url = `mqtt://127.0.0.1:${await child.port}`;
  const [devices, hours, pool] = [values["backfill-devices"], values["backfill-hours"], values.pool].map(
    Number,
  );
  try {
    await live(url, child, Number(values.devices), Number(values.seconds));
    await backfill(url, "to the broker alone", devices ?? 0, hours ?? 0, pool ?? 0);
  } finally {
    await child.close();
  }
  await throughFieldq(devices ?? 0, hours ?? 0, pool ?? 0);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:sim: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
