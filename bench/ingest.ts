import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Aedes } from "aedes";
import mqtt from "mqtt";
import { loadConfig } from "../config/env.js";
import { deviceKey } from "../contract/device-key.js";
import { telemetryTopic } from "../contract/topics.js";
import { silentLogger } from "../observe/logger.js";
import { startIngestBroker } from "../stack/start-stack.js";

// npm run bench:ingest -- [--devices 50] [--messages 400] [--inflight 10]
// QoS 1 telemetry from many devices at once: through fieldq (validated, journaled with fsync before each
// PUBACK, drained into InfluxDB) and, in the same run, through a bare aedes broker that does nothing, so the
// ratio between the two says what durability costs on this machine.

const { values } = parseArgs({
  options: {
    devices: { type: "string", default: "50" },
    messages: { type: "string", default: "400" },
    inflight: { type: "string", default: "10" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write(
    "Usage: npm run bench:ingest -- [--devices 50] [--messages 400 per device] [--inflight 10 per device]\n",
  );
  process.exit(0);
}
const devices = Number(values.devices);
const messages = Number(values.messages);
const inflight = Number(values.inflight);
const secret = "bench-secret-0123456789";
const out = (line: string) => process.stdout.write(`${line}\n`);

type Run = { seconds: number; latenciesMs: number[] };

/** Every device publishes its messages with at most `inflight` unacknowledged at a time. */
async function publishAll(port: number): Promise<Run> {
  const clients = await Promise.all(
    Array.from({ length: devices }, (_, i) => {
      const id = `bench-${String(i).padStart(5, "0")}`;
      return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        clientId: id,
        username: id,
        password: deviceKey(secret, id),
        protocolVersion: 4,
        reconnectPeriod: 0,
      });
    }),
  );
  const latenciesMs: number[] = [];
  const started = performance.now();
  await Promise.all(
    clients.map(async (client, i) => {
      const id = `bench-${String(i).padStart(5, "0")}`;
      let seq = 0;
      const worker = async () => {
        while (seq < messages) {
          const s = ++seq;
          const payload = JSON.stringify({
            ts: Date.now(),
            seq: s,
            metrics: { snr_margin_db: 7 + (s % 5), crc_errors: s },
          });
          const t = performance.now();
          await client.publishAsync(telemetryTopic(id), payload, { qos: 1 });
          latenciesMs.push(performance.now() - t);
        }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(clients.map((c) => c.endAsync()));
  return { seconds, latenciesMs };
}

const quantile = (sorted: number[], q: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
function report(name: string, run: Run): number {
  const sorted = [...run.latenciesMs].sort((a, b) => a - b);
  const rate = run.latenciesMs.length / run.seconds;
  out(
    `${name.padEnd(34)} ${rate.toFixed(0).padStart(7)} msg/s   ack p50 ${quantile(sorted, 0.5).toFixed(1)} ms   p99 ${quantile(sorted, 0.99).toFixed(1)} ms`,
  );
  return rate;
}

async function bareAedes(): Promise<Run> {
  const broker = await Aedes.createBroker();
  const server = createServer(broker.handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    return await publishAll((server.address() as AddressInfo).port);
  } finally {
    await new Promise<void>((r) => broker.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  }
}

async function main() {
  const influxDir = await mkdtemp(join(tmpdir(), "fieldq-bench-influx-"));
  const dataDir = await mkdtemp(join(tmpdir(), "fieldq-bench-data-"));
  const influxUrl =
    process.env.FIELDQ_BENCH_INFLUX_URL ??
    execFileSync("bash", ["scripts/influxd.sh", "start", influxDir]).toString().trim();
  try {
    const loaded = loadConfig({
      FIELDQ_MQTT_HOST: "127.0.0.1",
      FIELDQ_MQTT_PORT: "0",
      FIELDQ_INFLUX_URL: influxUrl,
      FIELDQ_INFLUX_DB: `bench_${Date.now()}`,
      FIELDQ_DEVICE_SECRET: secret,
      FIELDQ_DATA_DIR: dataDir,
      // Each device here sends as fast as it can: the pipeline's throughput is measured, not a device's share.
      FIELDQ_DEVICE_RATE: "1000000",
      FIELDQ_DEVICE_BURST: "1000000",
      FIELDQ_LOG_LEVEL: "silent",
      FIELDQ_LOG_FORMAT: "json",
    });
    if (!loaded.ok) throw new Error(loaded.problems.join("; "));
    const total = devices * messages;
    out(
      `${devices} devices × ${messages} QoS 1 telemetry messages (${total}), ${inflight} in flight per device; ${influxUrl}`,
    );
    const bare = report("bare aedes (no auth, no storage)", await bareAedes());

    const stack = await startIngestBroker(loaded.config, { logger: silentLogger });
    const fieldqRun = await publishAll(stack.mqttPort);
    const drainStarted = performance.now();
    while (stack.journal.backlog.entries > 0) await new Promise((r) => setTimeout(r, 20));
    const drainSeconds = (performance.now() - drainStarted) / 1000;
    const journaled = report("fieldq (validated, fsync'd journal)", fieldqRun);
    out(
      `${"fieldq end to end, into InfluxDB".padEnd(34)} ${(total / (fieldqRun.seconds + drainSeconds)).toFixed(0).padStart(7)} msg/s   journal drained ${drainSeconds.toFixed(2)} s after the last PUBACK`,
    );
    out(`ratio fieldq / bare aedes: ${(journaled / bare).toFixed(2)}`);
    await stack.close();
    await fetch(`${influxUrl}/query`, {
      method: "POST",
      body: new URLSearchParams({ q: `DROP DATABASE "${loaded.config.influx.database}"` }),
    });
  } finally {
    if (!process.env.FIELDQ_BENCH_INFLUX_URL) execFileSync("bash", ["scripts/influxd.sh", "stop", influxDir]);
    await rm(influxDir, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:ingest: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
