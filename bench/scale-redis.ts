import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt from "mqtt";
import { deviceKey } from "../contract/device-key.js";
import { commandFilter, helloTopic, telemetryTopic } from "../contract/topics.js";
import { MEASUREMENTS } from "../storage/schema.js";
import { redisCommands, startRedis } from "../test/support/redis.js";
import {
  BENCH_SECRET,
  benchInflux,
  dropDatabase,
  forkStack,
  influxQuery,
  out,
  quantile,
  runStackChild,
  type StackChild,
  sleep,
} from "./harness.js";
import { telemetryPayload } from "./telemetry-load.js";

// npm run bench:scale-redis -- [--devices 200] [--messages 200] [--inflight 10]
// What sharing aedes's state through Redis costs (FIELDQ_REDIS_URL, docs/scaling.md), three topologies in one
// run, each with a fresh InfluxDB database, journals and Debian redis-server:
//   memory  one fieldq broker, state in its memory (the default);
//   redis1  one fieldq broker, state in Redis;
//   redis2  two fieldq brokers over one Redis, the devices split between them.
// Each broker is a process of its own (bench/harness.ts forkStack); the devices run here. Per topology: the
// connect rate (CONNECT, SUBSCRIBE to the command filter at QoS 1, retained hello QoS 1, as devices do), QoS 1
// telemetry acked msg/s with ack p50/p99, and end to end until InfluxDB holds every message. One JSON line.

type Topology = { name: "memory" | "redis1" | "redis2"; brokers: number; redis: boolean };
const TOPOLOGIES: Topology[] = [
  { name: "memory", brokers: 1, redis: false },
  { name: "redis1", brokers: 1, redis: true },
  { name: "redis2", brokers: 2, redis: true },
];

type Figures = {
  connectsPerS: number;
  ackedPerS: number;
  ackP50Ms: number;
  ackP99Ms: number;
  endToEndPerS: number;
  missing: number;
  brokerRssMiB: number[];
  /** Commands Redis ran per device connect and per telemetry message (null: no Redis). */
  redisCommandsPerConnect: number | null;
  redisCommandsPerMessage: number | null;
};

async function main() {
  const { values } = parseArgs({
    options: {
      devices: { type: "string", default: "200" },
      messages: { type: "string", default: "200" },
      inflight: { type: "string", default: "10" },
      only: { type: "string" },
      rounds: { type: "string", default: "1" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    out("Usage: npm run bench:scale-redis -- [--devices 200] [--messages 200 per device] [--inflight 10]");
    out("                                    [--only memory|redis1|redis2] [--rounds 1]");
    out(
      "  --rounds N  runs the topologies in turn N times and reports each figure's median: on a machine whose",
    );
    out("              load drifts, every topology meets the same drift");
    out("Environment: FIELDQ_BENCH_INFLUX_URL uses a running InfluxDB 1.x instead of a private influxd.");
    return;
  }
  const devices = Number(values.devices);
  const messages = Number(values.messages);
  const inflight = Number(values.inflight);
  const rounds = Number(values.rounds);
  const influx = await benchInflux();
  const runs = new Map<string, Figures[]>();
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const topology of TOPOLOGIES) {
        if (values.only !== undefined && values.only !== topology.name) continue;
        out(
          `${topology.name} (round ${round}/${rounds}): ${topology.brokers} broker(s), state in ${topology.redis ? "Redis" : "memory"}`,
        );
        const figures = await run(topology, influx.url, { devices, messages, inflight });
        runs.set(topology.name, [...(runs.get(topology.name) ?? []), figures]);
        out(
          `  connect ${figures.connectsPerS.toFixed(0)}/s (Redis commands per connect ${figures.redisCommandsPerConnect ?? "-"}, per message ${figures.redisCommandsPerMessage ?? "-"}), acked ${figures.ackedPerS.toFixed(0)} msg/s (ack p50 ${figures.ackP50Ms.toFixed(1)} ms, p99 ${figures.ackP99Ms.toFixed(1)} ms), end to end ${figures.endToEndPerS.toFixed(0)} msg/s, missing ${figures.missing}, broker RSS ${figures.brokerRssMiB.join(" + ")} MiB`,
        );
      }
    }
  } finally {
    await influx.stop();
  }
  const results = Object.fromEntries([...runs].map(([name, figures]) => [name, medianOf(figures)]));
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? null : Number((a / b).toFixed(2));
  process.stdout.write(
    `${JSON.stringify({
      bench: "scale-redis",
      commit: gitCommit(),
      devices,
      messages,
      inflight,
      rounds,
      ...results,
      redis1VsMemoryAcked: ratio(results.redis1?.ackedPerS, results.memory?.ackedPerS),
      redis2VsMemoryAcked: ratio(results.redis2?.ackedPerS, results.memory?.ackedPerS),
      redis1VsMemoryConnects: ratio(results.redis1?.connectsPerS, results.memory?.connectsPerS),
    })}\n`,
  );
}

