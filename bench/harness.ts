import { execFileSync, fork } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Config, loadConfig } from "../config/env.js";
import { createLogger, silentLogger } from "../observe/logger.js";
import { createMetrics } from "../observe/metrics.js";
import { startIngestBroker } from "../stack/start-stack.js";

// What bench:fairness, fuzz and soak share: an InfluxDB (FIELDQ_BENCH_INFLUX_URL, or a private influxd),
// a config on loopback and port 0, fieldq's broker + ingest in a child process (so its memory and its
// crashes are its own), and MQTT packets written by hand, for what a well-behaved client cannot send.

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

// --- fieldq's broker + ingest in a child process -------------------------------------------------------

export type ChildReport = {
  rss: number;
  heapUsed: number;
  backlogEntries: number;
  backlogBytes: number;
  connected: number;
  /** Counter and gauge totals by metric name and label set, e.g. `fieldq_messages_refused_total{reason=too_large}`. */
  metrics: Record<string, number>;
};

type ChildMessage = { port: number } | ({ report: true } & ChildReport) | { failed: string };

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

/** Forks `script --stack-child` (the script calls runStackChild for that flag) with the node flags of this one. */
export async function forkStack(script: string, env: NodeJS.ProcessEnv): Promise<StackChild> {
  const child = fork(script, ["--stack-child"], {
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
