import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { startMosquitto } from "../test/support/mosquitto.js";
import { benchInflux, dropDatabase, influxQuery, out, quantile, sleep } from "./harness.js";
import { benchDeviceId, publishTelemetry } from "./telemetry-load.js";

// npm run bench:scale-external -- [--devices 50] [--messages 400] [--inflight 10] [--ingests 1,2]
// `fieldq ingest` behind Debian's Mosquitto 2: devices publish QoS 1 single-sample telemetry to Mosquitto (the
// load of bench:ingest), 1 and then 2 ingest processes take it through the shared subscription and acknowledge
// each message after their journal's fsync, and InfluxDB is polled until every message is stored. Each run
// has a fresh Mosquitto and database. Reported per run: msg/s acknowledged to the devices by Mosquitto (which
// is not durable: Mosquitto acks on receipt), msg/s end to end into InfluxDB (the durable rate), and each
// ingest's share. Ends with one JSON line.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "50" },
    messages: { type: "string", default: "400" },
    inflight: { type: "string", default: "10" },
    ingests: { type: "string", default: "1,2" },
    "cpu-prof": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  out("Usage: npm run bench:scale-external -- [--devices 50] [--messages 400 per device] [--inflight 10]");
  out("                                       [--ingests 1,2]   (ingest processes per run)");
  out(
    "                                       [--cpu-prof DIR]  (profile each ingest into DIR/<ingests>-<n>)",
  );
  out("Environment: FIELDQ_BENCH_INFLUX_URL uses a running InfluxDB 1.x instead of a private influxd.");
  process.exit(0);
}
const devices = Number(values.devices);
const messages = Number(values.messages);
const inflight = Number(values.inflight);
const runs = values.ingests.split(",").map(Number);
const total = devices * messages;

type LogLine = Record<string, unknown>;
type IngestProcess = { child: ChildProcess; lines: LogLine[] };

function startIngest(broker: string, env: NodeJS.ProcessEnv, profileDir?: string): IngestProcess {
  const prof = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [];
  const child = spawn("node", [...prof, "--import", "tsx", "cli/fieldq.ts", "ingest", "--broker", broker], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: LogLine[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (text) => {
    try {
      lines.push(JSON.parse(text) as LogLine);
    } catch {}
  });
  return { child, lines };
}

async function logged(proc: IngestProcess, msg: string, timeoutMs = 60_000): Promise<LogLine> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const line = proc.lines.find((l) => l.msg === msg);
    if (line) return line;
    if (proc.child.exitCode !== null || Date.now() > until) throw new Error(`no "${msg}" from fieldq ingest`);
    await sleep(50);
  }
}

async function stop(proc: IngestProcess) {
  if (proc.child.exitCode !== null) return;
  const exited = once(proc.child, "exit");
  proc.child.kill("SIGTERM");
  await exited;
}

async function storedCount(url: string, database: string): Promise<number> {
  const series = await influxQuery(url, database, 'SELECT count("seq") FROM "telemetry"').catch(() => []);
  return Number(series[0]?.values[0]?.[1] ?? 0);
}

async function run(influxUrl: string, ingests: number) {
  const mosquitto = await startMosquitto(["log_dest none"]);
  const database = `bench_scale_external_${ingests}_${Date.now()}`;
  const dirs = await Promise.all(
    Array.from({ length: ingests }, () => mkdtemp(join(tmpdir(), "fieldq-bench-ingest-"))),
  );
  const profileDir = values["cpu-prof"];
  const procs = dirs.map((dir, i) =>
    startIngest(
      mosquitto.url,
      {
        FIELDQ_INFLUX_URL: influxUrl,
        FIELDQ_INFLUX_DB: database,
        FIELDQ_DATA_DIR: dir,
        FIELDQ_INGEST_CLIENT_ID: `bench-ingest-${i}`,
        FIELDQ_LOG_FORMAT: "json",
        FIELDQ_LOG_LEVEL: "info",
      },
      profileDir === undefined ? undefined : join(profileDir, `${ingests}-${i}`),
    ),
  );
  try {
    await Promise.all(procs.map((p) => logged(p, "subscribed to the devices' topics")));
    await Promise.all(procs.map((p) => logged(p, "InfluxDB schema ready")));
    const published = await publishTelemetry(mosquitto.url, {
      devices,
      messages,
      inflight,
      rate: 0,
      connect: (i) => ({ clientId: benchDeviceId(i), protocolVersion: 5 }),
    });
    let stored = 0;
    let storedAt = performance.now();
    const until = Date.now() + 120_000;
    while (stored < total && Date.now() < until) {
      const count = await storedCount(influxUrl, database);
      if (count > stored) {
        stored = count;
        storedAt = performance.now();
      }
      if (stored < total) await sleep(50);
    }
    for (const p of procs) await stop(p);
    const shares = await Promise.all(
      procs.map(async (p) => Number((await logged(p, "stopped", 10_000)).acknowledged)),
    );
    const latencies = published.latenciesMs.sort((a, b) => a - b);
    return {
      ingests,
      stored,
      acked: Math.round(total / published.seconds),
      endToEnd: Math.round(stored / ((storedAt - published.startedAt) / 1000)),
      ackP50Ms: Number(quantile(latencies, 0.5).toFixed(1)),
      ackP99Ms: Number(quantile(latencies, 0.99).toFixed(1)),
      shares,
    };
  } finally {
    for (const p of procs) if (p.child.exitCode === null) p.child.kill("SIGKILL");
    await mosquitto.stop();
    await dropDatabase(influxUrl, database);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
}

async function main() {
  const influx = await benchInflux();
  try {
    out(`${devices} devices × ${messages} QoS 1 messages (${total}), ${inflight} in flight per device`);
    const results = [];
    for (const ingests of runs) {
      const r = await run(influx.url, ingests);
      results.push(r);
      out(
        `${ingests} ingest process${ingests === 1 ? "" : "es"}: acked by Mosquitto ${r.acked} msg/s ` +
          `(p50 ${r.ackP50Ms} ms, p99 ${r.ackP99Ms} ms), end to end ${r.endToEnd} msg/s, ` +
          `stored ${r.stored}/${total}, shares ${r.shares.join(" + ")}`,
      );
    }
    out(JSON.stringify({ bench: "scale-external", devices, messages, inflight, runs: results }));
  } finally {
    await influx.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:scale-external: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