async function run(
  topology: Topology,
  influxUrl: string,
  load: { devices: number; messages: number; inflight: number },
): Promise<Figures> {
  const database = `bench_scale_redis_${topology.name}_${Date.now()}`;
  const redis = topology.redis ? await startRedis() : undefined;
  const dirs: string[] = [];
  const brokers: StackChild[] = [];
  try {
    for (let b = 0; b < topology.brokers; b++) {
      const dir = await mkdtemp(join(tmpdir(), `fieldq-bench-redis-${b}-`));
      dirs.push(dir);
      brokers.push(
        await forkStack(process.argv[1] as string, {
          FIELDQ_INFLUX_URL: influxUrl,
          FIELDQ_INFLUX_DB: database,
          FIELDQ_DATA_DIR: dir,
          FIELDQ_DEVICE_RATE: "100000",
          FIELDQ_DEVICE_BURST: "100000",
          FIELDQ_MAX_CONNECTIONS: "100000",
          FIELDQ_MAX_CONNECTIONS_PER_IP: "100000",
          ...(redis ? { FIELDQ_REDIS_URL: redis.url } : {}),
        }),
      );
    }
    await schemaMade(influxUrl, database);
    const ports = brokers.map((b) => b.port);
    const commands = async () => (redis ? await redisCommands(redis.port) : 0);
    const beforeConnects = await commands();
    const { clients, connectsPerS } = await connectAll(ports, load.devices);
    const beforeMessages = await commands();
    const total = load.devices * load.messages;
    const startedAt = performance.now();
    const acks = await publishAll(clients, load.messages, load.inflight);
    const ackedSeconds = (performance.now() - startedAt) / 1000;
    const afterMessages = await commands();
    const { stored, atMs } = await storedAll(influxUrl, database, total);
    const rss = await Promise.all(brokers.map(async (b) => Math.round((await b.report()).rss / 1_048_576)));
    await Promise.all(clients.map((c) => c.endAsync(true)));
    acks.sort((a, b) => a - b);
    return {
      connectsPerS: round(connectsPerS),
      ackedPerS: round(total / ackedSeconds),
      ackP50Ms: round(quantile(acks, 0.5), 1),
      ackP99Ms: round(quantile(acks, 0.99), 1),
      endToEndPerS: round(stored / ((atMs - startedAt) / 1000)),
      missing: total - stored,
      brokerRssMiB: rss,
      // Each INFO asked counts one command: too few to matter against these counts.
      redisCommandsPerConnect: redis ? round((beforeMessages - beforeConnects) / load.devices, 1) : null,
      redisCommandsPerMessage: redis ? round((afterMessages - beforeMessages) / total, 2) : null,
    };
  } finally {
    for (const broker of brokers) await broker.close();
    await redis?.close();
    await dropDatabase(influxUrl, database);
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  }
}

const deviceId = (i: number) => `bench-redis-${String(i).padStart(6, "0")}`;

