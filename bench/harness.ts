import { execFileSync, fork } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Aedes } from "aedes";
import { type Config, type InfluxConfig, loadConfig } from "../config/env.js";
import { DAY_MS, floorHour } from "../contract/time.js";
import { createLogger, silentLogger } from "../observe/logger.js";
import { createMetrics } from "../observe/metrics.js";
import { startIngestBroker } from "../stack/start-stack.js";
import { createInflux, createPointWriter, ensureSchema } from "../storage/influx.js";
import type { Point } from "../storage/schema.js";
import { fleetHistory, HISTORY_VERSION } from "./fleet-history.js";

// What bench:fairness, fuzz and soak share: an InfluxDB (FIELDQ_BENCH_INFLUX_URL, or a private influxd),
// a config on loopback and port 0, fieldq's broker + ingest in a child process (so its memory and its
// crashes are its own), and MQTT packets written by hand, for what a well-behaved client cannot send.
// What bench:api and bench:dashboard share: a fleet's stored history, built once and kept (fleetDataSet).

export const BENCH_SECRET = "bench-secret-0123456789abcdef";
export const out = (line: string) => process.stdout.write(`${line}\n`);
export const mib = (bytes: number) => (bytes / 1_048_576).toFixed(1);
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const quantile = (sorted: readonly number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;

export type BenchInflux = { url: string; stop(): Promise<void> };

export async function benchInflux(): Promise<BenchInflux> {
  const shared = process.env.FIELDQ_BENCH_INFLUX_URL;
  if (shared) return { url: shared, stop: async () => {} };
  const dir = await mkdtemp(join(tmpdir(), "fieldq-bench-influx-"));
  const url = execFileSync("bash", ["scripts/influxd.sh", "start", dir]).toString().trim();
  return {
    url,
    async stop() {
      execFileSync("bash", ["scripts/influxd.sh", "stop", dir]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A config on loopback and port 0; `env` overrides (limits) win. */
export function benchConfig(env: NodeJS.ProcessEnv): Config {
  const loaded = loadConfig({
    FIELDQ_MQTT_HOST: "127.0.0.1",
    FIELDQ_MQTT_PORT: "0",
    FIELDQ_HTTP_HOST: "127.0.0.1",
    FIELDQ_HTTP_PORT: "0",
    FIELDQ_DEVICE_SECRET: BENCH_SECRET,
    FIELDQ_LOG_LEVEL: "silent",
    FIELDQ_LOG_FORMAT: "json",
    ...env,
  });
  if (!loaded.ok) throw new Error(loaded.problems.join("; "));
  return loaded.config;
}

type InfluxSeries = { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] };

/** Rows of an InfluxQL query, read in chunks so no row limit cuts them short. */
export async function influxQuery(url: string, database: string, q: string): Promise<InfluxSeries[]> {
  const response = await fetch(`${url}/query`, {
    method: "POST",
    body: new URLSearchParams({ db: database, q, epoch: "ms", chunked: "true", chunk_size: "10000" }),
  });
  const series: InfluxSeries[] = [];
  for (const line of (await response.text()).split("\n")) {
    if (!line.trim()) continue;
    const chunk = JSON.parse(line) as { results?: { series?: InfluxSeries[]; error?: string }[] };
    for (const result of chunk.results ?? []) {
      if (result.error) throw new Error(`InfluxDB: ${result.error} (${q})`);
      series.push(...(result.series ?? []));
    }
  }
  return series;
}

export async function dropDatabase(url: string, database: string) {
  await fetch(`${url}/query`, {
    method: "POST",
    body: new URLSearchParams({ q: `DROP DATABASE "${database}"` }),
  }).catch(() => {});
}

// --- A fleet's stored history (bench:api, bench:dashboard) --------------------------------------------

export type FleetDataSetOptions = {
  devices: number;
  days: number;
  /** Drop and build it even when a matching one exists. */
  rebuild?: boolean;
  /** Compute the rollups again (after the rollup code changed). */
  rollups?: boolean;
};

/** The database and the history's end (the clock its reads mean: statuses, default windows). */
export type FleetDataSet = { config: InfluxConfig; endMs: number };

async function historyQuery(url: string, db: string, q: string) {
  const response = await fetch(`${url}/query?${new URLSearchParams({ db, q })}`);
  return (await response.json()) as { results: Array<{ series?: Array<{ values: unknown[][] }> }> };
}

type MarkerField = "end_ms" | "rolled_up" | "history";

/** A field of the marker points written once the history (end_ms, history) and its rollups were complete. */
async function marker(url: string, db: string, field: MarkerField): Promise<number | undefined> {
  const result = await historyQuery(url, db, `SELECT last("${field}") FROM "long"."bench_meta"`).catch(
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
async function rollUp(config: InfluxConfig, endMs: number, days: number) {
  const { rebuildRollups } = await import("../rollup/rebuild.js");
  const write = createPointWriter(config, 60_000);
  const started = performance.now();
  let last = 0;
  const result = await rebuildRollups(
    createInflux(config),
    write,
    { fromMs: endMs - (days + 1) * DAY_MS, toMs: endMs },
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

async function measurements(url: string, db: string): Promise<Set<string>> {
  const result = await historyQuery(url, db, `SHOW MEASUREMENTS ON "${db}"`);
  return new Set((result.results[0]?.series?.[0]?.values ?? []).map((row) => String(row[0])));
}

/**
 * Read models the ingest now writes that a stored history lacks (it was built before they existed): the
 * same seed makes the same history, so they are made again and only their points written.
 */
async function supplement(config: InfluxConfig, endMs: number, devices: number, days: number) {
  const present = await measurements(config.url, config.database);
  const made = new Set<string>();
  for (const points of fleetHistory({ devices: 50, days: 1, endMs, seed: 1 }))
    for (const point of points) made.add(point.measurement);
  const missing = new Set([...made].filter((m) => !present.has(m) && m !== "bench_meta"));
  if (missing.size === 0) return;
  out(`adding ${[...missing].join(", ")} to the stored history (same seed, so the same history)`);
  const write = createPointWriter(config, 60_000);
  const started = performance.now();
  let written = 0;
  for (const points of fleetHistory({ devices, days, endMs, seed: 1 })) {
    const wanted = points.filter((p) => missing.has(p.measurement));
    for (let i = 0; i < wanted.length; i += 5000) await write(wanted.slice(i, i + 5000));
    written += wanted.length;
  }
  out(
    `  added ${written.toLocaleString("en")} points in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

/** Rollup measurements the current rollup code writes and the stored data set lacks. */
async function missingRollups(config: InfluxConfig): Promise<string[]> {
  const { MEASUREMENTS } = await import("../storage/schema.js");
  const rollups = [
    "cohort_1h",
    "issue_1h",
    "cohort_1d",
    "issue_1d",
    "fingerprint",
    "device_set",
    "issue_devices",
  ];
  const known = new Set<string>(Object.values(MEASUREMENTS).map((m) => m.name));
  const present = await measurements(config.url, config.database);
  return rollups.filter((m) => known.has(m) && !present.has(m));
}

/**
 * A write tried up to three times: an InfluxDB on a loaded machine answers "timeout" (HTTP 500) now and then,
 * and a point written again is the same point.
 */
function retryingWriter(config: InfluxConfig) {
  const write = createPointWriter(config, 60_000);
  return async (points: Point[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write(points);
      } catch (error) {
        if (attempt === 3) throw error;
        await sleep(2000 * attempt);
      }
    }
  };
}

async function buildHistory(config: InfluxConfig, endMs: number, devices: number, days: number) {
  const write = retryingWriter(config);
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
  await write([markerPoint(endMs, { end_ms: endMs, devices, history: HISTORY_VERSION })]);
  out(
    `  built ${written.toLocaleString("en")} points in ${((performance.now() - started) / 1000).toFixed(0)} s`,
  );
}

/**
 * The fleet's history in database bench_api_<devices>x<days>d, built with fleet-history.ts and rolled up
 * once, then kept and reused while its size and the history's version match. On FIELDQ_BENCH_INFLUX_URL, or
 * on a private influxd with its data in .fieldq/bench-influxdb (kept running and reused between runs).
 */
export async function fleetDataSet(options: FleetDataSetOptions): Promise<FleetDataSet> {
  const { devices, days } = options;
  let url = process.env.FIELDQ_BENCH_INFLUX_URL;
  if (!url) {
    await mkdir(".fieldq", { recursive: true });
    url = execFileSync("bash", ["scripts/influxd.sh", "start", ".fieldq/bench-influxdb"]).toString().trim();
  }
  const config: InfluxConfig = { url, database: `bench_api_${devices}x${days}d`, rawRetention: "90d" };
  const influx = createInflux(config);
  let endMs = options.rebuild ? undefined : await marker(url, config.database, "end_ms");
  const version = await marker(url, config.database, "history");
  if (endMs !== undefined && version !== HISTORY_VERSION) {
    out(
      `${config.database} holds history version ${version ?? "1"}, not ${HISTORY_VERSION}: building it anew`,
    );
    endMs = undefined;
  }
  if (endMs === undefined) {
    out(`building ${devices.toLocaleString("en")} devices × ${days} days in ${config.database} on ${url}`);
    await influx.dropDatabase(config.database);
    await ensureSchema(influx, config);
    endMs = floorHour(Date.now());
    await buildHistory(config, endMs, devices, days);
  } else {
    out(
      `reusing ${config.database} on ${url} (history until ${new Date(endMs).toISOString()}; --rebuild to make it anew)`,
    );
  }
  await supplement(config, endMs, devices, days);
  const stale = await missingRollups(config);
  if (
    (await marker(url, config.database, "rolled_up")) === undefined ||
    stale.length > 0 ||
    options.rollups
  ) {
    out(`computing the rollups${stale.length > 0 ? ` (${stale.join(", ")} missing)` : ""}`);
    await rollUp(config, endMs, days);
  }
  return { config, endMs };
}

// --- fieldq's broker + ingest in a child process -------------------------------------------------------

export type ChildReport = {
  rss: number;
  heapUsed: number;
  backlogEntries: number;
  backlogBytes: number;
  connected: number;
  /** CPU time the child's process has used (user + system, all its threads), µs. */
  cpuUs: number;
  /** Counter and gauge totals by metric name and label set, e.g. `fieldq_messages_refused_total{reason=too_large}`. */
  metrics: Record<string, number>;
};

type ChildMessage = { port: number } | ({ report: true } & ChildReport) | { failed: string };

const cpuMicros = (usage: NodeJS.CpuUsage) => usage.user + usage.system;

/**
 * A bare aedes broker on loopback and port 0: no authentication, no storage, the memory persistence aedes
 * ships with; Nagle off, as fieldq's listeners set it, so a ratio to it is about the work, not the socket.
 */
export async function listenBareAedes(): Promise<{ broker: Aedes; server: Server; port: number }> {
  const broker = await Aedes.createBroker();
  const server = createServer({ noDelay: true }, broker.handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { broker, server, port: (server.address() as AddressInfo).port };
}

/** Runs in a child forked with `--bare-child`: bare aedes, answering as runStackChild does (nothing to drain). */
export async function runBareAedesChild() {
  const { broker, server, port } = await listenBareAedes();
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on("disconnect", () => process.exit(1));
  process.send?.({ port } satisfies ChildMessage);
  process.on("message", (message: { kind: string; gc?: boolean }) => {
    if (message.kind === "report") {
      if (message.gc && gc) {
        gc();
        gc();
      }
      const memory = process.memoryUsage();
      process.send?.({
        report: true,
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        backlogEntries: 0,
        backlogBytes: 0,
        connected: broker.connectedClients,
        cpuUs: cpuMicros(process.cpuUsage()),
        metrics: {},
      } satisfies ChildMessage);
    } else if (message.kind === "close") {
      broker.close(() => server.close(() => process.exit(0)));
    }
  });
}

/** Runs in the child: `env` is the config's environment, in FIELDQ_BENCH_STACK_ENV as JSON. */
export async function runStackChild() {
  const config = benchConfig(JSON.parse(process.env.FIELDQ_BENCH_STACK_ENV ?? "{}") as NodeJS.ProcessEnv);
  const metrics = createMetrics();
  // FIELDQ_BENCH_STACK_LOG=warn shows the stack's own log lines (JSON on stdout) while a bench runs.
  const level = process.env.FIELDQ_BENCH_STACK_LOG;
  const logger = level ? createLogger({ level, format: "json" }) : silentLogger;
  const stack = await startIngestBroker(config, { logger, metrics });
  const gc = (globalThis as { gc?: () => void }).gc;
  process.send?.({ port: stack.mqttPort } satisfies ChildMessage);
  process.on("message", async (message: { kind: string; gc?: boolean }) => {
    if (message.kind === "report") {
      if (message.gc && gc) {
        gc();
        gc();
      }
      const memory = process.memoryUsage();
      const flat: Record<string, number> = {};
      for (const metric of await metrics.registry.getMetricsAsJSON()) {
        for (const value of (metric as { values?: { value: number; labels: Record<string, unknown> }[] })
          .values ?? []) {
          const labels = Object.entries(value.labels)
            .map(([k, v]) => `${k}=${String(v)}`)
            .join(",");
          flat[labels ? `${metric.name}{${labels}}` : metric.name] = value.value;
        }
      }
      process.send?.({
        report: true,
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        backlogEntries: stack.journal.backlog.entries,
        backlogBytes: stack.journal.backlog.bytes,
        connected: stack.broker.connectedDevices(),
        cpuUs: cpuMicros(process.cpuUsage()),
        metrics: flat,
      } satisfies ChildMessage);
    } else if (message.kind === "close") {
      await stack.close();
      process.exit(0);
    }
  });
}

export type StackChild = {
  port: number;
  /** The child's memory (after two GCs when `gc`), journal backlog and metric totals. */
  report(gc?: boolean): Promise<ChildReport>;
  /** Resolves with the exit code or signal when the child ends on its own. */
  exited: Promise<string>;
  alive(): boolean;
  close(): Promise<void>;
};

/**
 * Forks `script --stack-child` (the script calls runStackChild for that flag) with the node flags of this one;
 * with `--bare-child`, runBareAedesChild.
 */
export async function forkStack(
  script: string,
  env: NodeJS.ProcessEnv,
  flag: "--stack-child" | "--bare-child" = "--stack-child",
): Promise<StackChild> {
  const child = fork(script, [flag], {
    execArgv: [...new Set([...process.execArgv, "--expose-gc"])],
    env: { ...process.env, FIELDQ_BENCH_STACK_ENV: JSON.stringify(env) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let running = true;
  const exited = once(child, "exit").then(([code, signal]) => {
    running = false;
    return signal ? `signal ${String(signal)}` : `exit code ${String(code)}`;
  });
  const first = await Promise.race([once(child, "message"), exited]);
  if (typeof first === "string") throw new Error(`the stack child ended before listening (${first})`);
  const port = (first[0] as { port: number }).port;
  return {
    port,
    exited,
    alive: () => running,
    async report(gc = false) {
      if (!running) throw new Error("the stack child has ended");
      const answer = new Promise<ChildReport>((resolve, reject) => {
        const onMessage = (message: ChildMessage) => {
          if ("report" in message) {
            child.off("message", onMessage);
            resolve(message);
          }
        };
        child.on("message", onMessage);
        exited.then((how) => reject(new Error(`the stack child ended (${how})`)));
      });
      child.send({ kind: "report", gc });
      return answer;
    },
    async close() {
      if (!running) return;
      child.send({ kind: "close" });
      await exited;
    },
  };
}

/** Sum of a metric over its label sets, optionally only those whose labels contain `labelPart`. */
export function metricTotal(metrics: Record<string, number>, name: string, labelPart = ""): number {
  let sum = 0;
  for (const [key, value] of Object.entries(metrics)) {
    if ((key === name || key.startsWith(`${name}{`)) && key.includes(labelPart)) sum += value;
  }
  return sum;
}

/** Waits until the child's journal is empty; false when it is not within `timeoutMs`. */
export async function drained(stack: StackChild, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  let lastProgress = performance.now();
  while (performance.now() < deadline) {
    const { backlogEntries, backlogBytes } = await stack.report();
    if (backlogEntries === 0) return true;
    if (performance.now() - lastProgress > 10_000) {
      lastProgress = performance.now();
      out(`  waiting for the journal to drain: ${backlogEntries} entries, ${mib(backlogBytes)} MiB`);
    }
    await sleep(250);
  }
  return false;
}

// --- MQTT 3.1.1 packets by hand [MQTT-2] ---------------------------------------------------------------

/** The variable-length remaining length [MQTT-2.2.3]. */
export function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

/** A two-byte length and the bytes [MQTT-1.5.3]; a string is UTF-8 encoded. */
export function mqttString(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length & 0xffff);
  return Buffer.concat([length, bytes]);
}

export const packet = (firstByte: number, body: Buffer) =>
  Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);

export type ConnectFields = {
  clientId: string | Buffer;
  username?: string | Buffer;
  password?: string | Buffer;
  protocolName?: string | Buffer;
  level?: number;
  /** Extra connect-flag bits (will, QoS, retain, reserved); username and password bits are set from the fields. */
  flags?: number;
  keepalive?: number;
  will?: { topic: string | Buffer; payload: Buffer };
};

export function connectPacket(fields: ConnectFields): Buffer {
  let flags = (fields.flags ?? 0x02) & 0x3f;
  if (fields.username !== undefined) flags |= 0x80;
  if (fields.password !== undefined) flags |= 0x40;
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(fields.keepalive ?? 60);
  const parts = [
    mqttString(fields.protocolName ?? "MQTT"),
    Buffer.from([fields.level ?? 4, flags]),
    keepalive,
    mqttString(fields.clientId),
  ];
  if (fields.will) parts.push(mqttString(fields.will.topic), mqttString(fields.will.payload));
  if (fields.username !== undefined) parts.push(mqttString(fields.username));
  if (fields.password !== undefined) parts.push(mqttString(fields.password));
  return packet(0x10, Buffer.concat(parts));
}

export function publishPacket(topic: string | Buffer, payload: Buffer, qos: 0 | 1 = 0, packetId = 1): Buffer {
  const id = Buffer.alloc(qos > 0 ? 2 : 0);
  if (qos > 0) id.writeUInt16BE(packetId);
  return packet(0x30 | (qos << 1), Buffer.concat([mqttString(topic), id, payload]));
}

export function subscribePacket(packetId: number, filters: [string | Buffer, number][]): Buffer {
  const id = Buffer.alloc(2);
  id.writeUInt16BE(packetId);
  return packet(
    0x82,
    Buffer.concat([
      id,
      ...filters.map(([filter, qos]) => Buffer.concat([mqttString(filter), Buffer.from([qos])])),
    ]),
  );
}