/** Devices i, i+n, i+2n… go to broker i of n; each connects as a device does, 50 at a time. */
async function connectAll(ports: number[], devices: number) {
  const clients: mqtt.MqttClient[] = new Array(devices);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      while (next < devices) {
        const i = next++;
        const id = deviceId(i);
        const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${ports[i % ports.length]}`, {
          clientId: id,
          username: id,
          password: deviceKey(BENCH_SECRET, id),
          protocolVersion: 4,
          reconnectPeriod: 0,
          connectTimeout: 30_000,
        });
        await client.subscribeAsync(commandFilter(id), { qos: 1 });
        const hello = { kind: "modem", model: "FQ-Bench", firmware: "1.0", hardware: "A", serial: `SN-${i}` };
        await client.publishAsync(helloTopic(id), JSON.stringify(hello), { qos: 1, retain: true });
        clients[i] = client;
      }
    }),
  );
  return { clients, connectsPerS: devices / ((performance.now() - started) / 1000) };
}

/**
 * bench:ingest's telemetry, `inflight` unacknowledged per device, on clients already connected (to two brokers);
 * each ack's time in ms. telemetry-load.ts publishTelemetry connects its own clients to one URL.
 */
async function publishAll(clients: mqtt.MqttClient[], messages: number, inflight: number) {
  const acks: number[] = [];
  await Promise.all(
    clients.map(async (client, i) => {
      const topic = telemetryTopic(deviceId(i));
      let seq = 0;
      const worker = async () => {
        while (seq < messages) {
          const s = ++seq;
          const t = performance.now();
          await client.publishAsync(topic, telemetryPayload(s, Date.now()), { qos: 1 });
          acks.push(performance.now() - t);
        }
      };
      await Promise.all(Array.from({ length: inflight }, worker));
    }),
  );
  return acks;
}

/** Polls InfluxDB until it holds `total` telemetry points (or 120 s pass): how many, and when seen. */
async function storedAll(url: string, database: string, total: number) {
  const { name, rp } = MEASUREMENTS.telemetry;
  const q = `SELECT count("snr_margin_db") FROM "${rp}"."${name}"`;
  const deadline = performance.now() + 120_000;
  let stored = 0;
  let atMs = performance.now();
  while (performance.now() < deadline) {
    const series = await influxQuery(url, database, q).catch(() => []);
    const count = Number(series[0]?.values[0]?.[1] ?? 0);
    if (count > stored) {
      stored = count;
      atMs = performance.now();
    }
    if (stored >= total) break;
    await sleep(100);
  }
  return { stored, atMs };
}

/** The schema exists once a broker's writer made it. */
async function schemaMade(url: string, database: string) {
  for (let tries = 0; tries < 200; tries++) {
    const shown = await influxQuery(url, database, "SHOW RETENTION POLICIES").catch(() => []);
    if (shown.length > 0) return;
    await sleep(50);
  }
}

const round = (x: number, digits = 0) => Number(x.toFixed(digits));

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** Each figure's median over the rounds (the RSS of the last round). */
function medianOf(runs: Figures[]): Figures {
  const of = (pick: (f: Figures) => number) => round(median(runs.map(pick)), 2);
  const nullable = (pick: (f: Figures) => number | null) =>
    runs[0] === undefined || pick(runs[0]) === null ? null : of((f) => pick(f) ?? 0);
  return {
    connectsPerS: of((f) => f.connectsPerS),
    ackedPerS: of((f) => f.ackedPerS),
    ackP50Ms: of((f) => f.ackP50Ms),
    ackP99Ms: of((f) => f.ackP99Ms),
    endToEndPerS: of((f) => f.endToEndPerS),
    missing: Math.max(...runs.map((f) => f.missing)),
    brokerRssMiB: runs.at(-1)?.brokerRssMiB ?? [],
    redisCommandsPerConnect: nullable((f) => f.redisCommandsPerConnect),
    redisCommandsPerMessage: nullable((f) => f.redisCommandsPerMessage),
  };
}

function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"]).toString().trim();
  } catch {
    return "unknown";
  }
}

// Last: the functions and constants above exist before either runs.
if (process.argv.includes("--stack-child")) {
  await runStackChild();
} else {
  await main();
}
